/**
 * The switch's inspection for operators, on a real Switch with pod ports (TAPs in pod namespaces,
 * each with a frame probe) and a fake peer VTEP: drop events (`dropEvents`: recorded only once
 * read, sampled, every drop either recorded or counted as sampled out) and the trace (`trace`:
 * the packet path's decision on a synthetic frame). Every trace is checked against real traffic:
 * its ARP request and its frame are sent from the pod, and the drop counters must move exactly
 * as the trace said (or the frame arrive where it said).
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { Probe } from "../../src/dataplane/probe.js";
import { Switch, type SwitchTrace } from "../../src/dataplane/switch.js";
import { World, isRoot as runningAsRoot, podMac } from "../kit/netns/index.js";
import {
  ETHERTYPE_ARP,
  ETHERTYPE_IPV4,
  parseEthernet,
  parseVxlan,
  udpFrame,
  type Endpoint,
} from "./packets.js";

const isRoot = runningAsRoot();
if (!isRoot) console.warn("inspect.unit.test.ts: skipped, network namespaces and TAP devices need root");

const RED = 100;
const BLUE = 200;
const GLOBAL = 300;
const NODE_IP = "10.252.0.1";
const PEER_IP = "10.252.0.2";
const STRANGER_IP = "10.252.0.3";
const VXLAN_PORT = 4789;
const ARRIVE_MS = 2000;

interface Pod extends Endpoint {
  short: string;
  vni: number;
  id: number;
  probe: Probe;
}

const SPECS = [
  { short: "ia", ip: "10.61.0.2", vni: RED },
  { short: "ib", ip: "10.61.0.3", vni: RED },
  { short: "ic", ip: "10.61.0.4", vni: BLUE },
  { short: "ig", ip: "10.61.0.5", vni: GLOBAL },
];
const R_RED = { vni: RED, mac: podMac("10.61.1.2"), ipv4: "10.61.1.2", vtep: PEER_IP };
const R_BLUE = { vni: BLUE, mac: podMac("10.61.1.3"), ipv4: "10.61.1.3", vtep: PEER_IP };

describe.skipIf(!isRoot)("switch inspection: drop events and traces", () => {
  let world: World | undefined;
  let sw: Switch | undefined;
  const pods = new Map<string, Pod>();
  const probes: Probe[] = [];
  let peer: Probe;
  let stranger: Probe;
  const S = (): Switch => sw!;
  const pod = (short: string): Pod => pods.get(short)!;

  beforeAll(async () => {
    world = await World.create();
    const w = world;
    await w.addNamespace("node");
    await w.addNamespace("peer");
    await w.addVeth(
      { ns: "node", name: "u0", addr: `${NODE_IP}/24` },
      { ns: "peer", name: "u0", addr: `${PEER_IP}/24` },
    );
    await w.ip("peer", ["addr", "add", `${STRANGER_IP}/24`, "dev", "u0"]);
    sw = new Switch({ underlayIp: NODE_IP, netns: w.nsPath("node") });
    for (const spec of SPECS) {
      await w.addNamespace(spec.short);
      await w.exec(spec.short, "sysctl", [
        "-qw",
        "net.ipv6.conf.all.disable_ipv6=1",
        "net.ipv6.conf.default.disable_ipv6=1",
      ]);
      const path = w.nsPath(spec.short);
      const mac = podMac(spec.ip);
      const id = S().addPort({ name: "eth0", netns: path, vni: spec.vni, mac, ipv4: spec.ip });
      const probe = Probe.frames(path, "eth0");
      probes.push(probe);
      pods.set(spec.short, { ...spec, mac, id, probe });
    }
    S().setPeers([{ ip: PEER_IP }]);
    S().setGlobalVnis([GLOBAL]);
    S().updateRemotes([R_RED, R_BLUE]);
    peer = Probe.datagrams(w.nsPath("peer"), PEER_IP, VXLAN_PORT);
    stranger = Probe.datagrams(w.nsPath("peer"), STRANGER_IP, VXLAN_PORT);
    probes.push(peer, stranger);
  });

  afterAll(async () => {
    try {
      for (const p of probes) p.close();
      sw?.close();
    } finally {
      await world?.destroy();
    }
  });

  beforeEach(() => {
    for (const p of probes) while (p.receive(0) !== null);
  });

  const dropsNow = (): Record<string, number> => ({ ...S().counters().drops });
  function delta(before: Record<string, number>): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [k, v] of Object.entries(S().counters().drops))
      if (v !== (before[k] ?? 0)) out[k] = v - (before[k] ?? 0);
    return out;
  }
  async function until(ok: () => boolean): Promise<void> {
    const end = Date.now() + ARRIVE_MS;
    while (!ok() && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
  }

  describe("drop events", () => {
    it("records a drop with its port, reason, addresses and ports once someone reads", async () => {
      const a = pod("ia");
      S().dropEvents({ sinceMs: 0 }); // arms recording
      const since = Date.now() - 1;
      // a spoofed source MAC from ia's port, UDP 40001 -> 53
      const spoofed = udpFrame({ mac: "0a:58:0a:3d:ff:01", ip: a.ip }, pod("ib"), Buffer.alloc(20), {
        src: 40001,
        dst: 53,
      });
      a.probe.send(spoofed);
      let events = S().dropEvents({ sinceMs: since }).events;
      await until(() =>
        (events = S().dropEvents({ sinceMs: since }).events).some((e) => e.reason === "spoofed_mac"),
      );
      const e = events.find((x) => x.reason === "spoofed_mac");
      expect(e).toMatchObject({
        from: "port",
        port: a.id,
        vni: RED,
        ethertype: ETHERTYPE_IPV4,
        protocol: 17,
        src: a.ip,
        dst: pod("ib").ip,
        srcPort: 40001,
        dstPort: 53,
        count: 1,
      });
      expect(e!.timeMs).toBeGreaterThanOrEqual(since);
      expect(e!.timeMs).toBeLessThanOrEqual(Date.now() + 1);
    });

    it("records VXLAN from a stranger with the peer's address and the inner frame", async () => {
      const since = Date.now() - 1;
      S().dropEvents({ sinceMs: since });
      const inner = udpFrame({ mac: R_RED.mac, ip: R_RED.ipv4 }, pod("ia"), Buffer.alloc(8));
      const vx = Buffer.concat([Buffer.from([0x08, 0, 0, 0, 0, 0, RED, 0]), inner]);
      stranger.send(vx, { ip: NODE_IP, port: VXLAN_PORT });
      let events = S().dropEvents({ sinceMs: since }).events;
      await until(() =>
        (events = S().dropEvents({ sinceMs: since }).events).some((e) => e.reason === "vxlan_unknown_peer"),
      );
      expect(events.find((x) => x.reason === "vxlan_unknown_peer")).toMatchObject({
        from: "peer",
        peer: STRANGER_IP,
        vni: RED,
        src: R_RED.ipv4,
        dst: pod("ia").ip,
      });
    });

    it("samples a burst: every drop is recorded or counted as sampled out, and the ring stays bounded", async () => {
      const a = pod("ia");
      const first = S().dropEvents({ sinceMs: 0 });
      const since = Date.now() + 0; // events after this instant
      const before = dropsNow();
      const sampledBefore = first.sampledOut;
      const frame = udpFrame({ mac: "0a:58:0a:3d:ff:02", ip: a.ip }, pod("ib"), Buffer.alloc(20));
      const N = 1500;
      for (let i = 0; i < N; i++) a.probe.send(frame);
      // The TAP's queue may overflow before the switch reads (those never reach it): the
      // counter, once it stops moving, is what the switch dropped.
      let last = -1;
      await until(() => {
        const now = delta(before).spoofed_mac ?? 0;
        const settled = now === last;
        last = now;
        return settled && now > 0;
      });
      const dropped = delta(before).spoofed_mac ?? 0;
      expect(dropped).toBeGreaterThan(N / 2);
      const after = S().dropEvents({ sinceMs: since - 1 });
      const recorded = after.events.filter((e) => e.reason === "spoofed_mac" && e.timeMs >= since - 1);
      const sampled = after.sampledOut - sampledBefore;
      // A burst of 1,500 frames is sent within a few ms: far more than 4 per ms per thread.
      expect(sampled).toBeGreaterThan(0);
      expect(recorded.reduce((n, e) => n + e.count, 0) + sampled).toBe(dropped);
      expect(after.events.length).toBeLessThanOrEqual(512 * 2);
    });

    it("checks its arguments in TypeScript", () => {
      expect(() => S().dropEvents({ sinceMs: -1 })).toThrow(RangeError);
      expect(() => S().dropEvents({ armMs: 1.5 })).toThrow(RangeError);
    });
  });

  describe("trace agrees with real traffic", () => {
    /** Sends the trace's ARP request and frame from the pod; returns the drop counters' moves. */
    async function sendTraced(
      from: Pod,
      t: SwitchTrace,
    ): Promise<{ arp: Record<string, number>; frame: Record<string, number> }> {
      let before = dropsNow();
      from.probe.send(t.arp.frame);
      if (t.arp.drop !== null) await until(() => (delta(before)[t.arp.drop!] ?? 0) > 0);
      else
        expect(
          from.probe.receiveMatching((r) => parseEthernet(r.data).type === ETHERTYPE_ARP, ARRIVE_MS),
        ).not.toBeNull();
      const arp = delta(before);
      before = dropsNow();
      from.probe.send(t.frame.frame);
      if (t.frame.drop !== null) await until(() => (delta(before)[t.frame.drop!] ?? 0) > 0);
      else await new Promise((r) => setTimeout(r, 100));
      return { arp, frame: delta(before) };
    }

    it("same VNI on this node: answered, delivered to the pod's port, no drop", async () => {
      const a = pod("ia");
      const b = pod("ib");
      const t = S().trace({ port: a.id, dst: b.ip, protocol: "tcp", dstPort: 80 });
      expect(t.source).toMatchObject({ vni: RED, ipv4: a.ip, mac: a.mac, kind: "pod", global: false });
      expect(t.arp).toMatchObject({ drop: null, answer: { mac: b.mac, vni: RED, port: b.id } });
      expect(t.frame).toMatchObject({ drop: null, destination: { port: b.id, portName: "eth0", vni: RED } });
      const moved = await sendTraced(a, t);
      expect(moved).toEqual({ arp: {}, frame: {} });
      const got = b.probe.receiveMatching((r) => r.data.equals(t.frame.frame), ARRIVE_MS);
      expect(got, "the traced frame reaches the pod").not.toBeNull();
    });

    it("another VNI on this node: ARP unanswered, the frame a vni_mismatch, as the counters say", async () => {
      const a = pod("ia");
      const c = pod("ic");
      const t = S().trace({ port: a.id, dst: c.ip, protocol: "udp", dstPort: 53 });
      expect(t.arp).toMatchObject({ drop: "arp_unanswered", answer: null });
      expect(t.frame).toMatchObject({ drop: "vni_mismatch", destination: { vni: BLUE, global: false } });
      expect(await sendTraced(a, t)).toEqual({ arp: { arp_unanswered: 1 }, frame: { vni_mismatch: 1 } });
    });

    it("a global VNI reaches across: delivered", async () => {
      const a = pod("ia");
      const g = pod("ig");
      const t = S().trace({ port: a.id, dst: g.ip, protocol: "icmp" });
      expect(t.frame).toMatchObject({ drop: null, destination: { vni: GLOBAL, global: true } });
      expect(await sendTraced(a, t)).toEqual({ arp: {}, frame: {} });
      expect(g.probe.receiveMatching((r) => r.data.equals(t.frame.frame), ARRIVE_MS)).not.toBeNull();
    });

    it("a remote pod of the same VNI: sent to its VTEP, which is a programmed peer", async () => {
      const a = pod("ia");
      const t = S().trace({ port: a.id, dst: R_RED.ipv4, protocol: "tcp", dstPort: 443 });
      expect(t.frame).toMatchObject({
        drop: null,
        destination: { vtep: PEER_IP, vni: RED, peerProgrammed: true },
      });
      expect(await sendTraced(a, t)).toEqual({ arp: {}, frame: {} });
      const got = peer.receiveMatching((r) => {
        const v = parseVxlan(r.data);
        return v.vni === RED && v.frame.equals(t.frame.frame);
      }, ARRIVE_MS);
      expect(got, "the traced frame reaches the peer VTEP").not.toBeNull();
    });

    it("a remote pod of another VNI, and an address nobody has", async () => {
      const a = pod("ia");
      const t = S().trace({ port: a.id, dst: R_BLUE.ipv4, protocol: "udp", dstPort: 5000 });
      expect(t.frame.drop).toBe("vni_mismatch");
      expect(await sendTraced(a, t)).toEqual({ arp: { arp_unanswered: 1 }, frame: { vni_mismatch: 1 } });
      const none = S().trace({ port: a.id, dst: "10.61.9.9", protocol: "icmp" });
      expect(none.arp.drop).toBe("arp_unanswered");
      expect(none.frame).toMatchObject({ drop: "unknown_dest", destination: null });
      expect(await sendTraced(a, none)).toEqual({ arp: { arp_unanswered: 1 }, frame: { unknown_dest: 1 } });
    });

    it("refuses an unknown port or protocol", () => {
      expect(() => S().trace({ port: 1000, dst: "10.61.0.3", protocol: "tcp" })).toThrow(/no port 1000/);
      expect(() => S().trace({ port: 0, dst: "10.61.0.3", protocol: "sctp" as "tcp" })).toThrow(TypeError);
      expect(() => S().trace({ port: 0, dst: "10.61.0.3", protocol: "constructor" as "tcp" })).toThrow(
        TypeError,
      );
    });
  });
});

/**
 * Crafted frames through a real Switch: a node namespace whose switch has pod ports (TAPs in pod
 * namespaces, each watched by a frame probe) and a fake peer VTEP (a UDP socket on the other end
 * of the node's underlay veth). Every test sends exact bytes and asserts exactly what comes out:
 * the frames delivered, the datagrams encapsulated, and which drop counters rose by how much.
 *
 * Drop reasons not triggered here, because nothing outside the switch can produce them:
 * - bad_vnet_hdr: needs a TAP frame with an offload the switch does not handle (a GSO type other
 *   than TCPv4, or a checksum offset beyond the frame); the TAPs are opened with TSO4 and
 *   checksum offload only, and the kernel never hands over anything else.
 * - frame_short: needs a TAP read shorter than an Ethernet header (or a TCP super-frame shorter
 *   than its headers); the kernel refuses to transmit a frame shorter than 14 bytes on an
 *   Ethernet device (AF_PACKET send fails with EINVAL, see the test that checks it), and builds
 *   super-frames only from whole TCP segments.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { Probe } from "../../src/dataplane/probe.js";
import { dropReasons, Switch, type RemoteEndpoint } from "../../src/dataplane/switch.js";
import { World, isRoot as runningAsRoot, podMac } from "../kit/netns/index.js";
import {
  ARP_REPLY,
  ARP_REQUEST,
  BROADCAST_MAC,
  ETHERTYPE_ARP,
  ETHERTYPE_IPV4,
  ETHERTYPE_IPV6,
  IPPROTO_TCP,
  IPPROTO_UDP,
  TCP_ACK,
  TCP_SYN,
  VXLAN_FLAG_I,
  ZERO_MAC,
  arp,
  arpRequestFrame,
  ethernet,
  l4ChecksumOk,
  parseArp,
  parseEthernet,
  parseIpv4,
  parseTcp,
  parseUdp,
  parseVxlan,
  tcpFrame,
  udpFrame,
  vxlan,
  type Endpoint,
} from "./packets.js";

const isRoot = runningAsRoot();
if (!isRoot) console.warn("switch.unit.test.ts: skipped, network namespaces and TAP devices need root");

const RED = 100;
const BLUE = 200;
const GLOBAL = 300;
const NO_PORT_VNI = 999;

const NODE_IP = "10.250.0.1";
const PEER_IP = "10.250.0.2";
/** An address of the peer namespace that is not a peer VTEP. */
const STRANGER_IP = "10.250.0.3";
/** An address of the peer namespace that the node namespace has no route to. */
const UNROUTED_VTEP = "10.251.0.9";
const VXLAN_PORT = 4789;

/** "Nothing arrives" waits this long. */
const QUIET_MS = 300;
/** Something expected arrives within this long. */
const ARRIVE_MS = 2000;

interface PodSpec {
  short: string;
  ip: string;
  vni: number;
  mtu?: number;
  rateBitsPerSec?: number;
  kind?: "pod" | "host";
}

interface Pod extends Endpoint {
  short: string;
  path: string;
  vni: number;
  id: number;
  probe: Probe;
}

interface Remote extends Endpoint {
  vni: number;
  vtep: string;
}

const POD_SPECS: PodSpec[] = [
  { short: "pa", ip: "10.60.0.2", vni: RED },
  { short: "pb", ip: "10.60.0.3", vni: RED },
  { short: "pc", ip: "10.60.0.4", vni: BLUE },
  { short: "pg", ip: "10.60.0.5", vni: GLOBAL },
  // VNI changes
  { short: "pe", ip: "10.60.0.6", vni: RED },
  { short: "pf", ip: "10.60.0.7", vni: BLUE },
  // eth0 set down: writes to it fail
  { short: "pd", ip: "10.60.0.8", vni: RED },
  // switch port MTU 1000, interface MTU raised above it
  { short: "pm", ip: "10.60.0.9", vni: RED, mtu: 1000 },
  // 8 bit/s: only the bucket's burst passes
  { short: "pl", ip: "10.60.0.10", vni: RED, rateBitsPerSec: 8 },
  // has an IPv4 address: its kernel sends traffic of its own
  { short: "pk", ip: "10.60.0.11", vni: RED },
  // the node's gateway: a host port, only its MAC is enforced
  { short: "ph", ip: "10.60.0.1", vni: GLOBAL, kind: "host" },
];

function remote(ip: string, vni: number, vtep = PEER_IP): Remote {
  return { mac: podMac(ip), ip, vni, vtep };
}
const R1 = remote("10.60.1.2", RED);
const R2 = remote("10.60.1.3", BLUE);
const R_UNROUTED = remote("10.60.1.9", RED, UNROUTED_VTEP);
const UNKNOWN: Endpoint = { mac: "0a:58:99:99:99:99", ip: "10.60.9.9" };

function toRemoteEndpoint(r: Remote): RemoteEndpoint {
  return { vni: r.vni, mac: r.mac, ipv4: r.ip, vtep: r.vtep };
}

describe.skipIf(!isRoot)("switch data plane with crafted frames", () => {
  let world: World | undefined;
  let sw: Switch | undefined;
  const pods = new Map<string, Pod>();
  const probes: Probe[] = [];
  let peer: Probe;
  let stranger: Probe;
  let wire: Probe;

  const S = (): Switch => sw!;
  const pod = (short: string): Pod => {
    const p = pods.get(short);
    if (!p) throw new Error(`no pod ${short}`);
    return p;
  };

  beforeAll(async () => {
    world = await World.create();
    const w = world;
    await w.addNamespace("node");
    await w.addNamespace("peer");
    await w.addVeth(
      { ns: "node", name: "u0", addr: `${NODE_IP}/24` },
      { ns: "peer", name: "u0", addr: `${PEER_IP}/24` },
    );
    // Outer checksums finished before the veth, so the peer's capture sees them whole.
    await w.exec("node", "ethtool", ["-K", "u0", "tx", "off"]);
    await w.ip("peer", ["addr", "add", `${STRANGER_IP}/24`, "dev", "u0"]);
    await w.ip("peer", ["addr", "add", `${UNROUTED_VTEP}/32`, "dev", "lo"]);
    sw = new Switch({ underlayIp: NODE_IP, netns: w.nsPath("node") });
    for (const spec of POD_SPECS) {
      await w.addNamespace(spec.short);
      // No IPv6: the pod's kernel would send router solicitations and MLD reports of its own.
      await w.exec(spec.short, "sysctl", [
        "-qw",
        "net.ipv6.conf.all.disable_ipv6=1",
        "net.ipv6.conf.default.disable_ipv6=1",
      ]);
      const path = w.nsPath(spec.short);
      const mac = podMac(spec.ip);
      const id = S().addPort({
        name: "eth0",
        netns: path,
        vni: spec.vni,
        mac,
        ipv4: spec.ip,
        ...(spec.mtu !== undefined ? { mtu: spec.mtu } : {}),
        ...(spec.rateBitsPerSec !== undefined ? { rateBitsPerSec: spec.rateBitsPerSec } : {}),
        ...(spec.kind !== undefined ? { kind: spec.kind } : {}),
      });
      const probe = Probe.frames(path, "eth0");
      probes.push(probe);
      pods.set(spec.short, { short: spec.short, path, mac, ip: spec.ip, vni: spec.vni, id, probe });
    }
    await w.ip("pd", ["link", "set", "eth0", "down"]);
    await w.ip("pm", ["link", "set", "eth0", "mtu", "1400"]);
    await w.ip("pk", ["addr", "add", "10.60.0.11/16", "dev", "eth0"]);
    S().setPeers([{ ip: PEER_IP }]);
    S().setGlobalVnis([GLOBAL]);
    S().updateRemotes([R1, R2, R_UNROUTED].map(toRemoteEndpoint));
    peer = Probe.datagrams(w.nsPath("peer"), PEER_IP, VXLAN_PORT);
    stranger = Probe.datagrams(w.nsPath("peer"), STRANGER_IP, VXLAN_PORT);
    wire = Probe.frames(w.nsPath("peer"), "u0");
    probes.push(peer, stranger, wire);
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

  // ---- helpers ---------------------------------------------------------------------------------

  type Counts = Record<string, number>;

  function dropsNow(): Counts {
    return { ...S().counters().drops };
  }

  function dropDelta(before: Counts): Counts {
    const out: Counts = {};
    for (const [k, v] of Object.entries(S().counters().drops)) {
      const d = v - (before[k] ?? 0);
      if (d !== 0) out[k] = d;
    }
    return out;
  }

  /** Waits until the drop counters moved by `expected` (and nothing else), then asserts it. */
  async function expectDrops(before: Counts, expected: Counts): Promise<void> {
    const end = Date.now() + ARRIVE_MS;
    let delta = dropDelta(before);
    while (JSON.stringify(sorted(delta)) !== JSON.stringify(sorted(expected)) && Date.now() < end) {
      await new Promise((r) => setTimeout(r, 20));
      delta = dropDelta(before);
    }
    expect(delta).toEqual(expected);
  }

  /** Waits until `read()` equals `expected` (counters move just after the packet does), then asserts it. */
  async function eventually<T>(read: () => T, expected: T): Promise<void> {
    const end = Date.now() + ARRIVE_MS;
    let now = read();
    while (JSON.stringify(now) !== JSON.stringify(expected) && Date.now() < end) {
      await new Promise((r) => setTimeout(r, 20));
      now = read();
    }
    expect(now).toEqual(expected);
  }

  function sorted(c: Counts): Counts {
    return Object.fromEntries(Object.entries(c).sort(([a], [b]) => a.localeCompare(b)));
  }

  function portCounters(id: number): {
    inPackets: number;
    outPackets: number;
    inBytes: number;
    outBytes: number;
  } {
    const p = S()
      .counters()
      .ports.find((x) => x.id === id);
    if (!p) throw new Error(`no counters for port ${id}`);
    return p;
  }

  /** Nothing reaches `first` within QUIET_MS, and nothing reached any other probe either. */
  function expectNothingDelivered(first: Probe = peer): void {
    expect(first.receive(QUIET_MS)?.data.toString("hex"), "delivered").toBeUndefined();
    for (const p of probes) {
      if (p === wire) continue; // the underlay carries the node's own ARP for the peer
      expect(p.receive(0)?.data.toString("hex"), "delivered elsewhere").toBeUndefined();
    }
  }

  function receive(p: Probe, match: (b: Buffer) => boolean = () => true): Buffer {
    const r = p.receiveMatching((x) => match(x.data), ARRIVE_MS);
    expect(r, "expected a frame or datagram").not.toBeNull();
    return r!.data;
  }

  function fromPeer(vni: number, frame: Buffer, flags = VXLAN_FLAG_I): void {
    peer.send(vxlan({ vni, frame, flags }), { ip: NODE_IP, port: VXLAN_PORT });
  }

  /** The next VXLAN datagram the fake peer receives, and who sent it. */
  function receiveVxlan(): { from: string | undefined; data: Buffer } {
    const r = peer.receive(ARRIVE_MS);
    expect(r, "expected a VXLAN datagram at the peer").not.toBeNull();
    return { from: r!.from, data: r!.data };
  }

  const payload = (text: string): Buffer => Buffer.from(text.padEnd(64, "."));

  // ---- switching on the node ---------------------------------------------------------------------

  describe("local switching", () => {
    it("delivers a frame byte-identical to a pod of the same VNI and counts it", async () => {
      const a = pod("pa");
      const b = pod("pb");
      const before = dropsNow();
      const aBefore = portCounters(a.id);
      const bBefore = portCounters(b.id);
      const frame = udpFrame(a, b, payload("a to b"));
      a.probe.send(frame);
      expect(receive(b.probe).equals(frame)).toBe(true);
      const tcp = tcpFrame(a, b, {
        srcPort: 33000,
        dstPort: 80,
        seq: 1,
        ack: 1,
        flags: TCP_ACK,
        payload: payload("tcp"),
      });
      a.probe.send(tcp);
      expect(receive(b.probe).equals(tcp)).toBe(true);
      await expectDrops(before, {});
      await eventually(() => portCounters(a.id).inPackets - aBefore.inPackets, 2);
      await eventually(() => portCounters(a.id).inBytes - aBefore.inBytes, frame.length + tcp.length);
      await eventually(() => portCounters(b.id).outPackets - bBefore.outPackets, 2);
      await eventually(() => portCounters(b.id).outBytes - bBefore.outBytes, frame.length + tcp.length);
    });

    it("never delivers across VNIs, either way (vni_mismatch)", async () => {
      const a = pod("pa");
      const c = pod("pc");
      const before = dropsNow();
      a.probe.send(udpFrame(a, c, payload("red to blue")));
      c.probe.send(udpFrame(c, a, payload("blue to red")));
      expectNothingDelivered(c.probe);
      await expectDrops(before, { vni_mismatch: 2 });
    });

    it("lets a global VNI reach every VNI and be reached by it", async () => {
      const g = pod("pg");
      for (const other of [pod("pa"), pod("pc")]) {
        const before = dropsNow();
        const there = udpFrame(other, g, payload(`${other.short} to global`));
        other.probe.send(there);
        expect(receive(g.probe).equals(there)).toBe(true);
        const back = udpFrame(g, other, payload(`global to ${other.short}`));
        g.probe.send(back);
        expect(receive(other.probe).equals(back)).toBe(true);
        await expectDrops(before, {});
      }
    });

    it("follows setPortVni: delivery starts when VNIs match and stops when they differ again", async () => {
      const e = pod("pe");
      const f = pod("pf");
      const ef = (step: number): Buffer => udpFrame(e, f, payload(`e to f, step ${step}`));
      const fe = (step: number): Buffer => udpFrame(f, e, payload(`f to e, step ${step}`));
      try {
        let before = dropsNow();
        e.probe.send(ef(1));
        expectNothingDelivered(f.probe);
        await expectDrops(before, { vni_mismatch: 1 });

        S().setPortVni(f.id, RED);
        before = dropsNow();
        e.probe.send(ef(2));
        expect(receive(f.probe).equals(ef(2))).toBe(true);
        f.probe.send(fe(2));
        expect(receive(e.probe).equals(fe(2))).toBe(true);
        await expectDrops(before, {});
        expect(
          S()
            .counters()
            .ports.find((p) => p.id === f.id)?.vni,
        ).toBe(RED);

        S().setPortVni(f.id, BLUE);
        before = dropsNow();
        e.probe.send(ef(3));
        f.probe.send(fe(3));
        expectNothingDelivered(f.probe);
        await expectDrops(before, { vni_mismatch: 2 });
      } finally {
        S().setPortVni(f.id, BLUE);
      }
    });

    it("applies a VNI change to every frame sent after setPortVni returns", async () => {
      const e = pod("pe");
      const f = pod("pf");
      const b = pod("pb");
      const rounds = 100;
      let leaked = 0;
      try {
        for (let i = 0; i < rounds; i++) {
          const taken = portCounters(e.id).inPackets;
          S().setPortVni(f.id, RED);
          // Keep the packet thread busy with e's queue while the VNI changes.
          for (let k = 0; k < 16; k++) e.probe.send(udpFrame(e, b, payload(`busy ${i}.${k}`)));
          S().setPortVni(f.id, BLUE);
          e.probe.send(udpFrame(e, f, payload(`after the change ${i}`)));
          // The next round changes the VNI back: only once the switch has taken this frame in.
          await eventually(() => portCounters(e.id).inPackets - taken, 17);
        }
        for (let r = f.probe.receive(QUIET_MS); r !== null; r = f.probe.receive(QUIET_MS)) leaked++;
        expect(leaked, "frames delivered across VNIs after setPortVni returned").toBe(0);
      } finally {
        S().setPortVni(f.id, BLUE);
        for (const p of probes) while (p.receive(0) !== null);
      }
    });

    it("stops a global VNI's reach when it is no longer global", async () => {
      const a = pod("pa");
      const g = pod("pg");
      try {
        S().setGlobalVnis([]);
        const before = dropsNow();
        a.probe.send(udpFrame(a, g, payload("to former global")));
        g.probe.send(udpFrame(g, a, payload("from former global")));
        expectNothingDelivered(g.probe);
        await expectDrops(before, { vni_mismatch: 2 });
      } finally {
        S().setGlobalVnis([GLOBAL]);
      }
    });
  });

  // ---- ARP ---------------------------------------------------------------------------------------

  describe("ARP answered by the switch", () => {
    function expectArpReply(reply: Buffer, asker: Endpoint, owner: Endpoint, askerIp = asker.ip): void {
      const eth = parseEthernet(reply);
      expect(eth).toMatchObject({ dst: asker.mac, src: owner.mac, type: ETHERTYPE_ARP });
      expect(eth.payload.length).toBe(28);
      expect(parseArp(eth.payload)).toEqual({
        htype: 1,
        ptype: ETHERTYPE_IPV4,
        hlen: 6,
        plen: 4,
        op: ARP_REPLY,
        sha: owner.mac,
        spa: owner.ip,
        tha: asker.mac,
        tpa: askerIp,
      });
    }

    const isArp = (b: Buffer): boolean => b.length >= 14 && b.readUInt16BE(12) === ETHERTYPE_ARP;

    it("answers a request for a local pod of the same VNI", async () => {
      const a = pod("pa");
      const b = pod("pb");
      const before = dropsNow();
      a.probe.send(arpRequestFrame(a.mac, a.ip, b.ip));
      expectArpReply(receive(a.probe, isArp), a, b);
      expect(b.probe.receive(QUIET_MS)).toBeNull(); // answered on the node, never flooded
      await expectDrops(before, {});
    });

    it("answers a request sent unicast, and an address probe from 0.0.0.0 (RFC 5227)", async () => {
      const a = pod("pa");
      const b = pod("pb");
      const before = dropsNow();
      a.probe.send(arpRequestFrame(a.mac, a.ip, b.ip, b.mac));
      expectArpReply(receive(a.probe, isArp), a, b);
      a.probe.send(arpRequestFrame(a.mac, "0.0.0.0", b.ip));
      expectArpReply(receive(a.probe, isArp), a, b, "0.0.0.0");
      await expectDrops(before, {});
    });

    it("answers for a remote endpoint of the same VNI and for a global-VNI pod", async () => {
      const a = pod("pa");
      const before = dropsNow();
      a.probe.send(arpRequestFrame(a.mac, a.ip, R1.ip));
      expectArpReply(receive(a.probe, isArp), a, R1);
      a.probe.send(arpRequestFrame(a.mac, a.ip, pod("pg").ip));
      expectArpReply(receive(a.probe, isArp), a, pod("pg"));
      expectNothingDelivered(a.probe);
      await expectDrops(before, {});
    });

    it("answers a global-VNI pod asking for any VNI's address", async () => {
      const g = pod("pg");
      const before = dropsNow();
      g.probe.send(arpRequestFrame(g.mac, g.ip, pod("pc").ip));
      expectArpReply(receive(g.probe, isArp), g, pod("pc"));
      g.probe.send(arpRequestFrame(g.mac, g.ip, R2.ip));
      expectArpReply(receive(g.probe, isArp), g, R2);
      await expectDrops(before, {});
    });

    it("does not answer for an unknown address, another VNI's pod or remote, or the asker itself", async () => {
      const a = pod("pa");
      const before = dropsNow();
      a.probe.send(arpRequestFrame(a.mac, a.ip, UNKNOWN.ip));
      a.probe.send(arpRequestFrame(a.mac, a.ip, pod("pc").ip));
      a.probe.send(arpRequestFrame(a.mac, a.ip, R2.ip));
      a.probe.send(arpRequestFrame(a.mac, "0.0.0.0", a.ip));
      expectNothingDelivered(a.probe);
      await expectDrops(before, { arp_unanswered: 4 });
    });

    it("drops ARP whose sender MAC or IPv4 is not the port's own (arp_spoofed)", async () => {
      const a = pod("pa");
      const b = pod("pb");
      const before = dropsNow();
      const wrongSha = ethernet({
        dst: BROADCAST_MAC,
        src: a.mac,
        type: ETHERTYPE_ARP,
        payload: arp({ op: ARP_REQUEST, sha: b.mac, spa: a.ip, tha: ZERO_MAC, tpa: R1.ip }),
      });
      a.probe.send(wrongSha);
      a.probe.send(arpRequestFrame(a.mac, b.ip, R1.ip));
      expectNothingDelivered(a.probe);
      await expectDrops(before, { arp_spoofed: 2 });
    });

    it("drops ARP from a frame whose Ethernet source is not the port's (spoofed_mac)", async () => {
      const a = pod("pa");
      const b = pod("pb");
      const before = dropsNow();
      a.probe.send(arpRequestFrame(b.mac, b.ip, R1.ip));
      expectNothingDelivered(a.probe);
      await expectDrops(before, { spoofed_mac: 1 });
    });

    it("ignores ARP replies and announcements from pods (arp_ignored)", async () => {
      const a = pod("pa");
      const b = pod("pb");
      const before = dropsNow();
      a.probe.send(
        ethernet({
          dst: b.mac,
          src: a.mac,
          type: ETHERTYPE_ARP,
          payload: arp({ op: ARP_REPLY, sha: a.mac, spa: a.ip, tha: b.mac, tpa: b.ip }),
        }),
      );
      a.probe.send(arpRequestFrame(a.mac, a.ip, a.ip)); // gratuitous announcement
      expectNothingDelivered(b.probe);
      await expectDrops(before, { arp_ignored: 2 });
    });

    it("drops ARP that is truncated or not IPv4 over Ethernet (arp_malformed)", async () => {
      const a = pod("pa");
      const b = pod("pb");
      const before = dropsNow();
      a.probe.send(arpRequestFrame(a.mac, a.ip, b.ip).subarray(0, 14 + 20));
      const bad = (o: { htype?: number; ptype?: number; hlen?: number; plen?: number }): Buffer =>
        ethernet({
          dst: BROADCAST_MAC,
          src: a.mac,
          type: ETHERTYPE_ARP,
          payload: arp({ op: ARP_REQUEST, sha: a.mac, spa: a.ip, tha: ZERO_MAC, tpa: b.ip, ...o }),
        });
      a.probe.send(bad({ htype: 6 }));
      a.probe.send(bad({ ptype: ETHERTYPE_IPV6 }));
      a.probe.send(bad({ hlen: 8 }));
      a.probe.send(bad({ plen: 16 }));
      expectNothingDelivered(a.probe);
      await expectDrops(before, { arp_malformed: 5 });
    });

    it("answers an ARP request from a peer VTEP for a local pod back to that peer as VXLAN", async () => {
      const a = pod("pa");
      const before = dropsNow();
      fromPeer(RED, arpRequestFrame(R1.mac, R1.ip, a.ip));
      const got = receiveVxlan();
      expect(got.from).toBe(NODE_IP);
      const vx = parseVxlan(got.data);
      expect(vx.flags).toBe(VXLAN_FLAG_I);
      expect(vx.vni).toBe(RED);
      expect([...vx.reserved1, vx.reserved2]).toEqual([0, 0, 0, 0]);
      expectArpReply(vx.frame, R1, a);
      expect(a.probe.receive(QUIET_MS)).toBeNull(); // the pod never sees the request
      await expectDrops(before, {});
    });

    it("drops ARP from a peer that it cannot or need not answer", async () => {
      const a = pod("pa");
      const c = pod("pc");
      const before = dropsNow();
      fromPeer(RED, arpRequestFrame(R1.mac, R1.ip, c.ip)); // another VNI's pod
      fromPeer(RED, arpRequestFrame(R1.mac, R1.ip, UNKNOWN.ip));
      fromPeer(
        RED,
        ethernet({
          dst: a.mac,
          src: R1.mac,
          type: ETHERTYPE_ARP,
          payload: arp({ op: ARP_REPLY, sha: R1.mac, spa: R1.ip, tha: a.mac, tpa: a.ip }),
        }),
      );
      fromPeer(RED, arpRequestFrame(R1.mac, R1.ip, a.ip).subarray(0, 14 + 27));
      fromPeer(
        RED,
        ethernet({
          dst: BROADCAST_MAC,
          src: R1.mac,
          type: ETHERTYPE_ARP,
          payload: arp({ op: ARP_REQUEST, sha: R1.mac, spa: R1.ip, tha: ZERO_MAC, tpa: a.ip, hlen: 8 }),
        }),
      );
      expectNothingDelivered(peer);
      await expectDrops(before, { arp_unanswered: 2, arp_ignored: 1, arp_malformed: 2 });
    });
  });

  // ---- encapsulation -----------------------------------------------------------------------------

  describe("encapsulation to a remote endpoint", () => {
    function isOuterVxlan(b: Buffer): boolean {
      if (b.length < 14 + 20 + 8 || b.readUInt16BE(12) !== ETHERTYPE_IPV4) return false;
      const ip = parseIpv4(b.subarray(14));
      return ip.protocol === IPPROTO_UDP && parseUdp(ip.payload).dstPort === VXLAN_PORT;
    }

    it("sends VXLAN: I flag, the sender's VNI, reserved bytes zero, the inner frame byte-identical", async () => {
      const a = pod("pa");
      const before = dropsNow();
      const frame = udpFrame(a, R1, payload("a to r1"));
      a.probe.send(frame);
      const got = receiveVxlan();
      expect(got.from).toBe(NODE_IP);
      const vx = parseVxlan(got.data);
      expect(vx.flags).toBe(0x08);
      expect(vx.vni).toBe(RED);
      expect([...vx.reserved1, vx.reserved2]).toEqual([0, 0, 0, 0]);
      expect(vx.frame.equals(frame)).toBe(true);
      await expectDrops(before, {});
    });

    it("sends to UDP port 4789 with a valid outer checksum and a source port fixed per inner flow", () => {
      const a = pod("pa");
      const frame = udpFrame(a, R1, payload("outer headers"), { src: 41000, dst: 53 });
      const outer: Buffer[] = [];
      for (let i = 0; i < 3; i++) {
        a.probe.send(frame);
        outer.push(receive(wire, isOuterVxlan));
      }
      const sports = new Set<number>();
      for (const o of outer) {
        const eth = parseEthernet(o);
        const ip = parseIpv4(eth.payload);
        expect(ip).toMatchObject({
          version: 4,
          src: NODE_IP,
          dst: PEER_IP,
          protocol: IPPROTO_UDP,
          headerChecksumOk: true,
        });
        const u = parseUdp(ip.payload);
        expect(u.dstPort).toBe(4789);
        expect(u.length).toBe(8 + 8 + frame.length);
        expect(u.checksum).not.toBe(0);
        expect(l4ChecksumOk(ip.src, ip.dst, IPPROTO_UDP, ip.payload)).toBe(true);
        expect(parseVxlan(u.payload).frame.equals(frame)).toBe(true);
        sports.add(u.srcPort);
      }
      expect(sports.size).toBe(1);
      // The datagram probe saw them too.
      for (let i = 0; i < 3; i++) expect(peer.receive(ARRIVE_MS)).not.toBeNull();
    });

    it("carries a global-VNI sender's own VNI on the wire", async () => {
      const g = pod("pg");
      const before = dropsNow();
      const frame = udpFrame(g, R1, payload("global to r1"));
      g.probe.send(frame);
      const vx = parseVxlan(receiveVxlan().data);
      expect(vx.vni).toBe(GLOBAL);
      expect(vx.frame.equals(frame)).toBe(true);
      await expectDrops(before, {});
    });

    it("follows updateRemotes: a moved endpoint goes to its new VTEP, a removed one is unknown", async () => {
      const a = pod("pa");
      const frame = udpFrame(a, R1, payload("follow the endpoint"));
      try {
        S().updateRemotes([toRemoteEndpoint({ ...R1, vtep: UNROUTED_VTEP })]);
        let before = dropsNow();
        a.probe.send(frame);
        expectNothingDelivered(peer);
        await expectDrops(before, { udp_send: 1 });

        S().updateRemotes([toRemoteEndpoint(R1)]);
        before = dropsNow();
        a.probe.send(frame);
        expect(parseVxlan(receiveVxlan().data).frame.equals(frame)).toBe(true);
        await expectDrops(before, {});

        S().updateRemotes([], [R1.mac]);
        before = dropsNow();
        a.probe.send(frame);
        a.probe.send(arpRequestFrame(a.mac, a.ip, R1.ip));
        expectNothingDelivered(peer);
        await expectDrops(before, { unknown_dest: 1, arp_unanswered: 1 });
      } finally {
        S().updateRemotes([toRemoteEndpoint(R1)]);
      }
    });

    it("never sends to a remote endpoint of another VNI (vni_mismatch)", async () => {
      const a = pod("pa");
      const before = dropsNow();
      a.probe.send(udpFrame(a, R2, payload("red to remote blue")));
      expectNothingDelivered(peer);
      await expectDrops(before, { vni_mismatch: 1 });
    });

    it("finishes inner UDP and TCP checksums the pod's kernel left partial", async () => {
      const k = pod("pk");
      const w = world!;
      // A UDP socket in the pod: its kernel resolves R1 through the switch's ARP answer and hands
      // the datagram to the TAP with only the pseudo-header summed (checksum offload).
      const features = await w.exec("pk", "ethtool", ["-k", "eth0"]);
      expect(features.stdout).toMatch(/^tx-checksumming: on/m);
      const sock = Probe.datagrams(k.path, k.ip, 45000);
      try {
        sock.send(payload("kernel udp"), { ip: R1.ip, port: 9 });
      } finally {
        sock.close();
      }
      const isData =
        (proto: number) =>
        (d: Buffer): boolean => {
          const inner = parseEthernet(parseVxlan(d).frame);
          return inner.type === ETHERTYPE_IPV4 && parseIpv4(inner.payload).protocol === proto;
        };
      const u = parseVxlan(receive(peer, isData(IPPROTO_UDP)));
      expect(u.vni).toBe(RED);
      const uEth = parseEthernet(u.frame);
      expect(uEth).toMatchObject({ src: k.mac, dst: R1.mac });
      const uIp = parseIpv4(uEth.payload);
      expect(uIp).toMatchObject({ src: k.ip, dst: R1.ip, headerChecksumOk: true });
      const uUdp = parseUdp(uIp.payload);
      expect(uUdp).toMatchObject({ srcPort: 45000, dstPort: 9 });
      expect(uUdp.payload.equals(payload("kernel udp"))).toBe(true);
      expect(uUdp.checksum).not.toBe(0);
      expect(l4ChecksumOk(uIp.src, uIp.dst, IPPROTO_UDP, uIp.payload)).toBe(true);

      // A TCP connection attempt from the pod: the SYN's checksum is finished the same way.
      const connect = w.exec("pk", "timeout", ["2", "bash", "-c", `exec 3<>/dev/tcp/${R1.ip}/80`], {
        allowFailure: true,
        timeoutMs: 5000,
      });
      try {
        const t = parseVxlan(receive(peer, isData(IPPROTO_TCP)));
        const tIp = parseIpv4(parseEthernet(t.frame).payload);
        expect(tIp).toMatchObject({ src: k.ip, dst: R1.ip, headerChecksumOk: true });
        const seg = parseTcp(tIp.payload);
        expect(seg.dstPort).toBe(80);
        expect(seg.flags & TCP_SYN).toBe(TCP_SYN);
        expect(l4ChecksumOk(tIp.src, tIp.dst, IPPROTO_TCP, tIp.payload)).toBe(true);
      } finally {
        await connect;
      }
    });
  });

  // ---- decapsulation -----------------------------------------------------------------------------

  describe("decapsulation from a peer VTEP", () => {
    it("delivers the inner frame byte-identical to the local pod and counts it", async () => {
      const a = pod("pa");
      const before = dropsNow();
      const aBefore = portCounters(a.id);
      const frame = udpFrame(R1, a, payload("r1 to a"));
      fromPeer(RED, frame);
      expect(receive(a.probe).equals(frame)).toBe(true);
      const seg = tcpFrame(R1, a, {
        srcPort: 80,
        dstPort: 33000,
        seq: 7,
        ack: 9,
        flags: TCP_ACK,
        payload: payload("seg"),
      });
      fromPeer(RED, seg);
      expect(receive(a.probe).equals(seg)).toBe(true);
      await expectDrops(before, {});
      await eventually(() => portCounters(a.id).outPackets - aBefore.outPackets, 2);
      await eventually(() => portCounters(a.id).outBytes - aBefore.outBytes, frame.length + seg.length);
    });

    function segments(from: Endpoint, to: Endpoint, count: number, size: number): Buffer[] {
      const out: Buffer[] = [];
      for (let i = 0; i < count; i++) {
        out.push(
          tcpFrame(from, to, {
            srcPort: 5201,
            dstPort: 40100,
            seq: 1000 + i * size,
            ack: 1,
            flags: TCP_ACK,
            window: 500,
            payload: Buffer.alloc(size, 0x41 + i),
          }),
        );
      }
      return out;
    }

    it("delivers consecutive TCP segments from a checksummed peer as the same byte stream", async () => {
      const a = pod("pa");
      const before = dropsNow();
      const aBefore = portCounters(a.id);
      const size = 1200;
      const segs = segments(R1, a, 4, size);
      for (const f of segs) fromPeer(RED, f);
      // The switch may merge them into one super-frame for the pod's kernel: compare the stream.
      let stream = Buffer.alloc(0);
      let seq: number | undefined;
      while (stream.length < segs.length * size) {
        const eth = parseEthernet(receive(a.probe));
        expect(eth).toMatchObject({ src: R1.mac, dst: a.mac, type: ETHERTYPE_IPV4 });
        const ip = parseIpv4(eth.payload);
        expect(ip).toMatchObject({ src: R1.ip, dst: a.ip, protocol: IPPROTO_TCP, headerChecksumOk: true });
        expect(ip.totalLength).toBe(eth.payload.length);
        const t = parseTcp(ip.payload);
        expect(t.seq).toBe(seq ?? 1000);
        seq = t.seq + t.payload.length;
        stream = Buffer.concat([stream, t.payload]);
      }
      expect(stream.equals(Buffer.concat(segs.map((f) => f.subarray(14 + 20 + 20))))).toBe(true);
      await expectDrops(before, {});
      await eventually(() => portCounters(a.id).outPackets - aBefore.outPackets, segs.length);
    });

    it("delivers frames from a peer that is not checksummed one by one, unchanged", async () => {
      const a = pod("pa");
      try {
        S().setPeers([{ ip: PEER_IP, checksummed: false }]);
        const before = dropsNow();
        const segs = segments(R1, a, 4, 1200);
        for (const f of segs) fromPeer(RED, f);
        for (const f of segs) expect(receive(a.probe).equals(f)).toBe(true);
        await expectDrops(before, {});
      } finally {
        S().setPeers([{ ip: PEER_IP }]);
      }
    });

    it("follows setPeers: a VTEP no longer a peer is refused", async () => {
      const a = pod("pa");
      try {
        S().setPeers([{ ip: STRANGER_IP }]);
        const before = dropsNow();
        fromPeer(RED, udpFrame(R1, a, payload("former peer")));
        expectNothingDelivered(a.probe);
        await expectDrops(before, { vxlan_unknown_peer: 1 });
      } finally {
        S().setPeers([{ ip: PEER_IP }]);
      }
    });

    it("ignores reserved VXLAN flag bits when the I flag is set", async () => {
      const a = pod("pa");
      const before = dropsNow();
      const frame = udpFrame(R1, a, payload("reserved bits"));
      fromPeer(RED, frame, 0xff);
      expect(receive(a.probe).equals(frame)).toBe(true);
      await expectDrops(before, {});
    });

    it("delivers from a global VNI to any pod, and from any VNI to a global-VNI pod", async () => {
      const a = pod("pa");
      const g = pod("pg");
      const before = dropsNow();
      const toA = udpFrame(R1, a, payload("global sender"));
      fromPeer(GLOBAL, toA);
      expect(receive(a.probe).equals(toA)).toBe(true);
      const toG = udpFrame(R2, g, payload("blue sender"));
      fromPeer(BLUE, toG);
      expect(receive(g.probe).equals(toG)).toBe(true);
      await expectDrops(before, {});
    });

    it("drops VXLAN from an address that is not a peer VTEP (vxlan_unknown_peer)", async () => {
      const a = pod("pa");
      const before = dropsNow();
      stranger.send(vxlan({ vni: RED, frame: udpFrame(R1, a, payload("stranger")) }), {
        ip: NODE_IP,
        port: VXLAN_PORT,
      });
      expectNothingDelivered(a.probe);
      await expectDrops(before, { vxlan_unknown_peer: 1 });
    });

    it("drops VXLAN without the I flag (vxlan_bad_flags)", async () => {
      const a = pod("pa");
      const before = dropsNow();
      fromPeer(RED, udpFrame(R1, a, payload("no I flag")), 0x00);
      fromPeer(RED, udpFrame(R1, a, payload("other bits only")), 0xf7);
      expectNothingDelivered(a.probe);
      await expectDrops(before, { vxlan_bad_flags: 2 });
    });

    it("drops datagrams too short for VXLAN and an Ethernet header (vxlan_short)", async () => {
      const a = pod("pa");
      const before = dropsNow();
      const full = vxlan({ vni: RED, frame: udpFrame(R1, a, payload("short")) });
      for (const len of [0, 7, 8, 8 + 13])
        peer.send(full.subarray(0, len), { ip: NODE_IP, port: VXLAN_PORT });
      expectNothingDelivered(a.probe);
      await expectDrops(before, { vxlan_short: 4 });
    });

    it("drops VXLAN for a VNI with no local port (vxlan_unknown_vni)", async () => {
      const a = pod("pa");
      const before = dropsNow();
      fromPeer(NO_PORT_VNI, udpFrame(R1, a, payload("no such vni")));
      fromPeer(NO_PORT_VNI, arpRequestFrame(R1.mac, R1.ip, a.ip));
      expectNothingDelivered(a.probe);
      await expectDrops(before, { vxlan_unknown_vni: 2 });
    });

    it("drops a frame whose VNI is not the destination's (vni_mismatch)", async () => {
      const a = pod("pa");
      const before = dropsNow();
      fromPeer(BLUE, udpFrame(R2, a, payload("blue to red")));
      expectNothingDelivered(a.probe);
      await expectDrops(before, { vni_mismatch: 1 });
    });

    it("drops a frame for an unknown MAC (unknown_dest)", async () => {
      const before = dropsNow();
      fromPeer(RED, udpFrame(R1, UNKNOWN, payload("unknown")));
      expectNothingDelivered(pod("pa").probe);
      await expectDrops(before, { unknown_dest: 1 });
    });

    it("drops a frame for a remote endpoint back toward the underlay (hairpin)", async () => {
      const before = dropsNow();
      fromPeer(RED, udpFrame(pod("pa"), R1, payload("back out")));
      expectNothingDelivered(peer);
      await expectDrops(before, { hairpin: 1 });
    });

    it("drops broadcast and multicast that is not ARP (flood)", async () => {
      const a = pod("pa");
      const before = dropsNow();
      fromPeer(RED, udpFrame(R1, { mac: BROADCAST_MAC, ip: "10.60.255.255" }, payload("bcast")));
      fromPeer(RED, udpFrame(R1, { mac: "01:00:5e:00:00:fb", ip: "224.0.0.251" }, payload("mcast")));
      expectNothingDelivered(a.probe);
      await expectDrops(before, { flood: 2 });
    });

    it("drops a frame larger than the destination port's MTU (oversize)", async () => {
      const m = pod("pm");
      const before = dropsNow();
      const fits = udpFrame(R1, m, Buffer.alloc(1000 - 20 - 8, 1));
      fromPeer(RED, fits);
      expect(receive(m.probe).equals(fits)).toBe(true);
      await expectDrops(before, {});
      fromPeer(RED, udpFrame(R1, m, Buffer.alloc(1001 - 20 - 8, 2)));
      expectNothingDelivered(m.probe);
      await expectDrops(before, { oversize: 1 });
    });

    it("counts a write to a pod whose interface is down (tap_write)", async () => {
      const d = pod("pd");
      const before = dropsNow();
      fromPeer(RED, udpFrame(R1, d, payload("to a down pod")));
      expectNothingDelivered(pod("pa").probe);
      await expectDrops(before, { tap_write: 1 });
    });
  });

  // ---- drops of frames from pods -----------------------------------------------------------------

  describe("drops of frames a pod sends", () => {
    it("drops a frame whose source MAC is not the port's (spoofed_mac)", async () => {
      const a = pod("pa");
      const b = pod("pb");
      const before = dropsNow();
      a.probe.send(udpFrame({ mac: "0a:58:0a:3c:00:63", ip: a.ip }, b, payload("other mac")));
      a.probe.send(udpFrame({ mac: b.mac, ip: a.ip }, R1, payload("b's mac")));
      expectNothingDelivered(b.probe);
      await expectDrops(before, { spoofed_mac: 2 });
    });

    it("drops IPv4 whose source address is not the pod's (spoofed_ip)", async () => {
      const a = pod("pa");
      const b = pod("pb");
      const before = dropsNow();
      a.probe.send(udpFrame({ mac: a.mac, ip: b.ip }, b, payload("b's ip")));
      a.probe.send(udpFrame({ mac: a.mac, ip: "0.0.0.0" }, R1, payload("no ip")));
      expectNothingDelivered(b.probe);
      await expectDrops(before, { spoofed_ip: 2 });
    });

    it("drops malformed or truncated IPv4 headers (bad_ipv4)", async () => {
      const a = pod("pa");
      const b = pod("pb");
      const before = dropsNow();
      const good = udpFrame(a, b, payload("bad ipv4"));
      const withByte = (offset: number, value: number): Buffer => {
        const f = Buffer.from(good);
        f.writeUInt8(value, offset);
        return f;
      };
      a.probe.send(withByte(14, 0x65)); // version 6 under the IPv4 EtherType
      a.probe.send(withByte(14, 0x44)); // header length 16 bytes
      a.probe.send(withByte(14, 0x4f).subarray(0, 14 + 40)); // header length 60 in 40 bytes
      a.probe.send(good.subarray(0, 14 + 19)); // shorter than a header
      a.probe.send(good.subarray(0, 14)); // Ethernet header only
      expectNothingDelivered(b.probe);
      await expectDrops(before, { bad_ipv4: 5 });
    });

    it("drops EtherTypes other than IPv4 and ARP (not_ipv4)", async () => {
      const a = pod("pa");
      const b = pod("pb");
      const before = dropsNow();
      const ipv6Header = Buffer.alloc(40);
      ipv6Header.writeUInt8(0x60, 0);
      ipv6Header.writeUInt8(59, 6); // no next header
      a.probe.send(ethernet({ dst: b.mac, src: a.mac, type: ETHERTYPE_IPV6, payload: ipv6Header }));
      a.probe.send(ethernet({ dst: b.mac, src: a.mac, type: 0x88cc, payload: Buffer.alloc(46) }));
      const tagged = udpFrame(a, b, payload("802.1Q"));
      a.probe.send(
        Buffer.concat([tagged.subarray(0, 12), Buffer.from([0x81, 0x00, 0x00, 0x05]), tagged.subarray(12)]),
      );
      expectNothingDelivered(b.probe);
      await expectDrops(before, { not_ipv4: 3 });
    });

    it("never floods broadcast or multicast other than ARP (flood)", async () => {
      const a = pod("pa");
      const before = dropsNow();
      a.probe.send(udpFrame(a, { mac: BROADCAST_MAC, ip: "10.60.255.255" }, payload("bcast")));
      a.probe.send(udpFrame(a, { mac: "01:00:5e:00:00:fb", ip: "224.0.0.251" }, payload("mcast")));
      const v6mcast = Buffer.alloc(40);
      v6mcast.writeUInt8(0x60, 0);
      a.probe.send(
        ethernet({ dst: "33:33:00:00:00:01", src: a.mac, type: ETHERTYPE_IPV6, payload: v6mcast }),
      );
      expectNothingDelivered(pod("pb").probe);
      await expectDrops(before, { flood: 3 });
    });

    it("drops unicast to a MAC the switch does not know (unknown_dest)", async () => {
      const a = pod("pa");
      const before = dropsNow();
      a.probe.send(udpFrame(a, UNKNOWN, payload("unknown")));
      a.probe.send(udpFrame(a, { mac: UNKNOWN.mac, ip: pod("pb").ip }, payload("b's ip, unknown mac")));
      expectNothingDelivered(pod("pb").probe);
      await expectDrops(before, { unknown_dest: 2 });
    });

    it("drops a frame addressed back to the port it came from (hairpin)", async () => {
      const a = pod("pa");
      const before = dropsNow();
      a.probe.send(udpFrame(a, a, payload("to myself")));
      expectNothingDelivered(a.probe);
      await expectDrops(before, { hairpin: 1 });
    });

    it("shapes what a pod sends over its bandwidth limit: holds it back, drops nothing", async () => {
      const l = pod("pl");
      const b = pod("pb");
      const before = dropsNow();
      const lBefore = portCounters(l.id);
      const sent = 120;
      const frames: Buffer[] = [];
      for (let i = 0; i < sent; i++) frames.push(udpFrame(l, b, Buffer.alloc(1400, i)));
      for (const f of frames) l.probe.send(f);
      const got: Buffer[] = [];
      for (let r = b.probe.receive(QUIET_MS); r !== null; r = b.probe.receive(QUIET_MS)) got.push(r.data);
      // 8 bit/s refills nothing worth a frame during the test: what passes is the initial burst.
      expect(got.length).toBeGreaterThan(0);
      expect(got.length).toBeLessThan(sent);
      got.forEach((g, i) => expect(g.equals(frames[i]!), `frame ${i}`).toBe(true));
      await eventually(() => portCounters(l.id).inPackets - lBefore.inPackets, got.length);
      await expectDrops(before, {});

      // Lifting the limit releases what was held back, in order.
      S().setPortRate(l.id, 0);
      try {
        for (let i = got.length; i < sent; i++) {
          const r = b.probe.receive(ARRIVE_MS);
          expect(r?.data.equals(frames[i]!), `held frame ${i}`).toBe(true);
        }
        await eventually(() => portCounters(l.id).inPackets - lBefore.inPackets, sent);
        const frame = udpFrame(l, b, payload("unlimited"));
        l.probe.send(frame);
        expect(receive(b.probe).equals(frame)).toBe(true);
        await expectDrops(before, {});
      } finally {
        S().setPortRate(l.id, 8);
      }
    });

    it("drops a frame larger than the port's MTU (oversize), delivers one that fits", async () => {
      const m = pod("pm");
      const b = pod("pb");
      const before = dropsNow();
      const fits = udpFrame(m, b, Buffer.alloc(1000 - 20 - 8, 3)); // IP packet of exactly the MTU
      m.probe.send(fits);
      expect(receive(b.probe).equals(fits)).toBe(true);
      await expectDrops(before, {});
      m.probe.send(udpFrame(m, b, Buffer.alloc(1001 - 20 - 8, 4)));
      m.probe.send(udpFrame(m, R1, Buffer.alloc(1300, 5)));
      expectNothingDelivered(b.probe);
      await expectDrops(before, { oversize: 2 });
    });

    it("drops a frame larger than the receiving port's MTU on the node too (oversize)", async () => {
      const a = pod("pa");
      const m = pod("pm");
      const before = dropsNow();
      // Within the sender's MTU (1450) but above the receiver's (1000), as from a peer above.
      a.probe.send(udpFrame(a, m, Buffer.alloc(1200, 6)));
      expectNothingDelivered(m.probe);
      await expectDrops(before, { oversize: 1 });
    });

    it("counts a delivery to a pod whose interface is down (tap_write)", async () => {
      const a = pod("pa");
      const d = pod("pd");
      const before = dropsNow();
      a.probe.send(udpFrame(a, d, payload("to a down pod")));
      expectNothingDelivered(peer);
      await expectDrops(before, { tap_write: 1 });
    });

    it("counts a VXLAN datagram that cannot be sent (udp_send)", async () => {
      const a = pod("pa");
      const before = dropsNow();
      a.probe.send(udpFrame(a, R_UNROUTED, payload("no route to its vtep")));
      expectNothingDelivered(peer);
      await expectDrops(before, { udp_send: 1 });
    });

    it("delivers again once a pod's interface is back up", async () => {
      const a = pod("pa");
      const d = pod("pd");
      await world!.ip("pd", ["link", "set", "eth0", "up"]);
      try {
        const before = dropsNow();
        const ad = udpFrame(a, d, payload("a to d"));
        a.probe.send(ad);
        expect(receive(d.probe).equals(ad)).toBe(true);
        const da = udpFrame(d, a, payload("d to a"));
        d.probe.send(da);
        expect(receive(a.probe).equals(da)).toBe(true);
        await expectDrops(before, {});
      } finally {
        await world!.ip("pd", ["link", "set", "eth0", "down"]);
      }
    });

    it("cannot make a pod send a frame shorter than an Ethernet header", () => {
      const a = pod("pa");
      expect(() => a.probe.send(Buffer.alloc(13))).toThrow();
    });
  });

  // ---- host ports, the VNI field, removed ports ---------------------------------------------------

  describe("ports and VNIs", () => {
    it("lets a host port send from any IPv4 source, but only with its own MAC", async () => {
      const h = pod("ph");
      const a = pod("pa");
      const before = dropsNow();
      const routed = udpFrame({ mac: h.mac, ip: "192.168.7.7" }, a, payload("routed by the node"));
      h.probe.send(routed);
      expect(receive(a.probe).equals(routed)).toBe(true);
      h.probe.send(arpRequestFrame(h.mac, "192.168.7.7", a.ip));
      const reply = parseArp(parseEthernet(receive(h.probe)).payload);
      expect(reply).toMatchObject({ op: ARP_REPLY, sha: a.mac, spa: a.ip, tha: h.mac, tpa: "192.168.7.7" });
      await expectDrops(before, {});
      h.probe.send(udpFrame({ mac: "0a:58:0a:3c:00:64", ip: h.ip }, a, payload("not my mac")));
      expectNothingDelivered(a.probe);
      await expectDrops(before, { spoofed_mac: 1 });
    });

    it("carries all 24 bits of the VNI both ways", async () => {
      const e = pod("pe");
      const vni = 0xabcdef;
      const rv = remote("10.60.1.20", vni);
      try {
        S().setPortVni(e.id, vni);
        S().updateRemotes([toRemoteEndpoint(rv)]);
        const before = dropsNow();
        const out = udpFrame(e, rv, payload("wide vni out"));
        e.probe.send(out);
        const got = receiveVxlan().data;
        expect([...got.subarray(0, 8)]).toEqual([0x08, 0, 0, 0, 0xab, 0xcd, 0xef, 0]);
        expect(got.subarray(8).equals(out)).toBe(true);
        const back = udpFrame(rv, e, payload("wide vni back"));
        fromPeer(vni, back);
        expect(receive(e.probe).equals(back)).toBe(true);
        await expectDrops(before, {});
      } finally {
        S().setPortVni(e.id, RED);
        S().updateRemotes([], [rv.mac]);
      }
    });

    it("forgets a removed port: its MAC, its address and its VNI", async () => {
      const a = pod("pa");
      const w = world!;
      const vni = 555;
      const ip = "10.60.0.30";
      const mac = podMac(ip);
      await w.addNamespace("pr");
      await w.exec("pr", "sysctl", [
        "-qw",
        "net.ipv6.conf.all.disable_ipv6=1",
        "net.ipv6.conf.default.disable_ipv6=1",
      ]);
      const id = S().addPort({ name: "eth0", netns: w.nsPath("pr"), vni: RED, mac, ipv4: ip });
      const r: Endpoint = { mac, ip };
      const probe = Probe.frames(w.nsPath("pr"), "eth0");
      try {
        const frame = udpFrame(a, r, payload("before removal"));
        a.probe.send(frame);
        expect(receive(probe).equals(frame)).toBe(true);
        S().setPortVni(id, vni);
        fromPeer(vni, udpFrame(R1, r, payload("own vni")));
        expect(receive(probe).length).toBeGreaterThan(0);
      } finally {
        probe.close();
        await S().removePort(id);
      }
      const before = dropsNow();
      a.probe.send(udpFrame(a, r, payload("after removal")));
      a.probe.send(arpRequestFrame(a.mac, a.ip, ip));
      fromPeer(vni, udpFrame(R1, r, payload("vni gone")));
      expectNothingDelivered(a.probe);
      await expectDrops(before, { unknown_dest: 1, arp_unanswered: 1, vxlan_unknown_vni: 1 });
    });
  });

  describe("port removal under traffic", () => {
    it("deletes a removed port's device promptly while other ports are busy", async () => {
      const w = world!;
      const a = pod("pa");
      const b = pod("pb");
      await w.addNamespace("pq");
      const linksOf = async (): Promise<string[]> => {
        const r = await w.ip("pq", ["-j", "link", "show"]);
        return (JSON.parse(r.stdout) as { ifname: string }[]).map((l) => l.ifname).sort();
      };
      for (let i = 0; i < 20; i++) {
        const id = S().addPort({
          name: `t${i}`,
          netns: w.nsPath("pq"),
          vni: RED,
          mac: podMac(`10.60.2.${i + 2}`),
          ipv4: `10.60.2.${i + 2}`,
        });
        // The packet threads are reading a's queue while the port goes.
        for (let k = 0; k < 16; k++) a.probe.send(udpFrame(a, b, payload(`busy ${i}.${k}`)));
        await S().removePort(id, { destroy: true });
      }
      // No further calls on the switch: removal alone must close the devices.
      const end = Date.now() + ARRIVE_MS;
      let now = await linksOf();
      while (now.length > 1 && Date.now() < end) {
        await new Promise((r) => setTimeout(r, 50));
        now = await linksOf();
      }
      expect(now).toEqual(["lo"]);
    });
  });

  // ---- coverage of drop reasons ------------------------------------------------------------------

  it("knows every drop reason these tests cover, and no other", () => {
    const covered = [
      "spoofed_mac",
      "spoofed_ip",
      "bad_ipv4",
      "not_ipv4",
      "arp_malformed",
      "arp_spoofed",
      "arp_unanswered",
      "arp_ignored",
      "flood",
      "unknown_dest",
      "hairpin",
      "vni_mismatch",
      "oversize",
      "tap_write",
      "udp_send",
      "vxlan_short",
      "vxlan_bad_flags",
      "vxlan_unknown_peer",
      "vxlan_unknown_vni",
    ];
    const untriggerable = ["bad_vnet_hdr", "frame_short"];
    expect([...dropReasons()].sort()).toEqual([...covered, ...untriggerable].sort());
    expect(Object.keys(S().counters().drops).sort()).toEqual([...dropReasons()].sort());
  });
});

/**
 * The Switch's TypeScript surface: argument validation before native code, refusals the native
 * side makes (duplicate MAC or IPv4, unknown port ids, a closed switch), bulk remote updates, and
 * persistent ports that outlive their switch and are re-attached by the next one.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Probe } from "../../src/dataplane/probe.js";
import { Switch, type PortOptions, type RemoteEndpoint } from "../../src/dataplane/switch.js";
import { World, podMac } from "../kit/netns/index.js";
import { ARP_REPLY, ETHERTYPE_ARP, arpRequestFrame, parseArp, parseEthernet, udpFrame } from "./packets.js";
import { expectWithin } from "../helpers/timing.js";

const isRoot = process.getuid?.() === 0;
if (!isRoot) console.warn("api.unit.test.ts: skipped, network namespaces and TAP devices need root");

const NODE_IP = "10.252.0.1";
const VTEP = "10.252.0.2";
const RED = 100;

describe.skipIf(!isRoot)("Switch API", () => {
  let world: World | undefined;
  const switches: Switch[] = [];

  const w = (): World => world!;

  function newSwitch(): Switch {
    const sw = new Switch({ underlayIp: NODE_IP, netns: w().nsPath("node") });
    switches.push(sw);
    return sw;
  }

  async function podNamespace(short: string): Promise<string> {
    await w().addNamespace(short);
    await w().exec(short, "sysctl", [
      "-qw",
      "net.ipv6.conf.all.disable_ipv6=1",
      "net.ipv6.conf.default.disable_ipv6=1",
    ]);
    return w().nsPath(short);
  }

  /** Interface names in one of the world's namespaces. */
  async function links(short: string): Promise<string[]> {
    const r = await w().ip(short, ["-j", "link", "show"]);
    const parsed = JSON.parse(r.stdout) as { ifname: string }[];
    return parsed.map((l) => l.ifname).sort();
  }

  async function waitForLinks(short: string, expected: string[]): Promise<string[]> {
    const end = Date.now() + 2000;
    let now = await links(short);
    while (JSON.stringify(now) !== JSON.stringify(expected) && Date.now() < end) {
      await new Promise((r) => setTimeout(r, 20));
      now = await links(short);
    }
    return now;
  }

  beforeAll(async () => {
    world = await World.create();
    await world.addNamespace("node");
    await world.ip("node", ["addr", "add", `${NODE_IP}/24`, "dev", "lo"]);
  });

  afterAll(async () => {
    try {
      for (const sw of switches) sw.close();
    } finally {
      await world?.destroy();
    }
  });

  describe("validation before native code", () => {
    let sw: Switch;
    let path: string;
    const base = (): PortOptions => ({
      name: "eth0",
      netns: path,
      vni: RED,
      mac: "0a:58:0a:01:00:02",
      ipv4: "10.1.0.2",
    });

    beforeAll(async () => {
      path = await podNamespace("pv");
      sw = newSwitch();
    });

    it("rejects bad switch options", () => {
      const ns = w().nsPath("node");
      expect(() => new Switch({ underlayIp: "10.252.0", netns: ns })).toThrow(TypeError);
      expect(() => new Switch({ underlayIp: "::1", netns: ns })).toThrow(TypeError);
      expect(() => new Switch({ underlayIp: NODE_IP, netns: ns, port: 0 })).toThrow(RangeError);
      expect(() => new Switch({ underlayIp: NODE_IP, netns: ns, port: 65536 })).toThrow(RangeError);
      expect(() => new Switch({ underlayIp: NODE_IP, netns: ns, workers: 0 })).toThrow(RangeError);
      expect(() => new Switch({ underlayIp: NODE_IP, netns: ns, workers: 17 })).toThrow(RangeError);
      expect(() => new Switch({ underlayIp: NODE_IP, netns: ns, underlayMtu: 575 })).toThrow(RangeError);
      expect(() => new Switch({ underlayIp: NODE_IP, netns: ns, underlayMtu: 1500.5 })).toThrow(RangeError);
    });

    it("rejects bad port arguments with TypeError or RangeError, creating no device", async () => {
      const cases: [Partial<PortOptions> | Record<string, unknown>, typeof TypeError | typeof RangeError][] =
        [
          [{ mac: "0a:58:0a:01:00" }, TypeError],
          [{ mac: "0a-58-0a-01-00-02" }, TypeError],
          [{ mac: "zz:58:0a:01:00:02" }, TypeError],
          [{ mac: "01:00:5e:00:00:01" }, TypeError], // multicast
          [{ mac: "ff:ff:ff:ff:ff:ff" }, TypeError],
          [{ ipv4: "10.1.0.256" }, TypeError],
          [{ ipv4: "10.1.0" }, TypeError],
          [{ ipv4: "fd00::2" }, TypeError],
          [{ ipv4: "" }, TypeError],
          [{ vni: -1 }, RangeError],
          [{ vni: 0x1000000 }, RangeError],
          [{ vni: 1.5 }, RangeError],
          [{ vni: Number.NaN }, RangeError],
          [{ name: "" }, TypeError],
          [{ name: "a".repeat(16) }, TypeError],
          [{ name: "eth/0" }, TypeError],
          [{ name: "eth 0" }, TypeError],
          [{ name: 7 }, TypeError],
          [{ mtu: 575 }, RangeError],
          [{ mtu: 1451 }, RangeError], // above underlay MTU 1500 - 50
          [{ mtu: 1000.5 }, RangeError],
          [{ rateBitsPerSec: -1 }, RangeError],
          [{ rateBitsPerSec: Number.POSITIVE_INFINITY }, RangeError],
        ];
      for (const [override, errorType] of cases) {
        const spec = { ...base(), ...override } as PortOptions;
        expect(() => sw.addPort(spec), JSON.stringify(override)).toThrow(errorType);
      }
      expect(sw.counters().ports).toEqual([]);
      expect(await links("pv")).toEqual(["lo"]);
    });

    it("rejects bad arguments to the other methods", () => {
      const id = sw.addPort(base());
      try {
        expect(() => sw.setPortVni(id, -1)).toThrow(RangeError);
        expect(() => sw.setPortVni(id, 0x1000000)).toThrow(RangeError);
        expect(() => sw.setPortRate(id, -5)).toThrow(RangeError);
        expect(() => sw.setPortRate(id, Number.NaN)).toThrow(RangeError);
        expect(() => sw.setGlobalVnis([1, -1])).toThrow(RangeError);
        expect(() => sw.setPeers([{ ip: "10.252.0.300" }])).toThrow(TypeError);
        const good: RemoteEndpoint = { vni: RED, mac: "0a:58:0a:02:00:02", ipv4: "10.2.0.2", vtep: VTEP };
        expect(() => sw.updateRemotes([{ ...good, vni: 1 << 24 }])).toThrow(RangeError);
        expect(() => sw.updateRemotes([{ ...good, mac: "03:00:00:00:00:01" }])).toThrow(TypeError);
        expect(() => sw.updateRemotes([{ ...good, ipv4: "x" }])).toThrow(TypeError);
        expect(() => sw.updateRemotes([{ ...good, vtep: "10.252.0" }])).toThrow(TypeError);
        expect(() => sw.updateRemotes([], ["nope"])).toThrow(TypeError);
        expect(() => sw.replaceRemotes([{ ...good, vtep: "" }])).toThrow(TypeError);
        // The port is untouched by the refused calls.
        expect(sw.counters().ports.map((p) => p.vni)).toEqual([RED]);
      } finally {
        sw.removePort(id, { destroy: true });
      }
    });

    it("refuses a second port with the same MAC or IPv4 address, creating no device", async () => {
      const other = await podNamespace("px");
      const id = sw.addPort(base());
      try {
        expect(() => sw.addPort({ ...base(), netns: other, ipv4: "10.1.0.3" })).toThrow(/MAC/);
        expect(() =>
          sw.addPort({ ...base(), netns: other, mac: "0A:58:0A:01:00:02", ipv4: "10.1.0.3" }),
        ).toThrow(/MAC/);
        expect(() => sw.addPort({ ...base(), netns: other, mac: "0a:58:0a:01:00:03" })).toThrow(/IPv4/);
        expect(await links("px")).toEqual(["lo"]);
        expect(sw.counters().ports.map((p) => p.id)).toEqual([id]);
      } finally {
        sw.removePort(id, { destroy: true });
      }
      // Once removed, its MAC and address are free again.
      const again = sw.addPort({ ...base(), netns: other });
      expect(await links("px")).toEqual(["eth0", "lo"]);
      sw.removePort(again, { destroy: true });
      expect(await waitForLinks("px", ["lo"])).toEqual(["lo"]);
    });

    it("throws for unknown port ids", () => {
      expect(() => sw.removePort(999)).toThrow(/no port/);
      expect(() => sw.removePort(-1)).toThrow();
      expect(() => sw.setPortVni(999, RED)).toThrow(/no port/);
      expect(() => sw.setPortRate(999, 1000)).toThrow(/no port/);
      const id = sw.addPort(base());
      sw.removePort(id);
      expect(() => sw.removePort(id)).toThrow(/no port/);
    });

    it("closes twice without complaint, and refuses use after close", () => {
      const s = newSwitch();
      s.close();
      expect(() => s.close()).not.toThrow();
      expect(() => s.counters()).toThrow(/closed/);
      expect(() => s.addPort({ ...base(), mac: "0a:58:0a:01:00:09", ipv4: "10.1.0.9" })).toThrow(/closed/);
      expect(() => s.updateRemotes([])).toThrow(/closed/);
    });
  });

  describe("remote endpoints in bulk", () => {
    it("takes 10,000 remote endpoints in one updateRemotes, and answers ARP for them", async () => {
      const path = await podNamespace("pr");
      const sw = newSwitch();
      const me = { mac: "0a:58:0a:03:00:02", ip: "10.3.0.2" };
      sw.addPort({ name: "eth0", netns: path, vni: RED, mac: me.mac, ipv4: me.ip });
      const remotes: RemoteEndpoint[] = [];
      for (let i = 0; i < 10_000; i++) {
        const ip = `10.4.${Math.floor(i / 250)}.${(i % 250) + 2}`;
        remotes.push({ vni: RED, mac: podMac(ip), ipv4: ip, vtep: VTEP });
      }
      const t0 = performance.now();
      sw.updateRemotes(remotes);
      const elapsed = performance.now() - t0;
      expectWithin("updateRemotes(10,000)", elapsed, 100);

      const probe = Probe.frames(path, "eth0");
      try {
        for (const r of [remotes[0]!, remotes[5000]!, remotes[9999]!]) {
          probe.send(arpRequestFrame(me.mac, me.ip, r.ipv4));
          const got = probe.receiveMatching((x) => x.data.readUInt16BE(12) === ETHERTYPE_ARP, 2000);
          expect(got).not.toBeNull();
          const a = parseArp(parseEthernet(got!.data).payload);
          expect(a).toMatchObject({ op: ARP_REPLY, sha: r.mac, spa: r.ipv4, tha: me.mac, tpa: me.ip });
        }
        // Removed ones are forgotten; the rest stay.
        sw.updateRemotes([], [remotes[9999]!.mac]);
        const before = sw.counters().drops.arp_unanswered ?? 0;
        probe.send(arpRequestFrame(me.mac, me.ip, remotes[9999]!.ipv4));
        expect(probe.receive(300)?.data.toString("hex")).toBeUndefined();
        expect((sw.counters().drops.arp_unanswered ?? 0) - before).toBe(1);
        probe.send(arpRequestFrame(me.mac, me.ip, remotes[9998]!.ipv4));
        const kept = probe.receive(2000);
        expect(kept).not.toBeNull();
        expect(parseArp(parseEthernet(kept!.data).payload)).toMatchObject({
          op: ARP_REPLY,
          spa: remotes[9998]!.ipv4,
        });
        // replaceRemotes with nothing forgets them all.
        sw.replaceRemotes([]);
        probe.send(arpRequestFrame(me.mac, "0.0.0.0", remotes[0]!.ipv4));
        const stale = probe.receive(300);
        expect(stale ? parseArp(parseEthernet(stale.data).payload) : undefined).toBeUndefined();
      } finally {
        probe.close();
        sw.close();
      }
    });
  });

  describe("persistent ports", () => {
    it("outlive sw.close(), are re-attached by a new Switch, and removePort({destroy}) deletes them", async () => {
      const keptPath = await podNamespace("pk");
      const plainPath = await podNamespace("pp");
      const kept = { mac: "0a:58:0a:05:00:02", ip: "10.5.0.2" };
      const plain = { mac: "0a:58:0a:05:00:03", ip: "10.5.0.3" };
      const keptSpec: PortOptions = {
        name: "eth0",
        netns: keptPath,
        vni: RED,
        mac: kept.mac,
        ipv4: kept.ip,
        persistent: true,
      };
      const plainSpec: PortOptions = {
        name: "eth0",
        netns: plainPath,
        vni: RED,
        mac: plain.mac,
        ipv4: plain.ip,
      };

      const first = newSwitch();
      first.addPort(keptSpec);
      first.addPort(plainSpec);
      expect(await links("pk")).toEqual(["eth0", "lo"]);
      expect(await links("pp")).toEqual(["eth0", "lo"]);
      first.close();
      expect(await links("pk")).toEqual(["eth0", "lo"]);
      expect(await waitForLinks("pp", ["lo"])).toEqual(["lo"]);

      const second = newSwitch();
      let keptId: number | undefined;
      try {
        keptId = second.addPort(keptSpec);
        second.addPort(plainSpec);
        const from = Probe.frames(keptPath, "eth0");
        const to = Probe.frames(plainPath, "eth0");
        try {
          const frame = udpFrame(kept, plain, Buffer.from("through a re-attached port"));
          from.send(frame);
          expect(to.receive(2000)?.data.equals(frame)).toBe(true);
        } finally {
          from.close();
          to.close();
        }
        second.removePort(keptId, { destroy: true });
        keptId = undefined;
        expect(await waitForLinks("pk", ["lo"])).toEqual(["lo"]);
      } finally {
        if (keptId !== undefined) second.removePort(keptId, { destroy: true });
        second.close();
      }
    });

    it("stays after removePort({destroy: false})", async () => {
      const path = await podNamespace("pz");
      const sw = newSwitch();
      const spec: PortOptions = {
        name: "eth0",
        netns: path,
        vni: RED,
        mac: "0a:58:0a:06:00:02",
        ipv4: "10.6.0.2",
        persistent: true,
      };
      const id = sw.addPort(spec);
      sw.removePort(id, { destroy: false });
      sw.counters();
      expect(await links("pz")).toEqual(["eth0", "lo"]);
      const again = sw.addPort(spec);
      sw.removePort(again, { destroy: true });
      expect(await waitForLinks("pz", ["lo"])).toEqual(["lo"]);
    });
  });
});

/**
 * The Switch's TypeScript surface: argument validation before native code against the addon's
 * own limits (switchLimits()), the raw addon asserting the same limits (an Error, never a
 * crash), the reach rule as the switch answers it (reaches()), the remote table against a model
 * through many mixed updates (read back with the switch's own lookups), refusals the native side
 * makes (duplicate MAC or IPv4, unknown port ids, a closed switch), bulk remote updates, and
 * persistent ports that outlive their switch and are re-attached by the next one.
 *
 * The limits, reach and remote-table tests need no root: their switch binds to 127.0.0.1 on a
 * free port and gets no device. The rest builds network namespaces and TAP devices, and skips
 * without root.
 */
import { createSocket } from "node:dgram";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadNative } from "../../src/dataplane/load.js";
import { Probe } from "../../src/dataplane/probe.js";
import {
  DEFAULT_POLL_US,
  Switch,
  VXLAN_OVERHEAD,
  switchLimits,
  type PortOptions,
  type RemoteEndpoint,
  type SwitchLimits,
  type SwitchOptions,
} from "../../src/dataplane/switch.js";
import { World, isRoot as runningAsRoot, podMac } from "../kit/netns/index.js";
import { ARP_REPLY, ETHERTYPE_ARP, arpRequestFrame, parseArp, parseEthernet, udpFrame } from "./packets.js";
import { expectWithin } from "../helpers/timing.js";

const isRoot = runningAsRoot();
if (!isRoot) console.warn("api.unit.test.ts: skipped, network namespaces and TAP devices need root");

const NODE_IP = "10.252.0.1";
const VTEP = "10.252.0.2";
const RED = 100;
const BLUE = 200;
/** A VNI made global with setGlobalVnis (the cluster's, GLOBAL_VNI of src/model, is 1 too). */
const GLOBAL = 1;

/** A UDP port of 127.0.0.1 nobody holds right now. */
async function freeUdpPort(): Promise<number> {
  const s = createSocket("udp4");
  await new Promise<void>((resolve) => s.bind(0, "127.0.0.1", resolve));
  const { port } = s.address();
  await new Promise<void>((resolve) => s.close(resolve));
  return port;
}

/** `f` throws a RangeError whose message names the limit as switchLimits().<name>. */
function expectRefused(f: () => unknown, name: keyof SwitchLimits, what: string): void {
  let error: unknown;
  try {
    f();
  } catch (e) {
    error = e;
  }
  expect(error, what).toBeInstanceOf(RangeError);
  expect((error as Error).message, what).toContain(`switchLimits().${name}`);
}

describe("limits, on a switch bound to 127.0.0.1", () => {
  const locals: Switch[] = [];

  async function localSwitch(options: Partial<SwitchOptions> = {}): Promise<Switch> {
    const sw = new Switch({ underlayIp: "127.0.0.1", port: await freeUdpPort(), workers: 1, ...options });
    locals.push(sw);
    return sw;
  }

  afterAll(() => {
    for (const sw of locals) sw.close();
  });

  const spec = (): PortOptions => ({ name: "eth0", vni: RED, mac: "0a:58:0a:07:00:02", ipv4: "10.7.0.2" });
  const remote = (): RemoteEndpoint => ({ vni: RED, mac: "0a:58:0a:08:00:02", ipv4: "10.8.0.2", vtep: VTEP });

  it("switchLimits() is the addon's limits(), frozen", () => {
    const l = switchLimits();
    expect(l).toEqual(loadNative().limits());
    expect(Object.isFrozen(l) && Object.values(l).every((r) => Object.isFrozen(r))).toBe(true);
    expect(l.vni).toEqual({ min: 0, max: 0xffffff, integer: true }); // 24 bits, RFC 7348
    expect(l.udpPort).toEqual({ min: 1, max: 65535, integer: true });
    expect(l.nameLength.max).toBe(15); // IFNAMSIZ - 1
    expect(l.rateBitsPerSec.integer).toBe(false);
  });

  it("refuses a value just outside each limit with a RangeError naming it, creating nothing", async () => {
    const l = switchLimits();
    const options = { underlayIp: "127.0.0.1", port: await freeUdpPort() };
    for (const workers of [l.workers.min - 1, l.workers.max + 1]) {
      expectRefused(() => new Switch({ ...options, workers }), "workers", `workers ${workers}`);
    }
    for (const port of [l.udpPort.min - 1, l.udpPort.max + 1]) {
      expectRefused(() => new Switch({ ...options, port }), "udpPort", `port ${port}`);
    }
    for (const underlayMtu of [l.mtu.min - 1, l.mtu.max + 1]) {
      expectRefused(() => new Switch({ ...options, underlayMtu }), "mtu", `underlayMtu ${underlayMtu}`);
    }
    for (const pollUs of [l.pollUs.min - 1, l.pollUs.max + 1]) {
      expectRefused(() => new Switch({ ...options, pollUs }), "pollUs", `pollUs ${pollUs}`);
    }

    const sw = await localSwitch();
    const long = "n".repeat(l.nameLength.max + 1);
    for (const name of ["", long]) {
      expectRefused(() => sw.addPort({ ...spec(), name }), "nameLength", `name ${JSON.stringify(name)}`);
    }
    // Bytes, not characters: 8 two-byte characters are 16 bytes.
    expectRefused(() => sw.addPort({ ...spec(), name: "é".repeat(8) }), "nameLength", "name of 16 bytes");
    expectRefused(() => sw.addPort({ ...spec(), mtu: l.mtu.min - 1 }), "mtu", "port mtu");
    for (const vni of [l.vni.min - 1, l.vni.max + 1]) {
      expectRefused(() => sw.addPort({ ...spec(), vni }), "vni", `addPort vni ${vni}`);
      expectRefused(() => sw.setPortVni(0, vni), "vni", `setPortVni ${vni}`);
      expectRefused(() => sw.setGlobalVnis([RED, vni]), "vni", `setGlobalVnis ${vni}`);
      expectRefused(() => sw.reaches(vni, RED), "vni", `reaches from ${vni}`);
      expectRefused(() => sw.reaches(RED, vni), "vni", `reaches to ${vni}`);
      expectRefused(() => sw.updateRemotes([{ ...remote(), vni }]), "vni", `updateRemotes ${vni}`);
      expectRefused(() => sw.replaceRemotes([{ ...remote(), vni }]), "vni", `replaceRemotes ${vni}`);
    }
    for (const rate of [l.rateBitsPerSec.min - 1, l.rateBitsPerSec.max + 1]) {
      expectRefused(
        () => sw.addPort({ ...spec(), rateBitsPerSec: rate }),
        "rateBitsPerSec",
        `addPort rate ${rate}`,
      );
      expectRefused(() => sw.setPortRate(0, rate), "rateBitsPerSec", `setPortRate ${rate}`);
    }
    for (const id of [l.portId.min - 1, l.portId.max + 1]) {
      expectRefused(() => sw.removePort(id), "portId", `removePort ${id}`);
      expectRefused(() => sw.setPortVni(id, RED), "portId", `setPortVni id ${id}`);
    }
    expect(sw.counters().ports).toEqual([]);
  });

  it("accepts a value just inside the workers, MTU, VNI and port id limits", async () => {
    const l = switchLimits();
    for (const workers of [l.workers.min, l.workers.max]) {
      expect((await localSwitch({ workers })).features().workers).toBe(workers);
    }
    for (const underlayMtu of [l.mtu.min, l.mtu.max]) {
      expect((await localSwitch({ underlayMtu })).underlayMtu).toBe(underlayMtu);
    }
    for (const pollUs of [l.pollUs.min, l.pollUs.max]) {
      expect((await localSwitch({ pollUs })).features().pollUs).toBe(pollUs);
    }
    expect((await localSwitch()).features().pollUs).toBe(DEFAULT_POLL_US);
    const sw = await localSwitch();
    expect(sw.reaches(l.vni.min, l.vni.max)).toBe(false);
    sw.setGlobalVnis([l.vni.min, l.vni.max]);
    sw.updateRemotes([{ ...remote(), vni: l.vni.max }]);
    sw.replaceRemotes([{ ...remote(), vni: l.vni.min }]);
    // In range, so the switch itself answers: there is no such port.
    for (const id of [l.portId.min, l.portId.max]) {
      expect(() => sw.setPortVni(id, l.vni.max)).toThrow(new RegExp(`^no port ${id}$`));
    }
    // Name length, port MTU, rate and UDP port: the root tests below (they make a device).
  });

  it("the raw addon refuses what is out of range with an Error, and does not crash", async () => {
    const native = loadNative();
    const l = native.limits();
    const ok = {
      underlayIp: "127.0.0.1",
      port: await freeUdpPort(),
      netns: "",
      workers: 1,
      offloads: true,
      underlayMtu: 1500,
      pollUs: 0,
    };
    expect(() => new native.Switch({ ...ok, workers: l.workers.max + 1 })).toThrow(RangeError);
    expect(() => new native.Switch({ ...ok, pollUs: l.pollUs.max + 1 })).toThrow(/limits\(\)\.pollUs/);
    expect(() => new native.Switch({ ...ok, workers: l.workers.max + 1 })).toThrow(/limits\(\)\.workers/);
    expect(() => new native.Switch({ ...ok, port: l.udpPort.min - 1 })).toThrow(/limits\(\)\.udpPort/);
    expect(() => new native.Switch({ ...ok, underlayMtu: 1500.5 })).toThrow(RangeError);
    expect(() => new native.Switch({ ...ok, underlayMtu: "1500" as unknown as number })).toThrow(TypeError);
    // A getter that throws: its error comes through as is.
    const throwing = Object.defineProperty({ ...ok }, "workers", {
      get: () => {
        throw new Error("from a getter");
      },
    });
    expect(() => new native.Switch(throwing)).toThrow("from a getter");

    const raw = new native.Switch(ok);
    try {
      expect(() => raw.reaches(RED, l.vni.max + 1)).toThrow(/limits\(\)\.vni/);
      expect(() => raw.setGlobalVnis([RED, -1])).toThrow(RangeError);
      expect(() => raw.setPortRate(0, l.rateBitsPerSec.max * 2)).toThrow(/limits\(\)\.rateBitsPerSec/);
      expect(() => raw.setPortVni(l.portId.max + 1, RED)).toThrow(/limits\(\)\.portId/);
      const port = {
        name: "n".repeat(l.nameLength.max + 1),
        netns: "",
        vni: RED,
        mac: "0a:58:0a:07:00:02",
        ipv4: "10.7.0.2",
        kind: "pod" as const,
        persistent: false,
        mtu: 1450,
        rateBitsPerSec: 0,
      };
      expect(() => raw.addPort(port)).toThrow(/limits\(\)\.nameLength/);
      expect(() => raw.addPort({ ...port, name: "eth0", mtu: l.mtu.max + 1 })).toThrow(/limits\(\)\.mtu/);
      // A sparse array's length is not its size: read element by element, the first is refused.
      expect(() => raw.replaceRemotes(new Array<never>(2 ** 32 - 1))).toThrow(TypeError);
      expect(raw.reaches(RED, RED)).toBe(true);
      expect(raw.counters().ports).toEqual([]);
    } finally {
      raw.close();
    }
  });
});

describe("the reach rule, as the switch answers it", () => {
  let sw: Switch;

  beforeAll(async () => {
    sw = new Switch({ underlayIp: "127.0.0.1", port: await freeUdpPort(), workers: 1 });
  });
  afterAll(() => sw.close());

  it("lets a VNI reach itself and not another isolated VNI; a global VNI reaches and is reached by any", () => {
    expect(sw.reaches(RED, RED)).toBe(true);
    expect(sw.reaches(RED, BLUE)).toBe(false);
    expect(sw.reaches(GLOBAL, RED)).toBe(false); // nothing is global yet
    sw.setGlobalVnis([GLOBAL]);
    expect(sw.reaches(GLOBAL, RED)).toBe(true);
    expect(sw.reaches(BLUE, GLOBAL)).toBe(true);
    expect(sw.reaches(GLOBAL, GLOBAL)).toBe(true);
    expect(sw.reaches(RED, BLUE)).toBe(false);
  });

  it("changes its answer when setGlobalVnis changes the set", () => {
    sw.setGlobalVnis([BLUE]);
    expect(sw.reaches(RED, BLUE)).toBe(true);
    expect(sw.reaches(BLUE, RED)).toBe(true);
    expect(sw.reaches(GLOBAL, RED)).toBe(false);
    sw.setGlobalVnis([]);
    expect(sw.reaches(RED, BLUE)).toBe(false);
    expect(sw.reaches(RED, RED)).toBe(true);
    // The ends of the VNI range as global VNIs (0 is the key a flat map cannot hold unshifted).
    sw.setGlobalVnis([0]);
    expect(sw.reaches(0, RED)).toBe(true);
    expect(sw.reaches(RED, 1)).toBe(false);
    sw.setGlobalVnis([0xffffff]);
    expect(sw.reaches(RED, 0xffffff)).toBe(true);
    expect(sw.reaches(0, RED)).toBe(false);
  });
});

/** A seeded PRNG (mulberry32), so a failing sequence of updates can be replayed. */
function prng(seed: number): (n: number) => number {
  let a = seed >>> 0;
  return (n: number) => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * n);
  };
}

/**
 * What the switch's remote table should hold, kept the simple way: every remote by MAC with the
 * order it was written in. By IPv4 address: of the remotes with that address (0.0.0.0 is not an
 * address the table keeps), the one written last.
 */
class RemoteModel {
  private readonly written = new Map<string, { r: RemoteEndpoint; order: number }>();
  private order = 0;

  update(add: RemoteEndpoint[], remove: string[]): void {
    for (const mac of remove) this.written.delete(mac);
    for (const r of add) this.written.set(r.mac, { r, order: ++this.order });
  }

  replace(all: RemoteEndpoint[]): void {
    this.written.clear();
    this.update(all, []);
  }

  byMac(mac: string): RemoteEndpoint | null {
    return this.written.get(mac)?.r ?? null;
  }

  byIpv4(): Map<string, RemoteEndpoint> {
    const last = new Map<string, { r: RemoteEndpoint; order: number }>();
    for (const w of this.written.values()) {
      if (w.r.ipv4 === "0.0.0.0") continue;
      const seen = last.get(w.r.ipv4);
      if (!seen || seen.order < w.order) last.set(w.r.ipv4, w);
    }
    return new Map([...last].map(([ip, w]) => [ip, w.r]));
  }

  all(): RemoteEndpoint[] {
    return [...this.written.values()].map((w) => w.r);
  }
}

const byKey = (a: RemoteEndpoint, b: RemoteEndpoint): number =>
  a.mac < b.mac ? -1 : a.mac > b.mac ? 1 : a.ipv4 < b.ipv4 ? -1 : a.ipv4 > b.ipv4 ? 1 : 0;

/** The switch's whole remote table, both indexes, equals the model's. */
function expectTableIs(sw: Switch, model: RemoteModel, what: string): void {
  const got = sw.remoteEntries();
  expect(got.byMac.sort(byKey), `${what}: by MAC`).toEqual(model.all().sort(byKey));
  expect(got.byIpv4.sort(byKey), `${what}: by IPv4`).toEqual([...model.byIpv4().values()].sort(byKey));
}

describe("the remote table against a model, on a switch bound to 127.0.0.1", () => {
  let sw: Switch;

  beforeAll(async () => {
    sw = new Switch({ underlayIp: "127.0.0.1", port: await freeUdpPort(), workers: 2 });
  });
  afterAll(() => sw.close());

  const hex = (x: number): string => x.toString(16).padStart(2, "0");
  const macOf = (i: number): string =>
    `0a:58:0b:${hex((i >> 16) & 0xff)}:${hex((i >> 8) & 0xff)}:${hex(i & 0xff)}`;
  const ipOf = (i: number): string => `10.${(i >> 16) & 0xff}.${(i >> 8) & 0xff}.${i & 0xff}`;

  it("answers lookups as the model does through 600 mixed updateRemotes and replaceRemotes calls", () => {
    const MACS = 1500; // addresses are drawn from fewer than MACs, so they are often claimed twice
    const IPS = 1200;
    const VTEPS = ["10.252.0.2", "10.252.0.3", "10.252.0.4", "10.252.1.9", "192.168.7.1"];
    const VNIS = [RED, BLUE, GLOBAL, 0, 0xffffff];
    const rand = prng(0x5eed);
    const model = new RemoteModel();
    const pick = <T>(xs: T[]): T => xs[rand(xs.length)]!;
    const fresh = (mac: string): RemoteEndpoint => ({
      vni: pick(VNIS),
      mac,
      ipv4: rand(100) === 0 ? "0.0.0.0" : ipOf(1 + rand(IPS)),
      vtep: pick(VTEPS),
    });
    const known = (): RemoteEndpoint | undefined => {
      const all = model.all();
      return all.length ? pick(all) : undefined;
    };
    /** An entry of an updateRemotes: a new MAC, a move to another VTEP or VNI, or a re-add with another address. */
    const change = (): RemoteEndpoint => {
      const r = known();
      const kind = rand(5);
      if (!r || kind === 0) return fresh(macOf(rand(MACS)));
      if (kind === 1) return { ...r, vtep: pick(VTEPS) };
      if (kind === 2) return { ...r, vni: pick(VNIS) };
      if (kind === 3) return { ...r, ipv4: ipOf(1 + rand(IPS)) };
      return { ...r }; // written again as it is: it becomes its address's latest claim
    };

    let replaces = 0;
    for (let step = 0; step < 600; step++) {
      const touched: RemoteEndpoint[] = [];
      const removedMacs: string[] = [];
      if (rand(40) === 0) {
        // Duplicate MACs and addresses inside one call: the later one wins.
        const all = Array.from({ length: rand(MACS) }, () => fresh(macOf(rand(MACS))));
        const before = model.all();
        sw.replaceRemotes(all);
        model.replace(all);
        touched.push(...all, ...before);
        replaces++;
      } else {
        const add = Array.from({ length: rand(20) === 0 ? 200 : rand(7) }, change);
        const remove = Array.from({ length: rand(4) }, () =>
          rand(3) === 0 ? macOf(rand(MACS)) : (known()?.mac ?? macOf(rand(MACS))),
        );
        const gone = remove.map((m) => model.byMac(m)).filter((r): r is RemoteEndpoint => r !== null);
        sw.updateRemotes(add, remove);
        model.update(add, remove);
        touched.push(...add, ...gone);
        removedMacs.push(...remove);
      }
      // Through the packet threads' own lookups: every MAC and address the call touched.
      const owners = model.byIpv4();
      for (const mac of new Set([...touched.map((r) => r.mac), ...removedMacs, macOf(rand(MACS))])) {
        expect(sw.lookupRemote(mac), `step ${step}: MAC ${mac}`).toEqual(model.byMac(mac));
      }
      for (const ip of new Set([...touched.map((r) => r.ipv4), ipOf(1 + rand(IPS))])) {
        expect(sw.lookupRemoteByIpv4(ip), `step ${step}: IPv4 ${ip}`).toEqual(owners.get(ip) ?? null);
      }
      if (step % 25 === 24) expectTableIs(sw, model, `step ${step}`);
    }
    expect(replaces).toBeGreaterThan(5);
    expectTableIs(sw, model, "at the end");
    for (const r of model.all()) expect(sw.lookupRemote(r.mac)).toEqual(r);
    for (const [ip, r] of model.byIpv4()) expect(sw.lookupRemoteByIpv4(ip)).toEqual(r);

    sw.replaceRemotes([]);
    model.replace([]);
    expectTableIs(sw, model, "after replaceRemotes([])");
  });

  it("an address claimed twice: the remote written last answers, and the other once it goes", () => {
    const a = { vni: RED, mac: macOf(1), ipv4: ipOf(7), vtep: "10.252.0.2" };
    const b = { vni: BLUE, mac: macOf(2), ipv4: ipOf(7), vtep: "10.252.0.3" };
    sw.replaceRemotes([a, b]);
    expect(sw.lookupRemoteByIpv4(ipOf(7))).toEqual(b);
    sw.updateRemotes([a]); // written again: now the latest
    expect(sw.lookupRemoteByIpv4(ipOf(7))).toEqual(a);
    sw.updateRemotes([{ ...a, ipv4: ipOf(8) }]); // moves away: b is left
    expect(sw.lookupRemoteByIpv4(ipOf(7))).toEqual(b);
    expect(sw.lookupRemoteByIpv4(ipOf(8))).toEqual({ ...a, ipv4: ipOf(8) });
    sw.updateRemotes([], [b.mac]);
    expect(sw.lookupRemoteByIpv4(ipOf(7))).toBeNull();
    // Removals apply before additions in one call: removing and re-adding a MAC keeps it.
    sw.updateRemotes([b], [b.mac]);
    expect(sw.lookupRemote(b.mac)).toEqual(b);
    sw.replaceRemotes([]);
    expect(sw.remoteEntries()).toEqual({ byMac: [], byIpv4: [] });
  });

  it("at 64,000 entries, an update changes its own entries and leaves every other one as it was", () => {
    const model = new RemoteModel();
    const all = Array.from({ length: 64_000 }, (_, i) => ({
      vni: 100 + (i % 4),
      mac: macOf(0x10000 + i),
      ipv4: ipOf(0x20000 + i),
      vtep: `10.0.${(i % 250) + 1}.1`,
    }));
    sw.replaceRemotes(all);
    model.replace(all);
    expectTableIs(sw, model, "after replaceRemotes(64,000)");
    const rand = prng(64);
    for (let step = 0; step < 50; step++) {
      const r = all[rand(all.length)]!;
      const add = [
        { ...r, vtep: "10.252.0.9", vni: r.vni ^ 1 },
        { ...all[rand(all.length)]!, ipv4: ipOf(7) },
      ];
      const remove = [all[rand(all.length)]!.mac];
      sw.updateRemotes(add, remove);
      model.update(add, remove);
      for (const x of [...add, ...remove.map((mac) => ({ mac }))]) {
        expect(sw.lookupRemote(x.mac), `step ${step}`).toEqual(model.byMac(x.mac));
      }
    }
    expectTableIs(sw, model, "after 50 updates");
    sw.replaceRemotes([]);
  });

  it("inspection refuses what is not a unicast MAC or an IPv4 address", () => {
    expect(() => sw.lookupRemote("01:00:5e:00:00:01")).toThrow(TypeError);
    expect(() => sw.lookupRemote("nope")).toThrow(TypeError);
    expect(() => sw.lookupRemoteByIpv4("10.0.0")).toThrow(TypeError);
  });

  it("inspection of a closed switch throws", async () => {
    const closed = new Switch({ underlayIp: "127.0.0.1", port: await freeUdpPort(), workers: 1 });
    closed.close();
    expect(() => closed.lookupRemote(macOf(1))).toThrow(/closed/);
    expect(() => closed.remoteEntries()).toThrow(/closed/);
  });
});

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
          [{ name: "" }, RangeError],
          [{ name: "a".repeat(16) }, RangeError],
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

    it("accepts the ends of the UDP port limit", () => {
      const { min, max } = switchLimits().udpPort;
      for (const port of [min, max]) {
        const s = new Switch({ underlayIp: NODE_IP, netns: w().nsPath("node"), port });
        s.close();
      }
    });

    it("accepts a value just inside the name length, MTU and rate limits, and refuses an MTU past underlay - 50", async () => {
      const l = switchLimits();
      const name = "n".repeat(l.nameLength.max);
      const id = sw.addPort({ ...base(), name, mtu: l.mtu.min, rateBitsPerSec: l.rateBitsPerSec.max });
      try {
        expect(await links("pv")).toEqual(["lo", name]);
        sw.setPortRate(id, l.rateBitsPerSec.max);
        sw.setPortVni(id, l.vni.max);
        expect(sw.counters().ports).toMatchObject([{ id, name, vni: l.vni.max }]);
      } finally {
        await sw.removePort(id, { destroy: true });
      }
      // The relational rule is TypeScript policy: named as such, inside the absolute limit.
      const podMax = sw.underlayMtu - VXLAN_OVERHEAD;
      expectRefused(() => sw.addPort({ ...base(), mtu: podMax + 1 }), "mtu", "mtu past underlay - 50");
      expect(() => sw.addPort({ ...base(), mtu: podMax + 1 })).toThrow(/underlayMtu 1500 - 50/);
      await sw.removePort(sw.addPort({ ...base(), mtu: podMax }), { destroy: true });
      expect(await waitForLinks("pv", ["lo"])).toEqual(["lo"]);
    });

    it("rejects bad arguments to the other methods", async () => {
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
        await sw.removePort(id, { destroy: true });
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
        await sw.removePort(id, { destroy: true });
      }
      // Once removed, its MAC and address are free again.
      const again = sw.addPort({ ...base(), netns: other });
      expect(await links("px")).toEqual(["eth0", "lo"]);
      await sw.removePort(again, { destroy: true });
      expect(await waitForLinks("px", ["lo"])).toEqual(["lo"]);
    });

    it("throws for unknown port ids", async () => {
      expect(() => sw.removePort(999)).toThrow(/no port/);
      expect(() => sw.removePort(-1)).toThrow();
      expect(() => sw.setPortVni(999, RED)).toThrow(/no port/);
      expect(() => sw.setPortRate(999, 1000)).toThrow(/no port/);
      const id = sw.addPort(base());
      await sw.removePort(id);
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
    it("answers ARP for an address two remotes claim with the one written last, then with the other", async () => {
      const path = await podNamespace("pd");
      const sw = newSwitch();
      const me = { mac: "0a:58:0a:03:01:02", ip: "10.3.1.2" };
      sw.addPort({ name: "eth0", netns: path, vni: RED, mac: me.mac, ipv4: me.ip });
      const first: RemoteEndpoint = { vni: RED, mac: "0a:58:0a:04:01:01", ipv4: "10.4.1.9", vtep: VTEP };
      const second: RemoteEndpoint = { ...first, mac: "0a:58:0a:04:01:02" };
      const probe = Probe.frames(path, "eth0");
      const arpOwner = (): string | undefined => {
        probe.send(arpRequestFrame(me.mac, me.ip, first.ipv4));
        const got = probe.receiveMatching((x) => x.data.readUInt16BE(12) === ETHERTYPE_ARP, 2000);
        return got ? parseArp(parseEthernet(got.data).payload).sha : undefined;
      };
      try {
        sw.updateRemotes([first]);
        sw.updateRemotes([second]);
        expect(arpOwner()).toBe(second.mac);
        sw.updateRemotes([], [second.mac]);
        expect(arpOwner()).toBe(first.mac);
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
        await second.removePort(keptId, { destroy: true });
        keptId = undefined;
        expect(await waitForLinks("pk", ["lo"])).toEqual(["lo"]);
      } finally {
        if (keptId !== undefined) await second.removePort(keptId, { destroy: true });
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
      await sw.removePort(id, { destroy: false });
      sw.counters();
      expect(await links("pz")).toEqual(["eth0", "lo"]);
      const again = sw.addPort(spec);
      await sw.removePort(again, { destroy: true });
      expect(await waitForLinks("pz", ["lo"])).toEqual(["lo"]);
    });
  });
});

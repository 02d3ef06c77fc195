/**
 * Pod plumbing over rtnetlink (src/dataplane/netlink.ts, native/netlink.h) against `ip`, in a
 * world of network namespaces this file creates and removes: each pair of namespaces gets the
 * same TAP, one plumbed by the `ip` commands the agent used to run, the other by netlink, and
 * what `ip -j` then reads from both must be the same (links, addresses, every IPv4 route of every
 * table). Then repeated and concurrent calls, CHECK's reading, IFB devices, and the errors.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  NETLINK_ERROR_CODE,
  addIfb,
  configurePodInterface,
  deleteLink,
  inspectLink,
  isNetlinkError,
  type PodInterfaceSpec,
} from "../../src/dataplane/netlink.js";
import { loadNative } from "../../src/dataplane/load.js";
import { NETNS_DIR, World } from "../kit/netns/index.js";
import { skipReason } from "./env.js";

const skip = skipReason("test/dataplane/netlink.test.ts");

const POD = { ipv4: "172.30.4.7", prefixLength: 16, gateway: "172.30.0.1" };
const MTU = 1450;

describe.skipIf(skip !== undefined)("pod plumbing over netlink", () => {
  let world: World;

  beforeAll(async () => {
    world = await World.create();
  });

  afterAll(async () => {
    await world?.destroy();
  });

  /** A pod namespace holding a TAP `eth0` as `ip tuntap` leaves it: down, MTU 1500. */
  async function podNamespace(short: string): Promise<string> {
    await world.addNamespace(short);
    await world.ip(short, ["tuntap", "add", "dev", "eth0", "mode", "tap"]);
    return world.nsPath(short);
  }

  async function ipJson(short: string, args: string[]): Promise<unknown> {
    return JSON.parse((await world.ip(short, ["-j", ...args])).stdout) as unknown;
  }

  /** What `ip` shows of a pod namespace, with what differs by nature (ifindex, MAC) left out. */
  async function state(short: string): Promise<unknown> {
    type Link = { ifname: string; flags: string[]; mtu: number; operstate: string };
    type Addr = Link & { addr_info: unknown[] };
    const links = (await ipJson(short, ["link", "show"])) as Link[];
    const addrs = (await ipJson(short, ["-4", "addr", "show"])) as Addr[];
    return {
      links: links.map((l) => ({ ifname: l.ifname, flags: l.flags, mtu: l.mtu, operstate: l.operstate })),
      addresses: addrs.map((a) => ({ ifname: a.ifname, addr_info: a.addr_info })),
      routes: await ipJson(short, ["-4", "route", "show", "table", "all"]),
    };
  }

  /** The `ip` commands the agent ran before (nsenter ... ip), and the TAP's MTU and up. */
  async function plumbWithIp(short: string): Promise<void> {
    await world.ip(short, ["link", "set", "lo", "up"]);
    await world.ip(short, ["link", "set", "eth0", "mtu", String(MTU), "up"]);
    await world.ip(short, ["addr", "replace", `${POD.ipv4}/${POD.prefixLength}`, "dev", "eth0"]);
    await world.ip(short, ["route", "replace", "default", "via", POD.gateway, "dev", "eth0"]);
  }

  function spec(netns: string, more: Partial<PodInterfaceSpec> = {}): PodInterfaceSpec {
    return { netns, ifname: "eth0", ...POD, mtu: MTU, ...more };
  }

  /** The rejection of `p`, which must reject. */
  async function rejection(p: Promise<unknown>): Promise<Error> {
    try {
      await p;
    } catch (err) {
      if (err instanceof Error) return err;
      throw new Error(`rejected with a non-Error: ${String(err)}`);
    }
    throw new Error("expected a rejection");
  }

  it("leaves a pod namespace exactly as the ip commands did: lo up, MTU and up, address, default route", async () => {
    await podNamespace("viaip");
    const netns = await podNamespace("vianl");
    await plumbWithIp("viaip");
    await configurePodInterface(spec(netns));
    const want = await state("viaip");
    expect(await state("vianl")).toEqual(want);
    // And what that is, so an `ip` that changed its mind cannot make both wrong alike.
    expect(JSON.stringify(want)).toContain(`"local":"${POD.ipv4}","prefixlen":${POD.prefixLength}`);
    const routes = (await ipJson("vianl", ["-4", "route", "show"])) as {
      dst: string;
      gateway?: string;
      dev: string;
    }[];
    expect(routes).toContainEqual(
      expect.objectContaining({ dst: "default", gateway: POD.gateway, dev: "eth0" }),
    );
    const lo = (await ipJson("vianl", ["link", "show", "lo"])) as { flags: string[] }[];
    expect(lo[0]?.flags).toContain("UP");
  });

  it("is idempotent: an ADD retried, or run again after a restart, changes nothing", async () => {
    const netns = await podNamespace("again");
    await configurePodInterface(spec(netns));
    const once = await state("again");
    await configurePodInterface(spec(netns));
    await configurePodInterface(spec(netns));
    expect(await state("again")).toEqual(once);
  });

  it("leaves the MTU alone when none is given, and replaces a default route that pointed elsewhere", async () => {
    const netns = await podNamespace("nomtu");
    await world.ip("nomtu", ["link", "set", "eth0", "up"]);
    await world.ip("nomtu", ["addr", "add", "172.30.9.9/16", "dev", "eth0"]);
    await world.ip("nomtu", ["route", "add", "default", "via", "172.30.0.254", "dev", "eth0"]);
    await configurePodInterface(spec(netns, { mtu: undefined }));
    const routes = (await ipJson("nomtu", ["-4", "route", "show", "default"])) as { gateway: string }[];
    expect(routes.map((r) => r.gateway)).toEqual([POD.gateway]);
    expect(await inspectLink(netns, "eth0")).toMatchObject({ mtu: 1500, up: true });
  });

  it("runs calls for many namespaces at once, each ending as it should", async () => {
    const names = Array.from({ length: 8 }, (_, i) => `many${i}`);
    const paths = await Promise.all(names.map((n) => podNamespace(n)));
    await Promise.all(
      paths.map((netns, i) => configurePodInterface(spec(netns, { ipv4: `172.30.5.${i + 10}` }))),
    );
    for (const [i, netns] of paths.entries()) {
      const l = await inspectLink(netns, "eth0");
      expect(l?.ipv4).toEqual([`172.30.5.${i + 10}/16`]);
    }
  });

  it("reads an interface as `ip -j addr` shows it, and nothing for an interface that is not there", async () => {
    const netns = await podNamespace("inspect");
    await configurePodInterface(spec(netns));
    await world.ip("inspect", ["addr", "add", "10.9.8.7/24", "dev", "eth0"]);
    type Addr = {
      address: string;
      mtu: number;
      flags: string[];
      addr_info: { family: string; local: string; prefixlen: number }[];
    };
    const [shown] = (await ipJson("inspect", ["addr", "show", "dev", "eth0"])) as Addr[];
    expect(await inspectLink(netns, "eth0")).toEqual({
      mac: shown?.address,
      mtu: shown?.mtu,
      up: shown?.flags.includes("UP"),
      ipv4: shown?.addr_info.filter((a) => a.family === "inet").map((a) => `${a.local}/${a.prefixlen}`),
    });
    await world.ip("inspect", ["link", "set", "eth0", "down"]);
    expect((await inspectLink(netns, "eth0"))?.up).toBe(false);
    expect(await inspectLink(netns, "eth9")).toBeUndefined();
  });

  it("creates an IFB device once and up, and deletes it once", async () => {
    const netns = await podNamespace("ifb");
    await addIfb(netns, "ovin-eth0");
    await addIfb(netns, "ovin-eth0");
    const [link] = (await ipJson("ifb", ["-d", "link", "show", "ovin-eth0"])) as {
      flags: string[];
      linkinfo: { info_kind: string };
    }[];
    expect(link?.linkinfo.info_kind).toBe("ifb");
    expect(link?.flags).toContain("UP");
    expect(await deleteLink(netns, "ovin-eth0")).toBe(true);
    expect(await deleteLink(netns, "ovin-eth0")).toBe(false);
    expect(await inspectLink(netns, "ovin-eth0")).toBeUndefined();
  });

  describe("errors say what was done where, and why", () => {
    it("a namespace that does not exist", async () => {
      const gone = `${NETNS_DIR}/${world.ns("never-made")}`;
      const err = await rejection(configurePodInterface(spec(gone)));
      expect(isNetlinkError(err)).toBe(true);
      expect((err as Error & { code: string }).code).toBe(NETLINK_ERROR_CODE);
      expect(err.message).toBe(`cannot open network namespace ${gone}: No such file or directory`);
      expect((await rejection(inspectLink(gone, "eth0"))).message).toContain(gone);
      expect((await rejection(addIfb(gone, "ovin-eth0"))).message).toContain(gone);
      expect((await rejection(deleteLink(gone, "ovin-eth0"))).message).toContain(gone);
    });

    it("a path that is no network namespace", async () => {
      const err = await rejection(configurePodInterface(spec("/proc/self/status")));
      expect(err.message).toBe("cannot enter network namespace /proc/self/status: Invalid argument");
    });

    it("an interface that is not there", async () => {
      const netns = await podNamespace("noif");
      const err = await rejection(configurePodInterface(spec(netns, { ifname: "eth9" })));
      expect(isNetlinkError(err)).toBe(true);
      expect(err.message).toBe(`network namespace ${netns}: no interface eth9`);
    });

    it("a gateway off the interface's subnet: the kernel's reason, with the step", async () => {
      const netns = await podNamespace("badgw");
      const err = await rejection(configurePodInterface(spec(netns, { gateway: "10.1.1.1" })));
      expect(err.message).toMatch(
        new RegExp(
          `^network namespace ${netns}: set the default route via 10\\.1\\.1\\.1 on eth0: Network is unreachable \\(ENETUNREACH\\)`,
        ),
      );
    });

    it("an MTU the device refuses", async () => {
      const netns = await podNamespace("badmtu");
      // A TAP takes up to 65521; 65535 is within the addon's limit but not the device's.
      const err = await rejection(configurePodInterface(spec(netns, { mtu: 65535 })));
      expect(err.message).toMatch(
        new RegExp(
          `^network namespace ${netns}: bring up eth0 with MTU 65535: Invalid argument \\(EINVAL\\)`,
        ),
      );
    });

    it("bad arguments are refused before native code, as TypeError or RangeError", async () => {
      const netns = world.nsPath("vianl");
      await expect(configurePodInterface(spec(netns, { ipv4: "172.30.4" }))).rejects.toThrow(
        new TypeError('ipv4 must be an IPv4 address, got "172.30.4"'),
      );
      await expect(configurePodInterface(spec(netns, { gateway: "::1" }))).rejects.toThrow(TypeError);
      await expect(configurePodInterface(spec(netns, { prefixLength: 33 }))).rejects.toThrow(
        new RangeError("prefixLength must be an integer from 0 to 32, got 33"),
      );
      await expect(configurePodInterface(spec(netns, { mtu: 100 }))).rejects.toThrow(RangeError);
      await expect(configurePodInterface(spec("run/netns/x"))).rejects.toThrow(/absolute path/);
      await expect(configurePodInterface(spec(""))).rejects.toThrow(TypeError);
      await expect(configurePodInterface(spec(netns, { ifname: "a-name-too-long-0" }))).rejects.toThrow(
        RangeError,
      );
      await expect(inspectLink(netns, "eth 0")).rejects.toThrow(TypeError);
    });

    it("the addon asserts its arguments again when called directly: thrown, never a crash", () => {
      const raw = loadNative().netlink;
      const good = { netns: "/run/netns/x", ifname: "eth0", ...POD, mtu: 0 };
      expect(() => raw.configurePod({ ...good, netns: "" })).toThrow(RangeError);
      expect(() => raw.configurePod({ ...good, ipv4: "x" })).toThrow(TypeError);
      expect(() => raw.configurePod({ ...good, prefixLength: 40 })).toThrow(RangeError);
      expect(() => raw.configurePod(null as unknown as typeof good)).toThrow(TypeError);
      expect(() => raw.addLink("/run/netns/x", "ovin-eth0", "dummy" as "ifb")).toThrow(
        'kind must be "ifb", got dummy',
      );
      expect(() => raw.deleteLink("/run/netns/x", "a-name-too-long-0")).toThrow(RangeError);
    });
  });
});

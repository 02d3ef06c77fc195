import { spawn } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  buildKernelOverlay,
  buildNodes,
  CommandError,
  isRoot,
  iperf3,
  linkStats,
  listNamespaces,
  newPrefix,
  parseIperf3,
  parseLinkStats,
  parsePing,
  ping,
  pingUntil,
  podMac,
  run,
  sleep,
  sweepStaleWorlds,
  World,
  WORLD_REGISTRY_DIR,
} from "../kit/netns/index.js";

const root = isRoot();
if (!root) console.log("test/netns/world.test.ts: skipped, network namespaces need root");

async function rootLinkNames(): Promise<string[]> {
  const r = await run("ip", ["-j", "link", "show"]);
  return (JSON.parse(r.stdout) as { ifname: string }[]).map((l) => l.ifname);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe("parsers", () => {
  it("reads ping summaries with and without replies", () => {
    const ok = parsePing(
      "3 packets transmitted, 3 received, 0% packet loss, time 402ms\nrtt min/avg/max/mdev = 0.041/0.052/0.060/0.008 ms\n",
    );
    expect(ok).toEqual({ sent: 3, received: 3, lossPct: 0, rttAvgMs: 0.052 });
    const lost = parsePing("3 packets transmitted, 0 received, +3 errors, 100% packet loss, time 2040ms\n");
    expect(lost).toEqual({ sent: 3, received: 0, lossPct: 100, rttAvgMs: undefined });
    expect(parsePing("ping: connect: Network is unreachable").lossPct).toBe(100);
  });

  it("reads iperf3 JSON and ip -s -j link", () => {
    const r = parseIperf3(
      JSON.stringify({
        end: {
          sum_sent: { bytes: 1000, bits_per_second: 4000, retransmits: 2 },
          sum_received: { bytes: 900, bits_per_second: 3600 },
        },
      }),
    );
    expect(r).toMatchObject({
      bitsPerSecond: 3600,
      sentBitsPerSecond: 4000,
      bytesReceived: 900,
      retransmits: 2,
    });
    expect(() => parseIperf3(JSON.stringify({ error: "unable to connect" }))).toThrow(/unable to connect/);
    const [l] = parseLinkStats(
      JSON.stringify([
        {
          ifname: "eth0",
          mtu: 1450,
          address: "0a:58:ac:1e:00:02",
          operstate: "UP",
          stats64: { rx: { bytes: 10, packets: 1, errors: 0, dropped: 0 }, tx: { bytes: 20, packets: 2 } },
        },
      ]),
    );
    expect(l).toEqual({
      ifname: "eth0",
      mtu: 1450,
      mac: "0a:58:ac:1e:00:02",
      operstate: "UP",
      rx: { bytes: 10, packets: 1, errors: 0, dropped: 0 },
      tx: { bytes: 20, packets: 2, errors: 0, dropped: 0 },
    });
  });

  it("derives pod MACs and short unique prefixes", () => {
    expect(podMac("172.30.0.2")).toBe("0a:58:ac:1e:00:02");
    const p = newPrefix();
    expect(p).toMatch(/^ov[0-9a-z]{5}$/);
    expect(`${p}-1234567`.length).toBe(15);
  });
});

describe.skipIf(!root)("World lifecycle", () => {
  it("creates namespaces, veth, traffic and processes, and destroy leaves nothing behind", async () => {
    const linksBefore = new Set(await rootLinkNames());
    const w = await World.create();
    let pid = 0;
    try {
      await w.addNamespace("a");
      await w.addNamespace("b");
      await w.addVeth(
        { ns: "a", name: "va", addr: "10.250.0.1/24" },
        { ns: "b", name: "vb", addr: "10.250.0.2/24" },
      );
      expect((await listNamespaces()).filter((n) => n.startsWith(`${w.prefix}-`)).sort()).toEqual([
        `${w.prefix}-a`,
        `${w.prefix}-b`,
      ]);
      expect(existsSync(w.nsPath("a"))).toBe(true);

      const p = await ping(w, "a", "10.250.0.2", { count: 3, timeoutSec: 2 });
      expect(p).toMatchObject({ sent: 3, received: 3, lossPct: 0 });
      expect(p.rttAvgMs).toBeGreaterThan(0);

      const lost = await ping(w, "a", "10.250.0.77", { count: 2, timeoutSec: 1 });
      expect(lost.lossPct).toBe(100);

      const before = await linkStats(w, "b", "vb");
      const t = await iperf3(w, "a", "b", "10.250.0.2", { seconds: 2 });
      expect(t.bytesReceived).toBeGreaterThan(1_000_000);
      expect(t.bitsPerSecond).toBeGreaterThan(0);
      const after = await linkStats(w, "b", "vb");
      expect(after.rx.bytes - before.rx.bytes).toBeGreaterThanOrEqual(t.bytesReceived);

      const r = await w.exec("a", "ip", ["-br", "addr", "show", "dev", "va"]);
      expect(r.stdout).toContain("10.250.0.1/24");

      const proc = w.start("b", "sleep", ["300"]);
      pid = proc.pid;
      await sleep(100);
      expect(proc.running).toBe(true);
      const ns = await run("ip", ["netns", "identify", String(pid)]);
      expect(ns.stdout.trim()).toBe(`${w.prefix}-b`);
    } finally {
      await w.destroy();
    }
    await w.destroy();
    expect(w.destroyed).toBe(true);
    expect((await listNamespaces()).filter((n) => n.startsWith(w.prefix))).toEqual([]);
    expect(existsSync(`/var/run/netns/${w.prefix}-a`)).toBe(false);
    expect(alive(pid)).toBe(false);
    const linksAfter = await rootLinkNames();
    expect(linksAfter.filter((l) => !linksBefore.has(l) && /^(va|vb)$|^ov/.test(l))).toEqual([]);
    expect(existsSync(join(WORLD_REGISTRY_DIR, `${w.prefix}.json`))).toBe(false);
    await expect(w.addNamespace("c")).rejects.toThrow(/destroyed/);
  });

  it("keeps names within IFNAMSIZ and commands within the world", async () => {
    const w = await World.create();
    try {
      await expect(w.addNamespace("toolong12")).rejects.toThrow(/at most/);
      await w.addNamespace("a");
      await expect(w.addNamespace("a")).rejects.toThrow(/already exists/);
      expect(() => w.exec("elsewhere", "true")).toThrow(/not a namespace of world/);
      expect(() => w.start(`${w.prefix}-zz`, "true")).toThrow(/not a namespace of world/);
      const timedOut = await w.exec("a", "sleep", ["5"], { timeoutMs: 300 }).catch((e: unknown) => e);
      expect(timedOut).toBeInstanceOf(CommandError);
      expect((timedOut as CommandError).result.timedOut).toBe(true);
      const failed = await w.exec("a", "false", [], { allowFailure: true });
      expect(failed.code).toBe(1);
      const exited = w.start("a", "sh", ["-c", "echo out; echo err >&2; exit 3"]);
      expect(await exited.exited).toEqual({ code: 3, signal: null });
      expect(exited.stdout).toBe("out\n");
      expect(exited.stderr).toBe("err\n");
      expect(await exited.stop()).toEqual({ code: 3, signal: null });
    } finally {
      await w.destroy();
    }
  });

  it("sweeps worlds whose owner process is gone, and leaves live ones alone", async () => {
    const live = await World.create();
    const prefix = newPrefix();
    const ns = `${prefix}-x`;
    let orphan = 0;
    try {
      await live.addNamespace("a");
      // A world left by an owner that exited without cleaning up, with a process still inside.
      const owner = spawn("true");
      const ownerPid = owner.pid ?? 0;
      await new Promise((resolve) => owner.on("close", resolve));
      mkdirSync(WORLD_REGISTRY_DIR, { recursive: true });
      writeFileSync(
        join(WORLD_REGISTRY_DIR, `${prefix}.json`),
        JSON.stringify({ prefix, ownerPid, ownerStart: "1", namespaces: [ns] }),
      );
      await run("ip", ["netns", "add", ns]);
      const child = spawn("ip", ["netns", "exec", ns, "sleep", "300"], { stdio: "ignore" });
      orphan = child.pid ?? 0;
      await sleep(200);
      expect(alive(orphan)).toBe(true);

      const swept = await sweepStaleWorlds();
      expect(swept).toContain(prefix);
      expect(swept).not.toContain(live.prefix);
      const names = await listNamespaces();
      expect(names).not.toContain(ns);
      expect(names).toContain(`${live.prefix}-a`);
      await sleep(100);
      expect(alive(orphan)).toBe(false);
      expect(existsSync(join(WORLD_REGISTRY_DIR, `${prefix}.json`))).toBe(false);
    } finally {
      await live.destroy();
      await run("ip", ["netns", "del", ns], { allowFailure: true });
    }
  });
});

describe.skipIf(!root)("cluster topologies", () => {
  let w: World;

  beforeAll(async () => {
    w = await World.create();
  });

  afterAll(async () => {
    await w?.destroy();
  });

  it("joins three nodes through an underlay bridge", async () => {
    const c = await buildNodes(w, { count: 3, stem: "h" });
    expect(c.nodes.map((n) => n.underlayIp)).toEqual(
      [1, 2, 3].map((i) => `${c.underlaySubnet.split(".").slice(0, 3).join(".")}.${i}`),
    );
    expect(c.hubNs).toBe(`${w.prefix}-hhub`);
    const [a, , z] = c.nodes;
    const p = await pingUntil(w, a!.name, z!.underlayIp, 5);
    expect(p.received).toBe(1);
  });

  it("runs the kernel vxlan reference overlay across two nodes", async () => {
    const c = await buildNodes(w, { count: 2, mtu: 1500 });
    expect(c.nodes[0]!.nsPath).toBe(`/var/run/netns/${w.prefix}-n1`);
    const ko = await buildKernelOverlay(c, {
      vni: 42,
      pods: [
        { node: 0, name: "ka", ip: "172.31.1.2" },
        { node: 0, name: "kb", ip: "172.31.1.3" },
        { node: 1, name: "kc", ip: "172.31.2.2" },
      ],
    });
    const [ka, kb, kc] = ko.pods;
    expect(ka!.mac).toBe("0a:58:ac:1f:01:02");
    const eth0 = await linkStats(w, "ka", "eth0");
    expect(eth0.mtu).toBe(1450);
    expect(eth0.mac).toBe(ka!.mac);

    expect((await ping(w, "ka", kb!.ip, { count: 3 })).lossPct).toBe(0);
    const vxBefore = await linkStats(w, "n2", "vx0");
    const across = await ping(w, "ka", kc!.ip, { count: 3 });
    expect(across).toMatchObject({ sent: 3, received: 3, lossPct: 0 });
    expect((await ping(w, "kc", ka!.ip, { count: 3 })).lossPct).toBe(0);
    const vxAfter = await linkStats(w, "n2", "vx0");
    expect(vxAfter.rx.packets - vxBefore.rx.packets).toBeGreaterThanOrEqual(3);

    const t = await iperf3(w, "ka", "kc", kc!.ip, { seconds: 2 });
    expect(t.bytesReceived).toBeGreaterThan(1_000_000);
  });
});

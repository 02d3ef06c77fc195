/**
 * The agent's real pod plumbing (src/agent/plumbing.ts `createHostPlumbing`) under a real Agent,
 * in a world of network namespaces this file creates and removes. The switch is the fake of
 * fakes.ts, so each pod namespace gets its TAP `eth0` from `ip tuntap` here, as the switch would
 * create it; the node-wide plumbing (gateway addresses, masquerade) is stubbed, so nothing here
 * touches the host's own namespace.
 *
 * Every process this test process starts is counted (ChildProcess.prototype.spawn, where
 * execFile, spawn and exec all end), besides the plumbing's injected process runner: a
 * best-effort pod's ADD, CHECK and DEL must start none, a tiered pod's ADD only its three `tc`.
 */
import { ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { pino } from "pino";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { Agent } from "../../src/agent/agent.js";
import { createHostPlumbing, ingressDeviceName, type Plumbing } from "../../src/agent/plumbing.js";
import type { AgentResponse } from "../../src/agent/protocol.js";
import { inspectLink } from "../../src/dataplane/netlink.js";
import { run } from "../../src/process/run.js";
import { listEndpoints } from "../../src/model/endpoints.js";
import { listAddresses } from "../../src/model/ipam.js";
import { createNetwork } from "../../src/model/network.js";
import type { Store } from "../../src/store/store.js";
import { World, isRoot } from "../kit/netns/index.js";
import { memoryStore } from "../model/helpers.js";
import { FakeSwitch } from "./fakes.js";

const skip = !isRoot();
if (skip) console.log("test/agent/plumbing.test.ts: skipped, network namespaces need root");

/** Every child process started in this process, as its argv, from the moment it is installed. */
const spawned: string[] = [];
type SpawnOptions = { file: string; args?: string[] };
const proto = ChildProcess.prototype as unknown as { spawn(this: ChildProcess, o: SpawnOptions): unknown };
const originalSpawn = proto.spawn;

describe.skipIf(skip)("pod plumbing under the agent", () => {
  let world: World;
  let store: Store;
  let agent: Agent;
  let dir: string;
  /** What the plumbing's own process runner was asked to run. */
  const ran: string[] = [];

  beforeAll(async () => {
    world = await World.create();
    proto.spawn = function (this: ChildProcess, o: SpawnOptions) {
      spawned.push((o.args ?? [o.file]).join(" "));
      return originalSpawn.call(this, o);
    };
  });

  afterAll(async () => {
    proto.spawn = originalSpawn;
    await world?.destroy();
  });

  beforeEach(async () => {
    store = await memoryStore();
    await createNetwork(store, { name: "red", subnet: "172.30.0.0/16" });
    dir = mkdtempSync(join(tmpdir(), "overlay-plumbing-"));
    const host = createHostPlumbing((file, args, options) => {
      ran.push([file, ...args].join(" "));
      return run(file, args, options);
    });
    const plumbing: Plumbing = {
      ...host,
      configureGateway: async () => {},
      configureMasquerade: async () => {},
      removeMasquerade: async () => {},
    };
    agent = new Agent(
      {
        node: "node1",
        underlayIp: "10.99.0.1",
        store,
        socketPath: join(dir, "agent.sock"),
        logger: pino({ level: "silent" }),
        debounceMs: 1,
      },
      { createSwitch: () => new FakeSwitch(), plumbing },
    );
    await agent.start();
  });

  afterEach(async () => {
    await agent.stop();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  let pods = 0;
  /** A pod namespace with a TAP `eth0`, as the switch leaves it before the plumbing: up. */
  async function podNamespace(withInterface = true): Promise<string> {
    const short = `pod${++pods}`;
    await world.addNamespace(short);
    if (withInterface) {
      await world.ip(short, ["tuntap", "add", "dev", "eth0", "mode", "tap"]);
      await world.ip(short, ["link", "set", "eth0", "mtu", "1450", "up"]);
    }
    return world.nsPath(short);
  }

  function add(netns: string, pod: string, perfTier?: string) {
    return {
      op: "ADD" as const,
      containerId: `ctr-${pod}`,
      netns,
      ifName: "eth0",
      podNamespace: "coffee",
      podName: pod,
      network: "red",
      ...(perfTier ? { perfTier } : {}),
    };
  }

  function okResult(r: AgentResponse) {
    if (!r.ok || r.result === undefined) throw new Error(`expected a result, got ${JSON.stringify(r)}`);
    return r.result;
  }

  /** Runs `fn` and returns the processes started meanwhile, by anyone in this process. */
  async function processesDuring(fn: () => Promise<void>): Promise<{ spawned: string[]; ran: string[] }> {
    const s = spawned.length;
    const r = ran.length;
    await fn();
    return { spawned: spawned.slice(s), ran: ran.slice(r) };
  }

  it("a best-effort pod's ADD, CHECK and DEL start no process, and leave the pod as `ip` would", async () => {
    const netns = await podNamespace();
    let result: ReturnType<typeof okResult> | undefined;
    const during = await processesDuring(async () => {
      result = okResult(await agent.handle(add(netns, "web")));
    });
    expect(during).toEqual({ spawned: [], ran: [] });
    const address = result?.ips[0]?.address ?? "";
    const gateway = result?.ips[0]?.gateway ?? "";
    expect(await inspectLink(netns, "eth0")).toMatchObject({ up: true, ipv4: [address] });

    // The fake switch made no device of the endpoint's MAC: give the TAP the MAC a real one has.
    await world.ip(basename(netns), ["link", "set", "eth0", "address", result?.interfaces[0]?.mac ?? ""]);
    const check = await processesDuring(async () => {
      const r = await agent.handle({ ...add(netns, "web"), op: "CHECK" as const });
      expect(r, JSON.stringify(r)).toEqual({ ok: true, result });
    });
    expect(check).toEqual({ spawned: [], ran: [] });

    const routes = JSON.parse((await world.ip(basename(netns), ["-j", "-4", "route"])).stdout) as {
      dst: string;
      gateway?: string;
      dev: string;
    }[];
    expect(routes).toContainEqual(expect.objectContaining({ dst: "default", gateway, dev: "eth0" }));
    const lo = JSON.parse((await world.ip(basename(netns), ["-j", "link", "show", "lo"])).stdout) as {
      flags: string[];
    }[];
    expect(lo[0]?.flags).toContain("UP");

    const del = await processesDuring(async () => {
      expect(await agent.handle({ op: "DEL", containerId: "ctr-web", ifName: "eth0" })).toEqual({ ok: true });
    });
    expect(del).toEqual({ spawned: [], ran: [] });
    expect((await listEndpoints(store, "red")).entries).toEqual([]);
  });

  it("an ADD retried answers the same and leaves the pod as it was", async () => {
    const netns = await podNamespace();
    const first = okResult(await agent.handle(add(netns, "again")));
    const before = await inspectLink(netns, "eth0");
    const during = await processesDuring(async () => {
      expect(okResult(await agent.handle(add(netns, "again")))).toEqual(first);
    });
    expect(during.spawned).toEqual([]);
    expect(await inspectLink(netns, "eth0")).toEqual(before);
    expect(before?.ipv4).toEqual([first.ips[0]?.address]);
  });

  it("a tiered pod's ADD starts only its three tc; its DEL none, and its IFB device goes", async () => {
    const netns = await podNamespace();
    const ifb = ingressDeviceName("eth0");
    const during = await processesDuring(async () => {
      okResult(await agent.handle(add(netns, "capped", "medium")));
    });
    expect(during.ran).toHaveLength(3);
    expect(during.ran.every((c) => c.startsWith(`nsenter --net=${netns} tc `))).toBe(true);
    expect(during.spawned).toEqual(during.ran);
    expect(await inspectLink(netns, ifb)).toMatchObject({ up: true });

    const del = await processesDuring(async () => {
      expect(await agent.handle({ op: "DEL", containerId: "ctr-capped", ifName: "eth0" })).toEqual({
        ok: true,
      });
    });
    expect(del).toEqual({ spawned: [], ran: [] });
    expect(await inspectLink(netns, ifb)).toBeUndefined();
  });

  it("a pod that cannot be plumbed gets a clear error, its address back, and the agent goes on serving", async () => {
    const bare = await podNamespace(false);
    const r = await agent.handle(add(bare, "broken"));
    expect(r).toEqual({
      ok: false,
      error: { code: 5, msg: `network namespace ${bare}: no interface eth0` },
    });
    expect((await listEndpoints(store, "red")).entries).toEqual([]);
    expect((await listAddresses(store, "red")).entries).toEqual([]);

    const good = await podNamespace();
    const result = okResult(await agent.handle(add(good, "fine")));
    expect((await inspectLink(good, "eth0"))?.ipv4).toEqual([result.ips[0]?.address]);
  });
});

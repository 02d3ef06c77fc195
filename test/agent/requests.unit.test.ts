/**
 * The agent's CNI request handlers (src/agent/requests.ts) as a specification, on a real Agent
 * with an in-memory store, a fake switch and fake plumbing (test/agent/fakes.ts): no root.
 *
 * A pod's VNI comes from its namespace record and from nothing else: with no valid record the pod
 * is not attached at all (isolation fails closed), and the ADD says which namespace and what to do.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { AgentResponse } from "../../src/agent/protocol.js";
import { listEndpoints } from "../../src/model/endpoints.js";
import { listAddresses } from "../../src/model/ipam.js";
import { endpointKey, namespaceKey } from "../../src/model/keys.js";
import { GLOBAL_VNI, ensureNamespace, namespaceVni } from "../../src/model/namespaces.js";
import { createNetwork } from "../../src/model/network.js";
import type { Op, Store } from "../../src/store/store.js";
import { memoryStore } from "../model/helpers.js";
import { startFakeAgent, type FakePlumbing, type FakeSwitch } from "./fakes.js";

/** The store, with a hook run after every transaction that succeeded (the seam of these tests). */
function withTxnHook(store: Store, hook: (ops: readonly Op[]) => Promise<void>): Store {
  return {
    get: (k) => store.get(k),
    list: (p) => store.list(p),
    watch: (p, r, h) => store.watch(p, r, h),
    grantLease: (t) => store.grantLease(t),
    close: () => store.close(),
    txn: async (compares, success, failure) => {
      const r = await store.txn(compares, success, failure);
      if (r.succeeded) await hook(success);
      return r;
    },
  };
}

function add(pod: string, namespace: string, netns = `/run/netns/${pod}`) {
  return {
    op: "ADD" as const,
    containerId: `ctr-${pod}`,
    netns,
    ifName: "eth0",
    podNamespace: namespace,
    podName: pod,
    network: "red",
  };
}

function errorOf(r: AgentResponse): { code: number; msg: string } {
  if (r.ok) throw new Error(`expected an error, got ${JSON.stringify(r)}`);
  return r.error;
}

describe("CNI requests to the agent", () => {
  let store: Store;
  let hooked: ((ops: readonly Op[]) => Promise<void>) | undefined;
  let sw: FakeSwitch;
  let plumbing: FakePlumbing;
  let stop: () => Promise<void>;
  let handle: (
    r: Parameters<import("../../src/agent/agent.js").Agent["handle"]>[0],
  ) => Promise<AgentResponse>;

  beforeEach(async () => {
    const base = await memoryStore();
    await createNetwork(base, { name: "red", subnet: "172.30.0.0/16" });
    hooked = undefined;
    store = withTxnHook(base, async (ops) => {
      if (hooked) await hooked(ops);
    });
    const a = await startFakeAgent(store);
    ({ sw, plumbing, stop } = a);
    handle = (r) => a.agent.handle(r);
    for (const pod of ["c1", "c2", "t1", "t2"]) plumbing.namespaces.add(`/run/netns/${pod}`);
  });

  afterEach(async () => {
    await stop();
    await store.close();
  });

  async function released(): Promise<void> {
    expect((await listEndpoints(store, "red")).entries).toEqual([]);
    expect((await listAddresses(store, "red")).entries).toEqual([]);
  }

  it("ADD attaches the pod on its namespace's VNI and answers its address", async () => {
    const r = await handle(add("c1", "coffee"));
    expect(r.ok, JSON.stringify(r)).toBe(true);
    const vni = await namespaceVni(store, "red", "coffee");
    expect(vni).toBeGreaterThan(GLOBAL_VNI);
    const [port, ...more] = sw.podPorts();
    expect(more).toEqual([]);
    expect(port?.vni).toBe(vni);
    expect(port?.options).toMatchObject({ name: "eth0", netns: "/run/netns/c1", persistent: true });
    const ip = r.ok ? r.result?.ips[0]?.address : undefined;
    expect(ip).toMatch(/^172\.30\.\d+\.\d+\/16$/);
    expect(plumbing.configured).toEqual([
      expect.objectContaining({ netns: "/run/netns/c1", ifname: "eth0" }),
    ]);
  });

  it("ADD fails closed when the namespace record is removed between the endpoint write and the attach", async () => {
    hooked = async (ops) => {
      if (ops.some((o) => o.type === "put" && o.key === endpointKey("red", "tea", "t1"))) {
        hooked = undefined;
        await store.txn([], [{ type: "delete", key: namespaceKey("red", "tea") }]);
      }
    };
    const e = errorOf(await handle(add("t1", "tea")));
    expect(e.code).toBe(11);
    expect(e.msg).toContain("namespace tea has no record on network red");
    expect(sw.podPorts(), "no port on any VNI").toEqual([]);
    await released();
  });

  it("ADD fails closed, naming the damage and the repair, when the namespace record turns invalid before the attach", async () => {
    hooked = async (ops) => {
      if (ops.some((o) => o.type === "put" && o.key === endpointKey("red", "tea", "t1"))) {
        hooked = undefined;
        await store.txn([], [{ type: "put", key: namespaceKey("red", "tea"), value: "{not json" }]);
      }
    };
    const e = errorOf(await handle(add("t1", "tea")));
    expect(e.msg).toMatch(
      /^namespace record tea of network red is invalid: .*; run "dctl network overlay check red --repair"$/,
    );
    expect(sw.podPorts()).toEqual([]);
    await released();
  });

  it("ADD rolls back when the pod cannot be configured: port detached, address released", async () => {
    plumbing.failConfigure = new Error("nsenter: cannot open /run/netns/c1");
    const e = errorOf(await handle(add("c1", "coffee")));
    expect(e.msg).toContain("cannot open /run/netns/c1");
    expect(sw.podPorts()).toEqual([]);
    expect(sw.destroyed).toHaveLength(1);
    await released();
  });

  it("ADD of a pod whose namespace does not exist is refused before anything is written", async () => {
    const e = errorOf(await handle(add("c9", "coffee", "/run/netns/none")));
    expect(e.code).toBe(4);
    await released();
  });

  it("DEL detaches the port and releases the address, and again is a no-op", async () => {
    expect((await handle(add("c1", "coffee"))).ok).toBe(true);
    expect(await handle({ op: "DEL", containerId: "ctr-c1", ifName: "eth0" })).toEqual({ ok: true });
    expect(sw.podPorts()).toEqual([]);
    await released();
    expect(await handle({ op: "DEL", containerId: "ctr-c1", ifName: "eth0" })).toEqual({ ok: true });
  });

  it("GC releases exactly the attachments the runtime no longer lists", async () => {
    for (const [pod, ns] of [
      ["c1", "coffee"],
      ["c2", "coffee"],
      ["t1", "tea"],
    ] as const) {
      expect((await handle(add(pod, ns))).ok).toBe(true);
    }
    // GC reads the agent's view, which follows the store's watch: asked until it has caught up.
    await expect
      .poll(async () => {
        await handle({ op: "GC", valid: [] });
        return (await listEndpoints(store, "red")).entries.length;
      })
      .toBe(0);
    expect(sw.podPorts()).toEqual([]);
  });

  it("GC keeps what the runtime lists", async () => {
    expect((await handle(add("c1", "coffee"))).ok).toBe(true);
    expect((await handle(add("c2", "coffee"))).ok).toBe(true);
    await expect
      .poll(async () => {
        await handle({ op: "GC", valid: [{ containerId: "ctr-c1", ifName: "eth0" }] });
        return (await listEndpoints(store, "red")).entries.map((e) => e.value.pod);
      })
      .toEqual(["c1"]);
    expect(sw.podPorts().map((p) => p.options.netns)).toEqual(["/run/netns/c1"]);
  });

  it("STATUS answers ok when the switch is programmed and the store answers", async () => {
    expect(await handle({ op: "STATUS" })).toEqual({ ok: true });
  });

  it("a namespace made known before the pod keeps the VNI it was given", async () => {
    const ns = await ensureNamespace(store, "red", "tea", "dctl");
    expect((await handle(add("t1", "tea"))).ok).toBe(true);
    expect(sw.podPorts()[0]?.vni).toBe(ns.vni);
  });
});

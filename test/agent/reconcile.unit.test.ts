/**
 * How the agent's switch follows the store (src/agent/reconcile.ts), as a specification: a real
 * Agent on an in-memory store, with a fake switch and fake plumbing (test/agent/fakes.ts), while
 * the test writes the records other nodes and dctl would write, through the model.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Agent } from "../../src/agent/agent.js";
import { desiredState } from "../../src/agent/desired.js";
import { ClusterView } from "../../src/agent/view.js";
import type { RemoteEndpoint } from "../../src/dataplane/switch.js";
import { createEndpoint, deleteEndpoint } from "../../src/model/endpoints.js";
import { macFromIpv4 } from "../../src/model/ipam.js";
import { namespaceKey } from "../../src/model/keys.js";
import {
  GLOBAL_VNI,
  ensureNamespace,
  isolateNamespaces,
  joinNamespaces,
  makeNamespacesGlobal,
  namespaceVni,
} from "../../src/model/namespaces.js";
import { createNetwork } from "../../src/model/network.js";
import { registerNode } from "../../src/model/nodes.js";
import type { Store } from "../../src/store/store.js";
import { memoryStore } from "../model/helpers.js";
import { startFakeAgent, type FakePlumbing, type FakeSwitch } from "./fakes.js";

const NODE2_VTEP = "10.99.0.2";

describe("the agent's switch follows the store", () => {
  let store: Store;
  let agent: Agent;
  let sw: FakeSwitch;
  let plumbing: FakePlumbing;
  let stop: () => Promise<void>;

  beforeEach(async () => {
    store = await memoryStore();
    await createNetwork(store, { name: "red", subnet: "172.30.0.0/16" });
    await registerNode(store, { name: "node2", underlayIp: NODE2_VTEP });
    ({ agent, sw, plumbing, stop } = await startFakeAgent(store, { gcGraceMs: 50 }));
  });

  afterEach(async () => {
    await stop();
    await store.close();
  });

  /** A pod of this node, attached through the agent. */
  async function localPod(pod: string, namespace: string): Promise<void> {
    plumbing.namespaces.add(`/run/netns/${pod}`);
    const r = await agent.handle({
      op: "ADD",
      containerId: `ctr-${pod}`,
      netns: `/run/netns/${pod}`,
      ifName: "eth0",
      podNamespace: namespace,
      podName: pod,
      network: "red",
    });
    expect(r.ok, JSON.stringify(r)).toBe(true);
  }

  /** A pod of node2, as node2's agent would record it. */
  function remotePod(pod: string, namespace: string) {
    return createEndpoint(store, {
      network: "red",
      namespace,
      pod,
      node: "node2",
      containerId: `ctr-${pod}`,
    });
  }

  function portVni(netns: string): number | undefined {
    return sw.podPorts().find((p) => p.options.netns === netns)?.vni;
  }

  it("programs the peers, the global VNI set from the desired state, and other nodes' pods on their VNI", async () => {
    const r = await remotePod("r1", "tea");
    const tea = await namespaceVni(store, "red", "tea");
    await expect
      .poll(() => sw.remotes.get(r.mac))
      .toEqual({ vni: tea, mac: r.mac, ipv4: r.ip, vtep: NODE2_VTEP });
    expect(sw.peers).toEqual([{ ip: NODE2_VTEP }]);
    expect(sw.globalVnis).toEqual([GLOBAL_VNI]);
    // node2's gateway is reachable from every VNI: it is on the global one.
    const gw = [...sw.remotes.values()].find((x) => x.ipv4 === r.gateway);
    expect(gw).toEqual({ vni: GLOBAL_VNI, mac: macFromIpv4(r.gateway), ipv4: r.gateway, vtep: NODE2_VTEP });
  });

  it("applies one endpoint's change as an update of that entry, not a new table", async () => {
    for (let i = 0; i < 6; i++) await remotePod(`r${i}`, "coffee");
    await expect.poll(() => sw.remotes.size).toBe(7); // six pods and node2's gateway
    sw.calls.length = 0;
    const late = await remotePod("late", "coffee");
    await expect.poll(() => sw.remotes.has(late.mac)).toBe(true);
    await deleteEndpoint(store, { network: "red", namespace: "coffee", pod: "r0" });
    await expect.poll(() => sw.remotes.size).toBe(7);
    const tableCalls = sw.calls.filter((c) => c.includes("Remotes"));
    expect(tableCalls).toEqual(["updateRemotes +1 -0", "updateRemotes +0 -1"]);
  });

  it("keeps a running pod's VNI when its namespace record turns invalid, and drops such remote pods: reach is lost, never gained", async () => {
    await localPod("t1", "tea");
    const r = await remotePod("r1", "tea");
    const tea = await namespaceVni(store, "red", "tea");
    await expect.poll(() => sw.remotes.has(r.mac)).toBe(true);
    await store.txn([], [{ type: "put", key: namespaceKey("red", "tea"), value: '{"vni": "garbage"' }]);
    await expect.poll(() => sw.remotes.has(r.mac)).toBe(false);
    await agent.reconcile();
    expect(portVni("/run/netns/t1")).toBe(tea);
    expect(sw.calls.some((c) => c.startsWith("setPortVni"))).toBe(false);
  });

  it("moves a running pod to the global VNI and back to a VNI of its own", async () => {
    await localPod("t1", "tea");
    expect(portVni("/run/netns/t1")).not.toBe(GLOBAL_VNI);
    await makeNamespacesGlobal(store, "red", ["tea"]);
    await expect.poll(() => portVni("/run/netns/t1")).toBe(GLOBAL_VNI);
    await isolateNamespaces(store, "red", ["tea"]);
    const after = await namespaceVni(store, "red", "tea");
    expect(after).not.toBe(GLOBAL_VNI);
    await expect.poll(() => portVni("/run/netns/t1")).toBe(after);
  });

  it("detaches a port whose endpoint was deleted elsewhere", async () => {
    await localPod("c1", "coffee");
    expect(sw.podPorts()).toHaveLength(1);
    await deleteEndpoint(store, { network: "red", namespace: "coffee", pod: "c1" });
    await expect.poll(() => sw.podPorts()).toEqual([]);
  });

  it("releases a pod whose namespace vanished without a DEL, after the grace period", async () => {
    await localPod("c1", "coffee");
    plumbing.namespaces.delete("/run/netns/c1");
    await agent.reconcile(); // notices
    expect(sw.podPorts()).toHaveLength(1);
    await new Promise((r) => setTimeout(r, 80));
    await agent.reconcile(); // grace is up
    expect(sw.podPorts()).toEqual([]);
    expect(await store.list("/overlay/v1/endpoint/")).toMatchObject({ items: [] });
  });

  it("after a restart re-attaches its pods on their VNI, and leaves a pod without a valid namespace record unattached", async () => {
    await localPod("c1", "coffee");
    await localPod("t1", "tea");
    const coffee = await namespaceVni(store, "red", "coffee");
    await stop();
    await store.txn([], [{ type: "put", key: namespaceKey("red", "tea"), value: "[]" }]);
    const again = await startFakeAgent(store);
    stop = again.stop;
    again.plumbing.namespaces.add("/run/netns/c1");
    again.plumbing.namespaces.add("/run/netns/t1");
    await again.agent.reconcile();
    const ports = again.sw.podPorts();
    expect(ports.map((p) => [p.options.netns, p.vni])).toEqual([["/run/netns/c1", coffee]]);
    expect(again.plumbing.configured.map((c) => c.netns)).toEqual(["/run/netns/c1"]);
  });
});

/** A store whose listings can be made to fail, and whose watches the test can reset. */
class FlakyStore {
  failLists = 0;
  readonly resets: ((reason: string) => void)[] = [];
  constructor(readonly base: Store) {}
  store(): Store {
    const b = this.base;
    return {
      get: (k) => b.get(k),
      txn: (c, s, f) => b.txn(c, s, f),
      grantLease: (t) => b.grantLease(t),
      close: () => b.close(),
      list: async (p) => {
        if (this.failLists > 0) {
          this.failLists--;
          throw new Error("list failed: 8 RESOURCE_EXHAUSTED: Received message larger than max");
        }
        return b.list(p);
      },
      watch: async (p, r, h) => {
        this.resets.push((reason) => h.onReset(reason));
        return b.watch(p, r, h);
      },
    };
  }
  /** Resets the newest watch, as a compaction would. */
  reset(): void {
    const r = this.resets[this.resets.length - 1];
    if (r === undefined) throw new Error("no watch to reset");
    r("history compacted");
  }
}

describe("the agent never goes deaf in silence, and a storm of changes ends in the store's picture", () => {
  let base: Store;
  let flaky: FlakyStore;
  let agent: Agent;
  let sw: FakeSwitch;
  let stop: () => Promise<void>;

  beforeEach(async () => {
    base = await memoryStore();
    await createNetwork(base, { name: "red", subnet: "172.30.0.0/16" });
    await registerNode(base, { name: "node2", underlayIp: NODE2_VTEP });
    await registerNode(base, { name: "node3", underlayIp: "10.99.0.3" });
    flaky = new FlakyStore(base);
    ({ agent, sw, stop } = await startFakeAgent(flaky.store()));
  });

  afterEach(async () => {
    await stop();
    await base.close();
  });

  const pod = (name: string, namespace: string, node = "node2") =>
    createEndpoint(base, { network: "red", namespace, pod: name, node, containerId: `ctr-${name}` });

  /** What a fresh agent would program from the store as it is now. */
  async function storePicture(): Promise<Map<string, RemoteEndpoint>> {
    const fresh = new ClusterView(base, { onChange: () => undefined, onProblem: () => undefined }, "node1");
    await fresh.start();
    const want = desiredState(fresh.records, "node1").remotes;
    await fresh.close();
    return new Map(want.map((r) => [r.mac, r]));
  }

  it("says when it cannot list the store, retries, and then applies every change made meanwhile", async () => {
    const r1 = await pod("r1", "coffee");
    await expect.poll(() => sw.remotes.has(r1.mac)).toBe(true);
    flaky.failLists = 2;
    flaky.reset();
    await expect.poll(() => agent.state().storeTroubles).toBeGreaterThanOrEqual(1);
    expect(agent.state().following).toBe(false);
    const status = await agent.handle({ op: "STATUS" });
    expect(status).toMatchObject({ ok: false, error: { code: 50 } });
    expect(JSON.stringify(status)).toContain("not following the cluster store");
    // Written while the agent cannot read: a new pod, and r1 gone.
    const r2 = await pod("r2", "coffee");
    await deleteEndpoint(base, { network: "red", namespace: "coffee", pod: "r1" });
    await expect.poll(() => agent.state().following, { timeout: 15_000 }).toBe(true);
    await expect.poll(() => [sw.remotes.has(r2.mac), sw.remotes.has(r1.mac)]).toEqual([true, false]);
    expect(await agent.handle({ op: "STATUS" })).toEqual({ ok: true });
    expect(new Map(sw.remotes)).toEqual(await storePicture());
  });

  it("applies a storm of changes one by one, a re-list in the middle included, and ends equal to the store", async () => {
    await ensureNamespace(base, "red", "tea", "dctl");
    const made = await Promise.all(
      Array.from({ length: 120 }, (_, i) =>
        pod(`p${i}`, i % 2 ? "coffee" : "tea", i % 3 ? "node2" : "node3"),
      ),
    );
    await expect.poll(() => sw.remotes.size, { timeout: 10_000 }).toBeGreaterThanOrEqual(120);
    sw.calls.length = 0;
    const storm = [
      ...made
        .slice(0, 40)
        .map((e) => deleteEndpoint(base, { network: "red", namespace: e.namespace, pod: e.pod })),
      ...Array.from({ length: 40 }, (_, i) => pod(`q${i}`, "coffee")),
      joinNamespaces(base, "red", ["coffee", "tea"]),
    ];
    flaky.reset(); // a compaction in the middle: the view lists again
    await Promise.all(storm);
    await isolateNamespaces(base, "red", ["tea"]);
    await base.txn([], [{ type: "delete", key: "/overlay/v1/node/node3" }]);
    const want = await storePicture();
    await expect.poll(() => new Map(sw.remotes), { timeout: 10_000 }).toEqual(want);
    // Per change, not per table: once settled, a change goes through updateRemotes. (Within the
    // storm, a slow machine may let the re-list absorb every change, so it is asked of one more.)
    sw.calls.length = 0;
    const last = await pod("z1", "coffee");
    await expect.poll(() => sw.remotes.has(last.mac)).toBe(true);
    const updates = sw.calls.filter((c) => c.startsWith("updateRemotes")).length;
    expect(updates).toBeGreaterThan(0);
  });
});

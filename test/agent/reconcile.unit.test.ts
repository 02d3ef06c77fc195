/**
 * How the agent's switch follows the store (src/agent/reconcile.ts), as a specification: a real
 * Agent on an in-memory store, with a fake switch and fake plumbing (test/agent/fakes.ts), while
 * the test writes the records other nodes and dctl would write, through the model.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Agent } from "../../src/agent/agent.js";
import { createEndpoint, deleteEndpoint } from "../../src/model/endpoints.js";
import { macFromIpv4 } from "../../src/model/ipam.js";
import { namespaceKey } from "../../src/model/keys.js";
import {
  GLOBAL_VNI,
  isolateNamespaces,
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

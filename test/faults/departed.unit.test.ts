/**
 * releaseDepartedNode and DepartedNodeGc on SQLite: nothing is released while the node is
 * registered or before the grace period; afterwards its endpoints, addresses (also ones without
 * an endpoint) and empty blocks go, and nothing of another node.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { pino } from "pino";
import type { Store } from "../../src/store/store.js";
import {
  allocateAddress,
  createEndpoint,
  createNetwork,
  listAddresses,
  listBlocks,
  listEndpoints,
  registerNode,
} from "../../src/model/index.js";
import { nodeKey } from "../../src/model/keys.js";
import { DepartedNodeGc } from "../../src/agent/gc.js";
import { releaseDepartedNode } from "../../src/model/departed.js";
import { ClusterView } from "../../src/agent/view.js";
import { memoryStore, owner } from "../model/helpers.js";

let store: Store;
beforeEach(async () => {
  store = await memoryStore();
  await createNetwork(store, { name: "red", subnet: "172.30.0.0/16" });
  await registerNode(store, { name: "n1", underlayIp: "10.0.0.1" });
  await registerNode(store, { name: "n2", underlayIp: "10.0.0.2" });
  const pod = (node: string, name: string) =>
    createEndpoint(store, { network: "red", namespace: "coffee", pod: name, node, containerId: `c-${name}` });
  await pod("n1", "a");
  await pod("n2", "b");
  await pod("n2", "c");
  await allocateAddress(store, { network: "red", node: "n2", owner: owner("crashed") });
});
afterEach(async () => {
  await store.close();
});

async function held(node: string) {
  return {
    endpoints: (await listEndpoints(store, "red", { node })).entries.length,
    addresses: (await listAddresses(store, "red")).entries.filter((e) => e.value.node === node).length,
    blocks: (await listBlocks(store, "red")).entries.filter((e) => e.value.node === node).length,
  };
}

describe("departed nodes", () => {
  it("releases nothing while the node is registered", async () => {
    const r = await releaseDepartedNode(store, "n2", ["red"]);
    expect(r).toEqual({ node: "n2", endpoints: [], addresses: [], blocks: [] });
    expect(await held("n2")).toEqual({ endpoints: 2, addresses: 3, blocks: 1 });
  });

  it("releases the endpoints, addresses and empty blocks of a node without a registration", async () => {
    await store.txn([], [{ type: "delete", key: nodeKey("n2") }]);
    const r = await releaseDepartedNode(store, "n2", ["red"]);
    expect(r.endpoints).toHaveLength(2);
    expect(r.addresses).toHaveLength(1);
    expect(r.blocks).toEqual(["red:172.30.1.0/24"]);
    expect(await held("n2")).toEqual({ endpoints: 0, addresses: 0, blocks: 0 });
    expect(await held("n1")).toEqual({ endpoints: 1, addresses: 1, blocks: 1 });
    // Idempotent: a second agent doing the same finds nothing left.
    expect(await releaseDepartedNode(store, "n2", ["red"])).toEqual({
      node: "n2",
      endpoints: [],
      addresses: [],
      blocks: [],
    });
  });

  it("waits the grace period from when the registration was first seen gone", async () => {
    const view = new ClusterView(store, { onChange: () => undefined, onProblem: () => undefined });
    await view.start();
    const gc = new DepartedNodeGc({ store, self: "n1", logger: pino({ level: "silent" }), graceMs: 1000 });
    try {
      await store.txn([], [{ type: "delete", key: nodeKey("n2") }]);
      await new Promise((r) => setTimeout(r, 100));
      await gc.tick(view.snapshot(), 0);
      await gc.tick(view.snapshot(), 999);
      expect(await held("n2")).toEqual({ endpoints: 2, addresses: 3, blocks: 1 });
      // The node comes back before the grace is over: the clock starts again when it leaves again.
      await registerNode(store, { name: "n2", underlayIp: "10.0.0.2" });
      await new Promise((r) => setTimeout(r, 100));
      await gc.tick(view.snapshot(), 1500);
      await store.txn([], [{ type: "delete", key: nodeKey("n2") }]);
      await new Promise((r) => setTimeout(r, 100));
      await gc.tick(view.snapshot(), 2000);
      await gc.tick(view.snapshot(), 2999);
      expect(await held("n2")).toEqual({ endpoints: 2, addresses: 3, blocks: 1 });
      await gc.tick(view.snapshot(), 3000);
      expect(await held("n2")).toEqual({ endpoints: 0, addresses: 0, blocks: 0 });
    } finally {
      await gc.stop();
      await view.close();
    }
  });
});

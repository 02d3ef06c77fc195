import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { openStore } from "../../src/store/index.js";
import type { Op, Store } from "../../src/store/store.js";
import {
  OverlayError,
  allBlocks,
  allocateAddress,
  blockGateway,
  blockOf,
  createNetwork,
  ensureNodeBlock,
  getNetwork,
  listAddresses,
  listBlocks,
  macFromIpv4,
  nodeBlocks,
  releaseAddress,
  releaseEmptyBlocks,
} from "../../src/model/index.js";
import { blockKey } from "../../src/model/keys.js";
import { memoryStore, owner, tempDir } from "./helpers.js";

let store: Store;
beforeEach(async () => {
  store = await memoryStore();
});
afterEach(async () => {
  await store.close();
});

describe("pure IPAM helpers", () => {
  it("derives the MAC from the address", () => {
    expect(macFromIpv4("172.30.8.2")).toBe("0a:58:ac:1e:08:02");
    expect(macFromIpv4("10.0.0.255")).toBe("0a:58:0a:00:00:ff");
    expect(() => macFromIpv4("10.0.0")).toThrow('invalid IPv4 address "10.0.0"');
  });

  it("carves the /16 into blocks and finds an address's block and gateway", async () => {
    const net = await createNetwork(store, { name: "red", subnet: "172.30.0.0/16", blockPrefix: 20 });
    const blocks = allBlocks(net);
    expect(blocks).toHaveLength(16);
    expect(blocks[1]).toBe("172.30.16.0/20");
    expect(blockOf(net, "172.30.17.9")).toBe("172.30.16.0/20");
    expect(blockGateway("172.30.16.0/20")).toBe("172.30.16.1");
    expect(() => blockOf(net, "172.31.0.1")).toThrow(
      'address "172.31.0.1" is not in the subnet 172.30.0.0/16 of network red',
    );
  });
});

describe("allocateAddress", () => {
  it("claims a block for the node and starts after the gateway", async () => {
    await createNetwork(store, { name: "red", subnet: "172.30.0.0/16" });
    const a = await allocateAddress(store, { network: "red", node: "n1", owner: owner("p1") });
    expect(a).toEqual({
      network: "red",
      ip: "172.30.0.2",
      prefixLength: 16,
      gateway: "172.30.0.1",
      mac: "0a:58:ac:1e:00:02",
      block: "172.30.0.0/24",
      node: "n1",
    });
    const b = await allocateAddress(store, { network: "red", node: "n2", owner: owner("p2") });
    expect(b.ip).toBe("172.30.1.2");
    expect(b.gateway).toBe("172.30.1.1");
    const c = await allocateAddress(store, { network: "red", node: "n1", owner: owner("p3") });
    expect(c.ip).toBe("172.30.0.3");
    expect(await nodeBlocks(store, "red", "n1")).toEqual([{ cidr: "172.30.0.0/24", gateway: "172.30.0.1" }]);
  });

  it("claims another block when the node's block is full, never using network, gateway or broadcast", async () => {
    await createNetwork(store, { name: "red", subnet: "172.30.0.0/16", blockPrefix: 28 });
    const ips: string[] = [];
    for (let i = 0; i < 14; i++) {
      ips.push((await allocateAddress(store, { network: "red", node: "n1", owner: owner(`p${i}`) })).ip);
    }
    // A /28 holds 16 addresses: .0 network, .1 gateway, .15 broadcast, 13 for pods.
    expect(ips.slice(0, 13)).toEqual(Array.from({ length: 13 }, (_, i) => `172.30.0.${i + 2}`));
    expect(ips[13]).toBe("172.30.0.18");
    expect((await nodeBlocks(store, "red", "n1")).map((b) => b.cidr)).toEqual([
      "172.30.0.0/28",
      "172.30.0.16/28",
    ]);
  });

  it("reports an exhausted pool", async () => {
    const net = await createNetwork(store, { name: "red", subnet: "172.30.0.0/16", blockPrefix: 28 });
    const blocks = allBlocks(net);
    const ops: Op[] = blocks.slice(0, -1).map((cidr) => ({
      type: "put",
      key: blockKey("red", cidr),
      value: JSON.stringify({ schemaVersion: 1, network: "red", cidr, node: "other", claimedAt: "t" }),
    }));
    await store.txn([], ops);
    for (let i = 0; i < 13; i++)
      await allocateAddress(store, { network: "red", node: "n1", owner: owner(`p${i}`) });
    const e = await allocateAddress(store, { network: "red", node: "n1", owner: owner("last") }).catch(
      (x: unknown) => x,
    );
    expect(e).toBeInstanceOf(OverlayError);
    expect((e as OverlayError).code).toBe("EXHAUSTED");
    expect((e as OverlayError).message).toBe(
      "address pool of network red (172.30.0.0/16) is exhausted: all 4096 blocks of /28 are claimed and the blocks of node n1 are full",
    );
  });

  it("fails on an unknown network and a bad node name", async () => {
    await expect(allocateAddress(store, { network: "red", node: "n1", owner: owner("p") })).rejects.toThrow(
      "overlay network red not found",
    );
    await createNetwork(store, { name: "red", subnet: "172.30.0.0/16" });
    await expect(allocateAddress(store, { network: "red", node: "N_1", owner: owner("p") })).rejects.toThrow(
      /invalid node name "N_1"/,
    );
  });

  it("ensureNodeBlock claims one block once", async () => {
    await createNetwork(store, { name: "red", subnet: "172.30.0.0/16" });
    const first = await ensureNodeBlock(store, "red", "n1");
    expect(first).toEqual([{ cidr: "172.30.0.0/24", gateway: "172.30.0.1" }]);
    expect(await ensureNodeBlock(store, "red", "n1")).toEqual(first);
    expect(
      await Promise.all([ensureNodeBlock(store, "red", "n2"), ensureNodeBlock(store, "red", "n2")]),
    ).toEqual([
      [{ cidr: "172.30.1.0/24", gateway: "172.30.1.1" }],
      [{ cidr: "172.30.1.0/24", gateway: "172.30.1.1" }],
    ]);
  });
});

describe("releaseAddress", () => {
  it("returns the address to the pool, idempotently, and only for its owner when asked", async () => {
    await createNetwork(store, { name: "red", subnet: "172.30.0.0/16" });
    const a = await allocateAddress(store, { network: "red", node: "n1", owner: owner("p1") });
    await allocateAddress(store, { network: "red", node: "n1", owner: owner("p2") });
    expect(await releaseAddress(store, { network: "red", ip: a.ip, containerId: "someone-else" })).toBe(
      false,
    );
    expect(await releaseAddress(store, { network: "red", ip: a.ip, containerId: "ctr-p1" })).toBe(true);
    expect(await releaseAddress(store, { network: "red", ip: a.ip })).toBe(false);
    expect((await listAddresses(store, "red")).entries.map((e) => e.value.ip)).toEqual(["172.30.0.3"]);
    const again = await allocateAddress(store, { network: "red", node: "n1", owner: owner("p3") });
    expect(again.ip).toBe(a.ip);
  });
});

describe("releaseEmptyBlocks", () => {
  it("frees only the node's blocks that hold no address", async () => {
    await createNetwork(store, { name: "red", subnet: "172.30.0.0/16", blockPrefix: 28 });
    const held: string[] = [];
    for (let i = 0; i < 14; i++) {
      held.push((await allocateAddress(store, { network: "red", node: "gone", owner: owner(`p${i}`) })).ip);
    }
    await ensureNodeBlock(store, "red", "alive");
    for (const ip of held.slice(0, 13)) await releaseAddress(store, { network: "red", ip });
    expect(await releaseEmptyBlocks(store, "red", "gone")).toEqual(["172.30.0.0/28"]);
    expect((await nodeBlocks(store, "red", "gone")).map((b) => b.cidr)).toEqual(["172.30.0.16/28"]);
    expect((await nodeBlocks(store, "red", "alive")).map((b) => b.cidr)).toEqual(["172.30.0.32/28"]);
    // The freed block is the next one claimed.
    const next = await allocateAddress(store, { network: "red", node: "new", owner: owner("x") });
    expect(next.block).toBe("172.30.0.0/28");
  });
});

describe("concurrency", () => {
  it("16 concurrent allocations through one store handle each commit on their first transaction", async () => {
    await createNetwork(store, { name: "red", subnet: "172.30.0.0/16" });
    await ensureNodeBlock(store, "red", "n1");
    // Counts the transactions that lose (a lost race is a transaction that did not succeed).
    let lost = 0;
    const counting: Store = Object.create(store) as Store;
    counting.txn = async (...args: Parameters<Store["txn"]>) => {
      const r = await store.txn(...args);
      if (!r.succeeded) lost++;
      return r;
    };
    const results = await Promise.all(
      Array.from({ length: 16 }, (_, i) =>
        allocateAddress(counting, { network: "red", node: "n1", owner: owner(`p${i}`) }),
      ),
    );
    expect(new Set(results.map((r) => r.ip)).size).toBe(16);
    expect(lost).toBe(0);
    // The lowest 16 addresses after the gateway, none skipped.
    const last = results.map((r) => Number(r.ip.split(".")[3])).sort((a, b) => a - b);
    expect(last).toEqual(Array.from({ length: 16 }, (_, i) => i + 2));
  });

  it("never hands out an address twice: 240 concurrent allocations from 4 store instances on one file", async () => {
    const { dir, cleanup } = tempDir();
    const url = `sqlite:${dir}/store.db`;
    const stores = await Promise.all([0, 1, 2, 3].map(() => openStore(url)));
    try {
      await createNetwork(stores[0]!, { name: "red", subnet: "172.30.0.0/16", blockPrefix: 26 });
      const nodes = ["n1", "n2", "n3"];
      // Every store instance allocates for every node, so allocators for one node contend for
      // the same block from different connections, and blocks fill (a /26 holds 61 pods).
      const results = await Promise.all(
        Array.from({ length: 240 }, (_, i) =>
          allocateAddress(stores[i % 4]!, { network: "red", node: nodes[i % 3]!, owner: owner(`p${i}`) }),
        ),
      );
      const ips = results.map((r) => r.ip);
      expect(new Set(ips).size).toBe(240);
      const stored = (await listAddresses(stores[1]!, "red")).entries.map((e) => e.value);
      expect(stored).toHaveLength(240);
      expect(new Set(stored.map((s) => s.owner.pod)).size).toBe(240);
      const net = (await getNetwork(stores[2]!, "red")).value;
      for (const r of results) expect(blockOf(net, r.ip)).toBe(r.block);
      // Each node got just enough blocks: 80 pods need two /26 blocks.
      const blocks = (await listBlocks(stores[3]!, "red")).entries.map((e) => e.value);
      for (const n of nodes) expect(blocks.filter((b) => b.node === n)).toHaveLength(2);

      // Concurrent release and reallocation keeps the count exact.
      await Promise.all(
        results.slice(0, 100).map((r, i) => releaseAddress(stores[i % 4]!, { network: "red", ip: r.ip })),
      );
      const more = await Promise.all(
        Array.from({ length: 100 }, (_, i) =>
          allocateAddress(stores[i % 4]!, { network: "red", node: nodes[i % 3]!, owner: owner(`q${i}`) }),
        ),
      );
      const all = [...results.slice(100).map((r) => r.ip), ...more.map((m) => m.ip)];
      expect(new Set(all).size).toBe(240);
      expect((await listAddresses(stores[0]!, "red")).entries).toHaveLength(240);
    } finally {
      await Promise.all(stores.map((s) => s.close()));
      cleanup();
    }
  });
});

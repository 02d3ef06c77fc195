/**
 * The IPAM consistency check on SQLite: leaks and inconsistencies are made by writing records
 * directly; the check reports exactly them, the repair fixes what it can, and a second check is
 * clean.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Store } from "../../src/store/store.js";
import { checkNetwork, repairNetwork, type CheckIssue } from "../../src/model/check.js";
import {
  createEndpoint,
  createNetwork,
  listAddresses,
  registerNode,
  type AddressRecord,
  type BlockRecord,
  type EndpointRecord,
} from "../../src/model/index.js";
import { addressKey, blockKey, endpointKey } from "../../src/model/keys.js";
import { memoryStore } from "./helpers.js";

let store: Store;
let a: EndpointRecord;
let b: EndpointRecord;

const put = (key: string, value: object) =>
  store.txn([], [{ type: "put", key, value: JSON.stringify(value) }]);
const del = (key: string) => store.txn([], [{ type: "delete", key }]);
const OLD = "2020-01-01T00:00:00.000Z";

function leak(ip: string, allocatedAt = OLD): AddressRecord {
  return {
    schemaVersion: 1,
    network: "red",
    ip,
    block: "172.30.0.0/24",
    node: "n1",
    owner: { namespace: "coffee", pod: `ghost-${ip}`, containerId: `c-ghost-${ip}`, ifname: "eth0" },
    allocatedAt,
  };
}

const summary = (issues: CheckIssue[]) => issues.map((i) => `${i.kind} ${i.ip} ${i.pod}`);

beforeEach(async () => {
  store = await memoryStore();
  await createNetwork(store, { name: "red", subnet: "172.30.0.0/16" });
  await registerNode(store, { name: "n1", underlayIp: "10.0.0.1" });
  const pod = (name: string) =>
    createEndpoint(store, {
      network: "red",
      namespace: "coffee",
      pod: name,
      node: "n1",
      containerId: `c-${name}`,
    });
  a = await pod("a");
  b = await pod("b");
  await pod("c");
});
afterEach(async () => {
  await store.close();
});

describe("overlay check", () => {
  it("finds nothing in a network written only through the model", async () => {
    const r = await checkNetwork(store, "red");
    expect(r).toMatchObject({
      consistent: true,
      issues: [],
      counts: { endpoints: 3, addresses: 3, blocks: 1 },
    });
  });

  it("reports exactly the leaks and inconsistencies written into the store, and repairs them", async () => {
    await put(addressKey("red", "172.30.0.0/24", "172.30.0.50"), leak("172.30.0.50"));
    await del(addressKey("red", a.block, a.ip));
    const stolen: AddressRecord = {
      schemaVersion: 1,
      network: "red",
      ip: b.ip,
      block: b.block,
      node: "n1",
      owner: { namespace: "coffee", pod: "b", containerId: "c-old-sandbox", ifname: "eth0" },
      allocatedAt: OLD,
    };
    await put(addressKey("red", b.block, b.ip), stolen);

    const before = await checkNetwork(store, "red");
    expect(before.consistent).toBe(false);
    expect(summary(before.issues)).toEqual([
      "leaked-address 172.30.0.50 coffee/ghost-172.30.0.50",
      `missing-address ${a.ip} coffee/a`,
      `address-owner-mismatch ${b.ip} coffee/b`,
    ]);

    const outcomes = await repairNetwork(store, "red");
    expect(outcomes.map((o) => `${o.issue.kind} ${o.action}`)).toEqual([
      "leaked-address released",
      "missing-address recreated",
      "address-owner-mismatch owner-rewritten",
    ]);
    const after = await checkNetwork(store, "red");
    expect(after).toMatchObject({ consistent: true, issues: [], counts: { endpoints: 3, addresses: 3 } });
    const owners = (await listAddresses(store, "red")).entries.map((e) => [
      e.value.ip,
      e.value.owner.containerId,
    ]);
    expect(owners).toContainEqual([a.ip, "c-a"]);
    expect(owners).toContainEqual([b.ip, "c-b"]);
  });

  it("reports duplicates and blocks of unregistered nodes, and leaves them to people and agents", async () => {
    const dup: EndpointRecord = { ...a, pod: "dup", containerId: "c-dup" };
    await put(endpointKey("red", "coffee", "dup"), dup);
    const orphan: BlockRecord = {
      schemaVersion: 1,
      network: "red",
      cidr: "172.30.9.0/24",
      node: "gone",
      claimedAt: OLD,
    };
    await put(blockKey("red", "172.30.9.0/24"), orphan);

    const before = await checkNetwork(store, "red");
    expect(summary(before.issues)).toEqual([
      `address-owner-mismatch ${a.ip} coffee/dup`,
      `duplicate-address ${a.ip} coffee/a`,
      `duplicate-address ${a.ip} coffee/dup`,
      "block-of-unregistered-node 172.30.9.0/24 ",
    ]);
    const outcomes = await repairNetwork(store, "red");
    expect(outcomes.map((o) => o.action)).toEqual([
      "not-repairable",
      "not-repairable",
      "not-repairable",
      "not-repairable",
    ]);
    // The address still belongs to the pod that had it first.
    const rec = (await listAddresses(store, "red")).entries.find((e) => e.value.ip === a.ip);
    expect(rec?.value.owner.containerId).toBe("c-a");
    expect((await checkNetwork(store, "red")).issues).toEqual(before.issues);
  });

  it("keeps a leaked address younger than the grace period", async () => {
    await put(
      addressKey("red", "172.30.0.0/24", "172.30.0.51"),
      leak("172.30.0.51", new Date().toISOString()),
    );
    const kept = await repairNetwork(store, "red", { graceMs: 60_000 });
    expect(kept.map((o) => o.action)).toEqual(["kept"]);
    expect((await checkNetwork(store, "red")).consistent).toBe(false);
    const released = await repairNetwork(store, "red", { graceMs: 0 });
    expect(released.map((o) => o.action)).toEqual(["released"]);
    expect((await checkNetwork(store, "red")).consistent).toBe(true);
  });

  it("does not release a leak when an endpoint is written between the check and the release", async () => {
    const ip = "172.30.0.52";
    await put(addressKey("red", "172.30.0.0/24", ip), leak(ip));
    // A store that lets a pod take the address just before the repair's first write.
    let raced = false;
    const racing: Store = {
      get: (k) => store.get(k),
      list: (p) => store.list(p),
      watch: (p, r, h) => store.watch(p, r, h),
      grantLease: (t) => store.grantLease(t),
      close: () => Promise.resolve(),
      txn: async (compares, success, failure) => {
        if (!raced) {
          raced = true;
          const e: EndpointRecord = {
            ...a,
            pod: "late",
            ip,
            mac: "0a:58:ac:1e:00:34",
            containerId: `c-ghost-${ip}`,
          };
          await put(endpointKey("red", "coffee", "late"), e);
        }
        return store.txn(compares, success, failure);
      },
    };
    const outcomes = await repairNetwork(racing, "red");
    expect(outcomes.map((o) => o.action)).toEqual(["kept"]);
    expect((await listAddresses(store, "red")).entries.map((e) => e.value.ip)).toContain(ip);
    expect((await checkNetwork(store, "red")).consistent).toBe(true);
  });
});

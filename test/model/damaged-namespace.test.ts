/**
 * A namespace record overwritten with something that fails validation, on SQLite and on etcd:
 * every mutation that must read or write it fails at once with an error naming it and saying how
 * to fix it (never a loop of transactions that cannot win), other namespaces keep working and never
 * get the VNI the damaged record still holds, and `check` reports it and `--repair` rebuilds it.
 */
import { afterAll, beforeAll, beforeEach, afterEach, describe, expect, it } from "vitest";
import { checkNetwork, repairNetwork } from "../../src/model/check.js";
import {
  GLOBAL_VNI,
  createEndpoint,
  createNetwork,
  deleteEndpoint,
  deleteNamespace,
  ensureNamespace,
  isolateNamespaces,
  joinNamespaces,
  listAddresses,
  listEndpoints,
  listNamespaces,
  makeNamespacesGlobal,
  parseNamespace,
  registerNode,
  type NamespaceRecord,
} from "../../src/model/index.js";
import { ROOT, namespaceKey } from "../../src/model/keys.js";
import { openStore } from "../../src/store/index.js";
import type { Store } from "../../src/store/store.js";
import { startEtcd, type TestEtcd } from "../helpers/etcd.js";
import { expectWithin } from "../helpers/timing.js";
import { rejection } from "./helpers.js";

const TEA = namespaceKey("red", "tea");

/** The problem the parser finds in `value`, as the error must quote it. */
function problemOf(value: string): string {
  const parsed = parseNamespace({ key: TEA, value });
  if (parsed.ok) throw new Error(`${value} is a valid namespace record`);
  return parsed.problem.problem;
}

function namedError(problem: string): string {
  return `namespace record tea of network red is invalid: ${problem}; run "dctl network overlay check red --repair"`;
}

/** The store, counting transactions and failing any call past `limit` (so a loop ends quickly). */
function counting(inner: Store, limit = 20): { store: Store; txns: () => number } {
  let n = 0;
  const store: Store = {
    get: (k) => inner.get(k),
    list: (p) => inner.list(p),
    watch: (p, r, h) => inner.watch(p, r, h),
    grantLease: (t) => inner.grantLease(t),
    close: () => Promise.resolve(),
    txn: (compares, success, failure) => {
      n++;
      if (n > limit) return Promise.reject(new Error(`more than ${limit} transactions: looping`));
      return inner.txn(compares, success, failure);
    },
  };
  return { store, txns: () => n };
}

async function write(store: Store, key: string, value: string): Promise<void> {
  await store.txn([], [{ type: "put", key, value }]);
}

async function record(store: Store, name: string): Promise<NamespaceRecord | undefined> {
  return (await listNamespaces(store, "red")).entries.find((e) => e.value.name === name)?.value;
}

/** Damage of every kind a reader meets: each fails validation in its own way. */
const DAMAGE: Record<string, string> = {
  "invalid JSON": '{"schemaVersion":1,"network":"red","name":"tea","vni":41',
  "not an object": "[]",
  "no schemaVersion": JSON.stringify({ network: "red", name: "tea", vni: 4100, sources: ["pod"] }),
  "a field of the wrong type": JSON.stringify({
    schemaVersion: 1,
    network: "red",
    name: "tea",
    vni: 4100,
    sources: "pod",
    createdAt: "t",
  }),
};

/** tea's record with a readable VNI (4100, as ensureNamespace gave it) but sources of the wrong type. */
const READABLE = DAMAGE["a field of the wrong type"] as string;
const UNREADABLE = DAMAGE["invalid JSON"] as string;

interface Backend {
  name: string;
  open(): Promise<Store>;
  stop(): Promise<void>;
}

/** Empties what the previous test wrote (the store outlives the tests of its backend). */
async function reset(store: Store): Promise<void> {
  await store.txn([], [{ type: "deletePrefix", prefix: ROOT }]);
}

let etcd: TestEtcd | undefined;
const backends: Backend[] = [
  {
    name: "SQLite",
    open: () => openStore("sqlite::memory:"),
    stop: () => Promise.resolve(),
  },
  {
    name: "etcd",
    open: async () => {
      etcd ??= await startEtcd();
      return openStore(etcd.url);
    },
    stop: async () => {
      await etcd?.stop();
      etcd = undefined;
    },
  },
];

describe.each(backends)("a damaged namespace record on $name", (backend) => {
  let store: Store;
  beforeAll(async () => {
    store = await backend.open();
  }, 60_000);
  afterAll(async () => {
    await store.close();
    await backend.stop();
  });
  beforeEach(async () => {
    await reset(store);
    await createNetwork(store, { name: "red", subnet: "172.30.0.0/16" });
    await registerNode(store, { name: "n1", underlayIp: "10.0.0.1" });
    await createEndpoint(store, {
      network: "red",
      namespace: "coffee",
      pod: "a",
      node: "n1",
      containerId: "c-a",
    });
    await createEndpoint(store, {
      network: "red",
      namespace: "tea",
      pod: "t",
      node: "n1",
      containerId: "c-t",
    });
    // The builtin namespaces hold 1 and 4096-4098; coffee got 4099 and tea 4100.
    expect((await record(store, "tea"))?.vni).toBe(4100);
  });
  afterEach(async () => {
    await reset(store);
  });

  describe("is named at once by every mutation that must read or write it", () => {
    it.each(Object.entries(DAMAGE))("ensureNamespace fails fast on %s", async (_kind, value) => {
      await write(store, TEA, value);
      const c = counting(store);
      const started = performance.now();
      const e = await rejection(ensureNamespace(c.store, "red", "tea", "pod"));
      expectWithin("ensureNamespace on a damaged record", performance.now() - started, 100);
      expect(e.message).toBe(namedError(problemOf(value)));
      expect(e.code).toBe("DAMAGED_RECORD");
      expect(e.details).toMatchObject({ network: "red", namespace: "tea", key: TEA });
      expect(c.txns()).toBeLessThanOrEqual(2);
    });

    it("a record under tea's key that names another namespace is damage too", async () => {
      const coffee = await record(store, "coffee");
      await write(store, TEA, JSON.stringify(coffee));
      const e = await rejection(ensureNamespace(counting(store).store, "red", "tea", "pod"));
      expect(e.code).toBe("DAMAGED_RECORD");
      expect(e.message).toBe(namedError('its name is "coffee", but its key names tea'));
      // And coffee itself is still coffee.
      expect((await ensureNamespace(store, "red", "coffee", "pod")).vni).toBe(4099);
    });

    it("createEndpoint for a tea pod fails the same way and allocates nothing", async () => {
      await write(store, TEA, UNREADABLE);
      const before = (await listAddresses(store, "red")).entries.length;
      const c = counting(store);
      const started = performance.now();
      const e = await rejection(
        createEndpoint(c.store, {
          network: "red",
          namespace: "tea",
          pod: "t2",
          node: "n1",
          containerId: "c-t2",
        }),
      );
      expectWithin("createEndpoint on a damaged record", performance.now() - started, 100);
      expect(e.message).toBe(namedError(problemOf(UNREADABLE)));
      expect(c.txns()).toBeLessThanOrEqual(2);
      expect((await listAddresses(store, "red")).entries).toHaveLength(before);
      const pods = (await listEndpoints(store, "red")).entries.map((x) => x.value.pod);
      expect(pods.sort()).toEqual(["a", "t"]);
    });

    it("join, isolate, make-global and delete naming tea fail the same way", async () => {
      await write(store, TEA, UNREADABLE);
      const message = namedError(problemOf(UNREADABLE));
      const s = counting(store).store;
      for (const mutate of [
        () => joinNamespaces(s, "red", ["coffee", "tea"]),
        () => joinNamespaces(s, "red", ["tea", "coffee"]),
        () => isolateNamespaces(s, "red", ["tea"]),
        () => makeNamespacesGlobal(s, "red", ["coffee", "tea"]),
        () => deleteNamespace(s, "red", "tea"),
      ]) {
        const e = await rejection(mutate());
        expect(e.message).toBe(message);
        expect(e.code).toBe("DAMAGED_RECORD");
      }
      // Nothing was written: coffee is where it was, tea's key still holds the damage.
      expect((await record(store, "coffee"))?.vni).toBe(4099);
      expect((await store.get(TEA))?.value).toBe(UNREADABLE);
    });
  });

  describe("leaves the other namespaces working", () => {
    it("a new namespace is created and does not take the VNI the damaged record still holds", async () => {
      await write(store, TEA, READABLE);
      const milk = await ensureNamespace(counting(store).store, "red", "milk", "pod");
      expect(milk.vni).toBe(4101);
      // Isolating milk out of coffee's group hands out the lowest free VNI that is not 4100.
      await joinNamespaces(store, "red", ["coffee", "milk"]);
      await isolateNamespaces(store, "red", ["milk"]);
      expect((await record(store, "milk"))?.vni).toBe(4101);
      expect((await ensureNamespace(store, "red", "juice", "dctl")).vni).toBe(4102);
      const e = await createEndpoint(store, {
        network: "red",
        namespace: "coffee",
        pod: "b",
        node: "n1",
        containerId: "c-b",
      });
      expect(e.namespace).toBe("coffee");
    });

    it("with an unreadable VNI no VNI is handed out while tea has pods (they may be on any)", async () => {
      await write(store, TEA, UNREADABLE);
      const e = await rejection(ensureNamespace(counting(store).store, "red", "milk", "pod"));
      expect(e.code).toBe("DAMAGED_RECORD");
      expect(e.message).toBe(
        `cannot give namespace milk a VNI of its own: namespace record tea of network red is invalid: ${problemOf(UNREADABLE)}; its pods may still be on the VNI it held, which cannot be read; run "dctl network overlay check red --repair"`,
      );
      await joinNamespaces(store, "red", ["coffee", "default"]);
      expect((await rejection(isolateNamespaces(store, "red", ["default"]))).message).toMatch(
        /^cannot give namespace default a VNI of its own: namespace record tea of network red is invalid/,
      );
      // What needs no new VNI goes on: coffee's pods, and its group.
      await createEndpoint(store, {
        network: "red",
        namespace: "coffee",
        pod: "b",
        node: "n1",
        containerId: "c-b",
      });
      await makeNamespacesGlobal(store, "red", ["default"]);
      // Once tea has no pod, no port can be on its old VNI: the lowest free VNI is handed out
      // (4096, which default left for the global VNI).
      await deleteEndpoint(store, { network: "red", namespace: "tea", pod: "t" });
      expect((await ensureNamespace(store, "red", "milk", "pod")).vni).toBe(4096);
    });
  });

  describe("check and repair", () => {
    it("check reports the damaged record with its key and problem", async () => {
      await write(store, TEA, UNREADABLE);
      const report = await checkNetwork(store, "red");
      expect(report.consistent).toBe(false);
      expect(report.issues).toHaveLength(1);
      expect(report.issues[0]).toMatchObject({ kind: "damaged-namespace-record", key: TEA });
      expect(report.issues[0]?.detail).toContain(problemOf(UNREADABLE));
    });

    it("repair rebuilds it on its old VNI when the damaged JSON still holds it", async () => {
      await write(store, TEA, READABLE);
      const outcomes = await repairNetwork(store, "red");
      expect(outcomes.map((o) => [o.issue.kind, o.action])).toEqual([
        ["damaged-namespace-record", "rebuilt"],
      ]);
      expect(await record(store, "tea")).toMatchObject({
        schemaVersion: 1,
        network: "red",
        name: "tea",
        vni: 4100,
        sources: ["repair"],
      });
      expect(await checkNetwork(store, "red")).toMatchObject({ consistent: true, issues: [] });
      const tea = await ensureNamespace(counting(store).store, "red", "tea", "pod");
      expect(tea).toMatchObject({ vni: 4100, sources: ["repair", "pod"] });
      await createEndpoint(store, {
        network: "red",
        namespace: "tea",
        pod: "t2",
        node: "n1",
        containerId: "c-t2",
      });
    });

    it("repair gives it a fresh isolated VNI when its VNI cannot be read", async () => {
      await write(store, TEA, UNREADABLE);
      // Meanwhile tea's pod went and milk took 4100: nobody could know tea held it.
      await deleteEndpoint(store, { network: "red", namespace: "tea", pod: "t" });
      expect((await ensureNamespace(store, "red", "milk", "pod")).vni).toBe(4100);
      const outcomes = await repairNetwork(store, "red");
      expect(outcomes.map((o) => o.action)).toEqual(["rebuilt"]);
      expect((await record(store, "tea"))?.vni).toBe(4101);
      expect((await checkNetwork(store, "red")).consistent).toBe(true);
      expect((await ensureNamespace(store, "red", "tea", "pod")).vni).toBe(4101);
    });

    it("repair never rejoins: an old VNI another namespace now holds is not kept", async () => {
      await write(
        store,
        TEA,
        JSON.stringify({ schemaVersion: 1, network: "red", name: "tea", vni: 4099, sources: [] }),
      );
      const outcomes = await repairNetwork(store, "red");
      expect(outcomes.map((o) => o.action)).toEqual(["rebuilt"]);
      expect(outcomes[0]?.reason).toContain("coffee");
      // coffee keeps 4099 alone; tea is isolated on the next free VNI.
      expect((await record(store, "coffee"))?.vni).toBe(4099);
      expect((await record(store, "tea"))?.vni).toBe(4100);
    });

    it("repair fails closed: global only for a namespace global by default", async () => {
      const globalTea = JSON.stringify({ schemaVersion: 1, network: "red", name: "tea", vni: GLOBAL_VNI });
      await write(store, TEA, globalTea);
      await write(store, namespaceKey("red", "kube-system"), "{garbage");
      await repairNetwork(store, "red");
      expect((await record(store, "tea"))?.vni).toBe(4100);
      expect((await record(store, "kube-system"))?.vni).toBe(GLOBAL_VNI);
      expect((await checkNetwork(store, "red")).consistent).toBe(true);
    });

    it("repair does not overwrite a record fixed between the check and its transaction", async () => {
      await write(store, TEA, UNREADABLE);
      const fixed: NamespaceRecord = {
        schemaVersion: 1,
        network: "red",
        name: "tea",
        vni: 4100,
        sources: ["dctl"],
        createdAt: "2020-01-01T00:00:00.000Z",
      };
      let raced = false;
      const racing: Store = {
        ...counting(store).store,
        txn: async (compares, success, failure) => {
          if (!raced) {
            raced = true;
            await write(store, TEA, JSON.stringify(fixed));
          }
          return store.txn(compares, success, failure);
        },
      };
      const outcomes = await repairNetwork(racing, "red");
      expect(outcomes.map((o) => o.action)).toEqual(["kept"]);
      expect(await record(store, "tea")).toEqual(fixed);
    });

    it("a record written by a newer version is reported, never rewritten", async () => {
      const newer = JSON.stringify({ schemaVersion: 2, network: "red", name: "tea", vni: 4100 });
      await write(store, TEA, newer);
      const e = await rejection(ensureNamespace(store, "red", "tea", "pod"));
      expect(e.message).toMatch(
        /^namespace record tea of network red is invalid: schemaVersion 2 is newer than this program understands \(1\); .*upgrade/,
      );
      const outcomes = await repairNetwork(store, "red");
      expect(outcomes.map((o) => o.action)).toEqual(["not-repairable"]);
      expect((await store.get(TEA))?.value).toBe(newer);
    });
  });
});

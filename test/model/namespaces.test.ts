import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Store } from "../../src/store/store.js";
import {
  FIRST_VNI,
  GLOBAL_VNI,
  computeVnis,
  createEndpoint,
  createNetwork,
  deleteNamespace,
  describeNamespaces,
  ensureNamespace,
  getNetwork,
  isolateNamespaces,
  joinNamespaces,
  listNamespaces,
  makeNamespacesGlobal,
  namespaceVni,
  nextFreeVni,
  type NamespaceRecord,
  type NetworkRecord,
} from "../../src/model/index.js";
import { memoryStore, rejection, tempDir } from "./helpers.js";
import { openStore } from "../../src/store/index.js";

let store: Store;
beforeEach(async () => {
  store = await memoryStore();
});
afterEach(async () => {
  await store.close();
});

async function vnis(network = "red"): Promise<Record<string, number>> {
  const net = (await getNetwork(store, network)).value;
  const namespaces = (await listNamespaces(store, network)).entries.map((e) => e.value);
  return Object.fromEntries(computeVnis(net, namespaces));
}

async function setup(isolateNs = true): Promise<void> {
  await createNetwork(store, { name: "red", subnet: "172.30.0.0/16", isolateNs });
  await ensureNamespace(store, "red", "coffee", "dctl");
  await ensureNamespace(store, "red", "tea", "dctl");
}

describe("pure VNI policy", () => {
  const net: NetworkRecord = {
    schemaVersion: 1,
    name: "red",
    type: "private",
    subnet: "172.30.0.0/16",
    isolateNs: true,
    isDefault: false,
    blockPrefix: 24,
    networkGroup: "",
    createdAt: "t",
  };
  const ns = (name: string, vni: number, network = "red"): NamespaceRecord => ({
    schemaVersion: 1,
    network,
    name,
    vni,
    sources: ["dctl"],
    createdAt: "t",
  });

  it("gives each namespace its own VNI under isolation, and one shared VNI without", () => {
    const list = [ns("a", 4096), ns("b", 4097), ns("c", 4096), ns("kube-system", 1), ns("x", 5000, "other")];
    expect(Object.fromEntries(computeVnis(net, list))).toEqual({
      a: 4096,
      b: 4097,
      c: 4096,
      "kube-system": 1,
    });
    expect(Object.fromEntries(computeVnis({ ...net, isolateNs: false }, list))).toEqual({
      a: GLOBAL_VNI,
      b: GLOBAL_VNI,
      c: GLOBAL_VNI,
      "kube-system": GLOBAL_VNI,
    });
  });

  it("describes policies", () => {
    const list = [ns("a", 4096), ns("b", 4097), ns("c", 4096), ns("kube-system", 1)];
    const views = describeNamespaces(net, list);
    expect(views.map((v) => [v.name, v.policy, v.joinedWith])).toEqual([
      ["a", "joined", ["c"]],
      ["b", "isolated", []],
      ["c", "joined", ["a"]],
      ["kube-system", "global", []],
    ]);
    expect(describeNamespaces({ ...net, isolateNs: false }, list).every((v) => v.policy === "shared")).toBe(
      true,
    );
  });

  it("allocates the lowest free VNI from FIRST_VNI", () => {
    expect(nextFreeVni([])).toBe(FIRST_VNI);
    expect(nextFreeVni([1, 4096, 4097, 4099])).toBe(4098);
  });
});

describe("namespaces in the store", () => {
  it("starts with the builtin namespaces, kube-system global", async () => {
    await createNetwork(store, { name: "red", subnet: "172.30.0.0/16" });
    expect(await vnis()).toEqual({
      default: 4096,
      "kube-node-lease": 4097,
      "kube-public": 4098,
      "kube-system": 1,
    });
  });

  it("reads the VNI in effect for one namespace", async () => {
    await setup();
    expect(await namespaceVni(store, "red", "coffee")).toBe(4099);
    expect(await namespaceVni(store, "red", "kube-system")).toBe(GLOBAL_VNI);
    expect(await namespaceVni(store, "red", "milk")).toBeUndefined();
    await joinNamespaces(store, "red", ["tea", "coffee"]);
    expect(await namespaceVni(store, "red", "coffee")).toBe(4100);
  });

  it("gives new namespaces fresh VNIs and is idempotent", async () => {
    await setup();
    expect(await vnis()).toMatchObject({ coffee: 4099, tea: 4100 });
    const again = await ensureNamespace(store, "red", "coffee", "pod");
    expect(again.vni).toBe(4099);
    expect(again.sources).toEqual(["dctl", "pod"]);
    expect((await ensureNamespace(store, "red", "coffee", "pod")).sources).toEqual(["dctl", "pod"]);
  });

  it("never gives two concurrently created namespaces one VNI, across store instances", async () => {
    const { dir, cleanup } = tempDir();
    const url = `sqlite:${dir}/store.db`;
    const stores = await Promise.all([openStore(url), openStore(url), openStore(url)]);
    try {
      await createNetwork(stores[0]!, { name: "red", subnet: "172.30.0.0/16" });
      await Promise.all(
        Array.from({ length: 30 }, (_, i) => ensureNamespace(stores[i % 3]!, "red", `ns-${i}`, "pod")),
      );
      const list = (await listNamespaces(stores[1]!, "red")).entries.map((e) => e.value);
      expect(list).toHaveLength(34);
      const isolated = list.filter((n) => n.vni !== GLOBAL_VNI).map((n) => n.vni);
      expect(new Set(isolated).size).toBe(isolated.length);
    } finally {
      await Promise.all(stores.map((s) => s.close()));
      cleanup();
    }
  });

  it("joins namespaces onto the first one's VNI and isolates them again", async () => {
    await setup();
    await ensureNamespace(store, "red", "milk", "dctl");
    expect(await joinNamespaces(store, "red", ["coffee", "tea"])).toEqual(["coffee", "tea"]);
    expect(await vnis()).toMatchObject({ coffee: 4099, tea: 4099, milk: 4101 });
    await joinNamespaces(store, "red", ["coffee", "milk"]);
    expect(await vnis()).toMatchObject({ coffee: 4099, tea: 4099, milk: 4099 });

    await isolateNamespaces(store, "red", ["tea"]);
    const after = await vnis();
    expect(after.coffee).toBe(4099);
    expect(after.milk).toBe(4099);
    expect(after.tea).not.toBe(4099);
    expect(Object.values(after).filter((v) => v === after.tea)).toHaveLength(1);

    // An already isolated namespace keeps its VNI.
    await isolateNamespaces(store, "red", ["tea"]);
    expect((await vnis()).tea).toBe(after.tea);
  });

  it("makes namespaces global and isolates them off the global VNI", async () => {
    await setup();
    await makeNamespacesGlobal(store, "red", ["coffee"]);
    expect((await vnis()).coffee).toBe(GLOBAL_VNI);
    await isolateNamespaces(store, "red", ["coffee", "kube-system"]);
    const v = await vnis();
    expect(v.coffee).toBeGreaterThanOrEqual(FIRST_VNI);
    expect(v["kube-system"]).toBeGreaterThanOrEqual(FIRST_VNI);
    expect(v.coffee).not.toBe(v["kube-system"]);
  });

  it("refuses to join a global namespace", async () => {
    await setup();
    const e = await rejection(joinNamespaces(store, "red", ["coffee", "kube-system"]));
    expect(e.message).toBe(
      "cannot join namespace kube-system: it is global (VNI 1) and already reaches every namespace; isolate it first",
    );
  });

  it("checks the namespaces named", async () => {
    await setup();
    expect((await rejection(joinNamespaces(store, "red", ["coffee"]))).message).toBe(
      "join needs at least 2 different namespaces, got coffee",
    );
    expect((await rejection(joinNamespaces(store, "red", ["coffee", "coffee"]))).message).toBe(
      "join needs at least 2 different namespaces, got coffee",
    );
    expect((await rejection(isolateNamespaces(store, "red", [""]))).message).toBe(
      "isolate needs at least one namespace",
    );
    const unknown = await rejection(joinNamespaces(store, "red", ["coffee", "milk"]));
    expect(unknown.code).toBe("NOT_FOUND");
    expect(unknown.message).toBe(
      'namespace milk is not known on network red; create it with "dctl namespace create milk" or start a pod in it',
    );
    expect((await rejection(makeNamespacesGlobal(store, "red", ["Bad_Name"]))).message).toMatch(
      /^invalid namespace name "Bad_Name"/,
    );
    expect((await rejection(joinNamespaces(store, "blue", ["a", "b"]))).message).toBe(
      "overlay network blue not found",
    );
  });

  it("puts every namespace on one VNI with isolation off and refuses policy changes", async () => {
    await setup(false);
    expect(new Set(Object.values(await vnis()))).toEqual(new Set([GLOBAL_VNI]));
    const message =
      "namespace isolation is off on network red (created with --isolate-ns=False): every namespace already shares one VNI";
    expect((await rejection(joinNamespaces(store, "red", ["coffee", "tea"]))).message).toBe(message);
    expect((await rejection(isolateNamespaces(store, "red", ["tea"]))).message).toBe(message);
    expect((await rejection(makeNamespacesGlobal(store, "red", ["tea"]))).message).toBe(message);
  });

  it("deletes a namespace only when none of its pods has an endpoint", async () => {
    await setup();
    await createEndpoint(store, {
      network: "red",
      namespace: "coffee",
      pod: "p1",
      node: "n1",
      containerId: "c1",
    });
    const e = await rejection(deleteNamespace(store, "red", "coffee"));
    expect(e.message).toBe(
      "cannot delete namespace coffee: 1 endpoint on network red still uses it; delete those pods first",
    );
    await deleteNamespace(store, "red", "tea");
    expect((await vnis()).tea).toBeUndefined();
    expect((await rejection(deleteNamespace(store, "red", "tea"))).message).toBe(
      "namespace tea not found on network red",
    );
  });

  it("recreates kube-system as global after a delete", async () => {
    await setup();
    await deleteNamespace(store, "red", "kube-system");
    expect((await ensureNamespace(store, "red", "kube-system", "pod")).vni).toBe(GLOBAL_VNI);
  });
});

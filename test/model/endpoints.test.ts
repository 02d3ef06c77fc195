import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Store } from "../../src/store/store.js";
import {
  createEndpoint,
  createNetwork,
  deleteEndpoint,
  describeEndpoints,
  findEndpointByContainer,
  getNetwork,
  getPerfTier,
  joinNamespaces,
  listAddresses,
  listEndpoints,
  listNamespaces,
  listPerfTiers,
  setDefaultNetwork,
} from "../../src/model/index.js";
import { endpointKey } from "../../src/model/keys.js";
import { memoryStore } from "./helpers.js";

let store: Store;
beforeEach(async () => {
  store = await memoryStore();
  await createNetwork(store, { name: "red", subnet: "172.30.0.0/16" });
});
afterEach(async () => {
  await store.close();
});

const base = { network: "red", node: "appserv76", netns: "/var/run/netns/x" };

describe("endpoints", () => {
  it("creates an endpoint with an address, MAC, gateway and tier, and registers its namespace", async () => {
    const ep = await createEndpoint(store, {
      ...base,
      namespace: "tea",
      pod: "nginx-2",
      containerId: "c1",
      tier: "high",
    });
    expect(ep).toMatchObject({
      network: "red",
      namespace: "tea",
      pod: "nginx-2",
      ip: "172.30.0.2",
      prefixLength: 16,
      gateway: "172.30.0.1",
      mac: "0a:58:ac:1e:00:02",
      node: "appserv76",
      block: "172.30.0.0/24",
      tier: "high",
      containerId: "c1",
      ifname: "eth0",
      netns: "/var/run/netns/x",
    });
    const ns = (await listNamespaces(store, "red")).entries.find((e) => e.value.name === "tea");
    expect(ns?.value.sources).toEqual(["pod"]);
    expect((await listEndpoints(store, "red")).entries.map((e) => e.value)).toEqual([ep]);
    expect((await listAddresses(store, "red")).entries[0]?.value.owner).toEqual({
      namespace: "tea",
      pod: "nginx-2",
      containerId: "c1",
      ifname: "eth0",
    });
  });

  it("a pod of a namespace known from pods costs one transaction and no listing of namespaces", async () => {
    await createEndpoint(store, { ...base, namespace: "tea", pod: "first", containerId: "c1" });
    const calls: string[] = [];
    const counting: Store = Object.create(store) as Store;
    counting.get = (key) => (calls.push(`get ${key}`), store.get(key));
    counting.list = (prefix) => (calls.push(`list ${prefix}`), store.list(prefix));
    counting.txn = (...args) => (calls.push("txn"), store.txn(...args));
    const ep = await createEndpoint(counting, {
      ...base,
      namespace: "tea",
      pod: "second",
      containerId: "c2",
    });
    expect(ep.ip).toBe("172.30.0.3");
    expect(calls.filter((c) => c === "txn")).toHaveLength(1);
    expect(calls.filter((c) => c.startsWith("list /overlay/v1/namespace/"))).toEqual([]);
    // The namespace record is read once, the endpoint's key once.
    expect(calls.filter((c) => c === "get /overlay/v1/namespace/red/tea")).toHaveLength(1);
    expect(calls.filter((c) => c === `get ${endpointKey("red", "tea", "second")}`)).toHaveLength(1);
  });

  it("defaults the tier to best-effort and rejects unknown tiers", async () => {
    const ep = await createEndpoint(store, { ...base, namespace: "a", pod: "p", containerId: "c1" });
    expect(ep.tier).toBe("best-effort");
    await expect(
      createEndpoint(store, { ...base, namespace: "a", pod: "q", containerId: "c2", tier: "gold" }),
    ).rejects.toThrow('unknown perf tier "gold": known tiers are best-effort, medium, high');
  });

  it("uses the default network for pods that name none, and says so when there is none", async () => {
    await expect(
      createEndpoint(store, { node: "n1", namespace: "a", pod: "p", containerId: "c1" }),
    ).rejects.toThrow(
      'pod a/p names no network and no default overlay network is set; name one in its diamanti.com/endpoint0 annotation or set a default with "dctl network overlay update <name> --set-default"',
    );
    await setDefaultNetwork(store, "red", true);
    const ep = await createEndpoint(store, { node: "n1", namespace: "a", pod: "p", containerId: "c1" });
    expect(ep.network).toBe("red");
  });

  it("is idempotent for the same container and replaces the endpoint of a new sandbox", async () => {
    const first = await createEndpoint(store, { ...base, namespace: "a", pod: "p", containerId: "c1" });
    expect(await createEndpoint(store, { ...base, namespace: "a", pod: "p", containerId: "c1" })).toEqual(
      first,
    );
    const second = await createEndpoint(store, { ...base, namespace: "a", pod: "p", containerId: "c2" });
    expect(second.containerId).toBe("c2");
    expect((await listAddresses(store, "red")).entries.map((e) => e.value.owner.containerId)).toEqual(["c2"]);
    // The old sandbox's DEL leaves the new endpoint alone.
    expect(
      await deleteEndpoint(store, { network: "red", namespace: "a", pod: "p", containerId: "c1" }),
    ).toBeUndefined();
    expect((await listEndpoints(store, "red")).entries).toHaveLength(1);
  });

  it("deletes the endpoint and releases its address in one step, idempotently", async () => {
    const ep = await createEndpoint(store, { ...base, namespace: "a", pod: "p", containerId: "c1" });
    expect(
      await deleteEndpoint(store, { network: "red", namespace: "a", pod: "p", containerId: "c1" }),
    ).toEqual(ep);
    expect(await deleteEndpoint(store, { network: "red", namespace: "a", pod: "p" })).toBeUndefined();
    expect((await listEndpoints(store, "red")).entries).toEqual([]);
    expect((await listAddresses(store, "red")).entries).toEqual([]);
    const again = await createEndpoint(store, { ...base, namespace: "a", pod: "q", containerId: "c2" });
    expect(again.ip).toBe(ep.ip);
  });

  it("deletes an endpoint whose record does not parse", async () => {
    await store.txn([], [{ type: "put", key: endpointKey("red", "a", "p"), value: "garbage" }]);
    const listing = await listEndpoints(store, "red");
    expect(listing.problems).toEqual([
      { key: endpointKey("red", "a", "p"), problem: expect.stringMatching(/^not JSON/) },
    ]);
    await deleteEndpoint(store, { network: "red", namespace: "a", pod: "p" });
    expect((await store.list(endpointKey("red", "a", "p"))).items).toEqual([]);
  });

  it("filters listings, finds endpoints by container and computes their VNIs", async () => {
    await createEndpoint(store, {
      ...base,
      namespace: "coffee",
      pod: "nginx-1",
      containerId: "c1",
      node: "appserv78",
    });
    await createEndpoint(store, { ...base, namespace: "tea", pod: "nginx-2", containerId: "c2" });
    expect(
      (await listEndpoints(store, "red", { node: "appserv78" })).entries.map((e) => e.value.pod),
    ).toEqual(["nginx-1"]);
    expect((await listEndpoints(store, "red", { namespace: "tea" })).entries.map((e) => e.value.pod)).toEqual(
      ["nginx-2"],
    );
    expect((await findEndpointByContainer(store, "c2"))?.pod).toBe("nginx-2");
    expect(await findEndpointByContainer(store, "c2", "net1")).toBeUndefined();

    const vniOf = async (): Promise<Record<string, number | undefined>> => {
      const net = (await getNetwork(store, "red")).value;
      const ns = (await listNamespaces(store, "red")).entries.map((e) => e.value);
      const eps = (await listEndpoints(store, "red")).entries.map((e) => e.value);
      return Object.fromEntries(describeEndpoints(net, ns, eps).map((e) => [e.pod, e.vni]));
    };
    const before = await vniOf();
    expect(before["nginx-1"]).not.toBe(before["nginx-2"]);
    await joinNamespaces(store, "red", ["coffee", "tea"]);
    const after = await vniOf();
    expect(after["nginx-1"]).toBe(after["nginx-2"]);
  });

  it("validates names", async () => {
    await expect(
      createEndpoint(store, { ...base, namespace: "A", pod: "p", containerId: "c" }),
    ).rejects.toThrow(/invalid namespace name "A"/);
    await expect(
      createEndpoint(store, { ...base, namespace: "a", pod: "P/x", containerId: "c" }),
    ).rejects.toThrow(/invalid pod name "P\/x"/);
    // DNS-1123 subdomains (Kubernetes pods), or a container's name or ID (runtimes without
    // Kubernetes: podman's names have '_' and capitals): never a '/', never a leading '.'.
    await expect(
      createEndpoint(store, { ...base, namespace: "a", pod: ".web", containerId: "c" }),
    ).rejects.toThrow(/invalid pod name "\.web"/);
    await expect(
      createEndpoint(store, { ...base, namespace: "a", pod: "-web", containerId: "c" }),
    ).rejects.toThrow(/invalid pod name/);
    await expect(
      createEndpoint(store, { ...base, namespace: "a", pod: "x".repeat(254), containerId: "c" }),
    ).rejects.toThrow(/invalid pod name/);
    const podman = await createEndpoint(store, {
      ...base,
      namespace: "a",
      pod: "wonderful_Galileo",
      containerId: "c",
    });
    expect(podman.pod).toBe("wonderful_Galileo");
    await expect(
      createEndpoint(store, { ...base, namespace: "a", pod: "p", containerId: " " }),
    ).rejects.toThrow("container ID is empty");
  });
});

describe("perf tiers", () => {
  it("has best-effort uncapped and higher tiers with upper limits", () => {
    expect(listPerfTiers().map((t) => [t.name, t.maxBitsPerSecond])).toEqual([
      ["best-effort", null],
      ["medium", 125_000_000],
      ["high", 500_000_000],
    ]);
    expect(getPerfTier("high").maxBitsPerSecond).toBe(500_000_000);
  });
});

import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Store } from "../../src/store/store.js";
import {
  createEndpoint,
  createNetwork,
  deleteEndpoint,
  deleteNetwork,
  getDefaultNetwork,
  getNetwork,
  listNamespaces,
  listNetworks,
  listNodes,
  parseBlockSize,
  putDataNetwork,
  registerNode,
  resolveNetwork,
  setDefaultNetwork,
} from "../../src/model/index.js";
import { networkKey } from "../../src/model/keys.js";
import { memoryStore, rejection } from "./helpers.js";

let store: Store;
beforeEach(async () => {
  store = await memoryStore();
});
afterEach(async () => {
  await store.close();
});

describe("createNetwork", () => {
  it("creates the network with defaults and the builtin namespaces", async () => {
    const net = await createNetwork(store, { name: "red", subnet: "172.30.0.0/16" });
    expect(net).toMatchObject({
      name: "red",
      type: "private",
      subnet: "172.30.0.0/16",
      isolateNs: true,
      isDefault: false,
      blockPrefix: 24,
      networkGroup: "",
    });
    expect((await getNetwork(store, "red")).value).toEqual(net);
    const names = (await listNamespaces(store, "red")).entries.map((e) => e.value.name);
    expect(names).toEqual(["default", "kube-node-lease", "kube-public", "kube-system"]);
  });

  it("honours isolateNs, setDefault and blockPrefix", async () => {
    const net = await createNetwork(store, {
      name: "red",
      subnet: "10.20.0.0/16",
      isolateNs: false,
      setDefault: true,
      blockPrefix: 26,
    });
    expect(net).toMatchObject({ isolateNs: false, isDefault: true, blockPrefix: 26 });
    expect((await getDefaultNetwork(store))?.name).toBe("red");
  });

  it.each([
    ["Red", /invalid network name "Red": must be 1-63 characters of lowercase letters/],
    ["-red", /invalid network name "-red"/],
    ["red_1", /invalid network name "red_1"/],
    ["a".repeat(64), /invalid network name/],
    ["", /invalid network name ""/],
  ])("rejects the name %j", async (name, message) => {
    const e = await rejection(createNetwork(store, { name, subnet: "172.30.0.0/16" }));
    expect(e.code).toBe("INVALID_ARGUMENT");
    expect(e.message).toMatch(message);
  });

  it.each([
    ["172.30.0.0", 'invalid subnet "172.30.0.0": expected an IPv4 network in CIDR form, e.g. 172.30.0.0/16'],
    [
      "172.30.0.0/33",
      'invalid subnet "172.30.0.0/33": expected an IPv4 network in CIDR form, e.g. 172.30.0.0/16',
    ],
    ["fd00::/16", 'invalid subnet "fd00::/16": expected an IPv4 network in CIDR form, e.g. 172.30.0.0/16'],
    [
      "172.30.0.0/24",
      "subnet 172.30.0.0/24 has netmask 255.255.255.0; the overlay network requires netmask 255.255.0.0 (a /16)",
    ],
    [
      "10.0.0.0/8",
      "subnet 10.0.0.0/8 has netmask 255.0.0.0; the overlay network requires netmask 255.255.0.0 (a /16)",
    ],
    [
      "172.30.1.0/16",
      "subnet 172.30.1.0/16 is not a network address (host bits are set); did you mean 172.30.0.0/16?",
    ],
    ["127.1.0.0/16", "subnet 127.1.0.0/16 lies in 127.0.0.0/8 (loopback), which cannot carry pod addresses"],
    [
      "169.254.0.0/16",
      "subnet 169.254.0.0/16 lies in 169.254.0.0/16 (link-local), which cannot carry pod addresses",
    ],
    ["230.1.0.0/16", "subnet 230.1.0.0/16 lies in 224.0.0.0/4 (multicast), which cannot carry pod addresses"],
  ])("rejects the subnet %s", async (subnet, message) => {
    const e = await rejection(createNetwork(store, { name: "red", subnet }));
    expect(e.code).toBe("INVALID_ARGUMENT");
    expect(e.message).toBe(message);
    expect((await listNetworks(store)).entries).toEqual([]);
  });

  it("rejects a subnet that overlaps a node's management network", async () => {
    await registerNode(store, {
      name: "appserv76",
      underlayIp: "172.30.4.10",
      managementCidr: "172.30.4.0/24",
    });
    const e = await rejection(createNetwork(store, { name: "red", subnet: "172.30.0.0/16" }));
    expect(e.message).toBe(
      "subnet 172.30.0.0/16 overlaps the management network 172.30.4.0/24 of node appserv76",
    );
  });

  it("rejects a subnet that holds a node's underlay address when its management network is unknown", async () => {
    await registerNode(store, { name: "n1", underlayIp: "10.9.3.4" });
    const e = await rejection(createNetwork(store, { name: "red", subnet: "10.9.0.0/16" }));
    expect(e.message).toBe("subnet 10.9.0.0/16 overlaps the management network 10.9.3.4/32 of node n1");
    await createNetwork(store, { name: "red", subnet: "10.10.0.0/16" });
  });

  it("refuses to register a node whose management network overlaps the overlay", async () => {
    await createNetwork(store, { name: "red", subnet: "172.30.0.0/16" });
    const e = await rejection(
      registerNode(store, { name: "n9", underlayIp: "172.30.4.10", managementCidr: "172.30.4.0/24" }),
    );
    expect(e.code).toBe("INVALID_ARGUMENT");
    expect(e.message).toBe(
      "node n9: its management network 172.30.4.0/24 overlaps the overlay network red (172.30.0.0/16)",
    );
    const bare = await rejection(registerNode(store, { name: "n9", underlayIp: "172.30.200.1" }));
    expect(bare.message).toContain("172.30.200.1/32 overlaps the overlay network red");
    expect((await listNodes(store)).entries).toEqual([]);
    await registerNode(store, { name: "n9", underlayIp: "10.0.0.9", managementCidr: "10.0.0.0/24" });
    expect((await listNodes(store)).entries.map((n) => n.value.name)).toEqual(["n9"]);
  });

  it("rejects a subnet that overlaps a data network", async () => {
    await putDataNetwork(store, "blue", "192.168.0.0/12");
    const e = await rejection(createNetwork(store, { name: "red", subnet: "192.168.0.0/16" }));
    expect(e.message).toBe("subnet 192.168.0.0/16 overlaps the data network blue (192.160.0.0/12)");
  });

  it("allows only one overlay network per cluster", async () => {
    await createNetwork(store, { name: "red", subnet: "172.30.0.0/16" });
    const other = await rejection(createNetwork(store, { name: "blue", subnet: "172.31.0.0/16" }));
    expect(other.code).toBe("ALREADY_EXISTS");
    expect(other.message).toBe(
      "an overlay network already exists (red, 172.30.0.0/16); only one overlay network per cluster is supported",
    );
    const same = await rejection(createNetwork(store, { name: "red", subnet: "172.30.0.0/16" }));
    expect(same.message).toBe("overlay network red already exists");
  });

  it("lets only one of many concurrent creators win", async () => {
    const results = await Promise.allSettled(
      Array.from({ length: 10 }, (_, i) =>
        createNetwork(store, { name: `n${i}`, subnet: `172.${20 + i}.0.0/16` }),
      ),
    );
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    expect((await listNetworks(store)).entries).toHaveLength(1);
  });

  it("validates the block size", async () => {
    expect(parseBlockSize("/24")).toBe(24);
    expect(parseBlockSize("20")).toBe(20);
    for (const bad of ["/16", "29", "x", "/"]) {
      expect(() => parseBlockSize(bad)).toThrow(/per-node blocks must be between \/17 and \/28/);
    }
    const e = await rejection(
      createNetwork(store, { name: "red", subnet: "172.30.0.0/16", blockPrefix: 30 }),
    );
    expect(e.message).toBe('invalid block size "/30": per-node blocks must be between /17 and /28');
  });

  it("reports a network record that does not parse, and skips it in listings", async () => {
    await store.txn([], [{ type: "put", key: networkKey("junk"), value: "{}" }]);
    const listing = await listNetworks(store);
    expect(listing.entries).toEqual([]);
    expect(listing.problems[0]?.key).toBe(networkKey("junk"));
    const e = await rejection(getNetwork(store, "junk"));
    expect(e.message).toMatch(/^bad record \/overlay\/v1\/network\/junk: schemaVersion must be 1/);
  });
});

describe("default, resolve and delete", () => {
  it("sets and clears the default", async () => {
    await createNetwork(store, { name: "red", subnet: "172.30.0.0/16" });
    expect(await getDefaultNetwork(store)).toBeUndefined();
    expect((await setDefaultNetwork(store, "red", true)).isDefault).toBe(true);
    expect((await getDefaultNetwork(store))?.name).toBe("red");
    await setDefaultNetwork(store, "red", false);
    expect(await getDefaultNetwork(store)).toBeUndefined();
    const e = await rejection(setDefaultNetwork(store, "blue", true));
    expect(e.code).toBe("NOT_FOUND");
    expect(e.message).toBe("overlay network blue not found");
  });

  it("resolves the only network when none is named", async () => {
    const none = await rejection(resolveNetwork(store));
    expect(none.message).toBe('no overlay network exists; create one with "dctl network overlay create"');
    await createNetwork(store, { name: "red", subnet: "172.30.0.0/16" });
    expect((await resolveNetwork(store)).value.name).toBe("red");
  });

  it("refuses to delete a network with endpoints, naming their count", async () => {
    await createNetwork(store, { name: "red", subnet: "172.30.0.0/16" });
    const a = { network: "red", node: "n1", containerId: "c1" };
    await createEndpoint(store, { ...a, namespace: "coffee", pod: "nginx-1" });
    await createEndpoint(store, { ...a, namespace: "tea", pod: "nginx-2", containerId: "c2" });
    const e = await rejection(deleteNetwork(store, "red"));
    expect(e.code).toBe("FAILED_PRECONDITION");
    expect(e.details).toMatchObject({ endpoints: 2 });
    expect(e.message).toBe(
      "cannot delete network red: 2 endpoints still use it (coffee/nginx-1, tea/nginx-2); delete those pods first",
    );
  });

  it("deletes the network with its namespaces and blocks, and allows a new one", async () => {
    await createNetwork(store, { name: "red", subnet: "172.30.0.0/16" });
    const ep = await createEndpoint(store, {
      network: "red",
      node: "n1",
      containerId: "c1",
      namespace: "a",
      pod: "p",
    });
    await deleteEndpoint(store, { network: "red", namespace: "a", pod: "p" });
    expect(ep.ip).toBe("172.30.0.2");
    await deleteNetwork(store, "red");
    expect((await store.list("/overlay/v1/")).items).toEqual([]);
    const e = await rejection(deleteNetwork(store, "red"));
    expect(e.code).toBe("NOT_FOUND");
    await createNetwork(store, { name: "blue", subnet: "172.31.0.0/16" });
  });
});

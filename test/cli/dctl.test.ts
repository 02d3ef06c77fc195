import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createEndpoint, registerNode, putDataNetwork } from "../../src/model/index.js";
import { runDctl } from "../../src/cli/run.js";
import { openStore } from "../../src/store/index.js";
import type { Store } from "../../src/store/store.js";
import { cells, dctl } from "./harness.js";

let store: Store;
beforeEach(async () => {
  store = await openStore("sqlite::memory:");
});
afterEach(async () => {
  await store.close();
});

/** A failure: non-zero exit, nothing on stdout, one "Error: ..." line on stderr. */
async function fails(argv: string[], message: string | RegExp): Promise<void> {
  const r = await dctl(store, ...argv);
  expect(r.code, r.stderr).not.toBe(0);
  expect(r.stdout).toBe("");
  expect(r.stderr.endsWith("\n")).toBe(true);
  expect(r.stderr.trimEnd().split("\n")).toHaveLength(1);
  if (typeof message === "string") expect(r.stderr).toBe(`Error: ${message}\n`);
  else expect(r.stderr).toMatch(message);
}

async function ok(...argv: string[]): Promise<string> {
  const r = await dctl(store, ...argv);
  expect(r.stderr).toBe("");
  expect(r.code).toBe(0);
  return r.stdout;
}

const HEADER = ["NAME", "TYPE", "SUBNET", "OVERLAY-NW", "ISOLATE-NS", "NETWORKGROUP"];

describe("dctl network overlay create / list", () => {
  it("prints the seed's table", async () => {
    const out = await ok("network", "overlay", "create", "red", "-s", "172.30.0.0/16");
    expect(out).toBe(
      "NAME   TYPE      SUBNET          OVERLAY-NW   ISOLATE-NS   NETWORKGROUP\n" +
        "red    private   172.30.0.0/16                true\n",
    );
    expect(await ok("network", "overlay", "list")).toBe(out);
  });

  it.each([
    ["--isolate-ns=True", "true"],
    ["--isolate-ns=False", "false"],
    ["--isolate-ns=true", "true"],
    ["--isolate-ns=false", "false"],
    ["--isolate-ns", "true"],
    ["\u2013isolate-ns=False", "false"],
  ])("accepts %s", async (flag, shown) => {
    const out = await ok("network", "overlay", "create", "red", "-s", "172.30.0.0/16", flag);
    expect(cells(out)[1]).toEqual(["red", "private", "172.30.0.0/16", shown]);
  });

  it("accepts --isolate-ns False as two words, --set-default and --block-size", async () => {
    await ok(
      "network",
      "overlay",
      "create",
      "red",
      "-s",
      "172.30.0.0/16",
      "--isolate-ns",
      "False",
      "--set-default",
      "--block-size",
      "/26",
    );
    const [net] = JSON.parse(await ok("network", "overlay", "list", "-o", "json")) as Record<
      string,
      unknown
    >[];
    expect(net).toMatchObject({
      name: "red",
      isolateNs: false,
      isDefault: true,
      blockPrefix: 26,
      type: "private",
    });
  });

  it("prints JSON with -o json", async () => {
    const out = await ok("network", "overlay", "create", "red", "-s", "172.30.0.0/16", "-o", "json");
    expect(JSON.parse(out)).toMatchObject({
      name: "red",
      type: "private",
      subnet: "172.30.0.0/16",
      isolateNs: true,
      isDefault: false,
      blockPrefix: 24,
      networkGroup: "",
    });
    expect(JSON.parse(await ok("network", "overlay", "list", "--output", "json"))).toHaveLength(1);
  });

  it("lists nothing but the header when there is no network", async () => {
    expect(cells(await ok("network", "overlay", "list"))).toEqual([HEADER]);
    expect(JSON.parse(await ok("network", "overlay", "list", "-o", "json"))).toEqual([]);
  });

  it("reports every validation failure in one line", async () => {
    const create = (...rest: string[]) => ["network", "overlay", "create", ...rest];
    await fails(
      create("red", "-s", "172.30.0.0/24"),
      "subnet 172.30.0.0/24 has netmask 255.255.255.0; the overlay network requires netmask 255.255.0.0 (a /16)",
    );
    await fails(
      create("red", "-s", "172.30.5.0/16"),
      "subnet 172.30.5.0/16 is not a network address (host bits are set); did you mean 172.30.0.0/16?",
    );
    await fails(
      create("red", "-s", "nonsense"),
      'invalid subnet "nonsense": expected an IPv4 network in CIDR form, e.g. 172.30.0.0/16',
    );
    await fails(
      create("Red", "-s", "172.30.0.0/16"),
      /^Error: invalid network name "Red": must be 1-63 characters/,
    );
    await fails(
      create("red", "-s", "172.30.0.0/16", "--isolate-ns=maybe"),
      'invalid value "maybe" for --isolate-ns: expected True or False',
    );
    await fails(
      create("red", "-s", "172.30.0.0/16", "--block-size", "/8"),
      'invalid block size "/8": per-node blocks must be between /17 and /28',
    );
    await fails(
      create("red", "-s", "172.30.0.0/16", "-o", "yaml"),
      'invalid output format "yaml": expected table or json',
    );
    await fails(create("red"), "required option '-s, --subnet <subnet>' not specified");
    await fails(create("-s", "172.30.0.0/16"), "missing required argument 'name'");
    await fails(create("red", "-s", "172.30.0.0/16", "--bogus"), "unknown option '--bogus'");

    await registerNode(store, { name: "appserv76", underlayIp: "10.1.0.76", managementCidr: "10.1.0.0/24" });
    await putDataNetwork(store, "data", "192.168.0.0/16");
    await fails(
      create("red", "-s", "10.1.0.0/16"),
      "subnet 10.1.0.0/16 overlaps the management network 10.1.0.0/24 of node appserv76",
    );
    await fails(
      create("red", "-s", "192.168.0.0/16"),
      "subnet 192.168.0.0/16 overlaps the data network data (192.168.0.0/16)",
    );

    await ok(...create("red", "-s", "172.30.0.0/16"));
    await fails(
      create("blue", "-s", "172.31.0.0/16"),
      "an overlay network already exists (red, 172.30.0.0/16); only one overlay network per cluster is supported",
    );
  });
});

describe("dctl network overlay update / join / isolate / make-global", () => {
  beforeEach(async () => {
    await ok("network", "overlay", "create", "red", "-s", "172.30.0.0/16");
    await ok("namespace", "create", "coffee");
    await ok("namespace", "create", "tea");
  });

  async function vnis(): Promise<Record<string, number>> {
    const list = JSON.parse(await ok("namespace", "list", "-o", "json")) as { name: string; vni: number }[];
    return Object.fromEntries(list.map((n) => [n.name, n.vni]));
  }

  it("sets and clears the default", async () => {
    expect(await ok("network", "overlay", "update", "red", "--set-default")).toBe(
      "Successfully updated network\n",
    );
    expect(JSON.parse(await ok("network", "overlay", "list", "-o", "json"))[0].isDefault).toBe(true);
    expect(await ok("network", "overlay", "update", "red", "--clear-default")).toBe(
      "Successfully updated network\n",
    );
    expect(JSON.parse(await ok("network", "overlay", "list", "-o", "json"))[0].isDefault).toBe(false);
    await fails(["network", "overlay", "update", "blue", "--set-default"], "overlay network blue not found");
  });

  it("joins with the seed's message, by update and by join-namespaces", async () => {
    expect(await ok("network", "overlay", "update", "red", "--join-namespaces", "coffee,tea")).toBe(
      "Successfully joined the network namespaces [[coffee tea]]\n",
    );
    const v = await vnis();
    expect(v.coffee).toBe(v.tea);
    expect(await ok("network", "overlay", "update", "red", "--isolate-namespaces", "tea")).toBe(
      "Successfully updated network\n",
    );
    expect((await vnis()).tea).not.toBe((await vnis()).coffee);

    await ok("namespace", "create", "milk");
    expect(await ok("network", "overlay", "join-namespaces", "red", "coffee,tea,milk")).toBe(
      "Successfully joined the network namespaces [[coffee tea milk]]\n",
    );
    const w = await vnis();
    expect(new Set([w.coffee, w.tea, w.milk]).size).toBe(1);
    expect(await ok("network", "overlay", "isolate-namespaces", "red", "tea,milk")).toBe(
      "Successfully updated network\n",
    );
    const x = await vnis();
    expect(new Set([x.coffee, x.tea, x.milk]).size).toBe(3);
  });

  it("makes namespaces global and back", async () => {
    expect(await ok("network", "overlay", "update", "red", "--make-global", "coffee")).toBe(
      "Successfully updated network\n",
    );
    expect((await vnis()).coffee).toBe(1);
    await ok("network", "overlay", "isolate-namespaces", "red", "coffee");
    expect((await vnis()).coffee).toBeGreaterThanOrEqual(4096);
    expect(await ok("network", "overlay", "make-global", "red", "coffee", "tea")).toBe(
      "Successfully updated network\n",
    );
    expect(await vnis()).toMatchObject({ coffee: 1, tea: 1 });
  });

  it("reports update mistakes", async () => {
    await fails(
      ["network", "overlay", "update", "red"],
      "update needs one of --set-default, --clear-default, --join-namespaces, --isolate-namespaces, --make-global",
    );
    await fails(
      ["network", "overlay", "update", "red", "--set-default", "--clear-default"],
      "update takes one change at a time, got --set-default and --clear-default",
    );
    await fails(
      ["network", "overlay", "update", "red", "--join-namespaces", "coffee"],
      "join needs at least 2 different namespaces, got coffee",
    );
    await fails(
      ["network", "overlay", "join-namespaces", "red", "coffee,nope"],
      'namespace nope is not known on network red; create it with "dctl namespace create nope" or start a pod in it',
    );
    await fails(
      ["network", "overlay", "join-namespaces", "red", "coffee,kube-system"],
      "cannot join namespace kube-system: it is global (VNI 1) and already reaches every namespace; isolate it first",
    );
    await fails(["network", "overlay", "join-namespaces", "red"], "missing required argument 'namespaces'");
    await fails(
      ["network", "overlay", "update", "red", "--join-namespaces"],
      "option '--join-namespaces <namespaces>' argument missing",
    );
  });

  it("refuses policy changes with isolation off", async () => {
    await ok("network", "overlay", "delete", "red");
    await ok("network", "overlay", "create", "red", "-s", "172.30.0.0/16", "--isolate-ns=False");
    await ok("namespace", "create", "coffee");
    await ok("namespace", "create", "tea");
    await fails(
      ["network", "overlay", "update", "red", "--join-namespaces", "coffee,tea"],
      "namespace isolation is off on network red (created with --isolate-ns=False): every namespace already shares one VNI",
    );
    expect(new Set(Object.values(await vnis()))).toEqual(new Set([1]));
  });
});

describe("dctl network overlay list-namespaces / endpoints / delete", () => {
  beforeEach(async () => {
    await ok("network", "overlay", "create", "red", "-s", "172.30.0.0/16");
  });

  it("lists namespaces in a NAME column", async () => {
    await ok("namespace", "create", "coffee");
    await createEndpoint(store, {
      network: "red",
      namespace: "tea",
      pod: "nginx-2",
      node: "appserv76",
      containerId: "c2",
    });
    expect(await ok("network", "overlay", "list-namespaces", "red")).toBe(
      ["NAME", "coffee", "default", "kube-node-lease", "kube-public", "kube-system", "tea", ""].join("\n"),
    );
    const json = JSON.parse(await ok("network", "overlay", "list-namespaces", "red", "-o", "json")) as {
      name: string;
      policy: string;
      sources: string[];
    }[];
    expect(json.find((n) => n.name === "kube-system")).toMatchObject({ policy: "global" });
    expect(json.find((n) => n.name === "tea")).toMatchObject({ policy: "isolated", sources: ["pod"] });
    await fails(["network", "overlay", "list-namespaces", "blue"], "overlay network blue not found");
  });

  it("lists endpoints with their VNI", async () => {
    await createEndpoint(store, {
      network: "red",
      namespace: "coffee",
      pod: "nginx-1",
      node: "appserv78",
      containerId: "c1",
    });
    await createEndpoint(store, {
      network: "red",
      namespace: "tea",
      pod: "nginx-2",
      node: "appserv76",
      containerId: "c2",
      tier: "medium",
    });
    const out = await ok("network", "overlay", "endpoints", "red");
    expect(cells(out)).toEqual([
      ["POD", "NAMESPACE", "IP", "MAC", "NODE", "VNI", "TIER"],
      ["nginx-1", "coffee", "172.30.0.2", "0a:58:ac:1e:00:02", "appserv78", "4099", "best-effort"],
      ["nginx-2", "tea", "172.30.1.2", "0a:58:ac:1e:01:02", "appserv76", "4100", "medium"],
    ]);
    const json = JSON.parse(await ok("network", "overlay", "endpoints", "red", "-o", "json")) as Record<
      string,
      unknown
    >[];
    expect(json[1]).toMatchObject({
      pod: "nginx-2",
      ip: "172.30.1.2",
      vni: 4100,
      gateway: "172.30.1.1",
      tier: "medium",
    });
    expect(cells(await ok("network", "overlay", "endpoints", "red", "--node", "appserv76")).length).toBe(2);
    expect(cells(await ok("network", "overlay", "endpoints", "red", "-n", "coffee"))[1]?.[0]).toBe("nginx-1");

    await fails(
      ["network", "overlay", "delete", "red"],
      "cannot delete network red: 2 endpoints still use it (coffee/nginx-1, tea/nginx-2); delete those pods first",
    );
  });

  it("lists pods of runtimes without Kubernetes by the name the runtime gave", async () => {
    // podman: no K8S_POD_NAMESPACE, the container's generated name; or only a container ID.
    await createEndpoint(store, {
      network: "red",
      namespace: "default",
      pod: "wonderful_galileo",
      node: "appserv76",
      containerId: "c3",
    });
    await createEndpoint(store, {
      network: "red",
      namespace: "default",
      pod: "3f1c0ffee9a1",
      node: "appserv76",
      containerId: "3f1c0ffee9a1",
    });
    const rows = cells(await ok("network", "overlay", "endpoints", "red", "-n", "default"));
    expect(rows.slice(1).map((r) => [r[0], r[1]])).toEqual([
      ["3f1c0ffee9a1", "default"],
      ["wonderful_galileo", "default"],
    ]);
  });

  it("deletes the network", async () => {
    expect(await ok("network", "overlay", "delete", "red")).toBe("Successfully deleted network\n");
    expect(cells(await ok("network", "overlay", "list"))).toEqual([HEADER]);
    await fails(["network", "overlay", "delete", "red"], "overlay network red not found");
  });
});

describe("dctl namespace", () => {
  it("needs a network", async () => {
    await fails(
      ["namespace", "create", "coffee"],
      'no overlay network exists; create one with "dctl network overlay create"',
    );
  });

  it("creates, lists and deletes namespaces", async () => {
    await ok("network", "overlay", "create", "red", "-s", "172.30.0.0/16");
    expect(await ok("namespace", "create", "coffee")).toBe("Successfully created namespace coffee\n");
    expect(
      JSON.parse(await ok("namespace", "create", "tea", "--network", "red", "-o", "json")),
    ).toMatchObject({
      name: "tea",
      network: "red",
      policy: "isolated",
      sources: ["dctl"],
    });
    expect(cells(await ok("namespace", "list"))).toEqual([
      ["NAME", "NETWORK", "VNI", "POLICY", "JOINED-WITH"],
      ["coffee", "red", "4099", "isolated"],
      ["default", "red", "4096", "isolated"],
      ["kube-node-lease", "red", "4097", "isolated"],
      ["kube-public", "red", "4098", "isolated"],
      ["kube-system", "red", "1", "global"],
      ["tea", "red", "4100", "isolated"],
    ]);
    await ok("network", "overlay", "join-namespaces", "red", "coffee,tea");
    expect(cells(await ok("namespace", "list", "--network", "red"))[1]).toEqual([
      "coffee",
      "red",
      "4099",
      "joined",
      "tea",
    ]);
    expect(await ok("namespace", "delete", "tea")).toBe("Successfully deleted namespace tea\n");
    await fails(["namespace", "delete", "tea"], "namespace tea not found on network red");
    await fails(["namespace", "create", "Tea"], /^Error: invalid namespace name "Tea"/);
    await fails(["namespace", "list", "--network", "blue"], "overlay network blue not found");
    await createEndpoint(store, {
      network: "red",
      namespace: "coffee",
      pod: "p",
      node: "n1",
      containerId: "c",
    });
    await fails(
      ["namespace", "delete", "coffee"],
      "cannot delete namespace coffee: 1 endpoint on network red still uses it; delete those pods first",
    );
  });
});

describe("dctl network data", () => {
  it("creates, lists and deletes data networks, which the overlay must then avoid", async () => {
    expect(cells(await ok("network", "data", "create", "blue", "-s", "192.168.30.0/24"))).toEqual([
      ["NAME", "SUBNET"],
      ["blue", "192.168.30.0/24"],
    ]);
    expect(JSON.parse(await ok("network", "data", "list", "-o", "json"))).toEqual([
      { name: "blue", subnet: "192.168.30.0/24" },
    ]);
    await fails(
      ["network", "overlay", "create", "red", "-s", "192.168.0.0/16"],
      "subnet 192.168.0.0/16 overlaps the data network blue (192.168.30.0/24)",
    );
    await ok("network", "overlay", "create", "red", "-s", "172.30.0.0/16");
    await fails(
      ["network", "data", "create", "green", "-s", "172.30.128.0/20"],
      "data network green (172.30.128.0/20) overlaps the overlay network red (172.30.0.0/16)",
    );
    await fails(
      ["network", "data", "create", "green", "-s", "bad"],
      'invalid data network subnet "bad": expected CIDR form, e.g. 192.168.10.0/24',
    );
    expect(await ok("network", "data", "delete", "blue")).toBe("Successfully deleted data network blue\n");
    expect(cells(await ok("network", "data", "list"))).toEqual([["NAME", "SUBNET"]]);
    await fails(["network", "data", "delete", "blue"], "data network blue not found");
  });
});

describe("dctl perf-tier and node", () => {
  it("lists perf tiers", async () => {
    expect(cells(await ok("perf-tier", "list"))).toEqual([
      ["NAME", "MAX-BANDWIDTH"],
      ["best-effort", "unlimited"],
      ["medium", "125Mbit/s"],
      ["high", "500Mbit/s"],
    ]);
    expect(JSON.parse(await ok("perf-tier", "list", "-o", "json"))).toEqual([
      { name: "best-effort", maxBitsPerSecond: null },
      { name: "medium", maxBitsPerSecond: 125000000 },
      { name: "high", maxBitsPerSecond: 500000000 },
    ]);
  });

  it("lists nodes with their blocks", async () => {
    expect(cells(await ok("node", "list"))).toEqual([
      ["NAME", "UNDERLAY-IP", "MANAGEMENT-NETWORK", "BLOCKS", "OFFLOADS"],
    ]);
    await registerNode(store, {
      name: "appserv76",
      underlayIp: "10.1.0.76",
      managementCidr: "10.1.0.0/24",
      offloads: ["tso", "udp-gso", "udp-gro"],
      pollUs: 100,
    });
    await registerNode(store, { name: "appserv78", underlayIp: "10.1.0.78" });
    await ok("network", "overlay", "create", "red", "-s", "172.30.0.0/16");
    await createEndpoint(store, {
      network: "red",
      namespace: "a",
      pod: "p",
      node: "appserv76",
      containerId: "c",
    });
    expect(cells(await ok("node", "list"))).toEqual([
      ["NAME", "UNDERLAY-IP", "MANAGEMENT-NETWORK", "BLOCKS", "OFFLOADS"],
      ["appserv76", "10.1.0.76", "10.1.0.0/24", "172.30.0.0/24", "tso,udp-gso,udp-gro,adaptive-poll<=100us"],
      ["appserv78", "10.1.0.78", "-", "-", "-"],
    ]);
    expect(JSON.parse(await ok("node", "list", "-o", "json"))[0]).toMatchObject({
      name: "appserv76",
      offloads: ["tso", "udp-gso", "udp-gro"],
      pollUs: 100,
      blocks: [{ network: "red", cidr: "172.30.0.0/24", gateway: "172.30.0.1" }],
    });
  });
});

describe("dctl usage", () => {
  it("reports missing and unknown commands in one line", async () => {
    await fails(
      [],
      '"dctl" needs a command: one of network, namespace, perf-tier, node, status, connectivity-test (see dctl --help)',
    );
    await fails(
      ["network"],
      '"dctl network" needs a command: one of overlay, data (see dctl network --help)',
    );
    await fails(
      ["network", "overlay", "lst"],
      /^Error: unknown command "lst" for "dctl network overlay": expected one of create, list/,
    );
    await fails(
      ["network", "overlay", "list", "extra"],
      "too many arguments for 'list'. Expected 0 arguments but got 1.",
    );
  });

  it("prints help on stdout and exits 0", async () => {
    const r = await dctl(store, "network", "overlay", "create", "--help");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/Usage: dctl network overlay create \[options\] <name>/);
    expect(r.stdout).toMatch(/--isolate-ns \[bool\]/);
  });

  it("warns about records it skips", async () => {
    await ok("network", "overlay", "create", "red", "-s", "172.30.0.0/16");
    await store.txn([], [{ type: "put", key: "/overlay/v1/namespace/red/broken", value: "{}" }]);
    const r = await dctl(store, "network", "overlay", "list-namespaces", "red");
    expect(r.code).toBe(0);
    expect(r.stderr).toBe(
      "Warning: skipping bad record /overlay/v1/namespace/red/broken: schemaVersion must be 1, found undefined\n",
    );
    expect(r.stdout).not.toMatch(/broken/);
  });

  it("reports a store it cannot open", async () => {
    let stderr = "";
    const code = await runDctl(["--store", "bogus:x", "network", "overlay", "list"], {
      stdout: { write: () => undefined },
      stderr: { write: (s: string) => (stderr += s) },
    });
    expect(code).toBe(1);
    expect(stderr).toMatch(
      /^Error: cannot open the store bogus:x: invalid store URL "bogus:x": unknown scheme/,
    );
    expect(stderr.trimEnd().split("\n")).toHaveLength(1);
  });
});

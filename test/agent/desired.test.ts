import { describe, expect, it } from "vitest";
import { desiredState, endpointId } from "../../src/agent/desired.js";
import { gatewayPortName } from "../../src/agent/gateways.js";
import { managementCidrOf } from "../../src/agent/interfaces.js";
import type { ClusterSnapshot } from "../../src/agent/view.js";
import type { EndpointRecord, NamespaceRecord, NetworkRecord } from "../../src/model/records.js";

const at = "2026-01-01T00:00:00.000Z";

function network(isolateNs = true): NetworkRecord {
  return {
    schemaVersion: 1,
    name: "red",
    type: "private",
    subnet: "172.30.0.0/16",
    isolateNs,
    isDefault: true,
    blockPrefix: 24,
    networkGroup: "",
    createdAt: at,
  };
}

function ns(name: string, vni: number): NamespaceRecord {
  return { schemaVersion: 1, network: "red", name, vni, sources: ["pod"], createdAt: at };
}

function ep(pod: string, namespace: string, ip: string, node: string): EndpointRecord {
  const block = `${ip.split(".").slice(0, 3).join(".")}.0/24`;
  return {
    schemaVersion: 1,
    network: "red",
    namespace,
    pod,
    ip,
    prefixLength: 16,
    gateway: `${ip.split(".").slice(0, 3).join(".")}.1`,
    mac: `0a:58:${ip
      .split(".")
      .map((o) => Number(o).toString(16).padStart(2, "0"))
      .join(":")}`,
    node,
    block,
    tier: "best-effort",
    containerId: `c-${pod}`,
    ifname: "eth0",
    netns: `/var/run/netns/${pod}`,
    createdAt: at,
  };
}

function snapshot(isolateNs = true): ClusterSnapshot {
  return {
    networks: [network(isolateNs)],
    namespaces: [ns("coffee", 4096), ns("tea", 4097)],
    endpoints: [
      ep("nginx-1", "coffee", "172.30.8.2", "n1"),
      ep("nginx-2", "tea", "172.30.0.2", "n2"),
      ep("ghost", "tea", "172.30.9.2", "gone"),
    ],
    nodes: [
      { schemaVersion: 1, name: "n1", underlayIp: "10.0.0.1", registeredAt: at },
      { schemaVersion: 1, name: "n2", underlayIp: "10.0.0.2", registeredAt: at },
    ],
    blocks: [
      { schemaVersion: 1, network: "red", cidr: "172.30.8.0/24", node: "n1", claimedAt: at },
      { schemaVersion: 1, network: "red", cidr: "172.30.0.0/24", node: "n2", claimedAt: at },
    ],
    revision: 7,
  };
}

describe("desiredState: what a node's switch must hold", () => {
  it("peers are every other registered node", () => {
    expect(desiredState(snapshot(), "n1").peers).toEqual(["10.0.0.2"]);
    expect(desiredState(snapshot(), "n2").peers).toEqual(["10.0.0.1"]);
  });

  it("remote endpoints are the other nodes' pods on their namespace's VNI, and their gateways on the global VNI", () => {
    const d = desiredState(snapshot(), "n1");
    expect(d.remotes).toContainEqual({
      vni: 4097,
      mac: "0a:58:ac:1e:00:02",
      ipv4: "172.30.0.2",
      vtep: "10.0.0.2",
    });
    expect(d.remotes).toContainEqual({
      vni: 1,
      mac: "0a:58:ac:1e:00:01",
      ipv4: "172.30.0.1",
      vtep: "10.0.0.2",
    });
    expect(d.remotes).toHaveLength(2);
  });

  it("leaves out endpoints of nodes whose registration lapsed", () => {
    const d = desiredState(snapshot(), "n1");
    expect(d.remotes.find((r) => r.ipv4 === "172.30.9.2")).toBeUndefined();
  });

  it("gives local pods their namespace's VNI and this node a gateway port per block", () => {
    const d = desiredState(snapshot(), "n1");
    expect(d.localEndpoints.map(endpointId)).toEqual(["red/coffee/nginx-1"]);
    expect(d.localVnis.get("red/coffee/nginx-1")).toBe(4096);
    expect(d.gateways).toEqual([
      { block: "172.30.8.0/24", ip: "172.30.8.1", mac: "0a:58:ac:1e:08:01", subnet: "172.30.0.0/16" },
    ]);
    expect(d.globalVnis).toEqual([1]);
    expect(d.networksWithoutBlock).toEqual([]);
  });

  it("names the networks in which this node has no block yet", () => {
    expect(desiredState(snapshot(), "n3").networksWithoutBlock).toEqual(["red"]);
  });

  it("joined namespaces share a VNI; with isolation off every pod is on the global VNI", () => {
    const joined = snapshot();
    joined.namespaces = [ns("coffee", 4096), ns("tea", 4096)];
    expect(desiredState(joined, "n1").remotes.find((r) => r.ipv4 === "172.30.0.2")?.vni).toBe(4096);
    const open = desiredState(snapshot(false), "n1");
    expect(open.localVnis.get("red/coffee/nginx-1")).toBe(1);
    expect(open.remotes.find((r) => r.ipv4 === "172.30.0.2")?.vni).toBe(1);
  });

  it("programs nothing for a network that no longer exists", () => {
    const s = snapshot();
    s.networks = [];
    const d = desiredState(s, "n1");
    expect(d.remotes).toEqual([]);
    expect(d.gateways).toEqual([]);
    expect(d.localVnis.size).toBe(0);
  });
});

describe("agent helpers", () => {
  it("names gateway ports after the block, within IFNAMSIZ", () => {
    expect(gatewayPortName("172.30.8.0/24")).toBe("ovgw0800");
    expect(gatewayPortName("172.30.255.128/25")).toBe("ovgwff80");
  });

  it("finds the management network and MTU of the underlay address", () => {
    const json = JSON.stringify([
      { ifname: "lo", mtu: 65536, addr_info: [{ family: "inet", local: "127.0.0.1", prefixlen: 8 }] },
      { ifname: "eth0", mtu: 9000, addr_info: [{ family: "inet", local: "10.1.2.3", prefixlen: 22 }] },
    ]);
    expect(managementCidrOf(json, "10.1.2.3")).toEqual({ cidr: "10.1.0.0/22", mtu: 9000 });
    expect(managementCidrOf(json, "10.9.9.9")).toBeUndefined();
  });
});

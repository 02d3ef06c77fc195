/**
 * Rendering of command results: the seed's tables and JSON for scripts. Commands hand typed
 * data to these functions; no other module decides what the user sees.
 */
import type {
  DataNetworkRecord,
  EndpointView,
  NamespaceView,
  NetworkRecord,
  NodeRecord,
  PerfTier,
  RecordProblem,
} from "../model/index.js";

export type OutputFormat = "table" | "json";

export const OUTPUT_FORMATS: readonly OutputFormat[] = ["table", "json"];

/** Columns padded to the widest cell plus three spaces, as kubectl and dctl print them. */
export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd((widths[i] ?? 0) + 3)))
      .join("")
      .trimEnd();
  return [line(headers), ...rows.map(line)].join("\n") + "\n";
}

export function json(value: unknown): string {
  return JSON.stringify(value, null, 2) + "\n";
}

// ---- networks ----------------------------------------------------------------------------

export interface NetworkJson {
  name: string;
  type: string;
  subnet: string;
  isolateNs: boolean;
  isDefault: boolean;
  blockPrefix: number;
  networkGroup: string;
  createdAt: string;
}

function networkJson(n: NetworkRecord): NetworkJson {
  return {
    name: n.name,
    type: n.type,
    subnet: n.subnet,
    isolateNs: n.isolateNs,
    isDefault: n.isDefault,
    blockPrefix: n.blockPrefix,
    networkGroup: n.networkGroup,
    createdAt: n.createdAt,
  };
}

export function networks(list: readonly NetworkRecord[], format: OutputFormat): string {
  if (format === "json") return json(list.map(networkJson));
  return table(
    ["NAME", "TYPE", "SUBNET", "OVERLAY-NW", "ISOLATE-NS", "NETWORKGROUP"],
    list.map((n) => [n.name, n.type, n.subnet, "", String(n.isolateNs), n.networkGroup]),
  );
}

export function network(n: NetworkRecord, format: OutputFormat): string {
  return format === "json" ? json(networkJson(n)) : networks([n], format);
}

export function dataNetworks(list: readonly DataNetworkRecord[], format: OutputFormat): string {
  if (format === "json") return json(list.map((d) => ({ name: d.name, subnet: d.cidr })));
  return table(
    ["NAME", "SUBNET"],
    list.map((d) => [d.name, d.cidr]),
  );
}

// ---- namespaces --------------------------------------------------------------------------

/** `list-namespaces`: the seed's single NAME column. */
export function namespaceNames(list: readonly NamespaceView[], format: OutputFormat): string {
  if (format === "json") return json(list);
  return table(
    ["NAME"],
    list.map((ns) => [ns.name]),
  );
}

/** `namespace list`: every namespace with the VNI and policy in effect. */
export function namespaces(list: readonly NamespaceView[], format: OutputFormat): string {
  if (format === "json") return json(list);
  return table(
    ["NAME", "NETWORK", "VNI", "POLICY", "JOINED-WITH"],
    list.map((ns) => [ns.name, ns.network, String(ns.vni), ns.policy, ns.joinedWith.join(",")]),
  );
}

export function namespace(ns: NamespaceView, format: OutputFormat): string {
  return format === "json" ? json(ns) : namespaces([ns], format);
}

// ---- endpoints ---------------------------------------------------------------------------

export function endpoints(list: readonly EndpointView[], format: OutputFormat): string {
  if (format === "json") {
    return json(
      list.map((e) => ({
        pod: e.pod,
        namespace: e.namespace,
        network: e.network,
        ip: e.ip,
        prefixLength: e.prefixLength,
        gateway: e.gateway,
        mac: e.mac,
        node: e.node,
        vni: e.vni ?? null,
        tier: e.tier,
        containerId: e.containerId,
        ifname: e.ifname,
        createdAt: e.createdAt,
      })),
    );
  }
  return table(
    ["POD", "NAMESPACE", "IP", "MAC", "NODE", "VNI", "TIER"],
    list.map((e) => [
      e.pod,
      e.namespace,
      e.ip,
      e.mac,
      e.node,
      e.vni === undefined ? "-" : String(e.vni),
      e.tier,
    ]),
  );
}

// ---- perf tiers and nodes ----------------------------------------------------------------

/** 125000000 -> "125Mbit/s"; null -> "unlimited". */
export function bandwidth(bitsPerSecond: number | null): string {
  if (bitsPerSecond === null) return "unlimited";
  for (const [unit, scale] of [
    ["G", 1e9],
    ["M", 1e6],
    ["K", 1e3],
  ] as const) {
    if (bitsPerSecond >= scale && bitsPerSecond % scale === 0) return `${bitsPerSecond / scale}${unit}bit/s`;
  }
  return `${bitsPerSecond}bit/s`;
}

export function perfTiers(list: readonly PerfTier[], format: OutputFormat): string {
  if (format === "json")
    return json(list.map((t) => ({ name: t.name, maxBitsPerSecond: t.maxBitsPerSecond })));
  return table(
    ["NAME", "MAX-BANDWIDTH"],
    list.map((t) => [t.name, bandwidth(t.maxBitsPerSecond)]),
  );
}

export interface NodeView {
  node: NodeRecord;
  /** Address blocks the node holds, each "network:cidr". */
  blocks: { network: string; cidr: string; gateway: string }[];
}

/** The OFFLOADS cell: the offloads, and the adaptive poll window's bound when it is on. */
function offloadsCell(node: NodeView["node"]): string {
  const all: string[] = [...(node.offloads ?? [])];
  if (node.pollUs !== undefined && node.pollUs > 0) all.push(`adaptive-poll<=${node.pollUs}us`);
  if (all.length === 0) return node.offloads === undefined && node.pollUs === undefined ? "-" : "none";
  return all.join(",");
}

export function nodes(list: readonly NodeView[], format: OutputFormat): string {
  if (format === "json") {
    return json(
      list.map((v) => ({
        name: v.node.name,
        underlayIp: v.node.underlayIp,
        managementCidr: v.node.managementCidr ?? null,
        offloads: v.node.offloads ?? null,
        pollUs: v.node.pollUs ?? null,
        apiAddress: v.node.apiAddress ?? null,
        registeredAt: v.node.registeredAt,
        blocks: v.blocks,
      })),
    );
  }
  return table(
    ["NAME", "UNDERLAY-IP", "MANAGEMENT-NETWORK", "BLOCKS", "OFFLOADS"],
    list.map((v) => [
      v.node.name,
      v.node.underlayIp,
      v.node.managementCidr ?? "-",
      v.blocks.length === 0 ? "-" : v.blocks.map((b) => b.cidr).join(","),
      offloadsCell(v.node),
    ]),
  );
}

// ---- messages ----------------------------------------------------------------------------

export const messages = {
  networkUpdated: "Successfully updated network\n",
  networkDeleted: "Successfully deleted network\n",
  /** Printed as Go prints a list of groups: [[coffee tea]]. */
  namespacesJoined: (group: readonly string[]): string =>
    `Successfully joined the network namespaces [[${group.join(" ")}]]\n`,
  namespaceCreated: (name: string): string => `Successfully created namespace ${name}\n`,
  namespaceDeleted: (name: string): string => `Successfully deleted namespace ${name}\n`,
  dataNetworkDeleted: (name: string): string => `Successfully deleted data network ${name}\n`,
  error: (message: string): string => `Error: ${message.replace(/\s*\n\s*/g, " ").trim()}\n`,
  badRecord: (p: RecordProblem): string => `Warning: skipping bad record ${p.key}: ${p.problem}\n`,
};

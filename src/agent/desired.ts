/**
 * What a node's switch must hold, computed from the cluster's records alone (pure functions over
 * ClusterRecords, so the agent can compute all of it after a listing, or one entry after one
 * record changed, with the same rules):
 *   - peers: every other registered node's underlay address;
 *   - remote endpoints: every pod of the other registered nodes, on its namespace's VNI (model's
 *     podVni: none without a valid namespace record, and then the pod is not programmed), and
 *     each other node's gateway addresses on the global VNI; one entry per source record
 *     (`remoteEntry`);
 *   - the VNIs that reach every other (the global set the switch's policy uses);
 *   - the VNI of each local pod's port;
 *   - this node's gateway ports: one per address block it owns, on the global VNI.
 * Endpoints of nodes whose registration lapsed are not programmed: their VTEP is gone.
 */
import type { RemoteEndpoint } from "../dataplane/switch.js";
import { blockGateway, macFromIpv4 } from "../model/ipam.js";
import { blockKey, endpointKey, namespaceKey, networkKey, nodeKey, type RecordKind } from "../model/keys.js";
import { GLOBAL_VNI, podVni } from "../model/namespaces.js";
import type {
  BlockRecord,
  EndpointRecord,
  NamespaceRecord,
  NetworkRecord,
  NodeRecord,
} from "../model/records.js";
import { ClusterRecords, type AnyRecord, type ClusterSnapshot, type HeldEndpoint } from "./cluster.js";

export interface GatewayPort {
  block: string;
  ip: string;
  mac: string;
  /** The overlay subnet, as the host's route to it. */
  subnet: string;
}

/** What the node's own side needs: small, computed from the node's own records only. */
export interface LocalState {
  /** Local pods by endpoint key (network/namespace/pod) -> VNI. */
  localVnis: Map<string, number>;
  localEndpoints: EndpointRecord[];
  gateways: GatewayPort[];
  /** Networks in which this node holds no address block yet. */
  networksWithoutBlock: string[];
}

export interface DesiredState extends LocalState {
  peers: string[];
  remotes: RemoteEndpoint[];
  globalVnis: number[];
}

export function endpointId(e: Pick<EndpointRecord, "network" | "namespace" | "pod">): string {
  return `${e.network}/${e.namespace}/${e.pod}`;
}

/** The global VNI set: VNI 1, the node gateways' and global namespaces'. */
export const GLOBAL_VNIS: readonly number[] = [GLOBAL_VNI];

/** The VNI of an endpoint's port: its namespace's, by the model's one rule; none without a record. */
export function endpointVni(c: ClusterRecords, e: HeldEndpoint): number | undefined {
  const net = c.network(e.network);
  return net && podVni(net, c.namespace(e.network, e.namespace));
}

export function peers(c: ClusterRecords, self: string): string[] {
  return [...c.nodes()]
    .filter((n) => n.name !== self)
    .map((n) => n.underlayIp)
    .sort();
}

/**
 * The remote entry a source record (an endpoint or a block, by key) puts in this node's switch,
 * or undefined when it puts none (its own, unregistered node, no network, no VNI).
 */
export function remoteEntry(
  c: ClusterRecords,
  self: string,
  kind: "endpoint" | "block",
  key: string,
): RemoteEndpoint | undefined {
  if (kind === "endpoint") {
    const e = c.endpoint(key);
    if (e === undefined || e.node === self) return undefined;
    const node = c.node(e.node);
    const vni = endpointVni(c, e);
    if (node === undefined || vni === undefined) return undefined;
    return { vni, mac: e.mac, ipv4: e.ip, vtep: node.underlayIp };
  }
  const b = c.block(key);
  if (b === undefined || b.node === self || c.network(b.network) === undefined) return undefined;
  const node = c.node(b.node);
  if (node === undefined) return undefined;
  const ip = blockGateway(b.cidr);
  return { vni: GLOBAL_VNI, mac: macFromIpv4(ip), ipv4: ip, vtep: node.underlayIp };
}

export function localState(c: ClusterRecords, self: string): LocalState {
  const localVnis = new Map<string, number>();
  const localEndpoints: EndpointRecord[] = [];
  for (const e of c.ownEndpoints()) {
    localEndpoints.push(e);
    const vni = endpointVni(c, e);
    if (vni !== undefined) localVnis.set(endpointId(e), vni);
  }
  const gateways: GatewayPort[] = [];
  const withBlock = new Set<string>();
  for (const b of c.blocksOfNode(self).values()) {
    const net = c.network(b.network);
    if (!net) continue;
    withBlock.add(b.network);
    const ip = blockGateway(b.cidr);
    gateways.push({ block: b.cidr, ip, mac: macFromIpv4(ip), subnet: net.subnet });
  }
  gateways.sort((a, b) => (a.block < b.block ? -1 : 1));
  const networksWithoutBlock = [...c.networks()]
    .map((n) => n.name)
    .filter((n) => !withBlock.has(n))
    .sort();
  return { localVnis, localEndpoints, gateways, networksWithoutBlock };
}

/** Every remote entry, by MAC. */
export function allRemotes(c: ClusterRecords, self: string): Map<string, RemoteEndpoint> {
  const out = new Map<string, RemoteEndpoint>();
  for (const [key, kind] of c.remoteSources()) {
    const r = remoteEntry(c, self, kind, key);
    if (r !== undefined) out.set(r.mac, r);
  }
  return out;
}

/** The key a record is stored under (for records that come without one, as in a snapshot). */
export function keyOfRecord(kind: RecordKind, r: AnyRecord | HeldEndpoint): string {
  switch (kind) {
    case "network":
      return networkKey((r as NetworkRecord).name);
    case "namespace":
      return namespaceKey((r as NamespaceRecord).network, (r as NamespaceRecord).name);
    case "node":
      return nodeKey((r as NodeRecord).name);
    case "endpoint": {
      const e = r as HeldEndpoint;
      return endpointKey(e.network, e.namespace, e.pod);
    }
    case "block":
      return blockKey((r as BlockRecord).network, (r as BlockRecord).cidr);
  }
}

/** Everything at once, from a snapshot: what a fresh agent would program. */
export function desiredState(s: ClusterSnapshot | ClusterRecords, self: string): DesiredState {
  const c = s instanceof ClusterRecords ? s : ClusterRecords.fromSnapshot(s, keyOfRecord, self);
  const remotes = [...allRemotes(c, self).values()].sort((a, b) =>
    a.mac < b.mac ? -1 : a.mac > b.mac ? 1 : 0,
  );
  return { peers: peers(c, self), remotes, globalVnis: [...GLOBAL_VNIS], ...localState(c, self) };
}

/**
 * What a node's switch must hold, computed from the cluster's records alone (a pure function, so
 * the agent can recompute it from scratch after any change or restart and diff it against what
 * it programmed):
 *   - peers: every other registered node's underlay address;
 *   - remote endpoints: every pod of the other registered nodes, on its namespace's VNI, and each
 *     other node's gateway addresses on the global VNI;
 *   - the VNI of each local pod's port (model's podVni: none without a valid namespace record);
 *   - the VNIs that reach every other (the global set the switch's policy uses);
 *   - this node's gateway ports: one per address block it owns, on the global VNI.
 * Endpoints of nodes whose registration lapsed are not programmed: their VTEP is gone.
 */
import type { RemoteEndpoint } from "../dataplane/switch.js";
import { blockGateway, macFromIpv4 } from "../model/ipam.js";
import { GLOBAL_VNI, podVni } from "../model/namespaces.js";
import type { EndpointRecord, NamespaceRecord, NetworkRecord } from "../model/records.js";
import type { ClusterSnapshot } from "./view.js";

export interface GatewayPort {
  block: string;
  ip: string;
  mac: string;
  /** The overlay subnet, as the host's route to it. */
  subnet: string;
}

export interface DesiredState {
  peers: string[];
  remotes: RemoteEndpoint[];
  /** Local pods by endpoint key (network/namespace/pod) -> VNI. */
  localVnis: Map<string, number>;
  localEndpoints: EndpointRecord[];
  gateways: GatewayPort[];
  globalVnis: number[];
  /** Networks in which this node holds no address block yet. */
  networksWithoutBlock: string[];
}

export function endpointId(e: Pick<EndpointRecord, "network" | "namespace" | "pod">): string {
  return `${e.network}/${e.namespace}/${e.pod}`;
}

export function desiredState(s: ClusterSnapshot, self: string): DesiredState {
  const nodes = new Map(s.nodes.map((n) => [n.name, n]));
  const networks = new Map<string, NetworkRecord>(s.networks.map((n) => [n.name, n]));
  const namespaces = new Map<string, NamespaceRecord>(s.namespaces.map((n) => [`${n.network}/${n.name}`, n]));
  // No network, or no valid namespace record: no VNI, so the pod is not programmed (fail closed).
  const vniOf = (e: EndpointRecord): number | undefined => {
    const net = networks.get(e.network);
    return net && podVni(net, namespaces.get(`${e.network}/${e.namespace}`));
  };

  const peers = [...nodes.values()]
    .filter((n) => n.name !== self)
    .map((n) => n.underlayIp)
    .sort();
  const remotes: RemoteEndpoint[] = [];
  const localVnis = new Map<string, number>();
  const localEndpoints: EndpointRecord[] = [];
  for (const e of s.endpoints) {
    const vni = vniOf(e);
    if (e.node === self) {
      localEndpoints.push(e);
      if (vni !== undefined) localVnis.set(endpointId(e), vni);
      continue;
    }
    const node = nodes.get(e.node);
    if (!node || vni === undefined) continue;
    remotes.push({ vni, mac: e.mac, ipv4: e.ip, vtep: node.underlayIp });
  }
  const gateways: GatewayPort[] = [];
  for (const b of s.blocks) {
    const net = networks.get(b.network);
    if (!net) continue;
    const ip = blockGateway(b.cidr);
    if (b.node === self) {
      gateways.push({ block: b.cidr, ip, mac: macFromIpv4(ip), subnet: net.subnet });
      continue;
    }
    const node = nodes.get(b.node);
    if (node) remotes.push({ vni: GLOBAL_VNI, mac: macFromIpv4(ip), ipv4: ip, vtep: node.underlayIp });
  }
  remotes.sort((a, b) => (a.mac < b.mac ? -1 : a.mac > b.mac ? 1 : 0));
  gateways.sort((a, b) => (a.block < b.block ? -1 : 1));
  const withBlock = new Set(s.blocks.filter((b) => b.node === self).map((b) => b.network));
  const networksWithoutBlock = [...networks.keys()].filter((n) => !withBlock.has(n)).sort();
  return {
    peers,
    remotes,
    localVnis,
    localEndpoints,
    gateways,
    globalVnis: [GLOBAL_VNI],
    networksWithoutBlock,
  };
}

/**
 * The store key layout of the control model, in one place. Every prefix ends with "/" so that a
 * list or watch of one network never sees a network whose name merely starts the same way.
 *
 *   /overlay/v1/network/<name>                              NetworkRecord
 *   /overlay/v1/namespace/<network>/<ns>                    NamespaceRecord (VNI membership)
 *   /overlay/v1/endpoint/<network>/<ns>/<pod>               EndpointRecord
 *   /overlay/v1/ipam/<network>/block/<a.b.c.d-len>          BlockRecord (owner node)
 *   /overlay/v1/ipam/<network>/addr/<a.b.c.d-len>/<ip>      AddressRecord (owner pod)
 *   /overlay/v1/node/<name>                                 NodeRecord (leased by its agent)
 *   /overlay/v1/datanet/<name>                              DataNetworkRecord
 *
 * Addresses are nested under their block so that allocating on a node reads one block's
 * addresses, not the whole pool.
 */

export const ROOT = "/overlay/v1/";

export const NETWORKS = `${ROOT}network/`;
export const NAMESPACES = `${ROOT}namespace/`;
export const ENDPOINTS = `${ROOT}endpoint/`;
export const IPAM = `${ROOT}ipam/`;
export const NODES = `${ROOT}node/`;
export const DATANETS = `${ROOT}datanet/`;

export function networkKey(name: string): string {
  return NETWORKS + name;
}

export function namespacesPrefix(network: string): string {
  return `${NAMESPACES}${network}/`;
}

export function namespaceKey(network: string, namespace: string): string {
  return namespacesPrefix(network) + namespace;
}

export function endpointsPrefix(network: string): string {
  return `${ENDPOINTS}${network}/`;
}

export function namespaceEndpointsPrefix(network: string, namespace: string): string {
  return `${endpointsPrefix(network)}${namespace}/`;
}

export function endpointKey(network: string, namespace: string, pod: string): string {
  return namespaceEndpointsPrefix(network, namespace) + pod;
}

export function ipamPrefix(network: string): string {
  return `${IPAM}${network}/`;
}

export function blocksPrefix(network: string): string {
  return `${ipamPrefix(network)}block/`;
}

/** "172.30.8.0/24" -> "172.30.8.0-24": a CIDR without the "/" that would read as a key level. */
export function cidrKeyPart(cidr: string): string {
  return cidr.replace("/", "-");
}

export function cidrFromKeyPart(part: string): string {
  return part.replace("-", "/");
}

export function blockKey(network: string, blockCidr: string): string {
  return blocksPrefix(network) + cidrKeyPart(blockCidr);
}

export function addressesPrefix(network: string): string {
  return `${ipamPrefix(network)}addr/`;
}

export function blockAddressesPrefix(network: string, blockCidr: string): string {
  return `${addressesPrefix(network)}${cidrKeyPart(blockCidr)}/`;
}

export function addressKey(network: string, blockCidr: string, ip: string): string {
  return blockAddressesPrefix(network, blockCidr) + ip;
}

export function nodeKey(name: string): string {
  return NODES + name;
}

export function dataNetworkKey(name: string): string {
  return DATANETS + name;
}

/** The kinds of record an agent follows, by the key that holds them. */
export type RecordKind = "network" | "namespace" | "endpoint" | "node" | "block";

/** Which kind of record a key under ROOT holds; undefined for keys of other kinds (addresses). */
export function recordKindOf(key: string): RecordKind | undefined {
  if (key.startsWith(NETWORKS)) return "network";
  if (key.startsWith(NAMESPACES)) return "namespace";
  if (key.startsWith(ENDPOINTS)) return "endpoint";
  if (key.startsWith(NODES)) return "node";
  if (key.startsWith(IPAM)) {
    // /overlay/v1/ipam/<network>/block/<cidr>: the level after the network says which.
    const rest = key.slice(IPAM.length);
    const level = rest.split("/")[1];
    if (level === "block") return "block";
  }
  return undefined;
}

/** The last level of a key: the name of the object it holds. */
export function lastSegment(key: string): string {
  return key.slice(key.lastIndexOf("/") + 1);
}

/** True when a name can be used as one key level. */
export function isKeySafe(name: string): boolean {
  return name.length > 0 && !name.includes("/") && name !== "." && name !== "..";
}

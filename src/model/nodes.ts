/**
 * Nodes (registered by their agents, under a lease so that a vanished node disappears) and the
 * cluster's data networks. The overlay subnet must not overlap either.
 */
import type { Lease, LeaseId, Store } from "../store/store.js";
import { invalid, notFound } from "./errors.js";
import { formatCidr, networkAddress, overlaps, parseCidr, parseIpv4, type Ipv4Cidr } from "./ipv4.js";
import { listNetworks } from "./networkread.js";
import { DATANETS, NODES, dataNetworkKey, nodeKey } from "./keys.js";
import { checkNetworkName, checkNodeName } from "./names.js";
import {
  encode,
  now,
  parseDataNetwork,
  parseNode,
  type DataNetworkRecord,
  type Listing,
  type NodeRecord,
  type Offload,
} from "./records.js";
import { listParsed } from "./storeutil.js";

export interface RegisterNodeInput {
  name: string;
  underlayIp: string;
  managementCidr?: string;
  offloads?: Offload[];
  pollUs?: number;
  /** IPV4:PORT of the agent's operator API (NodeRecord.apiAddress). */
  apiAddress?: string;
}

/** "10.0.0.1:9464": an IPv4 address and a TCP port, as NodeRecord.apiAddress holds them. */
export function parseApiAddress(text: string): { host: string; port: number } | undefined {
  const m = /^(\d{1,3}(?:\.\d{1,3}){3}):(\d{1,5})$/.exec(text);
  if (!m || parseIpv4(m[1] as string) === undefined) return undefined;
  const port = Number(m[2]);
  return port >= 1 && port <= 65535 ? { host: m[1] as string, port } : undefined;
}

export function buildNodeRecord(input: RegisterNodeInput): NodeRecord {
  checkNodeName(input.name);
  if (parseIpv4(input.underlayIp) === undefined) {
    throw invalid(
      `invalid underlay IP "${input.underlayIp}" for node ${input.name}: expected an IPv4 address`,
    );
  }
  const record: NodeRecord = {
    schemaVersion: 1,
    name: input.name,
    underlayIp: input.underlayIp,
    registeredAt: now(),
  };
  if (input.managementCidr !== undefined) {
    const cidr = parseCidr(input.managementCidr);
    if (cidr === undefined) {
      throw invalid(
        `invalid management network "${input.managementCidr}" for node ${input.name}: expected CIDR form, e.g. 10.0.0.0/24`,
      );
    }
    record.managementCidr = formatCidr({ address: networkAddress(cidr), prefixLength: cidr.prefixLength });
  }
  if (input.offloads !== undefined) record.offloads = [...input.offloads];
  if (input.pollUs !== undefined) record.pollUs = input.pollUs;
  if (input.apiAddress !== undefined) {
    if (parseApiAddress(input.apiAddress) === undefined) {
      throw invalid(
        `invalid API address "${input.apiAddress}" for node ${input.name}: expected IPV4:PORT, e.g. 10.0.0.1:9464`,
      );
    }
    record.apiAddress = input.apiAddress;
  }
  return record;
}

/** Writes the node's record; with a lease, the record vanishes when the agent stops renewing it. */
export async function registerNode(
  store: Store,
  input: RegisterNodeInput,
  lease?: LeaseId,
): Promise<NodeRecord> {
  const record = buildNodeRecord(input);
  // The mirror of createNetwork's check: a node whose own network the overlay would shadow
  // cannot reach its peers' VTEPs, or its pods the node, once routes to the overlay exist.
  const mine =
    record.managementCidr !== undefined
      ? (parseCidr(record.managementCidr) as Ipv4Cidr)
      : { address: parseIpv4(record.underlayIp) as number, prefixLength: 32 };
  for (const { value: net } of (await listNetworks(store)).entries) {
    const overlay = parseCidr(net.subnet);
    if (overlay !== undefined && overlaps(overlay, mine)) {
      const what = record.managementCidr ?? `${record.underlayIp}/32`;
      throw invalid(
        `node ${record.name}: its management network ${what} overlaps the overlay network ${net.name} (${net.subnet})`,
        { node: record.name, managementCidr: what, network: net.name },
      );
    }
  }
  const op = { type: "put" as const, key: nodeKey(record.name), value: encode(record) };
  await store.txn([], [lease === undefined ? op : { ...op, lease }]);
  return record;
}

/**
 * Resolves when the store answers a read, rejects (StoreUnavailableError) when it does not: the
 * health check of an agent's STATUS. Reads one key that never exists, so it costs nothing.
 */
export async function checkStoreReachable(store: Store): Promise<void> {
  await store.get(nodeKey(".health"));
}

/**
 * Registers the node under a new lease of `ttlSeconds`: its record vanishes when the agent stops
 * renewing the lease it returns.
 */
export async function registerLeasedNode(
  store: Store,
  input: RegisterNodeInput,
  ttlSeconds: number,
): Promise<Lease> {
  const lease = await store.grantLease(ttlSeconds);
  await registerNode(store, input, lease.id);
  return lease;
}

export async function listNodes(store: Store): Promise<Listing<NodeRecord>> {
  return listParsed(store, NODES, parseNode);
}

export async function putDataNetwork(
  store: Store,
  name: string,
  cidrText: string,
): Promise<DataNetworkRecord> {
  checkNetworkName(name);
  const cidr = parseCidr(cidrText);
  if (cidr === undefined) {
    throw invalid(`invalid data network subnet "${cidrText}": expected CIDR form, e.g. 192.168.10.0/24`);
  }
  const record: DataNetworkRecord = {
    schemaVersion: 1,
    name,
    cidr: formatCidr({ address: networkAddress(cidr), prefixLength: cidr.prefixLength }),
  };
  const cidrOfRecord = parseCidr(record.cidr) as Ipv4Cidr;
  for (const { value: net } of (await listNetworks(store)).entries) {
    const overlay = parseCidr(net.subnet);
    if (overlay !== undefined && overlaps(overlay, cidrOfRecord)) {
      throw invalid(
        `data network ${name} (${record.cidr}) overlaps the overlay network ${net.name} (${net.subnet})`,
        {
          dataNetwork: name,
          network: net.name,
        },
      );
    }
  }
  await store.txn([], [{ type: "put", key: dataNetworkKey(name), value: encode(record) }]);
  return record;
}

export async function listDataNetworks(store: Store): Promise<Listing<DataNetworkRecord>> {
  return listParsed(store, DATANETS, parseDataNetwork);
}

export async function deleteDataNetwork(store: Store, name: string): Promise<void> {
  const kv = await store.get(dataNetworkKey(name));
  if (kv === undefined) throw notFound(`data network ${name} not found`, { name });
  await store.txn([], [{ type: "delete", key: kv.key }]);
}

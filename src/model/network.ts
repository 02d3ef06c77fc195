/**
 * The overlay (private) network: one per cluster, a /16 that must not overlap any node's
 * management network or any cluster data network.
 */
import type { Compare, Op, Store } from "../store/store.js";
import { OverlayError, invalid, precondition } from "./errors.js";
import {
  formatCidr,
  formatIpv4,
  formatMask,
  networkAddress,
  overlaps,
  parseCidr,
  parseIpv4,
  type Ipv4Cidr,
} from "./ipv4.js";
import {
  DATANETS,
  NETWORKS,
  NODES,
  endpointsPrefix,
  ipamPrefix,
  lastSegment,
  namespaceKey,
  namespacesPrefix,
  networkKey,
} from "./keys.js";
import { checkNetworkName } from "./names.js";
import { initialNamespaces } from "./namespaces.js";
import { listDataNetworks, listNodes } from "./nodes.js";
import { getNetwork, listNetworks } from "./networkread.js";
import { encode, now, type Entry, type NetworkRecord } from "./records.js";
import { RETRY, retrying } from "./storeutil.js";

export { getNetwork, listNetworks } from "./networkread.js";

export const OVERLAY_PREFIX_LENGTH = 16;
export const DEFAULT_BLOCK_PREFIX = 24;
/** Blocks smaller than the /16 (a node must not take the whole pool) with room for some pods. */
export const MIN_BLOCK_PREFIX = 17;
export const MAX_BLOCK_PREFIX = 28;

/** Ranges that can never carry pod addresses. */
const RESERVED: readonly { cidr: string; what: string }[] = [
  { cidr: "0.0.0.0/8", what: '"this network"' },
  { cidr: "127.0.0.0/8", what: "loopback" },
  { cidr: "169.254.0.0/16", what: "link-local" },
  { cidr: "224.0.0.0/4", what: "multicast" },
  { cidr: "240.0.0.0/4", what: "reserved" },
];

/** Checks the overlay subnet rules that need nothing but the subnet itself. */
export function checkOverlaySubnet(subnet: string): Ipv4Cidr {
  const cidr = parseCidr(subnet);
  if (cidr === undefined) {
    throw invalid(`invalid subnet "${subnet}": expected an IPv4 network in CIDR form, e.g. 172.30.0.0/16`, {
      subnet,
    });
  }
  if (cidr.prefixLength !== OVERLAY_PREFIX_LENGTH) {
    throw invalid(
      `subnet ${subnet} has netmask ${formatMask(cidr.prefixLength)}; the overlay network requires netmask ${formatMask(OVERLAY_PREFIX_LENGTH)} (a /${OVERLAY_PREFIX_LENGTH})`,
      { subnet, netmask: formatMask(cidr.prefixLength) },
    );
  }
  const base = networkAddress(cidr);
  if (base !== cidr.address) {
    const fixed = formatCidr({ address: base, prefixLength: cidr.prefixLength });
    throw invalid(`subnet ${subnet} is not a network address (host bits are set); did you mean ${fixed}?`, {
      subnet,
      expected: fixed,
    });
  }
  for (const r of RESERVED) {
    const reserved = parseCidr(r.cidr) as Ipv4Cidr;
    if (overlaps(cidr, reserved)) {
      throw invalid(`subnet ${subnet} lies in ${r.cidr} (${r.what}), which cannot carry pod addresses`, {
        subnet,
        reserved: r.cidr,
      });
    }
  }
  return cidr;
}

/** "24" or "/24" -> 24, within the allowed block sizes. */
export function parseBlockSize(text: string): number {
  const m = /^\/?([0-9]{1,2})$/.exec(text.trim());
  const value = m === null ? NaN : Number(m[1]);
  if (!Number.isInteger(value) || value < MIN_BLOCK_PREFIX || value > MAX_BLOCK_PREFIX) {
    throw invalid(
      `invalid block size "${text}": per-node blocks must be between /${MIN_BLOCK_PREFIX} and /${MAX_BLOCK_PREFIX}`,
      { blockSize: text },
    );
  }
  return value;
}

export interface CreateNetworkInput {
  name: string;
  subnet: string;
  /** Default true. */
  isolateNs?: boolean;
  /** Default false. */
  setDefault?: boolean;
  /** Prefix length of per-node blocks; default 24. */
  blockPrefix?: number;
}

/** The network pods use when their request names none. */
export async function getDefaultNetwork(store: Store): Promise<NetworkRecord | undefined> {
  const listing = await listNetworks(store);
  return listing.entries.find((e) => e.value.isDefault)?.value;
}

/**
 * The network a command means: the one named, or else the cluster's only overlay network.
 */
export async function resolveNetwork(store: Store, name?: string): Promise<Entry<NetworkRecord>> {
  if (name !== undefined) return getNetwork(store, name);
  const listing = await listNetworks(store);
  const [first, ...rest] = listing.entries;
  if (first === undefined) {
    throw precondition(`no overlay network exists; create one with "dctl network overlay create"`);
  }
  if (rest.length > 0) {
    throw invalid(
      `several overlay networks exist (${listing.entries.map((e) => e.value.name).join(", ")}); name one`,
    );
  }
  return first;
}

export async function createNetwork(store: Store, input: CreateNetworkInput): Promise<NetworkRecord> {
  checkNetworkName(input.name);
  const cidr = checkOverlaySubnet(input.subnet);
  const blockPrefix = input.blockPrefix ?? DEFAULT_BLOCK_PREFIX;
  if (!Number.isInteger(blockPrefix) || blockPrefix < MIN_BLOCK_PREFIX || blockPrefix > MAX_BLOCK_PREFIX) {
    throw invalid(
      `invalid block size "/${blockPrefix}": per-node blocks must be between /${MIN_BLOCK_PREFIX} and /${MAX_BLOCK_PREFIX}`,
    );
  }
  const record: NetworkRecord = {
    schemaVersion: 1,
    name: input.name,
    type: "private",
    subnet: formatCidr(cidr),
    isolateNs: input.isolateNs ?? true,
    isDefault: input.setDefault ?? false,
    blockPrefix,
    networkGroup: "",
    createdAt: now(),
  };

  return retrying(
    `creating network ${input.name}`,
    async () => {
      const networks = await listNetworks(store);
      const existing = networks.entries[0]?.value;
      if (existing !== undefined) {
        if (existing.name === input.name) {
          throw new OverlayError("ALREADY_EXISTS", `overlay network ${input.name} already exists`, {
            network: input.name,
          });
        }
        throw new OverlayError(
          "ALREADY_EXISTS",
          `an overlay network already exists (${existing.name}, ${existing.subnet}); only one overlay network per cluster is supported`,
          { existing: existing.name },
        );
      }
      if (networks.problems.length > 0) {
        const p = networks.problems[0] as { key: string };
        throw new OverlayError(
          "ALREADY_EXISTS",
          `an overlay network already exists (${lastSegment(p.key)}, unreadable record); only one overlay network per cluster is supported`,
          { existing: lastSegment(p.key) },
        );
      }

      const nodes = await listNodes(store);
      for (const { value: node } of nodes.entries) {
        const mgmt =
          node.managementCidr !== undefined
            ? parseCidr(node.managementCidr)
            : { address: parseIpv4(node.underlayIp) ?? 0, prefixLength: 32 };
        if (mgmt !== undefined && overlaps(cidr, mgmt)) {
          const what = node.managementCidr ?? `${formatIpv4(mgmt.address)}/32`;
          throw invalid(
            `subnet ${record.subnet} overlaps the management network ${what} of node ${node.name}`,
            {
              subnet: record.subnet,
              node: node.name,
              managementCidr: what,
            },
          );
        }
      }
      const datanets = await listDataNetworks(store);
      for (const { value: dn } of datanets.entries) {
        const other = parseCidr(dn.cidr);
        if (other !== undefined && overlaps(cidr, other)) {
          throw invalid(`subnet ${record.subnet} overlaps the data network ${dn.name} (${dn.cidr})`, {
            subnet: record.subnet,
            dataNetwork: dn.name,
            cidr: dn.cidr,
          });
        }
      }

      // Nothing may appear meanwhile: no network, no node, no data network we did not check.
      const compares: Compare[] = [
        { prefix: NETWORKS, maxModRevision: 0 },
        { prefix: NODES, maxModRevision: nodes.revision },
        { prefix: DATANETS, maxModRevision: datanets.revision },
      ];
      // Leftovers of an earlier network of the same name must not leak into this one. Namespace
      // keys go in a transaction of their own: one transaction may not both delete a range and
      // put a key inside it (etcd refuses it).
      const leftovers = await store.txn(
        [{ prefix: NETWORKS, maxModRevision: 0 }],
        [{ type: "deletePrefix", prefix: namespacesPrefix(record.name) }],
      );
      if (!leftovers.succeeded) return RETRY;
      const ops: Op[] = [
        { type: "deletePrefix", prefix: ipamPrefix(record.name) },
        { type: "deletePrefix", prefix: endpointsPrefix(record.name) },
        { type: "put", key: networkKey(record.name), value: encode(record) },
        ...initialNamespaces(record.name).map((ns): Op => ({
          type: "put",
          key: namespaceKey(record.name, ns.name),
          value: encode(ns),
        })),
      ];
      const txn = await store.txn(compares, ops);
      return txn.succeeded ? record : RETRY;
    },
    { contended: "the network records" },
  );
}

/** Marks the network as the default one (or clears the mark). */
export async function setDefaultNetwork(
  store: Store,
  name: string,
  isDefault: boolean,
): Promise<NetworkRecord> {
  return retrying(
    `updating network ${name}`,
    async () => {
      const { value, kv } = await getNetwork(store, name);
      const updated: NetworkRecord = { ...value, isDefault };
      if (value.isDefault === isDefault) return updated;
      const txn = await store.txn(
        [{ key: kv.key, modRevision: kv.modRevision }],
        [{ type: "put", key: kv.key, value: encode(updated) }],
      );
      return txn.succeeded ? updated : RETRY;
    },
    { contended: `network record ${name}` },
  );
}

/** Deletes the network with its namespaces and address blocks; refused while endpoints exist. */
export async function deleteNetwork(store: Store, name: string): Promise<void> {
  await retrying(
    `deleting network ${name}`,
    async () => {
      const { kv } = await getNetwork(store, name);
      const endpoints = await store.list(endpointsPrefix(name));
      const count = endpoints.items.length;
      if (count > 0) {
        const pods = endpoints.items
          .slice(0, 3)
          .map((e) => e.key.slice(endpointsPrefix(name).length))
          .join(", ");
        throw precondition(
          `cannot delete network ${name}: ${count} endpoint${count === 1 ? "" : "s"} still use${count === 1 ? "s" : ""} it (${pods}${count > 3 ? ", ..." : ""}); delete those pods first`,
          { network: name, endpoints: count },
        );
      }
      const txn = await store.txn(
        [
          { key: kv.key, modRevision: kv.modRevision },
          { prefix: endpointsPrefix(name), maxModRevision: 0 },
        ],
        [
          { type: "delete", key: kv.key },
          { type: "deletePrefix", prefix: namespacesPrefix(name) },
          { type: "deletePrefix", prefix: ipamPrefix(name) },
        ],
      );
      return txn.succeeded ? undefined : RETRY;
    },
    { contended: `the records of network ${name}` },
  );
}

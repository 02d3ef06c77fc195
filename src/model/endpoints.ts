/**
 * Pod endpoints on the overlay: what the agent records on CNI ADD and removes on CNI DEL. An
 * endpoint and its address are written in one transaction and deleted in one, so the pool and
 * the endpoints never disagree.
 */
import type { Compare, KeyValue, Op, Store } from "../store/store.js";
import { damagedNamespaceOf } from "./damage.js";
import { invalid, precondition } from "./errors.js";
import { allocateAddress, type Allocation } from "./ipam.js";
import {
  ENDPOINTS,
  addressKey,
  endpointKey,
  endpointsPrefix,
  namespaceEndpointsPrefix,
  namespaceKey,
} from "./keys.js";
import { checkNamespaceName, checkNodeName, checkPodName } from "./names.js";
import { computeVnis, ensureNamespace } from "./namespaces.js";
import { getDefaultNetwork, getNetwork } from "./network.js";
import { DEFAULT_PERF_TIER, getPerfTier } from "./perftier.js";
import {
  encode,
  now,
  parseEndpoint,
  parseNamespace,
  type EndpointRecord,
  type Listing,
  type NamespaceRecord,
  type NetworkRecord,
} from "./records.js";
import { RETRY, listParsed, retrying } from "./storeutil.js";

export const DEFAULT_IFNAME = "eth0";

export interface CreateEndpointInput {
  /** The network the pod asked for; the default overlay network when omitted. */
  network?: string;
  namespace: string;
  pod: string;
  node: string;
  /** Default best-effort. */
  tier?: string;
  containerId: string;
  /** Default eth0. */
  ifname?: string;
  /** Path of the pod's network namespace. */
  netns?: string;
}

/** The network a pod's request means: the one it names, or the default overlay network. */
export async function networkForPod(
  store: Store,
  requested: string | undefined,
  pod: string,
): Promise<NetworkRecord> {
  if (requested !== undefined && requested !== "") return (await getNetwork(store, requested)).value;
  const fallback = await getDefaultNetwork(store);
  if (fallback === undefined) {
    throw precondition(
      `pod ${pod} names no network and no default overlay network is set; name one in its diamanti.com/endpoint0 annotation or set a default with "dctl network overlay update <name> --set-default"`,
      { pod },
    );
  }
  return fallback;
}

/**
 * Creates the pod's endpoint with a fresh address from its node's blocks. Idempotent for a
 * repeated request from the same container; a request from another container of the same pod
 * (a recreated sandbox) replaces the old endpoint and releases its address.
 */
/** Whether the namespace record is valid, of this namespace, and lists "pod" among its sources. */
function knownFromPods(network: string, namespace: string, kv: KeyValue | undefined): boolean {
  if (kv === undefined || damagedNamespaceOf(network, namespace, kv) !== undefined) return false;
  const parsed = parseNamespace(kv);
  return parsed.ok && parsed.value.sources.includes("pod");
}

export async function createEndpoint(store: Store, input: CreateEndpointInput): Promise<EndpointRecord> {
  checkNamespaceName(input.namespace);
  checkPodName(input.pod);
  checkNodeName(input.node);
  if (input.containerId.trim() === "") throw invalid("container ID is empty");
  const tier = getPerfTier(input.tier ?? DEFAULT_PERF_TIER).name;
  const ifname = input.ifname ?? DEFAULT_IFNAME;
  const network = await networkForPod(store, input.network, `${input.namespace}/${input.pod}`);
  const key = endpointKey(network.name, input.namespace, input.pod);

  const current = await store.get(key);
  if (current !== undefined) {
    const parsed = parseEndpoint(current);
    if (parsed.ok && parsed.value.containerId === input.containerId && parsed.value.ifname === ifname) {
      return parsed.value;
    }
  }

  let record: EndpointRecord | undefined;
  let firstTry = true;
  await allocateAddress(
    store,
    {
      network: network.name,
      node: input.node,
      owner: { namespace: input.namespace, pod: input.pod, containerId: input.containerId, ifname },
    },
    async (allocation: Allocation) => {
      // A namespace already known from its pods needs no write: its record, read here, is
      // compared in the transaction. Otherwise (new, known only from elsewhere, or damaged: the
      // error comes from there) ensureNamespace registers it first.
      let nsKv = await store.get(namespaceKey(network.name, input.namespace));
      if (!knownFromPods(network.name, input.namespace, nsKv)) {
        await ensureNamespace(store, network.name, input.namespace, "pod");
        nsKv = await store.get(namespaceKey(network.name, input.namespace));
      }
      // The first attempt uses the read above; a retry reads again.
      const existing = firstTry ? current : await store.get(key);
      firstTry = false;
      const compares: Compare[] = [
        { key: namespaceKey(network.name, input.namespace), modRevision: nsKv?.modRevision ?? -1 },
        { key, modRevision: existing?.modRevision ?? 0 },
      ];
      const ops: Op[] = [];
      if (existing !== undefined) {
        const old = parseEndpoint(existing);
        if (old.ok)
          ops.push({ type: "delete", key: addressKey(old.value.network, old.value.block, old.value.ip) });
      }
      record = {
        schemaVersion: 1,
        network: network.name,
        namespace: input.namespace,
        pod: input.pod,
        ip: allocation.ip,
        prefixLength: allocation.prefixLength,
        gateway: allocation.gateway,
        mac: allocation.mac,
        node: input.node,
        block: allocation.block,
        tier,
        containerId: input.containerId,
        ifname,
        netns: input.netns ?? "",
        createdAt: now(),
      };
      ops.push({ type: "put", key, value: encode(record) });
      return { compares, ops };
    },
  );
  return record as EndpointRecord;
}

export interface DeleteEndpointInput {
  network: string;
  namespace: string;
  pod: string;
  /** When given, only this container's endpoint is deleted (a newer sandbox's is left alone). */
  containerId?: string;
}

/** Deletes the endpoint and releases its address. Idempotent: undefined when there was none. */
export async function deleteEndpoint(
  store: Store,
  input: DeleteEndpointInput,
): Promise<EndpointRecord | undefined> {
  const key = endpointKey(input.network, input.namespace, input.pod);
  return retrying(
    `deleting endpoint ${input.namespace}/${input.pod}`,
    async () => {
      const kv = await store.get(key);
      if (kv === undefined) return undefined;
      const parsed = parseEndpoint(kv);
      const ops: Op[] = [{ type: "delete", key }];
      if (parsed.ok) {
        if (input.containerId !== undefined && parsed.value.containerId !== input.containerId)
          return undefined;
        ops.push({
          type: "delete",
          key: addressKey(parsed.value.network, parsed.value.block, parsed.value.ip),
        });
      }
      const txn = await store.txn([{ key, modRevision: kv.modRevision }], ops);
      if (!txn.succeeded) return RETRY;
      return parsed.ok ? parsed.value : undefined;
    },
    { contended: `endpoint record ${input.namespace}/${input.pod} of network ${input.network}` },
  );
}

/**
 * The endpoint of a pod as the store holds it now: the record, undefined when there is none, or
 * "invalid" when the key holds a record that fails validation.
 */
export async function getEndpoint(
  store: Store,
  network: string,
  namespace: string,
  pod: string,
): Promise<EndpointRecord | "invalid" | undefined> {
  const kv = await store.get(endpointKey(network, namespace, pod));
  if (kv === undefined) return undefined;
  const parsed = parseEndpoint(kv);
  return parsed.ok ? parsed.value : "invalid";
}

export interface EndpointFilter {
  node?: string;
  namespace?: string;
}

export async function listEndpoints(
  store: Store,
  network: string,
  filter: EndpointFilter = {},
): Promise<Listing<EndpointRecord>> {
  // One namespace's endpoints sit under a prefix of their own: read only those.
  const prefix =
    filter.namespace === undefined
      ? endpointsPrefix(network)
      : namespaceEndpointsPrefix(network, filter.namespace);
  const listing = await listParsed(store, prefix, parseEndpoint);
  return {
    ...listing,
    entries: listing.entries.filter(
      (e) =>
        (filter.node === undefined || e.value.node === filter.node) &&
        (filter.namespace === undefined || e.value.namespace === filter.namespace),
    ),
  };
}

/** The endpoint a container holds, on any network (CNI DEL and CHECK know only the container). */
export async function findEndpointByContainer(
  store: Store,
  containerId: string,
  ifname: string = DEFAULT_IFNAME,
): Promise<EndpointRecord | undefined> {
  const listing = await listParsed(store, ENDPOINTS, parseEndpoint);
  return listing.entries.find((e) => e.value.containerId === containerId && e.value.ifname === ifname)?.value;
}

export interface EndpointView extends EndpointRecord {
  /** The VNI the endpoint's port is on; undefined while its namespace is unknown. */
  vni: number | undefined;
}

export function describeEndpoints(
  network: NetworkRecord,
  namespaces: readonly NamespaceRecord[],
  endpoints: readonly EndpointRecord[],
): EndpointView[] {
  const vnis = computeVnis(network, namespaces);
  return endpoints.map((e) => ({ ...e, vni: vnis.get(e.namespace) }));
}

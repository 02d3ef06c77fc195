/**
 * The records a node agent follows (networks, namespaces, endpoints, nodes, blocks), read from the
 * store page by page and parsed, so that no response and no copy holds the whole cluster at once.
 * Address records share the root but are not followed: they are neither listed nor parsed.
 */
import { listInPages, type KeyValue, type Store } from "../store/store.js";
import {
  ENDPOINTS,
  NAMESPACES,
  NETWORKS,
  NODES,
  blocksPrefix,
  lastSegment,
  recordKindOf,
  type RecordKind,
} from "./keys.js";
import {
  parseBlock,
  parseEndpoint,
  parseNamespace,
  parseNetwork,
  parseNode,
  type BlockRecord,
  type EndpointRecord,
  type NamespaceRecord,
  type NetworkRecord,
  type NodeRecord,
  type Parsed,
  type RecordProblem,
} from "./records.js";

export interface RecordOfKind {
  network: NetworkRecord;
  namespace: NamespaceRecord;
  endpoint: EndpointRecord;
  node: NodeRecord;
  block: BlockRecord;
}

export type FollowedRecord = { [K in RecordKind]: { kind: K; record: RecordOfKind[K] } }[RecordKind];

const PARSERS: { [K in RecordKind]: (kv: Pick<KeyValue, "key" | "value">) => Parsed<RecordOfKind[K]> } = {
  network: parseNetwork,
  namespace: parseNamespace,
  endpoint: parseEndpoint,
  node: parseNode,
  block: parseBlock,
};

/** A followed record, its problem when it fails validation, or undefined for keys not followed. */
export function parseFollowed(
  kv: Pick<KeyValue, "key" | "value">,
): FollowedRecord | { problem: RecordProblem } | undefined {
  const kind = recordKindOf(kv.key);
  if (kind === undefined) return undefined;
  const parsed = PARSERS[kind](kv);
  return parsed.ok ? ({ kind, record: parsed.value } as FollowedRecord) : { problem: parsed.problem };
}

/**
 * Every followed key-value, a page at a time: networks, namespaces, nodes, endpoints, then each
 * network's blocks, prefix by prefix, so that address records (as many as the endpoints, and
 * larger) are never read. Resolves to the revision of the first listing: the prefixes are listed
 * one after the other, so a watch from that revision replays, in order, every change made while
 * they were listed, and its events bring each key to its latest value.
 */
export async function scanFollowed(store: Store, onPage: (items: KeyValue[]) => void): Promise<number> {
  const networks: string[] = [];
  let first: number | undefined;
  const scan = async (prefix: string, each?: (kv: KeyValue) => void): Promise<void> => {
    const { revision } = await listInPages(store, prefix, (items) => {
      if (each) for (const kv of items) each(kv);
      onPage(items);
    });
    first ??= revision;
  };
  await scan(NETWORKS, (kv) => networks.push(lastSegment(kv.key)));
  for (const prefix of [NAMESPACES, NODES, ENDPOINTS]) await scan(prefix);
  for (const n of networks) await scan(blocksPrefix(n));
  return first as number;
}

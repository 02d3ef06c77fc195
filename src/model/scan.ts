/**
 * The records a node agent follows (networks, namespaces, endpoints, nodes, blocks), read from the
 * store page by page and parsed, so that no response and no copy holds the whole cluster at once.
 * Address records share the root but are not followed: they are skipped by key, unparsed.
 */
import { listInPages, type KeyValue, type Store } from "../store/store.js";
import { ROOT, recordKindOf, type RecordKind } from "./keys.js";
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

/** Every followed key-value under ROOT, a page at a time, at one revision; resolves to it. */
export async function scanFollowed(store: Store, onPage: (items: KeyValue[]) => void): Promise<number> {
  const { revision } = await listInPages(store, ROOT, (items) => onPage(items));
  return revision;
}

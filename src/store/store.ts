/**
 * The cluster store, as every other part of the control plane sees it: a revisioned key-value
 * store with compare-and-swap transactions, prefix watches and leases, in the shape of etcd's v3
 * API. Two implementations pass one shared test suite: SQLite (one machine, several processes
 * sharing a file) and etcd (a cluster).
 *
 * Revisions: one store-wide counter, incremented by every transaction that changes something.
 * Every key remembers the revision that created it and the one that last changed it.
 */

export interface KeyValue {
  key: string;
  value: string;
  /** Revision of the transaction that created the key (0 never occurs for a live key). */
  createRevision: number;
  /** Revision of the transaction that last wrote the key. */
  modRevision: number;
  /** Lease the key is attached to, if any; the key is deleted when the lease expires. */
  lease?: LeaseId;
}

export type LeaseId = string;

/** A condition of a transaction. `modRevision: 0` means "the key must not exist". */
export type Compare =
  | { key: string; modRevision: number }
  | { key: string; value: string }
  | { prefix: string; maxModRevision: number };

/**
 * Ops of one transaction branch. No two ops may touch the same key, and no put or delete may
 * fall inside a deletePrefix of the same branch: etcd refuses such a transaction, so every
 * implementation does (see conflictingOps).
 */
export type Op =
  | { type: "put"; key: string; value: string; lease?: LeaseId }
  | { type: "delete"; key: string }
  | { type: "deletePrefix"; prefix: string };

export interface TxnResult {
  /** True when every compare held and the success ops were applied. */
  succeeded: boolean;
  /** The store's revision after the transaction. */
  revision: number;
}

export interface WatchEvent {
  type: "put" | "delete";
  key: string;
  /** The new value for puts; undefined for deletes. */
  value?: string;
  modRevision: number;
}

export interface WatchHandlers {
  /** Events in revision order, grouped by transaction. */
  onEvents(events: WatchEvent[]): void;
  /**
   * The watch cannot continue from where it was (history compacted, or the connection was
   * lost for longer than the store keeps history): the watcher must re-list the prefix and
   * watch again from the list's revision. Never treat this as "everything was deleted".
   */
  onReset(reason: string): void;
  onError?(error: Error): void;
}

export interface Watch {
  close(): Promise<void>;
}

export interface Lease {
  readonly id: LeaseId;
  readonly ttlSeconds: number;
  /** Renews the lease; resolves false when the store says the lease no longer exists. */
  keepAlive(): Promise<boolean>;
  /** Deletes the lease and every key attached to it. */
  revoke(): Promise<void>;
}

/**
 * Keys per page of a listing, in both stores. etcd's gRPC client refuses a response over 4 MB
 * (4,194,304 bytes); the records here are JSON of up to ~1 KB under keys of ~100-250 bytes, so
 * 1,000 keys make ~1.3 MB, under a third of the limit (50,000 endpoints: 50 requests). Should a
 * page still be refused as too large (records bigger than expected), the etcd store asks for it
 * again with half as many keys, down to one.
 */
export const DEFAULT_PAGE_SIZE = 1000;

/**
 * Receives one page of a paged listing: keys in order, every page of one listing at the same
 * revision (given again with each page). The next page is read only after the returned promise
 * settles; a rejection ends the listing with that error.
 */
export type OnPage = (items: KeyValue[], revision: number) => void | Promise<void>;

export interface ListPagesResult {
  /** The one revision every page reflects. */
  revision: number;
  /** Keys delivered, over all pages. */
  count: number;
}

export interface Store {
  get(key: string): Promise<KeyValue | undefined>;
  /**
   * Every key under the prefix, sorted by key, and the revision the listing reflects. Read in
   * pages underneath (see listPages), so it works at any size, but it holds every key in memory:
   * callers that can work page by page should use listPages (or listInPages).
   */
  list(prefix: string): Promise<{ items: KeyValue[]; revision: number }>;
  /**
   * Every key under the prefix, sorted by key, delivered in pages of at most the store's page
   * size (never an empty page), all at one revision: a write made while the listing runs is not
   * in it. Nothing is read as one response of unbounded size (etcd's gRPC client refuses
   * messages over 4 MB), and only one page is held at a time.
   *
   * When the store can no longer serve the listing's revision (etcd compacted it between pages)
   * the call rejects with ListingCompactedError: the pages already delivered are consistent but
   * the rest cannot be had at that revision, so the caller lists again. Never a mix of revisions.
   *
   * Optional only so that wrappers and test doubles that forward list() still type-check; both
   * stores implement it. Call it through listInPages(store, ...), which falls back to one page
   * from list() for a Store without it.
   */
  listPages?(prefix: string, onPage: OnPage): Promise<ListPagesResult>;
  txn(compares: Compare[], success: Op[], failure?: Op[]): Promise<TxnResult>;
  /** Watches keys under the prefix, delivering every change after `fromRevision`. */
  watch(prefix: string, fromRevision: number, handlers: WatchHandlers): Promise<Watch>;
  grantLease(ttlSeconds: number): Promise<Lease>;
  close(): Promise<void>;
}

/** Every store failure that is about reaching the store (not about the request) has this code. */
export class StoreUnavailableError extends Error {
  readonly code = "STORE_UNAVAILABLE";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "StoreUnavailableError";
  }
}

/**
 * The store refused this client: etcd's user/password was wrong, or the user may not do what was
 * asked. Not an outage: retrying will not help until the credentials change.
 */
export class StoreAccessError extends Error {
  readonly code = "STORE_ACCESS_DENIED";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "StoreAccessError";
  }
}

/**
 * A paged listing could not be finished at its revision: the store dropped that revision's
 * history between two pages (etcd compaction). Not an outage: list again.
 */
export class ListingCompactedError extends Error {
  readonly code = "LISTING_COMPACTED";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "ListingCompactedError";
  }
}

/** store.listPages when the store has it, else one page from store.list (wrappers, test doubles). */
export async function listInPages(store: Store, prefix: string, onPage: OnPage): Promise<ListPagesResult> {
  if (store.listPages !== undefined) return store.listPages(prefix, onPage);
  const { items, revision } = await store.list(prefix);
  if (items.length > 0) await onPage(items, revision);
  return { revision, count: items.length };
}

/** Why a transaction branch is refused (two ops on one key, or an op inside a deleted range). */
export function conflictingOps(ops: readonly Op[]): string | undefined {
  const keys = new Set<string>();
  const prefixes: string[] = [];
  for (const op of ops) {
    if (op.type === "deletePrefix") prefixes.push(op.prefix);
    else if (keys.has(op.key)) return `duplicate key ${op.key} in one transaction`;
    else keys.add(op.key);
  }
  for (const prefix of prefixes) {
    for (const key of keys) {
      if (key.startsWith(prefix)) return `key ${key} is inside deleted range ${prefix} in one transaction`;
    }
  }
  return undefined;
}

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

export interface Store {
  get(key: string): Promise<KeyValue | undefined>;
  /** Every key under the prefix, sorted by key, and the revision the listing reflects. */
  list(prefix: string): Promise<{ items: KeyValue[]; revision: number }>;
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

/**
 * The agent's picture of the cluster: the records under the overlay's root that it follows, kept
 * equal to the store by one listing and one watch from the listing's revision, in a
 * ClusterRecords index. Each batch of watch events is handed on as the records it changed; a
 * listing (at start, and after a watch reset: history compacted, connection lost too long) as a
 * resync. A reset never reads as "everything was deleted". Records that fail validation are
 * reported with their key and left out.
 *
 * Never deaf in silence: a listing or watch that fails is reported (onTrouble, which the agent
 * logs, counts and shows in its readiness) and retried with a growing, jittered delay until it
 * succeeds; `healthy` says whether the view is following the store now.
 */
import type { Store, Watch, WatchEvent } from "../store/store.js";
import type { RecordProblem } from "../model/records.js";
import { ROOT } from "../model/keys.js";
import { parseFollowed, scanFollowed } from "../model/scan.js";
import { ClusterRecords, type ClusterSnapshot, type RecordChange } from "./cluster.js";

export type { ClusterSnapshot } from "./cluster.js";

export interface ViewHandlers {
  /** Records changed (one batch of watch events); the agent applies them in proportion. */
  onChange(changes: readonly RecordChange[]): void;
  /** The whole picture was read again (start, or after a reset): reconcile everything. */
  onResync?(): void;
  onProblem(problem: RecordProblem): void;
  onReset?(reason: string): void;
  /** A listing or watch failed; it is retried in `retryInMs`. */
  onTrouble?(what: string, err: unknown, retryInMs: number): void;
}

/** Delays between attempts to list again: 0.5 s doubling to 30 s, each with up to 50% jitter. */
const RETRY_FIRST_MS = 500;
const RETRY_MAX_MS = 30_000;
const WATCH_PROBE_MAX_MS = 4_000;
/** After a watch reset, the listing starts within this long, at random. */
const RESET_SPREAD_MS = 2_000;

export class ClusterView {
  /** The records as last listed and watched (replaced whole by each listing). */
  records: ClusterRecords;
  private watch: Watch | undefined;
  private revision = 0;
  private closed = false;
  private relisting: Promise<void> | undefined;
  private failures = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  /** Following the store: listed, and the watch is open. */
  healthy = false;
  /** Failed listings and watches since start. */
  troubles = 0;

  /** @param self this node, whose endpoints the view keeps whole (the others' compact). */
  constructor(
    private readonly store: Store,
    private readonly handlers: ViewHandlers,
    private readonly self?: string,
  ) {
    this.records = new ClusterRecords(self);
  }

  /** Lists everything and starts watching; resolves once the first listing is in. */
  async start(): Promise<void> {
    await this.relist();
  }

  snapshot(): ClusterSnapshot {
    return this.records.snapshot(this.revision);
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retryTimer);
    await this.watch?.close();
    this.watch = undefined;
  }

  /** Applies one stored value; the change, or undefined for keys of kinds the agent ignores. */
  private put(into: ClusterRecords, key: string, value: string): RecordChange | undefined {
    const parsed = parseFollowed({ key, value });
    if (parsed === undefined) return undefined;
    if ("record" in parsed) return into.put(parsed.kind, key, parsed.record);
    this.handlers.onProblem(parsed.problem);
    return into.delete(key);
  }

  private apply(events: WatchEvent[]): void {
    const changes: RecordChange[] = [];
    for (const e of events) {
      const c =
        e.type === "put" && e.value !== undefined
          ? this.put(this.records, e.key, e.value)
          : this.records.delete(e.key);
      if (c !== undefined) changes.push(c);
      this.revision = Math.max(this.revision, e.modRevision);
    }
    // Events flow again: the watch has resumed.
    if (!this.healthy && this.watch !== undefined && this.relisting === undefined) {
      this.healthy = true;
      this.failures = 0;
    }
    if (changes.length > 0) this.handlers.onChange(changes);
  }

  private relist(): Promise<void> {
    this.relisting ??= (async () => {
      try {
        this.healthy = false;
        await this.watch?.close().catch(() => undefined);
        this.watch = undefined;
        // Page by page into a fresh index, swapped in once the listing is whole: a listing that
        // fails half way leaves the picture the agent had.
        const fresh = new ClusterRecords(this.self);
        const revision = await scanFollowed(this.store, (items) => {
          for (const kv of items) this.put(fresh, kv.key, kv.value);
        });
        this.records = fresh;
        this.revision = revision;
        if (this.closed) return;
        this.watch = await this.store.watch(ROOT, revision, {
          onEvents: (events) => this.apply(events),
          onReset: (reason) => {
            this.handlers.onReset?.(reason);
            // A compaction resets every agent's watch at once: spread their listings out.
            this.healthy = false;
            clearTimeout(this.retryTimer);
            this.retryTimer = setTimeout(() => this.scheduleRelist(), Math.random() * RESET_SPREAD_MS);
            this.retryTimer.unref();
          },
          // The store's watch resumes by itself from its last revision; say so, and look again.
          onError: (err) => this.trouble("watch", err),
        });
        this.healthy = true;
        this.failures = 0;
        this.handlers.onResync?.();
      } finally {
        this.relisting = undefined;
      }
    })();
    return this.relisting;
  }

  /**
   * A listing failed (list again later), or the watch broke (the store resumes it by itself;
   * health returns once the store answers again). Either way: reported, and retried later with a
   * growing, jittered delay.
   */
  private trouble(what: "list" | "watch", err: unknown): void {
    if (this.closed) return;
    this.healthy = false;
    this.troubles++;
    // A broken watch only needs a look at whether the store answers again (a cheap read), so it
    // looks more often than a listing is retried.
    const max = what === "watch" ? WATCH_PROBE_MAX_MS : RETRY_MAX_MS;
    const base = Math.min(max, RETRY_FIRST_MS * 2 ** Math.min(this.failures, 16));
    this.failures++;
    const delay = Math.round(base * (0.5 + Math.random() / 2));
    this.handlers.onTrouble?.(what, err, delay);
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      if (what === "list" || this.watch === undefined) {
        this.scheduleRelist();
        return;
      }
      this.store.get(ROOT).then(
        () => {
          if (this.watch === undefined || this.closed) return;
          this.healthy = true;
          this.failures = 0;
        },
        (e: unknown) => this.trouble("watch", e),
      );
    }, delay);
    this.retryTimer.unref();
  }

  /** Lists again (after a reset or a failure), retrying with backoff while it fails. */
  private scheduleRelist(): void {
    if (this.closed || this.relisting) return;
    this.relist().catch((err: unknown) => this.trouble("list", err));
  }
}

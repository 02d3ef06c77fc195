/**
 * The embedded store: one SQLite file that several processes on one machine share.
 *
 * Every write runs in `BEGIN IMMEDIATE` (one writer at a time, others wait up to busy_timeout),
 * bumps one store-wide revision and appends its changes to a log table. SQLite has no
 * cross-process notification, so watches poll the log. Old log rows are compacted; a watch that
 * asks for a compacted revision is reset. Leases are rows with an expiry time; whichever open
 * store notices an expired lease deletes it and its keys as an ordinary revisioned change.
 * A paged listing reads through a read-only connection of its own, in one read transaction: WAL
 * gives it one snapshot however long the caller takes between pages, while this connection goes
 * on writing.
 *
 * One file, past 400 lines, on purpose: it is one implementation of the Store interface, and its
 * transactions, change log, watch polling and lease sweep all keep one invariant together (every
 * change bumps the one revision and lands in the log in the same SQLite transaction).
 */
import { chmodSync, closeSync, existsSync, mkdirSync, openSync } from "node:fs";
import { dirname, resolve } from "node:path";
import Database from "better-sqlite3";
import { prefixEndString } from "./keys.js";
import {
  DEFAULT_PAGE_SIZE,
  StoreUnavailableError,
  conflictingOps,
  type Compare,
  type KeyValue,
  type Lease,
  type LeaseId,
  type ListPagesResult,
  type OnPage,
  type Op,
  type Store,
  type TxnResult,
  type Watch,
  type WatchEvent,
  type WatchHandlers,
} from "./store.js";

export interface SqliteStoreOptions {
  /** How long a writer waits for another process's transaction (ms). Default 5000. */
  busyTimeoutMs?: number;
  /** How often watches poll the change log (ms). Default 50. */
  pollIntervalMs?: number;
  /** How often expired leases are looked for and the log compacted (ms). Default 250. */
  sweepIntervalMs?: number;
  /** Revisions of history kept for watches. Default 10000. */
  historyRevisions?: number;
  /** Keys per page of listPages. Default DEFAULT_PAGE_SIZE. */
  pageSize?: number;
}

const SCHEMA_VERSION = 1;

const LIST_ALL = "SELECT key, value, create_rev, mod_rev, lease FROM kv WHERE key >= ? ORDER BY key";
const LIST_RANGE =
  "SELECT key, value, create_rev, mod_rev, lease FROM kv WHERE key >= ? AND key < ? ORDER BY key";

interface KvRow {
  key: string;
  value: string;
  create_rev: number;
  mod_rev: number;
  lease: string | null;
}

interface LogRow {
  rev: number;
  type: "put" | "delete";
  key: string;
  value: string | null;
}

interface LeaseRow {
  id: string;
  ttl: number;
  expires_at: number;
}

type Stmt<P extends unknown[], R = unknown> = Database.Statement<P, R>;

class Statements {
  readonly getMeta: Stmt<[string], { value: number }>;
  readonly setMeta: Stmt<[number, string]>;
  readonly getKv: Stmt<[string], KvRow>;
  readonly upsertKv: Stmt<[string, string, number, number, string | null]>;
  readonly deleteKv: Stmt<[string]>;
  readonly listAll: Stmt<[string], KvRow>;
  readonly listRange: Stmt<[string, string], KvRow>;
  readonly maxModAll: Stmt<[string], { m: number | null }>;
  readonly maxModRange: Stmt<[string, string], { m: number | null }>;
  readonly keysByLease: Stmt<[string], { key: string }>;
  readonly appendLog: Stmt<[number, number, string, string, string | null]>;
  readonly logAll: Stmt<[number, number, string], LogRow>;
  readonly logRange: Stmt<[number, number, string, string], LogRow>;
  readonly compactLog: Stmt<[number]>;
  readonly getLease: Stmt<[string], LeaseRow>;
  readonly insertLease: Stmt<[string, number, number]>;
  readonly renewLease: Stmt<[number, string, number]>;
  readonly deleteLease: Stmt<[string]>;
  readonly expiredLeases: Stmt<[number], { id: string }>;

  constructor(db: Database.Database) {
    this.getMeta = db.prepare("SELECT value FROM meta WHERE name = ?");
    this.setMeta = db.prepare("UPDATE meta SET value = ? WHERE name = ?");
    this.getKv = db.prepare("SELECT key, value, create_rev, mod_rev, lease FROM kv WHERE key = ?");
    this.upsertKv = db.prepare(
      "INSERT INTO kv (key, value, create_rev, mod_rev, lease) VALUES (?, ?, ?, ?, ?) " +
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value, mod_rev = excluded.mod_rev, lease = excluded.lease",
    );
    this.deleteKv = db.prepare("DELETE FROM kv WHERE key = ?");
    this.listAll = db.prepare(LIST_ALL);
    this.listRange = db.prepare(LIST_RANGE);
    this.maxModAll = db.prepare("SELECT max(mod_rev) AS m FROM kv WHERE key >= ?");
    this.maxModRange = db.prepare("SELECT max(mod_rev) AS m FROM kv WHERE key >= ? AND key < ?");
    this.keysByLease = db.prepare("SELECT key FROM kv WHERE lease = ? ORDER BY key");
    this.appendLog = db.prepare("INSERT INTO log (rev, seq, type, key, value) VALUES (?, ?, ?, ?, ?)");
    this.logAll = db.prepare(
      "SELECT rev, type, key, value FROM log WHERE rev > ? AND rev <= ? AND key >= ? ORDER BY rev, seq",
    );
    this.logRange = db.prepare(
      "SELECT rev, type, key, value FROM log WHERE rev > ? AND rev <= ? AND key >= ? AND key < ? ORDER BY rev, seq",
    );
    this.compactLog = db.prepare("DELETE FROM log WHERE rev <= ?");
    this.getLease = db.prepare("SELECT id, ttl, expires_at FROM leases WHERE id = ?");
    this.insertLease = db.prepare("INSERT INTO leases (id, ttl, expires_at) VALUES (?, ?, ?)");
    this.renewLease = db.prepare("UPDATE leases SET expires_at = ? WHERE id = ? AND expires_at > ?");
    this.deleteLease = db.prepare("DELETE FROM leases WHERE id = ?");
    this.expiredLeases = db.prepare("SELECT id FROM leases WHERE expires_at <= ? ORDER BY expires_at, id");
  }
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
INSERT OR IGNORE INTO meta (name, value) VALUES
  ('schema', ${SCHEMA_VERSION}), ('revision', 1), ('compacted', 0), ('lease_seq', 0);
CREATE TABLE IF NOT EXISTS kv (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL,
  create_rev INTEGER NOT NULL,
  mod_rev INTEGER NOT NULL,
  lease TEXT
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS kv_lease ON kv (lease) WHERE lease IS NOT NULL;
CREATE TABLE IF NOT EXISTS log (
  rev INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  type TEXT NOT NULL,
  key TEXT NOT NULL,
  value TEXT,
  PRIMARY KEY (rev, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS leases (
  id TEXT PRIMARY KEY,
  ttl INTEGER NOT NULL,
  expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS leases_expiry ON leases (expires_at);
`;

/** SQLite result codes that mean "the store cannot be reached or used right now". */
const UNAVAILABLE_CODES = /^SQLITE_(BUSY|LOCKED|CANTOPEN|IOERR|READONLY|FULL|NOTADB|CORRUPT|PERM|AUTH)/;

function mapError(err: unknown, what: string): unknown {
  if (err instanceof StoreUnavailableError) return err;
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    if (typeof code === "string" && UNAVAILABLE_CODES.test(code)) {
      return new StoreUnavailableError(`sqlite store: ${what}: ${err.message}`, { cause: err });
    }
  }
  return err;
}

function toKeyValue(row: KvRow): KeyValue {
  const kv: KeyValue = {
    key: row.key,
    value: row.value,
    createRevision: row.create_rev,
    modRevision: row.mod_rev,
  };
  if (row.lease !== null) kv.lease = row.lease;
  return kv;
}

interface SqliteWatch {
  prefix: string;
  end: string | undefined;
  /** Every change up to and including this revision has been delivered. */
  delivered: number;
  handlers: WatchHandlers;
  closed: boolean;
}

export class SqliteStore implements Store {
  readonly path: string;
  private readonly memory: boolean;
  private readonly busyTimeoutMs: number;
  private readonly pageSize: number;
  private readonly db: Database.Database;
  private readonly stmts: Statements;
  private readonly pollIntervalMs: number;
  private readonly historyRevisions: number;
  private readonly watches = new Set<SqliteWatch>();
  private pollTimer: NodeJS.Timeout | undefined;
  private pollSoon: NodeJS.Immediate | undefined;
  private readonly sweepTimer: NodeJS.Timeout;
  private closed = false;

  constructor(path: string, options: SqliteStoreOptions = {}) {
    this.path = path;
    this.pollIntervalMs = options.pollIntervalMs ?? 50;
    this.historyRevisions = options.historyRevisions ?? 10_000;
    this.busyTimeoutMs = options.busyTimeoutMs ?? 5000;
    this.pageSize = options.pageSize ?? DEFAULT_PAGE_SIZE;
    if (!Number.isInteger(this.pageSize) || this.pageSize < 1) {
      throw new Error(`sqlite store: page size must be a whole number >= 1, got ${this.pageSize}`);
    }
    const memory = path === ":memory:";
    this.memory = memory;
    try {
      if (!memory) prepareFile(path);
      this.db = new Database(memory ? ":memory:" : path);
    } catch (err) {
      throw mapError(err, `cannot open ${path}`);
    }
    try {
      this.db.pragma(`busy_timeout = ${this.busyTimeoutMs}`);
      if (!memory) this.db.pragma("journal_mode = WAL");
      // WAL with synchronous=NORMAL is durable against process crashes; a power loss may lose
      // the last transactions but never corrupts the file.
      this.db.pragma("synchronous = NORMAL");
      this.db.transaction(() => this.db.exec(SCHEMA)).immediate();
      this.stmts = new Statements(this.db);
      const schema = this.meta("schema");
      if (schema !== SCHEMA_VERSION) {
        throw new Error(`sqlite store ${path}: schema version ${schema}, expected ${SCHEMA_VERSION}`);
      }
    } catch (err) {
      this.db.close();
      throw mapError(err, `cannot open ${path}`);
    }
    this.sweepTimer = setInterval(() => this.sweep(), options.sweepIntervalMs ?? 250);
    this.sweepTimer.unref();
  }

  async get(key: string): Promise<KeyValue | undefined> {
    return this.run("get", () => {
      const row = this.stmts.getKv.get(key);
      return row === undefined ? undefined : toKeyValue(row);
    });
  }

  async list(prefix: string): Promise<{ items: KeyValue[]; revision: number }> {
    return this.run("list", () =>
      this.db
        .transaction(() => {
          const end = prefixEndString(prefix);
          const rows =
            end === undefined ? this.stmts.listAll.all(prefix) : this.stmts.listRange.all(prefix, end);
          return { items: rows.map(toKeyValue), revision: this.meta("revision") };
        })
        .deferred(),
    );
  }

  /**
   * A file store reads through a read-only connection of its own, one read transaction (one
   * snapshot) iterated with a cursor, a page at a time. An in-memory store cannot be opened
   * twice: it takes its snapshot in one read and hands it out in pages (its data is all in this
   * process's memory anyway).
   */
  async listPages(prefix: string, onPage: OnPage): Promise<ListPagesResult> {
    if (this.memory) {
      const { items, revision } = await this.list(prefix);
      for (let i = 0; i < items.length; i += this.pageSize) {
        await onPage(items.slice(i, i + this.pageSize), revision);
      }
      return { revision, count: items.length };
    }
    this.assertOpen();
    let reader: Database.Database;
    try {
      reader = new Database(this.path, { readonly: true, fileMustExist: true });
    } catch (err) {
      throw mapError(err, "list");
    }
    try {
      reader.pragma(`busy_timeout = ${this.busyTimeoutMs}`);
      // The first read fixes the transaction's snapshot; every row below comes from it.
      reader.exec("BEGIN");
      const row = reader
        .prepare<[string], { value: number }>("SELECT value FROM meta WHERE name = ?")
        .get("revision");
      if (row === undefined) throw new Error(`sqlite store ${this.path}: meta row revision is missing`);
      const revision = row.value;
      const end = prefixEndString(prefix);
      const rows =
        end === undefined
          ? reader.prepare<[string], KvRow>(LIST_ALL).iterate(prefix)
          : reader.prepare<[string, string], KvRow>(LIST_RANGE).iterate(prefix, end);
      let page: KeyValue[] = [];
      let count = 0;
      for (const kv of rows) {
        page.push(toKeyValue(kv));
        if (page.length === this.pageSize) {
          count += page.length;
          await onPage(page, revision);
          page = [];
          this.assertOpen();
        }
      }
      if (page.length > 0) {
        count += page.length;
        await onPage(page, revision);
      }
      return { revision, count };
    } catch (err) {
      throw mapError(err, "list");
    } finally {
      reader.close();
    }
  }

  async txn(compares: Compare[], success: Op[], failure: Op[] = []): Promise<TxnResult> {
    const conflict = conflictingOps(success) ?? conflictingOps(failure);
    if (conflict !== undefined) throw new Error(`invalid transaction: ${conflict}`);
    const result = this.run("txn", () =>
      this.db
        .transaction(() => {
          this.expireLeases(Date.now());
          const succeeded = compares.every((c) => this.holds(c));
          const revision = this.apply(succeeded ? success : failure);
          return { succeeded, revision };
        })
        .immediate(),
    );
    this.schedulePoll();
    return result;
  }

  async watch(prefix: string, fromRevision: number, handlers: WatchHandlers): Promise<Watch> {
    this.assertOpen();
    const w: SqliteWatch = {
      prefix,
      end: prefixEndString(prefix),
      delivered: fromRevision,
      handlers,
      closed: false,
    };
    this.watches.add(w);
    if (this.pollTimer === undefined) {
      this.pollTimer = setInterval(() => this.poll(), this.pollIntervalMs);
      this.pollTimer.unref();
    }
    this.schedulePoll();
    return {
      close: async () => {
        this.dropWatch(w);
      },
    };
  }

  async grantLease(ttlSeconds: number): Promise<Lease> {
    if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1) {
      throw new Error(`lease TTL must be a whole number of seconds >= 1, got ${ttlSeconds}`);
    }
    const id = this.run("grantLease", () =>
      this.db
        .transaction(() => {
          const seq = this.meta("lease_seq") + 1;
          this.stmts.setMeta.run(seq, "lease_seq");
          const leaseId = String(seq);
          this.stmts.insertLease.run(leaseId, ttlSeconds, Date.now() + ttlSeconds * 1000);
          return leaseId;
        })
        .immediate(),
    );
    return {
      id,
      ttlSeconds,
      keepAlive: async () => this.keepAlive(id),
      revoke: async () => this.revoke(id),
    };
  }

  /** Drops change history up to and including `revision`; watches from before it are reset. */
  async compact(revision: number): Promise<void> {
    this.run("compact", () => this.db.transaction(() => this.compactTo(revision)).immediate());
    this.schedulePoll();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.sweepTimer);
    if (this.pollTimer !== undefined) clearInterval(this.pollTimer);
    if (this.pollSoon !== undefined) clearImmediate(this.pollSoon);
    this.pollTimer = undefined;
    this.pollSoon = undefined;
    for (const w of this.watches) w.closed = true;
    this.watches.clear();
    this.db.close();
  }

  private keepAlive(id: LeaseId): boolean {
    const renewed = this.run("keepAlive", () =>
      this.db
        .transaction(() => {
          const now = Date.now();
          const lease = this.stmts.getLease.get(id);
          if (lease === undefined) return false;
          return this.stmts.renewLease.run(now + lease.ttl * 1000, id, now).changes > 0;
        })
        .immediate(),
    );
    return renewed;
  }

  private revoke(id: LeaseId): void {
    this.run("revoke", () => this.db.transaction(() => this.removeLease(id)).immediate());
    this.schedulePoll();
  }

  private run<T>(what: string, fn: () => T): T {
    this.assertOpen();
    try {
      return fn();
    } catch (err) {
      throw mapError(err, what);
    }
  }

  private assertOpen(): void {
    if (this.closed) throw new Error(`sqlite store ${this.path} is closed`);
  }

  private meta(name: string): number {
    const row = this.stmts.getMeta.get(name);
    if (row === undefined) throw new Error(`sqlite store ${this.path}: meta row ${name} is missing`);
    return row.value;
  }

  private holds(c: Compare): boolean {
    if ("prefix" in c) {
      const end = prefixEndString(c.prefix);
      const row =
        end === undefined ? this.stmts.maxModAll.get(c.prefix) : this.stmts.maxModRange.get(c.prefix, end);
      return (row?.m ?? 0) <= c.maxModRevision;
    }
    const row = this.stmts.getKv.get(c.key);
    if ("modRevision" in c) return (row?.mod_rev ?? 0) === c.modRevision;
    return row !== undefined && row.value === c.value;
  }

  /** Applies ops at the next revision; returns the store's revision afterwards. */
  private apply(ops: Op[]): number {
    const current = this.meta("revision");
    const rev = current + 1;
    let seq = 0;
    const now = Date.now();
    for (const op of ops) {
      if (op.type === "put") {
        if (op.lease !== undefined) {
          const lease = this.stmts.getLease.get(op.lease);
          if (lease === undefined || lease.expires_at <= now) throw new Error(`lease ${op.lease} not found`);
        }
        const existing = this.stmts.getKv.get(op.key);
        this.stmts.upsertKv.run(op.key, op.value, existing?.create_rev ?? rev, rev, op.lease ?? null);
        this.stmts.appendLog.run(rev, seq++, "put", op.key, op.value);
      } else {
        const keys =
          op.type === "delete"
            ? this.stmts.getKv.get(op.key) === undefined
              ? []
              : [op.key]
            : this.keysUnder(op.prefix);
        for (const key of keys) {
          this.stmts.deleteKv.run(key);
          this.stmts.appendLog.run(rev, seq++, "delete", key, null);
        }
      }
    }
    if (seq === 0) return current;
    this.stmts.setMeta.run(rev, "revision");
    return rev;
  }

  private keysUnder(prefix: string): string[] {
    const end = prefixEndString(prefix);
    const rows = end === undefined ? this.stmts.listAll.all(prefix) : this.stmts.listRange.all(prefix, end);
    return rows.map((r) => r.key);
  }

  /** Deletes a lease and its keys (one revision). Must run inside a write transaction. */
  private removeLease(id: LeaseId): void {
    const keys = this.stmts.keysByLease.all(id).map((r) => r.key);
    this.stmts.deleteLease.run(id);
    if (keys.length > 0) this.apply(keys.map((key) => ({ type: "delete", key })));
  }

  /** Must run inside a write transaction. */
  private expireLeases(now: number): number {
    const expired = this.stmts.expiredLeases.all(now);
    for (const { id } of expired) this.removeLease(id);
    return expired.length;
  }

  /** Must run inside a write transaction. */
  private compactTo(revision: number): void {
    const target = Math.min(revision, this.meta("revision"));
    if (target <= this.meta("compacted")) return;
    this.stmts.compactLog.run(target);
    this.stmts.setMeta.run(target, "compacted");
  }

  private sweep(): void {
    if (this.closed) return;
    try {
      const now = Date.now();
      const anyExpired = this.stmts.expiredLeases.get(now) !== undefined;
      const revision = this.meta("revision");
      // Compact in batches rather than on every revision.
      const compactTarget = revision - this.historyRevisions;
      const needCompact = compactTarget - this.meta("compacted") >= Math.max(1, this.historyRevisions / 10);
      if (!anyExpired && !needCompact) return;
      this.db
        .transaction(() => {
          this.expireLeases(Date.now());
          if (needCompact) this.compactTo(compactTarget);
        })
        .immediate();
      this.schedulePoll();
    } catch (err) {
      // A busy or briefly unavailable file: the next sweep tries again.
      for (const w of this.watches) w.handlers.onError?.(mapError(err, "sweep") as Error);
    }
  }

  private schedulePoll(): void {
    if (this.closed || this.watches.size === 0 || this.pollSoon !== undefined) return;
    this.pollSoon = setImmediate(() => {
      this.pollSoon = undefined;
      this.poll();
    });
  }

  private poll(): void {
    if (this.closed || this.watches.size === 0) return;
    let batches: Array<{ w: SqliteWatch; reset?: string; events?: WatchEvent[][] }>;
    try {
      batches = this.db
        .transaction(() => {
          const revision = this.meta("revision");
          const compacted = this.meta("compacted");
          const out: Array<{ w: SqliteWatch; reset?: string; events?: WatchEvent[][] }> = [];
          for (const w of this.watches) {
            if (w.delivered >= revision) continue;
            if (w.delivered < compacted) {
              out.push({
                w,
                reset: `revision ${w.delivered} is compacted (history starts after revision ${compacted})`,
              });
              continue;
            }
            const rows =
              w.end === undefined
                ? this.stmts.logAll.all(w.delivered, revision, w.prefix)
                : this.stmts.logRange.all(w.delivered, revision, w.prefix, w.end);
            out.push({ w, events: groupByRevision(rows) });
            w.delivered = revision;
          }
          return out;
        })
        .deferred();
    } catch (err) {
      for (const w of this.watches) w.handlers.onError?.(mapError(err, "watch") as Error);
      return;
    }
    for (const { w, reset, events } of batches) {
      if (w.closed) continue;
      if (reset !== undefined) {
        this.dropWatch(w);
        deliver(w, () => w.handlers.onReset(reset));
        continue;
      }
      for (const group of events ?? []) {
        if (w.closed) break;
        deliver(w, () => w.handlers.onEvents(group));
      }
    }
  }

  private dropWatch(w: SqliteWatch): void {
    w.closed = true;
    this.watches.delete(w);
    if (this.watches.size === 0 && this.pollTimer !== undefined) {
      clearInterval(this.pollTimer);
      this.pollTimer = undefined;
    }
  }
}

function deliver(w: SqliteWatch, fn: () => void): void {
  try {
    fn();
  } catch (err) {
    // A failing handler must not stop delivery to other watches.
    const error = err instanceof Error ? err : new Error(String(err));
    if (w.handlers.onError !== undefined) w.handlers.onError(error);
  }
}

function groupByRevision(rows: LogRow[]): WatchEvent[][] {
  const groups: WatchEvent[][] = [];
  let current: WatchEvent[] = [];
  let rev = -1;
  for (const row of rows) {
    if (row.rev !== rev && current.length > 0) {
      groups.push(current);
      current = [];
    }
    rev = row.rev;
    const ev: WatchEvent = { type: row.type, key: row.key, modRevision: row.rev };
    if (row.type === "put" && row.value !== null) ev.value = row.value;
    current.push(ev);
  }
  if (current.length > 0) groups.push(current);
  return groups;
}

/** Creates the file's folder (0700) and the file itself (0600) when they do not exist yet. */
function prepareFile(path: string): void {
  const dir = dirname(resolve(path));
  if (!existsSync(dir)) mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (!existsSync(path)) {
    // SQLite gives its -wal and -shm files the database file's permissions.
    closeSync(openSync(path, "a", 0o600));
    chmodSync(path, 0o600);
  }
}

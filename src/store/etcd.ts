/**
 * The cluster store on etcd's v3 API (through the `etcd3` client's raw RPC clients, so that
 * compares, watches and leases map one to one onto etcd's own).
 *
 * Every request is bounded by a timeout; failures to reach etcd become StoreUnavailableError.
 * A watch whose stream breaks reconnects and resumes after the last revision it delivered;
 * only when etcd no longer has that history (compaction) or cancels the watch is it reset.
 *
 * No response may near gRPC's 4 MB receive limit, whatever the cluster's size: listings are read
 * in pages of `pageSize` keys, all at the first page's revision, and watches ask etcd to split
 * large responses (`fragment`) and put them back together. Leases are renewed over one long-lived
 * LeaseKeepAlive stream per store. Streams of ours are ended before they are cancelled (see
 * closeStream): etcd3 takes an error on a still-writable stream for a failed host and closes
 * every gRPC client to it, which dropped the other streams (watches) at the next keepalive ping.
 *
 * One file, past 400 lines, on purpose: it is one implementation of the Store interface, and its
 * requests, watch streams and leases share one client, one timeout policy and one mapping of
 * gRPC failures onto StoreUnavailableError; each part read alone would hide the others' rules.
 */
import {
  ClientClosedError,
  CompareResult,
  CompareTarget,
  EtcdAuthenticationFailedError,
  EtcdLeaseInvalidError,
  EtcdPermissionDeniedError,
  EtcdUserNotFoundError,
  EtcdWatchStreamEnded,
  Etcd3,
  GRPCCancelledError,
  GRPCDeadlineExceededError,
  GRPCResourceExhastedError,
  GRPCUnavailableError,
  isRecoverableError,
  type ICompare,
  type IDuplexStream,
  type IEvent,
  type IKeyValue,
  type IOptions,
  type IRangeResponse,
  type IRequestOp,
  type IWatchRequest,
  type IWatchResponse,
  type ILeaseKeepAliveRequest,
  type ILeaseKeepAliveResponse,
} from "etcd3";
import { prefixRangeBytes } from "./keys.js";
import {
  DEFAULT_PAGE_SIZE,
  ListingCompactedError,
  StoreAccessError,
  StoreUnavailableError,
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

/** TLS to etcd (https): PEM contents, not paths. */
export interface EtcdTls {
  /** CA that signed etcd's server certificate; absent: the system's roots. */
  ca?: Buffer;
  /** This client's certificate (chain) and key, for an etcd started with --client-cert-auth. */
  cert?: Buffer;
  key?: Buffer;
  /** Where the client certificate came from ("--etcd-cert=/path", "OVERLAY_ETCD_CERT=/path"), for errors. */
  certSource?: string;
  /** Where the CA came from, for errors. */
  caSource?: string;
}

/** TLS alerts etcd sends when it refuses the client's certificate (or its absence). */
const CLIENT_CERT_REFUSED =
  /alert (bad certificate|certificate required|unknown ca|certificate expired|certificate revoked|certificate unknown|unsupported certificate)|SSL alert number (42|43|44|45|46|48|116)/i;
/** This client does not trust etcd's server certificate. */
const SERVER_CERT_UNTRUSTED =
  /unable to verify|self[- ]signed certificate|certificate has expired|certificate is not yet valid|does not match certificate's altnames|ERR_TLS_CERT_ALTNAME|unable to get (local )?issuer/i;
/** An https client meeting a plain-text listener. */
const NOT_TLS = /wrong version number|packet length too long|http request|unknown protocol/i;

/**
 * Why a TLS connection to etcd failed, in words a person can act on, or undefined when the
 * failure is not about TLS. The server's alert does not say which check failed (etcd logs that);
 * the client's own certificate has been checked for dates and key before (etcdTlsSettings).
 */
export function tlsFailureReason(message: string, tls: EtcdTls | undefined): string | undefined {
  if (tls === undefined) return undefined;
  const alert = /alert ([a-z ]+?)(:|$)/i.exec(message)?.[1] ?? "handshake failure";
  if (CLIENT_CERT_REFUSED.test(message)) {
    if (tls.cert === undefined) {
      return (
        `etcd refused the TLS connection (alert: ${alert}): it requires a client certificate ` +
        `(--client-cert-auth) and none is configured (--etcd-cert and --etcd-key, or OVERLAY_ETCD_CERT and OVERLAY_ETCD_KEY)`
      );
    }
    return (
      `etcd refused this client's certificate${tls.certSource === undefined ? "" : ` ${tls.certSource}`} ` +
      `(alert: ${alert}): it must be signed by a CA in etcd's --trusted-ca-file, be within its validity ` +
      `dates and allow client authentication; etcd's log says which`
    );
  }
  if (SERVER_CERT_UNTRUSTED.test(message)) {
    const detail = /Last error: (?:Error: )?([^.\n]+)/.exec(message)?.[1] ?? "verification failed";
    return (
      `this client does not trust etcd's server certificate (${detail}): it must be signed by the CA ` +
      `in ${tls.caSource ?? "--etcd-ca or OVERLAY_ETCD_CA (neither given: the system's roots)"} and name the address dialled`
    );
  }
  if (NOT_TLS.test(message)) return "etcd does not answer TLS there (for a plain-text etcd use etcd://)";
  return undefined;
}

/** etcd's own user/password authentication. */
export interface EtcdAuth {
  username: string;
  password: string;
}

export interface EtcdStoreOptions {
  /** Talk TLS to every endpoint (https), with these certificates. */
  tls?: EtcdTls;
  /** Authenticate as this etcd user. */
  auth?: EtcdAuth;
  /** Upper bound for every request, connecting included (ms). Default 5000. */
  timeoutMs?: number;
  /** Longest pause between attempts to re-establish a broken watch (ms). Default 2000. */
  maxWatchBackoffMs?: number;
  /** Keys per Range request of a listing. Default DEFAULT_PAGE_SIZE (1000; see there why). */
  pageSize?: number;
  /**
   * How often gRPC pings the connection to notice a member gone without closing TCP (ms).
   * Default 10000. etcd answers pings more frequent than its --grpc-keepalive-min-time (default
   * 5 s) with GOAWAY, so lower this only against an etcd started with a lower minimum (tests).
   */
  keepaliveIntervalMs?: number;
}

/** Times list() starts over when etcd compacts the revision it is reading between pages. */
const LIST_ATTEMPTS = 3;

type FaultPolicy = NonNullable<NonNullable<IOptions["faultHandling"]>["global"]>;

/** Runs each call once; used per host, so that a down member fails fast instead of tripping a breaker. */
function policy(execute: (fn: (ctx: { signal: AbortSignal }) => unknown) => Promise<unknown>): FaultPolicy {
  const noEvent = () => ({ dispose: () => undefined });
  return { execute, onSuccess: noEvent, onFailure: noEvent } as unknown as FaultPolicy;
}

const UNAVAILABLE_MESSAGE =
  /UNAVAILABLE|DEADLINE_EXCEEDED|ECONNREFUSED|ECONNRESET|EHOSTUNREACH|ENETUNREACH|ETIMEDOUT|No connection established|etcdserver: (request timed out|no leader|leader changed|too many requests|server stopped|not capable)/i;

function isUnavailable(err: unknown): boolean {
  if (err instanceof StoreUnavailableError) return true;
  if (
    err instanceof GRPCUnavailableError ||
    err instanceof GRPCDeadlineExceededError ||
    err instanceof GRPCCancelledError ||
    err instanceof EtcdWatchStreamEnded
  ) {
    return true;
  }
  if (err instanceof Error) {
    if (isRecoverableError(err)) return true;
    if (err.name === "BrokenCircuitError") return true;
    return UNAVAILABLE_MESSAGE.test(err.message);
  }
  return false;
}

function num(s: string | number | undefined): number {
  return s === undefined ? 0 : Number(s);
}

function toKeyValue(kv: IKeyValue): KeyValue {
  const out: KeyValue = {
    key: kv.key.toString("utf8"),
    value: kv.value.toString("utf8"),
    createRevision: num(kv.create_revision),
    modRevision: num(kv.mod_revision),
  };
  if (kv.lease !== undefined && kv.lease !== "0" && kv.lease !== "") out.lease = String(kv.lease);
  return out;
}

function toCompare(c: Compare): ICompare {
  if ("prefix" in c) {
    const { key, rangeEnd } = prefixRangeBytes(c.prefix);
    // "Every key's modRevision <= max" is etcd's "mod < max+1" over the range; an empty range holds.
    return {
      key,
      range_end: rangeEnd,
      target: CompareTarget.Mod,
      result: CompareResult.Less,
      mod_revision: c.maxModRevision + 1,
    };
  }
  const key = Buffer.from(c.key, "utf8");
  if ("modRevision" in c) {
    return { key, target: CompareTarget.Mod, result: CompareResult.Equal, mod_revision: c.modRevision };
  }
  return {
    key,
    target: CompareTarget.Value,
    result: CompareResult.Equal,
    value: Buffer.from(c.value, "utf8"),
  };
}

function toRequestOp(op: Op): IRequestOp {
  switch (op.type) {
    case "put":
      return {
        request_put: {
          key: Buffer.from(op.key, "utf8"),
          value: Buffer.from(op.value, "utf8"),
          ...(op.lease === undefined ? {} : { lease: op.lease }),
        },
      };
    case "delete":
      return { request_delete_range: { key: Buffer.from(op.key, "utf8") } };
    case "deletePrefix": {
      const { key, rangeEnd } = prefixRangeBytes(op.prefix);
      return { request_delete_range: { key, range_end: rangeEnd } };
    }
  }
}

export class EtcdStore implements Store {
  readonly endpoints: readonly string[];
  private readonly client: Etcd3;
  private readonly timeoutMs: number;
  private readonly maxWatchBackoffMs: number;
  private readonly pageSize: number;
  private readonly watches = new Set<EtcdWatch>();
  private readonly renewals: LeaseRenewals;
  private watchReconnects = 0;
  private closed = false;
  /** TLS settings, for the reasons given in errors; undefined: plain text. */
  readonly tls: EtcdTls | undefined;
  /** The etcd user, for errors; undefined: no etcd auth. */
  private readonly username: string | undefined;

  constructor(endpoints: string[], options: EtcdStoreOptions = {}) {
    if (endpoints.length === 0) throw new Error("etcd store: no endpoints given");
    this.endpoints = [...endpoints];
    this.timeoutMs = options.timeoutMs ?? 5000;
    this.maxWatchBackoffMs = options.maxWatchBackoffMs ?? 2000;
    this.pageSize = options.pageSize ?? DEFAULT_PAGE_SIZE;
    if (!Number.isInteger(this.pageSize) || this.pageSize < 1) {
      throw new Error(`etcd store: page size must be a whole number >= 1, got ${this.pageSize}`);
    }
    this.renewals = new LeaseRenewals(this);
    const tls = options.tls;
    this.tls = tls;
    this.username = options.auth?.username;
    const scheme = tls === undefined ? "http" : "https";
    const hosts = endpoints.map((e) => (/^https?:\/\//.test(e) ? e : `${scheme}://${e}`));
    const attempts = hosts.length;
    this.client = new Etcd3({
      hosts,
      ...(tls === undefined
        ? {}
        : {
            credentials: {
              rootCertificate: tls.ca ?? (null as unknown as Buffer),
              ...(tls.key === undefined ? {} : { privateKey: tls.key }),
              ...(tls.cert === undefined ? {} : { certChain: tls.cert }),
            },
          }),
      ...(options.auth === undefined ? {} : { auth: { ...options.auth } }),
      dialTimeout: this.timeoutMs,
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + this.timeoutMs }),
      grpcOptions: {
        // Notice a dead connection (a member gone without closing TCP) while a watch is idle.
        "grpc.keepalive_time_ms": options.keepaliveIntervalMs ?? 10_000,
        "grpc.keepalive_timeout_ms": this.timeoutMs,
        "grpc.keepalive_permit_without_calls": 1,
      },
      faultHandling: {
        host: () => policy(async (fn) => fn({ signal: new AbortController().signal })),
        // Try each member once: a request that failed to reach one member may reach another.
        global: policy(async (fn) => {
          let last: unknown;
          for (let i = 0; i < attempts; i++) {
            try {
              return await fn({ signal: new AbortController().signal });
            } catch (err) {
              if (!isRecoverableError(err as Error) || this.closed) throw err;
              last = err;
            }
          }
          throw last;
        }),
      },
    });
  }

  async get(key: string): Promise<KeyValue | undefined> {
    const res = await this.call("get", (deadline) =>
      this.client.kv.range({ key: Buffer.from(key, "utf8") }, deadline),
    );
    const kv = res.kvs[0];
    return kv === undefined ? undefined : toKeyValue(kv);
  }

  /** listPages collected; starts over (up to LIST_ATTEMPTS times) when compaction cuts it short. */
  async list(prefix: string): Promise<{ items: KeyValue[]; revision: number }> {
    for (let attempt = 1; ; attempt++) {
      const items: KeyValue[] = [];
      try {
        const { revision } = await this.listPages(prefix, (page) => {
          for (const kv of page) items.push(kv);
        });
        return { items, revision };
      } catch (err) {
        if (!(err instanceof ListingCompactedError) || attempt >= LIST_ATTEMPTS) throw err;
      }
    }
  }

  /**
   * Range requests of at most `pageSize` keys: the first at the newest revision, every later one
   * at the first's revision, each starting just after the last key of the one before (key +
   * "\0") until etcd says there is no more. The next page is asked for as soon as one arrives,
   * so etcd reads it while the caller parses this one (two pages in memory at most).
   */
  async listPages(prefix: string, onPage: OnPage): Promise<ListPagesResult> {
    const { key: first, rangeEnd } = prefixRangeBytes(prefix);
    let limit = this.pageSize;
    /** 0 until the first page fixes it (0 asks etcd for its newest revision). */
    let revision = 0;
    let count = 0;
    const range = async (key: Buffer): Promise<IRangeResponse> => {
      for (;;) {
        try {
          return await this.call("list", (deadline) =>
            this.client.kv.range(
              { key, range_end: rangeEnd, limit, ...(revision > 0 ? { revision } : {}) },
              deadline,
            ),
          );
        } catch (err) {
          if (tooLarge(err) && limit > 1) {
            limit = Math.max(1, Math.floor(limit / 2));
            continue;
          }
          if (revision > 0 && compacted(err)) {
            throw new ListingCompactedError(
              `etcd ${this.endpoints.join(",")}: listing ${JSON.stringify(prefix)} at revision ${revision} ` +
                `cannot go on after ${count} keys: etcd compacted that revision between two pages; list again`,
              { cause: err },
            );
          }
          throw err;
        }
      }
    };
    let pending = range(first);
    for (;;) {
      const res = await pending;
      if (revision === 0) revision = num(res.header.revision);
      const last = res.kvs[res.kvs.length - 1];
      const more = res.more && last !== undefined;
      // Ask for the next page before handing this one on: etcd reads it while this one is parsed.
      if (more) {
        pending = range(Buffer.concat([last.key, Buffer.from([0])]));
        // Settled below, or dropped with the listing when onPage throws.
        pending.catch(() => undefined);
      }
      if (last !== undefined) {
        count += res.kvs.length;
        await onPage(res.kvs.map(toKeyValue), revision);
      }
      if (!more) return { revision, count };
    }
  }

  async txn(compares: Compare[], success: Op[], failure: Op[] = []): Promise<TxnResult> {
    const res = await this.call("txn", (deadline) =>
      this.client.kv.txn(
        {
          compare: compares.map(toCompare),
          success: success.map(toRequestOp),
          failure: failure.map(toRequestOp),
        },
        deadline,
      ),
    );
    return { succeeded: res.succeeded, revision: num(res.header.revision) };
  }

  async watch(prefix: string, fromRevision: number, handlers: WatchHandlers): Promise<Watch> {
    this.assertOpen();
    const w = new EtcdWatch(this, prefix, fromRevision, handlers, () => this.watches.delete(w));
    this.watches.add(w);
    try {
      await w.connect();
    } catch (err) {
      await w.close();
      throw err;
    }
    return { close: () => w.close() };
  }

  async grantLease(ttlSeconds: number): Promise<Lease> {
    if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1) {
      throw new Error(`lease TTL must be a whole number of seconds >= 1, got ${ttlSeconds}`);
    }
    const res = await this.call("grantLease", (deadline) =>
      this.client.leaseClient.leaseGrant({ TTL: ttlSeconds, ID: 0 }, deadline),
    );
    if (res.error !== undefined && res.error !== "") throw new Error(`etcd refused the lease: ${res.error}`);
    const id: LeaseId = String(res.ID);
    return {
      id,
      ttlSeconds: num(res.TTL),
      keepAlive: () => this.keepAlive(id),
      revoke: () => this.revoke(id),
    };
  }

  /** Drops history up to `revision`; watches from before it are reset. */
  async compact(revision: number): Promise<void> {
    try {
      await this.call("compact", (deadline) =>
        this.client.kv.compact({ revision, physical: true }, deadline),
      );
    } catch (err) {
      if (err instanceof Error && /compacted/.test(err.message)) return;
      throw err;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.renewals.close();
    await Promise.all([...this.watches].map((w) => w.close()));
    this.client.close();
  }

  /** @internal Opens a raw watch stream. */
  async openWatchStream(): Promise<IDuplexStream<IWatchRequest, IWatchResponse>> {
    return this.call("watch", () => this.client.watchClient.watch());
  }

  /** @internal Opens a raw LeaseKeepAlive stream. */
  async openLeaseStream(): Promise<IDuplexStream<ILeaseKeepAliveRequest, ILeaseKeepAliveResponse>> {
    return this.call("keepAlive", () => this.client.leaseClient.leaseKeepAlive());
  }

  /** @internal Counts a watch stream re-established after it broke. */
  countWatchReconnect(): void {
    this.watchReconnects += 1;
  }

  /** Watch streams of this store re-established after breaking (tests, diagnostics). */
  get watchReconnectCount(): number {
    return this.watchReconnects;
  }

  /** LeaseKeepAlive streams this store has opened: one, unless one broke (tests, diagnostics). */
  get leaseStreamsOpened(): number {
    return this.renewals.opened;
  }

  /** @internal */
  get isClosed(): boolean {
    return this.closed;
  }

  /** @internal */
  get requestTimeoutMs(): number {
    return this.timeoutMs;
  }

  /** @internal */
  get watchBackoffMaxMs(): number {
    return this.maxWatchBackoffMs;
  }

  /** One renewal on the store's shared LeaseKeepAlive stream; TTL 0 means the lease is gone. */
  private async keepAlive(id: LeaseId): Promise<boolean> {
    const ttl = await this.call("keepAlive", () => this.renewals.renew(id, this.timeoutMs));
    return ttl > 0;
  }

  private async revoke(id: LeaseId): Promise<void> {
    try {
      await this.call("revoke", (deadline) => this.client.leaseClient.leaseRevoke({ ID: id }, deadline));
    } catch (err) {
      // Already gone (expired or revoked before): nothing left to delete.
      if (
        err instanceof EtcdLeaseInvalidError ||
        (err instanceof Error && /lease not found/.test(err.message))
      ) {
        return;
      }
      throw err;
    }
  }

  private assertOpen(): void {
    if (this.closed) throw new Error("etcd store is closed");
  }

  /**
   * Runs one request with a deadline, turning "cannot reach etcd" into StoreUnavailableError.
   * The timer is a backstop: gRPC's own deadline normally fires first.
   */
  private async call<T>(what: string, fn: (options: { deadline: number }) => Promise<T>): Promise<T> {
    this.assertOpen();
    const timeoutMs = this.timeoutMs;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new StoreUnavailableError(
              `etcd ${this.endpoints.join(",")}: ${what} got no answer within ${timeoutMs} ms`,
            ),
          ),
        timeoutMs,
      );
    });
    try {
      return await Promise.race([fn({ deadline: Date.now() + timeoutMs }), timeout]);
    } catch (err) {
      if (err instanceof StoreUnavailableError) throw err;
      if (err instanceof ClientClosedError || this.closed)
        throw new Error("etcd store is closed", { cause: err });
      if (
        err instanceof EtcdAuthenticationFailedError ||
        err instanceof EtcdUserNotFoundError ||
        err instanceof EtcdPermissionDeniedError
      ) {
        const who = this.username === undefined ? "" : ` (etcd user ${JSON.stringify(this.username)})`;
        throw new StoreAccessError(
          `etcd ${this.endpoints.join(",")}: ${what} refused${who}: ${err.message}`,
          {
            cause: err,
          },
        );
      }
      if (isUnavailable(err)) {
        const raw = err instanceof Error ? err.message : String(err);
        const msg = tlsFailureReason(raw, this.tls) ?? raw;
        throw new StoreUnavailableError(`etcd ${this.endpoints.join(",")}: ${what} failed: ${msg}`, {
          cause: err,
        });
      }
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }
}

/** The response was over gRPC's receive limit (RESOURCE_EXHAUSTED), possibly wrapped by call(). */
function tooLarge(err: unknown): boolean {
  const e = err instanceof StoreUnavailableError ? err.cause : err;
  return (
    e instanceof GRPCResourceExhastedError ||
    (e instanceof Error && /RESOURCE_EXHAUSTED|larger than max/.test(e.message))
  );
}

/** etcd's ErrCompacted: the revision asked for is older than the compacted history. */
function compacted(err: unknown): boolean {
  return err instanceof Error && /required revision has been compacted/.test(err.message);
}

/**
 * Closes a stream of ours: end() first, then cancel(). Cancelling makes the stream emit a
 * CANCELLED error, and etcd3 treats an error on a stream that is still writable as a failed host:
 * it closes every gRPC client to that host, and the other streams on the connection (the watches)
 * then die at its next keepalive ping ("Ping returned false", every 10 s with renewals running).
 * An ended stream is no longer writable, so its CANCELLED is left to our own listeners.
 */
function closeStream<Req, Res>(stream: IDuplexStream<Req, Res>): void {
  const s = stream as IDuplexStream<Req, Res> & { writable?: boolean };
  if (s.writable !== false) s.end();
  s.cancel();
}

interface Renewal {
  id: string;
  resolve(ttl: number): void;
  reject(err: Error): void;
}

/**
 * The store's one LeaseKeepAlive stream, shared by every lease: each request carries its lease's
 * ID and each response echoes it, answered in order. Opened on the first renewal, kept open (a
 * stream per renewal cost a connection each, see closeStream), reopened only after it broke.
 * A renewal unanswered within the timeout drops the stream with every renewal waiting on it, so
 * that no late answer is ever taken for a newer request's.
 */
class LeaseRenewals {
  /** Streams opened so far. */
  opened = 0;
  private stream: IDuplexStream<ILeaseKeepAliveRequest, ILeaseKeepAliveResponse> | undefined;
  private opening: Promise<IDuplexStream<ILeaseKeepAliveRequest, ILeaseKeepAliveResponse>> | undefined;
  /** Renewals sent on `stream` and not yet answered, oldest first. */
  private waiting: Renewal[] = [];
  private closed = false;

  constructor(private readonly store: EtcdStore) {}

  /** Sends one renewal; resolves with the TTL etcd answers (0: no such lease). */
  async renew(id: LeaseId, timeoutMs: number): Promise<number> {
    const stream = await this.open();
    return new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.drop(
          stream,
          new StoreUnavailableError(
            `etcd ${this.store.endpoints.join(",")}: keepAlive of lease ${id} got no answer within ${timeoutMs} ms`,
          ),
        );
      }, timeoutMs);
      this.waiting.push({
        id,
        resolve: (ttl) => {
          clearTimeout(timer);
          resolve(ttl);
        },
        reject: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      });
      stream.write({ ID: id });
    });
  }

  close(): void {
    this.closed = true;
    if (this.stream !== undefined) this.drop(this.stream, new Error("etcd store is closed"));
  }

  private open(): Promise<IDuplexStream<ILeaseKeepAliveRequest, ILeaseKeepAliveResponse>> {
    if (this.stream !== undefined) return Promise.resolve(this.stream);
    this.opening ??= this.store
      .openLeaseStream()
      .then((stream) => {
        if (this.closed) {
          closeStream(stream);
          throw new Error("etcd store is closed");
        }
        this.opened += 1;
        this.stream = stream;
        stream.on("data", (res) => this.answer(stream, res));
        stream.on("error", (err) =>
          this.drop(
            stream,
            new StoreUnavailableError(`etcd: lease keep-alive stream lost: ${err.message}`, { cause: err }),
          ),
        );
        stream.on("end", () =>
          this.drop(stream, new StoreUnavailableError("etcd: lease keep-alive stream ended")),
        );
        return stream;
      })
      .finally(() => {
        this.opening = undefined;
      });
    return this.opening;
  }

  private answer(
    stream: IDuplexStream<ILeaseKeepAliveRequest, ILeaseKeepAliveResponse>,
    res: ILeaseKeepAliveResponse,
  ): void {
    if (stream !== this.stream) return;
    const id = String(res.ID);
    const i = this.waiting.findIndex((r) => r.id === id);
    const renewal = this.waiting[i];
    if (renewal === undefined) return;
    this.waiting.splice(i, 1);
    renewal.resolve(num(res.TTL));
  }

  /** Closes the stream (if still the current one) and fails every renewal waiting on it. */
  private drop(stream: IDuplexStream<ILeaseKeepAliveRequest, ILeaseKeepAliveResponse>, err: Error): void {
    if (stream !== this.stream) return;
    this.stream = undefined;
    const waiting = this.waiting;
    this.waiting = [];
    closeStream(stream);
    for (const r of waiting) r.reject(err);
  }
}

class EtcdWatch {
  /** The next revision to deliver (etcd's start_revision is inclusive). */
  private next: number;
  private stream: IDuplexStream<IWatchRequest, IWatchResponse> | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  /** Events of a fragmented response whose last part has not come yet. */
  private fragments: IEvent[] = [];
  private backoffMs = 100;
  private closed = false;

  constructor(
    private readonly store: EtcdStore,
    private readonly prefix: string,
    fromRevision: number,
    private readonly handlers: WatchHandlers,
    private readonly onClosed: () => void,
  ) {
    this.next = fromRevision + 1;
  }

  /** Opens the stream; resolves once etcd has created the watch. */
  async connect(): Promise<void> {
    const stream = await this.store.openWatchStream();
    if (this.closed) {
      closeStream(stream);
      return;
    }
    this.stream = stream;
    const { key, rangeEnd } = prefixRangeBytes(this.prefix);
    await new Promise<void>((resolve, reject) => {
      let created = false;
      const timer = setTimeout(() => {
        if (created) return;
        created = true;
        this.dropStream(stream);
        reject(new StoreUnavailableError(`etcd: watch not created within ${this.store.requestTimeoutMs} ms`));
      }, this.store.requestTimeoutMs);
      stream.on("data", (res) => {
        if (stream !== this.stream) return;
        if (!created && res.created) {
          created = true;
          clearTimeout(timer);
          this.backoffMs = 100;
          resolve();
        }
        this.onResponse(res);
      });
      const broken = (err: Error): void => {
        if (!created) {
          created = true;
          clearTimeout(timer);
          this.dropStream(stream);
          const msg = tlsFailureReason(err.message, this.store.tls) ?? err.message;
          reject(
            new StoreUnavailableError(`etcd ${this.store.endpoints.join(",")}: watch failed: ${msg}`, {
              cause: err,
            }),
          );
          return;
        }
        if (stream !== this.stream) return;
        this.dropStream(stream);
        this.lost(err);
      };
      stream.on("error", broken);
      stream.on("end", () => broken(new EtcdWatchStreamEnded()));
      stream.write({
        create_request: {
          key,
          range_end: rangeEnd,
          start_revision: this.next,
          progress_notify: true,
          // Responses larger than etcd's request limit (1.5 MiB by default) come in parts, so that
          // catching up on a busy history never makes one message over gRPC's 4 MB.
          fragment: true,
        },
      });
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.retryTimer !== undefined) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    if (this.stream !== undefined) this.dropStream(this.stream);
    this.onClosed();
  }

  private onResponse(res: IWatchResponse): void {
    if (this.closed) return;
    if (res.canceled) {
      const compactRevision = num(res.compact_revision);
      const reason =
        compactRevision > 0
          ? `revision ${this.next - 1} is compacted (history starts at revision ${compactRevision})`
          : `etcd cancelled the watch: ${res.cancel_reason || "no reason given"}`;
      void this.close();
      this.call(() => this.handlers.onReset(reason));
      return;
    }
    if (res.fragment) {
      for (const ev of res.events ?? []) this.fragments.push(ev);
      return;
    }
    let events = res.events ?? [];
    if (this.fragments.length > 0) {
      events = this.fragments.concat(events);
      this.fragments = [];
    }
    if (events.length === 0) {
      // A progress notification: everything up to the header's revision has been sent.
      if (!res.created) this.next = Math.max(this.next, num(res.header.revision) + 1);
      return;
    }
    let group: WatchEvent[] = [];
    let rev = -1;
    for (const ev of events) {
      const modRevision = num(ev.kv.mod_revision);
      if (modRevision !== rev && group.length > 0) {
        this.deliver(group);
        group = [];
      }
      rev = modRevision;
      const out: WatchEvent = {
        type: ev.type === "Delete" ? "delete" : "put",
        key: ev.kv.key.toString("utf8"),
        modRevision,
      };
      if (out.type === "put") out.value = ev.kv.value.toString("utf8");
      group.push(out);
      this.next = Math.max(this.next, modRevision + 1);
    }
    if (group.length > 0) this.deliver(group);
  }

  private deliver(group: WatchEvent[]): void {
    if (this.closed) return;
    this.call(() => this.handlers.onEvents(group));
  }

  private call(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.handlers.onError?.(err instanceof Error ? err : new Error(String(err)));
    }
  }

  private dropStream(stream: IDuplexStream<IWatchRequest, IWatchResponse>): void {
    if (this.stream === stream) {
      this.stream = undefined;
      // Parts of a fragmented response whose last part never came: the reconnect asks again.
      this.fragments = [];
    }
    closeStream(stream);
  }

  /** The stream broke: report it and resume from the next undelivered revision. */
  private lost(err: Error): void {
    if (this.closed || this.store.isClosed) return;
    const reason =
      err instanceof StoreUnavailableError
        ? err
        : new StoreUnavailableError(`etcd: watch stream lost: ${err.message}`, { cause: err });
    this.handlers.onError?.(reason);
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.closed || this.retryTimer !== undefined) return;
    const delay = this.backoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, this.store.watchBackoffMaxMs);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      if (this.closed || this.store.isClosed) return;
      this.store.countWatchReconnect();
      this.connect().catch((err: unknown) => {
        if (this.closed) return;
        this.lost(err instanceof Error ? err : new Error(String(err)));
      });
    }, delay);
  }
}

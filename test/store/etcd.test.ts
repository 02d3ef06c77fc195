import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EtcdStore } from "../../src/store/etcd.js";
import { openStore } from "../../src/store/index.js";
import {
  DEFAULT_PAGE_SIZE,
  ListingCompactedError,
  StoreUnavailableError,
  type KeyValue,
  type ListPagesResult,
  type OnPage,
  type Store,
} from "../../src/store/store.js";
import { startEtcd, type TestEtcd } from "../helpers/etcd.js";
import { collect, sleep, storeSuite, waitFor } from "./store.suite.js";
import { expectWithin } from "../helpers/timing.js";

let etcd: TestEtcd | undefined;

beforeAll(async () => {
  // Lets the lease-stream test ping every 500 ms instead of every 10 s (etcd's own minimum is 5 s).
  etcd = await startEtcd({ grpcKeepaliveMinTimeMs: 100 });
});

afterAll(async () => {
  await etcd?.stop();
});

function endpoint(): string {
  if (etcd === undefined) throw new Error("etcd was not started");
  return etcd.endpoint;
}

describe("EtcdStore", () => {
  storeSuite({
    open: async () => ({
      store: new EtcdStore([endpoint()]),
      peer: async () => new EtcdStore([endpoint()]),
    }),
    compact: async (store, revision) => {
      if (!(store instanceof EtcdStore)) throw new Error("not an EtcdStore");
      await store.compact(revision);
    },
    leaseTtlSeconds: 1,
    pageSize: DEFAULT_PAGE_SIZE,
  });
});

describe("EtcdStore specifics", () => {
  it("openStore opens etcd:// URLs", async () => {
    const store = await openStore(`etcd://${endpoint()}`);
    try {
      const r = await store.txn([], [{ type: "put", key: "url/k", value: "v" }]);
      expect(await store.get("url/k")).toMatchObject({ value: "v", modRevision: r.revision });
    } finally {
      await store.close();
    }
  });

  it("a stopped etcd makes calls fail with StoreUnavailableError within the timeout; a watch resumes after", async () => {
    if (etcd === undefined) throw new Error("etcd was not started");
    const store: Store = new EtcdStore([endpoint()], { timeoutMs: 1500, maxWatchBackoffMs: 300 });
    try {
      const start = await store.txn([], [{ type: "put", key: "outage/before", value: "1" }]);
      const c = collect();
      const watch = await store.watch("outage/", start.revision, c.handlers);
      const lease = await store.grantLease(60);
      expect(await lease.keepAlive()).toBe(true);
      await etcd.stopServer();
      for (const call of [
        () => store.get("outage/before"),
        () => store.list("outage/"),
        () => store.txn([], [{ type: "put", key: "outage/x", value: "1" }]),
        () => store.grantLease(5),
        () => store.watch("outage/", 0, c.handlers),
        () => lease.keepAlive(),
        () => lease.keepAlive(),
      ]) {
        const t0 = Date.now();
        const err: unknown = await call().then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(StoreUnavailableError);
        expect((err as StoreUnavailableError).code).toBe("STORE_UNAVAILABLE");
        expectWithin("a call while etcd is down, until it fails", Date.now() - t0, 1500);
      }
      await waitFor("the watch to notice the outage", () => c.errors.length > 0, 5000);
      expect(c.errors.every((e) => e instanceof StoreUnavailableError)).toBe(true);
      await etcd.startServer();
      await waitFor(
        "store reachable again",
        async () => (await store.get("outage/before").catch(() => "down")) !== "down",
        10_000,
      );
      const after = await store.txn([], [{ type: "put", key: "outage/after", value: "2" }]);
      await waitFor("the watch resumed", () => c.events().length === 1, 10_000);
      expect(c.events()).toEqual([
        { type: "put", key: "outage/after", value: "2", modRevision: after.revision },
      ]);
      expect(c.resets).toEqual([]);
      // The keep-alive stream broke with the connection (and each renewal tried while etcd was
      // down opened one that failed); the next renewal opens another, which then stays.
      expect(await lease.keepAlive()).toBe(true);
      const opened = (store as EtcdStore).leaseStreamsOpened;
      expect(await lease.keepAlive()).toBe(true);
      expect(await lease.keepAlive()).toBe(true);
      expect((store as EtcdStore).leaseStreamsOpened).toBe(opened);
      await watch.close();
    } finally {
      await store.close();
      if (etcd.pid === undefined) await etcd.startServer();
    }
  }, 40_000);

  it("an unreachable endpoint fails within the timeout", async () => {
    const store = new EtcdStore(["127.0.0.1:1"], { timeoutMs: 800 });
    try {
      const t0 = Date.now();
      await expect(store.get("k")).rejects.toBeInstanceOf(StoreUnavailableError);
      expectWithin("a call to an unreachable endpoint, until it fails", Date.now() - t0, 800);
    } finally {
      await store.close();
    }
  });

  it("with several endpoints, a dead one does not stop requests", async () => {
    const store = new EtcdStore(["127.0.0.1:1", endpoint()], { timeoutMs: 2000 });
    try {
      for (let i = 0; i < 6; i++) {
        await store.txn([], [{ type: "put", key: `multi/${i}`, value: "1" }]);
      }
      expect((await store.list("multi/")).items).toHaveLength(6);
    } finally {
      await store.close();
    }
  });
});

describe("EtcdStore listings in pages", () => {
  const put = (key: string, value: string) => ({ type: "put" as const, key, value });

  it("a compaction between two pages fails the listing, naming the store and the reason; no page read after it comes", async () => {
    const store = new EtcdStore([endpoint()], { pageSize: 2 });
    try {
      await store.txn(
        [],
        Array.from({ length: 10 }, (_, i) => put(`compact-list/${i}`, String(i))),
      );
      const pages: KeyValue[][] = [];
      const err: unknown = await store
        .listPages("compact-list/", async (items) => {
          pages.push(items);
          if (pages.length > 1) return;
          const w = await store.txn([], [put("compact-list-elsewhere", "x")]);
          await store.compact(w.revision);
        })
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      expect(err).toBeInstanceOf(ListingCompactedError);
      const message = (err as Error).message;
      expect(message).toContain(`etcd ${endpoint()}`);
      expect(message).toContain('listing "compact-list/"');
      expect(message).toMatch(/compacted that revision between two pages/);
      // The page asked for ahead, before the compaction, is still whole; none after it comes.
      expect(pages.map((p) => p.map((kv) => kv.key))).toEqual([
        ["compact-list/0", "compact-list/1"],
        ["compact-list/2", "compact-list/3"],
      ]);
    } finally {
      await store.close();
    }
  });

  it("list() starts over after such a compaction and returns one newer, consistent listing", async () => {
    /** Writes a key and compacts history after the first page of the first listing. */
    class CompactingOnce extends EtcdStore {
      written: number | undefined;
      override async listPages(prefix: string, onPage: OnPage): Promise<ListPagesResult> {
        let pages = 0;
        return super.listPages(prefix, async (items, revision) => {
          await onPage(items, revision);
          pages += 1;
          if (pages !== 1 || this.written !== undefined) return;
          this.written = (await this.txn([], [put("restart-list/0x", "written mid-listing")])).revision;
          await this.compact(this.written);
        });
      }
    }
    const store = new CompactingOnce([endpoint()], { pageSize: 2 });
    try {
      await store.txn(
        [],
        Array.from({ length: 7 }, (_, i) => put(`restart-list/${i}`, String(i))),
      );
      const listed = await store.list("restart-list/");
      expect(store.written).toBeDefined();
      expect(listed.revision).toBeGreaterThanOrEqual(store.written ?? Infinity);
      expect(listed.items.map((kv) => kv.key)).toEqual([
        "restart-list/0",
        "restart-list/0x",
        ...Array.from({ length: 6 }, (_, i) => `restart-list/${i + 1}`),
      ]);
    } finally {
      await store.close();
    }
  });

  it("a page refused as over gRPC's 4 MB is asked for again with half as many keys", async () => {
    // 5,000 keys of ~1 KB in one page would be a 5 MB response.
    const store = new EtcdStore([endpoint()], { pageSize: 5000 });
    try {
      const value = "v".repeat(1000);
      for (let i = 0; i < 5000; i += 125) {
        await store.txn(
          [],
          Array.from({ length: 125 }, (_, j) => put(`huge-page/${String(i + j).padStart(5, "0")}`, value)),
        );
      }
      const sizes: number[] = [];
      const result = await store.listPages("huge-page/", (items) => {
        sizes.push(items.length);
      });
      expect(result.count).toBe(5000);
      expect(sizes).toEqual([2500, 2500]);
    } finally {
      await store.close();
    }
  }, 30_000);
});

describe("EtcdStore lease renewals", () => {
  it("renewals on one long-lived stream and closed watches leave the connection alone: a watch never reconnects", async () => {
    // gRPC pings every 500 ms here (10 s by default): 6 s of renewals span 12 pings. Before,
    // each renewal opened and cancelled a stream, and the next ping dropped the connection.
    const store = new EtcdStore([endpoint()], { keepaliveIntervalMs: 500 });
    try {
      const start = await store.txn([], [{ type: "put", key: "steady/start", value: "0" }]);
      const c = collect();
      const watch = await store.watch("steady/", start.revision, c.handlers);
      const lease = await store.grantLease(5);
      const other = await store.grantLease(5);
      await store.txn([], [{ type: "put", key: "steady/held", value: "1", lease: lease.id }]);
      const until = Date.now() + 6000;
      for (let i = 0; Date.now() < until; i++) {
        expect(await lease.keepAlive()).toBe(true);
        expect(await other.keepAlive()).toBe(true);
        if (i % 4 === 0) {
          // Closing another watch must not take this one down either.
          const brief = await store.watch("elsewhere/", start.revision, collect().handlers);
          await brief.close();
        }
        await sleep(300);
      }
      // Concurrent renewals on the one stream each get their own lease's answer.
      expect(await Promise.all([lease.keepAlive(), other.keepAlive(), lease.keepAlive()])).toEqual([
        true,
        true,
        true,
      ]);
      await other.revoke();
      expect(await other.keepAlive()).toBe(false);
      expect(await lease.keepAlive()).toBe(true);
      await store.txn([], [{ type: "put", key: "steady/end", value: "2" }]);
      await waitFor("the watch still delivering", () => c.events().length === 2);
      expect(c.events().map((e) => e.key)).toEqual(["steady/held", "steady/end"]);
      expect(c.errors).toEqual([]);
      expect(c.resets).toEqual([]);
      expect(store.watchReconnectCount).toBe(0);
      expect(store.leaseStreamsOpened).toBe(1);
      expect((await store.get("steady/held"))?.lease).toBe(lease.id);
      await watch.close();
    } finally {
      await store.close();
    }
  }, 30_000);
});

/**
 * The one behavioural suite every Store implementation must pass. Each implementation's test
 * file calls `storeSuite` with a harness that opens stores on its backend.
 */
import { afterEach, describe, expect, it } from "vitest";
import {
  listInPages,
  type KeyValue,
  type Store,
  type WatchEvent,
  type WatchHandlers,
} from "../../src/store/store.js";

export interface OpenedStore {
  store: Store;
  /** Another, independent store instance on the same backing data (file or cluster). */
  peer(): Promise<Store>;
}

export interface StoreHarness {
  open(): Promise<OpenedStore>;
  /** Drops history up to `revision` by the backend's own means. */
  compact(store: Store, revision: number): Promise<void>;
  /** TTL the lease tests ask for (etcd rounds small TTLs up to its minimum). */
  leaseTtlSeconds: number;
  /** Keys per page of the stores `open` gives. */
  pageSize: number;
}

/** gRPC's default receive limit, which no single etcd response may reach. */
const GRPC_MAX_RECEIVE = 4 * 1024 * 1024;

export interface Collected {
  groups: WatchEvent[][];
  resets: string[];
  errors: Error[];
  events(): WatchEvent[];
  handlers: WatchHandlers;
}

export function collect(): Collected {
  const c: Collected = {
    groups: [],
    resets: [],
    errors: [],
    events: () => c.groups.flat(),
    handlers: {
      onEvents: (events) => c.groups.push(events),
      onReset: (reason) => c.resets.push(reason),
      onError: (error) => c.errors.push(error),
    },
  };
  return c;
}

export async function waitFor(
  what: string,
  cond: () => boolean | Promise<boolean>,
  timeoutMs = 5000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

let nsCounter = 0;

/** Resources that would keep the process alive (timers, sockets), by kind. */
function liveResources(): Map<string, number> {
  const counts = new Map<string, number>();
  for (const r of process.getActiveResourcesInfo()) counts.set(r, (counts.get(r) ?? 0) + 1);
  return counts;
}

export function storeSuite(harness: StoreHarness): void {
  const toClose: Store[] = [];
  let ns = "";

  async function open(): Promise<OpenedStore> {
    const opened = await harness.open();
    toClose.push(opened.store);
    nsCounter += 1;
    ns = `suite-${process.pid}-${Date.now()}-${nsCounter}/`;
    return {
      store: opened.store,
      peer: async () => {
        const p = await opened.peer();
        toClose.push(p);
        return p;
      },
    };
  }

  afterEach(async () => {
    for (const s of toClose.splice(0)) await s.close();
  });

  const put = (key: string, value: string) => ({ type: "put" as const, key, value });

  describe("keys", () => {
    it("get, put and revisions", async () => {
      const { store } = await open();
      expect(await store.get(`${ns}a`)).toBeUndefined();
      const r1 = await store.txn([], [put(`${ns}a`, "1")]);
      expect(r1.succeeded).toBe(true);
      expect(await store.get(`${ns}a`)).toEqual({
        key: `${ns}a`,
        value: "1",
        createRevision: r1.revision,
        modRevision: r1.revision,
      });
      const r2 = await store.txn([], [put(`${ns}a`, "2")]);
      expect(r2.revision).toBeGreaterThan(r1.revision);
      expect(await store.get(`${ns}a`)).toMatchObject({
        value: "2",
        createRevision: r1.revision,
        modRevision: r2.revision,
      });
    });

    it("list returns keys under the prefix only, sorted, with the revision", async () => {
      const { store } = await open();
      await store.txn([], [put(`${ns}dir/b`, "b"), put(`${ns}dir/a`, "a"), put(`${ns}dir/c/d`, "cd")]);
      await store.txn([], [put(`${ns}dirx`, "x"), put(`${ns}di`, "y")]);
      const last = await store.txn([], [put(`${ns}dir/é`, "accent")]);
      const listed = await store.list(`${ns}dir/`);
      expect(listed.items.map((kv) => kv.key)).toEqual([
        `${ns}dir/a`,
        `${ns}dir/b`,
        `${ns}dir/c/d`,
        `${ns}dir/é`,
      ]);
      expect(listed.items.map((kv) => kv.value)).toEqual(["a", "b", "cd", "accent"]);
      expect(listed.revision).toBeGreaterThanOrEqual(last.revision);
      expect((await store.list(`${ns}nothing/`)).items).toEqual([]);
      const all = await store.list("");
      expect(all.items.filter((kv) => kv.key.startsWith(ns))).toHaveLength(6);
    });

    it("delete and deletePrefix", async () => {
      const { store } = await open();
      await store.txn(
        [],
        [put(`${ns}d/1`, "1"), put(`${ns}d/2`, "2"), put(`${ns}d2`, "x"), put(`${ns}k`, "k")],
      );
      const del = await store.txn([], [{ type: "delete", key: `${ns}k` }]);
      expect(await store.get(`${ns}k`)).toBeUndefined();
      // Deleting what is not there changes nothing, so the revision stays.
      const noop = await store.txn([], [{ type: "delete", key: `${ns}k` }]);
      expect(noop.succeeded).toBe(true);
      expect(noop.revision).toBe(del.revision);
      await store.txn([], [{ type: "deletePrefix", prefix: `${ns}d/` }]);
      expect((await store.list(`${ns}d`)).items.map((kv) => kv.key)).toEqual([`${ns}d2`]);
    });

    it("a put with an unknown lease fails and changes nothing", async () => {
      const { store } = await open();
      await expect(
        store.txn([], [put(`${ns}x`, "1"), { type: "put", key: `${ns}y`, value: "2", lease: "123456789" }]),
      ).rejects.toThrow();
      expect(await store.get(`${ns}x`)).toBeUndefined();
    });
  });

  describe("transactions", () => {
    it("modRevision 0 means the key must not exist", async () => {
      const { store } = await open();
      const create = await store.txn([{ key: `${ns}k`, modRevision: 0 }], [put(`${ns}k`, "first")]);
      expect(create.succeeded).toBe(true);
      const again = await store.txn([{ key: `${ns}k`, modRevision: 0 }], [put(`${ns}k`, "second")]);
      expect(again.succeeded).toBe(false);
      expect((await store.get(`${ns}k`))?.value).toBe("first");
    });

    it("compare on modRevision: current wins, stale fails and runs the failure branch", async () => {
      const { store } = await open();
      const r1 = await store.txn([], [put(`${ns}k`, "1")]);
      const r2 = await store.txn([{ key: `${ns}k`, modRevision: r1.revision }], [put(`${ns}k`, "2")]);
      expect(r2.succeeded).toBe(true);
      const stale = await store.txn(
        [{ key: `${ns}k`, modRevision: r1.revision }],
        [put(`${ns}k`, "3")],
        [put(`${ns}conflict`, "yes")],
      );
      expect(stale.succeeded).toBe(false);
      expect(stale.revision).toBeGreaterThan(r2.revision);
      expect((await store.get(`${ns}k`))?.value).toBe("2");
      expect((await store.get(`${ns}conflict`))?.value).toBe("yes");
    });

    it("a failed txn without failure ops leaves the revision unchanged", async () => {
      const { store } = await open();
      const r1 = await store.txn([], [put(`${ns}k`, "1")]);
      const failed = await store.txn([{ key: `${ns}k`, modRevision: 0 }], [put(`${ns}k`, "2")]);
      expect(failed).toEqual({ succeeded: false, revision: r1.revision });
    });

    it("refuses a branch that touches one key twice or puts inside a range it deletes", async () => {
      const { store } = await open();
      const r1 = await store.txn([], [put(`${ns}a/x`, "1")]);
      await expect(store.txn([], [put(`${ns}k`, "1"), put(`${ns}k`, "2")])).rejects.toThrow();
      await expect(
        store.txn([], [{ type: "deletePrefix", prefix: `${ns}a/` }, put(`${ns}a/y`, "1")]),
      ).rejects.toThrow();
      // Nothing was applied.
      expect((await store.get(`${ns}a/x`))?.value).toBe("1");
      expect(await store.get(`${ns}a/y`)).toBeUndefined();
      expect((await store.list(ns)).revision).toBe(r1.revision);
      // Disjoint ops are fine.
      const ok = await store.txn([], [{ type: "deletePrefix", prefix: `${ns}a/` }, put(`${ns}b`, "1")]);
      expect(ok.succeeded).toBe(true);
    });

    it("compare on value", async () => {
      const { store } = await open();
      await store.txn([], [put(`${ns}k`, "blue")]);
      expect((await store.txn([{ key: `${ns}k`, value: "red" }], [put(`${ns}k`, "green")])).succeeded).toBe(
        false,
      );
      expect((await store.txn([{ key: `${ns}k`, value: "blue" }], [put(`${ns}k`, "green")])).succeeded).toBe(
        true,
      );
      expect((await store.get(`${ns}k`))?.value).toBe("green");
      // A missing key has no value, not even the empty one.
      expect((await store.txn([{ key: `${ns}missing`, value: "" }], [put(`${ns}m`, "1")])).succeeded).toBe(
        false,
      );
    });

    it("compare on a prefix's highest modRevision", async () => {
      const { store } = await open();
      // An empty prefix holds for any bound.
      expect((await store.txn([{ prefix: `${ns}p/`, maxModRevision: 0 }], [])).succeeded).toBe(true);
      const r1 = await store.txn([], [put(`${ns}p/a`, "1"), put(`${ns}p/b`, "1")]);
      await store.txn([], [put(`${ns}q`, "outside")]);
      const held = await store.txn(
        [{ prefix: `${ns}p/`, maxModRevision: r1.revision }],
        [put(`${ns}ok`, "1")],
      );
      expect(held.succeeded).toBe(true);
      await store.txn([], [put(`${ns}p/b`, "2")]);
      const stale = await store.txn(
        [{ prefix: `${ns}p/`, maxModRevision: r1.revision }],
        [put(`${ns}ok`, "2")],
      );
      expect(stale.succeeded).toBe(false);
      expect((await store.get(`${ns}ok`))?.value).toBe("1");
    });

    it("every compare must hold", async () => {
      const { store } = await open();
      const r = await store.txn([], [put(`${ns}a`, "1")]);
      const mixed = await store.txn(
        [
          { key: `${ns}a`, modRevision: r.revision },
          { key: `${ns}b`, modRevision: r.revision },
        ],
        [put(`${ns}c`, "1")],
      );
      expect(mixed.succeeded).toBe(false);
      expect(await store.get(`${ns}c`)).toBeUndefined();
    });

    it("of N concurrent compare-and-swap writers exactly one wins, across two store instances", async () => {
      const { store, peer } = await open();
      const other = await peer();
      await store.txn([], [put(`${ns}cas`, "start")]);
      const writers = Array.from({ length: 12 }, (_, i) => (i % 2 === 0 ? store : other));
      const seen = await Promise.all(writers.map((s) => s.get(`${ns}cas`)));
      const results = await Promise.all(
        writers.map((s, i) =>
          s.txn([{ key: `${ns}cas`, modRevision: seen[i]?.modRevision ?? -1 }], [put(`${ns}cas`, `w${i}`)]),
        ),
      );
      const winners = results.flatMap((r, i) => (r.succeeded ? [i] : []));
      expect(winners).toHaveLength(1);
      expect((await other.get(`${ns}cas`))?.value).toBe(`w${winners[0]}`);
    });

    it("concurrent create-if-absent: one creator wins", async () => {
      const { store, peer } = await open();
      const other = await peer();
      const results = await Promise.all(
        Array.from({ length: 10 }, (_, i) =>
          (i % 2 === 0 ? store : other).txn(
            [{ key: `${ns}once`, modRevision: 0 }],
            [put(`${ns}once`, `w${i}`)],
          ),
        ),
      );
      expect(results.filter((r) => r.succeeded)).toHaveLength(1);
    });

    it("read-modify-write counters lose no update under contention", async () => {
      const { store, peer } = await open();
      const other = await peer();
      const key = `${ns}counter`;
      const increment = async (s: Store): Promise<number> => {
        let attempts = 0;
        for (;;) {
          attempts += 1;
          if (attempts > 500) throw new Error("compare-and-swap never succeeded");
          const cur = await s.get(key);
          const next = String(Number(cur?.value ?? "0") + 1);
          const r = await s.txn([{ key, modRevision: cur?.modRevision ?? 0 }], [put(key, next)]);
          if (r.succeeded) return attempts;
        }
      };
      const workers = [store, other, store, other].map(async (s) => {
        for (let i = 0; i < 10; i++) await increment(s);
      });
      await Promise.all(workers);
      expect((await store.get(key))?.value).toBe("40");
    });
  });

  describe("watch", () => {
    it("delivers every change after the revision, in order, grouped by transaction", async () => {
      const { store, peer } = await open();
      const other = await peer();
      const start = await store.txn([], [put(`${ns}w/before`, "0")]);
      const r1 = await store.txn([], [put(`${ns}w/a`, "1"), put(`${ns}w/b`, "1")]);
      await store.txn([], [put(`${ns}elsewhere`, "x")]);
      const r2 = await store.txn([], [{ type: "delete", key: `${ns}w/a` }]);
      const c = collect();
      const watch = await store.watch(`${ns}w/`, start.revision, c.handlers);
      try {
        // Changes after the watch started, some from another store instance.
        const r3 = await other.txn([], [put(`${ns}w/c`, "3")]);
        const r4 = await store.txn([], [{ type: "deletePrefix", prefix: `${ns}w/` }]);
        await waitFor("all events", () => c.events().length >= 7);
        await sleep(150);
        expect(c.groups).toEqual([
          [
            { type: "put", key: `${ns}w/a`, value: "1", modRevision: r1.revision },
            { type: "put", key: `${ns}w/b`, value: "1", modRevision: r1.revision },
          ],
          [{ type: "delete", key: `${ns}w/a`, modRevision: r2.revision }],
          [{ type: "put", key: `${ns}w/c`, value: "3", modRevision: r3.revision }],
          [
            { type: "delete", key: `${ns}w/b`, modRevision: r4.revision },
            { type: "delete", key: `${ns}w/before`, modRevision: r4.revision },
            { type: "delete", key: `${ns}w/c`, modRevision: r4.revision },
          ],
        ]);
        expect(c.resets).toEqual([]);
      } finally {
        await watch.close();
      }
    });

    it("a watch from the list's revision sees exactly the later changes", async () => {
      const { store } = await open();
      await store.txn([], [put(`${ns}l/a`, "1")]);
      const listed = await store.list(`${ns}l/`);
      const c = collect();
      const watch = await store.watch(`${ns}l/`, listed.revision, c.handlers);
      try {
        await sleep(150);
        expect(c.events()).toEqual([]);
        const r = await store.txn([], [put(`${ns}l/b`, "2")]);
        await waitFor("the put", () => c.events().length === 1);
        expect(c.events()).toEqual([{ type: "put", key: `${ns}l/b`, value: "2", modRevision: r.revision }]);
      } finally {
        await watch.close();
      }
    });

    it("a closed watch delivers nothing more", async () => {
      const { store } = await open();
      const listed = await store.list(`${ns}c/`);
      const c = collect();
      const watch = await store.watch(`${ns}c/`, listed.revision, c.handlers);
      await store.txn([], [put(`${ns}c/1`, "1")]);
      await waitFor("first event", () => c.events().length === 1);
      await watch.close();
      await store.txn([], [put(`${ns}c/2`, "2")]);
      await sleep(200);
      expect(c.events()).toHaveLength(1);
    });

    it("a watch from a compacted revision is reset", async () => {
      const { store } = await open();
      const r0 = await store.txn([], [put(`${ns}h/a`, "1")]);
      await store.txn([], [put(`${ns}h/a`, "2")]);
      await store.txn([], [put(`${ns}h/a`, "3")]);
      const r3 = await store.txn([], [put(`${ns}h/a`, "4")]);
      await harness.compact(store, r3.revision);
      const c = collect();
      const watch = await store.watch(`${ns}h/`, r0.revision, c.handlers);
      try {
        await waitFor("reset", () => c.resets.length === 1);
        expect(c.events()).toEqual([]);
        // History after the compaction point is still there.
        const c2 = collect();
        const w2 = await store.watch(`${ns}h/`, r3.revision, c2.handlers);
        const r4 = await store.txn([], [put(`${ns}h/a`, "5")]);
        await waitFor("event after compaction", () => c2.events().length === 1);
        expect(c2.events()[0]?.modRevision).toBe(r4.revision);
        expect(c2.resets).toEqual([]);
        await w2.close();
      } finally {
        await watch.close();
      }
    });
  });

  describe("paged listing", () => {
    /** Keys `${prefix}00000`.. in transactions of 100 puts (etcd allows 128 ops per txn). */
    async function fill(
      store: Store,
      prefix: string,
      n: number,
      value: (i: number) => string,
    ): Promise<number> {
      let revision = 0;
      for (let i = 0; i < n; i += 100) {
        const ops = [];
        for (let j = i; j < Math.min(n, i + 100); j++)
          ops.push(put(`${prefix}${String(j).padStart(5, "0")}`, value(j)));
        revision = (await store.txn([], ops)).revision;
      }
      return revision;
    }

    it("more than one page and more than 4 MB: every key once, sorted, at one revision; a watch from before sees it all", async () => {
      const { store } = await open();
      const n = 6000;
      // ~1 KB records, each different (etcd compresses nothing, but make sure no layer could).
      const value = (i: number): string => `${i}:`.padEnd(1000, String.fromCharCode(97 + (i % 26)));
      const before = await store.txn([], [put(`${ns}big.`, "just before the prefix")]);
      const last = await fill(store, `${ns}big/`, n, value);
      await store.txn([], [put(`${ns}big0`, "just after the prefix")]);
      const expectedKeys = Array.from({ length: n }, (_, i) => `${ns}big/${String(i).padStart(5, "0")}`);

      const listed = await store.list(`${ns}big/`);
      expect(listed.items.map((kv) => kv.key)).toEqual(expectedKeys);
      expect(listed.items.every((kv, i) => kv.value === value(i))).toBe(true);
      expect(listed.items.reduce((sum, kv) => sum + kv.key.length + kv.value.length, 0)).toBeGreaterThan(
        GRPC_MAX_RECEIVE,
      );
      expect(listed.revision).toBeGreaterThanOrEqual(last);
      expect(listed.items.every((kv) => kv.modRevision <= listed.revision)).toBe(true);

      const pages: KeyValue[][] = [];
      const revisions = new Set<number>();
      const result = await listInPages(store, `${ns}big/`, (items, revision) => {
        pages.push(items);
        revisions.add(revision);
      });
      expect(result).toEqual({ revision: listed.revision, count: n });
      expect([...revisions]).toEqual([listed.revision]);
      expect(pages).toHaveLength(Math.ceil(n / harness.pageSize));
      expect(pages.every((p) => p.length > 0 && p.length <= harness.pageSize)).toBe(true);
      expect(pages.flat()).toEqual(listed.items);

      // Catching up on all of it: no single response may carry the whole history either.
      const c = collect();
      const watch = await store.watch(`${ns}big/`, before.revision, c.handlers);
      try {
        await waitFor("every put", () => c.events().length >= n, 20_000);
        expect(c.events().map((e) => e.key)).toEqual(expectedKeys);
        expect(c.errors).toEqual([]);
        expect(c.resets).toEqual([]);
      } finally {
        await watch.close();
      }
    }, 60_000);

    it("writes made while a paged listing runs are not in it", async () => {
      const { store, peer } = await open();
      const other = await peer();
      const n = Math.floor(harness.pageSize * 2.5);
      const key = (i: number): string => `${ns}p/${String(i).padStart(5, "0")}`;
      await fill(store, `${ns}p/`, n, (i) => `v${i}`);
      const snapshot = await store.list(`${ns}p/`);
      const pages: KeyValue[][] = [];
      let during = 0;
      const result = await listInPages(store, `${ns}p/`, async (items, revision) => {
        pages.push(items);
        expect(revision).toBe(snapshot.revision);
        if (pages.length !== 1) return;
        // Between the first page and the rest, through this store and another instance.
        await store.txn([], [put(key(n - 1), "changed"), { type: "delete", key: key(n - 2) }]);
        await other.txn([], [put(`${key(harness.pageSize + 1)}x`, "new, inside the second page")]);
        during = (await other.txn([], [put(`${ns}p/zzz`, "new, after the last key")])).revision;
      });
      expect(pages.length).toBeGreaterThan(1);
      expect(result).toEqual({ revision: snapshot.revision, count: n });
      expect(pages.flat()).toEqual(snapshot.items);
      expect(during).toBeGreaterThan(snapshot.revision);
      // The writes happened, and a new listing has them.
      const now = await store.list(`${ns}p/`);
      expect(now.items).toHaveLength(n + 1);
      expect(now.items.find((kv) => kv.key === key(n - 1))?.value).toBe("changed");
      expect(now.items.at(-1)?.key).toBe(`${ns}p/zzz`);
    }, 30_000);

    it("an empty prefix delivers no page; a failing page handler ends the listing with its error", async () => {
      const { store } = await open();
      let pages = 0;
      const empty = await listInPages(store, `${ns}none/`, () => {
        pages += 1;
      });
      expect(pages).toBe(0);
      expect(empty.count).toBe(0);
      expect(empty.revision).toBeGreaterThan(0);
      await store.txn([], [put(`${ns}f/a`, "1")]);
      await expect(
        listInPages(store, `${ns}f/`, () => {
          throw new Error("handler gave up");
        }),
      ).rejects.toThrow("handler gave up");
      // The store is fine afterwards.
      expect((await store.list(`${ns}f/`)).items).toHaveLength(1);
    });

    it("listInPages falls back to one page from list() for a Store without listPages", async () => {
      const { store } = await open();
      await store.txn([], [put(`${ns}w/a`, "1"), put(`${ns}w/b`, "2")]);
      const wrapper: Store = {
        get: (k) => store.get(k),
        list: (p) => store.list(p),
        txn: (c, ok, fail) => store.txn(c, ok, fail),
        watch: (p, r, h) => store.watch(p, r, h),
        grantLease: (t) => store.grantLease(t),
        close: async () => undefined,
      };
      const pages: string[][] = [];
      const result = await listInPages(wrapper, `${ns}w/`, (items) => {
        pages.push(items.map((kv) => kv.key));
      });
      expect(pages).toEqual([[`${ns}w/a`, `${ns}w/b`]]);
      expect(result.count).toBe(2);
    });
  });

  describe("leases", () => {
    it("an expired lease deletes its keys and watchers see the deletes", async () => {
      const { store } = await open();
      const lease = await store.grantLease(harness.leaseTtlSeconds);
      expect(lease.ttlSeconds).toBeGreaterThanOrEqual(harness.leaseTtlSeconds);
      const r = await store.txn(
        [],
        [
          { type: "put", key: `${ns}node/a`, value: "a", lease: lease.id },
          { type: "put", key: `${ns}node/b`, value: "b", lease: lease.id },
          put(`${ns}node/plain`, "stays"),
        ],
      );
      expect((await store.get(`${ns}node/a`))?.lease).toBe(lease.id);
      const c = collect();
      const watch = await store.watch(`${ns}node/`, r.revision, c.handlers);
      try {
        await waitFor(
          "lease expiry",
          () => c.events().filter((e) => e.type === "delete").length === 2,
          (lease.ttlSeconds + 5) * 1000,
        );
        expect(c.events().map((e) => `${e.type} ${e.key}`)).toEqual([
          `delete ${ns}node/a`,
          `delete ${ns}node/b`,
        ]);
        expect(await store.get(`${ns}node/a`)).toBeUndefined();
        expect((await store.get(`${ns}node/plain`))?.value).toBe("stays");
        expect(await lease.keepAlive()).toBe(false);
      } finally {
        await watch.close();
      }
    }, 20_000);

    it("keepAlive keeps a lease past its TTL", async () => {
      const { store } = await open();
      const lease = await store.grantLease(harness.leaseTtlSeconds);
      await store.txn([], [{ type: "put", key: `${ns}kept`, value: "1", lease: lease.id }]);
      const until = Date.now() + lease.ttlSeconds * 1000 * 2;
      while (Date.now() < until) {
        expect(await lease.keepAlive()).toBe(true);
        await sleep((lease.ttlSeconds * 1000) / 4);
      }
      expect((await store.get(`${ns}kept`))?.value).toBe("1");
      await lease.revoke();
    }, 20_000);

    it("revoke deletes the keys at once; keepAlive then says false", async () => {
      const { store, peer } = await open();
      const other = await peer();
      const lease = await store.grantLease(harness.leaseTtlSeconds * 10);
      const r = await store.txn([], [{ type: "put", key: `${ns}r/k`, value: "1", lease: lease.id }]);
      const c = collect();
      const watch = await other.watch(`${ns}r/`, r.revision, c.handlers);
      try {
        await lease.revoke();
        expect(await store.get(`${ns}r/k`)).toBeUndefined();
        expect(await lease.keepAlive()).toBe(false);
        await waitFor("delete event", () => c.events().length === 1);
        expect(c.events()[0]).toMatchObject({ type: "delete", key: `${ns}r/k` });
        // Revoking again is harmless.
        await lease.revoke();
      } finally {
        await watch.close();
      }
    });

    it("a put without a lease detaches the key from its lease", async () => {
      const { store } = await open();
      const lease = await store.grantLease(harness.leaseTtlSeconds * 10);
      await store.txn([], [{ type: "put", key: `${ns}d`, value: "1", lease: lease.id }]);
      await store.txn([], [put(`${ns}d`, "2")]);
      expect((await store.get(`${ns}d`))?.lease).toBeUndefined();
      await lease.revoke();
      expect((await store.get(`${ns}d`))?.value).toBe("2");
    });
  });

  describe("close", () => {
    it("leaves no timers or sockets behind and refuses further calls", async () => {
      await sleep(50);
      const before = liveResources();
      const { store } = await open();
      const lease = await store.grantLease(harness.leaseTtlSeconds * 10);
      await store.txn([], [{ type: "put", key: `${ns}x`, value: "1", lease: lease.id }]);
      const c = collect();
      await store.watch(`${ns}`, 0, c.handlers);
      await store.list(ns);
      await lease.revoke();
      await store.close();
      await waitFor(
        "resources released",
        () => {
          const after = liveResources();
          return [...after].every(([kind, n]) => n <= (before.get(kind) ?? 0));
        },
        3000,
      ).catch((err: unknown) => {
        throw new Error(
          `${String(err)}: before ${JSON.stringify([...before])}, after ${JSON.stringify([...liveResources()])}`,
        );
      });
      await expect(store.get(`${ns}x`)).rejects.toThrow();
      // Closing twice is harmless.
      await store.close();
    });
  });
}

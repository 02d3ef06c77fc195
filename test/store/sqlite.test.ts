import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { SqliteStore } from "../../src/store/sqlite.js";
import { DEFAULT_PAGE_SIZE, type Store } from "../../src/store/store.js";
import { collect, storeSuite, waitFor } from "./store.suite.js";

const root = mkdtempSync(join(tmpdir(), "overlay-sqlite-test-"));
let fileCounter = 0;
const newPath = (): string => join(root, `db-${++fileCounter}`, "store.db");

afterAll(() => rmSync(root, { recursive: true, force: true }));

const fast = { pollIntervalMs: 20, sweepIntervalMs: 100 };

describe("SqliteStore (file)", () => {
  storeSuite({
    open: async () => {
      const path = newPath();
      return { store: new SqliteStore(path, fast), peer: async () => new SqliteStore(path, fast) };
    },
    compact: async (store, revision) => {
      if (!(store instanceof SqliteStore)) throw new Error("not a SqliteStore");
      await store.compact(revision);
    },
    leaseTtlSeconds: 1,
    pageSize: DEFAULT_PAGE_SIZE,
  });
});

describe("SqliteStore (:memory:)", () => {
  storeSuite({
    open: async () => {
      const store = new SqliteStore(":memory:", fast);
      // One in-memory database cannot be opened twice; a second handle on the same instance
      // still exercises interleaved writers.
      return { store, peer: async () => shareOf(store) };
    },
    compact: async (store, revision) => {
      const target = store instanceof SqliteStore ? store : sharedTarget.get(store);
      if (target === undefined) throw new Error("not a SqliteStore");
      await target.compact(revision);
    },
    leaseTtlSeconds: 1,
    pageSize: DEFAULT_PAGE_SIZE,
  });
});

const sharedTarget = new WeakMap<Store, SqliteStore>();

/** A Store that forwards to `target` but whose close() leaves the target open. */
function shareOf(target: SqliteStore): Store {
  const s: Store = {
    get: (k) => target.get(k),
    list: (p) => target.list(p),
    listPages: (p, onPage) => target.listPages(p, onPage),
    txn: (c, ok, fail) => target.txn(c, ok, fail),
    watch: (p, r, h) => target.watch(p, r, h),
    grantLease: (ttl) => target.grantLease(ttl),
    close: async () => undefined,
  };
  sharedTarget.set(s, target);
  return s;
}

describe("SqliteStore specifics", () => {
  const open: SqliteStore[] = [];
  afterEach(async () => {
    for (const s of open.splice(0)) await s.close();
  });
  const track = (s: SqliteStore): SqliteStore => {
    open.push(s);
    return s;
  };

  it("creates its folder 0700 and file 0600", () => {
    const path = join(root, "perm", "nested", "store.db");
    track(new SqliteStore(path));
    expect(statSync(join(root, "perm", "nested")).mode & 0o777).toBe(0o700);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(statSync(`${path}-wal`).mode & 0o777).toBe(0o600);
  });

  it("uses WAL so readers and writers in other processes do not block each other", () => {
    const path = newPath();
    const s = track(new SqliteStore(path));
    expect(s.path).toBe(path);
    expect(statSync(`${path}-wal`).isFile()).toBe(true);
  });

  it("keeps data across reopen, revision included", async () => {
    const path = newPath();
    const a = new SqliteStore(path);
    const r = await a.txn([], [{ type: "put", key: "k", value: "v" }]);
    await a.close();
    const b = track(new SqliteStore(path));
    expect(await b.get("k")).toMatchObject({ value: "v", modRevision: r.revision });
    expect((await b.list("")).revision).toBe(r.revision);
  });

  it("a lease whose owner closed is expired by another open store", async () => {
    const path = newPath();
    const owner = new SqliteStore(path, fast);
    const other = track(new SqliteStore(path, fast));
    const lease = await owner.grantLease(1);
    const r = await owner.txn([], [{ type: "put", key: "nodes/n1", value: "up", lease: lease.id }]);
    await owner.close();
    const c = collect();
    const w = await other.watch("nodes/", r.revision, c.handlers);
    await waitFor("expiry seen by the other store", () => c.events().length === 1, 4000);
    expect(c.events()[0]).toMatchObject({ type: "delete", key: "nodes/n1" });
    await w.close();
  });

  it("compacts old history by itself and resets watches that fell behind", async () => {
    const s = track(new SqliteStore(newPath(), { ...fast, historyRevisions: 20 }));
    const first = await s.txn([], [{ type: "put", key: "h", value: "0" }]);
    for (let i = 1; i <= 60; i++) await s.txn([], [{ type: "put", key: "h", value: String(i) }]);
    const c = collect();
    await waitFor(
      "automatic compaction",
      async () => {
        const probe = collect();
        const w = await s.watch("h", first.revision, probe.handlers);
        await new Promise((r) => setTimeout(r, 40));
        await w.close();
        return probe.resets.length === 1;
      },
      3000,
    );
    const recent = (await s.list("")).revision - 5;
    const w = await s.watch("h", recent, c.handlers);
    await waitFor("recent history", () => c.events().length === 5);
    expect(c.resets).toEqual([]);
    await w.close();
  });

  it("a throwing handler does not stop delivery", async () => {
    const s = track(new SqliteStore(":memory:", fast));
    const errors: Error[] = [];
    const seen: number[] = [];
    const w = await s.watch("", 0, {
      onEvents: (evs) => {
        seen.push(evs[0]?.modRevision ?? -1);
        if (seen.length === 1) throw new Error("handler bug");
      },
      onReset: () => undefined,
      onError: (e) => errors.push(e),
    });
    await s.txn([], [{ type: "put", key: "a", value: "1" }]);
    await s.txn([], [{ type: "put", key: "a", value: "2" }]);
    await waitFor("both events", () => seen.length === 2);
    expect(errors.map((e) => e.message)).toEqual(["handler bug"]);
    await w.close();
  });

  it("several processes sharing the file: no lost update, unique revisions, one CAS winner", async () => {
    const path = newPath();
    const init = track(new SqliteStore(path));
    await init.txn([], [{ type: "put", key: "counter", value: "0" }]);
    const worker = fileURLToPath(new URL("./fixtures/sqlite-worker.ts", import.meta.url));
    const viteNode = fileURLToPath(new URL("../../node_modules/.bin/vite-node", import.meta.url));
    const perWorker = 25;
    const outputs = await Promise.all(
      [0, 1, 2].map(
        (i) =>
          new Promise<string>((resolve, reject) => {
            const child = spawn(viteNode, [worker, path, String(perWorker), `w${i}`], {
              stdio: ["ignore", "pipe", "pipe"],
            });
            let out = "";
            let err = "";
            child.stdout.on("data", (d: Buffer) => (out += d.toString()));
            child.stderr.on("data", (d: Buffer) => (err += d.toString()));
            child.on("error", reject);
            child.on("exit", (code) =>
              code === 0 ? resolve(out) : reject(new Error(`worker ${i} exited ${code}: ${err}`)),
            );
          }),
      ),
    );
    const results = outputs.map((o) => {
      const line = o.split("\n").find((l) => l.startsWith("{"));
      if (line === undefined) throw new Error(`worker printed no result: ${o}`);
      return JSON.parse(line) as { revisions: number[]; wonOnce: boolean };
    });
    expect((await init.get("counter"))?.value).toBe(String(3 * perWorker));
    const revisions = results.flatMap((r) => r.revisions);
    expect(new Set(revisions).size).toBe(revisions.length);
    expect(results.filter((r) => r.wonOnce)).toHaveLength(1);
  }, 30_000);
});

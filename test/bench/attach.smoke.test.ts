/**
 * Smoke test of the attach benchmark (`npm run bench:attach`): a tiny run of bench/attach.mjs on
 * both stores (`--quick --json`: 5 ADDs and DELs one at a time, 4 at once, 12 pods with 4 in
 * flight, 3 pods pinged from another node, 10 VERSIONs; about 15 s per store) against the
 * reference plugins. Checks that the run works end to end and that what it measured is whole:
 * every row of the table for each store, every figure a positive number of milliseconds under
 * what a working plugin takes (none is NaN, zero or minutes), ratios that are the two columns'
 * quotient, every pod of the project's reachable from the other node, the plugin's VERSION
 * listing the versions it supports, and the figures of where the time goes (etcd's requests per
 * call, at least one transaction per ADD and DEL; CPU per party). Not how fast anything is: the targets are judged by the
 * benchmark's own table (bench/README.md).
 *
 * Root only (network namespaces, TAP devices, the agents): skipped, saying so, otherwise. The
 * option checks run without root. The reference plugins and etcd not installed fail the test
 * (.ci/install-deps installs them), as missing tools fail the end-to-end tests.
 */
import { execFile } from "node:child_process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { isRoot } from "../kit/netns/index.js";

const FILE = "test/bench/attach.smoke.test.ts";
const ROOT = fileURLToPath(new URL("../../", import.meta.url));

function rootSkip(): string | undefined {
  const why = isRoot() ? undefined : "network namespaces, TAP devices and overlayd need root";
  if (why) console.log(`${FILE}: the benchmark run skipped, ${why}`);
  return why;
}

function run(args: string[], timeoutMs: number): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [join(ROOT, "bench", "attach.mjs"), ...args],
      { cwd: ROOT, timeout: timeoutMs, killSignal: "SIGTERM", encoding: "utf8", maxBuffer: 64 << 20 },
      (error, out, err) => {
        const code = error ? (typeof error.code === "number" ? error.code : null) : 0;
        resolve({ code, out, err });
      },
    );
  });
}

interface Row {
  key: string;
  figure: string;
  project: number | null;
  reference: number | null;
  ratio?: number;
  target: string;
  met?: boolean;
}

interface StoreResult {
  store: string;
  failures: string[];
  prefix: string;
  rows: Row[];
  reach: { unreached: string[] };
  versionSupported: string[];
  storeRequests: Record<string, { calls: number; Range: number; Txn: number }>;
  cpu: Record<string, { calls: number; wallS: number; plugins: number; agentNode1: number; etcd: number }>;
}

/** Rows with both columns (the rest have the project's only). */
const BOTH = [
  "addMedian",
  "addP99",
  "delMedian",
  "burstWall",
  "burstCall",
  "podsWall",
  "podsAddMedian",
  "podsDelWall",
  "versionMedian",
  "binTrue",
];
const PROJECT_ONLY = ["reachMedian", "reachFloor"];
/** Rows judged against a target, and so with a verdict. */
const JUDGED = ["addMedian", "addP99", "delMedian", "burstWall", "reachMedian", "versionMedian"];

describe("attach benchmark options", () => {
  it("refuses a bad option with exit 2 and says which", async () => {
    for (const [args, says] of [
      [["--adds", "0"], "--adds must be an integer 1..200"],
      [["--stores", "redis"], "--stores takes etcd, sqlite or both"],
      [["--fast"], "unknown argument --fast"],
    ] as const) {
      const r = await run([...args], 20_000);
      expect(r.code, r.err).toBe(2);
      expect(r.err).toContain(says);
      expect(r.out).toBe("");
    }
  });
});

describe.skipIf(rootSkip() !== undefined)("attach benchmark smoke", () => {
  it("measures both plugins on etcd and SQLite and prints every row", { timeout: 170_000 }, async () => {
    const r = await run(["--quick", "--json"], 160_000);
    expect(r.code, `bench failed:\n${r.err}\n${r.out}`).toBe(0);
    const report = JSON.parse(r.out) as { stores: StoreResult[]; commit: string; reference: string };
    expect(report.commit).not.toBe("");
    expect(report.reference).toContain("bridge + host-local");
    expect(report.stores.map((s) => s.store)).toEqual(["etcd", "sqlite"]);
    for (const s of report.stores) {
      expect(s.failures, `${s.store}:\n${r.err}`).toEqual([]);
      expect(s.prefix).toMatch(/^ov[0-9a-z]{5}$/);
      expect(s.rows.map((x) => x.key).sort()).toEqual([...BOTH, ...PROJECT_ONLY].sort());
      for (const row of s.rows) {
        const where = `${s.store}: ${row.figure}`;
        expect(row.project, where).toBeGreaterThan(0);
        // Nothing a working plugin does on this machine takes a minute.
        expect(row.project, where).toBeLessThan(60_000);
        if (BOTH.includes(row.key)) {
          expect(row.reference, where).toBeGreaterThan(0);
          expect(row.reference, where).toBeLessThan(60_000);
          expect(row.ratio, where).toBeCloseTo((row.project as number) / (row.reference as number), 6);
        } else {
          expect(row.reference, where).toBeNull();
          expect(row.ratio, where).toBeUndefined();
        }
        if (JUDGED.includes(row.key)) expect(typeof row.met, where).toBe("boolean");
      }
      const get = (key: string): Row => s.rows.find((x) => x.key === key) as Row;
      // Percentiles are ordered; a round of 4 at once takes at least its slowest call.
      expect(get("addP99").project).toBeGreaterThanOrEqual(get("addMedian").project as number);
      expect(get("burstWall").project).toBeGreaterThanOrEqual(get("burstCall").project as number);
      // 12 pods, 4 at a time, cannot take less than one call.
      expect(get("podsWall").project).toBeGreaterThanOrEqual(get("podsAddMedian").project as number);
      expect(get("podsWall").figure).toBe("12 pods, 4 in flight, wall");
      expect(s.reach.unreached).toEqual([]);
      expect(s.versionSupported).toContain("1.1.0");
      // Where the time goes: etcd's requests per call (every ADD writes once at least), CPU per party.
      if (s.store === "etcd") {
        expect(Object.keys(s.storeRequests).sort()).toEqual([
          "burstAdd",
          "oneAdd",
          "oneDel",
          "podsAdd",
          "podsDel",
        ]);
        for (const [k, v] of Object.entries(s.storeRequests)) {
          expect(v.Txn / v.calls, k).toBeGreaterThanOrEqual(1);
          expect(v.Range, k).toBeGreaterThan(0);
        }
      } else expect(s.storeRequests).toEqual({});
      expect(Object.keys(s.cpu)).toHaveLength(4);
      for (const [k, c] of Object.entries(s.cpu)) {
        expect(c.wallS, k).toBeGreaterThan(0);
        expect(c.calls, k).toBeGreaterThan(0);
        for (const v of [c.plugins, c.agentNode1, c.etcd]) expect(v, k).toBeGreaterThanOrEqual(0);
      }
      expect(get("podsWall").met).toBe(
        s.store === "etcd" ? (get("podsWall").project as number) < 3000 : undefined,
      );
    }
  });
});

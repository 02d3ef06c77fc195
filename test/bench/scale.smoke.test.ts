/**
 * Smoke test of the control-plane scale benchmark: `node bench/scale.mjs --quick --json` (10
 * nodes x 20 pods, 3 s of churn at 200 events/s, about 10 s) starts its own etcd, a real agent
 * and the simulated nodes, and prints its figures as JSON. Checks that the run works end to end
 * and that what it measured is whole: every figure present and positive, every churn write
 * applied, the agent's remote table equal to the store's, both dctl commands passing. Not how
 * fast anything is: the targets are judged by the benchmark's own table.
 *
 * Needs etcd (skipped, with the reason printed, when it is not installed) and dist/; not root
 * (the switch binds to 127.0.0.1 and has no ports, and nothing on the host is touched).
 */
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const ETCD = process.env.ETCD_BINARY ?? "/usr/bin/etcd";

function skipReason(): string | undefined {
  let why: string | undefined;
  if (!existsSync(ETCD)) why = `etcd is not installed (${ETCD} missing; apt-get install etcd-server)`;
  if (why) console.log(`test/bench/scale.smoke.test.ts: skipped, ${why}`);
  return why;
}

interface Dctl {
  ms: number;
  code: number | string;
  ok: boolean;
  error?: string;
}

interface Point {
  point: string;
  endpoints: number;
  expectedRemotes: number;
  failures: string[];
  start: { ok: boolean; startMs: number; programmedMs: number; rssMb: number; hwmMb: number };
  memory: { rssMb: number; hwmMb: number };
  churn: {
    written: number;
    applied: number;
    refused: number;
    neverApplied: number;
    neverAppliedList: string[];
    cpuPercent: number;
    latencyMs: { p50: number; p99: number; max: number };
  };
  table: {
    expected: number;
    programmed: number;
    equal: boolean;
    missing: number;
    wrong: number;
    stale: number;
  };
  dctl: { endpoints: Dctl & { listed: number }; check: Dctl };
  idleCpuPercent: number;
  departed: {
    ok: boolean;
    error?: string;
    endpoints: number;
    graceMs: number;
    withdrawnMs: number;
    releasedMs: number;
    endpointsLeft: number;
    addressesLeft: number;
    endpointsInStore: number;
  };
}

function run(args: string[], timeoutMs: number): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [join(ROOT, "bench", "scale.mjs"), ...args],
      { cwd: ROOT, timeout: timeoutMs, killSignal: "SIGTERM", encoding: "utf8", maxBuffer: 64 << 20 },
      (error, out, err) => {
        const code = error ? (typeof error.code === "number" ? error.code : null) : 0;
        resolve({ code, out, err });
      },
    );
  });
}

describe.skipIf(skipReason() !== undefined)("control-plane scale benchmark smoke", () => {
  it("measures one small point end to end", { timeout: 55_000 }, async () => {
    expect(
      existsSync(join(ROOT, "dist", "src", "agent", "agent.js")),
      "dist/ is missing: npx tsc -p tsconfig.build.json",
    ).toBe(true);
    const r = await run(["--quick", "--json"], 50_000);
    expect(r.code, `bench failed:\n${r.err}\n${r.out}`).toBe(0);
    const report = JSON.parse(r.out) as { points: Point[] };
    expect(report.points).toHaveLength(1);
    const p = report.points[0] as Point;
    expect(p.failures, r.err).toEqual([]);

    expect(p.point).toBe("10x20");
    expect(p.endpoints).toBe(9 * 20);
    // Every other node's pods and each other node's gateway.
    expect(p.expectedRemotes).toBe(9 * 20 + 9);
    expect(p.start.ok).toBe(true);
    for (const v of [p.start.startMs, p.start.programmedMs, p.start.rssMb, p.start.hwmMb, p.memory.hwmMb]) {
      expect(v).toBeGreaterThan(0);
    }

    expect(p.churn.written).toBeGreaterThan(0);
    expect(p.churn.refused).toBe(0);
    expect(p.churn.neverApplied, p.churn.neverAppliedList.join("\n")).toBe(0);
    expect(p.churn.applied).toBe(p.churn.written);
    expect(p.churn.cpuPercent).toBeGreaterThan(0);
    expect(p.churn.latencyMs.p50).toBeGreaterThan(0);
    expect(p.churn.latencyMs.p99).toBeGreaterThanOrEqual(p.churn.latencyMs.p50);
    expect(p.churn.latencyMs.max).toBeGreaterThanOrEqual(p.churn.latencyMs.p99);

    expect(p.table).toMatchObject({ equal: true, missing: 0, wrong: 0, stale: 0 });
    expect(p.table.programmed).toBe(p.table.expected);
    expect(p.table.expected).toBeGreaterThan(0);

    // node-002 departs: its remotes leave the table, and its records go after the grace.
    expect(p.departed.ok, p.departed.error).toBe(true);
    // It held 20 before the churn, which created and deleted pods on random nodes.
    expect(p.departed.endpoints).toBeGreaterThan(0);
    expect(p.departed.withdrawnMs).toBeGreaterThan(0);
    expect(p.departed.releasedMs).toBeGreaterThanOrEqual(p.departed.graceMs);
    expect(p.departed).toMatchObject({ endpointsLeft: 0, addressesLeft: 0 });
    expect(p.idleCpuPercent).toBeGreaterThanOrEqual(0);

    expect(p.dctl.endpoints.ok, p.dctl.endpoints.error).toBe(true);
    // The departed node's endpoints are gone from the listing: it lists what the store holds.
    expect(p.dctl.endpoints.listed).toBe(p.departed.endpointsInStore);
    expect(p.dctl.endpoints.listed).toBeLessThan(p.endpoints + p.churn.written);
    expect(p.dctl.endpoints.listed).toBeGreaterThan(0);
    expect(p.dctl.check.ok, p.dctl.check.error).toBe(true);
    expect(p.dctl.endpoints.ms).toBeGreaterThan(0);
    expect(p.dctl.check.ms).toBeGreaterThan(0);
  });
});

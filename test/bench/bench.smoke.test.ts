/**
 * Smoke test of the data-plane benchmark: `node bench/run.mjs --quick --only switch --no-save`
 * builds its namespace world, measures the switch alone for a few seconds per test and prints
 * its table. Where Open vSwitch is installed, a second, shorter run measures its userspace
 * datapath alone (one TCP stream and ping, about 5 s), so the OVS topology does not rot unseen.
 * Checks only that the runs work end to end, not how fast anything is.
 */
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { delimiter, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { isRoot } from "../kit/netns/index.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

function skipReason(): string | undefined {
  let why: string | undefined;
  if (!isRoot()) why = "the benchmark builds network namespaces and TAP devices, which need root";
  if (why) console.log(`test/bench/bench.smoke.test.ts: skipped, ${why}`);
  return why;
}

/** Why the Open vSwitch run is skipped, or undefined when its daemons and tools are installed. */
function ovsSkipReason(): string | undefined {
  const path = (process.env.PATH ?? "").split(delimiter).filter(Boolean);
  const missing = ["ovsdb-tool", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl", "ovs-appctl"].filter(
    (cmd) => !path.some((d) => existsSync(join(d, cmd))),
  );
  if (missing.length === 0) return undefined;
  const why = `Open vSwitch is not installed (no ${missing.join(", ")}; .ci/install-deps installs it)`;
  console.log(`test/bench/bench.smoke.test.ts: OVS run skipped, ${why}`);
  return why;
}

interface Output {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runBench(args: string[], timeoutMs: number): Promise<Output> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [join(ROOT, "bench", "run.mjs"), ...args],
      { cwd: ROOT, timeout: timeoutMs, killSignal: "SIGTERM", encoding: "utf8" },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === "number" ? error.code : null) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** The cells of the table row whose first cell starts with `label`. */
function row(table: string, label: string): string[] | undefined {
  const line = table.split("\n").find((l) => l.startsWith(`| ${label}`));
  return line
    ?.split("|")
    .slice(1, -1)
    .map((c) => c.trim());
}

describe.skipIf(skipReason() !== undefined)("bench smoke", () => {
  it(
    "prints a table with a positive switch throughput, latency and idle CPU",
    { timeout: 120_000 },
    async () => {
      expect(
        existsSync(join(ROOT, "dist", "test", "kit", "netns", "index.js")),
        "dist/ is missing: npx tsc -p tsconfig.build.json",
      ).toBe(true);
      const out = await runBench(["--quick", "--only", "switch", "--no-save"], 100_000);
      expect(out.code, `bench failed:\n${out.stderr}\n${out.stdout}`).toBe(0);
      expect(out.stdout).toMatch(/^\| test \| switch \|$/m);

      const tcp = row(out.stdout, "TCP 1 stream across nodes");
      expect(tcp, out.stdout).toBeDefined();
      expect(Number(tcp![1])).toBeGreaterThan(0);

      const local = row(out.stdout, "TCP 1 stream, two pods on one node");
      expect(Number(local![1])).toBeGreaterThan(0);
      const udp = row(out.stdout, "UDP 64 B received");
      expect(Number(udp![1])).toBeGreaterThan(0);
      const rtt = row(out.stdout, "ping RTT across nodes");
      expect(Number(rtt![1])).toBeGreaterThan(0);
      for (const label of [
        "UDP 64 B request/response across nodes, median RTT",
        "TCP 64 B request/response on one node, transactions",
      ]) {
        expect(Number(row(out.stdout, label)?.[1]), label).toBeGreaterThan(0);
      }
      // The idle figures are there (a share of a core, zero when nothing polls or runs).
      const quiet = row(out.stdout, "data-plane threads, no traffic");
      expect(Number(quiet?.[1])).toBeGreaterThanOrEqual(0);
      expect(out.stdout).toContain("open vswitch");
      // How much of the run the hypervisor took, so that disturbed samples can be read as such.
      expect(out.stdout).toMatch(
        /^host steal: (under 5% in every sample|\d+ of \d+ samples at 5% or more \(worst [\d.]+%: .+\); read those rows loosely)$/m,
      );
    },
  );

  it.skipIf(ovsSkipReason() !== undefined)(
    "measures Open vSwitch's userspace datapath briefly",
    { timeout: 40_000 },
    async () => {
      const out = await runBench(["--quick", "--only", "ovs", "--tests", "tcp1,ping", "--no-save"], 30_000);
      expect(out.code, `bench failed:\n${out.stderr}\n${out.stdout}`).toBe(0);
      expect(out.stdout).toMatch(/^\| test \| ovs \|$/m);
      expect(out.stdout).toContain("open vswitch userspace datapath: measured");

      const tcp = row(out.stdout, "TCP 1 stream across nodes");
      expect(tcp, out.stdout).toBeDefined();
      expect(Number(tcp![1])).toBeGreaterThan(0);
      const rtt = row(out.stdout, "ping RTT across nodes");
      expect(Number(rtt![1])).toBeGreaterThan(0);
      // ovs-vswitchd's own CPU time is found and counted.
      const dp = row(out.stdout, "data-plane process CPU per Gbit, TCP 1 stream");
      expect(Number(dp![1])).toBeGreaterThan(0);
    },
  );
});

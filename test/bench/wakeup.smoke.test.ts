/**
 * Smoke test of bench/wakeup.c, the measurement of what a thread wake-up costs after an idle gap
 * (bench/README.md, "Latency and the poll window"): it builds with warnings on and prints one
 * round trip line per gap asked for. Checks that it works, not how fast the machine is.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";

const SOURCE = fileURLToPath(new URL("../../bench/wakeup.c", import.meta.url));

describe("bench/wakeup.c", () => {
  const dir = mkdtempSync(join(tmpdir(), "overlay-wakeup-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("builds and prints a round trip for each gap", () => {
    const bin = join(dir, "wakeup");
    execFileSync("cc", ["-O2", "-Wall", "-Wextra", "-Werror", "-pthread", "-o", bin, SOURCE], {
      stdio: "pipe",
    });
    const out = execFileSync(bin, ["1000", "0"], { encoding: "utf8", timeout: 30_000 });
    const lines = out.trim().split("\n");
    expect(lines, out).toHaveLength(2);
    lines.forEach((line, i) => {
      const m = /^gap +(\d+) us: round trip \(two wake-ups\) median +([\d.]+) us/.exec(line);
      expect(m, line).not.toBeNull();
      expect(Number(m?.[1])).toBe([1000, 0][i]);
      expect(Number(m?.[2])).toBeGreaterThan(0);
    });
  });
});

/**
 * The packet threads' poll window, rule by rule: native/test/poll_window_test.cc, built with the
 * compiler that builds the addon (C++20, warnings as errors) and run. Each rule prints a line;
 * the test fails with those lines when any rule is broken or the file does not compile.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";

const SOURCE = fileURLToPath(new URL("../../native/test/poll_window_test.cc", import.meta.url));
const RULES = 9;

describe("the poll window (native/poll_window.h)", () => {
  const dir = mkdtempSync(join(tmpdir(), "overlay-pollwindow-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("keeps every rule", () => {
    const bin = join(dir, "poll_window_test");
    execFileSync("c++", ["-std=c++20", "-Wall", "-Wextra", "-Werror", "-O1", SOURCE, "-o", bin], {
      stdio: "pipe",
    });
    const r = spawnSync(bin, { encoding: "utf8" });
    expect(r.status, r.stdout + r.stderr).toBe(0);
    const lines = r.stdout.split("\n").filter((l) => l.startsWith("ok ") || l.startsWith("FAIL"));
    expect(
      lines.filter((l) => l.startsWith("ok ")),
      r.stdout,
    ).toHaveLength(RULES);
  });
});

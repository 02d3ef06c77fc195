/**
 * The data-plane tests (test/dataplane) against the addon built with ASan + UBSan:
 * `native/sanitize/run-tests.sh` builds it into native/sanitize/out/ (build/ is left alone),
 * preloads the ASan runtime into the test runner and loads the addon through OVERLAY_ADDON.
 * Fails on any failed test, on any sanitizer report, and when the tests skipped.
 */
import { execFile, execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { isAbsolute } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { isRoot } from "../kit/netns/index.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const PACKAGES = "clang libclang-rt-14-dev";

function skipReason(): string | undefined {
  const why = isRoot() ? undefined : "the data-plane tests need root (namespaces, TAP devices)";
  if (why) console.log(`test/fuzz/sanitize.test.ts: skipped, ${why}`);
  return why;
}

function toolchainProblem(): string | undefined {
  let runtime = "";
  try {
    runtime = execFileSync("clang", ["-print-file-name=libclang_rt.asan-x86_64.so"], {
      encoding: "utf8",
    }).trim();
  } catch {
    return `clang is not installed; install the Debian packages ${PACKAGES}`;
  }
  if (!isAbsolute(runtime) || !existsSync(runtime)) {
    return `the ASan runtime (libclang_rt.asan) is missing; install the Debian packages ${PACKAGES}`;
  }
  return undefined;
}

/** The environment without colours, so the output can be matched. */
function plainEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: "1" };
  delete env.FORCE_COLOR;
  return env;
}

describe.skipIf(skipReason())("data plane under ASan and UBSan", () => {
  it("passes every data-plane test with no sanitizer report", async () => {
    const problem = toolchainProblem();
    expect(problem, problem).toBeUndefined();
    // One test file at a time: the outer run keeps the other core busy.
    const args = ["native/sanitize/run-tests.sh", "test/dataplane", "--maxWorkers=1", "--minWorkers=1"];
    const res = await new Promise<{ code: number | null; output: string }>((resolve) => {
      execFile(
        "bash",
        args,
        {
          cwd: ROOT,
          env: plainEnv(),
          timeout: 420_000,
          killSignal: "SIGKILL",
          encoding: "utf8",
          maxBuffer: 64 << 20,
        },
        (error, stdout, stderr) => {
          const code = error ? (typeof error.code === "number" ? error.code : null) : 0;
          resolve({ code, output: stdout + stderr });
        },
      );
    });
    const report = `native/sanitize/run-tests.sh exited with ${res.code}\n${res.output.slice(-8000)}`;
    expect(res.code, report).toBe(0);
    expect(res.output, report).toMatch(/Tests\s+\d+ passed/);
    expect(res.output, report).not.toMatch(/\bfailed\b/);
  }, 450_000);
});

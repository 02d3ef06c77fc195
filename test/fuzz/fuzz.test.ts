/**
 * Short fuzzing run of the packet path: builds the libFuzzer targets of native/fuzz (ASan +
 * UBSan) and runs each for a few seconds from the committed seeds. Fails on any crash,
 * sanitizer report or timeout, with the report in the message. A longer run is
 * `native/fuzz/run.sh 600` (see test/fuzz/README.md).
 */
import { execFile, execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { isAbsolute, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const SECONDS_PER_TARGET = 20;
const PACKAGES = "clang libclang-rt-14-dev";

interface Output {
  code: number | null;
  output: string;
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<Output> {
  return new Promise((resolve) => {
    execFile(
      cmd,
      args,
      { cwd: ROOT, env, timeout: timeoutMs, killSignal: "SIGKILL", encoding: "utf8", maxBuffer: 16 << 20 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === "number" ? error.code : null) : 0;
        resolve({ code, output: stdout + stderr });
      },
    );
  });
}

/** Why libFuzzer builds cannot work here, or undefined. */
function toolchainProblem(): string | undefined {
  try {
    execFileSync("clang++", ["--version"], { stdio: "ignore" });
  } catch {
    return `clang++ is not installed; install the Debian packages ${PACKAGES}`;
  }
  const lib = execFileSync("clang++", ["-print-file-name=libclang_rt.fuzzer-x86_64.a"], {
    encoding: "utf8",
  }).trim();
  if (!isAbsolute(lib) || !existsSync(lib)) {
    return `libFuzzer (libclang_rt.fuzzer) is missing; install the Debian packages ${PACKAGES}`;
  }
  return undefined;
}

describe("fuzzing the packet path", () => {
  const crashDir = mkdtempSync(join(tmpdir(), "overlay-fuzz-"));
  afterAll(() => rmSync(crashDir, { recursive: true, force: true }));

  it("fuzz_port and fuzz_underlay run without a crash", async () => {
    const problem = toolchainProblem();
    expect(problem, problem).toBeUndefined();
    const env = { ...process.env, FUZZ_CRASH_DIR: crashDir };
    const res = await run("bash", ["native/fuzz/run.sh", String(SECONDS_PER_TARGET)], env, 300_000);
    const crashes = readdirSync(crashDir);
    const report = `native/fuzz/run.sh exited with ${res.code}; crash inputs: ${crashes.join(", ") || "none"}\n${res.output.slice(-6000)}`;
    expect(res.code, report).toBe(0);
    expect(crashes, report).toEqual([]);
    for (const target of ["fuzz_port", "fuzz_underlay"]) {
      expect(res.output, report).toMatch(
        new RegExp(`== ${target}: ${SECONDS_PER_TARGET}s\n(?:.*\n){0,3}stat::number_of_executed_units`),
      );
    }
  }, 330_000);
});

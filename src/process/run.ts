/**
 * Running external commands (ip, tc, nft, nsenter) with a hard timeout, output captured.
 */
import { execFile } from "node:child_process";

export interface RunOptions {
  /** Kill the command (SIGKILL) after this many milliseconds; default 15 s. */
  timeoutMs?: number;
  /** Resolve with the result instead of throwing when the exit code is not 0. */
  allowFailure?: boolean;
  /** Extra environment variables. */
  env?: Record<string, string>;
}

export interface RunResult {
  command: string[];
  stdout: string;
  stderr: string;
  /** Exit code; null when killed by a signal (e.g. the timeout). */
  code: number | null;
  signal: string | null;
  timedOut: boolean;
}

export class CommandError extends Error {
  constructor(readonly result: RunResult) {
    const why = result.timedOut
      ? "timed out"
      : result.code !== null
        ? `exit code ${result.code}`
        : `signal ${String(result.signal)}`;
    const err = result.stderr.trim() || result.stdout.trim();
    super(`${result.command.join(" ")}: ${why}${err ? `: ${err.slice(0, 2000)}` : ""}`);
    this.name = "CommandError";
  }
}

export const DEFAULT_TIMEOUT_MS = 15_000;

export function run(file: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    execFile(
      file,
      [...args],
      {
        timeout: timeoutMs,
        killSignal: "SIGKILL",
        maxBuffer: 64 * 1024 * 1024,
        encoding: "utf8",
        env: options.env ? { ...process.env, ...options.env } : process.env,
      },
      (error, stdout, stderr) => {
        const failure = error as (NodeJS.ErrnoException & { killed?: boolean; signal?: string }) | null;
        if (failure && typeof failure.code === "string") {
          // Spawn failure (ENOENT etc.): the command never ran.
          reject(new Error(`${[file, ...args].join(" ")}: ${failure.message}`));
          return;
        }
        const result: RunResult = {
          command: [file, ...args],
          stdout,
          stderr,
          code: failure ? (typeof failure.code === "number" ? failure.code : null) : 0,
          signal: failure?.signal ?? null,
          timedOut: Boolean(failure?.killed) && failure?.signal === "SIGKILL",
        };
        if (result.code !== 0 && !options.allowFailure) reject(new CommandError(result));
        else resolve(result);
      },
    );
  });
}

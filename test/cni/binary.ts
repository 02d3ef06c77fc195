/**
 * The built plugin binary (build/Release/overlay-cni), run as a runtime runs it: a process with
 * only what the test gives it in its environment (and PATH=/nonexistent, so that nothing on the
 * host can be relied upon), the network configuration on stdin.
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { REPO_ROOT } from "../kit/cluster.js";

export const PLUGIN = join(REPO_ROOT, "build/Release/overlay-cni");

/** Fails with what to run when the binary has not been built. */
export function requirePlugin(path = PLUGIN): void {
  if (!existsSync(path)) {
    throw new Error(`missing ${path}: build it (npm run build, or npx node-gyp rebuild)`);
  }
}

export interface PluginRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** From spawn to exit. */
  ms: number;
}

export type PluginEnv = Record<string, string | undefined>;

/** Runs the plugin; `env` is its whole environment (undefined entries are left out). */
export function execPlugin(
  env: PluginEnv,
  stdin: string | Buffer,
  options: { path?: string; args?: string[]; killAfterMs?: number } = {},
): Promise<PluginRun> {
  const path = options.path ?? PLUGIN;
  requirePlugin(path);
  requirePlugin();
  const clean: Record<string, string> = { PATH: "/nonexistent" };
  for (const [k, v] of Object.entries(env)) if (v !== undefined) clean[k] = v;
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(path, options.args ?? [], { env: clean });
    let stdout = "";
    let stderr = "";
    let exited: { code: number | null; signal: NodeJS.Signals | null; ms: number } | undefined;
    const timer = setTimeout(() => child.kill("SIGKILL"), options.killAfterMs ?? 60_000);
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("exit", (code, signal) => (exited = { code, signal, ms: performance.now() - started }));
    // The plugin may stop reading early (an oversized stdin); its answer is what counts.
    child.stdin.on("error", () => undefined);
    child.on("close", () => {
      clearTimeout(timer);
      const e = exited ?? { code: null, signal: null, ms: performance.now() - started };
      resolve({ code: e.code, signal: e.signal, stdout, stderr, ms: e.ms });
    });
    child.stdin.end(stdin);
  });
}

/** A plugin run as the tests compare it: what it printed and its exit code. */
export interface Outcome {
  stdout: string;
  exitCode: number | null;
}

export async function outcome(env: PluginEnv, stdin: string | Buffer): Promise<Outcome> {
  const r = await execPlugin(env, stdin);
  if (r.stderr !== "") throw new Error(`the plugin wrote to stderr: ${r.stderr}`);
  return { stdout: r.stdout, exitCode: r.code };
}

/**
 * Runs the plugin with the agent's socket at the default path, /run/overlay/agent.sock, without
 * touching the host's: in a private mount namespace, /run is a fresh tmpfs and /run/overlay the
 * folder `socketDir` (which holds the agent's `agent.sock`). Root only (unshare, mount).
 */
export function execPluginAtDefaultSocket(
  socketDir: string,
  env: PluginEnv,
  stdin: string | Buffer,
): Promise<PluginRun> {
  requirePlugin();
  const vars = Object.entries(env)
    .filter((e): e is [string, string] => e[1] !== undefined)
    .map(([k, v]) => `'${k}=${v.replaceAll("'", "'\\''")}'`)
    .join(" ");
  const script =
    `mount -t tmpfs none /run && mkdir /run/overlay && mount --bind '${socketDir}' /run/overlay && ` +
    `exec env -i PATH=/nonexistent ${vars} '${PLUGIN}'`;
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn("unshare", ["--mount", "--propagation", "private", "sh", "-c", script]);
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.stdin.on("error", () => undefined);
    child.on("close", (code, signal) =>
      resolve({ code, signal, stdout, stderr, ms: performance.now() - started }),
    );
    child.stdin.end(stdin);
  });
}

/** A request frame as the plugin sends it (protocol.ts), for tests that speak to the socket. */
export function encodeRequest(env: Record<string, string | Buffer>, stdin: string | Buffer): Buffer {
  const block = Buffer.concat(
    Object.entries(env).map(([k, v]) =>
      Buffer.concat([Buffer.from(`${k}=`), Buffer.from(v), Buffer.from([0])]),
    ),
  );
  const body = Buffer.from(stdin);
  return Buffer.concat([Buffer.from(`OVCNI/1 ${block.length} ${body.length}\n`), block, body]);
}

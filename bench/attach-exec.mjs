/**
 * The container runtime's stand-in for bench/attach.mjs: started inside one node's network
 * namespace (as a runtime runs in its host's), it execs CNI plugins there exactly as a runtime
 * does (an executable, an environment it is given whole, the network configuration on stdin)
 * and times each from exec to exit. Both plugins under comparison are exec'd by this same code,
 * so what it costs to fork and exec is in both columns alike.
 *
 * It is spoken to over the IPC channel its parent opened (stdio fd 3, which `ip netns exec`
 * passes on), one request at a time, each answered with one message carrying the request's id:
 *
 * - `{ type: "exec", id, jobs: [{ file, env, input }], concurrency }`: runs the jobs with at most
 *   `concurrency` in flight; answers `{ type: "done", id, wallMs, runs }`, each run `{ code,
 *   signal, stdout, stderr, ms, startedAt, endedAt }` in the jobs' order. `ms` is from just before
 *   `spawn()` (which forks and execs) to the child's exit; `startedAt`/`endedAt` are wall-clock ms
 *   (`performance.timeOrigin + performance.now()`), `wallMs` from the first spawn to the last exit.
 * - `{ type: "reach", id, job, netnsPath, pingTimeoutSec }`: runs the job (an ADD), reads the
 *   pod's address from its result and at once pings it from the namespace at `netnsPath` (`nsenter
 *   --net ping -D`, one probe every 10 ms until the first reply); answers `{ type: "reached", id,
 *   run, ip, replyAt }`, `replyAt` the wall-clock ms ping printed for its first reply (or null).
 * - `{ type: "ping", id, netnsPath, ip, pingTimeoutSec }`: the same ping alone, to an address
 *   reachable already: what the ping itself takes to start and get its reply (the floor of the
 *   figure above); answers `{ type: "pinged", id, startedAt, replyAt }`.
 * - `{ type: "fetch", id, url }`: an HTTP GET from this namespace (etcd's /metrics, on the
 *   underlay); answers `{ type: "fetched", id, status, text }`.
 *
 * It exits when its parent disconnects. Every child it starts is its own and waited for.
 */
import { spawn } from "node:child_process";
import { performance } from "node:perf_hooks";

const now = () => performance.timeOrigin + performance.now();

/** Runs one job; resolves once its output is read, with the exit timed. */
function execJob(job) {
  return new Promise((resolve) => {
    let stdout = "";
    let stderr = "";
    let endedAt = 0;
    const startedAt = now();
    const t0 = performance.now();
    let ms = 0;
    const child = spawn(job.file, job.args ?? [], { env: job.env, stdio: ["pipe", "pipe", "pipe"] });
    child.once("exit", () => {
      ms = performance.now() - t0;
      endedAt = now();
    });
    child.stdout.setEncoding("utf8").on("data", (d) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d) => (stderr += d));
    child.stdin.on("error", () => undefined);
    child.stdin.end(job.input ?? "");
    child.once("error", (err) => resolve({ code: null, signal: null, stdout, stderr: String(err), ms: 0 }));
    child.once("close", (code, signal) => resolve({ code, signal, stdout, stderr, ms, startedAt, endedAt }));
  });
}

async function pool(jobs, limit) {
  const out = new Array(jobs.length);
  let next = 0;
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (i >= jobs.length) return;
      out[i] = await execJob(jobs[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, jobs.length) }, () => worker()));
  return out;
}

/** ping -D from `netnsPath` every 10 ms until the first reply; its time (wall-clock ms) or null. */
async function firstReply(netnsPath, ip, timeoutSec) {
  const r = await execJob({
    file: "nsenter",
    args: [`--net=${netnsPath}`, "ping", "-n", "-D", "-c", "1", "-i", "0.01", "-W", "1"].concat([
      "-w",
      String(timeoutSec),
      ip,
    ]),
    env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" },
  });
  const m = /^\[(\d+\.\d+)\] \d+ bytes from/m.exec(r.stdout);
  return { startedAt: r.startedAt, replyAt: m ? Number(m[1]) * 1000 : null, output: r.stdout + r.stderr };
}

function podIp(stdout) {
  try {
    const address = JSON.parse(stdout).ips?.[0]?.address;
    return typeof address === "string" ? address.split("/")[0] : undefined;
  } catch {
    return undefined;
  }
}

async function handle(m) {
  if (m.type === "exec") {
    const t0 = performance.now();
    const runs = await pool(m.jobs, m.concurrency ?? 1);
    return { type: "done", id: m.id, wallMs: performance.now() - t0, runs };
  }
  if (m.type === "reach") {
    const run = await execJob(m.job);
    const ip = run.code === 0 ? podIp(run.stdout) : undefined;
    if (ip === undefined) return { type: "reached", id: m.id, run, ip: null, replyAt: null };
    const p = await firstReply(m.netnsPath, ip, m.pingTimeoutSec ?? 10);
    return { type: "reached", id: m.id, run, ip, replyAt: p.replyAt, pingOutput: p.output };
  }
  if (m.type === "ping") {
    const p = await firstReply(m.netnsPath, m.ip, m.pingTimeoutSec ?? 10);
    return { type: "pinged", id: m.id, ...p };
  }
  if (m.type === "fetch") {
    const res = await globalThis.fetch(m.url, { signal: globalThis.AbortSignal.timeout(10_000) });
    return { type: "fetched", id: m.id, status: res.status, text: await res.text() };
  }
  return { type: "error", id: m.id, error: `unknown request ${String(m.type)}` };
}

if (process.send === undefined) {
  process.stderr.write("bench/attach-exec.mjs is started by bench/attach.mjs (it needs an IPC channel)\n");
  process.exit(2);
}
process.on("message", (m) => {
  handle(m).then(
    (reply) => process.send?.(reply),
    (err) => process.send?.({ type: "error", id: m.id, error: String(err?.stack ?? err) }),
  );
});
process.on("disconnect", () => process.exit(0));

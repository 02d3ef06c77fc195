/**
 * Request/response latency inside a world (`sockperf` server and ping-pong) and the CPU time of a
 * process's threads by name (`/proc/<pid>/task/<tid>/stat`), which the latency benchmark and the
 * poll-window tests read together. Every command runs inside one of the world's namespaces.
 */
import { readdirSync, readFileSync } from "node:fs";
import { checkTarget, waitForListen } from "./measure.js";
import type { NsProcess, World } from "./world.js";

/** Starts `sockperf server` on `ip`:`port` inside `ns` (UDP, or TCP with `tcp`); stop() ends it. */
export async function sockperfServer(
  world: World,
  ns: string,
  ip: string,
  options: { port?: number; tcp?: boolean } = {},
): Promise<{ process: NsProcess; stop(): Promise<void> }> {
  checkTarget(ip);
  const port = options.port ?? 11111;
  const args = ["server", "-i", ip, "-p", String(port)];
  if (options.tcp) args.push("--tcp");
  const proc = world.start(ns, "sockperf", args);
  try {
    await Promise.race([
      waitForListen(world, ns, port, 5000, options.tcp ? "tcp" : "udp"),
      proc.exited.then((s) => {
        throw new Error(`sockperf server exited early (${JSON.stringify(s)}): ${proc.stderr || proc.stdout}`);
      }),
    ]);
  } catch (e) {
    await proc.stop();
    throw e;
  }
  return { process: proc, stop: async () => void (await proc.stop()) };
}

export interface SockperfResult {
  /** Round-trip percentiles over the measured (valid) part of the run, microseconds. */
  medianUs: number;
  p99Us: number;
  avgUs: number;
  maxUs: number;
  /** Exchanges completed per second of the measured part. */
  transactionsPerSec: number;
  observations: number;
  output: string;
}

/** Parses `sockperf ping-pong --full-rtt` output (sockperf 3.7). */
export function parseSockperf(output: string): SockperfResult {
  // eslint-disable-next-line no-control-regex
  const text = output.replace(/\x1b\[[0-9;]*m/g, "");
  const num = (re: RegExp): number | undefined => {
    const m = re.exec(text);
    return m ? Number(m[1]) : undefined;
  };
  const valid = /\[Valid Duration\] RunTime=([\d.]+) sec; SentMessages=(\d+); ReceivedMessages=(\d+)/.exec(
    text,
  );
  const median = num(/percentile 50\.000 =\s*([\d.]+)/);
  const p99 = num(/percentile 99\.000 =\s*([\d.]+)/);
  if (!valid || median === undefined || p99 === undefined) {
    throw new Error(`sockperf: no result in its output:\n${text.trim()}`);
  }
  const seconds = Number(valid[1]);
  const received = Number(valid[3]);
  return {
    medianUs: median,
    p99Us: p99,
    avgUs: num(/avg-rtt=([\d.]+)/) ?? NaN,
    maxUs: num(/<MAX> observation =\s*([\d.]+)/) ?? NaN,
    transactionsPerSec: seconds > 0 ? received / seconds : 0,
    observations: num(/Total (\d+) observations/) ?? received,
    output: text,
  };
}

/**
 * `sockperf ping-pong` from `ns` to a server at `ip`: `msgSize`-byte messages (default 64), one
 * in flight, for `seconds`; at most `mps` messages a second when given (else as fast as replies
 * come back). Round trips are full (--full-rtt), not halved.
 */
export async function sockperfPingPong(
  world: World,
  ns: string,
  ip: string,
  options: { port?: number; tcp?: boolean; seconds?: number; msgSize?: number; mps?: number } = {},
): Promise<SockperfResult> {
  checkTarget(ip);
  const seconds = options.seconds ?? 2;
  const args = ["ping-pong", "-i", ip, "-p", String(options.port ?? 11111), "-t", String(seconds)];
  args.push("-m", String(options.msgSize ?? 64), "--full-rtt");
  if (options.tcp) args.push("--tcp");
  if (options.mps !== undefined) args.push("--mps", String(options.mps));
  const r = await world.exec(ns, "sockperf", args, { allowFailure: true, timeoutMs: (seconds + 20) * 1000 });
  return parseSockperf(r.stdout + r.stderr);
}

/** The thread ids of process `pid` whose name starts with `namePrefix` (/proc/<pid>/task/<tid>/comm). */
export function threadIds(pid: number | "self", namePrefix: string): string[] {
  const dir = `/proc/${pid}/task`;
  return readdirSync(dir).filter((tid) => {
    try {
      return readFileSync(`${dir}/${tid}/comm`, "utf8").startsWith(namePrefix);
    } catch {
      return false; // the thread ended meanwhile
    }
  });
}

/**
 * CPU seconds (user + system) of the threads of process `pid` whose name starts with
 * `namePrefix`, from /proc/<pid>/task/<tid>/{comm,stat}; e.g. the switch's packet threads
 * ("overlay-pkt"); with `only`, of those of these thread ids alone (one switch's, when a process
 * holds several). Threads that ended are not counted.
 */
export function threadCpuSeconds(
  pid: number | "self",
  namePrefix: string,
  ticksPerSecond = 100,
  only?: ReadonlySet<string>,
): number {
  let total = 0;
  const dir = `/proc/${pid}/task`;
  for (const tid of readdirSync(dir)) {
    if (only && !only.has(tid)) continue;
    try {
      if (!readFileSync(`${dir}/${tid}/comm`, "utf8").startsWith(namePrefix)) continue;
      const stat = readFileSync(`${dir}/${tid}/stat`, "utf8");
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      // utime and stime are fields 14 and 15 of stat(5); the slice starts at field 3.
      total += (Number(f[11]) + Number(f[12])) / ticksPerSecond;
    } catch {
      // the thread ended meanwhile
    }
  }
  return total;
}

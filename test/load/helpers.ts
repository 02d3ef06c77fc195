/**
 * Load on a LocalCluster: bounded-concurrency pools of CNI ADD and DEL through the plugin binary,
 * timings of each call, convergence (pod created -> reachable from a pod on another node) read
 * from ping's own reply timestamps, and the reachability matrix of a sample of pods.
 */
import { expect } from "vitest";
import { execIn, type ExecResult, type LocalCluster, type Pod } from "../kit/cluster.js";
import { show } from "../e2e/cluster.js";
import type { EndpointJson } from "../e2e/scenario.js";

/** Runs `fn` over `items` with at most `limit` calls in flight; results in the items' order. */
export async function pool<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    for (;;) {
      const i = next++;
      if (i >= items.length) return;
      out[i] = await fn(items[i] as T, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, () => worker()));
  return out;
}

export interface Timed<T> {
  value: T;
  /** Date.now() when the call started and when it returned. */
  startedAt: number;
  endedAt: number;
  ms: number;
}

export async function timed<T>(fn: () => Promise<T>): Promise<Timed<T>> {
  const startedAt = Date.now();
  const value = await fn();
  const endedAt = Date.now();
  return { value, startedAt, endedAt, ms: endedAt - startedAt };
}

export interface Summary {
  n: number;
  min: number;
  median: number;
  p95: number;
  max: number;
}

/** Nearest-rank percentiles of `values` (ms). */
export function summarize(values: readonly number[]): Summary {
  const s = [...values].sort((a, b) => a - b);
  const at = (p: number): number =>
    s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))] ?? NaN;
  return { n: s.length, min: s[0] ?? NaN, median: at(0.5), p95: at(0.95), max: s[s.length - 1] ?? NaN };
}

export function formatSummary(s: Summary, unit = "ms"): string {
  return `n=${s.n} median ${s.median} ${unit}, p95 ${s.p95} ${unit}, min ${s.min}, max ${s.max}`;
}

/** Runs a command inside the pod's sandbox. */
export function inPod(
  c: LocalCluster,
  pod: Pod,
  command: string,
  args: readonly string[],
  timeoutMs = 20_000,
): Promise<ExecResult> {
  return execIn(pod.ns, command, args, { timeoutMs });
}

/**
 * Makes the pod's kernel retry ARP every 20 ms instead of every second, so a ping that starts
 * before the overlay knows its target is answered as soon as the switch can answer, and the
 * convergence measured is the overlay's, not the neighbour table's retry timer.
 */
export async function fastArp(c: LocalCluster, pod: Pod): Promise<void> {
  const r = await inPod(c, pod, "sysctl", [
    "-qw",
    `net.ipv4.neigh.${pod.ifName}.retrans_time_ms=20`,
    `net.ipv4.neigh.${pod.ifName}.mcast_solicit=200`,
    `net.ipv4.neigh.${pod.ifName}.ucast_solicit=200`,
  ]);
  expect(r.code, show(r)).toBe(0);
}

/**
 * Pings `ip` from `from` every 10 ms until the first reply, for at most `timeoutSec`; returns the
 * wall-clock time (ms since the epoch) of that reply as ping printed it, or undefined.
 */
export async function firstReplyAt(
  c: LocalCluster,
  from: Pod,
  ip: string,
  timeoutSec = 15,
): Promise<number | undefined> {
  const r = await inPod(
    c,
    from,
    "ping",
    ["-n", "-D", "-c", "1", "-i", "0.01", "-W", "1", "-w", String(timeoutSec), ip],
    (timeoutSec + 5) * 1000,
  );
  const m = /^\[(\d+\.\d+)\] \d+ bytes from/m.exec(r.stdout);
  return m ? Math.round(Number(m[1]) * 1000) : undefined;
}

export interface PingOutcome {
  sent: number;
  received: number;
  output: string;
}

/** `count` echo requests 50 ms apart, each waited for at most `waitSec`. */
export async function pingPod(
  c: LocalCluster,
  from: Pod,
  ip: string,
  count: number,
  waitSec = 1,
): Promise<PingOutcome> {
  const deadline = Math.ceil(count * 0.05 + waitSec);
  const r = await inPod(c, from, "ping", [
    "-n",
    "-q",
    "-c",
    String(count),
    "-i",
    "0.05",
    "-W",
    String(waitSec),
    "-w",
    String(deadline),
    ip,
  ]);
  const m = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(r.stdout);
  if (!m) throw new Error(`ping ${ip} from ${from.name} printed no summary: ${show(r)}`);
  return { sent: Number(m[1]), received: Number(m[2]), output: r.stdout + r.stderr };
}

export interface MatrixResult {
  pairs: number;
  reached: string[];
  blocked: string[];
  /** Pairs whose outcome was not the wanted one. */
  wrong: string[];
}

/**
 * Pings every ordered pair of `pods`: pairs in the same Kubernetes namespace must answer (a first
 * reply within 5 s, then at least 1 of 3), pairs across namespaces must not (0 of 5 within 1 s).
 */
export async function reachabilityMatrix(
  c: LocalCluster,
  pods: readonly Pod[],
  concurrency = 12,
): Promise<MatrixResult> {
  const pairs: [Pod, Pod][] = [];
  for (const a of pods) for (const b of pods) if (a !== b) pairs.push([a, b]);
  const result: MatrixResult = { pairs: pairs.length, reached: [], blocked: [], wrong: [] };
  await pool(pairs, concurrency, async ([a, b]) => {
    const label = `${a.namespace}/${a.name}@${a.node.name} -> ${b.namespace}/${b.name}@${b.node.name} (${b.ip})`;
    if (a.namespace === b.namespace) {
      const first = await firstReplyAt(c, a, b.ip, 5);
      const r = first === undefined ? undefined : await pingPod(c, a, b.ip, 3);
      // Reachability needs evidence, not perfection: a starved machine may lose one reply.
      if (r !== undefined && r.received > 0) result.reached.push(label);
      else
        result.wrong.push(`${label}: expected replies, got ${r ? `${r.received}/${r.sent}` : "none in 5 s"}`);
    } else {
      const r = await pingPod(c, a, b.ip, 5, 1);
      if (r.received === 0 && r.sent >= 5) result.blocked.push(label);
      else result.wrong.push(`${label}: expected no reply, got ${r.received}/${r.sent}`);
    }
  });
  return result;
}

/** `dctl network overlay endpoints <network> -o json`. */
export async function endpointsOf(c: LocalCluster, network = "red"): Promise<EndpointJson[]> {
  const r = await c.dctl(["network", "overlay", "endpoints", network, "-o", "json"], { timeoutMs: 60_000 });
  expect(r.code, show(r)).toBe(0);
  return JSON.parse(r.stdout) as EndpointJson[];
}

export interface CheckJson {
  network: string;
  consistent: boolean;
  counts: { endpoints: number; addresses: number; blocks: number };
  issues: unknown[];
}

/** `dctl network overlay check <network> -o json`, whatever its exit code. */
export async function checkOf(
  c: LocalCluster,
  network = "red",
): Promise<{ r: ExecResult; report: CheckJson }> {
  const r = await c.dctl(["network", "overlay", "check", network, "-o", "json"], { timeoutMs: 60_000 });
  let report: CheckJson;
  try {
    report = JSON.parse(r.stdout) as CheckJson;
  } catch {
    throw new Error(`overlay check printed no JSON: ${show(r)}`);
  }
  return { r, report };
}

/** Values that occur more than once. */
export function duplicates(values: readonly string[]): string[] {
  const seen = new Set<string>();
  const dup = new Set<string>();
  for (const v of values) {
    if (seen.has(v)) dup.add(v);
    seen.add(v);
  }
  return [...dup];
}

/**
 * How dctl reaches node agents: each agent publishes where it serves its operator API in its
 * node record (NodeRecord.apiAddress, `overlayd --metrics-listen`), and dctl asks it over HTTP
 * with a short timeout. An agent that cannot be asked, or does not answer in time, comes back as
 * a problem in words, never as a hang or a thrown error.
 */
import { invalid } from "../model/errors.js";
import type { NodeRecord } from "../model/records.js";

/** How long dctl waits for an agent by default. */
export const AGENT_TIMEOUT_MS = 2000;

export type AgentAnswer<T> = { ok: true; value: T; ms: number } | { ok: false; problem: string };

function seconds(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${(ms / 1000).toFixed(1)} s`;
}

/** The cause's code of a failed fetch (ECONNREFUSED, EHOSTUNREACH, ...), when there is one. */
function causeCode(err: unknown): string | undefined {
  const cause = (err as { cause?: { code?: unknown } } | undefined)?.cause;
  return typeof cause?.code === "string" ? cause.code : undefined;
}

/**
 * Asks the agent of `node` for `path` (GET, or POST with `body` as JSON, or `method`); resolves within
 * `timeoutMs` whatever the agent does, or at once when `signal` aborts.
 */
export async function askAgent<T>(
  node: NodeRecord,
  path: string,
  options: {
    body?: unknown;
    method?: "GET" | "POST" | "DELETE";
    timeoutMs?: number;
    signal?: AbortSignal;
  } = {},
): Promise<AgentAnswer<T>> {
  const address = node.apiAddress;
  if (address === undefined) {
    return {
      ok: false,
      problem: `the agent on ${node.name} publishes no API address (start overlayd with --metrics-listen IP:PORT)`,
    };
  }
  const timeoutMs = options.timeoutMs ?? AGENT_TIMEOUT_MS;
  const signals = [AbortSignal.timeout(timeoutMs), ...(options.signal ? [options.signal] : [])];
  const started = performance.now();
  try {
    const res = await fetch(`http://${address}${path}`, {
      method: options.method ?? (options.body === undefined ? "GET" : "POST"),
      ...(options.body === undefined
        ? {}
        : { body: JSON.stringify(options.body), headers: { "content-type": "application/json" } }),
      signal: AbortSignal.any(signals),
    });
    const text = await res.text();
    const ms = performance.now() - started;
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      return {
        ok: false,
        problem: `the agent on ${node.name} at ${address} answered ${res.status} with no JSON`,
      };
    }
    if (!res.ok) {
      const error = (parsed as { error?: unknown } | null)?.error;
      return {
        ok: false,
        problem: `the agent on ${node.name} at ${address} answered ${res.status}: ${typeof error === "string" ? error : text.trim()}`,
      };
    }
    return { ok: true, value: parsed as T, ms };
  } catch (err) {
    const name = (err as { name?: unknown } | undefined)?.name;
    if (name === "TimeoutError" || (name === "AbortError" && !(options.signal?.aborted ?? false))) {
      return {
        ok: false,
        problem: `the agent on ${node.name} did not answer at ${address} within ${seconds(timeoutMs)}`,
      };
    }
    if (name === "AbortError") return { ok: false, problem: "interrupted" };
    const code = causeCode(err);
    if (code === "ECONNREFUSED") {
      return {
        ok: false,
        problem: `nothing listens at ${address} on ${node.name}: is overlayd running there, with --metrics-listen?`,
      };
    }
    return {
      ok: false,
      problem: `cannot reach the agent on ${node.name} at ${address}: ${code ?? (err instanceof Error ? err.message : String(err))}`,
    };
  }
}

/** --timeout SECONDS as milliseconds. */
export function timeoutOption(value: unknown): number {
  if (value === undefined) return AGENT_TIMEOUT_MS;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0 || n > 60)
    throw invalid(`invalid --timeout "${String(value)}": expected seconds, more than 0 and at most 60`);
  return Math.round(n * 1000);
}

export const TIMEOUT_FLAG = "--timeout <seconds>";
export const TIMEOUT_HELP = "how long to wait for each node's agent (default 2)";

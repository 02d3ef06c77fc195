/**
 * The Grafana dashboard (deploy/grafana/overlay-switch.json) asks only for metrics the agent
 * exports: every metric name in every query (panels and template variables) must be in the
 * agent's own registry (createMetrics, with prom-client's default process metrics), as
 * Prometheus exposes it (a histogram as NAME_bucket, NAME_sum, NAME_count). No root needed.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { createMetrics } from "../../src/agent/metrics.js";
import { REPO_ROOT } from "../kit/cluster.js";

const DASHBOARD = join(REPO_ROOT, "deploy/grafana/overlay-switch.json");

/** PromQL words that are not metric names. */
const WORDS = new Set([
  "by",
  "without",
  "on",
  "ignoring",
  "group_left",
  "group_right",
  "bool",
  "and",
  "or",
  "unless",
  "offset",
  "sum",
  "min",
  "max",
  "avg",
  "count",
  "stddev",
  "stdvar",
  "topk",
  "bottomk",
  "quantile",
  "count_values",
  "rate",
  "irate",
  "increase",
  "delta",
  "idelta",
  "histogram_quantile",
  "label_values",
  "abs",
  "clamp_min",
  "clamp_max",
  "time",
  "vector",
  "scalar",
  "instance",
  "le",
]);

/** The metric names a query reads: identifiers outside label matchers, groupings and ranges. */
export function metricNames(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""') // strings
    .replace(/\{[^}]*\}/g, " ") // label matchers
    .replace(/\[[^\]]*\]/g, " ") // ranges
    .replace(/\b(by|without|on|ignoring)\s*\([^)]*\)/g, " "); // groupings
  const names = new Set<string>();
  for (const m of stripped.matchAll(/[A-Za-z_:][A-Za-z0-9_:]*/g)) {
    const word = m[0];
    const after = stripped.slice((m.index ?? 0) + word.length).trimStart();
    if (WORDS.has(word) || after.startsWith("(") || word.startsWith("$")) continue;
    if (stripped[(m.index ?? 1) - 1] === "$") continue; // a Grafana variable
    names.add(word);
  }
  return [...names];
}

interface Panel {
  title: string;
  targets?: { expr: string }[];
  panels?: Panel[];
}

function queries(): { where: string; expr: string }[] {
  const d = JSON.parse(readFileSync(DASHBOARD, "utf8")) as {
    panels: Panel[];
    templating: { list: { name: string; query?: string | { query: string } }[] };
  };
  const out: { where: string; expr: string }[] = [];
  const walk = (ps: Panel[]): void => {
    for (const p of ps) {
      for (const t of p.targets ?? []) out.push({ where: `panel "${p.title}"`, expr: t.expr });
      walk(p.panels ?? []);
    }
  };
  walk(d.panels);
  for (const v of d.templating.list) {
    const q = typeof v.query === "string" ? v.query : v.query?.query;
    if (q !== undefined && q.includes("(")) out.push({ where: `variable $${v.name}`, expr: q });
  }
  return out;
}

async function exported(): Promise<Set<string>> {
  const registry = createMetrics({
    state: () => ({
      ready: true,
      following: true,
      storeTroubles: 0,
      remoteEndpoints: 0,
      pollUs: 100,
      peers: 0,
      ports: [],
      offloads: [],
    }),
    counters: () => undefined,
    onRequestDone: () => undefined,
  });
  const names = new Set<string>();
  for (const m of await registry.getMetricsAsJSON()) {
    if (String(m.type) === "histogram")
      for (const s of ["_bucket", "_sum", "_count"]) names.add(`${m.name}${s}`);
    else names.add(m.name);
  }
  return names;
}

describe("the Grafana dashboard", () => {
  it("reads metric names correctly from PromQL", () => {
    expect(
      metricNames(
        'histogram_quantile(0.5, sum by (le) (rate(a_bucket{op="ADD", instance=~"$node"}[$__rate_interval])))',
      ),
    ).toEqual(["a_bucket"]);
    expect(metricNames("sum by (reason) (rate(x_total[5m])) > 0 or y")).toEqual(["x_total", "y"]);
    expect(metricNames("label_values(overlay_agent_ready, instance)")).toEqual(["overlay_agent_ready"]);
  });

  it("asks only for metrics the agent exports, and covers traffic, drops, peers and attach latency", async () => {
    const names = await exported();
    const qs = queries();
    expect(qs.length).toBeGreaterThan(10);
    const unknown = qs.flatMap((q) =>
      metricNames(q.expr)
        .filter((n) => !names.has(n))
        .map((n) => `${q.where}: ${n}`),
    );
    expect(unknown).toEqual([]);
    const used = new Set(qs.flatMap((q) => metricNames(q.expr)));
    for (const n of [
      "overlay_port_received_bytes_total",
      "overlay_underlay_bytes_total",
      "overlay_drops_total",
      "overlay_peers",
      "overlay_cni_request_duration_seconds_bucket",
    ]) {
      expect(used, n).toContain(n);
    }
  });
});

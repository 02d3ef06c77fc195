/**
 * The analysis and the report of the control-plane scale benchmark (bench/scale.mjs): the
 * agent's table against the store's, each churn write matched with the table call that applied
 * it, and the table of figures beside the targets.
 */

export const TARGETS = {
  programmedMs: 3000,
  hwmMb: 300,
  cpuPercent: 10,
  p50Ms: 20,
  p99Ms: 100,
  dctlMs: 3000,
  scaling: 1.5,
};

/** What differs between the agent's table and the store's, named (at most 10 of each). */
export function tableDifference(expected, actualEntries) {
  const actual = new Map(actualEntries);
  const missing = [];
  const wrong = [];
  const stale = [];
  for (const [mac, value] of expected) {
    const have = actual.get(mac);
    if (have === undefined) missing.push(`${mac} ${value}`);
    else if (have !== value) wrong.push(`${mac} is ${have}, store says ${value}`);
  }
  for (const [mac, value] of actual) if (!expected.has(mac)) stale.push(`${mac} ${value}`);
  return {
    missing: missing.length,
    wrong: wrong.length,
    stale: stale.length,
    examples: [
      ...missing.slice(0, 10).map((s) => `missing ${s}`),
      ...wrong.slice(0, 10),
      ...stale.slice(0, 10).map((s) => `stale ${s}`),
    ],
  };
}

// ---- matching writes with table calls -----------------------------------------------------

/** Clocks of two processes may differ by this much; a call this long before a write may be its. */
const CLOCK_SLACK_MS = 2;

/**
 * For each acknowledged write, the first table call after it was sent that added (create) or
 * removed (delete) its MAC. Returns the latencies (call returned - store acknowledged, and call
 * returned - write sent) and the writes no call applied. The acknowledgement's time is when the
 * generator's callback ran: on a busy machine that can be later than the agent's table call, so
 * a latency can be negative (the JSON keeps the minimum).
 */
export function matchWrites(writes, log) {
  /** @type {Map<string, { t: number, kind: "add" | "del" }[]>} */
  const byMac = new Map();
  for (const c of log) {
    for (const mac of c.added) (byMac.get(mac) ?? byMac.set(mac, []).get(mac))?.push({ t: c.t, kind: "add" });
    for (const mac of c.removed)
      (byMac.get(mac) ?? byMac.set(mac, []).get(mac))?.push({ t: c.t, kind: "del" });
  }
  const latencies = [];
  const fromSent = [];
  const unapplied = [];
  for (const w of writes) {
    const hit = (byMac.get(w.mac) ?? []).find((c) => c.kind === w.kind && c.t >= w.tSent - CLOCK_SLACK_MS);
    if (hit === undefined) unapplied.push(w);
    else {
      latencies.push(hit.t - w.tAck);
      fromSent.push(hit.t - w.tSent);
    }
  }
  return { latencies, fromSent, unapplied };
}

/** @param {number[]} values @param {number} p */
export function percentile(values, p) {
  if (values.length === 0) return undefined;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))];
}

function fmt(v, digits = 0) {
  if (v === undefined || v === null || Number.isNaN(v)) return "-";
  return v.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function rows() {
  const failedStart = (r) => (r.start?.ok === false ? "failed" : "-");
  const churnOr = (r, f) => (r.churn === undefined ? failedStart(r) : f(r.churn));
  const dctlCell = (d) =>
    d === undefined ? "-" : d.ok ? fmt(d.ms) : `failed (exit ${d.code}, ${fmt(d.ms)} ms)`;
  return [
    ["endpoints in the store", (r) => fmt(r.endpoints), ""],
    ["remote entries to program (endpoints + gateways)", (r) => fmt(r.expectedRemotes), ""],
    ["cluster written by the generator (s)", (r) => fmt(r.loadMs / 1000, 1), ""],
    ["agent start() returned (ms)", (r) => (r.start?.ok ? fmt(r.start.startMs) : failedStart(r)), ""],
    [
      "agent start -> every remote programmed (ms)",
      (r) => (r.start?.ok ? fmt(r.start.programmedMs) : failedStart(r)),
      `< ${fmt(TARGETS.programmedMs)} at the full pool`,
    ],
    ["RSS when programmed (MB)", (r) => (r.start?.ok ? fmt(r.start.rssMb) : "-"), ""],
    ["VmHWM, start and churn (MB)", (r) => fmt(r.memory?.hwmMb ?? r.start?.hwmMb, 0), `< ${TARGETS.hwmMb}`],
    ["agent CPU idle, before the churn (% of one core)", (r) => fmt(r.idleCpuPercent, 1), ""],
    [
      "agent CPU during churn (% of one core)",
      (r) => churnOr(r, (c) => fmt(c.cpuPercent, 1)),
      `< ${TARGETS.cpuPercent} at 200 events/s`,
    ],
    [
      "of which the benchmark's recorder (% of one core)",
      (r) => churnOr(r, (c) => fmt((c.recorderMs / c.cpuWallMs) * 100, 1)),
      "",
    ],
    [
      "churn writes acknowledged / applied",
      (r) => churnOr(r, (c) => `${fmt(c.written)} / ${fmt(c.applied)}`),
      "",
    ],
    [
      "store write -> table p50 (ms)",
      (r) => churnOr(r, (c) => fmt(c.latencyMs.p50, 1)),
      `< ${TARGETS.p50Ms}`,
    ],
    [
      "store write -> table p99 (ms)",
      (r) => churnOr(r, (c) => fmt(c.latencyMs.p99, 1)),
      `< ${TARGETS.p99Ms}`,
    ],
    ["store write -> table max (ms)", (r) => churnOr(r, (c) => fmt(c.latencyMs.max, 1)), ""],
    ["events never applied", (r) => churnOr(r, (c) => fmt(c.neverApplied)), "0"],
    [
      "remote table = store after churn",
      (r) =>
        r.table === undefined
          ? "-"
          : r.table.equal
            ? `yes (${fmt(r.table.programmed)})`
            : `no: ${r.table.missing} missing, ${r.table.wrong} wrong, ${r.table.stale} stale`,
      "exactly",
    ],
    [
      "departed node: its remotes withdrawn, within (ms)",
      (r) => (r.departed?.withdrawnMs === undefined ? "-" : fmt(r.departed.withdrawnMs)),
      "",
    ],
    [
      "departed node: its records released (s, after a grace of 2 lease TTLs)",
      (r) =>
        r.departed === undefined
          ? "-"
          : r.departed.ok
            ? fmt(r.departed.releasedMs / 1000, 1)
            : `failed: ${r.departed.error}`,
      "all, after the grace",
    ],
    ["dctl endpoints -o json (ms)", (r) => dctlCell(r.dctl?.endpoints), `< ${fmt(TARGETS.dctlMs)}`],
    ["dctl check (ms)", (r) => dctlCell(r.dctl?.check), `< ${fmt(TARGETS.dctlMs)}`],
  ];
}

/** Per-event figures of the largest point over the smallest (target: within 1.5x). */
export function scaling(results) {
  const ok = results.filter((r) => r.churn !== undefined && r.churn.applied > 0);
  if (ok.length < 2) return undefined;
  const find = (label) => ok.find((r) => r.point === label);
  const small = find("50x100") ?? ok.reduce((a, b) => (a.expectedRemotes <= b.expectedRemotes ? a : b));
  const large = find("256x250") ?? ok.reduce((a, b) => (a.expectedRemotes >= b.expectedRemotes ? a : b));
  if (small === large) return undefined;
  const ratio = (f) => {
    const a = f(small);
    const b = f(large);
    return a > 0 && b !== undefined ? b / a : undefined;
  };
  return {
    of: large.point,
    over: small.point,
    cpu: ratio((r) => r.churn.cpuPercent),
    p50: ratio((r) => r.churn.latencyMs.p50),
    p99: ratio((r) => r.churn.latencyMs.p99),
  };
}

export function render(meta, results) {
  let out = `\nControl plane at scale: one agent (${meta.agentNode}) on etcd, the other nodes simulated; churn ${meta.options.churnRate} events/s for ${meta.options.churnSeconds} s\n`;
  out += `${meta.machine.cpus} x ${meta.machine.cpuModel}, load ${meta.machine.loadavgStart.toFixed(1)} -> ${meta.machine.loadavgEnd.toFixed(1)}, commit ${meta.commit}, Node ${process.version}, ${meta.etcd}\n\n`;
  out += `| figure | ${results.map((r) => r.point).join(" | ")} | target |\n`;
  out += `|---|${results.map(() => "---|").join("")}---|\n`;
  for (const [name, cell, target] of rows()) {
    out += `| ${name} | ${results.map((r) => cell(r)).join(" | ")} | ${target} |\n`;
  }
  const s = scaling(results);
  if (s !== undefined) {
    out += `\n| ${s.of} over ${s.over} | ratio | target |\n|---|---|---|\n`;
    out += `| agent CPU during churn | ${fmt(s.cpu, 2)}x | <= ${TARGETS.scaling}x |\n`;
    out += `| store write -> table p50 | ${fmt(s.p50, 2)}x | <= ${TARGETS.scaling}x |\n`;
    out += `| store write -> table p99 | ${fmt(s.p99, 2)}x | <= ${TARGETS.scaling}x |\n`;
  }
  for (const r of results) {
    if (r.failures.length === 0) continue;
    out += `\n${r.point}:\n`;
    for (const f of r.failures) out += `  - ${f}\n`;
    if (r.start?.warnings?.length)
      out += `  agent's last warnings:\n${r.start.warnings.map((w) => `    ${w}`).join("\n")}\n`;
  }
  return out;
}

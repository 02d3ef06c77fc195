/**
 * Rendering of the operator tools' results (drops, trace, status): what the user sees of them,
 * kept out of the commands as format.ts keeps the rest.
 */
import type { DropJson, StatusJson, TraceJson } from "../agent/api.js";
import { json, table, type OutputFormat } from "./format.js";

/** 12:03:04.567 (UTC), as a flow log shows time. */
export function clock(ms: number): string {
  return new Date(ms).toISOString().slice(11, 23);
}

function endpoint(ip: string | null, port: number, protocol: string): string {
  if (ip === null) return "-";
  return (protocol === "tcp" || protocol === "udp") && port !== 0 ? `${ip}:${port}` : ip;
}

export interface NodeDrop extends DropJson {
  node: string;
}

export const DROP_HEADERS = [
  "TIME",
  "NODE",
  "REASON",
  "FROM",
  "VNI",
  "PROTO",
  "SOURCE",
  "DESTINATION",
  "COUNT",
];

export function dropRow(e: NodeDrop): string[] {
  return [
    clock(e.timeMs),
    e.node,
    e.reason,
    e.from,
    e.vni === 0 ? "-" : String(e.vni),
    e.protocol,
    endpoint(e.src, e.srcPort, e.protocol),
    endpoint(e.dst, e.dstPort, e.protocol),
    String(e.count),
  ];
}

export function drops(events: readonly NodeDrop[], format: OutputFormat, nodes: unknown): string {
  if (format === "json") return json({ nodes, events });
  if (events.length === 0) return "No drops recorded.\n";
  return table(DROP_HEADERS, events.map(dropRow));
}

/** One event per line, for --follow: the table's row, or one JSON object. */
export function dropLine(e: NodeDrop, format: OutputFormat, widths: readonly number[]): string {
  if (format === "json") return `${JSON.stringify(e)}\n`;
  const cells = dropRow(e);
  return (
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd((widths[i] ?? 0) + 3)))
      .join("")
      .trimEnd() + "\n"
  );
}

/** Column widths for --follow, wide enough for most rows so that columns line up. */
export const FOLLOW_WIDTHS = [12, 8, 18, 16, 5, 5, 21, 21, 5];

export function followHeader(format: OutputFormat): string {
  if (format === "json") return "";
  return (
    DROP_HEADERS.map((h, i) => (i === DROP_HEADERS.length - 1 ? h : h.padEnd((FOLLOW_WIDTHS[i] ?? 0) + 3)))
      .join("")
      .trimEnd() + "\n"
  );
}

// ---- trace ---------------------------------------------------------------------------------

function policyText(t: TraceJson): string {
  const from = t.source.vni;
  const to = t.found.vni;
  switch (t.policy) {
    case "same-vni":
      return `same VNI (${from}): allowed`;
    case "global":
      return `global: VNI ${from} to ${to ?? "-"}, ${t.source.global ? "the source's" : "the destination's"} VNI is global: allowed`;
    case "isolated":
      return `isolated: VNI ${from} and VNI ${to ?? "-"}, neither global: not allowed`;
    default:
      return "-: no destination to apply it to";
  }
}

function foundText(t: TraceJson): string {
  const f = t.found;
  if (f.kind === "none") return `none: the switch knows no endpoint with the address ${t.nextHop.ip}`;
  const what = f.name ?? "an unnamed endpoint";
  if (f.kind === "local") return `local port ${what} on ${f.node ?? "this node"}, VNI ${f.vni ?? "-"}`;
  const peer = f.peerProgrammed === true ? "a programmed peer" : "NOT a programmed peer";
  return `${what} on ${f.node ?? "an unknown node"} behind VTEP ${f.vtep ?? "-"} (${peer}), VNI ${f.vni ?? "-"}`;
}

export function trace(t: TraceJson, format: OutputFormat): string {
  if (format === "json") return json(t);
  const dst = t.destination.port === null ? t.destination.ip : `${t.destination.ip}:${t.destination.port}`;
  const arp = t.arp.answered
    ? `answered with ${t.arp.mac ?? "-"}`
    : `unanswered (${t.arp.drop ?? "-"}): the pod's kernel gets no MAC and sends nothing`;
  const rows = [
    [
      "source",
      `${t.source.pod} ${t.source.ip} on ${t.node}, port ${t.source.port}, VNI ${t.source.vni}${t.source.global ? " (global)" : ""}`,
    ],
    [
      "next hop",
      `${t.nextHop.ip} (${t.nextHop.via === "direct" ? "on the pod's subnet" : "the pod's gateway"})`,
    ],
    ["arp", arp],
    ["destination", foundText(t)],
    ["policy", policyText(t)],
    [
      "verdict",
      t.drop === null
        ? "forwarded"
        : `dropped, counted as ${t.drop}` +
          (t.frameDrop !== null && t.frameDrop !== t.drop ? ` (a frame sent anyway: ${t.frameDrop})` : ""),
    ],
  ];
  const width = Math.max(...rows.map(([k]) => (k ?? "").length));
  return (
    `Trace ${t.source.pod} -> ${dst} (${t.destination.protocol})\n` +
    rows.map(([k, v], i) => `  ${i + 1}  ${(k ?? "").padEnd(width)}  ${v ?? ""}`).join("\n") +
    "\n"
  );
}

// ---- status --------------------------------------------------------------------------------

export interface StoreState {
  url: string;
  reachable: boolean;
  latencyMs: number | null;
  error: string | null;
}

export interface NodeState {
  name: string;
  underlayIp: string | null;
  apiAddress: string | null;
  /** Registered in the store (false: the node holds addresses but its agent's record is gone). */
  registered: boolean;
  agent: StatusJson | null;
  error: string | null;
}

export interface Problem {
  what: string;
  /** The command (or place) that tells more. */
  more: string;
}

export interface ClusterStatus {
  ok: boolean;
  store: StoreState;
  nodes: NodeState[];
  problems: Problem[];
  notes: Problem[];
}

function age(ms: number | null): string {
  if (ms === null) return "-";
  return ms < 10_000 ? `${(ms / 1000).toFixed(1)}s` : `${Math.round(ms / 1000)}s`;
}

export function status(s: ClusterStatus, format: OutputFormat): string {
  if (format === "json") return json(s);
  const store = s.store.reachable
    ? `reachable, ${(s.store.latencyMs ?? 0).toFixed(1)} ms`
    : `UNREACHABLE: ${s.store.error ?? ""}`;
  let out = `Store: ${s.store.url} ${store}\n`;
  if (s.nodes.length > 0) {
    out +=
      "\n" +
      table(
        ["NODE", "AGENT", "VERSION", "LEASE", "PEERS", "PODS", "REMOTE", "OFFLOADS", "DROPS/1M"],
        s.nodes.map((n) => {
          const a = n.agent;
          const agent = !n.registered
            ? "not registered"
            : a === null
              ? n.apiAddress === null
                ? "no API"
                : "no answer"
              : a.ready
                ? a.following
                  ? "ready"
                  : "ready, store lost"
                : "not ready";
          return [
            n.name,
            agent,
            a?.version ?? "-",
            a === null ? "-" : age(a.lease.renewedAgoMs),
            a === null ? "-" : `${a.peers.programmed}/${a.peers.expected}`,
            a === null ? "-" : String(a.endpoints.pods),
            a === null ? "-" : String(a.endpoints.remote),
            a === null ? "-" : a.offloads.length === 0 ? "none" : a.offloads.join(","),
            a?.drops === null || a === null ? "-" : String(a.drops.total),
          ];
        }),
      );
  }
  const list = (title: string, items: readonly Problem[]): string =>
    items.length === 0
      ? ""
      : `\n${title}:\n` + items.map((p) => `  - ${p.what}\n    see: ${p.more}\n`).join("");
  out += list("Problems", s.problems);
  out += list("Notes", s.notes);
  const ready = s.nodes.filter((n) => n.agent?.ready === true).length;
  out += s.ok
    ? `\nOK: store reachable, ${ready} of ${s.nodes.length} node${s.nodes.length === 1 ? "" : "s"} ready\n`
    : `\n${s.problems.length} problem${s.problems.length === 1 ? "" : "s"}\n`;
  return out;
}

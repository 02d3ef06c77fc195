/**
 * Prometheus metrics of a node: the switch's counters (per port, per drop reason, underlay), what
 * the agent has programmed, and the process's own (RSS, CPU, event loop). Every value is read
 * when scraped, from the switch's counters and the agent's status: nothing is counted twice and
 * nothing runs on the packet path.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import type { SwitchCounters } from "../dataplane/switch.js";
import { OFFLOADS } from "../model/records.js";
import type { AgentStatus } from "./agent.js";

export interface MetricsSource {
  state(): AgentStatus;
  /** The switch's counters, or undefined while it is not running. */
  counters(): SwitchCounters | undefined;
  /** Registers a listener called as each CNI request is answered (Agent.onRequestDone). */
  onRequestDone?(listener: (op: string, seconds: number, ok: boolean) => void): void;
}

/** A counter whose value is a total kept elsewhere, set at every scrape. */
function mirror<L extends string>(
  registry: Registry,
  name: string,
  help: string,
  labelNames: readonly L[],
  read: (set: (labels: Record<L, string>, value: number) => void) => void,
): Counter<L> {
  return new Counter<L>({
    name,
    help,
    labelNames,
    registers: [registry],
    collect() {
      this.reset();
      read((labels, value) => this.inc(labels, value));
    },
  });
}

export function createMetrics(source: MetricsSource): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  // One switch snapshot per scrape, shared by every metric read in it.
  let snapshot: { at: number; counters: SwitchCounters | undefined } | undefined;
  const counters = (): SwitchCounters | undefined => {
    const now = Date.now();
    if (snapshot === undefined || now - snapshot.at > 100)
      snapshot = { at: now, counters: source.counters() };
    return snapshot.counters;
  };
  const portLabels = (): Map<number, { port: string; kind: string; network: string }> =>
    new Map(source.state().ports.map((p) => [p.id, { port: p.name, kind: p.kind, network: p.network }]));

  const perPort =
    (field: "inPackets" | "inBytes" | "outPackets" | "outBytes") =>
    (set: (labels: Record<"port" | "kind" | "network", string>, value: number) => void) => {
      const c = counters();
      if (c === undefined) return;
      const names = portLabels();
      for (const p of c.ports) {
        const l = names.get(p.id) ?? { port: p.name, kind: "unknown", network: "" };
        set(l, p[field]);
      }
    };
  const portLabelNames = ["port", "kind", "network"] as const;
  const portMetrics = [
    [
      "overlay_port_received_packets_total",
      "inPackets",
      "Frames the switch took in from a port (what the pod sent), as wire segments",
    ],
    [
      "overlay_port_received_bytes_total",
      "inBytes",
      "Bytes the switch took in from a port, as wire segments",
    ],
    ["overlay_port_sent_packets_total", "outPackets", "Frames the switch delivered to a port"],
    ["overlay_port_sent_bytes_total", "outBytes", "Bytes the switch delivered to a port"],
  ] as const;
  for (const [name, field, help] of portMetrics) mirror(registry, name, help, portLabelNames, perPort(field));
  mirror(
    registry,
    "overlay_drops_total",
    "Frames and datagrams the switch dropped, by reason",
    ["reason"] as const,
    (set) => {
      const c = counters();
      if (c === undefined) return;
      for (const [reason, n] of Object.entries(c.drops)) set({ reason }, n);
    },
  );
  const underlay =
    (pick: (u: SwitchCounters["underlay"]) => [string, number][]) =>
    (set: (labels: Record<"direction", string>, value: number) => void) => {
      const c = counters();
      if (c === undefined) return;
      for (const [direction, n] of pick(c.underlay)) set({ direction }, n);
    };
  mirror(
    registry,
    "overlay_underlay_datagrams_total",
    "VXLAN datagrams on the underlay",
    ["direction"] as const,
    underlay((u) => [
      ["rx", u.rxDatagrams],
      ["tx", u.txDatagrams],
    ]),
  );
  mirror(
    registry,
    "overlay_underlay_bytes_total",
    "VXLAN payload bytes on the underlay",
    ["direction"] as const,
    underlay((u) => [
      ["rx", u.rxBytes],
      ["tx", u.txBytes],
    ]),
  );
  mirror(
    registry,
    "overlay_underlay_sends_total",
    "Send calls' messages on the underlay (one UDP GSO message carries many datagrams)",
    [] as const,
    (set) => {
      const c = counters();
      if (c !== undefined) set({}, c.underlay.txSends);
    },
  );
  mirror(
    registry,
    "overlay_coalesced_writes_total",
    "TAP writes that carried more than one coalesced TCP segment",
    [] as const,
    (set) => {
      const c = counters();
      if (c !== undefined) set({}, c.underlay.coalescedWrites);
    },
  );

  new Gauge({
    name: "overlay_agent_ready",
    help: "1 when the agent serves CNI ADD (switch programmed, socket listening)",
    registers: [registry],
    collect() {
      this.set(source.state().ready ? 1 : 0);
    },
  });
  new Gauge({
    name: "overlay_store_following",
    help: "1 when the agent follows the cluster store (listed, watch open); 0 while changes may not be applied",
    registers: [registry],
    collect() {
      this.set(source.state().following ? 1 : 0);
    },
  });
  mirror(
    registry,
    "overlay_store_troubles_total",
    "Listings and watches of the cluster store that failed (each is logged and retried)",
    [],
    (set) => set({}, source.state().storeTroubles),
  );
  new Gauge({
    name: "overlay_remote_endpoints",
    help: "Endpoints on other nodes programmed into the switch (pods and gateways)",
    registers: [registry],
    collect() {
      this.set(source.state().remoteEndpoints);
    },
  });
  new Gauge({
    name: "overlay_peers",
    help: "Peer VTEPs (other nodes) programmed into the switch",
    registers: [registry],
    collect() {
      this.set(source.state().peers);
    },
  });
  new Gauge({
    name: "overlay_local_ports",
    help: "Switch ports on this node, by kind",
    labelNames: ["kind"] as const,
    registers: [registry],
    collect() {
      const ports = source.state().ports;
      for (const kind of ["pod", "gateway"] as const)
        this.set({ kind }, ports.filter((p) => p.kind === kind).length);
    },
  });
  new Gauge({
    name: "overlay_poll_window_bound_microseconds",
    help: "The bound of the packet threads' adaptive poll window after traffic; 0 = off",
    registers: [registry],
    collect() {
      this.set(source.state().pollUs);
    },
  });
  mirror(
    registry,
    "overlay_thread_batches_total",
    "Batches of work the packet threads found, by how: while polling after the last batch, or woken from a sleep",
    ["found"] as const,
    (set) => {
      const c = source.counters();
      if (c === undefined) return;
      set({ found: "polling" }, c.threads.polledBatches);
      set({ found: "woken" }, c.threads.wokenBatches);
    },
  );
  new Gauge({
    name: "overlay_offload_active",
    help: "1 for each data-plane offload the switch found and uses, 0 for the others",
    labelNames: ["offload"] as const,
    registers: [registry],
    collect() {
      const on = new Set(source.state().offloads);
      for (const offload of OFFLOADS) this.set({ offload }, on.has(offload) ? 1 : 0);
    },
  });
  const requests = new Histogram({
    name: "overlay_cni_request_duration_seconds",
    help: "Time the agent took to answer a CNI request (ADD: the pod's attach), by operation and result",
    labelNames: ["op", "result"] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  source.onRequestDone?.((op, seconds, ok) => requests.observe({ op, result: ok ? "ok" : "error" }, seconds));
  return registry;
}

/**
 * Serves `registry` at GET /metrics on host:port, the operator API's paths (api.ts) when given
 * one, and `/readyz` when `ready` is given: 200 while the agent serves CNI ADD and follows the
 * store (what CNI STATUS answers), 503 otherwise (the DaemonSet's readiness probe). Resolves once
 * listening.
 */
export async function serveMetrics(
  registry: Registry,
  host: string,
  port: number,
  api?: { handle(req: IncomingMessage, res: ServerResponse): boolean },
  ready?: () => boolean,
): Promise<Server> {
  const server = createServer((req, res) => {
    const path = (req.url ?? "").split("?")[0];
    if (req.method === "GET" && path === "/readyz" && ready !== undefined) {
      const ok = ready();
      res.writeHead(ok ? 200 : 503, { "content-type": "text/plain" }).end(ok ? "ready\n" : "not ready\n");
      return;
    }
    if (api?.handle(req, res) === true) return;
    if (req.method !== "GET" || path !== "/metrics") {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found: try GET /metrics\n");
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { "content-type": registry.contentType }).end(text),
      (err: unknown) => res.writeHead(500, { "content-type": "text/plain" }).end(`${String(err)}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  return server;
}

export function metricsAddress(server: Server): string {
  const a = server.address() as AddressInfo;
  return `${a.address}:${a.port}`;
}

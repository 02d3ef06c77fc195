/**
 * The agent's operator API, served beside /metrics on the `--metrics-listen` listener and
 * published in the node record (NodeRecord.apiAddress), for `dctl status`, `dctl network overlay
 * drops` and `dctl network overlay trace`. Plain JSON over HTTP:
 *
 *   GET  /status                       the agent at a glance (StatusJson)
 *   GET  /drops?since=MS&reason=NAME   recent drop events of the switch (DropsJson); a read keeps
 *                                      the switch recording them (src/dataplane: dropEvents)
 *   POST /trace {namespace, pod, ip, port?, protocol}
 *                                      the switch's own forwarding decision on a frame from a
 *                                      pod of this node (TraceJson; src/dataplane: trace)
 *   GET, POST /connectivity/endpoints, DELETE /connectivity/endpoints/ID, POST /connectivity/ping
 *                                      test endpoints of `dctl connectivity-test` (conntest.ts)
 *
 * The answers name what the switch knows by number (port ids, VTEP addresses) the way operators
 * know it (namespace/pod, node names), from the records the agent follows. Nothing here decides
 * where a frame goes: the switch does, and this file only labels its answer.
 *
 * Past 400 lines on purpose: the API's JSON shapes (which dctl reads too), its routes and the
 * labelling they share are one contract, kept in one place; the test endpoints are conntest.ts's.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { blockGateway } from "../model/ipam.js";
import { contains, parseCidr, parseIpv4 } from "../model/ipv4.js";
import type { DropEvent, Switch, SwitchTrace, TraceProtocol } from "../dataplane/switch.js";
import { productVersion } from "../version.js";
import type { AgentInspection, AgentStatus } from "./agent.js";
import type { ConnectivityEndpoints, Payload } from "./conntest.js";
import { peers } from "./desired.js";

/** What the API reads of the agent. */
export interface ApiSource {
  state(): AgentStatus;
  inspection(): AgentInspection;
  /** The running switch, or undefined before start and after stop. */
  dataplane(): Pick<Switch, "counters" | "dropEvents" | "trace"> | undefined;
  /** The connectivity test's endpoints (conntest.ts), when the agent runs them. */
  connectivity?(): ConnectivityEndpoints | undefined;
}

export interface StatusJson {
  node: string;
  version: string;
  ready: boolean;
  /** Following the cluster store (listed, watch open). */
  following: boolean;
  storeTroubles: number;
  lease: { renewedAgoMs: number | null; ttlSeconds: number };
  /** Peer VTEPs programmed in the switch, and how many the agent's records say there should be. */
  peers: { programmed: number; expected: number };
  endpoints: { pods: number; gateways: number; remote: number };
  offloads: string[];
  /** Drops over the last `windowMs` (about a minute; less just after start); null without a switch. */
  drops: { windowMs: number; total: number; byReason: Record<string, number> } | null;
  uptimeMs: number;
}

export interface DropJson {
  timeMs: number;
  reason: string;
  /** "namespace/pod", a gateway device, "peer NODE (IP)" or "-". */
  from: string;
  vni: number;
  /** "tcp", "udp", "icmp", "arp", "ip/N", or the EtherType in hex. */
  protocol: string;
  src: string | null;
  dst: string | null;
  srcPort: number;
  dstPort: number;
  count: number;
}

export interface DropsJson {
  node: string;
  /** Drops before this were counted, not recorded: recording starts at a read. */
  recordingSinceMs: number;
  /** Drops not recorded by the sampling (at most 4 per ms per packet thread), since start. */
  sampledOut: number;
  events: DropJson[];
}

export interface TraceRequest {
  namespace: string;
  pod: string;
  ip: string;
  port?: number;
  protocol: TraceProtocol;
}

export type PolicyVerdict = "same-vni" | "global" | "isolated";

export interface TraceJson {
  node: string;
  source: { pod: string; ip: string; mac: string; vni: number; global: boolean; port: number };
  destination: { ip: string; port: number | null; protocol: TraceProtocol };
  /** What the pod ARPs for: the destination on its own subnet, else its gateway. */
  nextHop: { ip: string; via: "direct" | "gateway" };
  /** The switch's answer to that ARP request: the MAC, or the reason it stays unanswered. */
  arp: { answered: boolean; mac: string | null; drop: string | null };
  /** Where the frame goes: a local pod or gateway port, a remote endpoint behind a VTEP, or none. */
  found: {
    kind: "local" | "remote" | "none";
    /** "namespace/pod" or "gateway of NODE" (remote), the gateway device (local), or null. */
    name: string | null;
    node: string | null;
    vtep: string | null;
    vni: number | null;
    global: boolean;
    /** Remote only: the VTEP is among the switch's peers (else the receiver drops it). */
    peerProgrammed: boolean | null;
  };
  policy: PolicyVerdict | null;
  /** The reason the switch would count: the ARP step's when it is unanswered, else the frame's. */
  drop: string | null;
  /** The frame step's own reason (what a frame to that MAC would meet even after failed ARP). */
  frameDrop: string | null;
  verdict: "forwarded" | "dropped";
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const SNAPSHOT_EVERY_MS = 10_000;
const WINDOW_MS = 60_000;
const MAX_BODY = 64 * 1024;

function protocolName(e: DropEvent): string {
  if (e.ethertype === 0x0806) return "arp";
  if (e.ethertype === 0x0800) {
    const names: Record<number, string> = { 6: "tcp", 17: "udp", 1: "icmp" };
    return names[e.protocol] ?? `ip/${e.protocol}`;
  }
  return e.ethertype === 0 ? "-" : `0x${e.ethertype.toString(16).padStart(4, "0")}`;
}

export class OperatorApi {
  private readonly started = Date.now();
  private snapshots: { at: number; drops: Record<string, number> }[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly source: ApiSource) {}

  /** Keeps a drop counter snapshot every 10 s, for "drops in the last minute". */
  start(): void {
    this.snapshot();
    this.timer = setInterval(() => this.snapshot(), SNAPSHOT_EVERY_MS);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private snapshot(): Record<string, number> | undefined {
    const c = this.source.dataplane()?.counters();
    if (c === undefined) return undefined;
    const now = Date.now();
    this.snapshots.push({ at: now, drops: { ...c.drops } });
    // Keep the newest snapshot at least a window old, and everything after it.
    const old = this.baseIndex(now);
    if (old > 0) this.snapshots = this.snapshots.slice(old);
    return c.drops;
  }

  /** The newest snapshot at least a window old, or -1. */
  private baseIndex(now: number): number {
    for (let i = this.snapshots.length - 1; i >= 0; i--)
      if ((this.snapshots[i]?.at ?? now) <= now - WINDOW_MS) return i;
    return -1;
  }

  status(): StatusJson {
    const st = this.source.state();
    const ins = this.source.inspection();
    const now = Date.now();
    let drops: StatusJson["drops"] = null;
    const current = this.snapshot();
    if (current !== undefined) {
      const base = this.snapshots[Math.max(0, this.baseIndex(now))];
      const byReason: Record<string, number> = {};
      let total = 0;
      for (const [reason, n] of Object.entries(current)) {
        const d = n - (base?.drops[reason] ?? 0);
        if (d > 0) {
          byReason[reason] = d;
          total += d;
        }
      }
      drops = { windowMs: base === undefined ? 0 : now - base.at, total, byReason };
    }
    return {
      node: ins.node,
      version: productVersion(),
      ready: st.ready,
      following: st.following,
      storeTroubles: st.storeTroubles,
      lease: {
        renewedAgoMs: ins.leaseRenewedAt === undefined ? null : now - ins.leaseRenewedAt,
        ttlSeconds: ins.leaseTtlSeconds,
      },
      peers: {
        programmed: st.peers,
        expected: ins.records === undefined ? 0 : peers(ins.records, ins.node).length,
      },
      endpoints: {
        pods: st.ports.filter((p) => p.kind === "pod").length,
        gateways: st.ports.filter((p) => p.kind === "gateway").length,
        remote: st.remoteEndpoints,
      },
      offloads: [...st.offloads],
      drops,
      uptimeMs: now - this.started,
    };
  }

  drops(query: { sinceMs?: number; reason?: string }): DropsJson {
    const sw = this.running();
    const ins = this.source.inspection();
    const portNames = new Map(this.source.state().ports.map((p) => [p.id, p.name]));
    const nodeOf = this.nodesByVtep(ins);
    const got = sw.dropEvents({ sinceMs: query.sinceMs ?? 0 });
    const events: DropJson[] = [];
    for (const e of got.events) {
      if (query.reason !== undefined && e.reason !== query.reason) continue;
      let from = "-";
      if (e.from === "port") from = portNames.get(e.port ?? -1) ?? `port ${e.port ?? "?"}`;
      if (e.from === "peer") {
        const node = nodeOf.get(e.peer ?? "");
        from = node === undefined ? `peer ${e.peer ?? "?"}` : `peer ${node} (${e.peer ?? "?"})`;
      }
      events.push({
        timeMs: e.timeMs,
        reason: e.reason,
        from,
        vni: e.vni,
        protocol: protocolName(e),
        src: e.src,
        dst: e.dst,
        srcPort: e.srcPort,
        dstPort: e.dstPort,
        count: e.count,
      });
    }
    return { node: ins.node, recordingSinceMs: got.recordingSinceMs, sampledOut: got.sampledOut, events };
  }

  trace(req: TraceRequest): TraceJson {
    const sw = this.running();
    const ins = this.source.inspection();
    const pod = ins.pods.find((p) => p.endpoint.namespace === req.namespace && p.endpoint.pod === req.pod);
    if (pod === undefined)
      throw new ApiError(404, `pod ${req.namespace}/${req.pod} has no port on node ${ins.node}`);
    const e = pod.endpoint;
    const own = parseCidr(`${e.ip}/${e.prefixLength}`);
    const dst = parseIpv4(req.ip) as number;
    const direct = own !== undefined && contains(own, dst);
    const nextHop = direct ? req.ip : e.gateway;
    const t: SwitchTrace = sw.trace({
      port: pod.id,
      dst: req.ip,
      nextHop,
      protocol: req.protocol,
      ...(req.port === undefined ? {} : { dstPort: req.port }),
    });
    const d = t.frame.destination;
    let found: TraceJson["found"] = {
      kind: "none",
      name: null,
      node: null,
      vtep: null,
      vni: null,
      global: false,
      peerProgrammed: null,
    };
    if (d !== null) {
      const local = d.vtep === undefined;
      const nodeOf = this.nodesByVtep(ins);
      found = {
        kind: local ? "local" : "remote",
        name: local
          ? (this.source.state().ports.find((p) => p.id === d.port)?.name ?? null)
          : this.remoteName(ins, d.ipv4),
        node: local ? ins.node : (nodeOf.get(d.vtep ?? "") ?? null),
        vtep: d.vtep ?? null,
        vni: d.vni,
        global: d.global,
        peerProgrammed: local ? null : (d.peerProgrammed ?? false),
      };
    }
    const policy: PolicyVerdict | null =
      d === null
        ? null
        : d.vni === t.source.vni
          ? "same-vni"
          : t.source.global || d.global
            ? "global"
            : "isolated";
    const drop = t.arp.drop ?? t.frame.drop;
    return {
      node: ins.node,
      source: {
        pod: `${e.namespace}/${e.pod}`,
        ip: t.source.ipv4,
        mac: t.source.mac,
        vni: t.source.vni,
        global: t.source.global,
        port: pod.id,
      },
      destination: { ip: req.ip, port: req.port ?? null, protocol: req.protocol },
      nextHop: { ip: nextHop, via: direct ? "direct" : "gateway" },
      arp: { answered: t.arp.answer !== null, mac: t.arp.answer?.mac ?? null, drop: t.arp.drop },
      found,
      policy,
      drop,
      frameDrop: t.frame.drop,
      verdict: drop === null ? "forwarded" : "dropped",
    };
  }

  /** Serves the API's paths; false for any other path (left to the caller). */
  handle(req: IncomingMessage, res: ServerResponse): boolean {
    const url = new URL(req.url ?? "/", "http://agent");
    const route = this.route(req.method ?? "GET", url);
    if (route === undefined) return false;
    const reply = (status: number, body: unknown): void => {
      res.writeHead(status, { "content-type": "application/json" }).end(`${JSON.stringify(body)}\n`);
    };
    const fail = (err: unknown): void => {
      if (err instanceof ApiError) reply(err.status, { error: err.message });
      else reply(500, { error: err instanceof Error ? err.message : String(err) });
    };
    if (typeof route === "string") {
      reply(405, { error: route });
      return true;
    }
    readBody(req)
      .then((body) => route(body))
      .then((value) => reply(200, value), fail);
    return true;
  }

  /** The handler of a request, a 405 message for a known path asked the wrong way, or undefined. */
  private route(method: string, url: URL): ((body: string) => unknown) | string | undefined {
    const path = url.pathname;
    const ct = /^\/connectivity\/endpoints\/([0-9a-f]+)$/.exec(path);
    const table: Record<string, Record<string, (body: string) => unknown>> = {
      "/status": { GET: () => this.status() },
      "/drops": { GET: () => this.drops(parseDropsQuery(url.searchParams)) },
      "/trace": { POST: (body) => this.trace(parseTraceRequest(body)) },
      "/connectivity/endpoints": {
        GET: () => ({ endpoints: this.tests().list() }),
        POST: (body) =>
          this.tests()
            .create(parseTestEndpoint(body))
            .catch((err: unknown) => {
              throw err instanceof RangeError ? new ApiError(400, err.message) : err;
            }),
      },
      "/connectivity/ping": {
        POST: (body) => {
          const q = parsePing(body);
          return this.tests().ping(q.from, q.dst, q.payload);
        },
      },
    };
    const methods =
      ct === null
        ? table[path]
        : { DELETE: async () => ({ removed: await this.tests().remove(ct[1] as string) }) };
    if (methods === undefined) return undefined;
    return methods[method] ?? `${path} takes ${Object.keys(methods).join(" or ")}`;
  }

  private tests(): ConnectivityEndpoints {
    const t = this.source.connectivity?.();
    if (t === undefined) throw new ApiError(503, "this agent runs no connectivity tests");
    return t;
  }

  private running(): Pick<Switch, "counters" | "dropEvents" | "trace"> {
    const sw = this.source.dataplane();
    if (sw === undefined) throw new ApiError(503, "the switch is not running");
    return sw;
  }

  private nodesByVtep(ins: AgentInspection): Map<string, string> {
    const out = new Map<string, string>();
    for (const n of ins.records?.nodes() ?? []) out.set(n.underlayIp, n.name);
    return out;
  }

  /** The record behind a remote address: "namespace/pod", or "gateway of NODE" for a block's gateway. */
  private remoteName(ins: AgentInspection, ip: string): string | null {
    const c = ins.records;
    if (c === undefined) return null;
    for (const [key, kind] of c.remoteSources()) {
      if (kind === "endpoint") {
        const e = c.endpoint(key);
        if (e?.ip === ip) return `${e.namespace}/${e.pod}`;
      } else {
        const b = c.block(key);
        if (b !== undefined && blockGateway(b.cidr) === ip) return `gateway of ${b.node}`;
      }
    }
    return null;
  }
}

function parseDropsQuery(q: URLSearchParams): { sinceMs?: number; reason?: string } {
  const out: { sinceMs?: number; reason?: string } = {};
  const since = q.get("since");
  if (since !== null) {
    const n = Number(since);
    if (!Number.isFinite(n) || n < 0)
      throw new ApiError(400, `since must be ms since the epoch, got ${since}`);
    out.sinceMs = n;
  }
  const reason = q.get("reason");
  if (reason !== null && reason !== "") out.reason = reason;
  return out;
}

function parseTraceRequest(body: string): TraceRequest {
  let v: unknown;
  try {
    v = JSON.parse(body);
  } catch {
    throw new ApiError(400, "the trace request is not JSON");
  }
  const o = (typeof v === "object" && v !== null ? v : {}) as Record<string, unknown>;
  for (const k of ["namespace", "pod", "ip"]) {
    if (typeof o[k] !== "string" || o[k] === "")
      throw new ApiError(400, `the trace request needs ${k} (a string)`);
  }
  if (parseIpv4(o.ip as string) === undefined)
    throw new ApiError(400, `ip must be an IPv4 address, got ${String(o.ip)}`);
  const protocol = o.protocol ?? "icmp";
  if (protocol !== "tcp" && protocol !== "udp" && protocol !== "icmp")
    throw new ApiError(400, `protocol must be tcp, udp or icmp, got ${String(protocol)}`);
  const port = o.port;
  if (
    port !== undefined &&
    port !== null &&
    (!Number.isInteger(port) || (port as number) < 0 || (port as number) > 65535)
  )
    throw new ApiError(400, `port must be 0-65535, got ${String(port)}`);
  return {
    namespace: o.namespace as string,
    pod: o.pod as string,
    ip: o.ip as string,
    protocol,
    ...(typeof port === "number" ? { port } : {}),
  };
}

function parseObject(body: string, what: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(body);
  } catch {
    throw new ApiError(400, `the ${what} request is not JSON`);
  }
  if (typeof v !== "object" || v === null || Array.isArray(v))
    throw new ApiError(400, `the ${what} request is not an object`);
  return v as Record<string, unknown>;
}

const NAME_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

function parseTestEndpoint(body: string): {
  namespace: string;
  pod: string;
  network?: string;
  ttlMs: number;
} {
  const o = parseObject(body, "test endpoint");
  for (const k of ["namespace", "pod"]) {
    if (typeof o[k] !== "string" || !NAME_RE.test(o[k]))
      throw new ApiError(400, `${k} must be a DNS label, got ${String(o[k])}`);
  }
  const ttl = o.ttlSeconds ?? 300;
  if (typeof ttl !== "number" || !Number.isInteger(ttl) || ttl < 1 || ttl > 3600)
    throw new ApiError(400, `ttlSeconds must be 1-3600, got ${String(ttl)}`);
  if (o.network !== undefined && typeof o.network !== "string")
    throw new ApiError(400, "network must be a string");
  return {
    namespace: o.namespace as string,
    pod: o.pod as string,
    ...(typeof o.network === "string" ? { network: o.network } : {}),
    ttlMs: ttl * 1000,
  };
}

function parsePing(body: string): { from?: string; dst: string; payload: Payload } {
  const o = parseObject(body, "ping");
  if (typeof o.dst !== "string" || parseIpv4(o.dst) === undefined)
    throw new ApiError(400, `dst must be an IPv4 address`);
  if (o.from !== undefined && typeof o.from !== "string")
    throw new ApiError(400, "from must be a test endpoint id");
  const payload = o.payload ?? "small";
  if (payload !== "small" && payload !== "mtu" && payload !== "fragmented")
    throw new ApiError(400, `payload must be small, mtu or fragmented, got ${String(payload)}`);
  return { ...(typeof o.from === "string" ? { from: o.from } : {}), dst: o.dst, payload };
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (chunk: string) => {
      body += chunk;
      if (body.length > MAX_BODY) {
        reject(new ApiError(413, "request too large"));
        req.destroy();
      }
    });
    req.on("end", () => resolve(body));
    req.on("error", reject);
  });
}

/**
 * Traffic and counters inside a world: ping, iperf3, and interface statistics from `ip -s -j link`
 * (request/response latency and the threads' CPU: latency.ts).
 * Every command runs inside one of the world's namespaces, so traffic stays among them.
 */
import { isIPv4 } from "node:net";
import { sleep } from "./exec.js";
import type { NsProcess, World } from "./world.js";

export interface PingOptions {
  /** Echo requests to send; default 3. */
  count?: number;
  /** Seconds to wait for the last reply (ping -W); default 2. */
  timeoutSec?: number;
  /** Seconds between requests; default 0.2 (the smallest a non-root user may use). */
  intervalSec?: number;
  /** ICMP payload size in bytes (ping -s). */
  size?: number;
  /** Set the DF bit (ping -M do): oversize probes fail instead of fragmenting. */
  dontFragment?: boolean;
  /** Keep each reply's round trip (`rttsMs`): ping prints a line per reply instead of -q. */
  perReply?: boolean;
}

export interface PingResult {
  sent: number;
  received: number;
  lossPct: number;
  /** Average round trip, ms; undefined when nothing came back. */
  rttAvgMs: number | undefined;
  /** With `perReply`: every reply's round trip, ms, in the order received. */
  rttsMs?: number[];
  output: string;
}

/** Throws unless `ip` is an IPv4 address: every measurement targets one inside the world. */
export function checkTarget(ip: string): void {
  if (!isIPv4(ip)) throw new TypeError(`target must be an IPv4 address, got ${ip}`);
}

/** Parses iputils ping's summary. */
export function parsePing(output: string): Omit<PingResult, "output"> {
  const summary = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(output);
  const sent = summary ? Number(summary[1]) : 0;
  const received = summary ? Number(summary[2]) : 0;
  const rtt = /= [\d.]+\/([\d.]+)\/[\d.]+\/[\d.]+ ms/.exec(output);
  return {
    sent,
    received,
    lossPct: sent === 0 ? 100 : Math.round(((sent - received) / sent) * 1000) / 10,
    rttAvgMs: rtt ? Number(rtt[1]) : undefined,
  };
}

/** Pings from inside `fromNs`. Loss is a result, not an error; only a failing ping binary throws. */
export async function ping(
  world: World,
  fromNs: string,
  ip: string,
  options: PingOptions = {},
): Promise<PingResult> {
  checkTarget(ip);
  const count = options.count ?? 3;
  const timeoutSec = options.timeoutSec ?? 2;
  const interval = options.intervalSec ?? 0.2;
  if (!Number.isInteger(count) || count < 1) throw new RangeError(`count must be >= 1, got ${count}`);
  const deadline = Math.ceil(count * interval + timeoutSec);
  const args = ["-n", "-c", String(count), "-i", String(interval), "-W", String(timeoutSec)];
  if (!options.perReply) args.push("-q");
  args.push("-w", String(deadline));
  if (options.size !== undefined) args.push("-s", String(options.size));
  if (options.dontFragment) args.push("-M", "do");
  args.push(ip);
  const r = await world.exec(fromNs, "ping", args, { allowFailure: true, timeoutMs: (deadline + 5) * 1000 });
  const output = r.stdout + r.stderr;
  const parsed = parsePing(output);
  // Exit 1 is "no reply"; anything else without a summary is a failure to run.
  if (r.code !== 0 && r.code !== 1 && parsed.sent === 0 && !/transmitted/.test(output)) {
    throw new Error(`ping ${ip} from ${fromNs} failed: ${output.trim()}`);
  }
  if (options.perReply) {
    const rttsMs = [...output.matchAll(/ time=([\d.]+) ms/g)].map((m) => Number(m[1]));
    return { ...parsed, rttsMs, output };
  }
  return { ...parsed, output };
}

/** Pings until one reply arrives or `attempts` runs out (e.g. while ARP and tables settle). */
export async function pingUntil(
  world: World,
  fromNs: string,
  ip: string,
  attempts = 10,
  options: PingOptions = {},
): Promise<PingResult> {
  let last: PingResult | undefined;
  for (let i = 0; i < attempts; i++) {
    last = await ping(world, fromNs, ip, { count: 1, timeoutSec: 1, ...options });
    if (last.received > 0) return last;
  }
  if (!last) throw new Error("attempts must be >= 1");
  return last;
}

export interface Iperf3ServerOptions {
  /** TCP port; default 5201. */
  port?: number;
  /** Exit after one test (iperf3 -1); default true. */
  oneOff?: boolean;
}

export interface Iperf3Server {
  process: NsProcess;
  ip: string;
  port: number;
  stop(): Promise<void>;
}

/** Waits until something listens on TCP (or is bound to UDP) `port` inside `ns`. */
export async function waitForListen(
  world: World,
  ns: string,
  port: number,
  timeoutMs = 5000,
  protocol: "tcp" | "udp" = "tcp",
): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const flags = protocol === "tcp" ? "-Htln" : "-Huln";
    const r = await world.exec(ns, "ss", [flags, `sport = :${port}`], { allowFailure: true });
    if (r.code === 0 && r.stdout.trim() !== "") return;
    if (Date.now() > until)
      throw new Error(`nothing listens on ${protocol} ${port} in ${ns} after ${timeoutMs} ms`);
    await sleep(50);
  }
}

/** Starts `iperf3 -s` bound to `ip` inside `ns` and waits until it listens. */
export async function iperf3Server(
  world: World,
  ns: string,
  ip: string,
  options: Iperf3ServerOptions = {},
): Promise<Iperf3Server> {
  checkTarget(ip);
  const port = options.port ?? 5201;
  const args = ["-s", "-B", ip, "-p", String(port)];
  if (options.oneOff ?? true) args.push("-1");
  const proc = world.start(ns, "iperf3", args);
  try {
    await Promise.race([
      waitForListen(world, ns, port),
      proc.exited.then((s) => {
        throw new Error(`iperf3 server exited early (${JSON.stringify(s)}): ${proc.stderr || proc.stdout}`);
      }),
    ]);
  } catch (e) {
    await proc.stop();
    throw e;
  }
  return {
    process: proc,
    ip,
    port,
    stop: async () => {
      await proc.stop();
    },
  };
}

export interface Iperf3ClientOptions {
  port?: number;
  /** Seconds; default 2. Keep short: tests assert bytes moved, not speed. */
  seconds?: number;
  /** Send this many bytes (-n) instead of running for `seconds`. */
  bytes?: number;
  /** Parallel streams (-P); default 1. */
  parallel?: number;
  /** UDP at this rate in bit/s instead of TCP. */
  udpBitsPerSec?: number;
  /** Reverse direction (-R): the server sends. */
  reverse?: boolean;
  /** Extra arguments passed through (e.g. ["-M", "1000"]). */
  extraArgs?: string[];
}

export interface Iperf3Result {
  /** Receiver-side rate, bit/s (for TCP: sum_received). */
  bitsPerSecond: number;
  /** Sender-side rate, bit/s. */
  sentBitsPerSecond: number;
  bytesSent: number;
  bytesReceived: number;
  /** TCP retransmits reported by the sender, when available. */
  retransmits: number | undefined;
  /** UDP only: datagrams lost, percent. */
  lostPercent: number | undefined;
  /** The whole `iperf3 -J` document. */
  json: unknown;
}

interface Iperf3Sum {
  bytes?: number;
  bits_per_second?: number;
  retransmits?: number;
  lost_percent?: number;
}

interface Iperf3Json {
  error?: string;
  end?: { sum_sent?: Iperf3Sum; sum_received?: Iperf3Sum; sum?: Iperf3Sum };
}

/** Extracts the figures from `iperf3 -J` output (TCP or UDP). */
export function parseIperf3(text: string): Iperf3Result {
  const json = JSON.parse(text) as Iperf3Json;
  if (json.error) throw new Error(`iperf3: ${json.error}`);
  const end = json.end ?? {};
  const sent = end.sum_sent ?? end.sum ?? {};
  const received = end.sum_received ?? end.sum ?? {};
  return {
    bitsPerSecond: received.bits_per_second ?? 0,
    sentBitsPerSecond: sent.bits_per_second ?? 0,
    bytesSent: sent.bytes ?? 0,
    bytesReceived: received.bytes ?? 0,
    retransmits: sent.retransmits,
    lostPercent: end.sum?.lost_percent,
    json,
  };
}

/** Runs `iperf3 -c` from `ns` to a server at `ip` and returns the parsed JSON result. */
export async function iperf3Client(
  world: World,
  ns: string,
  ip: string,
  options: Iperf3ClientOptions = {},
): Promise<Iperf3Result> {
  checkTarget(ip);
  const seconds = options.seconds ?? 2;
  const args = ["-c", ip, "-p", String(options.port ?? 5201), "-J"];
  if (options.bytes !== undefined) args.push("-n", String(options.bytes));
  else args.push("-t", String(seconds));
  args.push("-P", String(options.parallel ?? 1), "--connect-timeout", "3000");
  if (options.udpBitsPerSec !== undefined) args.push("-u", "-b", String(options.udpBitsPerSec));
  if (options.reverse) args.push("-R");
  if (options.extraArgs) args.push(...options.extraArgs);
  const r = await world.exec(ns, "iperf3", args, { allowFailure: true, timeoutMs: (seconds + 20) * 1000 });
  if (!r.stdout.trim())
    throw new Error(`iperf3 -c ${ip} from ${ns}: no output (${r.code}): ${r.stderr.trim()}`);
  return parseIperf3(r.stdout);
}

/** Server in `serverNs` on `serverIp`, client in `clientNs`, one run; the server is always stopped. */
export async function iperf3(
  world: World,
  clientNs: string,
  serverNs: string,
  serverIp: string,
  options: Iperf3ClientOptions = {},
): Promise<Iperf3Result> {
  const server = await iperf3Server(world, serverNs, serverIp, { port: options.port });
  try {
    return await iperf3Client(world, clientNs, serverIp, options);
  } finally {
    await server.stop();
  }
}

export interface LinkDirectionStats {
  bytes: number;
  packets: number;
  errors: number;
  dropped: number;
}

export interface LinkStats {
  ifname: string;
  mtu: number;
  mac: string | undefined;
  operstate: string;
  rx: LinkDirectionStats;
  tx: LinkDirectionStats;
}

interface IpLinkJson {
  ifname?: string;
  mtu?: number;
  address?: string;
  operstate?: string;
  stats64?: { rx?: Partial<LinkDirectionStats>; tx?: Partial<LinkDirectionStats> };
  stats?: { rx?: Partial<LinkDirectionStats>; tx?: Partial<LinkDirectionStats> };
}

function direction(d: Partial<LinkDirectionStats> | undefined): LinkDirectionStats {
  return { bytes: d?.bytes ?? 0, packets: d?.packets ?? 0, errors: d?.errors ?? 0, dropped: d?.dropped ?? 0 };
}

/** Parses `ip -s -j link show` output into one entry per interface. */
export function parseLinkStats(text: string): LinkStats[] {
  const parsed = JSON.parse(text || "[]") as IpLinkJson[];
  return parsed.map((l) => {
    const s = l.stats64 ?? l.stats;
    return {
      ifname: l.ifname ?? "",
      mtu: l.mtu ?? 0,
      mac: l.address,
      operstate: l.operstate ?? "UNKNOWN",
      rx: direction(s?.rx),
      tx: direction(s?.tx),
    };
  });
}

/** Counters of every interface in a namespace. */
export async function linkStatsAll(world: World, ns: string): Promise<LinkStats[]> {
  const r = await world.ip(ns, ["-s", "-j", "link", "show"]);
  return parseLinkStats(r.stdout);
}

/** Counters of one interface in a namespace. */
export async function linkStats(world: World, ns: string, dev: string): Promise<LinkStats> {
  const r = await world.ip(ns, ["-s", "-j", "link", "show", "dev", dev]);
  const [l] = parseLinkStats(r.stdout);
  if (!l) throw new Error(`no interface ${dev} in ${ns}`);
  return l;
}

/**
 * The data plane as TypeScript sees it: one `Switch` per node, owning packet threads of its own.
 * Every method is cheap and synchronous (it publishes a new table version and returns), except
 * that removePort's promise settles once the device is gone; no method is called per packet.
 *
 * JS validates, C++ asserts: every argument is checked here, before native code, against the
 * addon's own limits (`switchLimits()`, defined once in native/switch_limits.h) and against the
 * relational rules that are TypeScript policy (a port's MTU at most the underlay MTU - 50). A bad
 * argument is a TypeError (wrong type or form) or a RangeError naming the limit. The addon
 * asserts the same limits again, so a call that got past this file still cannot crash it.
 *
 * Past 400 lines on purpose: the class is the whole typed boundary (ports, tables, counters,
 * inspection), each method with its checks beside it, as native.d.ts declares them.
 */
import { isIPv4 } from "node:net";
import { loadNative } from "./load.js";
import type {
  NativeCounters,
  NativeDropEvents,
  NativeFeatures,
  NativeLimits,
  NativeSwitch,
  NativeTrace,
} from "./native.js";

export type {
  NativeDropEvent as DropEvent,
  NativeDropEvents as DropEvents,
  NativeTrace as SwitchTrace,
  NativeTraceEndpoint as TraceEndpoint,
  NativeCounters as SwitchCounters,
  NativeFeatures as SwitchFeatures,
  NativeLimits as SwitchLimits,
  NativeRange as SwitchLimit,
} from "./native.js";
import { IFNAME_RE, MAC_RE } from "./names.js";

/**
 * The default bound of a packet thread's adaptive poll window, microseconds (SwitchOptions.pollUs,
 * native/poll.h): above a round trip across nodes on a loaded machine, so request/response
 * traffic keeps its threads awake, and small enough that the spin after a burst's last batch
 * costs nothing a quiet node notices.
 */
export const DEFAULT_POLL_US = 100;

/** The VXLAN port assigned by IANA (RFC 7348 section 5). */
export const VXLAN_PORT = 4789;
/**
 * Outer Ethernet (14) + IPv4 (20) + UDP (8) + VXLAN (8) bytes (RFC 7348 section 5). A port's MTU
 * is at most the underlay MTU less this: a rule of this file, not a native limit.
 */
export const VXLAN_OVERHEAD = 50;

let limits: Readonly<NativeLimits> | undefined;

/**
 * The data plane's absolute limits, as the addon exports them (native/switch_limits.h): what
 * every Switch argument is checked against. Code validating its own options before they reach a
 * Switch (the agent's flags) uses these rather than literals. Loads the addon on first use; the
 * result is frozen.
 */
export function switchLimits(): Readonly<NativeLimits> {
  if (limits === undefined) {
    const raw = loadNative().limits();
    for (const range of Object.values(raw)) Object.freeze(range);
    limits = Object.freeze(raw);
  }
  return limits;
}

function show(value: unknown): string {
  return typeof value === "string" ? JSON.stringify(value) : String(value);
}

/**
 * Returns `value` when it is a number inside the limit `name`, narrowed to at most `policy.max`
 * when a TypeScript rule says so; throws a TypeError for a non-number and a RangeError naming the
 * limit (and the rule) otherwise.
 */
function checkLimit(
  value: unknown,
  what: string,
  name: keyof NativeLimits,
  policy?: { max: number; rule: string },
): number {
  const limit = switchLimits()[name];
  if (typeof value !== "number") throw new TypeError(`${what} must be a number, got ${show(value)}`);
  const narrowed = policy !== undefined && policy.max < limit.max;
  const max = narrowed ? policy.max : limit.max;
  if (!(value >= limit.min && value <= max) || (limit.integer && !Number.isInteger(value))) {
    const kind = limit.integer ? "an integer" : "a number";
    const source = `switchLimits().${name}${narrowed ? `, and ${policy.rule}` : ""}`;
    throw new RangeError(`${what} must be ${kind} from ${limit.min} to ${max} (${source}), got ${value}`);
  }
  return value;
}

export interface SwitchOptions {
  underlayIp: string;
  /** UDP port for VXLAN, in switchLimits().udpPort; default VXLAN_PORT. */
  port?: number;
  /** Open the underlay sockets inside this network namespace (path), instead of the caller's. */
  netns?: string;
  /** Packet threads, in switchLimits().workers; default 2. */
  workers?: number;
  /** TAP super-frames (TSO); default true. Off only for tests and comparisons. */
  offloads?: boolean;
  /** In switchLimits().mtu; default 1500. */
  underlayMtu?: number;
  /**
   * Bound of each packet thread's adaptive poll window, microseconds, in switchLimits().pollUs;
   * default DEFAULT_POLL_US; 0 turns polling off (threads sleep as soon as a batch is done).
   */
  pollUs?: number;
}

export interface PortOptions {
  /** Interface name in its namespace, e.g. "eth0". */
  name: string;
  /** Namespace path the device lives in (e.g. /var/run/netns/pod1); default: the switch's own. */
  netns?: string;
  vni: number;
  mac: string;
  ipv4: string;
  /** "pod" (default) enforces source MAC and IPv4; "host" is the node's own gateway port. */
  kind?: "pod" | "host";
  persistent?: boolean;
  /** Interface MTU, in switchLimits().mtu and at most underlay MTU - 50 (the default). */
  mtu?: number;
  /** Upper bandwidth limit of frames the port sends, bit/s; 0 or absent = unlimited. */
  rateBitsPerSec?: number;
}

export interface RemoteEndpoint {
  vni: number;
  mac: string;
  ipv4: string;
  vtep: string;
}

export interface Peer {
  ip: string;
  /** See NativePeer.checksummed; default true (peers are switches like this one). */
  checksummed?: boolean;
}

function checkVni(vni: unknown, what = "vni"): void {
  checkLimit(vni, what, "vni");
}

function checkPortId(id: unknown): void {
  checkLimit(id, "port id", "portId");
}

function checkName(name: unknown, what: string): void {
  if (typeof name !== "string") throw new TypeError(`${what} must be a string, got ${show(name)}`);
  const { min, max } = switchLimits().nameLength;
  const bytes = Buffer.byteLength(name);
  if (bytes < min || bytes > max) {
    throw new RangeError(
      `${what} must be ${min} to ${max} bytes long (switchLimits().nameLength), got ${bytes}: ${show(name)}`,
    );
  }
  if (!IFNAME_RE.test(name)) throw new TypeError(`${what} must be of [A-Za-z0-9_.-], got ${show(name)}`);
}

function checkObject(value: unknown, what: string): void {
  if (typeof value !== "object" || value === null) throw new TypeError(`${what} must be an object`);
}

function checkArray(value: unknown, what: string): void {
  if (!Array.isArray(value)) throw new TypeError(`${what} must be an array, got ${show(value)}`);
}

function checkOptional(value: unknown, type: "string" | "boolean", what: string): void {
  if (value !== undefined && typeof value !== type) {
    throw new TypeError(`${what} must be a ${type}, got ${show(value)}`);
  }
}

function checkIPv4(ip: string, what: string): void {
  if (typeof ip !== "string" || !isIPv4(ip))
    throw new TypeError(`${what} must be an IPv4 address, got ${String(ip)}`);
}

function checkUnicastMac(mac: string, what = "mac"): void {
  if (mac === "00:00:00:00:00:00") throw new TypeError(`${what} must not be all zeros`);
  if (typeof mac !== "string" || !MAC_RE.test(mac)) {
    throw new TypeError(`${what} must look like 0a:58:ac:1e:00:02, got ${String(mac)}`);
  }
  if (parseInt(mac.slice(0, 2), 16) & 1) throw new TypeError(`${what} must be unicast, got ${mac}`);
}

function checkRemote(r: RemoteEndpoint): void {
  checkObject(r, "remote endpoint");
  checkVni(r.vni);
  checkUnicastMac(r.mac);
  checkIPv4(r.ipv4, "ipv4");
  checkIPv4(r.vtep, "vtep");
}

export class Switch {
  readonly underlayMtu: number;
  private native: NativeSwitch | undefined;

  constructor(options: SwitchOptions) {
    checkObject(options, "Switch options");
    checkIPv4(options.underlayIp, "underlayIp");
    const port = checkLimit(options.port ?? VXLAN_PORT, "port", "udpPort");
    checkOptional(options.netns, "string", "netns");
    const workers = checkLimit(options.workers ?? 2, "workers", "workers");
    checkOptional(options.offloads, "boolean", "offloads");
    this.underlayMtu = checkLimit(options.underlayMtu ?? 1500, "underlayMtu", "mtu");
    const pollUs = checkLimit(options.pollUs ?? DEFAULT_POLL_US, "pollUs", "pollUs");
    const { Switch: NativeSwitchClass } = loadNative();
    this.native = new NativeSwitchClass({
      underlayIp: options.underlayIp,
      port,
      netns: options.netns ?? "",
      workers,
      offloads: options.offloads ?? true,
      underlayMtu: this.underlayMtu,
      pollUs,
    });
  }

  private get n(): NativeSwitch {
    if (!this.native) throw new Error("switch is closed");
    return this.native;
  }

  /** Creates (or re-attaches, when persistent) a TAP device and returns its port id. */
  addPort(p: PortOptions): number {
    checkObject(p, "port options");
    checkName(p.name, "port name");
    checkOptional(p.netns, "string", "netns");
    checkVni(p.vni);
    checkUnicastMac(p.mac);
    checkIPv4(p.ipv4, "ipv4");
    if (p.kind !== undefined && p.kind !== "pod" && p.kind !== "host") {
      throw new TypeError(`kind must be "pod" or "host", got ${show(p.kind)}`);
    }
    checkOptional(p.persistent, "boolean", "persistent");
    // Policy, not a native limit: a frame of the port's MTU must fit the underlay once wrapped.
    const podMax = this.underlayMtu - VXLAN_OVERHEAD;
    const mtu = checkLimit(p.mtu ?? podMax, "mtu", "mtu", {
      max: podMax,
      rule: `at most underlayMtu ${this.underlayMtu} - ${VXLAN_OVERHEAD}`,
    });
    const rate = checkLimit(p.rateBitsPerSec ?? 0, "rateBitsPerSec", "rateBitsPerSec");
    return this.n.addPort({
      name: p.name,
      netns: p.netns ?? "",
      vni: p.vni,
      mac: p.mac.toLowerCase(),
      ipv4: p.ipv4,
      kind: p.kind ?? "pod",
      persistent: p.persistent ?? false,
      mtu,
      rateBitsPerSec: Math.floor(rate),
    });
  }

  /**
   * Detaches a port: no frame reaches it or leaves it once this returns. The promise resolves
   * once the device is gone: its fds are closed off the JS thread, since closing a TAP is where
   * the kernel tears it down (10-20 ms). `destroy` also deletes a persistent device (a plain one
   * dies with its fd).
   */
  removePort(id: number, options: { destroy?: boolean } = {}): Promise<void> {
    checkPortId(id);
    checkObject(options, "removePort options");
    checkOptional(options.destroy, "boolean", "destroy");
    return this.n.removePort(id, options.destroy ?? true);
  }

  /** Moves a running port to another VNI: how namespaces are joined and isolated. */
  setPortVni(id: number, vni: number): void {
    checkPortId(id);
    checkVni(vni);
    this.n.setPortVni(id, vni);
  }

  setPortRate(id: number, rateBitsPerSec: number): void {
    checkPortId(id);
    const rate = checkLimit(rateBitsPerSec, "rateBitsPerSec", "rateBitsPerSec");
    this.n.setPortRate(id, Math.floor(rate));
  }

  /** VNIs whose ports reach, and are reached by, every VNI (the gateway's, cluster services'). */
  setGlobalVnis(vnis: number[]): void {
    checkArray(vnis, "global vnis");
    for (const v of vnis) checkVni(v, "global vni");
    this.n.setGlobalVnis([...new Set(vnis)]);
  }

  /**
   * Whether a frame from a port on `fromVni` may be delivered to a port on `toVni`: the same VNI,
   * or either one global (setGlobalVnis). The switch answers with its own rule on the tables it
   * forwards with now; the packet path does not notice the call.
   */
  reaches(fromVni: number, toVni: number): boolean {
    checkVni(fromVni, "fromVni");
    checkVni(toVni, "toVni");
    return this.n.reaches(fromVni, toVni);
  }

  /** The peer VTEPs; VXLAN from any other source is dropped and counted. */
  setPeers(peers: Peer[]): void {
    checkArray(peers, "peers");
    for (const p of peers) {
      checkObject(p, "peer");
      checkIPv4(p.ip, "peer ip");
      checkOptional(p.checksummed, "boolean", "checksummed");
    }
    this.n.setPeers(peers.map((p) => ({ ip: p.ip, checksummed: p.checksummed ?? true })));
  }

  updateRemotes(add: RemoteEndpoint[], remove: string[] = []): void {
    checkArray(add, "added remotes");
    checkArray(remove, "removed macs");
    add.forEach(checkRemote);
    remove.forEach((m) => checkUnicastMac(m, "removed mac"));
    this.n.updateRemotes(
      add.map((r) => ({ vni: r.vni, mac: r.mac.toLowerCase(), ipv4: r.ipv4, vtep: r.vtep })),
      remove.map((m) => m.toLowerCase()),
    );
  }

  replaceRemotes(all: RemoteEndpoint[]): void {
    checkArray(all, "remotes");
    all.forEach(checkRemote);
    this.n.replaceRemotes(
      all.map((r) => ({ vni: r.vni, mac: r.mac.toLowerCase(), ipv4: r.ipv4, vtep: r.vtep })),
    );
  }

  /**
   * Inspection, for tests and diagnostics (not a control call; the packet path never sees it):
   * the remote endpoint the switch's published table holds for `mac`, found by the packet
   * threads' own lookup, or null.
   */
  lookupRemote(mac: string): RemoteEndpoint | null {
    checkUnicastMac(mac);
    return this.n.lookupRemote(mac.toLowerCase());
  }

  /** Inspection, as lookupRemote: the remote endpoint ARP for `ipv4` is answered with, or null. */
  lookupRemoteByIpv4(ipv4: string): RemoteEndpoint | null {
    checkIPv4(ipv4, "ipv4");
    return this.n.lookupRemoteByIpv4(ipv4);
  }

  /**
   * Inspection, as lookupRemote: every entry of the published remote table, by MAC and by IPv4
   * address (one endpoint per address), in no particular order. Costs the whole table.
   */
  remoteEntries(): { byMac: RemoteEndpoint[]; byIpv4: RemoteEndpoint[] } {
    return this.n.remoteEntries();
  }

  counters(): NativeCounters {
    return this.n.counters();
  }

  /**
   * Inspection, for operators: the drop events newer than `sinceMs` (ms since the epoch) that
   * the packet threads recorded, oldest first; the read keeps recording on for `armMs` more
   * (default 10 minutes). See NativeSwitch.dropEvents.
   */
  dropEvents(options: { sinceMs?: number; armMs?: number } = {}): NativeDropEvents {
    checkObject(options, "dropEvents options");
    const since = options.sinceMs ?? 0;
    const arm = options.armMs ?? DROP_EVENTS_ARM_MS;
    if (typeof since !== "number" || !(since >= 0 && since <= 1e15))
      throw new RangeError(`sinceMs must be a number from 0 to 1e15, got ${show(since)}`);
    if (typeof arm !== "number" || !Number.isInteger(arm) || arm < 0 || arm > 86_400_000)
      throw new RangeError(`armMs must be an integer from 0 to 86400000, got ${show(arm)}`);
    return this.n.dropEvents(since, arm);
  }

  /**
   * Inspection, for operators: what the switch would do with a frame port `port` sends to
   * `dst` (after ARP for `nextHop`, default `dst`): the packet path's own decision on synthetic
   * frames, on the tables it forwards with now. Nothing is sent. See NativeSwitch.trace.
   */
  trace(query: {
    port: number;
    dst: string;
    nextHop?: string;
    protocol: TraceProtocol;
    dstPort?: number;
    srcPort?: number;
  }): NativeTrace {
    checkObject(query, "trace query");
    checkPortId(query.port);
    checkIPv4(query.dst, "dst");
    if (query.nextHop !== undefined) checkIPv4(query.nextHop, "nextHop");
    const protocol = Object.hasOwn(TRACE_PROTOCOLS, query.protocol)
      ? TRACE_PROTOCOLS[query.protocol]
      : undefined;
    if (protocol === undefined)
      throw new TypeError(`protocol must be tcp, udp or icmp, got ${show(query.protocol)}`);
    const dstPort = query.dstPort ?? 0;
    if (!Number.isInteger(dstPort) || dstPort < 0 || dstPort > 65535)
      throw new RangeError(`dstPort must be an integer from 0 to 65535, got ${show(dstPort)}`);
    const srcPort = checkLimit(query.srcPort ?? 40000, "srcPort", "udpPort");
    return this.n.trace({
      port: query.port,
      dst: query.dst,
      nextHop: query.nextHop ?? query.dst,
      protocol,
      srcPort,
      dstPort,
    });
  }

  features(): NativeFeatures {
    return this.n.features();
  }

  /** Stops the packet threads and closes every fd; persistent devices stay. Idempotent. */
  close(): void {
    this.native?.close();
    this.native = undefined;
  }
}

/** How long a read of drop events keeps recording on, by default: 10 minutes. */
export const DROP_EVENTS_ARM_MS = 600_000;

export type TraceProtocol = "tcp" | "udp" | "icmp";
const TRACE_PROTOCOLS: Record<string, number> = { tcp: 6, udp: 17, icmp: 1 };

/** Every drop reason the data plane counts, in the order native/drop_reasons.def declares them. */
export function dropReasons(): string[] {
  return loadNative().dropReasons();
}

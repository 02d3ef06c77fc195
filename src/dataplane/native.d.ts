/**
 * Raw signatures of the C++ addon (build/Release/overlay_switch.node), declared once.
 * Nothing outside src/dataplane imports this file: use the typed `Switch` in ./switch.ts and
 * the plumbing functions of ./netlink.ts, which validate every argument before it reaches native
 * code.
 *
 * JS validates, C++ asserts: every number below is bounded by `NativeLimits` (the addon's
 * `limits()`), and the addon checks each argument again. A broken promise reaches JS as a
 * TypeError (wrong type) or RangeError (outside a limit, named in the message), never as a
 * crash. Errors of the switch itself (a duplicate MAC, an unknown port) are plain Errors with
 * code "ERR_OVERLAY_SWITCH".
 */

/** An inclusive range of a `NativeLimits` entry. */
export interface NativeRange {
  min: number;
  max: number;
  /** True: fractions are refused. False: they are accepted and truncated toward zero. */
  integer: boolean;
}

/**
 * The addon's absolute limits, defined once in native/switch_limits.h: what the native side
 * sizes its tables by and asserts. Relational rules are not limits and are not here: a port's
 * MTU at most the underlay MTU - 50 is TypeScript policy, kept in ./switch.ts.
 */
export interface NativeLimits {
  /** Packet threads per switch. */
  workers: NativeRange;
  /** UDP ports: the switch's VXLAN port, and a datagram probe's. */
  udpPort: NativeRange;
  /** The underlay MTU, and a port's MTU. */
  mtu: NativeRange;
  /** Every VNI argument: 24 bits (RFC 7348 section 5). */
  vni: NativeRange;
  /** Port ids; a switch holds at most max - min + 1 ports at once. */
  portId: NativeRange;
  /** Interface names (a port's, a frame probe's), in UTF-8 bytes: IFNAMSIZ - 1 at most. */
  nameLength: NativeRange;
  /** A port's upper bandwidth limit, bit/s; 0 = none. */
  rateBitsPerSec: NativeRange;
  /** The bound of a packet thread's adaptive poll window, microseconds; 0 = off. */
  pollUs: NativeRange;
}

export interface NativeSwitchOptions {
  /** Underlay IPv4 address the VXLAN socket binds to, dotted quad. */
  underlayIp: string;
  /** UDP port for VXLAN, sent and received (RFC 7348 section 5: 4789); in limits().udpPort. */
  port: number;
  /** Path of a network namespace (e.g. /var/run/netns/x) to open the underlay sockets in, or "". */
  netns: string;
  /**
   * Packet threads, in limits().workers; each owns one queue of every multi-queue TAP and one
   * receive socket.
   */
  workers: number;
  /**
   * Ask the kernel for TAP super-frames (TUNSETOFFLOAD CSUM + TSO4, and USO where it has it).
   * The virtio-net header is always on; coalescing on receive follows each peer's
   * `checksummed`, not this.
   */
  offloads: boolean;
  /** Underlay MTU, in limits().mtu; non-GSO inner frames above it minus 50 are dropped as oversize. */
  underlayMtu: number;
  /**
   * Bound of each packet thread's adaptive poll window, microseconds, in limits().pollUs; 0 = off.
   * After a batch of work a thread keeps looking for more, for a window fitted to the gaps it
   * has seen (at most this), before it sleeps; never after a wake-up with nothing to do
   * (native/poll.h).
   */
  pollUs: number;
}

export interface NativePortSpec {
  /** Interface name inside the namespace; its UTF-8 length in limits().nameLength. */
  name: string;
  /** Network namespace path the TAP lives in, or "" for the switch's own. */
  netns: string;
  /** In limits().vni. */
  vni: number;
  mac: string;
  ipv4: string;
  /** "pod": frames must carry the port's MAC and IPv4 source; "host": only the MAC is checked. */
  kind: "pod" | "host";
  /** TUNSETPERSIST: the device outlives the process, and a later addPort with its name re-attaches. */
  persistent: boolean;
  /** In limits().mtu; the typed Switch also keeps it at most underlayMtu - 50. */
  mtu: number;
  /** Upper bandwidth limit for frames the port sends, bits per second, in limits().rateBitsPerSec; 0 = none. */
  rateBitsPerSec: number;
}

export interface NativeRemote {
  /** In limits().vni. */
  vni: number;
  mac: string;
  ipv4: string;
  /** Underlay IPv4 address of the peer VTEP the endpoint lives behind. */
  vtep: string;
}

export interface NativePeer {
  ip: string;
  /**
   * True when the peer always sends a non-zero outer UDP checksum (this switch does), so the
   * kernel has verified the whole VXLAN payload and received TCP segments may be coalesced.
   * False for e.g. a Linux vxlan device (IPv4 default: checksum 0): frames are delivered one by
   * one and the receiving kernel verifies the inner checksums itself.
   */
  checksummed: boolean;
}

export interface NativePortCounters {
  id: number;
  name: string;
  vni: number;
  /** Frames/bytes the switch took in from the port (what the pod sent), counted as wire segments. */
  inPackets: number;
  inBytes: number;
  /** Frames/bytes the switch delivered to the port. */
  outPackets: number;
  outBytes: number;
}

export interface NativeCounters {
  ports: NativePortCounters[];
  /** Drops by reason; every reason is present, zero or not. See DROP_REASONS in ./switch.ts. */
  drops: Record<string, number>;
  underlay: {
    rxDatagrams: number;
    rxBytes: number;
    txDatagrams: number;
    txBytes: number;
    /** sendmsg/sendmmsg entries; with UDP GSO one entry carries many datagrams. */
    txSends: number;
    /** TAP writes that carried more than one coalesced TCP segment. */
    coalescedWrites: number;
  };
  /** The packet threads' batches of work: found while polling after the last one, or after sleeping. */
  threads: { polledBatches: number; wokenBatches: number };
}

export interface NativeFeatures {
  vnetHdr: boolean;
  tso: boolean;
  /** TAP UDP segmentation offload (Linux 6.2+): pods' UDP GSO sends arrive as super-frames. */
  uso: boolean;
  udpGso: boolean;
  udpGro: boolean;
  multiQueue: boolean;
  workers: number;
  /** The adaptive poll window's bound, microseconds (NativeSwitchOptions.pollUs); 0 = off. */
  pollUs: number;
  /** The kernel has epoll busy-poll parameters (EPIOCSPARAMS, Linux 6.9+): probed and reported, not used. */
  kernelBusyPoll: boolean;
}

/** One recorded drop (native/droplog.h). */
export interface NativeDropEvent {
  /** When, in ms since the epoch (to the microsecond). */
  timeMs: number;
  /** One of dropReasons(). */
  reason: string;
  /** Where the frame came from: a port (`port` is its id), a peer VTEP (`peer`), or unknown. */
  from: "port" | "peer" | "none";
  port?: number;
  peer?: string;
  /** The port's VNI, or the VNI the peer sent on (0 when not known yet). */
  vni: number;
  /** The inner frame's EtherType (0x0800 IPv4, 0x0806 ARP; 0 when not read). */
  ethertype: number;
  /** IPv4 protocol (6 TCP, 17 UDP, 1 ICMP; 0 when not IPv4). */
  protocol: number;
  /** Inner IPv4 source and destination (for ARP: sender and target addresses); null when none. */
  src: string | null;
  dst: string | null;
  /** TCP or UDP ports of a first fragment; 0 otherwise. */
  srcPort: number;
  dstPort: number;
  /** Frames the event stands for (a super-frame's segments). */
  count: number;
}

export interface NativeDropEvents {
  /** Oldest first; at most 512 per packet thread (the most recent). */
  events: NativeDropEvent[];
  /** When recording last started: drops before it were counted, not recorded. */
  recordingSinceMs: number;
  /** Recording stops then unless read again. */
  recordingUntilMs: number;
  /** Drops counted but not recorded (at most 4 per ms per packet thread are), since the switch started. */
  sampledOut: number;
}

/** What Switch.trace asks: a frame from port `port` to `dst`. */
export interface NativeTraceQuery {
  /** A port id, in limits().portId. */
  port: number;
  dst: string;
  /** The address the pod ARPs for: `dst` on its own subnet, else its gateway. */
  nextHop: string;
  /** 6 (TCP SYN), 17 (UDP) or 1 (ICMP echo request). */
  protocol: number;
  /** In limits().udpPort. */
  srcPort: number;
  /** 0-65535 (ignored for ICMP). */
  dstPort: number;
}

/** An endpoint the trace found: a local port (`port`, `portName`) or a remote one (`vtep`). */
export interface NativeTraceEndpoint {
  vni: number;
  mac: string;
  ipv4: string;
  port?: number;
  vtep?: string;
}

/** The forwarding decision's steps on the trace's synthetic frames (native/forward.h). */
export interface NativeTrace {
  source: { name: string; vni: number; mac: string; ipv4: string; kind: "pod" | "host"; global: boolean };
  /** The ARP request for nextHop: `drop` (a reason) or the endpoint the switch answers for. */
  arp: { frame: Buffer; drop: string | null; answer: NativeTraceEndpoint | null };
  /**
   * The IPv4 frame, to the MAC ARP gave (or, unanswered, that the tables hold for nextHop): its
   * drop reason, or null when the switch forwards it to `destination`.
   */
  frame: {
    frame: Buffer;
    drop: string | null;
    destination:
      (NativeTraceEndpoint & { global: boolean; portName?: string; peerProgrammed?: boolean }) | null;
  };
}

/** Port ids (`id`) are in limits().portId, VNIs in limits().vni, rates in limits().rateBitsPerSec. */
export declare class NativeSwitch {
  constructor(options: NativeSwitchOptions);
  /** Returns the new port's id. */
  addPort(spec: NativePortSpec): number;
  /** Detaches at once; resolves once the device's fds are closed (on libuv's pool). */
  removePort(id: number, destroy: boolean): Promise<void>;
  setPortVni(id: number, vni: number): void;
  setPortRate(id: number, rateBitsPerSec: number): void;
  setGlobalVnis(vnis: number[]): void;
  setPeers(peers: NativePeer[]): void;
  /**
   * Removes the MACs in `remove`, then adds or replaces `add` (by MAC, in order), as one table
   * version. Costs what the entries' shards hold, not what the table holds (native/tables.h).
   * When several remotes have one IPv4 address, ARP is answered with the one written last; when
   * it goes or moves, with the one written last among those left.
   */
  updateRemotes(add: NativeRemote[], remove: string[]): void;
  /** Replaces every remote endpoint with `all` (a later duplicate MAC or IPv4 address wins), as one table version. */
  replaceRemotes(all: NativeRemote[]): void;
  /**
   * Inspection, for tests and diagnostics; not a control call and never on the packet path. The
   * remote endpoint the published table holds for `mac` (a unicast MAC), found by the packet
   * threads' own lookup; null when none. Takes the control side's lock.
   */
  lookupRemote(mac: string): NativeRemote | null;
  /** Inspection, as lookupRemote: the remote endpoint that ARP for `ipv4` is answered with; null when none. */
  lookupRemoteByIpv4(ipv4: string): NativeRemote | null;
  /**
   * Inspection, as lookupRemote: every entry of the published remote table's two indexes, in
   * no particular order (by IPv4: one endpoint per address). Costs the whole table.
   */
  remoteEntries(): { byMac: NativeRemote[]; byIpv4: NativeRemote[] };
  /**
   * Whether a frame from a port on `fromVni` may be delivered to a port on `toVni`: the same
   * VNI, or either is global (setGlobalVnis). Runs the packet path's own rule
   * (PolicyTable::Allowed) on the currently published tables; a read on the calling thread that
   * the packet threads never wait for.
   */
  reaches(fromVni: number, toVni: number): boolean;
  counters(): NativeCounters;
  /**
   * Inspection, as lookupRemote: the drop events newer than `sinceMs` (ms since the epoch; 0 for
   * all) that the packet threads recorded, and arms recording for `armMs` more (0-86,400,000).
   * Drops are recorded only while armed, so the first read after a quiet spell starts recording;
   * unread, recording costs the packet path nothing but a load per drop.
   */
  dropEvents(sinceMs: number, armMs: number): NativeDropEvents;
  /**
   * Inspection, as lookupRemote: runs the packet path's forwarding decision (native/forward.h,
   * the code the packet threads run) on a synthetic ARP request and IPv4 frame from a port, on
   * the published tables. Nothing is sent. An unknown port or protocol is an ERR_OVERLAY_SWITCH
   * error.
   */
  trace(query: NativeTraceQuery): NativeTrace;
  features(): NativeFeatures;
  close(): void;
}

export type NativeProbeOptions =
  /** Frame probe: an AF_PACKET socket on `ifname` (e.g. a pod's eth0) in `netns` ("" = own). */
  | { netns: string; ifname: string }
  /** Datagram probe: a UDP socket bound to ip:port (port in limits().udpPort) in `netns` (e.g. a fake peer VTEP). */
  | { netns: string; ip: string; port: number };

export declare class NativeProbe {
  constructor(options: NativeProbeOptions);
  /** Sends a frame, or a datagram to ip:port (datagram probes; port in limits().udpPort). */
  send(data: Buffer, ip?: string, port?: number): void;
  /** Blocks up to timeoutMs (default 1000) for one frame or datagram; null on timeout. */
  receive(timeoutMs?: number): { data: Buffer; from?: string } | null;
  close(): void;
}

/** A pod's interface as CNI ADD leaves it (netlink.configurePod). */
export interface NativePodInterface {
  /** Path of the pod's network namespace (e.g. /run/netns/x, /proc/PID/ns/net); 1-4095 bytes, never "". */
  netns: string;
  /** The interface, which must exist; UTF-8 length in limits().nameLength. */
  ifname: string;
  ipv4: string;
  /** 0-32. */
  prefixLength: number;
  /** Next hop of the default route; must be on the interface's subnet (else ENETUNREACH). */
  gateway: string;
  /** 0 = leave the interface's MTU as it is; otherwise in limits().mtu (the addon takes 0-65535). */
  mtu: number;
}

/** What netlink.inspectLink reads of an interface. */
export interface NativeLinkState {
  mac: string;
  mtu: number;
  /** IFF_UP: administratively up (`ip` lists "UP" among the flags). */
  up: boolean;
  /** IPv4 addresses as "a.b.c.d/len", in the kernel's order. */
  ipv4: string[];
}

/**
 * Plumbing inside a pod's network namespace over rtnetlink (native/netlink.h), starting no
 * process. Each call runs off the JS thread (libuv's pool; the namespace is entered only by a
 * short-lived thread that opens the call's socket) and returns a promise. Bad arguments throw at
 * once (TypeError, RangeError, as the Switch's). A failure of the call itself rejects with an
 * Error of code "ERR_OVERLAY_NETLINK" whose message names the namespace, the step and the reason,
 * e.g. "network namespace /run/netns/p1: set the default route via 10.9.9.9 on eth0: Network is
 * unreachable (ENETUNREACH): Nexthop has invalid gateway". Each kernel answer is awaited at most
 * 5 s. Concurrent calls are fine.
 */
export interface NativeNetlink {
  /**
   * In `netns`: lo up; `ifname` up (and its MTU set, when `mtu` is not 0); `ipv4/prefixLength`
   * replaced on it (`ip addr replace`); the default route replaced by one via `gateway` on it
   * (`ip route replace default via`: main table, protocol boot). Idempotent.
   */
  configurePod(spec: NativePodInterface): Promise<void>;
  /** The interface `ifname` in `netns`; null when there is none (a missing namespace rejects). */
  inspectLink(netns: string, ifname: string): Promise<NativeLinkState | null>;
  /** Creates an IFB device `name` in `netns` unless one of that name exists, and brings it up. */
  addLink(netns: string, name: string, kind: "ifb"): Promise<void>;
  /** Deletes the device `name` in `netns`; resolves whether there was one (absent is no error). */
  deleteLink(netns: string, name: string): Promise<boolean>;
}

export interface NativeBinding {
  Switch: typeof NativeSwitch;
  Probe: typeof NativeProbe;
  dropReasons(): string[];
  /** The limits of native/switch_limits.h; a new object at each call. */
  limits(): NativeLimits;
  netlink: NativeNetlink;
}

/**
 * The data plane as TypeScript sees it: one `Switch` per node, owning packet threads of its own.
 * Every method is synchronous and cheap (it publishes a new table version and returns); no
 * method is called per packet. Arguments are validated here, so native code sees only sane values.
 */
import { isIPv4 } from "node:net";
import { loadNative } from "./load.js";
import type { NativeCounters, NativeFeatures, NativeSwitch } from "./native.js";

export type { NativeCounters as SwitchCounters, NativeFeatures as SwitchFeatures } from "./native.js";

/** The VXLAN port assigned by IANA (RFC 7348 section 5). */
export const VXLAN_PORT = 4789;
/** Outer Ethernet (14) + IPv4 (20) + UDP (8) + VXLAN (8) bytes (RFC 7348 section 5). */
export const VXLAN_OVERHEAD = 50;
export const MAX_VNI = 0xffffff;

export interface SwitchOptions {
  underlayIp: string;
  port?: number;
  /** Open the underlay sockets inside this network namespace (path), instead of the caller's. */
  netns?: string;
  /** Packet threads; default: one per CPU, at most 4. */
  workers?: number;
  /** TAP super-frames (TSO); default true. Off only for tests and comparisons. */
  offloads?: boolean;
  underlayMtu?: number;
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
  /** Interface MTU; default underlay MTU - 50. */
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

const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;
const IFNAME_RE = /^[A-Za-z0-9_.-]{1,15}$/;

function checkVni(vni: number, what = "vni"): void {
  if (!Number.isInteger(vni) || vni < 0 || vni > MAX_VNI) {
    throw new RangeError(`${what} must be an integer from 0 to ${MAX_VNI}, got ${String(vni)}`);
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
  checkVni(r.vni);
  checkUnicastMac(r.mac);
  checkIPv4(r.ipv4, "ipv4");
  checkIPv4(r.vtep, "vtep");
}

export class Switch {
  readonly underlayMtu: number;
  private native: NativeSwitch | undefined;

  constructor(options: SwitchOptions) {
    checkIPv4(options.underlayIp, "underlayIp");
    const port = options.port ?? VXLAN_PORT;
    if (!Number.isInteger(port) || port < 1 || port > 65535)
      throw new RangeError(`port out of range: ${port}`);
    const workers = options.workers ?? 2;
    if (!Number.isInteger(workers) || workers < 1 || workers > 16) {
      throw new RangeError(`workers must be 1..16, got ${workers}`);
    }
    this.underlayMtu = options.underlayMtu ?? 1500;
    if (!Number.isInteger(this.underlayMtu) || this.underlayMtu < 576 || this.underlayMtu > 65535) {
      throw new RangeError(`underlayMtu out of range: ${this.underlayMtu}`);
    }
    const { Switch: NativeSwitchClass } = loadNative();
    this.native = new NativeSwitchClass({
      underlayIp: options.underlayIp,
      port,
      netns: options.netns ?? "",
      workers,
      offloads: options.offloads ?? true,
      underlayMtu: this.underlayMtu,
    });
  }

  private get n(): NativeSwitch {
    if (!this.native) throw new Error("switch is closed");
    return this.native;
  }

  /** Creates (or re-attaches, when persistent) a TAP device and returns its port id. */
  addPort(p: PortOptions): number {
    if (typeof p.name !== "string" || !IFNAME_RE.test(p.name)) {
      throw new TypeError(`port name must be 1-15 of [A-Za-z0-9_.-], got ${String(p.name)}`);
    }
    checkVni(p.vni);
    checkUnicastMac(p.mac);
    checkIPv4(p.ipv4, "ipv4");
    const mtu = p.mtu ?? this.underlayMtu - VXLAN_OVERHEAD;
    if (!Number.isInteger(mtu) || mtu < 576 || mtu > this.underlayMtu - VXLAN_OVERHEAD) {
      throw new RangeError(
        `mtu must be 576..${this.underlayMtu - VXLAN_OVERHEAD} (underlay MTU - 50), got ${mtu}`,
      );
    }
    const rate = p.rateBitsPerSec ?? 0;
    if (!Number.isFinite(rate) || rate < 0) throw new RangeError(`rateBitsPerSec must be >= 0, got ${rate}`);
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

  /** Detaches a port; `destroy` also deletes a persistent device (a plain one dies with its fd). */
  removePort(id: number, options: { destroy?: boolean } = {}): void {
    this.n.removePort(id, options.destroy ?? true);
  }

  /** Moves a running port to another VNI: how namespaces are joined and isolated. */
  setPortVni(id: number, vni: number): void {
    checkVni(vni);
    this.n.setPortVni(id, vni);
  }

  setPortRate(id: number, rateBitsPerSec: number): void {
    if (!Number.isFinite(rateBitsPerSec) || rateBitsPerSec < 0)
      throw new RangeError("rateBitsPerSec must be >= 0");
    this.n.setPortRate(id, Math.floor(rateBitsPerSec));
  }

  /** VNIs whose ports reach, and are reached by, every VNI (the gateway's, cluster services'). */
  setGlobalVnis(vnis: number[]): void {
    for (const v of vnis) checkVni(v, "global vni");
    this.n.setGlobalVnis([...new Set(vnis)]);
  }

  /** The peer VTEPs; VXLAN from any other source is dropped and counted. */
  setPeers(peers: Peer[]): void {
    for (const p of peers) checkIPv4(p.ip, "peer ip");
    this.n.setPeers(peers.map((p) => ({ ip: p.ip, checksummed: p.checksummed ?? true })));
  }

  updateRemotes(add: RemoteEndpoint[], remove: string[] = []): void {
    add.forEach(checkRemote);
    remove.forEach((m) => checkUnicastMac(m, "removed mac"));
    this.n.updateRemotes(
      add.map((r) => ({ ...r, mac: r.mac.toLowerCase() })),
      remove.map((m) => m.toLowerCase()),
    );
  }

  replaceRemotes(all: RemoteEndpoint[]): void {
    all.forEach(checkRemote);
    this.n.replaceRemotes(all.map((r) => ({ ...r, mac: r.mac.toLowerCase() })));
  }

  counters(): NativeCounters {
    return this.n.counters();
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

/** Every drop reason the data plane counts, in the order native/drop_reasons.def declares them. */
export function dropReasons(): string[] {
  return loadNative().dropReasons();
}

/**
 * Plumbing inside a pod's network namespace over rtnetlink, through the addon (native/netlink.h):
 * what `nsenter ... ip` did, without starting a process. Every call runs off the event loop and
 * resolves or rejects; none throws.
 *
 * JS validates, C++ asserts (as for the Switch): each argument is checked here first, and a bad
 * one rejects with a TypeError or RangeError before native code is reached. A failure of the
 * plumbing itself rejects with a `NetlinkError` naming the namespace, the step and the reason
 * (errno text and name, and the kernel's own message where it gives one).
 */
import { isIPv4 } from "node:net";
import { loadNative } from "./load.js";
import type { NativeLinkState, NativeNetlink } from "./native.js";
import { IFNAME_RE } from "./names.js";
import { switchLimits } from "./switch.js";

/** The `code` of every failure of a netlink call itself (not of a bad argument). */
export const NETLINK_ERROR_CODE = "ERR_OVERLAY_NETLINK";

/** Longest namespace path the addon takes: PATH_MAX less its NUL. */
const NETNS_PATH_MAX = 4095;

export interface PodInterfaceSpec {
  /** Absolute path of the pod's network namespace, e.g. /run/netns/x or /proc/PID/ns/net. */
  netns: string;
  /** The interface, which must exist (the switch creates it). */
  ifname: string;
  ipv4: string;
  prefixLength: number;
  /** The default route's next hop, on the interface's subnet. */
  gateway: string;
  /** Set the interface's MTU too (in switchLimits().mtu); absent: leave it as it is. */
  mtu?: number;
}

export type LinkState = NativeLinkState;

/** A rejection of a netlink call: `message` says what was done where, and why. */
export type NetlinkError = Error & { code: typeof NETLINK_ERROR_CODE };

export function isNetlinkError(err: unknown): err is NetlinkError {
  return err instanceof Error && (err as { code?: unknown }).code === NETLINK_ERROR_CODE;
}

function netlink(): NativeNetlink {
  return loadNative().netlink;
}

function show(value: unknown): string {
  return typeof value === "string" ? JSON.stringify(value) : String(value);
}

function checkNetns(netns: unknown): string {
  if (typeof netns !== "string") throw new TypeError(`netns must be a string, got ${show(netns)}`);
  if (!netns.startsWith("/") || netns.includes("\0") || Buffer.byteLength(netns) > NETNS_PATH_MAX) {
    throw new TypeError(
      `netns must be an absolute path of at most ${NETNS_PATH_MAX} bytes, got ${show(netns)}`,
    );
  }
  return netns;
}

function checkIfname(name: unknown, what: string): string {
  if (typeof name !== "string") throw new TypeError(`${what} must be a string, got ${show(name)}`);
  const { min, max } = switchLimits().nameLength;
  const bytes = Buffer.byteLength(name);
  if (bytes < min || bytes > max) {
    throw new RangeError(
      `${what} must be ${min} to ${max} bytes long (switchLimits().nameLength), got ${show(name)}`,
    );
  }
  if (!IFNAME_RE.test(name)) throw new TypeError(`${what} must be of [A-Za-z0-9_.-], got ${show(name)}`);
  return name;
}

function checkIpv4(ip: unknown, what: string): string {
  if (typeof ip !== "string" || !isIPv4(ip)) {
    throw new TypeError(`${what} must be an IPv4 address, got ${show(ip)}`);
  }
  return ip;
}

function checkPrefixLength(n: unknown): number {
  if (typeof n !== "number") throw new TypeError(`prefixLength must be a number, got ${show(n)}`);
  if (!Number.isInteger(n) || n < 0 || n > 32) {
    throw new RangeError(`prefixLength must be an integer from 0 to 32, got ${n}`);
  }
  return n;
}

function checkMtu(mtu: unknown): number {
  if (mtu === undefined) return 0;
  if (typeof mtu !== "number") throw new TypeError(`mtu must be a number, got ${show(mtu)}`);
  const { min, max } = switchLimits().mtu;
  if (!Number.isInteger(mtu) || mtu < min || mtu > max) {
    throw new RangeError(`mtu must be an integer from ${min} to ${max} (switchLimits().mtu), got ${mtu}`);
  }
  return mtu;
}

/**
 * In the pod's namespace: lo up; the interface up (with `mtu` when given); its address replaced;
 * the default route replaced by one via the gateway on it. Idempotent: an ADD retried, or a pod
 * re-attached after a restart, converges to the same state.
 */
export async function configurePodInterface(spec: PodInterfaceSpec): Promise<void> {
  await netlink().configurePod({
    netns: checkNetns(spec.netns),
    ifname: checkIfname(spec.ifname, "ifname"),
    ipv4: checkIpv4(spec.ipv4, "ipv4"),
    prefixLength: checkPrefixLength(spec.prefixLength),
    gateway: checkIpv4(spec.gateway, "gateway"),
    mtu: checkMtu(spec.mtu),
  });
}

/** The interface's MAC, MTU, up flag and IPv4 addresses; undefined when it does not exist. */
export async function inspectLink(netns: string, ifname: string): Promise<LinkState | undefined> {
  const got = await netlink().inspectLink(checkNetns(netns), checkIfname(ifname, "ifname"));
  return got ?? undefined;
}

/** An IFB device `name` in `netns`, created unless it exists, and up. */
export async function addIfb(netns: string, name: string): Promise<void> {
  await netlink().addLink(checkNetns(netns), checkIfname(name, "name"), "ifb");
}

/** Deletes the device `name` in `netns`; resolves whether there was one. */
export async function deleteLink(netns: string, name: string): Promise<boolean> {
  return netlink().deleteLink(checkNetns(netns), checkIfname(name, "name"));
}

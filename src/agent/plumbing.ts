/**
 * Addresses and routes inside a pod's network namespace, and on the node's gateway ports. The
 * switch creates the devices (with MAC, MTU and link up); this sets what `ip` sets. Namespaces
 * are entered by path (CNI_NETNS may be /proc/PID/ns/net, not a named namespace).
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { run } from "../process/run.js";
import { parseIpAddr } from "./interfaces.js";

const TIMEOUT_MS = 5000;

function inNetns(netns: string, args: string[]): Promise<unknown> {
  return run("nsenter", [`--net=${netns}`, "ip", ...args], { timeoutMs: TIMEOUT_MS });
}

export interface PodAddress {
  netns: string;
  ifname: string;
  ip: string;
  prefixLength: number;
  gateway: string;
}

/** Gives the pod's interface its address and a default route via its node's gateway. */
export async function configurePod(a: PodAddress): Promise<void> {
  await inNetns(a.netns, ["link", "set", "lo", "up"]);
  await inNetns(a.netns, ["addr", "replace", `${a.ip}/${a.prefixLength}`, "dev", a.ifname]);
  await inNetns(a.netns, ["route", "replace", "default", "via", a.gateway, "dev", a.ifname]);
}

/** What the pod's namespace holds for its interface, or undefined when the interface is missing. */
export interface PodInterface {
  mac: string;
  mtu: number;
  up: boolean;
  /** IPv4 addresses as "a.b.c.d/len". */
  addresses: string[];
}

export async function inspectPod(netns: string, ifname: string): Promise<PodInterface | undefined> {
  const r = await run("nsenter", [`--net=${netns}`, "ip", "-j", "addr", "show", "dev", ifname], {
    timeoutMs: TIMEOUT_MS,
    allowFailure: true,
  });
  if (r.code !== 0) return undefined;
  const l = parseIpAddr(r.stdout)[0];
  if (l === undefined) return undefined;
  return {
    mac: l.mac,
    mtu: l.mtu,
    up: l.up,
    addresses: l.inet.map((a) => `${a.ip}/${a.prefixLength}`),
  };
}

/** The IFB device that carries what a pod's interface receives through its tier's shaper. */
export function ingressDeviceName(ifname: string): string {
  return `ovin-${ifname}`.slice(0, 15);
}

/** `tc` in the pod's namespace; `command` is split on spaces (names here never hold one). */
function tcInNetns(netns: string, command: string): Promise<unknown> {
  return run("nsenter", [`--net=${netns}`, "tc", ...command.split(" ")], { timeoutMs: TIMEOUT_MS });
}

/**
 * Caps what a pod receives (the switch caps what it sends): frames arriving on its interface are
 * redirected to an IFB device in its namespace and leave that through a token bucket filter,
 * which queues (up to 20 ms) before it drops, so TCP settles at the rate instead of losing whole
 * coalesced super-frames to a policer. Rerunning replaces the settings.
 */
export async function shapePodIngress(netns: string, ifname: string, bitsPerSec: number): Promise<void> {
  const ifb = ingressDeviceName(ifname);
  const exists = await run("nsenter", [`--net=${netns}`, "ip", "link", "show", "dev", ifb], {
    timeoutMs: TIMEOUT_MS,
    allowFailure: true,
  });
  if (exists.code !== 0) await inNetns(netns, ["link", "add", ifb, "type", "ifb"]);
  await inNetns(netns, ["link", "set", ifb, "up"]);
  // Bucket depth: 5 ms at the rate, and never less than one 64 KB super-frame.
  const burst = Math.max(65536, Math.ceil(bitsPerSec / 8 / 200));
  await tcInNetns(
    netns,
    `qdisc replace dev ${ifb} root tbf rate ${bitsPerSec}bit burst ${burst} latency 20ms`,
  );
  await tcInNetns(netns, `qdisc replace dev ${ifname} handle ffff: ingress`);
  await tcInNetns(
    netns,
    `filter replace dev ${ifname} parent ffff: protocol all prio 1 u32 match u32 0 0 action mirred egress redirect dev ${ifb}`,
  );
}

/** Removes a pod interface's IFB device, if any (its ingress qdisc went with the interface). */
export async function removePodIngress(netns: string, ifname: string): Promise<void> {
  await run("nsenter", [`--net=${netns}`, "ip", "link", "del", "dev", ingressDeviceName(ifname)], {
    timeoutMs: TIMEOUT_MS,
    allowFailure: true,
  });
}

export function netnsExists(netns: string): boolean {
  return netns !== "" && existsSync(netns);
}

/**
 * The node's own address on a gateway port. The first gateway port carries the overlay subnet's
 * route (the node reaches every pod through it); further ones (one per extra address block)
 * carry only their /32, to answer for their gateway address.
 */
export async function configureGateway(
  ifname: string,
  ip: string,
  prefixLength: number,
  primary: boolean,
): Promise<void> {
  await run("ip", ["addr", "replace", `${ip}/${primary ? prefixLength : 32}`, "dev", ifname], {
    timeoutMs: TIMEOUT_MS,
  });
}

/**
 * Lets pods reach beyond the overlay through their node: forwarding on, and traffic from the
 * overlay subnet to anywhere else masqueraded behind the node's own address. One nftables table
 * of the agent's own ("overlay"), replaced atomically, so rerunning is harmless.
 */
export async function configureMasquerade(subnet: string): Promise<void> {
  writeFileSync("/proc/sys/net/ipv4/ip_forward", "1\n");
  const dir = mkdtempSync(join(tmpdir(), "overlay-nft-"));
  const file = join(dir, "rules.nft");
  writeFileSync(
    file,
    [
      "add table ip overlay",
      "delete table ip overlay",
      "table ip overlay {",
      "  chain postrouting {",
      "    type nat hook postrouting priority srcnat; policy accept;",
      `    ip saddr ${subnet} ip daddr != ${subnet} masquerade`,
      "  }",
      "}",
      "",
    ].join("\n"),
  );
  try {
    await run("nft", ["-f", file], { timeoutMs: TIMEOUT_MS });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Removes the agent's nftables table, when the node no longer serves an overlay; absent is fine. */
export async function removeMasquerade(): Promise<void> {
  // `add` first: it is a no-op on an existing table, and makes `delete` unable to fail for absence.
  await run("nft", ["add", "table", "ip", "overlay"], { timeoutMs: TIMEOUT_MS });
  await run("nft", ["delete", "table", "ip", "overlay"], { timeoutMs: TIMEOUT_MS });
}

/**
 * Everything the agent does to pods' namespaces and to the node outside its switch, as one
 * interface: the agent's decisions (ADD rollback, DEL, GC, reconcile) are tested with a fake of
 * it, without root (test/agent/*.unit.test.ts). `hostPlumbing` is the real one.
 */
export interface Plumbing {
  netnsExists(netns: string): boolean;
  configurePod(a: PodAddress): Promise<void>;
  inspectPod(netns: string, ifname: string): Promise<PodInterface | undefined>;
  shapePodIngress(netns: string, ifname: string, bitsPerSec: number): Promise<void>;
  removePodIngress(netns: string, ifname: string): Promise<void>;
  configureGateway(ifname: string, ip: string, prefixLength: number, primary: boolean): Promise<void>;
  configureMasquerade(subnet: string): Promise<void>;
  removeMasquerade(): Promise<void>;
}

export const hostPlumbing: Plumbing = {
  netnsExists,
  configurePod,
  inspectPod,
  shapePodIngress,
  removePodIngress,
  configureGateway,
  configureMasquerade,
  removeMasquerade,
};

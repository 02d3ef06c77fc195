/**
 * Addresses and routes inside a pod's network namespace, and on the node's gateway ports. The
 * switch creates the pod's device (with MAC, MTU and link up); the rest of a pod's side is set
 * over rtnetlink by the addon (src/dataplane/netlink.ts): lo up, the address, the default route,
 * and reading it back for CNI CHECK. A best-effort pod's ADD and DEL start no process. Processes
 * remain where netlink would be a long detour: `tc` for a tiered pod's ingress shaper (its IFB
 * device itself is netlink's), and on the node `ip addr` for gateway ports and `nft` for
 * masquerade, both run when the node's networks change, not per pod. Namespaces are entered by
 * path (CNI_NETNS may be /proc/PID/ns/net, not a named namespace).
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { addIfb, configurePodInterface, deleteLink, inspectLink } from "../dataplane/netlink.js";
import { run } from "../process/run.js";

const TIMEOUT_MS = 5000;

/** How the host plumbing starts a process (`run` of src/process/run.ts); tests count its calls. */
export type Runner = typeof run;

export interface PodAddress {
  netns: string;
  ifname: string;
  ip: string;
  prefixLength: number;
  gateway: string;
}

/**
 * Gives the pod's interface its address and a default route via its node's gateway, and brings
 * lo up: one netlink socket in the pod's namespace, no process. Rerunning changes nothing.
 */
export async function configurePod(a: PodAddress): Promise<void> {
  await configurePodInterface({
    netns: a.netns,
    ifname: a.ifname,
    ipv4: a.ip,
    prefixLength: a.prefixLength,
    gateway: a.gateway,
  });
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
  const l = await inspectLink(netns, ifname);
  if (l === undefined) return undefined;
  return { mac: l.mac, mtu: l.mtu, up: l.up, addresses: l.ipv4 };
}

/** The IFB device that carries what a pod's interface receives through its tier's shaper. */
export function ingressDeviceName(ifname: string): string {
  return `ovin-${ifname}`.slice(0, 15);
}

/**
 * Caps what a pod receives (the switch caps what it sends): frames arriving on its interface are
 * redirected to an IFB device in its namespace and leave that through a token bucket filter,
 * which queues (up to 20 ms) before it drops, so TCP settles at the rate instead of losing whole
 * coalesced super-frames to a policer. Rerunning replaces the settings. The IFB device is made
 * over netlink; the qdiscs and the filter by three `tc` processes (netlink's tc messages would be
 * a large detour for one tier's shaper).
 */
export async function shapePodIngress(
  runner: Runner,
  netns: string,
  ifname: string,
  bitsPerSec: number,
): Promise<void> {
  const tc = (command: string) =>
    runner("nsenter", [`--net=${netns}`, "tc", ...command.split(" ")], { timeoutMs: TIMEOUT_MS });
  const ifb = ingressDeviceName(ifname);
  await addIfb(netns, ifb);
  // Bucket depth: 5 ms at the rate, and never less than one 64 KB super-frame.
  const burst = Math.max(65536, Math.ceil(bitsPerSec / 8 / 200));
  await tc(`qdisc replace dev ${ifb} root tbf rate ${bitsPerSec}bit burst ${burst} latency 20ms`);
  await tc(`qdisc replace dev ${ifname} handle ffff: ingress`);
  await tc(
    `filter replace dev ${ifname} parent ffff: protocol all prio 1 u32 match u32 0 0 action mirred egress redirect dev ${ifb}`,
  );
}

/**
 * Removes a pod interface's IFB device, if any (its ingress qdisc went with the interface). A
 * failure is not the DEL's: the device goes with the namespace anyway.
 */
export async function removePodIngress(netns: string, ifname: string): Promise<void> {
  await deleteLink(netns, ingressDeviceName(ifname)).catch(() => false);
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
  runner: Runner,
  ifname: string,
  ip: string,
  prefixLength: number,
  primary: boolean,
): Promise<void> {
  await runner("ip", ["addr", "replace", `${ip}/${primary ? prefixLength : 32}`, "dev", ifname], {
    timeoutMs: TIMEOUT_MS,
  });
}

/**
 * Lets pods reach beyond the overlay through their node: forwarding on, and traffic from the
 * overlay subnet to anywhere else masqueraded behind the node's own address. One nftables table
 * of the agent's own ("overlay"), replaced atomically, so rerunning is harmless.
 */
export async function configureMasquerade(runner: Runner, subnet: string): Promise<void> {
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
    await runner("nft", ["-f", file], { timeoutMs: TIMEOUT_MS });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Removes the agent's nftables table, when the node no longer serves an overlay; absent is fine. */
export async function removeMasquerade(runner: Runner): Promise<void> {
  // `add` first: it is a no-op on an existing table, and makes `delete` unable to fail for absence.
  await runner("nft", ["add", "table", "ip", "overlay"], { timeoutMs: TIMEOUT_MS });
  await runner("nft", ["delete", "table", "ip", "overlay"], { timeoutMs: TIMEOUT_MS });
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

/**
 * The real plumbing, starting what processes it starts through `runner` (tests pass one that
 * counts, to prove a best-effort pod's ADD and DEL start none).
 */
export function createHostPlumbing(runner: Runner = run): Plumbing {
  return {
    netnsExists,
    configurePod,
    inspectPod,
    shapePodIngress: (netns, ifname, bitsPerSec) => shapePodIngress(runner, netns, ifname, bitsPerSec),
    removePodIngress,
    configureGateway: (ifname, ip, prefixLength, primary) =>
      configureGateway(runner, ifname, ip, prefixLength, primary),
    configureMasquerade: (subnet) => configureMasquerade(runner, subnet),
    removeMasquerade: () => removeMasquerade(runner),
  };
}

export const hostPlumbing: Plumbing = createHostPlumbing();

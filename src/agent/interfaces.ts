/**
 * Reading `ip -j addr` (iproute2's JSON): the node's management network, at the agent's start.
 * Parsed in one place. (A pod's interface, as CNI CHECK inspects it, is read over netlink.)
 */
import { formatIpv4, parseIpv4 } from "../model/ipv4.js";

export interface InterfaceAddresses {
  ifname: string;
  mac: string;
  mtu: number;
  up: boolean;
  /** IPv4 addresses. */
  inet: { ip: string; prefixLength: number }[];
}

export function parseIpAddr(json: string): InterfaceAddresses[] {
  const links = JSON.parse(json) as {
    ifname?: string;
    address?: string;
    mtu?: number;
    flags?: string[];
    addr_info?: { family: string; local: string; prefixlen: number }[];
  }[];
  return links.map((l) => ({
    ifname: l.ifname ?? "",
    mac: l.address ?? "",
    mtu: l.mtu ?? 0,
    up: (l.flags ?? []).includes("UP"),
    inet: (l.addr_info ?? [])
      .filter((a) => a.family === "inet")
      .map((a) => ({ ip: a.local, prefixLength: a.prefixlen })),
  }));
}

/** The management network of the interface holding `ip`, e.g. "10.0.0.0/24", from `ip -j addr`. */
export function managementCidrOf(addrJson: string, ip: string): { cidr: string; mtu: number } | undefined {
  for (const l of parseIpAddr(addrJson)) {
    for (const a of l.inet) {
      if (a.ip !== ip) continue;
      const n = parseIpv4(a.ip);
      if (n === undefined) continue;
      const mask = a.prefixLength === 0 ? 0 : (0xffffffff << (32 - a.prefixLength)) >>> 0;
      return { cidr: `${formatIpv4((n & mask) >>> 0)}/${a.prefixLength}`, mtu: l.mtu || 1500 };
    }
  }
  return undefined;
}

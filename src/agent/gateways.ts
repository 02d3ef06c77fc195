/**
 * The node's own ports on the overlay: one gateway port per address block the node owns, on the
 * global VNI, carrying the block's gateway address (pods' default route; the node reaches every
 * pod through the first one), and masquerade so pods reach beyond the overlay through the node.
 * When the node serves no network any more, its masquerade table goes too.
 */
import type { Logger } from "pino";
import { parseCidr } from "../model/ipv4.js";
import { GLOBAL_VNI } from "../model/namespaces.js";
import type { GatewayPort } from "./desired.js";
import type { Plumbing } from "./plumbing.js";
import type { AgentSwitch } from "./ports.js";

/** Name of the gateway port for a block: "ovgw" and the block's third and fourth octet in hex. */
export function gatewayPortName(block: string): string {
  const cidr = parseCidr(block);
  const low = cidr ? cidr.address & 0xffff : 0;
  return `ovgw${low.toString(16).padStart(4, "0")}`;
}

export class Gateways {
  /** Block -> its port. */
  private readonly ports = new Map<string, { id: number; name: string }>();
  /** Subnet masqueraded by this node's nftables table; "" none; undefined unknown (a table may be left from an earlier run). */
  private masqueraded: string | undefined = undefined;

  constructor(
    private readonly plumbing: Plumbing,
    private readonly log: Logger,
    private readonly podMtu: number,
  ) {}

  all(): { id: number; name: string }[] {
    return [...this.ports.values()];
  }

  /** Brings the gateway ports (and masquerade) to `wanted`: this node's blocks. */
  async reconcile(sw: AgentSwitch, wanted: readonly GatewayPort[]): Promise<void> {
    for (const [block, gw] of this.ports) {
      if (wanted.some((g) => g.block === block)) continue;
      await sw.removePort(gw.id, { destroy: true });
      this.ports.delete(block);
    }
    if (wanted.length === 0 && this.masqueraded !== "") await this.unmasquerade();
    for (const [i, g] of wanted.entries()) {
      if (this.ports.has(g.block)) continue;
      const name = gatewayPortName(g.block);
      try {
        const id = sw.addPort({
          name,
          kind: "host",
          vni: GLOBAL_VNI,
          mac: g.mac,
          ipv4: g.ip,
          persistent: true,
          mtu: this.podMtu,
        });
        const prefix = parseCidr(g.subnet)?.prefixLength ?? 16;
        await this.plumbing.configureGateway(name, g.ip, prefix, i === 0);
        this.ports.set(g.block, { id, name });
        if (i === 0) await this.masquerade(g.subnet);
        this.log.info({ block: g.block, gateway: g.ip, port: name }, "gateway port up");
      } catch (err) {
        this.log.error({ block: g.block, err: String(err) }, "cannot create gateway port");
      }
    }
  }

  private async masquerade(subnet: string): Promise<void> {
    if (this.masqueraded === subnet) return;
    try {
      await this.plumbing.configureMasquerade(subnet);
      this.masqueraded = subnet;
      this.log.info({ subnet }, "pods reach beyond the overlay through this node (masquerade)");
    } catch (err) {
      this.log.warn(
        { err: String(err) },
        "masquerade not configured: pods reach only the overlay and this node",
      );
    }
  }

  /** The network is gone from this node: its masquerade rule goes too. */
  private async unmasquerade(): Promise<void> {
    try {
      await this.plumbing.removeMasquerade();
      if (this.masqueraded)
        this.log.info({ subnet: this.masqueraded }, "masquerade removed: no overlay on this node");
    } catch (err) {
      this.log.warn({ err: String(err) }, "cannot remove the masquerade table (nftables)");
    }
    this.masqueraded = "";
  }
}

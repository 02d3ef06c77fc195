/**
 * Departed nodes: a node whose registration (a leased key) has been gone for a grace period
 * (measured by this agent, from when it first saw the node's records without its registration)
 * has its endpoints deleted, their addresses returned to the pool and its empty blocks released,
 * by the model's releaseDepartedNode (src/model/departed.ts), whose every write requires the
 * node's key to be absent. Every agent may do this for every departed node.
 */
import type { Logger } from "pino";
import { releaseDepartedNode } from "../model/departed.js";
import type { Store } from "../store/store.js";
import { ClusterRecords, type ClusterSnapshot } from "./cluster.js";

/** What the departed-node GC reads of the cluster: small, whatever the cluster's size. */
export interface DepartureView {
  /** Registered nodes. */
  registered: ReadonlySet<string>;
  /** Nodes that own endpoints or blocks. */
  owners: ReadonlySet<string>;
  networks: readonly string[];
}

export function departureView(c: ClusterRecords | ClusterSnapshot): DepartureView {
  if (c instanceof ClusterRecords) {
    return {
      registered: new Set([...c.nodes()].map((n) => n.name)),
      owners: c.owners(),
      networks: [...c.networks()].map((n) => n.name),
    };
  }
  return {
    registered: new Set(c.nodes.map((n) => n.name)),
    owners: new Set([...c.blocks.map((b) => b.node), ...c.endpoints.map((e) => e.node)]),
    networks: [...new Set(c.networks.map((n) => n.name))],
  };
}

/** Nodes that own blocks or endpoints but have no registration. */
export function unregisteredNodes(v: DepartureView, self: string): Set<string> {
  const out = new Set<string>();
  for (const n of v.owners) if (!v.registered.has(n) && n !== self) out.add(n);
  return out;
}

export interface DepartedNodeGcOptions {
  store: Store;
  self: string;
  logger: Logger;
  /** How long a node's registration must have been gone before its addresses are released. */
  graceMs: number;
  /** How often to look (default a quarter of the grace period, at least 250 ms). */
  intervalMs?: number;
}

/** Watches the agent's view for departed nodes and releases what they held once the grace is up. */
export class DepartedNodeGc {
  /** Node -> when this agent first saw it without a registration. */
  private readonly missingSince = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  constructor(private readonly opts: DepartedNodeGcOptions) {}

  start(cluster: () => ClusterRecords | undefined): void {
    const every = this.opts.intervalMs ?? Math.max(250, Math.floor(this.opts.graceMs / 4));
    this.timer = setInterval(() => {
      const s = cluster();
      if (s === undefined || this.running !== undefined) return;
      this.running = this.tick(s, Date.now()).finally(() => (this.running = undefined));
    }, every);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }

  /** Notes which nodes are missing now, and releases those missing for longer than the grace. */
  async tick(c: ClusterRecords | ClusterSnapshot, nowMs: number): Promise<void> {
    const v = departureView(c);
    const missing = unregisteredNodes(v, this.opts.self);
    for (const node of [...this.missingSince.keys()]) if (!missing.has(node)) this.missingSince.delete(node);
    for (const node of missing) {
      const since = this.missingSince.get(node);
      if (since === undefined) {
        this.missingSince.set(node, nowMs);
        this.opts.logger.info(
          { departed: node, graceMs: this.opts.graceMs },
          "node registration gone; releasing its addresses after the grace period",
        );
        continue;
      }
      if (nowMs - since < this.opts.graceMs) continue;
      try {
        const r = await releaseDepartedNode(this.opts.store, node, v.networks);
        this.missingSince.delete(node);
        if (r.endpoints.length + r.addresses.length + r.blocks.length > 0) {
          this.opts.logger.info({ departed: node, ...r }, "released a departed node's endpoints and blocks");
        }
      } catch (err) {
        this.opts.logger.warn({ departed: node, err: String(err) }, "cannot release a departed node yet");
      }
    }
  }
}

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
import type { ClusterSnapshot } from "./view.js";

/** Nodes that own blocks or endpoints in the snapshot but have no registration. */
export function unregisteredNodes(s: ClusterSnapshot, self: string): Set<string> {
  const registered = new Set(s.nodes.map((n) => n.name));
  const out = new Set<string>();
  for (const b of s.blocks) if (!registered.has(b.node)) out.add(b.node);
  for (const e of s.endpoints) if (!registered.has(e.node)) out.add(e.node);
  out.delete(self);
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

  start(snapshot: () => ClusterSnapshot | undefined): void {
    const every = this.opts.intervalMs ?? Math.max(250, Math.floor(this.opts.graceMs / 4));
    this.timer = setInterval(() => {
      const s = snapshot();
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
  async tick(s: ClusterSnapshot, nowMs: number): Promise<void> {
    const missing = unregisteredNodes(s, this.opts.self);
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
      const networks = [...new Set(s.networks.map((n) => n.name))];
      try {
        const r = await releaseDepartedNode(this.opts.store, node, networks);
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

/**
 * Departed nodes: a node whose registration (a leased key) has been gone for a grace period
 * (measured by this agent, from when it first saw the node's records without its registration)
 * has its endpoints deleted, their addresses returned to the pool and its empty blocks released.
 *
 * Every agent may do this for every departed node. Each write is one transaction that also
 * requires the node's key to be absent (modRevision 0), so a node that registers again in the
 * meantime keeps everything, and agents racing on one node do the work once between them.
 */
import type { Logger } from "pino";
import {
  addressKey,
  addressesPrefix,
  blockAddressesPrefix,
  blocksPrefix,
  endpointsPrefix,
  nodeKey,
} from "../model/keys.js";
import { parseAddress, parseBlock, parseEndpoint, type EndpointRecord } from "../model/records.js";
import { listParsed } from "../model/storeutil.js";
import type { Store } from "../store/store.js";
import type { ClusterSnapshot } from "./view.js";

export interface DepartedNodeResult {
  node: string;
  endpoints: string[];
  addresses: string[];
  blocks: string[];
}

/** Nodes that own blocks or endpoints in the snapshot but have no registration. */
export function unregisteredNodes(s: ClusterSnapshot, self: string): Set<string> {
  const registered = new Set(s.nodes.map((n) => n.name));
  const out = new Set<string>();
  for (const b of s.blocks) if (!registered.has(b.node)) out.add(b.node);
  for (const e of s.endpoints) if (!registered.has(e.node)) out.add(e.node);
  out.delete(self);
  return out;
}

/**
 * Releases everything a departed node holds in the given networks: endpoints (with their
 * addresses), addresses without an endpoint, then its empty blocks. Each step requires the node's
 * key to be absent, so nothing is released while (or once again) the node is registered.
 */
export async function releaseDepartedNode(
  store: Store,
  node: string,
  networks: readonly string[],
): Promise<DepartedNodeResult> {
  const result: DepartedNodeResult = { node, endpoints: [], addresses: [], blocks: [] };
  const absent = { key: nodeKey(node), modRevision: 0 };
  for (const network of networks) {
    const endpoints = await listParsed(store, endpointsPrefix(network), parseEndpoint);
    for (const { value: e, kv } of endpoints.entries) {
      if (e.node !== node) continue;
      const txn = await store.txn(
        [absent, { key: kv.key, modRevision: kv.modRevision }],
        [
          { type: "delete", key: kv.key },
          { type: "delete", key: addressKey(e.network, e.block, e.ip) },
        ],
      );
      if (txn.succeeded) result.endpoints.push(endpointName(e));
    }
    // Addresses the node took without an endpoint (a crash between allocating and recording).
    const addresses = await listParsed(store, addressesPrefix(network), parseAddress);
    for (const { value: a, kv } of addresses.entries) {
      if (a.node !== node) continue;
      const txn = await store.txn(
        [absent, { key: kv.key, modRevision: kv.modRevision }],
        [{ type: "delete", key: kv.key }],
      );
      if (txn.succeeded) result.addresses.push(a.ip);
    }
    const blocks = await listParsed(store, blocksPrefix(network), parseBlock);
    for (const { value: b, kv } of blocks.entries) {
      if (b.node !== node) continue;
      const txn = await store.txn(
        [
          absent,
          { key: kv.key, modRevision: kv.modRevision },
          { prefix: blockAddressesPrefix(network, b.cidr), maxModRevision: 0 },
        ],
        [{ type: "delete", key: kv.key }],
      );
      if (txn.succeeded) result.blocks.push(`${network}:${b.cidr}`);
    }
  }
  return result;
}

function endpointName(e: EndpointRecord): string {
  return `${e.network}/${e.namespace}/${e.pod} ${e.ip}`;
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

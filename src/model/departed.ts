/**
 * Releasing what a departed node held: a node whose registration (a leased key) is gone loses its
 * endpoints, their addresses, addresses it took without an endpoint, and its empty blocks.
 *
 * Every write is one transaction that also requires the node's key to be absent (modRevision 0),
 * so a node that registers again in the meantime keeps everything, and agents racing on one node
 * do the work once between them. When a node counts as departed (how long its registration must
 * have been gone) is the caller's decision: see src/agent/gc.ts.
 */
import type { Store } from "../store/store.js";
import {
  addressKey,
  addressesPrefix,
  blockAddressesPrefix,
  blocksPrefix,
  endpointsPrefix,
  nodeKey,
} from "./keys.js";
import { parseAddress, parseBlock, parseEndpoint } from "./records.js";
import { listParsed } from "./storeutil.js";

export interface DepartedNodeResult {
  node: string;
  /** "network/namespace/pod ip" of each endpoint released. */
  endpoints: string[];
  addresses: string[];
  /** "network:cidr" of each block released. */
  blocks: string[];
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
      if (txn.succeeded) result.endpoints.push(`${e.network}/${e.namespace}/${e.pod} ${e.ip}`);
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

/**
 * Address management. The network's /16 is carved into blocks (/24 by default). A node claims a
 * free block with one compare-and-swap transaction; its pods take addresses from its blocks; a
 * node whose blocks are full claims another. In every block the first address is the network
 * address and the last the broadcast address (kept unused so that no pod ever holds an address
 * that tools read as special), and the first usable one is the node's gateway.
 *
 * Every address is a key of its own; taking one is a transaction that requires the key not to
 * exist (modRevision 0), so concurrent allocations, from any number of processes and store
 * clients, never hand out one address twice. Releasing deletes the key.
 */
import type { Compare, Op, Store, TxnResult } from "../store/store.js";
import { OverlayError, invalid } from "./errors.js";
import { blockSize, contains, formatCidr, formatIpv4, parseCidr, parseIpv4, type Ipv4Cidr } from "./ipv4.js";
import {
  addressKey,
  addressesPrefix,
  blockAddressesPrefix,
  blockKey,
  blocksPrefix,
  networkKey,
} from "./keys.js";
import { checkNodeName } from "./names.js";
import { getNetwork } from "./network.js";
import {
  encode,
  now,
  parseAddress,
  parseBlock,
  type AddressOwner,
  type AddressRecord,
  type BlockRecord,
  type Entry,
  type Listing,
  type NetworkRecord,
} from "./records.js";
import { RETRY, listParsed, retrying } from "./storeutil.js";

/** Deterministic MAC of a pod address: 0a:58 (locally administered) and the four IPv4 bytes. */
export function macFromIpv4(ip: string): string {
  const value = parseIpv4(ip);
  if (value === undefined) throw invalid(`invalid IPv4 address "${ip}"`);
  const bytes = [0x0a, 0x58, value >>> 24, (value >>> 16) & 0xff, (value >>> 8) & 0xff, value & 0xff];
  return bytes.map((b) => b.toString(16).padStart(2, "0")).join(":");
}

function cidrOf(text: string): Ipv4Cidr {
  const cidr = parseCidr(text);
  if (cidr === undefined) throw invalid(`invalid CIDR "${text}"`);
  return cidr;
}

/** The node gateway of a block: its first usable address. */
export function blockGateway(block: string): string {
  return formatIpv4(cidrOf(block).address + 1);
}

/** The addresses of a block pods may take: all but network, gateway and broadcast. */
export function podAddressRange(block: string): { first: number; last: number } {
  const cidr = cidrOf(block);
  return { first: cidr.address + 2, last: cidr.address + blockSize(cidr.prefixLength) - 2 };
}

/** Every block of the network's subnet, in address order. */
export function allBlocks(network: NetworkRecord): string[] {
  const subnet = cidrOf(network.subnet);
  const count = blockSize(subnet.prefixLength) / blockSize(network.blockPrefix);
  const size = blockSize(network.blockPrefix);
  const blocks: string[] = [];
  for (let i = 0; i < count; i++) {
    blocks.push(formatCidr({ address: subnet.address + i * size, prefixLength: network.blockPrefix }));
  }
  return blocks;
}

/** The block of the network an address belongs to. */
export function blockOf(network: NetworkRecord, ip: string): string {
  const value = parseIpv4(ip);
  const subnet = cidrOf(network.subnet);
  if (value === undefined || !contains(subnet, value)) {
    throw invalid(`address "${ip}" is not in the subnet ${network.subnet} of network ${network.name}`);
  }
  const size = blockSize(network.blockPrefix);
  return formatCidr({
    address: value - ((value - subnet.address) % size),
    prefixLength: network.blockPrefix,
  });
}

export async function listBlocks(store: Store, network: string): Promise<Listing<BlockRecord>> {
  return listParsed(store, blocksPrefix(network), parseBlock);
}

export async function listBlockAddresses(
  store: Store,
  network: string,
  block: string,
): Promise<Listing<AddressRecord>> {
  return listParsed(store, blockAddressesPrefix(network, block), parseAddress);
}

export interface NodeBlock {
  cidr: string;
  gateway: string;
}

/** The blocks a node holds, each with its gateway address, in address order. */
export async function nodeBlocks(store: Store, network: string, node: string): Promise<NodeBlock[]> {
  const blocks = await listBlocks(store, network);
  return sortBlocks(blocks.entries.filter((e) => e.value.node === node)).map((e) => ({
    cidr: e.value.cidr,
    gateway: blockGateway(e.value.cidr),
  }));
}

function sortBlocks(entries: Entry<BlockRecord>[]): Entry<BlockRecord>[] {
  const addr = (e: Entry<BlockRecord>): number => parseCidr(e.value.cidr)?.address ?? 0;
  return [...entries].sort((a, b) => addr(a) - addr(b));
}

function poolExhausted(network: NetworkRecord, node: string): OverlayError {
  const count = allBlocks(network).length;
  return new OverlayError(
    "EXHAUSTED",
    `address pool of network ${network.name} (${network.subnet}) is exhausted: all ${count} blocks of /${network.blockPrefix} are claimed and the blocks of node ${node} are full`,
    { network: network.name, node },
  );
}

/**
 * Claims the lowest free block for the node, in one transaction that also requires that no block
 * was claimed since `blocksRevision`, so that concurrent allocations on one node that all find
 * its blocks full claim one new block between them, not one each. Returns false when another
 * writer got there first (the caller reads again).
 */
async function claimBlock(
  store: Store,
  net: Entry<NetworkRecord>,
  node: string,
  blocks: Listing<BlockRecord>,
): Promise<boolean> {
  const network = net.value;
  const taken = new Set(blocks.entries.map((e) => e.value.cidr));
  for (const p of blocks.problems)
    taken.add(p.key.slice(blocksPrefix(network.name).length).replace("-", "/"));
  const free = allBlocks(network).find((b) => !taken.has(b));
  if (free === undefined) throw poolExhausted(network, node);
  const record: BlockRecord = { schemaVersion: 1, network: network.name, cidr: free, node, claimedAt: now() };
  const key = blockKey(network.name, free);
  const txn = await store.txn(
    [
      { key: net.kv.key, modRevision: net.kv.modRevision },
      { prefix: blocksPrefix(network.name), maxModRevision: blocks.revision },
      { key, modRevision: 0 },
    ],
    [{ type: "put", key, value: encode(record) }],
  );
  return txn.succeeded;
}

/**
 * Makes sure the node holds at least one block and returns its blocks (the agent calls this at
 * start so that its gateway address exists before the first pod does).
 */
export async function ensureNodeBlock(store: Store, network: string, node: string): Promise<NodeBlock[]> {
  checkNodeName(node);
  return retrying(
    `claiming a block for node ${node}`,
    async () => {
      const net = await getNetwork(store, network);
      const blocks = await listBlocks(store, network);
      const mine = blocks.entries.filter((e) => e.value.node === node);
      if (mine.length > 0) return nodeBlocks(store, network, node);
      await claimBlock(store, net, node, blocks);
      return RETRY;
    },
    { contended: `the address blocks of network ${network}` },
  );
}

export interface Allocation {
  network: string;
  ip: string;
  /** The overlay subnet's prefix length (pods see the whole /16 as on-link). */
  prefixLength: number;
  gateway: string;
  mac: string;
  block: string;
  node: string;
}

export interface AllocateInput {
  network: string;
  node: string;
  owner: AddressOwner;
}

/**
 * Extra conditions and writes to commit in the same transaction as an allocation (an endpoint
 * record, say), so that the address and what uses it appear together or not at all.
 */
export type WithAllocation = (allocation: Allocation) => Promise<{ compares: Compare[]; ops: Op[] }>;

/**
 * Per store handle, the addresses ("network ip") its allocations are committing now. Concurrent
 * allocations through one handle (an agent serving many ADDs at once) pick around them instead
 * of all taking the lowest free address, of which one would win and the rest read and try again.
 * The store's transaction still decides; this only spares the losing rounds.
 */
const committingByStore = new WeakMap<Store, Set<string>>();

/** Takes a free address from the node's blocks (claiming a block if they are full). */
export async function allocateAddress(
  store: Store,
  input: AllocateInput,
  also?: WithAllocation,
): Promise<Allocation> {
  checkNodeName(input.node);
  let collided = false;
  let committing = committingByStore.get(store);
  if (committing === undefined) committingByStore.set(store, (committing = new Set()));
  return retrying(
    `allocating an address for ${input.owner.namespace}/${input.owner.pod}`,
    async () => {
      const net = await getNetwork(store, input.network);
      const network = net.value;
      const blocks = await listBlocks(store, network.name);
      const mine = sortBlocks(blocks.entries.filter((e) => e.value.node === input.node));
      for (const block of mine) {
        const addresses = await listBlockAddresses(store, network.name, block.value.cidr);
        const used = new Set(addresses.entries.map((e) => e.value.ip));
        for (const p of addresses.problems) used.add(p.key.slice(p.key.lastIndexOf("/") + 1));
        const range = podAddressRange(block.value.cidr);
        const free: number[] = [];
        for (let a = range.first; a <= range.last; a++) {
          const ip = formatIpv4(a);
          if (!used.has(ip) && !committing.has(`${network.name} ${ip}`)) free.push(a);
        }
        if (free.length === 0) continue;
        // The first try takes the lowest free address; a retry, having lost a race (to another
        // process), picks at random so that many concurrent allocators stop colliding.
        const pick = collided ? free[Math.floor(Math.random() * free.length)] : free[0];
        const ip = formatIpv4(pick as number);
        const intent = `${network.name} ${ip}`;
        const allocation: Allocation = {
          network: network.name,
          ip,
          prefixLength: cidrOf(network.subnet).prefixLength,
          gateway: blockGateway(block.value.cidr),
          mac: macFromIpv4(ip),
          block: block.value.cidr,
          node: input.node,
        };
        const record: AddressRecord = {
          schemaVersion: 1,
          network: network.name,
          ip,
          block: block.value.cidr,
          node: input.node,
          owner: { ...input.owner },
          allocatedAt: now(),
        };
        const key = addressKey(network.name, block.value.cidr, ip);
        committing.add(intent);
        let txn: TxnResult;
        try {
          const extra = (await also?.(allocation)) ?? { compares: [], ops: [] };
          txn = await store.txn(
            [
              { key: networkKey(network.name), modRevision: net.kv.modRevision },
              { key: block.kv.key, modRevision: block.kv.modRevision },
              { key, modRevision: 0 },
              ...extra.compares,
            ],
            [{ type: "put", key, value: encode(record) }, ...extra.ops],
          );
        } finally {
          committing.delete(intent);
        }
        if (txn.succeeded) return allocation;
        collided = true;
        return RETRY;
      }
      await claimBlock(store, net, input.node, blocks);
      return RETRY;
    },
    { contended: `the addresses of node ${input.node} on network ${input.network}` },
  );
}

export interface ReleaseInput {
  network: string;
  ip: string;
  /** When given, the address is released only if this container holds it. */
  containerId?: string;
}

/** Returns an address to the pool. Idempotent: false when it was not allocated (to the owner). */
export async function releaseAddress(store: Store, input: ReleaseInput): Promise<boolean> {
  return retrying(
    `releasing address ${input.ip}`,
    async () => {
      const { value: network } = await getNetwork(store, input.network);
      const key = addressKey(network.name, blockOf(network, input.ip), input.ip);
      const kv = await store.get(key);
      if (kv === undefined) return false;
      if (input.containerId !== undefined) {
        const parsed = parseAddress(kv);
        if (parsed.ok && parsed.value.owner.containerId !== input.containerId) return false;
      }
      const txn = await store.txn([{ key, modRevision: kv.modRevision }], [{ type: "delete", key }]);
      return txn.succeeded ? true : RETRY;
    },
    { contended: `address record ${input.ip} of network ${input.network}` },
  );
}

/** Every allocated address of the network. */
export async function listAddresses(store: Store, network: string): Promise<Listing<AddressRecord>> {
  return listParsed(store, addressesPrefix(network), parseAddress);
}

/**
 * Returns to the pool the node's blocks that hold no pod address, each in a transaction that
 * requires the block to be still empty. For nodes that are gone (their gateway lives in their
 * block): a running node would lose its gateway address.
 */
export async function releaseEmptyBlocks(store: Store, network: string, node: string): Promise<string[]> {
  const released: string[] = [];
  const blocks = await listBlocks(store, network);
  for (const block of sortBlocks(blocks.entries.filter((e) => e.value.node === node))) {
    const cidr = block.value.cidr;
    const txn = await store.txn(
      [
        { key: block.kv.key, modRevision: block.kv.modRevision },
        { prefix: blockAddressesPrefix(network, cidr), maxModRevision: 0 },
      ],
      [{ type: "delete", key: block.kv.key }],
    );
    if (txn.succeeded) released.push(cidr);
  }
  return released;
}

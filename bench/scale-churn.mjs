/**
 * The simulated cluster of the control-plane scale benchmark (bench/scale.mjs): forked by it, one
 * process per scale point, so that none of its work is charged to the agent it measures.
 *
 *   load   the overlay network (createNetwork), the namespaces pods use (ensureNamespace), the
 *          registrations of nodes 2..N under one lease this process keeps alive (registerNode),
 *          one address block per simulated node and P endpoints per node with their address
 *          records, written in transactions of 100 operations. Records are built with the model's
 *          key functions and record shapes, with the values a real agent gives them (addresses
 *          from the node's block, MACs from macFromIpv4, the block's gateway), so the store holds
 *          what N-1 agents and their pods would have written.
 *   churn  endpoint events at a fixed rate, cluster-wide, spread over the simulated nodes:
 *          creates and deletes in turn. Each is the transaction a real CNI ADD or DEL commits
 *          (createEndpoint / deleteEndpoint in src/model/endpoints.ts: address and endpoint in
 *          one transaction, under the same compares). For each write it reports the MAC and the
 *          time the store acknowledged it (clock() of scale-common.mjs, the same in every process).
 *
 * Deletes take pods that existed before the churn or were created at least a second earlier, and
 * an address freed by a delete is reused only two seconds later: so no create and delete of one
 * MAC fall into one batch of the agent's and cancel out unseen.
 *
 * usage (from bench/scale.mjs): fork with --store URL --nodes N --pods P --namespaces K
 *   --network NAME --subnet CIDR; then messages { cmd: "load" }, { cmd: "churn", rate, seconds },
 *   { cmd: "stop" }; answers { type: "loaded" | "churned" | "error", ... }.
 *
 * Past 400 lines on purpose: the loader and the churn share one model of the simulated cluster's
 * records (which addresses are free, and since when), which is what keeps the churn honest.
 */
import { randomBytes, randomUUID } from "node:crypto";
import { clearInterval, setInterval } from "node:timers";
import { setTimeout as sleep } from "node:timers/promises";
import { blockGateway, macFromIpv4 } from "../dist/src/model/ipam.js";
import { formatCidr, formatIpv4, parseCidr } from "../dist/src/model/ipv4.js";
import { addressKey, blockKey, endpointKey, namespaceKey, networkKey } from "../dist/src/model/keys.js";
import { ensureNamespace } from "../dist/src/model/namespaces.js";
import { createNetwork } from "../dist/src/model/network.js";
import { registerNode } from "../dist/src/model/nodes.js";
import { encode, now } from "../dist/src/model/records.js";
import { openStore } from "../dist/src/store/index.js";
import { clock, errorText, nodeName } from "./scale-common.mjs";

/** Operations per bulk transaction (etcd refuses more than --max-txn-ops, 128 by default). */
const OPS_PER_TXN = 100;
/** Bulk transactions in flight at once. */
const BULK_CONCURRENCY = 8;
/** Churn writes in flight at once; beyond this the schedule waits (reported as lag). */
const MAX_IN_FLIGHT = 64;
const LEASE_TTL_SECONDS = 10;
/** A pod created during the churn may be deleted this long after its create was acknowledged. */
const DELETE_AFTER_MS = 1000;
/** An address freed during the churn is handed out again this long after its delete. */
const REUSE_AFTER_MS = 2000;

/** Underlay address of simulated node i (2..N): 10.99.0.0/16, never a .0. */
function nodeUnderlay(i) {
  return `10.99.${Math.floor(i / 200)}.${(i % 200) + 1}`;
}

function namespaceName(k) {
  return `ns-${String(k).padStart(2, "0")}`;
}

function parseArgs(argv) {
  const o = { store: "", nodes: 0, pods: 0, namespaces: 20, network: "red", subnet: "172.30.0.0/16" };
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (value === undefined) throw new Error(`${flag} needs a value`);
    if (flag === "--store") o.store = value;
    else if (flag === "--nodes") o.nodes = Number(value);
    else if (flag === "--pods") o.pods = Number(value);
    else if (flag === "--namespaces") o.namespaces = Number(value);
    else if (flag === "--network") o.network = value;
    else if (flag === "--subnet") o.subnet = value;
    else throw new Error(`unknown argument ${flag}`);
  }
  return o;
}

/**
 * @template T
 * @param {T[]} items
 * @param {number} limit
 * @param {(item: T) => Promise<void>} fn
 */
async function pool(items, limit, fn) {
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < items.length; i = next++) await fn(/** @type {T} */ (items[i]));
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/** @template T @param {T[]} items @param {number} size @returns {T[][]} */
function chunks(items, size) {
  const out = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

const o = parseArgs(process.argv.slice(2));
const store = await openStore(o.store);
const subnet = /** @type {import("../dist/src/model/ipv4.js").Ipv4Cidr} */ (parseCidr(o.subnet));

/**
 * @typedef {{ index: number, name: string, underlayIp: string, block: string, gateway: string,
 *   blockRevision: number, free: { ip: number, at: number }[] }} SimNode
 * @typedef {{ node: SimNode, namespace: string, pod: string, ip: number, mac: string,
 *   revision: number, ackAt: number }} SimPod
 */

/** @type {SimNode[]} */
const nodes = [];
/** Pods that may be deleted now. @type {SimPod[]} */
const deletable = [];
/** Pods created during the churn, in the order acknowledged, not yet deletable. @type {SimPod[]} */
const young = [];
/** @type {string[]} */
const namespaces = [];
/** @type {Map<string, number>} */
const namespaceRevision = new Map();
let networkRevision = 0;
/** @type {import("../dist/src/store/store.js").Lease | undefined} */
let lease;
/** @type {NodeJS.Timeout | undefined} */
let keepAliveTimer;
const leaseProblems = [];

/** The records a real agent writes for a pod: its address and its endpoint. */
function podRecords(node, namespace, pod, ip) {
  const address = formatIpv4(ip);
  const containerId = randomBytes(32).toString("hex");
  const ifname = "eth0";
  /** @type {import("../dist/src/model/records.js").AddressRecord} */
  const addr = {
    schemaVersion: 1,
    network: o.network,
    ip: address,
    block: node.block,
    node: node.name,
    owner: { namespace, pod, containerId, ifname },
    allocatedAt: now(),
  };
  /** @type {import("../dist/src/model/records.js").EndpointRecord} */
  const endpoint = {
    schemaVersion: 1,
    network: o.network,
    namespace,
    pod,
    ip: address,
    prefixLength: subnet.prefixLength,
    gateway: node.gateway,
    mac: macFromIpv4(address),
    node: node.name,
    block: node.block,
    tier: "best-effort",
    containerId,
    ifname,
    netns: `/var/run/netns/cni-${randomUUID()}`,
    createdAt: now(),
  };
  return {
    addrKey: addressKey(o.network, node.block, address),
    epKey: endpointKey(o.network, namespace, pod),
    addr,
    endpoint,
  };
}

async function load() {
  const t0 = clock();
  if (o.nodes < 2 || o.nodes > 256) throw new Error("--nodes must be 2..256 (one /24 block each in a /16)");
  if (o.pods < 1 || o.pods > 250) throw new Error("--pods must be 1..250 (a /24 block holds 253 pods)");
  await createNetwork(store, {
    name: o.network,
    subnet: o.subnet,
    blockPrefix: 24,
    isolateNs: true,
    setDefault: true,
  });
  for (let k = 0; k < o.namespaces; k++) {
    namespaces.push(namespaceName(k));
    await ensureNamespace(store, o.network, namespaceName(k), "pod");
  }
  networkRevision = /** @type {import("../dist/src/store/store.js").KeyValue} */ (
    await store.get(networkKey(o.network))
  ).modRevision;
  for (const ns of namespaces) {
    const kv = await store.get(namespaceKey(o.network, ns));
    if (kv === undefined) throw new Error(`namespace ${ns} vanished`);
    namespaceRevision.set(ns, kv.modRevision);
  }

  // The simulated nodes' registrations, under one lease renewed at a third of its TTL as agents do.
  lease = await store.grantLease(LEASE_TTL_SECONDS);
  keepAliveTimer = setInterval(
    () => {
      lease?.keepAlive().then(
        (alive) =>
          alive || leaseProblems.push(`${new Date().toISOString()} lease of the simulated nodes lapsed`),
        (err) => leaseProblems.push(`${new Date().toISOString()} ${errorText(err)}`),
      );
    },
    (LEASE_TTL_SECONDS * 1000) / 3,
  );
  for (let i = 2; i <= o.nodes; i++) {
    // Node 1 (the real agent) claims the lowest free block itself: 172.30.0.0/24.
    const base = subnet.address + (i - 1) * 256;
    const block = formatCidr({ address: base, prefixLength: 24 });
    const free = [];
    for (let a = base + 2 + o.pods; a <= base + 254; a++) free.push({ ip: a, at: 0 });
    nodes.push({
      index: i,
      name: nodeName(i),
      underlayIp: nodeUnderlay(i),
      block,
      gateway: blockGateway(block),
      blockRevision: 0,
      free,
    });
  }
  const leaseId = lease.id;
  await pool(nodes, 16, async (n) => {
    await registerNode(store, { name: n.name, underlayIp: n.underlayIp }, leaseId);
  });
  await pool(chunks(nodes, OPS_PER_TXN), BULK_CONCURRENCY, async (batch) => {
    const ops = batch.map((n) => {
      /** @type {import("../dist/src/model/records.js").BlockRecord} */
      const record = { schemaVersion: 1, network: o.network, cidr: n.block, node: n.name, claimedAt: now() };
      return { type: /** @type {const} */ ("put"), key: blockKey(o.network, n.block), value: encode(record) };
    });
    const r = await store.txn([], ops);
    for (const n of batch) n.blockRevision = r.revision;
  });

  /** @type {SimPod[]} */
  const pods = [];
  let k = 0;
  for (const node of nodes) {
    const base = subnet.address + (node.index - 1) * 256;
    for (let p = 0; p < o.pods; p++, k++) {
      const namespace = /** @type {string} */ (namespaces[k % namespaces.length]);
      pods.push({
        node,
        namespace,
        pod: `${node.name}-pod-${p}`,
        ip: base + 2 + p,
        mac: "",
        revision: 0,
        ackAt: 0,
      });
    }
  }
  await pool(chunks(pods, OPS_PER_TXN / 2), BULK_CONCURRENCY, async (batch) => {
    const ops = [];
    for (const p of batch) {
      const r = podRecords(p.node, p.namespace, p.pod, p.ip);
      p.mac = r.endpoint.mac;
      ops.push({ type: "put", key: r.addrKey, value: encode(r.addr) });
      ops.push({ type: "put", key: r.epKey, value: encode(r.endpoint) });
    }
    const r = await store.txn([], /** @type {import("../dist/src/store/store.js").Op[]} */ (ops));
    for (const p of batch) p.revision = r.revision;
  });
  deletable.push(...pods);
  return {
    nodes: nodes.length,
    endpoints: pods.length,
    addresses: pods.length,
    blocks: nodes.length,
    namespaces: namespaces.length,
    ms: clock() - t0,
  };
}

/** A simulated node with an address free for long enough, at random; undefined when none has one. */
function nodeWithFreeAddress(at) {
  const ready = (n) =>
    n.free.length > 0 && /** @type {{ at: number }} */ (n.free[0]).at <= at - REUSE_AFTER_MS;
  for (let tries = 0; tries < 16; tries++) {
    const n = /** @type {SimNode} */ (nodes[Math.floor(Math.random() * nodes.length)]);
    if (ready(n)) return n;
  }
  return nodes.find(ready);
}

let seq = 0;

/** One CNI ADD's transaction: address and endpoint, under createEndpoint's compares. */
async function createOne() {
  const node = nodeWithFreeAddress(clock());
  if (node === undefined) return { kind: "add", skipped: "no simulated node has a free address" };
  const slot = /** @type {{ ip: number, at: number }} */ (node.free.shift());
  const namespace = /** @type {string} */ (namespaces[Math.floor(Math.random() * namespaces.length)]);
  const pod = `churn-${seq++}`;
  const r = podRecords(node, namespace, pod, slot.ip);
  const event = {
    kind: "add",
    mac: r.endpoint.mac,
    pod: `${namespace}/${pod}`,
    node: node.name,
    tSent: clock(),
  };
  try {
    const txn = await store.txn(
      [
        { key: networkKey(o.network), modRevision: networkRevision },
        { key: blockKey(o.network, node.block), modRevision: node.blockRevision },
        { key: r.addrKey, modRevision: 0 },
        { key: namespaceKey(o.network, namespace), modRevision: namespaceRevision.get(namespace) ?? -1 },
        { key: r.epKey, modRevision: 0 },
      ],
      [
        { type: "put", key: r.addrKey, value: encode(r.addr) },
        { type: "put", key: r.epKey, value: encode(r.endpoint) },
      ],
    );
    const tAck = clock();
    if (!txn.succeeded) {
      node.free.unshift(slot);
      return { ...event, tAck, ok: false, error: "transaction refused: a compare failed" };
    }
    young.push({
      node,
      namespace,
      pod,
      ip: slot.ip,
      mac: r.endpoint.mac,
      revision: txn.revision,
      ackAt: tAck,
    });
    return { ...event, tAck, ok: true };
  } catch (err) {
    node.free.unshift(slot);
    return { ...event, tAck: clock(), ok: false, error: errorText(err) };
  }
}

/** One CNI DEL's transaction: endpoint and address, under deleteEndpoint's compare. */
async function deleteOne() {
  const at = clock();
  while (young.length > 0 && /** @type {SimPod} */ (young[0]).ackAt <= at - DELETE_AFTER_MS) {
    deletable.push(/** @type {SimPod} */ (young.shift()));
  }
  if (deletable.length === 0) return { kind: "del", skipped: "no pod old enough to delete" };
  const i = Math.floor(Math.random() * deletable.length);
  const p = /** @type {SimPod} */ (deletable[i]);
  deletable[i] = /** @type {SimPod} */ (deletable[deletable.length - 1]);
  deletable.pop();
  const address = formatIpv4(p.ip);
  const epKey = endpointKey(o.network, p.namespace, p.pod);
  const event = {
    kind: "del",
    mac: p.mac,
    pod: `${p.namespace}/${p.pod}`,
    node: p.node.name,
    tSent: clock(),
  };
  try {
    const txn = await store.txn(
      [{ key: epKey, modRevision: p.revision }],
      [
        { type: "delete", key: epKey },
        { type: "delete", key: addressKey(o.network, p.node.block, address) },
      ],
    );
    const tAck = clock();
    if (!txn.succeeded) {
      deletable.push(p);
      return { ...event, tAck, ok: false, error: "transaction refused: the endpoint changed" };
    }
    p.node.free.push({ ip: p.ip, at: tAck });
    return { ...event, tAck, ok: true };
  } catch (err) {
    deletable.push(p);
    return { ...event, tAck: clock(), ok: false, error: errorText(err) };
  }
}

/** Events at `rate` per second for `seconds`, creates and deletes in turn. */
async function churn(rate, seconds) {
  const total = Math.round(rate * seconds);
  const interval = 1000 / rate;
  const events = [];
  const pending = new Set();
  let maxInFlight = 0;
  let maxLagMs = 0;
  const start = clock();
  for (let k = 0; k < total; k++) {
    const due = start + k * interval;
    let t = clock();
    if (due > t) {
      await sleep(due - t);
      t = clock();
    }
    while (pending.size >= MAX_IN_FLIGHT) await Promise.race(pending);
    maxLagMs = Math.max(maxLagMs, clock() - due);
    const write = (k % 2 === 0 ? createOne() : deleteOne()).then((e) => {
      events.push(e);
      pending.delete(write);
    });
    pending.add(write);
    maxInFlight = Math.max(maxInFlight, pending.size);
  }
  await Promise.all(pending);
  const end = clock();
  return { events, stats: { scheduled: total, startedAt: start, endedAt: end, maxInFlight, maxLagMs } };
}

function send(message) {
  process.send?.(message);
}

process.on("disconnect", () => process.exit(0));
process.on("message", (/** @type {{ cmd: string, rate?: number, seconds?: number }} */ m) => {
  if (m.cmd === "load") {
    load().then(
      (r) => send({ type: "loaded", ...r }),
      (err) => send({ type: "error", phase: "load", error: errorText(err) }),
    );
  } else if (m.cmd === "churn") {
    churn(Number(m.rate), Number(m.seconds)).then(
      (r) => send({ type: "churned", ...r, leaseProblems }),
      (err) => send({ type: "error", phase: "churn", error: errorText(err) }),
    );
  } else if (m.cmd === "stop") {
    clearInterval(keepAliveTimer);
    store.close().finally(() => process.exit(0));
  }
});
send({ type: "ready" });

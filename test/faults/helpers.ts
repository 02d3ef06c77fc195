/**
 * Fault tests' cluster: etcd in a namespace of its own on the underlay, with the handle kept so a
 * test can stop and restart the same etcd; and a way to read the store from inside a node's
 * namespace (the only place etcd is reachable from).
 */
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { expect } from "vitest";
import { REPO_ROOT, execIn, type StoreProvider } from "../kit/cluster.js";
import { sleep } from "../kit/netns/index.js";
import { startEtcd, type TestEtcd } from "../helpers/etcd.js";
import { requireTools, show, type LocalCluster } from "../e2e/cluster.js";
import { LocalCluster as Cluster, type ClusterOptions } from "../kit/cluster.js";

export interface EtcdCluster {
  cluster: LocalCluster;
  etcd: TestEtcd;
}

/** A LocalCluster on etcd whose etcd the test can stop and start again. */
export async function startEtcdCluster(options: Omit<ClusterOptions, "store">): Promise<EtcdCluster> {
  requireTools("etcd");
  let etcd: TestEtcd | undefined;
  const provider: StoreProvider = {
    needsNamespace: true,
    start: async (place) => {
      if (place === undefined) throw new Error("etcd needs a namespace on the underlay");
      const e = await startEtcd({ ip: place.ip, netnsName: place.ns });
      etcd = e;
      return { url: e.url, stop: () => e.stop() };
    },
  };
  const cluster = await Cluster.start({ ...options, store: provider });
  if (etcd === undefined) throw new Error("etcd did not start");
  return { cluster, etcd };
}

export interface StoreState {
  nodes: { name: string; underlayIp: string }[];
  blocks: { cidr: string; node: string }[];
  addresses: { ip: string; node: string; pod: string; containerId: string }[];
  endpoints: { ip: string; node: string; pod: string; namespace: string; containerId: string }[];
}

const dist = (p: string): string => pathToFileURL(join(REPO_ROOT, "dist", "src", p)).href;

/** The network's records as the store has them, read from inside the first node's namespace. */
export async function storeState(c: LocalCluster, network: string): Promise<StoreState> {
  const script = `
    const { openStore } = await import(${JSON.stringify(dist("store/index.js"))});
    const m = await import(${JSON.stringify(dist("model/index.js"))});
    const [url, network] = process.argv.slice(1);
    const store = await openStore(url);
    try {
      const nodes = (await m.listNodes(store)).entries.map((e) => ({ name: e.value.name, underlayIp: e.value.underlayIp }));
      const blocks = (await m.listBlocks(store, network)).entries.map((e) => ({ cidr: e.value.cidr, node: e.value.node }));
      const addresses = (await m.listAddresses(store, network)).entries.map((e) => ({
        ip: e.value.ip, node: e.value.node, pod: e.value.owner.pod, containerId: e.value.owner.containerId }));
      const endpoints = (await m.listEndpoints(store, network)).entries.map((e) => ({
        ip: e.value.ip, node: e.value.node, pod: e.value.pod, namespace: e.value.namespace, containerId: e.value.containerId }));
      console.log(JSON.stringify({ nodes, blocks, addresses, endpoints }));
    } finally {
      await store.close();
    }`;
  const r = await execIn(c.node(0).ns, process.execPath, [
    "--input-type=module",
    "-e",
    script,
    c.storeUrl,
    network,
  ]);
  expect(r.code, show(r)).toBe(0);
  return JSON.parse(r.stdout) as StoreState;
}

/** Compacts etcd's history up to its current revision (from inside the first node's namespace). */
export async function compactEtcd(c: LocalCluster): Promise<number> {
  const script = `
    const { EtcdStore } = await import(${JSON.stringify(dist("store/etcd.js"))});
    const store = new EtcdStore([process.argv[1]]);
    try {
      const { revision } = await store.list("/");
      await store.compact(revision);
      console.log(revision);
    } finally {
      await store.close();
    }`;
  const endpoint = c.storeUrl.replace(/^etcd:\/\//, "");
  const r = await execIn(c.node(0).ns, process.execPath, ["--input-type=module", "-e", script, endpoint]);
  expect(r.code, show(r)).toBe(0);
  return Number(r.stdout.trim());
}

/** Polls `probe` until it returns true or `timeoutMs` passes; returns the last answer. */
export async function waitFor(
  probe: () => Promise<boolean>,
  timeoutMs: number,
  everyMs = 200,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await probe()) return true;
    if (Date.now() > deadline) return false;
    await sleep(everyMs);
  }
}

/** The last `peers programmed` list an agent logged. */
export function lastPeers(c: LocalCluster, node: number): string[] | undefined {
  const lines = c.agentLogLines(node).filter((l) => l.msg === "peers programmed");
  const last = lines[lines.length - 1];
  return last === undefined ? undefined : (last.peers as string[]);
}

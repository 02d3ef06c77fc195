/**
 * The end-to-end test cluster: nodes in network namespaces on a veth underlay, a real store
 * (etcd in a namespace of its own on the underlay, or one SQLite file shared by the agents), one
 * `overlayd` per node, pods attached through the `overlay-cni` binary. Built on the demo's
 * LocalCluster; this file adds etcd and the preconditions of the tests.
 */
import { existsSync } from "node:fs";
import { afterAll, beforeAll } from "vitest";
import { isRoot } from "../kit/netns/index.js";
import {
  BIN,
  LocalCluster,
  sqliteStore,
  type ClusterOptions,
  type ExecResult,
  type Pod,
  type StoreProvider,
} from "../kit/cluster.js";
import { ETCD_BINARY, startEtcd } from "../helpers/etcd.js";

export { LocalCluster, CniCallError, type ClusterNode, type ExecResult, type Pod } from "../kit/cluster.js";

export type StoreKind = "etcd" | "sqlite";

/** etcd on its namespace's underlay address, so that every node's agent and dctl reach it. */
export function etcdStore(): StoreProvider {
  return {
    needsNamespace: true,
    start: async (place) => {
      if (place === undefined) throw new Error("etcd needs a namespace on the underlay");
      const etcd = await startEtcd({ ip: place.ip, netnsName: place.ns });
      return { url: etcd.url, stop: () => etcd.stop() };
    },
  };
}

/**
 * Why the end-to-end tests of `file` cannot run here (printed), or undefined when they can.
 * Root is the only reason to skip: missing binaries or tools fail the tests with a clear error.
 */
export function skipReason(file: string): string | undefined {
  const why = isRoot() ? undefined : "network namespaces, TAP devices and overlayd need root";
  if (why !== undefined) console.log(`${file}: skipped, ${why}`);
  return why;
}

/** Fails with a clear message when something the tests run is missing. */
export function requireTools(store: StoreKind): void {
  const missing = Object.values(BIN).filter((p) => !existsSync(p));
  if (missing.length > 0) {
    throw new Error(`missing ${missing.join(", ")}: build first (npm run build)`);
  }
  if (store === "etcd" && !existsSync(ETCD_BINARY)) {
    throw new Error(`etcd is not installed (${ETCD_BINARY} missing): apt-get install etcd-server`);
  }
}

export interface TestClusterOptions extends Omit<ClusterOptions, "store"> {
  store: StoreKind;
}

export async function startCluster(options: TestClusterOptions): Promise<LocalCluster> {
  requireTools(options.store);
  const { store, ...rest } = options;
  return LocalCluster.start({ ...rest, store: store === "etcd" ? etcdStore() : sqliteStore() });
}

/** The result of a command, for assertion messages. */
export function show(r: ExecResult): string {
  return `exit ${String(r.code)}${r.timedOut ? " (timed out)" : ""}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
}

/** Both agents' logs, for a failing test's message. */
export function agentLogs(c: LocalCluster): string {
  return c.nodes.map((n) => `--- overlayd ${n.name} ---\n${c.agentLog(n)}`).join("\n");
}

/** `dctl network overlay create <name> -s <subnet> --set-default`, asserted to succeed. */
export async function createOverlay(c: LocalCluster, name = "red", subnet = "172.30.0.0/16"): Promise<void> {
  const r = await c.dctl(["network", "overlay", "create", name, "-s", subnet, "--set-default"]);
  if (r.code !== 0) throw new Error(`creating overlay ${name} failed: ${show(r)}`);
}

/** Pods web-a on node 0 and web-b on node 1, both in coffee, asserted to reach each other. */
export async function podsThatTalk(c: LocalCluster): Promise<{ a: Pod; b: Pod }> {
  const a = await c.addPod(0, "coffee", "web-a");
  const b = await c.addPod(1, "coffee", "web-b");
  const r = await c.pingUntil(a, b.ip, "reach");
  if (r.received === 0) throw new Error(`web-a cannot reach web-b:\n${agentLogs(c)}`);
  return { a, b };
}

/** A started cluster with an overlay and the pods of `podsThatTalk`, filled in by beforeAll. */
export interface TalkingPods {
  c: LocalCluster;
  a: Pod;
  b: Pod;
}

/**
 * For the enclosing describe block: a cluster (`options`) with overlay `red` and web-a (node 0)
 * and web-b (node 1) reaching each other, started in beforeAll and closed in afterAll. Read the
 * fields inside the tests, once beforeAll has run.
 */
export function useTalkingPods(options: TestClusterOptions): TalkingPods {
  const t = {} as TalkingPods;
  beforeAll(async () => {
    t.c = await startCluster(options);
    await createOverlay(t.c);
    ({ a: t.a, b: t.b } = await podsThatTalk(t.c));
  }, 120_000);
  afterAll(async () => {
    await t.c?.close();
  });
  return t;
}

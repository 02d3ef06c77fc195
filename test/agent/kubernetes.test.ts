/**
 * The agent's namespace sync (src/agent/kubernetes.ts) against the test kit's API server, reached
 * through @kubernetes/client-node with a kubeconfig file, and a real SQLite store shared by up to
 * three syncs (three agents).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { KubeApi } from "../../src/agent/kubeapi.js";
import { NamespaceSync } from "../../src/agent/kubernetes.js";
import {
  createEndpoint,
  createNetwork,
  deleteEndpoint,
  ensureNamespace,
  joinNamespaces,
  listNamespaces,
  type NamespaceRecord,
} from "../../src/model/index.js";
import { openStore } from "../../src/store/index.js";
import type { Store } from "../../src/store/store.js";
import { FakeKubeApi } from "../kit/kubeapi.js";

const log = pino({ level: process.env.OVERLAY_TEST_LOG ?? "silent" });

let api: FakeKubeApi;
let dir: string;
const stores: Store[] = [];
const syncs: NamespaceSync[] = [];

async function store(): Promise<Store> {
  const s = await openStore(`sqlite:${join(dir, "store.db")}`);
  stores.push(s);
  return s;
}

function sync(s: Store, extra: Partial<ConstructorParameters<typeof NamespaceSync>[0]> = {}): NamespaceSync {
  const n = new NamespaceSync({
    api: KubeApi.load(api.kubeconfig),
    store: s,
    log,
    debounceMs: 5,
    resyncMs: 500,
    requestTimeoutMs: 2000,
    ...extra,
  });
  n.start();
  syncs.push(n);
  return n;
}

async function records(s: Store, network = "red"): Promise<Map<string, NamespaceRecord>> {
  const l = await listNamespaces(s, network);
  return new Map(l.entries.map((e) => [e.value.name, e.value]));
}

async function vniOf(s: Store, name: string, network = "red"): Promise<number | undefined> {
  return (await records(s, network)).get(name)?.vni;
}

beforeEach(async () => {
  api = await FakeKubeApi.start();
  api.bookmarkMs = 200;
  dir = mkdtempSync(join(tmpdir(), "overlay-k8s-"));
});

afterEach(async () => {
  for (const s of syncs.splice(0)) await s.stop();
  for (const s of stores.splice(0)) await s.close();
  await api.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("namespaces from Kubernetes", () => {
  it("registers every namespace of the cluster, a new one at once on a VNI of its own", async () => {
    const s = await store();
    await createNetwork(s, { name: "red", subnet: "172.30.0.0/16" });
    api.createNamespace("overlay-system");
    sync(s);
    await expect.poll(async () => (await records(s)).get("overlay-system")?.sources).toContain("kubernetes");
    const before = await records(s);
    expect(before.get("default")?.sources).toEqual(["builtin", "kubernetes"]);
    expect(before.get("kube-system")?.vni).toBe(1);

    api.createNamespace("coffee");
    api.createNamespace("tea");
    await expect.poll(() => vniOf(s, "tea")).toBeDefined();
    await expect.poll(() => vniOf(s, "coffee")).toBeDefined();
    const after = await records(s);
    const vnis = [...after.values()].filter((r) => r.name !== "kube-system").map((r) => r.vni);
    expect(new Set(vnis).size).toBe(vnis.length); // isolated: each its own
    expect(after.get("coffee")).toMatchObject({ sources: ["kubernetes"] });
  });

  it("removes a deleted namespace once no endpoint uses it, and keeps one dctl also asked for", async () => {
    const s = await store();
    await createNetwork(s, { name: "red", subnet: "172.30.0.0/16" });
    api.createNamespace("coffee");
    api.createNamespace("tea");
    const n = sync(s);
    await expect.poll(() => vniOf(s, "tea")).toBeDefined();
    await ensureNamespace(s, "red", "tea", "dctl");
    const ep = { network: "red", namespace: "coffee", pod: "nginx-1", node: "appserv76" };
    await createEndpoint(s, { ...ep, containerId: "c1" });

    api.deleteNamespace("coffee");
    api.deleteNamespace("tea");
    await expect.poll(async () => (await records(s)).get("tea")?.sources).toEqual(["dctl"]);
    // coffee still has an endpoint (a pod terminating): it stays, and goes with the endpoint.
    await n.runSync();
    expect(await vniOf(s, "coffee")).toBeDefined();
    await deleteEndpoint(s, ep);
    n.storeChanged([
      {
        kind: "endpoint",
        key: "/overlay/v1/endpoint/red/coffee/nginx-1",
        before: { ...ep, ip: "", mac: "" },
      },
    ]);
    await expect.poll(() => vniOf(s, "coffee")).toBeUndefined();
    // Namespaces made by dctl alone are never the sync's business.
    await ensureNamespace(s, "red", "espresso", "dctl");
    await n.runSync();
    expect(await vniOf(s, "espresso")).toBeDefined();
  });

  it("keeps VNIs across a restart, a dropped watch and an expired resourceVersion (410 Gone)", async () => {
    const s = await store();
    await createNetwork(s, { name: "red", subnet: "172.30.0.0/16" });
    api.createNamespace("coffee");
    api.createNamespace("tea");
    const first = sync(s);
    await expect.poll(() => vniOf(s, "tea")).toBeDefined();
    await joinNamespaces(s, "red", ["coffee", "tea"]);
    const vnis = await records(s);
    await first.stop();

    // While no agent watched: one namespace came, one went; then the history expired.
    api.createNamespace("milk");
    api.deleteNamespace("tea");
    api.expireHistory();
    const second = sync(s);
    await expect.poll(() => vniOf(s, "milk")).toBeDefined();
    await expect.poll(() => vniOf(s, "tea")).toBeUndefined();
    expect(await vniOf(s, "coffee")).toBe(vnis.get("coffee")?.vni);

    // A dropped watch resumes from the last version; an expired one lists again.
    const lists = (): number => api.requests.filter((r) => r.verb === "list").length;
    const listed = lists();
    api.dropWatches();
    api.createNamespace("sugar");
    await expect.poll(() => vniOf(s, "sugar")).toBeDefined();
    expect(lists()).toBe(listed);
    api.expireHistory();
    api.dropWatches();
    api.createNamespace("cream");
    await expect.poll(() => vniOf(s, "cream")).toBeDefined();
    expect(lists()).toBe(listed + 1);
    const now = await records(s);
    for (const name of ["default", "kube-public", "coffee"])
      expect(now.get(name)?.vni, name).toBe(vnis.get(name)?.vni);
    await expect.poll(() => second.healthy).toBe(true);
  });

  it("three agents: one record and one VNI per namespace, from the network's creation on", async () => {
    const a = await store();
    for (let i = 0; i < 30; i++) api.createNamespace(`ns-${i}`);
    const all = [a, await store(), await store()];
    const three = all.map((s) => sync(s, { resyncMs: 60_000 }));
    await expect.poll(() => three.every((n) => n.healthy)).toBe(true);
    // The network is created after the agents started: each hears of it from its view.
    await createNetwork(a, { name: "red", subnet: "172.30.0.0/16" });
    for (const n of three) n.storeChanged([{ kind: "network", key: "/overlay/v1/network/red" } as never]);
    const expected = api.namespaceNames().length;
    await expect.poll(async () => (await records(a)).size, { timeout: 30_000 }).toBe(expected);
    for (let i = 30; i < 40; i++) api.createNamespace(`ns-${i}`);
    await expect.poll(async () => (await records(a)).size, { timeout: 30_000 }).toBe(expected + 10);
    const recs = [...(await records(a)).values()];
    const vnis = recs.filter((r) => r.name !== "kube-system").map((r) => r.vni);
    expect(new Set(vnis).size).toBe(vnis.length);
    expect(recs.every((r) => r.sources.includes("kubernetes"))).toBe(true);
    // Settled: another round writes nothing.
    const rev = (await listNamespaces(a, "red")).revision;
    for (const n of syncs) await n.runSync();
    expect((await listNamespaces(a, "red")).revision).toBe(rev);
  });

  it("without the API (or without list rights) changes nothing, says why, and catches up later", async () => {
    const s = await store();
    await createNetwork(s, { name: "red", subnet: "172.30.0.0/16" });
    await ensureNamespace(s, "red", "coffee", "pod");
    api.forbid("list", "namespaces");
    const n = sync(s);
    await expect.poll(() => n.troubles).toBeGreaterThan(0);
    expect(n.healthy).toBe(false);
    expect((await records(s)).get("coffee")?.sources).toEqual(["pod"]);
    api.allow("list", "namespaces");
    await expect.poll(() => n.healthy, { timeout: 20_000 }).toBe(true);
    // A pod-made namespace Kubernetes does not have is left alone (never "kubernetes").
    await n.runSync();
    expect((await records(s)).get("coffee")?.sources).toEqual(["pod"]);
  });

  it("a namespace whose deletion cannot be confirmed stays, holds up no other, and goes later", async () => {
    const s = await store();
    await createNetwork(s, { name: "red", subnet: "172.30.0.0/16" });
    api.createNamespace("coffee");
    api.createNamespace("tea");
    const n = sync(s, { resyncMs: 200 });
    await expect.poll(() => vniOf(s, "tea")).toBeDefined();
    api.forbid("get", "namespaces");
    api.deleteNamespace("coffee");
    api.createNamespace("milk");
    await expect.poll(() => vniOf(s, "milk")).toBeDefined();
    await expect.poll(() => n.troubles).toBeGreaterThan(0);
    expect(await vniOf(s, "coffee")).toBeDefined();
    api.allow("get", "namespaces");
    await expect.poll(() => vniOf(s, "coffee")).toBeUndefined();
  });

  it("a lagging agent does not delete a namespace the API server still has", async () => {
    const s = await store();
    await createNetwork(s, { name: "red", subnet: "172.30.0.0/16" });
    const n = sync(s);
    await expect.poll(() => n.healthy).toBe(true);
    // Another agent registered "latte" from its own, newer view; this one has not seen it yet.
    api.forbid("watch", "namespaces");
    api.dropWatches();
    api.createNamespace("latte");
    await ensureNamespace(s, "red", "latte", "kubernetes");
    await n.runSync();
    expect(await vniOf(s, "latte")).toBeDefined();
    expect(api.requests.some((r) => r.verb === "get" && r.path === "/api/v1/namespaces/latte")).toBe(true);
  });
});

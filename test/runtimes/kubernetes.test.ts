/**
 * The seed's scenario, Kubernetes-shaped: real agents started with `--kubeconfig` (the test
 * kit's API server, reached from each node's namespace through a relay), namespaces created and
 * deleted "with kubectl" (on that API server), pods started by containerd through its CRI from
 * a conflist WITHOUT the pod-annotations capability (as CRI-O passes none), so each agent reads
 * the pod's annotation from the API.
 *
 * The plugin is the one runtimes exec on a node: build/Release/overlay-cni, copied into the
 * runtime's CNI bin folder.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PLUGIN_TYPE } from "../../src/cni/config.js";
import { ENDPOINT_ANNOTATION } from "../../src/cni/request.js";
import { installPlugin, pings } from "../kit/runtimes/plugin.js";
import { FakeKubeApi } from "../kit/kubeapi.js";
import { PrivateContainerd, containerdMissing } from "../kit/runtimes/containerd.js";
import {
  agentLogs,
  createOverlay,
  show,
  skipReason,
  startCluster,
  type LocalCluster,
} from "../e2e/cluster.js";

const skip = skipReason("test/runtimes/kubernetes.test.ts");
const API_PORT = 6443;

describe.skipIf(skip !== undefined)("the seed's scenario with the Kubernetes API and containerd", () => {
  let api: FakeKubeApi | undefined;
  let cluster: LocalCluster | undefined;
  let ctrd: PrivateContainerd | undefined;

  const k = (): FakeKubeApi => api as FakeKubeApi;
  const c = (): LocalCluster => cluster as LocalCluster;
  const rt = (): PrivateContainerd => ctrd as PrivateContainerd;

  async function listNamespaces(): Promise<string[]> {
    const r = await c().dctl(["network", "overlay", "list-namespaces", "red"]);
    expect(r.code, show(r)).toBe(0);
    return r.stdout
      .trim()
      .split("\n")
      .slice(1)
      .map((l) => l.trim().split(/\s+/)[0] as string)
      .sort();
  }

  beforeAll(async () => {
    const missing = containerdMissing();
    if (missing !== undefined) throw new Error(missing);
    api = await FakeKubeApi.start({ relayPort: API_PORT });
    api.createNamespace("overlay-system");
    cluster = await startCluster({ store: "sqlite", nodes: 2, agentArgs: ["--kubeconfig", api.kubeconfig] });
    const [cmd, args] = api.relayCommand();
    for (const node of cluster.nodes) cluster.world?.start(node.short, cmd, args);
    await createOverlay(cluster);
    ctrd = await PrivateContainerd.start(mkdtempSync(join(tmpdir(), "overlay-containerd-")));
    installPlugin(ctrd.binDir);
    const node = cluster.nodes[0];
    if (node === undefined) throw new Error("no node");
    // No capabilities: the runtime passes no annotations, the agent asks the API.
    writeFileSync(
      join(ctrd.netDir, "10-overlay.conflist"),
      JSON.stringify({
        cniVersion: "1.0.0",
        name: "overlay",
        plugins: [{ type: PLUGIN_TYPE, socket: node.socket }],
      }),
    );
  }, 180_000);

  afterAll(async () => {
    await ctrd?.close();
    await cluster?.close();
    await api?.close();
  }, 120_000);

  it("kubectl create namespace: list-namespaces shows the cluster's namespaces, each new one isolated", async () => {
    k().createNamespace("coffee");
    k().createNamespace("tea");
    await expect
      .poll(listNamespaces, { timeout: 30_000 })
      .toEqual([
        "coffee",
        "default",
        "kube-node-lease",
        "kube-public",
        "kube-system",
        "overlay-system",
        "tea",
      ]);
    const r = await c().dctl(["namespace", "list", "-o", "json"]);
    const views = JSON.parse(r.stdout) as { name: string; vni: number; policy: string; sources: string[] }[];
    expect(views.find((v) => v.name === "coffee")).toMatchObject({
      policy: "isolated",
      sources: ["kubernetes"],
    });
    expect(views.find((v) => v.name === "kube-system")).toMatchObject({ policy: "global" });
  }, 60_000);

  it("pods through the CRI get their annotation from the API; isolated, joined, isolated again; delete refused then done", async () => {
    k().putPod("coffee", "nginx-1", { [ENDPOINT_ANNOTATION]: '{ "network": "red", "perfTier": "high" }' });
    k().putPod("tea", "nginx-2", {
      [ENDPOINT_ANNOTATION]: '{ "network": "red", "perfTier": "best-effort" }',
    });
    const coffee = await rt()
      .runPodSandbox({ name: "nginx-1", namespace: "coffee", uid: "u1" })
      .catch((err: unknown) => {
        throw new Error(`${String(err)}\n${agentLogs(c())}\n${rt().log()}`);
      });
    const tea = await rt().runPodSandbox({ name: "nginx-2", namespace: "tea", uid: "u2" });
    const a = await rt().podSandboxStatus(coffee);
    const b = await rt().podSandboxStatus(tea);
    const eps = await c().dctl(["network", "overlay", "endpoints", "red", "-o", "json"]);
    const tiers = (JSON.parse(eps.stdout) as { pod: string; tier: string }[])
      .map((e) => [e.pod, e.tier])
      .sort();
    expect(tiers).toEqual([
      ["nginx-1", "high"],
      ["nginx-2", "best-effort"],
    ]);
    expect(
      k()
        .requests.filter((q) => q.resource === "pods")
        .map((q) => q.path),
    ).toEqual(["/api/v1/namespaces/coffee/pods/nginx-1", "/api/v1/namespaces/tea/pods/nginx-2"]);

    const from = a.netns as string;
    expect(await pings(from, b.ip)).toBe(false);
    await c().dctl(["network", "overlay", "update", "red", "--join-namespaces", "coffee,tea"]);
    await expect.poll(() => pings(from, b.ip), { timeout: 20_000 }).toBe(true);
    await c().dctl(["network", "overlay", "update", "red", "--isolate-namespaces", "tea"]);
    await expect.poll(() => pings(from, b.ip), { timeout: 20_000 }).toBe(false);

    // kubectl delete namespace tea: its record stays while its pod's endpoint does.
    k().deleteNamespace("tea");
    const refused = await c().dctl(["network", "overlay", "delete", "red"]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain("still use it");
    expect(await listNamespaces()).toContain("tea");
    for (const id of [coffee, tea]) {
      await rt().stopPodSandbox(id);
      await rt().removePodSandbox(id);
    }
    await expect.poll(listNamespaces, { timeout: 30_000 }).not.toContain("tea");
    const deleted = await c().dctl(["network", "overlay", "delete", "red"]);
    expect(deleted.stdout).toBe("Successfully deleted network\n");
  }, 120_000);
});

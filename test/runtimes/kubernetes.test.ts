/**
 * The seed's scenario, Kubernetes-shaped: real agents started with `--kubeconfig` (the test
 * kit's API server, reached from each node's namespace through a relay), namespaces created and
 * deleted "with kubectl" (on that API server), pods started by containerd through its CRI from
 * a conflist WITHOUT the pod-annotations capability (as CRI-O passes none), so each agent reads
 * the pod's annotation from the API.
 *
 * The plugin is the one runtimes exec on a node: build/Release/overlay-cni, copied into the
 * runtime's CNI bin folder. The set-up (API server, agents, containerd) is test/kit/kubecluster.ts,
 * which the demo's Kubernetes-shaped scenario shares.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ENDPOINT_ANNOTATION } from "../../src/cni/request.js";
import { pings } from "../kit/runtimes/plugin.js";
import { FakeKubeApi } from "../kit/kubeapi.js";
import { KubeCluster, containerdMissing } from "../kit/kubecluster.js";
import { sqliteStore } from "../kit/cluster.js";
import { agentLogs, createOverlay, requireTools, skipReason, type LocalCluster } from "../e2e/cluster.js";

const skip = skipReason("test/runtimes/kubernetes.test.ts");

describe.skipIf(skip !== undefined)("the seed's scenario with the Kubernetes API and containerd", () => {
  let kube: KubeCluster | undefined;

  const k = (): FakeKubeApi => (kube as KubeCluster).k;
  const c = (): LocalCluster => (kube as KubeCluster).c;
  const listNamespaces = (): Promise<string[]> => (kube as KubeCluster).listNamespaces();

  beforeAll(async () => {
    const missing = containerdMissing();
    if (missing !== undefined) throw new Error(missing);
    requireTools("sqlite");
    // No capabilities in the conflist: the runtime passes no annotations, the agent asks the API.
    kube = await KubeCluster.start({ annotations: "api", store: sqliteStore(), nodes: 2 });
    await createOverlay(kube.c);
  }, 180_000);

  afterAll(async () => {
    await kube?.close();
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
    const kc = kube as KubeCluster;
    const coffee = await kc
      .createPod(0, "coffee", "nginx-1", {
        [ENDPOINT_ANNOTATION]: '{ "network": "red", "perfTier": "high" }',
      })
      .catch((err: unknown) => {
        throw new Error(`${String(err)}\n${agentLogs(c())}\n${kc.runtime(0).containerd.log()}`);
      });
    const tea = await kc.createPod(0, "tea", "nginx-2", {
      [ENDPOINT_ANNOTATION]: '{ "network": "red", "perfTier": "best-effort" }',
    });
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

    const from = coffee.netns;
    expect(await pings(from, tea.ip)).toBe(false);
    await c().dctl(["network", "overlay", "update", "red", "--join-namespaces", "coffee,tea"]);
    await expect.poll(() => pings(from, tea.ip), { timeout: 20_000 }).toBe(true);
    await c().dctl(["network", "overlay", "update", "red", "--isolate-namespaces", "tea"]);
    await expect.poll(() => pings(from, tea.ip), { timeout: 20_000 }).toBe(false);

    // kubectl delete namespace tea: its record stays while its pod's endpoint does.
    k().deleteNamespace("tea");
    const refused = await c().dctl(["network", "overlay", "delete", "red"]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain("still use it");
    expect(await listNamespaces()).toContain("tea");
    for (const pod of [coffee, tea]) await kc.removePod(pod);
    await expect.poll(listNamespaces, { timeout: 30_000 }).not.toContain("tea");
    const deleted = await c().dctl(["network", "overlay", "delete", "red"]);
    expect(deleted.stdout).toBe("Successfully deleted network\n");
  }, 120_000);
});

/**
 * The demo's Kubernetes-shaped scenario, where containerd and runc are installed: namespaces
 * made through the Kubernetes API (the test kit's API server: none can be installed here),
 * agents following it (`--kubeconfig`), a containerd on each node running the pods through its
 * CRI as kubelet asks, with the seed's nginx.json annotation, which containerd hands the plugin
 * (the conflist of `overlayd install-cni` declares the capability).
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ENDPOINT_ANNOTATION } from "../../../src/cni/request.js";
import { DEFAULT_CONFLIST } from "../../../src/agent/install.js";
import { sqliteStore, type LocalCluster } from "../cluster.js";
import { KubeCluster, SYSTEM_NAMESPACE, type KubePod } from "../kubecluster.js";
import { clusterStage, announcer } from "./plain.js";
import {
  NODE_NAMES,
  command,
  comment,
  createRed,
  dctl,
  dctlOk,
  expectThat,
  isolateJoinIsolate,
  out,
  shellQuote,
  showAgents,
  showPing,
  type Stage,
} from "./narrate.js";

const CONVERGE_MS = 20_000;
/** The seed's annotation, spelled as in its nginx.json. */
const SEED_ANNOTATION = '{ "network": "red", "perfTier": "best-effort" }';

/** The seed's nginx.json, named `name`. */
function nginxJson(name: string): object {
  return {
    kind: "Pod",
    apiVersion: "v1",
    metadata: { name, creationTimestamp: null, annotations: { [ENDPOINT_ANNOTATION]: SEED_ANNOTATION } },
    spec: {
      containers: [
        {
          name: "nginx",
          image: "docker.io/nginx:1.10",
          resources: { requests: { cpu: "400m", memory: "512Mi" } },
          imagePullPolicy: "",
        },
      ],
      serviceAccountName: "",
    },
    status: {},
  };
}

/** Waits (quietly) until the agents have applied a change they follow from the API or the store. */
async function until(what: string, check: () => Promise<boolean>, timeoutMs = CONVERGE_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    expectThat(Date.now() < deadline, `${what} within ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

export async function kubernetesScenario(register: (stage: Stage) => void): Promise<void> {
  out(
    "Overlay network demo, Kubernetes-shaped: two nodes in network namespaces on this machine, agents " +
      "following the Kubernetes API, pods run by containerd through its CRI as kubelet runs them.",
  );
  out(
    "kubectl here is the test kit's API server (no Kubernetes API server can be installed on this " +
      "machine): each kubectl line is done on it as kubectl would.",
  );
  // The callbacks run at the steps of start(), once `k` is set.
  const announce = announcer(() => k.cluster);
  const k: KubeCluster = new KubeCluster({
    annotations: "runtime",
    runtimes: 2,
    nodes: 2,
    nodeNames: NODE_NAMES,
    store: sqliteStore(),
    onStep: (what) => {
      if (what === "kubernetes api" && k.api !== undefined) {
        comment("the Kubernetes API server, with the namespaces of a cluster where overlay.yaml is applied");
        command(`export KUBECONFIG=${k.api.kubeconfig}`);
      }
      announce();
    },
  });
  register(kubeStage(k));
  await k.start();
  const c = k.c;
  out(`Nodes: ${c.nodes.map((n) => `${n.name} (namespace ${n.ns}, underlay ${n.underlayIp})`).join(", ")}.`);
  showAgents(c, "the node agent runs on every node and follows the Kubernetes API (--kubeconfig)");
  comment(
    "containerd runs on every node, kubelet's runtime (a private instance: its own configuration, state and sockets); the DaemonSet's init container installs the plugin and its conflist",
  );
  for (const r of k.runtimes) {
    command(`overlayd ${(r.install?.args ?? []).map(shellQuote).join(" ")}`);
    out(r.install?.output ?? "");
  }
  const first = k.runtimes[0];
  if (first !== undefined) {
    command(`cat ${join(first.containerd.netDir, DEFAULT_CONFLIST)}`);
    out(readFileSync(join(first.containerd.netDir, DEFAULT_CONFLIST), "utf8"));
  }
  await createRed(c);

  comment("kubectl create namespace: each new namespace gets a VNI of its own at once (isolated)");
  for (const ns of ["coffee", "tea"]) {
    command(`kubectl create namespace ${ns}`);
    k.k.createNamespace(ns);
    out(`namespace/${ns} created`);
  }
  await until("coffee and tea in list-namespaces", async () => {
    const names = await k.listNamespaces();
    return names.includes("coffee") && names.includes("tea");
  });
  const listed = await dctlOk(c, ["network", "overlay", "list-namespaces", "red"]);
  for (const ns of ["default", "kube-system", SYSTEM_NAMESPACE, "coffee", "tea"])
    expectThat(new RegExp(`^${ns}$`, "m").test(listed.stdout), `list-namespaces does not show ${ns}`);

  const nginx1 = await createPod(k, "appserv78", "coffee", "nginx-1", "nginx.json");
  const nginx2 = await createPod(k, "appserv76", "tea", "nginx-2", "nginx-2.json");
  comment("kubectl get pods -o wide: the pods' endpoints on the overlay, with their node and VNI");
  await dctlOk(c, ["network", "overlay", "endpoints", "red"]);

  await isolateJoinIsolate(c, (want) => podPing(k, nginx1, nginx2, want));

  comment("kubectl delete namespace tea: the overlay keeps tea while its pod's endpoint is there");
  command("kubectl delete namespace tea");
  k.k.deleteNamespace("tea");
  out('namespace "tea" deleted');
  const still = await dctlOk(c, ["network", "overlay", "list-namespaces", "red"]);
  expectThat(/^tea$/m.test(still.stdout), "tea left list-namespaces while its pod was running");
  comment("a network that pods still use cannot be deleted");
  const refused = await dctl(c, ["network", "overlay", "delete", "red"]);
  expectThat(refused.code !== 0, "delete of a network in use was not refused");

  comment(
    "kubelet stops tea's pod (its namespace is gone): StopPodSandbox, and containerd calls the plugin with DEL",
  );
  await removePod(k, nginx2);
  command("kubectl delete pod nginx-1 -n coffee");
  k.k.deletePod("coffee", "nginx-1");
  await removePod(k, nginx1);
  out('pod "nginx-1" deleted');
  comment("tea's record goes once no endpoint uses it, and the network can go");
  await until(
    "tea gone from list-namespaces",
    async () => !(await k.listNamespaces()).includes("tea"),
    30_000,
  );
  await dctlOk(c, ["network", "overlay", "list-namespaces", "red"]);
  await dctlOk(c, ["network", "overlay", "delete", "red"], "Successfully deleted network");
  await dctlOk(c, ["network", "overlay", "list"]);
}

async function createPod(
  k: KubeCluster,
  node: string,
  namespace: string,
  name: string,
  file: string,
): Promise<KubePod> {
  if (file === "nginx.json") {
    command(`cat ${file}`);
    out(JSON.stringify(nginxJson(name)));
  } else {
    comment(`${file} is nginx.json with the name ${name}`);
  }
  command(`kubectl create -f ${file} -n ${namespace}`);
  const pod = await k.createPod(node, namespace, name, { [ENDPOINT_ANNOTATION]: SEED_ANNOTATION });
  out(`pod/${name} created`);
  out(
    `(kubelet on ${node}: RunPodSandbox through containerd's CRI, network namespace ${pod.netns}; overlay-cni ADD gave it ${pod.ip})`,
  );
  return pod;
}

async function removePod(k: KubeCluster, pod: KubePod): Promise<void> {
  await k.removePod(pod);
  out(
    `(kubelet on ${pod.runtime.node.name}: StopPodSandbox and RemovePodSandbox of ${pod.namespace}/${pod.name})`,
  );
}

async function podPing(k: KubeCluster, from: KubePod, to: KubePod, want: "reach" | "blocked"): Promise<void> {
  // Changes reach the agents through the store's watch: wait (quietly) until they are applied.
  await k.pingUntil(from, to.ip, want, CONVERGE_MS);
  await showPing(
    { name: from.name, namespace: from.namespace, enter: ["nsenter", `--net=${from.netns}`] },
    to,
    want,
  );
}

function kubeStage(k: KubeCluster): Stage {
  const cluster = (): LocalCluster | undefined => k.cluster;
  return {
    describe: () => {
      const c = cluster();
      const parts = [c === undefined ? undefined : clusterStage(c).describe(), k.api?.dir].filter(Boolean);
      return `the pods and containerd, ${parts.join(", ")}`;
    },
    close: () => k.close(),
    logs: () => {
      const c = cluster();
      return [
        c === undefined ? "" : clusterStage(c).logs(),
        ...k.runtimes.map((r) => `--- containerd ${r.node.name} ---\n${r.containerd.log()}`),
      ].join("");
    },
  };
}

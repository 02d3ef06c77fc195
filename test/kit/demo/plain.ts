/**
 * The demo's plain scenario, with nothing but this project: pods are network namespaces that the
 * demo attaches by calling the `overlay-cni` plugin exactly as a container runtime calls it, and
 * namespaces are made with `dctl namespace create`.
 */
import { LocalCluster, type ClusterNode, type Pod } from "../cluster.js";
import {
  ANNOTATION,
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

const CONVERGE_MS = 10_000;

async function createPod(c: LocalCluster, node: ClusterNode, namespace: string, name: string): Promise<Pod> {
  comment(
    `kubectl create -f nginx.json -n ${namespace}: the runtime on ${node.name} makes the pod's network ` +
      `namespace and calls the CNI plugin with the pod's annotation diamanti.com/endpoint0=${ANNOTATION}`,
  );
  const pod = await c.addPod(node, namespace, name, ANNOTATION);
  command(`cat ${name}.conf`);
  out(JSON.stringify(c.netConf(node, ANNOTATION)));
  command(
    [
      "CNI_COMMAND=ADD",
      `CNI_CONTAINERID=${pod.containerId.slice(0, 12)}...`,
      `CNI_NETNS=${pod.netns}`,
      `CNI_IFNAME=${pod.ifName}`,
      shellQuote(`CNI_ARGS=K8S_POD_NAMESPACE=${namespace};K8S_POD_NAME=${name}`),
      "overlay-cni",
      "<",
      `${name}.conf`,
    ].join(" "),
  );
  out(JSON.stringify(pod.result));
  out(`pod/${name} created: ${pod.ip} on ${node.name}`);
  return pod;
}

async function deletePod(c: LocalCluster, pod: Pod): Promise<void> {
  comment(`kubectl delete pod ${pod.name} -n ${pod.namespace}: the runtime calls the CNI plugin with DEL`);
  command(
    [
      "CNI_COMMAND=DEL",
      `CNI_CONTAINERID=${pod.containerId.slice(0, 12)}...`,
      `CNI_NETNS=${pod.netns}`,
      `CNI_IFNAME=${pod.ifName}`,
      "overlay-cni",
      "<",
      `${pod.name}.conf`,
    ].join(" "),
  );
  const r = await c.delPod(pod);
  if (r.stdout !== "") out(r.stdout);
  expectThat(r.code === 0, `CNI DEL of ${pod.name} failed: ${r.stdout}${r.stderr}`);
  out(`pod "${pod.name}" deleted`);
}

/** The seed's `kubectl exec -it nginx ... ping`: ping from inside the pod's network namespace. */
async function podPing(c: LocalCluster, from: Pod, to: Pod, want: "reach" | "blocked"): Promise<void> {
  // Changes reach the agents through the store's watch: wait (quietly) until they are applied.
  await c.pingUntil(from, to.ip, want, CONVERGE_MS);
  await showPing(
    { name: from.name, namespace: from.namespace, enter: ["ip", "netns", "exec", from.ns] },
    to,
    want,
  );
}

/** The stage of a LocalCluster: what the teardown names and closes. */
export function clusterStage(c: LocalCluster): Stage {
  return {
    describe: () => `namespaces ${c.prefix ?? "(none yet)"}-* and ${c.temp ?? "the temp folder"}`,
    close: () => c.close(),
    logs: () => c.nodes.map((n) => `--- overlayd ${n.name} ---\n${c.agentLog(n)}`).join(""),
  };
}

/** Prints the prefix and temp folder once they exist, so whoever interrupts knows what to look for. */
export function announcer(get: () => LocalCluster | undefined): () => void {
  let announced = false;
  return () => {
    const c = get();
    if (announced || c?.prefix === undefined) return;
    announced = true;
    out(`Namespace prefix: ${c.prefix}; temp folder: ${c.temp ?? "?"}`);
  };
}

export async function plainScenario(register: (stage: Stage) => void): Promise<void> {
  out("Overlay network demo: the product's scenario on two nodes, in network namespaces on this machine.");
  // The announcer runs at the cluster's steps, once `c` is set.
  const c: LocalCluster = new LocalCluster({ nodes: 2, nodeNames: NODE_NAMES, onStep: announcer(() => c) });
  register(clusterStage(c));
  await c.start();
  const [n76, n78] = c.nodes as [ClusterNode, ClusterNode];
  out(`Nodes: ${c.nodes.map((n) => `${n.name} (namespace ${n.ns}, underlay ${n.underlayIp})`).join(", ")}.`);
  showAgents(c, "the node agent runs on every node, in the node's network namespace");
  await createRed(c);

  comment("kubectl create namespace coffee; kubectl create namespace tea");
  await dctlOk(c, ["namespace", "create", "coffee"]);
  await dctlOk(c, ["namespace", "create", "tea"]);
  await dctlOk(c, ["network", "overlay", "list-namespaces", "red"]);

  const nginx1 = await createPod(c, n78, "coffee", "nginx-1");
  const nginx2 = await createPod(c, n76, "tea", "nginx-2");
  comment("kubectl get pods -o wide: the pods' endpoints on the overlay, with their VNI");
  await dctlOk(c, ["network", "overlay", "endpoints", "red"]);

  await isolateJoinIsolate(c, (want) => podPing(c, nginx1, nginx2, want));

  comment("a network that pods still use cannot be deleted");
  const refused = await dctl(c, ["network", "overlay", "delete", "red"]);
  expectThat(refused.code !== 0, "delete of a network in use was not refused");
  await deletePod(c, nginx1);
  await deletePod(c, nginx2);
  comment("now the network can go");
  await dctlOk(c, ["network", "overlay", "delete", "red"], "Successfully deleted network");
  await dctlOk(c, ["network", "overlay", "list"]);
}

#!/usr/bin/env node
/**
 * `sudo npm run demo`: the product's scenario on this machine, with nothing else to install or
 * start. Two nodes are network namespaces joined by a veth underlay, each runs `overlayd`, the
 * store is the embedded SQLite file, pods are network namespaces attached by the `overlay-cni`
 * plugin as a container runtime attaches them. Each step prints the command a user would type
 * and its output. Everything lives under one namespace prefix and one temp folder, removed when
 * the demo ends, fails or is interrupted (SIGINT, SIGTERM).
 */
import { isRoot } from "../netns/index.js";
import { execIn, LocalCluster, type ClusterNode, type ExecResult, type Pod } from "../cluster.js";

const NODE_NAMES = ["appserv76", "appserv78"];
const SUBNET = "172.30.0.0/16";
const CONVERGE_MS = 10_000;

const out = (text = ""): void => {
  process.stdout.write(text.endsWith("\n") || text === "" ? text || "\n" : `${text}\n`);
};
const comment = (text: string): void => out(`\n# ${text}`);
const command = (text: string): void => out(`$ ${text}`);

class Unexpected extends Error {}

function expectThat(ok: boolean, what: string): void {
  if (!ok) throw new Unexpected(what);
}

function shellQuote(s: string): string {
  return /^[A-Za-z0-9_./:=@%+,-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

let cluster: LocalCluster | undefined;
let interrupted: string | undefined;

async function dctl(args: string[]): Promise<ExecResult> {
  if (cluster === undefined) throw new Error("no cluster");
  command(["dctl", ...args].map(shellQuote).join(" "));
  const r = await cluster.dctl(args);
  if (r.stdout !== "") out(r.stdout);
  if (r.stderr !== "") out(r.stderr);
  return r;
}

async function dctlOk(args: string[], expected?: string): Promise<ExecResult> {
  const r = await dctl(args);
  expectThat(r.code === 0, `dctl ${args.join(" ")} exited with ${String(r.code)}`);
  if (expected !== undefined) {
    expectThat(r.stdout.includes(expected), `dctl ${args.join(" ")} did not print "${expected}"`);
  }
  return r;
}

async function createPod(node: ClusterNode, namespace: string, name: string): Promise<Pod> {
  const c = cluster as LocalCluster;
  const annotation = JSON.stringify({ network: "red", perfTier: "best-effort" });
  comment(
    `kubectl create -f nginx.json -n ${namespace}: the runtime on ${node.name} makes the pod's network ` +
      `namespace and calls the CNI plugin with the pod's annotation diamanti.com/endpoint0=${annotation}`,
  );
  const pod = await c.addPod(node, namespace, name, annotation);
  command(`cat ${name}.conf`);
  out(JSON.stringify(c.netConf(node, annotation)));
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

async function deletePod(pod: Pod): Promise<void> {
  const c = cluster as LocalCluster;
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
async function podPing(from: Pod, to: Pod, want: "reach" | "blocked"): Promise<void> {
  const c = cluster as LocalCluster;
  // Changes reach the agents through the store's watch: wait (quietly) until they are applied.
  await c.pingUntil(from, to.ip, want, CONVERGE_MS);
  comment(
    `kubectl exec -it ${from.name} -n ${from.namespace} -- ping ${to.ip}   (${to.name} in ${to.namespace})`,
  );
  const args = ["-c", "3", "-i", "0.2", "-W", "1", to.ip];
  command(`ip netns exec ${from.ns} ping ${args.join(" ")}`);
  const r = await execIn(from.ns, "ping", args, { timeoutMs: 15_000 });
  out(r.stdout.trimEnd());
  if (r.stderr.trim() !== "") out(r.stderr.trimEnd());
  const m = /(\d+) packets transmitted, (\d+) received/.exec(r.stdout);
  const received = m ? Number(m[2]) : 0;
  expectThat(
    want === "reach" ? received === 3 : received === 0,
    want === "reach"
      ? `${from.name} could not reach ${to.name}`
      : `${from.name} reached ${to.name} while isolated`,
  );
}

async function scenario(): Promise<void> {
  out("Overlay network demo: the product's scenario on two nodes, in network namespaces on this machine.");
  let announced = false;
  const c = new LocalCluster({
    nodes: 2,
    nodeNames: NODE_NAMES,
    // Named as soon as they exist, so that whoever interrupts the start knows what to look for.
    onStep: () => {
      if (announced || c.prefix === undefined) return;
      announced = true;
      out(`Namespace prefix: ${c.prefix}; temp folder: ${c.temp ?? "?"}`);
    },
  });
  cluster = c;
  await c.start();
  const [n76, n78] = c.nodes as [ClusterNode, ClusterNode];
  out(`Nodes: ${c.nodes.map((n) => `${n.name} (namespace ${n.ns}, underlay ${n.underlayIp})`).join(", ")}.`);
  comment("the cluster store is the embedded SQLite file; every command below uses it");
  command(`export OVERLAY_STORE=${c.storeUrl}`);
  comment("the node agent runs on every node, in the node's network namespace");
  for (const n of c.nodes) {
    command(`ip netns exec ${n.ns} overlayd ${c.agentArgs(n).slice(1).map(shellQuote).join(" ")} &`);
  }
  out(`overlayd is ready on ${c.nodes.map((n) => n.name).join(" and ")} (CNI STATUS succeeds)`);

  comment("create the overlay network");
  const created = await dctlOk(["network", "overlay", "create", "red", "-s", SUBNET]);
  expectThat(
    /NAME\s+TYPE\s+SUBNET\s+OVERLAY-NW\s+ISOLATE-NS\s+NETWORKGROUP/.test(created.stdout),
    "no table",
  );
  await dctlOk(["network", "overlay", "list"]);
  await dctlOk(["network", "overlay", "update", "red", "--set-default"], "Successfully updated network");

  comment("kubectl create namespace coffee; kubectl create namespace tea");
  await dctlOk(["namespace", "create", "coffee"]);
  await dctlOk(["namespace", "create", "tea"]);
  await dctlOk(["network", "overlay", "list-namespaces", "red"]);

  const nginx1 = await createPod(n78, "coffee", "nginx-1");
  const nginx2 = await createPod(n76, "tea", "nginx-2");
  comment("kubectl get pods -o wide: the pods' endpoints on the overlay, with their VNI");
  await dctlOk(["network", "overlay", "endpoints", "red"]);

  comment("coffee and tea are isolated from each other (different VNIs)");
  await podPing(nginx1, nginx2, "blocked");

  comment("join the namespaces: one VNI for both, applied to the running pods");
  await dctlOk(
    ["network", "overlay", "update", "red", "--join-namespaces", "coffee,tea"],
    "Successfully joined the network namespaces [[coffee tea]]",
  );
  await podPing(nginx1, nginx2, "reach");
  await dctlOk(["network", "overlay", "endpoints", "red"]);

  comment("isolate tea again");
  await dctlOk(
    ["network", "overlay", "update", "red", "--isolate-namespaces", "tea"],
    "Successfully updated network",
  );
  await podPing(nginx1, nginx2, "blocked");

  comment("a network that pods still use cannot be deleted");
  const refused = await dctl(["network", "overlay", "delete", "red"]);
  expectThat(refused.code !== 0, "delete of a network in use was not refused");
  await deletePod(nginx1);
  await deletePod(nginx2);
  comment("now the network can go");
  await dctlOk(["network", "overlay", "delete", "red"], "Successfully deleted network");
  await dctlOk(["network", "overlay", "list"]);
}

async function teardown(): Promise<void> {
  const c = cluster;
  if (c === undefined) return;
  out(
    `\nTearing down: stopping overlayd, removing namespaces ${c.prefix ?? "(none yet)"}-* and ${c.temp ?? "the temp folder"}`,
  );
  await c.close();
  out("Nothing left behind.");
}

function onSignal(signal: NodeJS.Signals): void {
  if (interrupted !== undefined) return;
  interrupted = signal;
  out(`\nInterrupted (${signal}).`);
  const code = signal === "SIGINT" ? 130 : 143;
  teardown().then(
    () => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`teardown failed: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    },
  );
}

async function main(): Promise<number> {
  if (!isRoot()) {
    process.stderr.write(
      "The demo creates network namespaces and TAP devices: run it as root (sudo npm run demo).\n",
    );
    return 1;
  }
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  let code = 0;
  try {
    await scenario();
    out("\nEverything behaved as the product documentation shows.");
  } catch (err) {
    // An interrupted run is torn down by the signal handler; its steps fail meanwhile.
    if (interrupted !== undefined) return new Promise<number>(() => undefined);
    code = 1;
    const what = err instanceof Unexpected ? "Unexpected" : "Failed";
    process.stderr.write(`\n${what}: ${err instanceof Error ? err.message : String(err)}\n`);
    if (cluster !== undefined && !(err instanceof Unexpected)) {
      for (const n of cluster.nodes)
        process.stderr.write(`--- overlayd ${n.name} ---\n${cluster.agentLog(n)}`);
    }
  }
  if (interrupted !== undefined) return new Promise<number>(() => undefined);
  try {
    await teardown();
  } catch (err) {
    process.stderr.write(`teardown failed: ${err instanceof Error ? err.message : String(err)}\n`);
    code = 1;
  }
  return code;
}

process.exitCode = await main();

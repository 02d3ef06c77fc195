/**
 * The seed's world, Kubernetes-shaped, on one machine: the test kit's API server (kubeapi.ts,
 * since no real one can be installed here), a LocalCluster whose agents follow it
 * (`--kubeconfig`, reached from each node's namespace through a relay at 127.0.0.1:6443), and on
 * the first `runtimes` nodes a private containerd that runs pods through its CRI, as kubelet
 * asks, with the plugin and a conflist pointing at that node's agent. Shared by
 * test/runtimes/kubernetes.test.ts and the demo (demo/kubernetes.ts).
 *
 * Each containerd lives in a folder under the cluster's temp folder. `close()` stops what was
 * started, in order: the runtimes (their sandboxes removed while the agents still answer CNI DEL),
 * the cluster, the API server; also in the middle of `start()` (an interrupted demo).
 */
import { execFile } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { PLUGIN_TYPE } from "../../src/cni/config.js";
import { DEFAULT_CONFLIST } from "../../src/agent/install.js";
import { BIN, LocalCluster, type ClusterNode, type ClusterOptions, type ExecResult } from "./cluster.js";
import { FakeKubeApi } from "./kubeapi.js";
import { PrivateContainerd } from "./runtimes/containerd.js";
import { installPlugin, pings } from "./runtimes/plugin.js";

export { containerdMissing } from "./runtimes/containerd.js";

/** Where each node reaches the API server (through its relay). */
export const API_PORT = 6443;
/** The product's own namespace (deploy/overlay.yaml), as a cluster with it installed has. */
export const SYSTEM_NAMESPACE = "overlay-system";

export interface KubeClusterOptions extends ClusterOptions {
  /**
   * "runtime": the conflist declares the pod-annotations capability (`overlayd install-cni`
   * writes it), so containerd hands the plugin the pod's annotations; "api": it declares none
   * (as CRI-O passes none) and the agent reads the pod from the API.
   */
  annotations: "runtime" | "api";
  /** How many nodes (from the first) run a containerd of their own; default 1. */
  runtimes?: number;
}

/** A node's container runtime, with the plugin installed for its agent. */
export interface NodeRuntime {
  node: ClusterNode;
  containerd: PrivateContainerd;
  /** What installed the plugin: `overlayd install-cni ...` (its arguments) and what it printed. */
  install: { args: string[]; output: string } | undefined;
}

/** A pod as kubelet made it: created on the API server, its sandbox run by a node's containerd. */
export interface KubePod {
  name: string;
  namespace: string;
  runtime: NodeRuntime;
  sandbox: string;
  ip: string;
  /** The sandbox's network namespace (a path under /var/run/netns). */
  netns: string;
  removed: boolean;
}

function runFile(command: string, args: readonly string[]): Promise<ExecResult> {
  return new Promise((resolve) => {
    execFile(command, args, { timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === "number" ? err.code : 1;
      resolve({ code, signal: err?.signal ?? null, stdout, stderr, timedOut: err?.killed === true });
    });
  });
}

export class KubeCluster {
  api: FakeKubeApi | undefined;
  cluster: LocalCluster | undefined;
  readonly runtimes: NodeRuntime[] = [];
  private starting: Promise<void> | undefined;
  private closing: Promise<void> | undefined;
  /** containerd instances being started, and CRI calls in flight: close() waits for them. */
  private readonly pending = new Set<Promise<unknown>>();

  constructor(private readonly options: KubeClusterOptions) {}

  /** Starts everything; on failure, what was started is stopped again. */
  static async start(options: KubeClusterOptions): Promise<KubeCluster> {
    const k = new KubeCluster(options);
    try {
      await k.start();
    } catch (err) {
      await k.close().catch(() => undefined);
      throw err;
    }
    return k;
  }

  start(): Promise<void> {
    this.starting ??= this.doStart();
    return this.starting;
  }

  /** The cluster, once started. */
  get c(): LocalCluster {
    if (this.cluster === undefined) throw new Error("the cluster is not started");
    return this.cluster;
  }

  /** The API server, once started. */
  get k(): FakeKubeApi {
    if (this.api === undefined) throw new Error("the API server is not started");
    return this.api;
  }

  private checkOpen(): void {
    if (this.closing !== undefined) throw new Error("the cluster is being torn down");
  }

  private track<T>(p: Promise<T>): Promise<T> {
    this.pending.add(p);
    const done = (): void => void this.pending.delete(p);
    p.then(done, done);
    return p;
  }

  private async doStart(): Promise<void> {
    const { annotations, runtimes = 1, agentArgs = [], ...clusterOptions } = this.options;
    this.api = await FakeKubeApi.start({ relayPort: API_PORT });
    this.checkOpen();
    this.api.createNamespace(SYSTEM_NAMESPACE);
    this.options.onStep?.("kubernetes api");
    this.cluster = new LocalCluster({
      ...clusterOptions,
      agentArgs: ["--kubeconfig", this.api.kubeconfig, ...agentArgs],
    });
    await this.cluster.start();
    this.checkOpen();
    const [cmd, args] = this.api.relayCommand();
    for (const node of this.cluster.nodes) this.cluster.world?.start(node.short, cmd, args);
    const nodes = this.cluster.nodes.slice(0, runtimes);
    await Promise.all(nodes.map((node) => this.startRuntime(node, annotations)));
  }

  private async startRuntime(node: ClusterNode, annotations: "runtime" | "api"): Promise<void> {
    const c = this.c;
    this.options.onStep?.(`containerd on ${node.name}`);
    const containerd = await this.track(
      PrivateContainerd.start(join(c.temp ?? "", `containerd-${node.short}`)),
    );
    const runtime: NodeRuntime = { node, containerd, install: undefined };
    this.runtimes.push(runtime);
    this.checkOpen();
    if (annotations === "api") {
      installPlugin(containerd.binDir);
      const conf = {
        cniVersion: "1.0.0",
        name: "overlay",
        plugins: [{ type: PLUGIN_TYPE, socket: node.socket }],
      };
      writeFileSync(join(containerd.netDir, DEFAULT_CONFLIST), JSON.stringify(conf));
      return;
    }
    // As the DaemonSet's init container does, with this node's folders and socket.
    const args = [
      ...["install-cni", "--source", BIN.cni, "--bin-dir", containerd.binDir],
      ...["--conf-dir", containerd.netDir, "--socket", node.socket],
    ];
    const r = await runFile(process.execPath, [BIN.overlayd, ...args]);
    if (r.code !== 0)
      throw new Error(`overlayd ${args.join(" ")}: exit ${String(r.code)}: ${r.stdout}${r.stderr}`);
    runtime.install = { args, output: r.stdout };
  }

  /** The runtime of the node (by index or name). */
  runtime(node: number | string): NodeRuntime {
    const n = this.c.node(node);
    const r = this.runtimes.find((x) => x.node === n);
    if (r === undefined) throw new Error(`node ${n.name} runs no containerd here`);
    return r;
  }

  /**
   * `kubectl create -f pod.json -n NAMESPACE`, and kubelet on `node` running its sandbox:
   * the pod on the API server, then RunPodSandbox with the pod's annotations.
   */
  async createPod(
    node: number | string,
    namespace: string,
    name: string,
    annotations: Record<string, string> = {},
  ): Promise<KubePod> {
    this.checkOpen();
    const runtime = this.runtime(node);
    this.k.putPod(namespace, name, annotations);
    const uid = `${namespace}-${name}`;
    const sandbox = await this.track(runtime.containerd.runPodSandbox({ name, namespace, uid, annotations }));
    const status = await this.track(runtime.containerd.podSandboxStatus(sandbox));
    if (status.netns === undefined)
      throw new Error(`sandbox ${sandbox} of ${namespace}/${name} has no netns`);
    return { name, namespace, runtime, sandbox, ip: status.ip, netns: status.netns, removed: false };
  }

  /** kubelet removing the pod's sandbox: StopPodSandbox (CNI DEL), RemovePodSandbox. */
  async removePod(pod: KubePod): Promise<void> {
    this.checkOpen();
    await this.track(pod.runtime.containerd.stopPodSandbox(pod.sandbox));
    await this.track(pod.runtime.containerd.removePodSandbox(pod.sandbox));
    pod.removed = true;
  }

  /** Polls a one-probe ping from the pod until the wanted outcome holds or `timeoutMs` passes. */
  async pingUntil(
    from: KubePod,
    ip: string,
    want: "reach" | "blocked",
    timeoutMs = 20_000,
  ): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      this.checkOpen();
      const reached = await pings(from.netns, ip);
      if (reached === (want === "reach") || Date.now() > deadline) return reached;
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** `dctl network overlay list-namespaces NETWORK`, the names sorted. */
  async listNamespaces(network = "red"): Promise<string[]> {
    const r = await this.c.dctl(["network", "overlay", "list-namespaces", network]);
    if (r.code !== 0) throw new Error(`list-namespaces ${network}: exit ${String(r.code)}: ${r.stderr}`);
    return r.stdout
      .trim()
      .split("\n")
      .slice(1)
      .map((l) => l.trim().split(/\s+/)[0] as string)
      .sort();
  }

  /** Stops what was started (also while starting); throws once everything was tried. */
  close(): Promise<void> {
    this.closing ??= this.doClose();
    return this.closing;
  }

  private async doClose(): Promise<void> {
    const problems: string[] = [];
    const attempt = async (what: string, fn: () => Promise<void> | undefined): Promise<void> => {
      try {
        await fn();
      } catch (err) {
        problems.push(`${what}: ${err instanceof Error ? err.message : String(err)}`);
      }
    };
    // A cluster still starting notices its close at its next step; a containerd still starting
    // or a CRI call in flight is waited for, so that nothing it makes is left behind.
    if (this.runtimes.length === 0 && this.pending.size === 0)
      void this.cluster?.close().catch(() => undefined);
    await this.starting?.catch(() => undefined);
    await Promise.allSettled([...this.pending]);
    for (const r of this.runtimes) await attempt(`containerd on ${r.node.name}`, () => r.containerd.close());
    await attempt("cluster", () => this.cluster?.close());
    await attempt("API server", () => this.api?.close());
    if (problems.length > 0) throw new Error(`not fully torn down: ${problems.join("; ")}`);
  }
}

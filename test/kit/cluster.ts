/**
 * A cluster on one machine, in network namespaces: node namespaces joined by a veth underlay, the
 * cluster store, one `overlayd` per node running inside its node's namespace, and pods attached
 * through the real `overlay-cni` binary exactly as a container runtime attaches them (CNI_*
 * environment, network configuration on stdin, result JSON on stdout). `dctl` runs inside the
 * first node's namespace, where the store is reachable whichever kind it is.
 *
 * Everything belongs to one World (one unique namespace prefix) and one temp folder; `close()`
 * stops every process this cluster started (by pid), the store, and removes both. The demo and
 * the end-to-end tests run on it.
 *
 * Past 400 lines on purpose: LocalCluster's start, agents, CNI calls and close share one world,
 * one store and one temp folder, and the close order is what leaves nothing behind.
 */
import { spawn } from "node:child_process";
import { ENDPOINT_ANNOTATION } from "../../src/cni/request.js";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  buildNodes,
  ping,
  sleep,
  World,
  type NsProcess,
  type PingOptions,
  type PingResult,
} from "./netns/index.js";

/**
 * The repository root: the nearest folder above this file that holds package.json and
 * binding.gyp (this file is test/kit/cluster.ts under vitest, dist/test/kit/cluster.js built).
 */
export const REPO_ROOT = findRepoRoot(dirname(fileURLToPath(import.meta.url)));

function findRepoRoot(from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, "package.json")) && existsSync(join(dir, "binding.gyp"))) return dir;
    if (dirname(dir) === dir) throw new Error(`no folder holding package.json and binding.gyp above ${from}`);
  }
}

/**
 * The built binaries, as package.json's `bin` names them: the TypeScript ones in dist/src/
 * (`tsc`), the plugin in build/Release/ (`node-gyp`, the C++ shim that runtimes exec).
 */
export const BIN = {
  overlayd: join(REPO_ROOT, "dist/src/agent/main.js"),
  dctl: join(REPO_ROOT, "dist/src/cli/dctl.js"),
  cni: join(REPO_ROOT, "build/Release/overlay-cni"),
} as const;

export { ENDPOINT_ANNOTATION };
export const CNI_VERSION = "1.1.0";
export const CNI_NETWORK_NAME = "overlay";
export const CNI_TYPE = "overlay-cni";

/** Fails with what to run when the compiled binaries are missing. */
export function requireBinaries(): void {
  const missing = Object.values(BIN).filter((p) => !existsSync(p));
  if (missing.length > 0) {
    throw new Error(
      `missing ${missing.join(", ")}: build first (npm run build: node-gyp for the addon and the plugin, tsc for the rest)`,
    );
  }
}

// ---- processes ------------------------------------------------------------------------------

export interface ExecResult {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

export interface ExecOptions {
  /** Written to stdin, which is then closed. */
  input?: string;
  /** The whole environment of the command (default: this process's). */
  env?: NodeJS.ProcessEnv;
  /** SIGKILL (by pid) after this many ms; default 30 s. */
  timeoutMs?: number;
}

/** Runs `command` inside the named network namespace and waits for it; never throws on exit codes. */
export function execIn(
  ns: string,
  command: string,
  args: readonly string[],
  options: ExecOptions = {},
): Promise<ExecResult> {
  return new Promise((resolveRun, reject) => {
    const child = spawn("ip", ["netns", "exec", ns, command, ...args], {
      stdio: ["pipe", "pipe", "pipe"],
      env: options.env ?? process.env,
    });
    let stdout = "";
    let stderr = "";
    let timedOut = false;
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    const timer = setTimeout(() => {
      timedOut = true;
      if (child.pid !== undefined) {
        try {
          process.kill(child.pid, "SIGKILL");
        } catch {
          // exited meanwhile
        }
      }
    }, options.timeoutMs ?? 30_000);
    child.once("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      resolveRun({ code, signal, stdout, stderr, timedOut });
    });
    child.stdin.on("error", () => undefined);
    child.stdin.end(options.input ?? "");
  });
}

// ---- the store ------------------------------------------------------------------------------

export interface RunningStore {
  /** What `--store` takes. */
  url: string;
  stop(): Promise<void>;
}

/** Where a store that needs the network runs: a namespace of its own on the underlay. */
export interface StorePlace {
  /** Full namespace name. */
  ns: string;
  /** Its underlay address. */
  ip: string;
}

export interface StoreProvider {
  /** Whether the store needs a namespace of its own on the underlay (a networked store). */
  needsNamespace: boolean;
  start(place: StorePlace | undefined, tempDir: string): Promise<RunningStore>;
}

/** The embedded store: one SQLite file in the cluster's temp folder, shared by every agent. */
export function sqliteStore(): StoreProvider {
  return {
    needsNamespace: false,
    start: (_place, tempDir) =>
      Promise.resolve({ url: `sqlite:${join(tempDir, "store.db")}`, stop: () => Promise.resolve() }),
  };
}

// ---- the cluster ----------------------------------------------------------------------------

export interface ClusterOptions {
  /** Number of nodes; default 2. */
  nodes?: number;
  /** Node names given to the agents; default node1, node2, ... */
  nodeNames?: readonly string[];
  /** Default: the embedded SQLite store. */
  store?: StoreProvider;
  /** Node registration lease of each agent; default 5 s. */
  leaseTtlSeconds?: number;
  /** Further overlayd options, e.g. ["--gc-grace", "2"]. */
  agentArgs?: readonly string[];
  /** How long each agent may take to answer CNI STATUS; default 30 s. */
  readyTimeoutMs?: number;
  /** Called as each step starts, for a narrating caller. */
  onStep?: (what: string) => void;
}

export interface ClusterNode {
  /** The agent's node name. */
  name: string;
  /** Short namespace name within the world (n1, n2, ...). */
  short: string;
  /** Full namespace name. */
  ns: string;
  underlayIp: string;
  /** The agent's unix socket, which the CNI plugin is pointed at. */
  socket: string;
  agent: NsProcess | undefined;
}

export interface Pod {
  name: string;
  namespace: string;
  node: ClusterNode;
  /** Short namespace name of the pod's sandbox within the world. */
  short: string;
  /** Full namespace name of the sandbox. */
  ns: string;
  /** CNI_NETNS. */
  netns: string;
  containerId: string;
  ifName: string;
  /** What the pod asked for (the annotation's value), if anything. */
  annotation: string | undefined;
  ip: string;
  prefixLength: number;
  gateway: string;
  mac: string;
  mtu: number;
  /** The plugin's ADD result, as printed. */
  result: CniAddResult;
  deleted: boolean;
}

export interface CniAddResult {
  cniVersion: string;
  interfaces: { name: string; mac: string; sandbox?: string; mtu?: number }[];
  ips: { address: string; gateway?: string; interface?: number }[];
  routes?: { dst: string; gw?: string }[];
}

export interface CniErrorResult {
  cniVersion?: string;
  code: number;
  msg: string;
  details?: string;
}

export class CniCallError extends Error {
  constructor(
    readonly command: string,
    readonly result: ExecResult,
    readonly error: CniErrorResult | undefined,
  ) {
    super(
      `CNI ${command} failed (exit ${String(result.code)}${result.timedOut ? ", timed out" : ""}): ` +
        (error ? `code ${error.code}: ${error.msg}${error.details ? ` (${error.details})` : ""}` : "") +
        (error ? "" : `${result.stdout.trim()} ${result.stderr.trim()}`.trim()),
    );
    this.name = "CniCallError";
  }
}

function parseJsonObject(text: string): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(text);
    return typeof v === "object" && v !== null && !Array.isArray(v)
      ? (v as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

function asCniError(text: string): CniErrorResult | undefined {
  const o = parseJsonObject(text);
  if (o === undefined || typeof o.code !== "number" || typeof o.msg !== "string") return undefined;
  return o as unknown as CniErrorResult;
}

export class LocalCluster {
  world: World | undefined;
  nodes: ClusterNode[] = [];
  store: RunningStore | undefined;
  /** Where a networked store runs, when it needs a namespace. */
  storePlace: StorePlace | undefined;
  readonly pods: Pod[] = [];
  private tempDir: string | undefined;
  private podCounter = 0;
  private closing: Promise<void> | undefined;
  private starting: Promise<void> | undefined;

  constructor(private readonly options: ClusterOptions = {}) {}

  /** Builds and starts a cluster; on any failure what was built is torn down again. */
  static async start(options: ClusterOptions = {}): Promise<LocalCluster> {
    const c = new LocalCluster(options);
    try {
      await c.start();
    } catch (err) {
      await c.close().catch(() => undefined);
      throw err;
    }
    return c;
  }

  get prefix(): string | undefined {
    return this.world?.prefix;
  }

  get temp(): string | undefined {
    return this.tempDir;
  }

  get storeUrl(): string {
    if (this.store === undefined) throw new Error("the cluster has no store yet");
    return this.store.url;
  }

  /** Creates the world, the store and the agents; waits until every agent answers CNI STATUS. */
  start(): Promise<void> {
    this.starting ??= this.doStart();
    return this.starting;
  }

  private checkOpen(): void {
    if (this.closing !== undefined) throw new Error("the cluster is being torn down");
  }

  private step(what: string): void {
    this.checkOpen();
    this.options.onStep?.(what);
  }

  private async doStart(): Promise<void> {
    requireBinaries();
    const count = this.options.nodes ?? 2;
    const provider = this.options.store ?? sqliteStore();
    const names = this.options.nodeNames ?? Array.from({ length: count }, (_, i) => `node${i + 1}`);
    if (names.length !== count)
      throw new RangeError(`${count} nodes need ${count} names, got ${names.length}`);

    this.step("temp folder");
    this.tempDir = mkdtempSync(join(tmpdir(), "overlay-cluster-"));
    this.step("network namespaces");
    this.world = await World.create();
    this.checkOpen();
    // A networked store gets a namespace of its own on the underlay: one more "node" namespace.
    const cluster = await buildNodes(this.world, { count: count + (provider.needsNamespace ? 1 : 0) });
    this.checkOpen();
    this.nodes = cluster.nodes.slice(0, count).map((n, i) => ({
      name: names[i] as string,
      short: n.name,
      ns: n.ns,
      underlayIp: n.underlayIp,
      socket: join(this.tempDir as string, `${n.name}.sock`),
      agent: undefined,
    }));
    const storeNode = provider.needsNamespace ? cluster.nodes[count] : undefined;
    this.storePlace = storeNode ? { ns: storeNode.ns, ip: storeNode.underlayIp } : undefined;

    this.step("cluster store");
    this.store = await provider.start(this.storePlace, this.tempDir);
    this.checkOpen();

    for (const node of this.nodes) {
      this.step(`overlayd on ${node.name}`);
      node.agent = this.world.start(node.short, process.execPath, this.agentArgs(node));
    }
    await Promise.all(this.nodes.map((n) => this.waitReady(n)));
  }

  /** The agent's command line (without the node binary). */
  agentArgs(node: ClusterNode): string[] {
    return [
      BIN.overlayd,
      "--node",
      node.name,
      "--underlay-ip",
      node.underlayIp,
      "--store",
      this.storeUrl,
      "--socket",
      node.socket,
      "--lease-ttl",
      String(this.options.leaseTtlSeconds ?? 5),
      ...(this.options.agentArgs ?? []),
    ];
  }

  node(name: string | number): ClusterNode {
    const n = typeof name === "number" ? this.nodes[name] : this.nodes.find((x) => x.name === name);
    if (n === undefined) throw new Error(`no node ${String(name)} in this cluster`);
    return n;
  }

  private worldOrThrow(): World {
    this.checkOpen();
    if (this.world === undefined) throw new Error("the cluster is not started");
    return this.world;
  }

  /** Waits until the node's agent answers CNI STATUS with success. */
  async waitReady(node: ClusterNode): Promise<void> {
    const deadline = Date.now() + (this.options.readyTimeoutMs ?? 30_000);
    let last = "";
    for (;;) {
      this.checkOpen();
      const agent = node.agent;
      if (agent === undefined) throw new Error(`no agent started on ${node.name}`);
      if (!agent.running) {
        const status = await agent.exited;
        throw new Error(
          `overlayd on ${node.name} exited (${JSON.stringify(status)}) before it was ready:\n${this.agentLog(node)}`,
        );
      }
      if (existsSync(node.socket)) {
        const r = await this.cni(node, "STATUS", {});
        if (r.code === 0) return;
        last = r.stdout.trim() || r.stderr.trim();
      }
      if (Date.now() > deadline) {
        throw new Error(`overlayd on ${node.name} not ready: ${last}\n${this.agentLog(node)}`);
      }
      await sleep(100);
    }
  }

  /** What the agent printed (JSON log lines on stdout, anything else on stderr). */
  agentLog(node: ClusterNode | string | number): string {
    const n = typeof node === "object" ? node : this.node(node);
    return `${n.agent?.stdout ?? ""}${n.agent?.stderr ?? ""}`;
  }

  /** The agent's JSON log lines, parsed; lines that are not JSON are skipped. */
  agentLogLines(node: ClusterNode | string | number): Record<string, unknown>[] {
    return this.agentLog(node)
      .split("\n")
      .flatMap((line) => {
        const o = parseJsonObject(line);
        return o === undefined ? [] : [o];
      });
  }

  /** Runs the built dctl with `--store` inside the first node's namespace. */
  dctl(args: readonly string[], options: { timeoutMs?: number } = {}): Promise<ExecResult> {
    this.worldOrThrow();
    const node = this.node(0);
    return execIn(node.ns, process.execPath, [BIN.dctl, ...args, "--store", this.storeUrl], {
      timeoutMs: options.timeoutMs ?? 30_000,
    });
  }

  /** The network configuration a runtime would hand the plugin for this node (and pod). */
  netConf(node: ClusterNode, annotation?: string): Record<string, unknown> {
    const conf: Record<string, unknown> = {
      cniVersion: CNI_VERSION,
      name: CNI_NETWORK_NAME,
      type: CNI_TYPE,
      socket: node.socket,
    };
    if (annotation !== undefined) conf.args = { cni: { annotations: { [ENDPOINT_ANNOTATION]: annotation } } };
    return conf;
  }

  /**
   * Runs the plugin binary on `node` as a runtime does: the CNI_* variables in its environment
   * (and PATH, for `ip netns exec` alone), the configuration on stdin. Never throws for a failing
   * plugin: see the exit code and stdout.
   */
  cni(
    node: ClusterNode,
    command: "ADD" | "DEL" | "CHECK" | "STATUS" | "VERSION" | "GC",
    vars: { containerId?: string; netns?: string; ifName?: string; args?: string },
    conf: Record<string, unknown> = this.netConf(node),
  ): Promise<ExecResult> {
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      CNI_COMMAND: command,
      CNI_PATH: dirname(BIN.cni),
    };
    if (vars.containerId !== undefined) env.CNI_CONTAINERID = vars.containerId;
    if (vars.netns !== undefined) env.CNI_NETNS = vars.netns;
    if (vars.ifName !== undefined) env.CNI_IFNAME = vars.ifName;
    if (vars.args !== undefined) env.CNI_ARGS = vars.args;
    return execIn(node.ns, BIN.cni, [], {
      input: JSON.stringify(conf),
      env,
      timeoutMs: 45_000,
    });
  }

  /**
   * Creates a pod sandbox (a network namespace) on `node` and attaches it with CNI ADD. The
   * annotation is the value of `diamanti.com/endpoint0`, e.g. {"network":"red","perfTier":"medium"}.
   */
  async addPod(
    node: ClusterNode | string | number,
    namespace: string,
    name: string,
    annotation?: string | { network?: string; perfTier?: string },
  ): Promise<Pod> {
    const world = this.worldOrThrow();
    const n = typeof node === "object" ? node : this.node(node);
    const value = typeof annotation === "object" ? JSON.stringify(annotation) : annotation;
    const short = `p${++this.podCounter}`;
    const ns = await world.addNamespace(short);
    const netns = world.nsPath(short);
    const containerId = randomBytes(32).toString("hex");
    const ifName = "eth0";
    const r = await this.cni(
      n,
      "ADD",
      { containerId, netns, ifName, args: `K8S_POD_NAMESPACE=${namespace};K8S_POD_NAME=${name}` },
      this.netConf(n, value),
    );
    if (r.code !== 0) throw new CniCallError("ADD", r, asCniError(r.stdout));
    const result = parseJsonObject(r.stdout) as CniAddResult | undefined;
    const ipEntry = result?.ips?.[0];
    const iface = result?.interfaces?.[ipEntry?.interface ?? 0];
    if (result === undefined || ipEntry === undefined || iface === undefined) {
      throw new Error(`CNI ADD printed no usable result: ${r.stdout}`);
    }
    const [ip, len] = ipEntry.address.split("/");
    const pod: Pod = {
      name,
      namespace,
      node: n,
      short,
      ns,
      netns,
      containerId,
      ifName,
      annotation: value,
      ip: ip ?? "",
      prefixLength: Number(len),
      gateway: ipEntry.gateway ?? "",
      mac: iface.mac,
      mtu: iface.mtu ?? 0,
      result,
      deleted: false,
    };
    this.pods.push(pod);
    return pod;
  }

  /** CNI DEL for the pod (its sandbox stays until the cluster closes). Returns the plugin's run. */
  async delPod(pod: Pod): Promise<ExecResult> {
    this.worldOrThrow();
    const r = await this.cni(
      pod.node,
      "DEL",
      {
        containerId: pod.containerId,
        netns: pod.netns,
        ifName: pod.ifName,
        args: `K8S_POD_NAMESPACE=${pod.namespace};K8S_POD_NAME=${pod.name}`,
      },
      this.netConf(pod.node, pod.annotation),
    );
    if (r.code === 0) pod.deleted = true;
    return r;
  }

  /** Pings from inside the pod's sandbox. */
  ping(from: Pod, ip: string, options: PingOptions = {}): Promise<PingResult> {
    return ping(this.worldOrThrow(), from.short, ip, options);
  }

  /**
   * Pings until the wanted outcome (some reply, or none at all) holds for one probe, for at most
   * `timeoutMs`; returns the last probe. Changes reach the agents through a watch, so they take
   * effect shortly after the command that made them returns.
   */
  async pingUntil(
    from: Pod,
    ip: string,
    want: "reach" | "blocked",
    timeoutMs = 10_000,
    options: PingOptions = {},
  ): Promise<PingResult> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const r = await this.ping(from, ip, { count: 1, timeoutSec: 1, ...options });
      const ok = want === "reach" ? r.received > 0 : r.received === 0;
      if (ok || Date.now() > deadline) return r;
      await sleep(100);
    }
  }

  /** Stops the agents (SIGTERM, then SIGKILL by pid), the store, the world; removes the temp folder. */
  close(): Promise<void> {
    this.closing ??= this.doClose();
    return this.closing;
  }

  private async doClose(): Promise<void> {
    const problems: string[] = [];
    // A start in progress notices the teardown at its next step; let it get there.
    await this.starting?.catch(() => undefined);
    await Promise.all(
      this.nodes.map(async (n) => {
        try {
          await n.agent?.stop(3000);
        } catch (err) {
          problems.push(`stop overlayd on ${n.name}: ${String(err)}`);
        }
      }),
    );
    try {
      await this.store?.stop();
    } catch (err) {
      problems.push(`stop store: ${String(err)}`);
    }
    try {
      await this.world?.destroy();
    } catch (err) {
      problems.push(String(err));
    }
    if (this.tempDir !== undefined) rmSync(this.tempDir, { recursive: true, force: true });
    if (problems.length > 0) throw new Error(`cluster not fully torn down: ${problems.join("; ")}`);
  }
}

/**
 * Pod attach: this project's CNI plugin (`overlay-cni`, which hands each call to the node's
 * overlayd) against the reference plugins (Debian's containernetworking-plugins: `bridge` with
 * `host-local` IPAM), in one run, in the same world, each exec'd exactly as a runtime execs it.
 *
 * Per store (etcd, then SQLite), one LocalCluster of the test kit: two node namespaces on a veth
 * underlay, the store (etcd in a namespace of its own on the underlay, or one SQLite file), one
 * overlayd per node; overlay `red` (172.30.0.0/16) is the default network. In each node's
 * namespace a runtime's stand-in (bench/attach-exec.mjs) execs the plugins there, as a runtime
 * runs in its host's namespace: `CNI_COMMAND`, `CNI_CONTAINERID`, `CNI_NETNS`, `CNI_IFNAME`,
 * `CNI_PATH` and `CNI_ARGS` (containerd's `IgnoreUnknown=1;K8S_POD_NAMESPACE=...;K8S_POD_NAME=...;
 * K8S_POD_INFRA_CONTAINER_ID=...`) and a PATH, the network configuration on stdin; each call is
 * timed from just before the fork to the child's exit. The reference's configuration is a bridge
 * (`isGateway`, no masquerade) in the node's namespace with `host-local` on 10.250.0.0/16, a
 * subnet of its own, its state in the run's temp folder. Every pod gets a fresh network namespace
 * (made before the clock starts), for either plugin. The two plugins take turns call by call
 * (the order flipping each time), so the machine's load falls on both alike; the one-at-a-time
 * figures start after a few untimed warm-up ADDs and DELs of each.
 *
 * Figures, per store (ms):
 * - one ADD: median and p99 (nearest rank) of --adds calls, one at a time, on node 1;
 * - one DEL: median of the DELs of those pods;
 * - --burst ADDs at once on node 1: wall time from the first exec to the last exit (median of
 *   --burst-reps rounds; each round's pods are deleted, untimed, before the next);
 * - --pods pods on node 1 with --in-flight ADDs in flight: wall time (then their DELs, the same
 *   way, reported beside);
 * - a pod on node 2 reachable from a pod on node 1 after its ADD returns: the time from the
 *   plugin's exit to the first reply of a ping started at once from the observer's namespace
 *   (`ping -D`, a probe every 10 ms; the observer retries ARP every 20 ms), median of --reach;
 *   only the project's (the reference bridge has no path between nodes). Beside it the same ping
 *   to a pod reachable already: what starting ping and one round trip cost (the figure's floor);
 * - `VERSION` from exec to exit, with an environment of the CNI_* variables and PATH=/nonexistent
 *   only (the plugin needs no Node.js nor any other program on the host); beside it `/bin/true`
 *   exec'd the same way, for scale.
 *
 * Where the time goes, printed under each table: on etcd, the requests per project call (etcd's
 * own gRPC counters, read from its /metrics before and after each phase: the reference asks
 * nothing of it); and per ADD at once and with pods in flight, the CPU each party spent
 * (/proc/<pid>/stat: the plugins as children of the stand-in, each agent, etcd). With
 * `--cpu-prof DIR` the agents run under `node --cpu-prof` and leave DIR/<store>/<node>.cpuprofile
 * when they stop (open in Chrome's DevTools; the profile is of the agent's one JS thread, wall
 * clock, so a synchronous call that waits in the kernel counts as that call's time).
 *
 * usage: node bench/attach.mjs [--stores etcd,sqlite] [--adds 30] [--burst 16] [--burst-reps 3]
 *   [--pods 100] [--in-flight 16] [--reach 20] [--version 30] [--warmup 3] [--quick] [--json]
 *   [--cpu-prof DIR]
 * Needs root (network namespaces), the built addon, plugin and TypeScript (npx node-gyp rebuild
 * && npx tsc -p tsconfig.build.json), etcd (Debian's etcd-server, or $ETCD_BINARY) for the etcd
 * store, and the reference plugins in /usr/lib/cni (containernetworking-plugins; .ci/install-deps
 * installs both; or $REFERENCE_CNI_DIR). Every namespace, process and folder it made is removed,
 * processes stopped by their pid, also on failure and Ctrl-C. Traffic stays inside the world's
 * namespaces.
 * Past 400 lines on purpose: both plugins (ours and the reference) are measured in one world, on
 * both stores, by the same exec harness and the same statistics, so that the ratios compare like
 * with like; each measurement is a function of its own.
 */
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { dirname, join } from "node:path";
import { clearTimeout, setTimeout } from "node:timers";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { BIN, LocalCluster, sqliteStore } from "../dist/test/kit/cluster.js";
import { isRoot, sleep } from "../dist/test/kit/netns/index.js";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const ETCD = process.env.ETCD_BINARY ?? "/usr/bin/etcd";
const REF_DIR = process.env.REFERENCE_CNI_DIR ?? "/usr/lib/cni";
const EXEC_HELPER = join(ROOT, "bench", "attach-exec.mjs");
const SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin";
const POD_NAMESPACE = "bench";
const REF_SUBNET = "10.250.0.0/16";
const REF_CNI_VERSION = "1.0.0";

/** Targets of issue 12, as judged in the table. */
const TARGETS = {
  addRatio: 1.5,
  addP99Ms: 100,
  delRatio: 1.5,
  burstRatio: 1.5,
  podsMs: 3000,
  reachMs: 20,
  versionMs: 5,
};

const DEFAULTS = {
  stores: ["etcd", "sqlite"],
  adds: 30,
  burst: 16,
  burstReps: 3,
  pods: 100,
  inFlight: 16,
  reach: 20,
  version: 30,
  warmup: 3,
};
const QUICK = { adds: 5, burst: 4, burstReps: 1, pods: 12, inFlight: 4, reach: 3, version: 10, warmup: 1 };

function parseArgs(argv) {
  const o = { ...DEFAULTS, json: false, quick: false, cpuProf: undefined };
  const given = new Set();
  const counts = {
    "--adds": ["adds", 1, 200],
    "--burst": ["burst", 1, 64],
    "--burst-reps": ["burstReps", 1, 20],
    // At most 200 pods at once: node 1's /24 block holds 253, and the observer takes one.
    "--pods": ["pods", 1, 200],
    "--in-flight": ["inFlight", 1, 64],
    "--reach": ["reach", 1, 200],
    "--version": ["version", 1, 1000],
    "--warmup": ["warmup", 0, 20],
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new UsageError(`${a} needs a value`);
      return v;
    };
    if (a in counts) {
      const [key, min, max] = counts[a];
      const n = Number(value());
      if (!Number.isInteger(n) || n < min || n > max)
        throw new UsageError(`${a} must be an integer ${min}..${max}`);
      o[key] = n;
      given.add(key);
    } else if (a === "--stores") {
      const stores = value()
        .split(",")
        .map((s) => s.trim());
      if (stores.length === 0 || stores.some((s) => s !== "etcd" && s !== "sqlite"))
        throw new UsageError(
          `--stores takes etcd, sqlite or both (comma-separated), got ${stores.join(",")}`,
        );
      o.stores = [...new Set(stores)];
    } else if (a === "--cpu-prof") {
      o.cpuProf = value();
      if (!o.cpuProf.startsWith("/")) throw new UsageError("--cpu-prof takes an absolute folder");
    } else if (a === "--json") o.json = true;
    else if (a === "--quick") o.quick = true;
    else throw new UsageError(`unknown argument ${a}`);
  }
  if (o.quick) for (const [k, v] of Object.entries(QUICK)) if (!given.has(k)) o[k] = v;
  return o;
}

class UsageError extends Error {}

// ---- what this run started: stopped by pid, removed, whatever happens ----------------------

/** @type {Set<LocalCluster>} */
const clusters = new Set();
/** @type {Set<import("node:child_process").ChildProcess>} */
const helpers = new Set();

function killHelpersNow() {
  for (const c of helpers) {
    if (c.pid !== undefined && c.exitCode === null && c.signalCode === null) {
      try {
        process.kill(c.pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
  }
}

process.on("exit", () => {
  killHelpersNow();
  // The worlds' own exit hook removes their namespaces and stops their processes.
  for (const c of clusters) if (c.temp !== undefined) rmSync(c.temp, { recursive: true, force: true });
});
let interrupted = false;
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => {
    if (interrupted) return;
    interrupted = true;
    process.stderr.write(
      `\n${signal}: stopping the agents, the store and the helpers; removing the namespaces\n`,
    );
    killHelpersNow();
    const timer = setTimeout(() => process.exit(130), 20_000);
    Promise.allSettled([...clusters].map((c) => c.close())).then(() => {
      clearTimeout(timer);
      process.exit(130);
    });
  });
}

function progress(text) {
  process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${text}\n`);
}

// ---- the store ------------------------------------------------------------------------------

/**
 * etcd in its namespace on the underlay, started through the cluster's world (so the world stops
 * it by its pid), its data in the cluster's temp folder. The namespace is fresh: its ports are free.
 */
function etcdStore(worldOf) {
  return {
    needsNamespace: true,
    async start(place, tempDir) {
      const world = worldOf();
      if (place === undefined || world === undefined) throw new Error("etcd needs its namespace");
      const client = `http://${place.ip}:2379`;
      const peer = `http://${place.ip}:2380`;
      const p = world.start(place.ns, ETCD, [
        ...["--name", "bench", "--data-dir", join(tempDir, "etcd")],
        ...["--listen-client-urls", client, "--advertise-client-urls", client],
        ...["--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer],
        ...["--initial-cluster", `bench=${peer}`, "--initial-cluster-state", "new"],
        ...["--heartbeat-interval", "50", "--election-timeout", "500"],
        ...["--logger", "zap", "--log-outputs", "stderr"],
      ]);
      const deadline = Date.now() + 30_000;
      while (
        !/ready to serve client requests|serving client traffic|serving insecure client requests/.test(
          p.stderr,
        )
      ) {
        if (!p.running) throw new Error(`etcd exited before it was ready:\n${p.stderr.slice(-3000)}`);
        if (Date.now() > deadline) throw new Error(`etcd not ready in 30 s:\n${p.stderr.slice(-3000)}`);
        await sleep(50);
      }
      return { url: `etcd://${place.ip}:2379`, pid: p.pid, stop: () => p.stop(5000).then(() => undefined) };
    },
  };
}

// ---- the runtime's stand-in, one per node namespace ------------------------------------------

function startHelper(ns) {
  const child = spawn("ip", ["netns", "exec", ns, process.execPath, EXEC_HELPER], {
    stdio: ["ignore", "ignore", "pipe", "ipc"],
  });
  helpers.add(child);
  let stderr = "";
  child.stderr?.on("data", (d) => (stderr = (stderr + String(d)).slice(-4000)));
  const waiting = new Map();
  let nextId = 1;
  const exited = new Promise((resolve) =>
    child.once("exit", (code, signal) => {
      helpers.delete(child);
      resolve(code ?? signal);
    }),
  );
  child.on("message", (m) => {
    const w = waiting.get(m.id);
    if (w === undefined) return;
    waiting.delete(m.id);
    if (m.type === "error") w.reject(new Error(`exec helper: ${m.error}`));
    else w.resolve(m);
  });
  void exited.then((code) => {
    for (const w of waiting.values())
      w.reject(new Error(`exec helper in ${ns} exited (${code}):\n${stderr}`));
    waiting.clear();
  });
  return {
    pid: child.pid,
    ask(message, timeoutMs = 600_000) {
      const id = nextId++;
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiting.delete(id);
          reject(
            new Error(`exec helper in ${ns}: no answer to ${message.type} within ${timeoutMs / 1000} s`),
          );
        }, timeoutMs);
        waiting.set(id, {
          resolve: (m) => {
            clearTimeout(timer);
            resolve(m);
          },
          reject: (e) => {
            clearTimeout(timer);
            reject(e);
          },
        });
        child.send({ ...message, id });
      });
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.disconnect();
      const done = await Promise.race([exited.then(() => true), sleep(3000).then(() => false)]);
      if (!done && child.pid !== undefined) process.kill(child.pid, "SIGKILL");
      await exited;
    },
  };
}

// ---- statistics -----------------------------------------------------------------------------

/** Nearest-rank percentile. */
function percentile(values, p) {
  const s = [...values].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))];
}

function stats(values) {
  return {
    n: values.length,
    median: percentile(values, 0.5),
    p99: percentile(values, 0.99),
    min: Math.min(...values),
    max: Math.max(...values),
  };
}

// ---- CPU: who spent it --------------------------------------------------------------------------

const TICKS_PER_SECOND = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;

/**
 * CPU seconds of a process from /proc/<pid>/stat: its own (user + system) and its waited-for
 * children's (cutime + cstime: for a runtime's stand-in, the plugins it ran and what they ran).
 */
function cpuOf(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const t = (i) => Number(f[i - 3]) / TICKS_PER_SECOND;
    return { own: t(14) + t(15), children: t(16) + t(17) };
  } catch {
    return { own: NaN, children: NaN };
  }
}

/** A LocalCluster whose agents write a V8 CPU profile into `dir` when they stop (--cpu-prof). */
function profiledCluster(dir) {
  mkdirSync(dir, { recursive: true });
  return class extends LocalCluster {
    agentArgs(node) {
      return [
        "--cpu-prof",
        `--cpu-prof-dir=${dir}`,
        `--cpu-prof-name=${node.name}.cpuprofile`,
        ...super.agentArgs(node),
      ];
    }
  };
}

// ---- one store ------------------------------------------------------------------------------

async function runStore(kind, o) {
  const Cluster = o.cpuProf === undefined ? LocalCluster : profiledCluster(join(o.cpuProf, kind));
  /** @type {LocalCluster} */
  const cluster = new Cluster({
    nodes: 2,
    store: kind === "etcd" ? etcdStore(() => cluster.world) : sqliteStore(),
    readyTimeoutMs: 90_000,
  });
  clusters.add(cluster);
  const helperList = [];
  const result = { store: kind, failures: [], loadavgStart: loadavg()[0] };
  try {
    progress(`${kind}: starting the world, the store and two agents`);
    await cluster.start();
    const world = cluster.world;
    result.prefix = world.prefix;
    progress(`${kind}: world ${world.prefix} ready`);
    const dctl = async (args) => {
      const r = await cluster.dctl(args);
      if (r.code !== 0) throw new Error(`dctl ${args.join(" ")}: exit ${r.code}: ${r.stderr}${r.stdout}`);
    };
    await dctl(["network", "overlay", "create", "red", "-s", "172.30.0.0/16", "--set-default"]);
    await dctl(["namespace", "create", POD_NAMESPACE]);

    const [n1, n2] = cluster.nodes;
    const runtimes = [startHelper(n1.ns), startHelper(n2.ns)];
    helperList.push(...runtimes);
    /**
     * etcd's count of unary requests per gRPC method (its /metrics, read from node 1), or
     * undefined on SQLite: what the agent asked of the store, for the requests-per-call figures.
     */
    const storeRequests = async () => {
      if (kind !== "etcd") return undefined;
      const url = `${cluster.storeUrl.replace("etcd://", "http://")}/metrics`;
      const m = await runtimes[0].ask({ type: "fetch", url });
      const counts = {};
      for (const line of m.text.split("\n")) {
        const hit = /^grpc_server_handled_total\{.*grpc_method="(\w+)".*grpc_type="unary".*\} (\d+)/.exec(
          line,
        );
        if (hit) counts[hit[1]] = (counts[hit[1]] ?? 0) + Number(hit[2]);
      }
      return counts;
    };
    result.storeRequests = {};
    /** Runs `fn`; adds the requests etcd served meanwhile, and `calls`, to the sums under `label`. */
    const counting = async (label, calls, fn) => {
      const before = await storeRequests();
      const value = await fn();
      const after = await storeRequests();
      if (before !== undefined && after !== undefined) {
        const sum = (result.storeRequests[label] ??= { calls: 0, Range: 0, Txn: 0, Put: 0, DeleteRange: 0 });
        sum.calls += calls;
        for (const k of ["Range", "Txn", "Put", "DeleteRange"]) sum[k] += (after[k] ?? 0) - (before[k] ?? 0);
      }
      return value;
    };
    /** CPU seconds so far: the plugins (children of node 1's stand-in), each agent, etcd. */
    const cpuNow = () => ({
      plugins: cpuOf(runtimes[0].pid).children,
      agentNode1: cpuOf(n1.agent.pid).own,
      agentNode2: cpuOf(n2.agent.pid).own,
      etcd: cluster.store.pid === undefined ? 0 : cpuOf(cluster.store.pid).own,
    });
    result.cpu = {};
    /**
     * Runs `fn` (`calls` ADDs); adds its wall time, `calls` and the CPU each party spent meanwhile
     * to the sums under `label`.
     */
    const cpuDuring = async (label, calls, fn) => {
      const before = cpuNow();
      const t0 = performance.now();
      const value = await fn();
      const wallS = (performance.now() - t0) / 1000;
      const after = cpuNow();
      const sum = (result.cpu[label] ??= {
        calls: 0,
        wallS: 0,
        plugins: 0,
        agentNode1: 0,
        agentNode2: 0,
        etcd: 0,
      });
      sum.calls += calls;
      sum.wallS += wallS;
      for (const k of Object.keys(before)) sum[k] += after[k] - before[k];
      return value;
    };
    const refDataDir = join(cluster.temp, "host-local");
    mkdirSync(refDataDir, { recursive: true });

    /** The two plugins: how each is exec'd on a node. */
    const plugins = {
      project: {
        file: BIN.cni,
        cniPath: dirname(BIN.cni),
        conf: (node) => cluster.netConf(node),
      },
      reference: {
        file: join(REF_DIR, "bridge"),
        cniPath: REF_DIR,
        conf: (node) => ({
          cniVersion: REF_CNI_VERSION,
          name: "bench-ref",
          type: "bridge",
          bridge: "refbr0",
          isGateway: true,
          ipMasq: false,
          ipam: { type: "host-local", subnet: REF_SUBNET, dataDir: join(refDataDir, node.short) },
        }),
      },
    };
    const order = (i) => (i % 2 === 0 ? ["reference", "project"] : ["project", "reference"]);

    let sandboxCounter = 0;
    /** Fresh pod namespaces, made 8 at a time, before any clock starts. */
    const sandboxes = async (plugin, node, count) => {
      const pods = [];
      for (let i = 0; i < count; i++) {
        const short = `${plugin === "project" ? "a" : "b"}${++sandboxCounter}`;
        pods.push({ short, plugin, node, name: `pod-${short}`, containerId: `bench${short}${world.prefix}` });
      }
      for (let i = 0; i < pods.length; i += 8) {
        await Promise.all(
          pods.slice(i, i + 8).map(async (p) => {
            await world.addNamespace(p.short);
            p.netns = world.nsPath(p.short);
          }),
        );
      }
      return pods;
    };
    const job = (command, pod) => {
      const pl = plugins[pod.plugin];
      return {
        file: pl.file,
        input: JSON.stringify(pl.conf(pod.node)),
        env: {
          CNI_COMMAND: command,
          CNI_CONTAINERID: pod.containerId,
          CNI_NETNS: pod.netns,
          CNI_IFNAME: "eth0",
          CNI_PATH: pl.cniPath,
          CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=${POD_NAMESPACE};K8S_POD_NAME=${pod.name};K8S_POD_INFRA_CONTAINER_ID=${pod.containerId}`,
          PATH: SYSTEM_PATH,
        },
      };
    };
    const runtimeOf = (pod) => runtimes[pod.node === n1 ? 0 : 1];
    const expectOk = (command, pod, run) => {
      if (run.code !== 0) {
        throw new Error(
          `${pod.plugin} ${command} of ${pod.short} on ${pod.node.name}: exit ${run.code ?? run.signal}: ${run.stdout.trim()} ${run.stderr.trim()}`,
        );
      }
    };
    /** Runs one command for `pods` with `concurrency` in flight; every call must succeed. */
    const call = async (command, pods, concurrency = 1) => {
      if (pods.length === 0) return { wallMs: 0, runs: [] };
      const rt = runtimeOf(pods[0]);
      const answer = await rt.ask({ type: "exec", jobs: pods.map((p) => job(command, p)), concurrency });
      answer.runs.forEach((run, i) => expectOk(command, pods[i], run));
      return answer;
    };

    // Warm-up: binaries, the agent's code paths and the store's first writes, untimed.
    progress(`${kind}: warm-up (${o.warmup} ADD and DEL of each plugin)`);
    for (let i = 0; i < o.warmup; i++) {
      for (const pl of order(i)) {
        const [pod] = await sandboxes(pl, n1, 1);
        await call("ADD", [pod]);
        await call("DEL", [pod]);
      }
    }

    // One at a time.
    progress(`${kind}: ${o.adds} ADDs, then ${o.adds} DELs, one at a time, the plugins taking turns`);
    const singles = {
      project: await sandboxes("project", n1, o.adds),
      reference: await sandboxes("reference", n1, o.adds),
    };
    const addMs = { project: [], reference: [] };
    const delMs = { project: [], reference: [] };
    // The reference asks nothing of the store, so etcd's requests over the loop are the project's.
    await counting("oneAdd", o.adds, async () => {
      for (let i = 0; i < o.adds; i++) {
        for (const pl of order(i)) addMs[pl].push((await call("ADD", [singles[pl][i]])).runs[0].ms);
      }
    });
    await counting("oneDel", o.adds, async () => {
      for (let i = 0; i < o.adds; i++) {
        for (const pl of order(i)) delMs[pl].push((await call("DEL", [singles[pl][i]])).runs[0].ms);
      }
    });
    result.add = { project: stats(addMs.project), reference: stats(addMs.reference) };
    result.del = { project: stats(delMs.project), reference: stats(delMs.reference) };

    // At once.
    progress(`${kind}: ${o.burst} ADDs at once, ${o.burstReps} round(s)`);
    const burstMs = { project: [], reference: [] };
    const burstCallMs = { project: [], reference: [] };
    for (let r = 0; r < o.burstReps; r++) {
      for (const pl of order(r)) {
        const pods = await sandboxes(pl, n1, o.burst);
        const a = await cpuDuring(`${pl}, ${o.burst} at once`, o.burst, () =>
          pl === "project"
            ? counting("burstAdd", o.burst, () => call("ADD", pods, o.burst))
            : call("ADD", pods, o.burst),
        );
        burstMs[pl].push(a.wallMs);
        burstCallMs[pl].push(...a.runs.map((x) => x.ms));
        await call("DEL", pods, o.burst);
      }
    }
    result.burst = {
      size: o.burst,
      project: { ...stats(burstMs.project), callMedian: percentile(burstCallMs.project, 0.5) },
      reference: { ...stats(burstMs.reference), callMedian: percentile(burstCallMs.reference, 0.5) },
    };

    progress(`${kind}: ${o.pods} pods with ${o.inFlight} in flight, each plugin`);
    result.pods = { count: o.pods, inFlight: o.inFlight };
    for (const pl of order(0)) {
      const pods = await sandboxes(pl, n1, o.pods);
      const project = pl === "project";
      const a = await cpuDuring(`${pl}, ${o.pods} pods, ${o.inFlight} in flight`, o.pods, () =>
        project
          ? counting("podsAdd", o.pods, () => call("ADD", pods, o.inFlight))
          : call("ADD", pods, o.inFlight),
      );
      const d = project
        ? await counting("podsDel", o.pods, () => call("DEL", pods, o.inFlight))
        : await call("DEL", pods, o.inFlight);
      result.pods[pl] = {
        wallMs: a.wallMs,
        addMedian: percentile(
          a.runs.map((x) => x.ms),
          0.5,
        ),
        addP95: percentile(
          a.runs.map((x) => x.ms),
          0.95,
        ),
        delWallMs: d.wallMs,
      };
    }

    // Reachable from another node.
    progress(
      `${kind}: ${o.reach} pods on ${n2.name}, each pinged from ${n1.name} as soon as its ADD returns`,
    );
    const observer = await cluster.addPod(n1, POD_NAMESPACE, "observer");
    const sysctl = await world.exec(observer.short, "sysctl", [
      "-qw",
      "net.ipv4.neigh.eth0.retrans_time_ms=20",
      "net.ipv4.neigh.eth0.mcast_solicit=200",
      "net.ipv4.neigh.eth0.ucast_solicit=200",
    ]);
    if (sysctl.code !== 0) throw new Error(`sysctl in the observer: ${sysctl.stderr}`);
    const observerNetns = world.nsPath(observer.short);
    const reachMs = [];
    const floorMs = [];
    const unreached = [];
    const reachPods = await sandboxes("project", n2, o.reach);
    for (const pod of reachPods) {
      const m = await runtimes[1].ask({
        type: "reach",
        job: job("ADD", pod),
        netnsPath: observerNetns,
        pingTimeoutSec: 10,
      });
      expectOk("ADD", pod, m.run);
      if (m.replyAt === null)
        unreached.push(`${pod.short} (${m.ip}): ${String(m.pingOutput).trim().slice(-300)}`);
      else reachMs.push(m.replyAt - m.run.endedAt);
      // The floor: the same ping, to the pod just reached.
      if (m.ip !== null && m.replyAt !== null) {
        const f = await runtimes[1].ask({
          type: "ping",
          netnsPath: observerNetns,
          ip: m.ip,
          pingTimeoutSec: 5,
        });
        if (f.replyAt !== null) floorMs.push(f.replyAt - f.startedAt);
      }
    }
    await call("DEL", reachPods, o.inFlight);
    result.reach = {
      project: reachMs.length ? stats(reachMs) : undefined,
      floor: floorMs.length ? stats(floorMs) : undefined,
      unreached,
    };
    if (unreached.length > 0)
      result.failures.push(`${unreached.length} pod(s) never answered: ${unreached.join("; ")}`);

    // VERSION, with nothing on the host to lean on.
    progress(`${kind}: VERSION x ${o.version} (CNI_* and PATH=/nonexistent only)`);
    const versionMs = { project: [], reference: [], binTrue: [] };
    const versionEnv = (cniPath) => ({
      CNI_COMMAND: "VERSION",
      CNI_CONTAINERID: `bench-version-${world.prefix}`,
      CNI_NETNS: world.nsPath(n1.short),
      CNI_IFNAME: "eth0",
      CNI_PATH: cniPath,
      PATH: "/nonexistent",
    });
    const versionJobs = {
      project: { file: BIN.cni, env: versionEnv(plugins.project.cniPath), input: '{"cniVersion":"1.1.0"}' },
      reference: {
        file: plugins.reference.file,
        env: versionEnv(REF_DIR),
        input: `{"cniVersion":"${REF_CNI_VERSION}"}`,
      },
      binTrue: { file: "/bin/true", env: versionEnv(REF_DIR), input: "" },
    };
    for (let i = 0; i < o.version; i++) {
      for (const k of i % 2 === 0
        ? ["reference", "project", "binTrue"]
        : ["binTrue", "project", "reference"]) {
        const a = await runtimes[0].ask({ type: "exec", jobs: [versionJobs[k]], concurrency: 1 });
        const run = a.runs[0];
        if (run.code !== 0)
          throw new Error(`${k} VERSION: exit ${run.code ?? run.signal}: ${run.stdout} ${run.stderr}`);
        if (k !== "binTrue") {
          const v = JSON.parse(run.stdout);
          if (!Array.isArray(v.supportedVersions)) throw new Error(`${k} VERSION printed ${run.stdout}`);
          if (k === "project") result.versionSupported = v.supportedVersions;
        }
        versionMs[k].push(run.ms);
      }
    }
    result.version = {
      project: stats(versionMs.project),
      reference: stats(versionMs.reference),
      binTrue: stats(versionMs.binTrue),
    };

    // What the agent's log says about the ADDs it served (its own lines, no extra instrumentation).
    const attached = cluster.agentLogLines(n1).filter((l) => l.msg === "pod attached").length;
    const failedRequests = cluster.agentLogLines(n1).filter((l) => l.msg === "request failed").length;
    result.agentLog = { attachedNode1: attached, failedRequestsNode1: failedRequests };
  } catch (err) {
    result.failures.push(String(err?.stack ?? err));
  } finally {
    result.loadavgEnd = loadavg()[0];
    for (const h of helperList) await h.stop().catch(() => undefined);
    progress(`${kind}: tearing down`);
    await cluster.close().catch((err) => result.failures.push(`teardown: ${String(err)}`));
    clusters.delete(cluster);
  }
  return result;
}

// ---- the table --------------------------------------------------------------------------------

/** The rows of one store's table: figure, project, reference, ratio, target, met. */
function rows(r) {
  const ratio = (a, b) => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? a / b : undefined);
  const out = [];
  const add = (key, figure, project, reference, target, met) =>
    out.push({ key, figure, project, reference, ratio: ratio(project, reference), target, met });
  const etcd = r.store === "etcd";
  if (r.add) {
    const rt = ratio(r.add.project.median, r.add.reference.median);
    add(
      "addMedian",
      `one ADD, median of ${r.add.project.n}`,
      r.add.project.median,
      r.add.reference.median,
      `<= ${TARGETS.addRatio}x`,
      rt !== undefined && rt <= TARGETS.addRatio,
    );
    add(
      "addP99",
      `one ADD, p99 of ${r.add.project.n}`,
      r.add.project.p99,
      r.add.reference.p99,
      `< ${TARGETS.addP99Ms} ms`,
      r.add.project.p99 < TARGETS.addP99Ms,
    );
  }
  if (r.del) {
    const rt = ratio(r.del.project.median, r.del.reference.median);
    add(
      "delMedian",
      `one DEL, median of ${r.del.project.n}`,
      r.del.project.median,
      r.del.reference.median,
      `<= ${TARGETS.delRatio}x`,
      rt !== undefined && rt <= TARGETS.delRatio,
    );
  }
  if (r.burst) {
    const rt = ratio(r.burst.project.median, r.burst.reference.median);
    add(
      "burstWall",
      `${r.burst.size} ADDs at once, wall (median of ${r.burst.project.n})`,
      r.burst.project.median,
      r.burst.reference.median,
      `<= ${TARGETS.burstRatio}x`,
      rt !== undefined && rt <= TARGETS.burstRatio,
    );
    add(
      "burstCall",
      `${r.burst.size} ADDs at once, each call's median`,
      r.burst.project.callMedian,
      r.burst.reference.callMedian,
      "",
      undefined,
    );
  }
  if (r.pods?.project && r.pods?.reference) {
    const p = r.pods;
    add(
      "podsWall",
      `${p.count} pods, ${p.inFlight} in flight, wall`,
      p.project.wallMs,
      p.reference.wallMs,
      etcd ? `< ${TARGETS.podsMs} ms` : `(< ${TARGETS.podsMs} ms on etcd)`,
      etcd ? p.project.wallMs < TARGETS.podsMs : undefined,
    );
    add(
      "podsAddMedian",
      `${p.count} pods, ${p.inFlight} in flight, ADD median`,
      p.project.addMedian,
      p.reference.addMedian,
      "",
      undefined,
    );
    add(
      "podsDelWall",
      `${p.count} pods, ${p.inFlight} in flight, DEL wall`,
      p.project.delWallMs,
      p.reference.delWallMs,
      "",
      undefined,
    );
  }
  if (r.reach) {
    add(
      "reachMedian",
      `ADD returned -> first ping reply from another node, median of ${r.reach.project?.n ?? 0}`,
      r.reach.project?.median ?? NaN,
      NaN,
      `< ${TARGETS.reachMs} ms`,
      r.reach.project !== undefined &&
        r.reach.unreached.length === 0 &&
        r.reach.project.median < TARGETS.reachMs,
    );
    add(
      "reachFloor",
      "  the same ping to a pod reachable already (its floor)",
      r.reach.floor?.median ?? NaN,
      NaN,
      "",
      undefined,
    );
  }
  if (r.version) {
    add(
      "versionMedian",
      `VERSION, exec to exit, median of ${r.version.project.n}`,
      r.version.project.median,
      r.version.reference.median,
      `< ${TARGETS.versionMs} ms`,
      r.version.project.median < TARGETS.versionMs,
    );
    add(
      "binTrue",
      "  for scale: /bin/true (dynamically linked) exec'd the same way",
      r.version.binTrue.median,
      r.version.binTrue.median,
      "",
      undefined,
    );
  }
  return out;
}

function fmt(v) {
  if (v === undefined || !Number.isFinite(v)) return "-";
  if (v >= 1000) return Math.round(v).toLocaleString("en-US");
  if (v >= 100) return v.toFixed(0);
  return v.toFixed(1);
}

function render(meta, results) {
  const lines = [
    `attach benchmark (${meta.date}): commit ${meta.commit}, ${meta.machine.cpus} x ${meta.machine.cpuModel}, Node ${meta.node}, ${meta.etcd}, reference ${meta.reference}`,
    `options: ${JSON.stringify(meta.options)}`,
    "",
  ];
  for (const r of results) {
    lines.push(`store ${r.store}: load average ${r.loadavgStart.toFixed(1)} -> ${r.loadavgEnd.toFixed(1)}`);
    lines.push("");
    lines.push("| figure (ms) | this project | reference | ratio | target | met |");
    lines.push("|---|---|---|---|---|---|");
    for (const row of rows(r)) {
      const ratio = row.ratio === undefined ? "" : `${row.ratio.toFixed(1)}x`;
      const met = row.met === undefined ? "" : row.met ? "yes" : "no";
      lines.push(
        `| ${row.figure} | ${fmt(row.project)} | ${fmt(row.reference)} | ${ratio} | ${row.target} | ${met} |`,
      );
    }
    const sr = Object.entries(r.storeRequests ?? {});
    if (sr.length > 0) {
      const what = {
        oneAdd: "one ADD",
        oneDel: "one DEL",
        burstAdd: "ADD at once",
        podsAdd: "ADD, pods in flight",
        podsDel: "DEL, pods in flight",
      };
      const each = sr.map(
        ([k, v]) =>
          `${what[k] ?? k} ${(v.Range / v.calls).toFixed(1)} Range + ${(v.Txn / v.calls).toFixed(1)} Txn`,
      );
      lines.push(`etcd requests per project call (etcd's gRPC counters): ${each.join("; ")}`);
    }
    for (const [label, c] of Object.entries(r.cpu ?? {})) {
      const per = (k) => ((c[k] * 1000) / c.calls).toFixed(1);
      lines.push(
        `CPU ms per ADD, ${label} (${c.calls} ADDs, wall ${c.wallS.toFixed(2)} s): plugins ${per("plugins")}, ` +
          `agent node 1 ${per("agentNode1")}, agent node 2 ${per("agentNode2")}, etcd ${per("etcd")}`,
      );
    }
    for (const f of r.failures) lines.push(`FAILED: ${f}`);
    lines.push("");
  }
  return `${lines.join("\n")}\n`;
}

function git(args) {
  try {
    return execFileSync("git", args, { cwd: ROOT, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
  } catch {
    return "";
  }
}

/** The commit measured: HEAD and what src/ and native/ have uncommitted, or $OVERLAY_BENCH_COMMIT. */
function describeCommit() {
  if (process.env.OVERLAY_BENCH_COMMIT) return process.env.OVERLAY_BENCH_COMMIT;
  const head = git(["rev-parse", "--short", "HEAD"]).trim() || "unknown";
  const changed = git(["status", "--porcelain", "--", "src", "native"])
    .split("\n")
    .filter((l) => l.length > 3)
    .map((l) => l.slice(3));
  return changed.length === 0 ? head : `${head} + uncommitted ${changed.join(", ")}`;
}

function versionOf(file, args) {
  try {
    return execFileSync(file, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] })
      .split("\n")[0]
      .trim();
  } catch {
    return "?";
  }
}

function referenceVersion() {
  try {
    return execFileSync("dpkg-query", ["-W", "-f=${Version}", "containernetworking-plugins"], {
      encoding: "utf8",
    }).trim();
  } catch {
    return "?";
  }
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  if (!isRoot()) throw new UsageError("needs root: network namespaces, TAP devices and the agents");
  const missing = [
    BIN.cni,
    BIN.overlayd,
    BIN.dctl,
    join(REF_DIR, "bridge"),
    join(REF_DIR, "host-local"),
  ].filter((f) => !existsSync(f));
  if (o.stores.includes("etcd") && !existsSync(ETCD)) missing.push(ETCD);
  if (missing.length > 0) {
    throw new UsageError(
      `missing ${missing.join(", ")}: build (npx node-gyp rebuild && npx tsc -p tsconfig.build.json) and install ` +
        "the system packages (bash .ci/install-deps: etcd-server, containernetworking-plugins)",
    );
  }
  const meta = {
    date: new Date().toISOString(),
    commit: describeCommit(),
    distBuilt: statSync(BIN.overlayd).mtime.toISOString(),
    node: process.versions.node,
    etcd: o.stores.includes("etcd") ? versionOf(ETCD, ["--version"]) : "-",
    reference: `containernetworking-plugins ${referenceVersion()} (bridge + host-local, ${REF_DIR})`,
    options: Object.fromEntries(Object.keys(DEFAULTS).map((k) => [k, o[k]])),
    machine: {
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model ?? "?",
      loadavgStart: loadavg()[0],
      loadavgEnd: 0,
    },
    targets: TARGETS,
  };
  const results = [];
  for (const kind of o.stores) results.push(await runStore(kind, o));
  meta.machine.loadavgEnd = loadavg()[0];
  if (o.json) {
    const stores = results.map((r) => ({ ...r, rows: rows(r) }));
    process.stdout.write(`${JSON.stringify({ ...meta, stores }, null, 2)}\n`);
  } else process.stdout.write(render(meta, results));
  const failed = results.some((r) => r.failures.length > 0);
  process.exitCode = failed ? 1 : 0;
}

main().catch((err) => {
  process.stderr.write(
    `bench/attach.mjs: ${err instanceof UsageError ? err.message : String(err?.stack ?? err)}\n`,
  );
  process.exit(err instanceof UsageError ? 2 : 1);
});

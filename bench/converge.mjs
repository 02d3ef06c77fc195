/**
 * Convergence benchmark: how long from a CNI ADD until the new pod answers a pod on another node.
 *
 * One LocalCluster (dist/test/kit/cluster.js): node namespaces on a veth underlay, etcd in a namespace
 * of its own (or the embedded SQLite store), one `overlayd` per node, pods attached through the
 * `overlay-cni` binary. One observer pod per node retries ARP every 20 ms (so the neighbour
 * table's one-second retry does not hide the overlay's own delay). Then, for each of `--pods`
 * pods, `--concurrency` at a time, over the nodes in turn: ADD (timed), and at once an observer on
 * the next node pings the new address every 10 ms; the first reply's timestamp (ping -D) ends the
 * measurement. Afterwards every pod is deleted (DEL timed) and `overlay check` must be clean.
 *
 * usage: node bench/converge.mjs [--pods N] [--nodes N] [--concurrency N] [--store etcd|sqlite] [--json]
 * Needs root, ping, etcd (Debian's etcd-server) for the default store, and the compiled
 * TypeScript (npx tsc -p tsconfig.build.json).
 */
import { spawn } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { join } from "node:path";
import { clearTimeout, setTimeout } from "node:timers";
import { LocalCluster, execIn, sqliteStore } from "../dist/test/kit/cluster.js";
import { isRoot } from "../dist/test/kit/netns/index.js";

const ETCD = process.env.ETCD_BINARY ?? "/usr/bin/etcd";

/**
 * @param {string[]} argv
 * @returns {{ pods: number, nodes: number, concurrency: number, store: "etcd" | "sqlite", json: boolean }}
 */
function parseArgs(argv) {
  /** @type {{ pods: number, nodes: number, concurrency: number, store: "etcd" | "sqlite", json: boolean }} */
  const o = { pods: 30, nodes: 3, concurrency: 1, store: "etcd", json: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    const int = (min, max) => {
      const n = Number(value());
      if (!Number.isInteger(n) || n < min || n > max) throw new Error(`${a} must be ${min}..${max}`);
      return n;
    };
    if (a === "--pods") o.pods = int(1, 1000);
    else if (a === "--nodes") o.nodes = int(2, 8);
    else if (a === "--concurrency") o.concurrency = int(1, 64);
    else if (a === "--store") {
      const s = value();
      if (s !== "etcd" && s !== "sqlite") throw new Error("--store is etcd or sqlite");
      o.store = s;
    } else if (a === "--json") o.json = true;
    else throw new Error(`unknown argument ${a}`);
  }
  return o;
}

/**
 * etcd inside the store namespace the cluster gives it (fresh, so its default ports are free),
 * stopped by its pid.
 * @returns {import("../dist/test/kit/cluster.js").StoreProvider}
 */
function etcdStore() {
  return {
    needsNamespace: true,
    start: async (place, tempDir) => {
      if (place === undefined) throw new Error("etcd needs a namespace on the underlay");
      if (!existsSync(ETCD)) throw new Error(`${ETCD} missing: apt-get install etcd-server`);
      const data = join(tempDir, "etcd");
      mkdirSync(data, { recursive: true });
      const client = `http://${place.ip}:2379`;
      const peer = `http://${place.ip}:2380`;
      const child = spawn(
        "ip",
        [
          "netns",
          "exec",
          place.ns,
          ETCD,
          ...["--name", "bench", "--data-dir", data],
          ...["--listen-client-urls", client, "--advertise-client-urls", client],
          ...["--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer],
          ...["--initial-cluster", `bench=${peer}`, "--initial-cluster-state", "new"],
          ...["--heartbeat-interval", "50", "--election-timeout", "500"],
          ...["--logger", "zap", "--log-outputs", "stderr"],
        ],
        { stdio: ["ignore", "ignore", "pipe"] },
      );
      const exited = new Promise((resolve) => child.once("exit", resolve));
      let tail = "";
      await new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`etcd not ready in 20 s:\n${tail}`)), 20_000);
        child.stderr.on("data", (d) => {
          tail = (tail + String(d)).slice(-4000);
          if (
            /ready to serve client requests|serving client traffic|serving insecure client requests/.test(
              tail,
            )
          ) {
            clearTimeout(timer);
            resolve(undefined);
          }
        });
        child.once("exit", (code, signal) => {
          clearTimeout(timer);
          reject(new Error(`etcd exited (${code ?? signal}):\n${tail}`));
        });
      });
      return {
        url: `etcd://${place.ip}:2379`,
        stop: async () => {
          if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
          process.kill(child.pid, "SIGTERM");
          const timer = setTimeout(() => child.pid !== undefined && process.kill(child.pid, "SIGKILL"), 5000);
          await exited;
          clearTimeout(timer);
        },
      };
    },
  };
}

/** @param {number[]} values */
function summary(values) {
  const s = [...values].sort((a, b) => a - b);
  const at = (p) => s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))];
  return { n: s.length, min: s[0], median: at(0.5), p95: at(0.95), max: s[s.length - 1] };
}

/**
 * @template T, R
 * @param {T[]} items
 * @param {number} limit
 * @param {(item: T, index: number) => Promise<R>} fn
 */
async function pool(items, limit, fn) {
  const out = new Array(items.length);
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < items.length; i = next++) out[i] = await fn(items[i], i);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/** @param {import("../dist/test/kit/cluster.js").ExecResult} r */
function check(r, what) {
  if (r.code !== 0) throw new Error(`${what}: exit ${r.code}: ${r.stdout}${r.stderr}`);
  return r;
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  if (!isRoot()) throw new Error("needs root (network namespaces, TAP devices, overlayd)");
  const started = new Date();
  const cluster = new LocalCluster({
    nodes: o.nodes,
    store: o.store === "etcd" ? etcdStore() : sqliteStore(),
  });
  const onSignal = (sig) => {
    console.error(`converge: ${sig}, cleaning up`);
    void cluster.close().finally(() => process.exit(130));
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  /** @type {{ pod: string, node: string, add: number, converge: number, afterAdd: number }[]} */
  const samples = [];
  /** @type {number[]} */
  const delMs = [];
  let checkLine = "";
  try {
    await cluster.start();
    check(
      await cluster.dctl(["network", "overlay", "create", "red", "-s", "172.30.0.0/16", "--set-default"]),
      "create red",
    );
    check(await cluster.dctl(["namespace", "create", "bench"]), "namespace create");
    const annotation = { network: "red" };
    const observers = [];
    for (let n = 0; n < o.nodes; n++) {
      const p = await cluster.addPod(n, "bench", `observer-${n + 1}`, annotation);
      check(
        await execIn(p.ns, "sysctl", [
          "-qw",
          "net.ipv4.neigh.eth0.retrans_time_ms=20",
          "net.ipv4.neigh.eth0.mcast_solicit=200",
          "net.ipv4.neigh.eth0.ucast_solicit=200",
        ]),
        "sysctl",
      );
      observers.push(p);
    }
    const pods = await pool(
      Array.from({ length: o.pods }, (_, i) => i),
      o.concurrency,
      async (i) => {
        const node = i % o.nodes;
        const t0 = Date.now();
        const pod = await cluster.addPod(node, "bench", `pod-${i + 1}`, annotation);
        const t1 = Date.now();
        const observer = observers[(node + 1) % o.nodes];
        const r = await execIn(
          observer.ns,
          "ping",
          ["-n", "-D", "-c", "1", "-i", "0.01", "-W", "1", "-w", "15", pod.ip],
          { timeoutMs: 20_000 },
        );
        const m = /^\[(\d+\.\d+)\] \d+ bytes from/m.exec(r.stdout);
        if (!m)
          throw new Error(`${pod.name} (${pod.ip}) never answered ${observer.name}: ${r.stdout}${r.stderr}`);
        const at = Math.round(Number(m[1]) * 1000);
        samples.push({
          pod: pod.name,
          node: pod.node.name,
          add: t1 - t0,
          converge: at - t0,
          afterAdd: at - t1,
        });
        if (!o.json)
          console.error(`  ${pod.name} on ${pod.node.name}: ADD ${t1 - t0} ms, reachable ${at - t0} ms`);
        return pod;
      },
    );
    await pool([...pods, ...observers], o.concurrency, async (p) => {
      const t0 = Date.now();
      check(await cluster.delPod(p), `DEL ${p.name}`);
      delMs.push(Date.now() - t0);
    });
    const r = await cluster.dctl(["network", "overlay", "check", "red"]);
    checkLine = (r.stdout + r.stderr).trim();
    check(r, "overlay check");
  } finally {
    await cluster.close();
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }

  const result = {
    started: started.toISOString(),
    machine: { cpus: cpus().length, model: cpus()[0]?.model, loadavg: loadavg() },
    options: o,
    add: summary(samples.map((s) => s.add)),
    converge: summary(samples.map((s) => s.converge)),
    afterAdd: summary(samples.map((s) => s.afterAdd)),
    del: summary(delMs),
    check: checkLine,
    samples,
  };
  if (o.json) {
    console.log(JSON.stringify(result, null, 2));
    return;
  }
  const row = (label, s) => `| ${label} | ${s.n} | ${s.median} | ${s.p95} | ${s.min} | ${s.max} |`;
  console.log(
    `\n${o.pods} pods over ${o.nodes} nodes on ${o.store}, ${o.concurrency} at a time; load average ${loadavg()
      .map((x) => x.toFixed(1))
      .join(" ")}`,
  );
  console.log("| ms | n | median | p95 | min | max |");
  console.log("|---|---|---|---|---|---|");
  console.log(row("CNI ADD (plugin binary, start to exit)", result.add));
  console.log(row("ADD started -> reachable from another node", result.converge));
  console.log(row("ADD returned -> reachable from another node", result.afterAdd));
  console.log(row("CNI DEL", result.del));
  console.log(checkLine);
}

main().catch((e) => {
  console.error(`converge: ${e instanceof Error ? e.message : String(e)}`);
  process.exitCode = 1;
});

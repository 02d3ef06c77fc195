/**
 * Control plane at cluster scale: one real agent against one etcd, the other N-1 nodes of the
 * cluster simulated by a generator that writes the records their agents would write.
 *
 * For each scale point (N nodes x P pods per node):
 *   1. a fresh etcd (its own temp folder, free ports on 127.0.0.1, a backend quota of 8 GiB);
 *   2. the generator (bench/scale-churn.mjs, a child process) writes the overlay network
 *      (172.30.0.0/16, /24 blocks), 20 namespaces, the registrations of nodes 2..N under a lease
 *      it keeps alive, a block per node and P endpoints per node with their address records;
 *   3. this process reads the store back (per namespace, so no listing is large) and computes
 *      the remote table every agent must hold by the rule of src/agent/desired.ts, written out
 *      again here: each endpoint of another registered node on its namespace's VNI, each other
 *      node's gateway on the global VNI;
 *   4. the agent host (bench/scale-agent.mjs, a child process) starts a real Agent for node 1
 *      with a real Switch (127.0.0.1, no ports) behind a recorder, and no-op host plumbing. It
 *      reports when the switch has been given every entry of that table (start -> programmed),
 *      and its memory (VmRSS, VmHWM);
 *   5. churn: the generator writes endpoint creates and deletes at --churn-rate per second for
 *      --churn-seconds, reporting for each the MAC and when etcd acknowledged it; the agent host
 *      measures its CPU over the same window and logs every table call with the MACs it added
 *      and removed. Each write is matched with the first table call that applied it;
 *   6. the agent's remote table is compared, entry by entry, with the store's;
 *   7. a node departs (node-002's registration deleted, as its lease running out would): the
 *      time until the agent's table has withdrawn its remotes, and until the agent has released
 *      its endpoints, addresses and block after the grace of 2 lease TTLs (the departed-node GC),
 *      checked against the store;
 *   8. `dctl network overlay endpoints red -o json` and `dctl network overlay check red` are run
 *      and timed against the same etcd;
 *   9. everything started for the point is stopped by its pid and its folder removed.
 * A point whose agent fails (does not start, is not programmed in --timeout seconds, falls
 * behind) is reported with what happened, and the next point runs.
 *
 * Why the agent runs in a process of its own per point, not in this one: VmHWM is a peak over a
 * process's life, so a fresh process per point is what makes each point's memory its own; this
 * process holds the expected tables, the write log and dctl's output, none of which is the
 * agent's to carry; and an agent that hangs can be killed by pid without losing the run. That
 * process hosts nothing but the agent, the switch and the recorder.
 *
 * usage: node bench/scale.mjs [--points 50x100,200x50,256x250] [--churn-rate 200]
 *   [--churn-seconds 10] [--timeout 120] [--json] [--quick]
 * No root needed (the switch has no ports; nothing on the host is touched). Needs etcd
 * (Debian's etcd-server, /usr/bin/etcd, or $ETCD_BINARY) and the compiled TypeScript
 * (npx tsc -p tsconfig.build.json) and addon. The commit reported is HEAD and what src/ has
 * uncommitted, or $OVERLAY_BENCH_COMMIT (for a run from a `git archive` export). With
 * $OVERLAY_SCALE_PROFILE_DIR set, the agent host and every dctl run write CPU profiles there
 * (open them in Chrome's DevTools): where an event's or a listing's time goes.
 * Past 400 lines on purpose: every scale point runs the same sequence (load, start-up, churn,
 * departed-node GC, dctl timings) against one etcd and one agent host, and the report reads all
 * points together; each step is a function of its own.
 */
import { execFile, execFileSync, fork, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { createServer } from "node:net";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { clearTimeout, setTimeout } from "node:timers";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { blockGateway, listBlocks, macFromIpv4 } from "../dist/src/model/ipam.js";
import { blockAddressesPrefix, namespaceEndpointsPrefix, nodeKey } from "../dist/src/model/keys.js";
import { GLOBAL_VNI, listNamespaces, podVni } from "../dist/src/model/namespaces.js";
import { getNetwork } from "../dist/src/model/networkread.js";
import { listNodes } from "../dist/src/model/nodes.js";
import { parseEndpoint } from "../dist/src/model/records.js";
import { openStore } from "../dist/src/store/index.js";
import { TableDigest, clock, entryValue, errorText, nodeName } from "./scale-common.mjs";
import { TARGETS, matchWrites, percentile, render, scaling, tableDifference } from "./scale-report.mjs";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const ETCD = process.env.ETCD_BINARY ?? "/usr/bin/etcd";
const NETWORK = "red";
const SUBNET = "172.30.0.0/16";
const NAMESPACES = 20;
const AGENT_NODE = nodeName(1);
const QUOTA_BYTES = 8 * 1024 ** 3;
/** How long after the churn the agent may still apply its last events. */
const SETTLE_MS = 10_000;
/** The agent's idle CPU is measured over this long before the churn (--quick: 2 s). */
const IDLE_MS = 10_000;
const QUICK_IDLE_MS = 2_000;
const DCTL_TIMEOUT_MS = 120_000;
/** The simulated node whose registration is deleted to measure the departed-node GC. */
const DEPARTING_NODE = nodeName(2);
/**
 * The agent's lease TTL (s): overlayd's default, or 2 s with --quick. It releases a departed
 * node's records 2 TTLs after the node left.
 */
const LEASE_TTL_S = 10;
const QUICK_LEASE_TTL_S = 2;

function parseArgs(argv) {
  const o = {
    points: "50x100,200x50,256x250",
    churnRate: 200,
    churnSeconds: 10,
    timeoutS: 120,
    json: false,
    quick: false,
    idleMs: IDLE_MS,
    leaseTtlS: LEASE_TTL_S,
  };
  let pointsGiven = false;
  let secondsGiven = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    const number = (min, max) => {
      const n = Number(value());
      if (!Number.isFinite(n) || n < min || n > max) throw new Error(`${a} must be ${min}..${max}`);
      return n;
    };
    if (a === "--points") {
      o.points = value();
      pointsGiven = true;
    } else if (a === "--churn-rate") o.churnRate = number(2, 5000);
    else if (a === "--churn-seconds") {
      o.churnSeconds = number(1, 600);
      secondsGiven = true;
    } else if (a === "--timeout") o.timeoutS = number(5, 3600);
    else if (a === "--json") o.json = true;
    else if (a === "--quick") o.quick = true;
    else throw new Error(`unknown argument ${a}`);
  }
  if (o.quick) {
    if (!pointsGiven) o.points = "10x20";
    if (!secondsGiven) o.churnSeconds = 3;
    o.idleMs = QUICK_IDLE_MS;
    o.leaseTtlS = QUICK_LEASE_TTL_S;
  }
  const points = o.points.split(",").map((s) => {
    const m = /^(\d+)x(\d+)$/.exec(s.trim());
    const nodes = Number(m?.[1]);
    const pods = Number(m?.[2]);
    if (!m || nodes < 2 || nodes > 256 || pods < 1 || pods > 250) {
      throw new Error(`--points: "${s}" is not NODESxPODS with 2..256 nodes and 1..250 pods per node`);
    }
    return { nodes, pods };
  });
  return { ...o, points };
}

// ---- processes and folders this run started: stopped by pid, removed, whatever happens --------

/** @type {Set<import("node:child_process").ChildProcess>} */
const children = new Set();
/** @type {Set<string>} */
const folders = new Set();

/** @param {import("node:child_process").ChildProcess} child */
function track(child) {
  children.add(child);
  child.once("exit", () => children.delete(child));
  return child;
}

/** Stops a child by its pid: SIGTERM, SIGKILL after `graceMs`. */
async function stopChild(child, graceMs = 5000) {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  process.kill(child.pid, "SIGTERM");
  const timer = setTimeout(() => {
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      process.kill(child.pid, "SIGKILL");
    }
  }, graceMs);
  await exited;
  clearTimeout(timer);
}

function killAllNow() {
  for (const c of children) {
    if (c.pid !== undefined && c.exitCode === null && c.signalCode === null) {
      try {
        process.kill(c.pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
  }
  for (const d of folders) rmSync(d, { recursive: true, force: true });
}

process.on("exit", killAllNow);
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.once(signal, () => {
    process.stderr.write(`\n${signal}: stopping etcd, the agent and the generator\n`);
    killAllNow();
    process.exit(130);
  });
}

function progress(text) {
  process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${text}\n`);
}

// ---- etcd ---------------------------------------------------------------------------------

/** @param {number} count @returns {Promise<number[]>} TCP ports free on 127.0.0.1 a moment ago */
async function freePorts(count) {
  const servers = Array.from({ length: count }, () => createServer());
  const ports = await Promise.all(
    servers.map(
      (s) =>
        new Promise((resolve, reject) => {
          s.once("error", reject);
          s.listen(0, "127.0.0.1", () =>
            resolve(/** @type {import("node:net").AddressInfo} */ (s.address()).port),
          );
        }),
    ),
  );
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  return ports;
}

/** A fresh single-member etcd in `dir`, stopped by its pid. */
async function startEtcd(dir) {
  const [clientPort, peerPort] = await freePorts(2);
  const client = `http://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  const child = track(
    spawn(
      ETCD,
      [
        ...["--name", "scale", "--data-dir", join(dir, "etcd")],
        ...["--listen-client-urls", client, "--advertise-client-urls", client],
        ...["--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer],
        ...["--initial-cluster", `scale=${peer}`, "--initial-cluster-state", "new"],
        ...["--initial-cluster-token", `scale-${process.pid}-${clientPort}`],
        ...["--heartbeat-interval", "50", "--election-timeout", "500"],
        ...["--quota-backend-bytes", String(QUOTA_BYTES)],
        ...["--logger", "zap", "--log-outputs", "stderr", "--log-level", "warn"],
      ],
      { stdio: ["ignore", "ignore", "pipe"] },
    ),
  );
  let tail = "";
  child.stderr?.on("data", (d) => (tail = (tail + String(d)).slice(-4000)));
  const exited = new Promise((resolve) => child.once("exit", (code, signal) => resolve(code ?? signal)));
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`etcd exited (${await exited}) before it was ready:\n${tail}`);
    }
    try {
      const res = await globalThis.fetch(`${client}/health`, {
        signal: globalThis.AbortSignal.timeout(1000),
      });
      if (/** @type {{ health?: string }} */ (await res.json()).health === "true") break;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) {
      await stopChild(child);
      throw new Error(`etcd not healthy in 20 s:\n${tail}`);
    }
    await sleep(50);
  }
  return { url: `etcd://127.0.0.1:${clientPort}`, pid: child.pid, stop: () => stopChild(child) };
}

// ---- child processes spoken to over IPC ---------------------------------------------------

/** Node flags that write a CPU profile of the agent host and of each dctl run, when asked to. */
function profiling() {
  const dir = process.env.OVERLAY_SCALE_PROFILE_DIR;
  return dir ? ["--cpu-prof", "--cpu-prof-dir", dir] : [];
}

/**
 * A forked child and the messages it sent, awaited by type.
 * @param {string} script
 * @param {string[]} args
 */
function forkChild(script, args) {
  const child = track(
    fork(join(ROOT, "bench", script), args, {
      stdio: ["ignore", "pipe", "pipe", "ipc"],
      serialization: "advanced",
      execArgv: script === "scale-agent.mjs" ? profiling() : [],
    }),
  );
  /** @type {any[]} */
  const inbox = [];
  /** @type {{ types: string[], resolve: (m: any) => void }[]} */
  const waiting = [];
  let stderr = "";
  const keep = (d) => (stderr = (stderr + String(d)).slice(-8000));
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  child.on("message", (m) => {
    const i = waiting.findIndex((w) => w.types.includes(m.type));
    if (i >= 0) waiting.splice(i, 1)[0]?.resolve(m);
    else inbox.push(m);
  });
  const exited = new Promise((resolve) => child.once("exit", (code, signal) => resolve(code ?? signal)));
  return {
    child,
    get stderr() {
      return stderr;
    },
    /**
     * The next message of one of `types`; rejects when the child exits first or after `timeoutMs`.
     * @param {string[]} types
     * @param {number} timeoutMs
     */
    next(types, timeoutMs) {
      const i = inbox.findIndex((m) => types.includes(m.type));
      if (i >= 0) return Promise.resolve(inbox.splice(i, 1)[0]);
      return new Promise((resolve, reject) => {
        const entry = {
          types,
          resolve: (m) => {
            clearTimeout(timer);
            resolve(m);
          },
        };
        const timer = setTimeout(() => {
          waiting.splice(waiting.indexOf(entry), 1);
          reject(
            new Error(`no ${types.join(" or ")} from ${script} within ${Math.round(timeoutMs / 1000)} s`),
          );
        }, timeoutMs);
        waiting.push(entry);
        exited.then((code) => {
          if (!waiting.includes(entry)) return;
          waiting.splice(waiting.indexOf(entry), 1);
          clearTimeout(timer);
          reject(
            new Error(`${script} exited (${code}) before sending ${types.join(" or ")}:\n${stderr.trim()}`),
          );
        });
      });
    },
    /** @param {object} message @param {string[]} types @param {number} timeoutMs */
    ask(message, types, timeoutMs) {
      const answer = this.next(types, timeoutMs);
      child.send(message);
      return answer;
    },
    /** Asks it to stop; by pid when it does not exit within `graceMs`. */
    async stop(graceMs = 10_000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      if (child.connected) child.send({ cmd: "stop" });
      const done = await Promise.race([exited.then(() => true), sleep(graceMs).then(() => false)]);
      if (!done) await stopChild(child);
    },
  };
}

// ---- the store's side: what the agent must hold -------------------------------------------

/**
 * The remote table node 1 must hold, from the store as it is now: every endpoint of another
 * registered node on its namespace's VNI, and every other registered node's gateway (the first
 * address of each of its blocks) on the global VNI. Endpoints are listed per namespace, so that
 * no single response is large.
 */
async function expectedTable(store) {
  const { value: network } = await getNetwork(store, NETWORK);
  const namespaces = (await listNamespaces(store, NETWORK)).entries.map((e) => e.value);
  const nodes = new Map((await listNodes(store)).entries.map((e) => [e.value.name, e.value]));
  const blocks = (await listBlocks(store, NETWORK)).entries.map((e) => e.value);
  /** @type {Map<string, string>} */
  const entries = new Map();
  let endpoints = 0;
  /** Endpoints in the store per owning node, registered or not. */
  const endpointsOf = new Map();
  let remoteEndpoints = 0;
  let gateways = 0;
  let problems = 0;
  for (const ns of namespaces) {
    const vni = podVni(network, ns);
    const { items } = await store.list(namespaceEndpointsPrefix(NETWORK, ns.name));
    for (const kv of items) {
      const parsed = parseEndpoint(kv);
      if (!parsed.ok) {
        problems++;
        continue;
      }
      const e = parsed.value;
      endpoints++;
      endpointsOf.set(e.node, (endpointsOf.get(e.node) ?? 0) + 1);
      const node = nodes.get(e.node);
      if (e.node === AGENT_NODE || node === undefined || vni === undefined) continue;
      entries.set(e.mac, entryValue({ vni, ipv4: e.ip, vtep: node.underlayIp }));
      remoteEndpoints++;
    }
  }
  for (const b of blocks) {
    const node = nodes.get(b.node);
    if (b.node === AGENT_NODE || node === undefined) continue;
    const ip = blockGateway(b.cidr);
    entries.set(macFromIpv4(ip), entryValue({ vni: GLOBAL_VNI, ipv4: ip, vtep: node.underlayIp }));
    gateways++;
  }
  const digest = new TableDigest();
  for (const [mac, value] of entries) digest.add(mac, value);
  return {
    entries,
    digest: digest.value(),
    endpoints,
    endpointsOf,
    remoteEndpoints,
    gateways,
    problems,
    nodes: nodes.size,
  };
}

// ---- dctl ---------------------------------------------------------------------------------

/** Runs dctl against the store, timed; a failure is a result, not an exception. */
function dctl(url, args) {
  return new Promise((resolve) => {
    const t0 = clock();
    execFile(
      process.execPath,
      [...profiling(), join(ROOT, "dist", "src", "cli", "dctl.js"), "--store", url, ...args],
      { cwd: ROOT, timeout: DCTL_TIMEOUT_MS, encoding: "utf8", maxBuffer: 1 << 30 },
      (error, stdout, stderr) => {
        const ms = clock() - t0;
        const code = error
          ? typeof error.code === "number"
            ? error.code
            : `${error.signal ?? error.code}`
          : 0;
        resolve({ ms, code, stdout, stderr });
      },
    );
  });
}

/**
 * Deletes DEPARTING_NODE's registration, as its lease running out would, and measures the two
 * things every agent then does: withdraw the node's remotes from the switch (the table equals the
 * store's rule again), and, once the grace is up, release its endpoints, addresses and block
 * (src/agent/gc.ts). Polls the small things (the table's digest, the block list) and reads the
 * node's records once at the end.
 * @param {import("../dist/src/store/store.js").Store} store
 * @param {ReturnType<typeof forkChild>} host
 * @param {string} label
 */
async function departNode(store, host, label, graceMs) {
  const out = { node: DEPARTING_NODE, graceMs, ok: false };
  const blocks = (await listBlocks(store, NETWORK)).entries.filter((e) => e.value.node === DEPARTING_NODE);
  const t0 = clock();
  await store.txn([], [{ type: "delete", key: nodeKey(DEPARTING_NODE) }]);
  const expected = await expectedTable(store);
  out.endpoints = expected.endpointsOf.get(DEPARTING_NODE) ?? 0;
  const deadline = t0 + graceMs + 60_000;
  while (out.withdrawnMs === undefined && clock() < deadline) {
    const state = await host.ask({ cmd: "state" }, ["state"], 30_000);
    if (TableDigest.equal(state.digest, expected.digest)) out.withdrawnMs = clock() - t0;
    else await sleep(20);
  }
  if (out.withdrawnMs === undefined) {
    out.error = `the agent kept ${DEPARTING_NODE}'s remotes for ${Math.round((clock() - t0) / 1000)} s`;
    return out;
  }
  while (out.releasedMs === undefined && clock() < deadline) {
    const left = (await listBlocks(store, NETWORK)).entries.filter((e) => e.value.node === DEPARTING_NODE);
    if (left.length === 0) out.releasedMs = clock() - t0;
    else await sleep(250);
  }
  // What is left of the node: endpoints (the whole listing, once) and its blocks' addresses.
  const after = await expectedTable(store);
  out.endpointsLeft = after.endpointsOf.get(DEPARTING_NODE) ?? 0;
  out.endpointsInStore = after.endpoints;
  out.addressesLeft = 0;
  for (const b of blocks)
    out.addressesLeft += (await store.list(blockAddressesPrefix(NETWORK, b.value.cidr))).items.length;
  if (out.releasedMs === undefined) {
    out.error = `${DEPARTING_NODE}'s block was not released ${Math.round((clock() - t0) / 1000)} s after it left`;
  } else if (out.endpointsLeft > 0 || out.addressesLeft > 0) {
    out.error = `${out.endpointsLeft} endpoints and ${out.addressesLeft} addresses of ${DEPARTING_NODE} left`;
  } else out.ok = true;
  progress(
    `${label}: ${DEPARTING_NODE}'s ${out.endpoints} endpoints withdrawn within ${Math.round(out.withdrawnMs)} ms, ` +
      `released ${out.releasedMs === undefined ? "never" : `in ${(out.releasedMs / 1000).toFixed(1)} s`}`,
  );
  return out;
}

async function timeDctl(url, expectedEndpoints) {
  const out = {};
  const list = await dctl(url, ["network", "overlay", "endpoints", NETWORK, "-o", "json"]);
  out.endpoints = { ms: list.ms, code: list.code, ok: list.code === 0 };
  if (list.code === 0) {
    try {
      const n = /** @type {unknown[]} */ (JSON.parse(list.stdout)).length;
      out.endpoints.listed = n;
      if (n !== expectedEndpoints) {
        out.endpoints.ok = false;
        out.endpoints.error = `listed ${n} endpoints, the store holds ${expectedEndpoints}`;
      }
    } catch (err) {
      out.endpoints.ok = false;
      out.endpoints.error = `output is not JSON: ${errorText(err)}`;
    }
  } else out.endpoints.error = (list.stderr || list.stdout).trim().slice(0, 600);
  const check = await dctl(url, ["network", "overlay", "check", NETWORK]);
  out.check = { ms: check.ms, code: check.code, ok: check.code === 0 };
  if (check.code !== 0) out.check.error = (check.stderr || check.stdout).trim().slice(0, 600);
  else out.check.summary = check.stdout.trim().split("\n").pop();
  return out;
}

// ---- one scale point ----------------------------------------------------------------------

async function runPoint(o, point) {
  const label = `${point.nodes}x${point.pods}`;
  /** @type {any} */
  const r = {
    point: label,
    nodes: point.nodes,
    podsPerNode: point.pods,
    failures: [],
    loadavgStart: loadavg()[0],
  };
  const dir = mkdtempSync(join(tmpdir(), `overlay-scale-${label}-`));
  folders.add(dir);
  /** @type {Awaited<ReturnType<typeof startEtcd>> | undefined} */
  let etcd;
  /** @type {ReturnType<typeof forkChild> | undefined} */
  let gen;
  /** @type {ReturnType<typeof forkChild> | undefined} */
  let host;
  /** @type {import("../dist/src/store/store.js").Store | undefined} */
  let store;
  try {
    etcd = await startEtcd(dir);
    progress(`${label}: etcd ${etcd.url} (pid ${etcd.pid})`);
    const url = etcd.url;
    const size = ["--nodes", String(point.nodes), "--pods", String(point.pods)];
    gen = forkChild("scale-churn.mjs", [
      ...[
        "--store",
        url,
        ...size,
        "--namespaces",
        String(NAMESPACES),
        "--network",
        NETWORK,
        "--subnet",
        SUBNET,
      ],
    ]);
    await gen.next(["ready"], 30_000);
    const loaded = await gen.ask({ cmd: "load" }, ["loaded", "error"], 600_000);
    if (loaded.type === "error") throw new Error(`loading the cluster failed: ${loaded.error}`);
    r.loadMs = loaded.ms;
    progress(
      `${label}: wrote ${loaded.nodes} nodes, ${loaded.endpoints} endpoints in ${(loaded.ms / 1000).toFixed(1)} s`,
    );

    store = await openStore(url, { timeoutMs: 30_000 });
    const before = await expectedTable(store);
    r.endpoints = before.endpoints;
    r.expectedRemotes = before.digest.count;
    r.expectedGateways = before.gateways;

    // The agent: started, programmed, churned, compared. Its failures are results; dctl runs anyway.
    const measureAgent = async () => {
      host = forkChild("scale-agent.mjs", [
        ...["--store", url, "--node", AGENT_NODE, "--socket", join(dir, "agent.sock")],
        ...["--expect", `${before.digest.count},${before.digest.sum},${before.digest.xor}`],
        ...["--timeout-ms", String(o.timeoutS * 1000)],
        ...["--lease-ttl", String(o.leaseTtlS)],
      ]);
      // "started" (start() returned) may come first; what counts is one of these.
      const agentUp = await host.next(
        ["programmed", "not-programmed", "start-failed"],
        (o.timeoutS + 30) * 1000,
      );
      if (agentUp.type === "start-failed") {
        r.start = {
          ok: false,
          error: agentUp.error,
          afterMs: agentUp.afterMs,
          rssMb: agentUp.rssMb,
          hwmMb: agentUp.hwmMb,
          warnings: agentUp.warnings,
        };
        r.failures.push(
          `agent start failed after ${(agentUp.afterMs / 1000).toFixed(1)} s: ${agentUp.error}`,
        );
        return;
      }
      if (agentUp.type === "not-programmed") {
        r.start = { ok: false, ...agentUp };
        const state = await host.ask({ cmd: "dump" }, ["dump"], 30_000);
        const diff = tableDifference(before.entries, state.entries);
        r.failures.push(
          `not programmed after ${o.timeoutS} s: ${agentUp.have.count} of ${before.digest.count} entries` +
            `${agentUp.startMs === undefined ? " (start() had not returned)" : ""}; ` +
            `${diff.missing} missing, ${diff.wrong} wrong, ${diff.stale} stale` +
            (diff.examples.length ? ` (${diff.examples.slice(0, 3).join("; ")})` : ""),
        );
        return;
      }
      r.start = {
        ok: true,
        startMs: agentUp.startMs,
        programmedMs: agentUp.programmedMs,
        rssMb: agentUp.rssMb,
        hwmMb: agentUp.hwmMb,
        baselineRssMb: agentUp.baselineRssMb,
        calls: agentUp.calls,
        entriesCarried: agentUp.entriesCarried,
        switchMs: agentUp.switchMs,
      };
      progress(
        `${label}: agent programmed ${before.digest.count} remotes in ${Math.round(agentUp.programmedMs)} ms`,
      );

      // Idle: the agent host's CPU with nothing written (its timers: lease, safety-net
      // reconcile, departed-node scan), the floor under the churn's figure.
      await host.ask({ cmd: "churn-begin" }, ["churn-begun"], 30_000);
      await sleep(o.idleMs);
      const idle = await host.ask({ cmd: "churn-end" }, ["churn-ended"], 30_000);
      r.idleCpuPercent = ((idle.userMs + idle.systemMs) / idle.wallMs) * 100;

      // Churn: the agent host's CPU over the generator's writing window.
      const begun = await host.ask({ cmd: "churn-begin" }, ["churn-begun"], 30_000);
      const churned = await gen.ask(
        { cmd: "churn", rate: o.churnRate, seconds: o.churnSeconds },
        ["churned", "error"],
        (o.churnSeconds + 120) * 1000,
      );
      const ended = await host.ask({ cmd: "churn-end" }, ["churn-ended"], 30_000);
      if (churned.type === "error") throw new Error(`churn failed: ${churned.error}`);
      const writes = churned.events.filter((e) => e.ok);
      const refused = churned.events.filter((e) => e.ok === false);
      const skipped = churned.events.filter((e) => e.skipped !== undefined);
      r.churn = {
        rate: o.churnRate,
        seconds: o.churnSeconds,
        scheduled: churned.stats.scheduled,
        written: writes.length,
        refused: refused.length,
        refusedExamples: refused.slice(0, 5).map((e) => `${e.kind} ${e.pod}: ${e.error}`),
        skipped: skipped.length,
        writeWindowMs: churned.stats.endedAt - churned.stats.startedAt,
        maxInFlight: churned.stats.maxInFlight,
        scheduleLagMs: churned.stats.maxLagMs,
        cpuWallMs: ended.wallMs,
        cpuUserMs: ended.userMs,
        cpuSystemMs: ended.systemMs,
        cpuPercent: ((ended.userMs + ended.systemMs) / ended.wallMs) * 100,
        switchMs: ended.switchMs - begun.switchMs,
        // The recorder's own bookkeeping, part of the CPU figure (measured, to show it is small).
        recorderMs: ended.recorderMs - begun.recorderMs,
        leaseProblems: churned.leaseProblems,
      };
      if (refused.length > 0)
        r.failures.push(
          `${refused.length} churn writes refused or failed: ${r.churn.refusedExamples.join("; ")}`,
        );

      // Settle: until every write is applied, or SETTLE_MS.
      const log = [];
      let matched = matchWrites(writes, log);
      const settleDeadline = clock() + SETTLE_MS;
      for (;;) {
        const more = await host.ask({ cmd: "log", from: log.length }, ["log"], 30_000);
        log.push(...more.entries);
        matched = matchWrites(writes, log);
        if (matched.unapplied.length === 0 || clock() > settleDeadline) break;
        await sleep(200);
      }
      const lat = matched.latencies;
      r.churn.applied = lat.length;
      r.churn.neverApplied = matched.unapplied.length;
      r.churn.neverAppliedList = matched.unapplied.map((w) => `${w.kind} ${w.mac} ${w.pod} on ${w.node}`);
      r.churn.tableCalls = log.length;
      // From when the write was sent: never negative, and includes etcd's commit.
      r.churn.fromSentMs = {
        p50: percentile(matched.fromSent, 0.5),
        p99: percentile(matched.fromSent, 0.99),
        max: percentile(matched.fromSent, 1),
      };
      r.churn.latencyMs = {
        p50: percentile(lat, 0.5),
        p99: percentile(lat, 0.99),
        max: percentile(lat, 1),
        min: percentile(lat, 0),
      };
      if (matched.unapplied.length > 0) {
        r.failures.push(
          `${matched.unapplied.length} of ${writes.length} writes never applied within ${SETTLE_MS / 1000} s after the churn: ` +
            r.churn.neverAppliedList.slice(0, 5).join("; ") +
            (matched.unapplied.length > 5 ? "; ..." : ""),
        );
      }
      progress(
        `${label}: churn ${writes.length} writes, ${lat.length} applied, p50 ${r.churn.latencyMs.p50?.toFixed(1)} ms, ` +
          `CPU ${r.churn.cpuPercent.toFixed(1)}%`,
      );

      // The whole table, against the store.
      const after = await expectedTable(store);
      r.endpointsAfter = after.endpoints;
      const state = await host.ask({ cmd: "state" }, ["state"], 30_000);
      r.memory = { rssMb: state.rssMb, hwmMb: state.hwmMb };
      r.agentState = state.agent;
      r.agentCalls = state.calls;
      r.agentWarnings = state.warnings;
      r.agentLogLines = state.logLines;
      const equal = TableDigest.equal(state.digest, after.digest);
      r.table = {
        expected: after.digest.count,
        programmed: state.digest.count,
        equal,
        missing: 0,
        wrong: 0,
        stale: 0,
      };
      if (!equal) {
        const dump = await host.ask({ cmd: "dump" }, ["dump"], 60_000);
        const diff = tableDifference(after.entries, dump.entries);
        Object.assign(r.table, diff);
        r.failures.push(
          `remote table differs from the store after the churn: ${diff.missing} missing, ${diff.wrong} wrong, ${diff.stale} stale (${diff.examples.slice(0, 5).join("; ")})`,
        );
      }

      // A node departs: its remotes leave the table at once, its records after the grace.
      progress(`${label}: ${DEPARTING_NODE} departs`);
      r.departed = await departNode(store, host, label, 2 * o.leaseTtlS * 1000);
      if (!r.departed.ok) r.failures.push(`departed-node GC: ${r.departed.error}`);
      if (r.departed.endpointsInStore !== undefined) r.endpointsAfter = r.departed.endpointsInStore;
    };
    try {
      await measureAgent();
    } catch (err) {
      r.failures.push(`benchmark error while measuring the agent: ${errorText(err)}`);
    }

    progress(`${label}: dctl`);
    r.dctl = await timeDctl(url, r.endpointsAfter ?? r.endpoints);
    for (const [what, d] of Object.entries(r.dctl)) {
      if (!d.ok) r.failures.push(`dctl ${what} failed (exit ${d.code}, ${Math.round(d.ms)} ms): ${d.error}`);
    }
    return r;
  } catch (err) {
    r.failures.push(`benchmark error: ${errorText(err)}`);
    return r;
  } finally {
    await host?.stop().catch(() => undefined);
    await gen?.stop().catch(() => undefined);
    await store?.close().catch(() => undefined);
    await etcd?.stop().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
    folders.delete(dir);
    r.loadavgEnd = loadavg()[0];
  }
}

function git(args) {
  try {
    return execFileSync("git", args, {
      cwd: ROOT,
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
    });
  } catch {
    return "";
  }
}

/** The commit measured: HEAD and what src/ has uncommitted, or $OVERLAY_BENCH_COMMIT (an export). */
function describeCommit() {
  if (process.env.OVERLAY_BENCH_COMMIT) return process.env.OVERLAY_BENCH_COMMIT;
  const head = git(["rev-parse", "--short", "HEAD"]).trim() || "unknown";
  const changed = git(["status", "--porcelain", "--", "src"])
    .split("\n")
    .filter((l) => l.length > 3)
    .map((l) => l.slice(3));
  return changed.length === 0 ? head : `${head} + uncommitted ${changed.join(", ")}`;
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  if (!existsSync(ETCD)) throw new Error(`${ETCD} missing: apt-get install etcd-server, or set ETCD_BINARY`);
  if (!existsSync(join(ROOT, "dist", "src", "agent", "agent.js")))
    throw new Error("dist/ missing: npx tsc -p tsconfig.build.json");
  const meta = {
    date: new Date().toISOString(),
    agentNode: AGENT_NODE,
    commit: describeCommit(),
    distBuilt: statSync(join(ROOT, "dist", "src", "agent", "agent.js")).mtime.toISOString(),
    etcd: (execFileSync(ETCD, ["--version"], { encoding: "utf8" }).split("\n")[0] ?? "etcd").trim(),
    options: {
      points: o.points.map((p) => `${p.nodes}x${p.pods}`),
      churnRate: o.churnRate,
      churnSeconds: o.churnSeconds,
      timeoutS: o.timeoutS,
    },
    machine: {
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model ?? "?",
      loadavgStart: loadavg()[0],
      loadavgEnd: 0,
    },
    targets: TARGETS,
  };
  const results = [];
  for (const p of o.points) results.push(await runPoint(o, p));
  meta.machine.loadavgEnd = loadavg()[0];
  if (o.json)
    process.stdout.write(
      `${JSON.stringify({ ...meta, scaling: scaling(results), points: results }, null, 2)}\n`,
    );
  else process.stdout.write(render(meta, results));
}

main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`bench/scale.mjs: ${errorText(err)}\n`);
    process.exit(1);
  },
);

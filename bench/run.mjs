/**
 * Data-plane benchmark: one run, one two-node namespace world per path, measured side by side.
 *
 * Paths: the Linux kernel's vxlan device + bridge (the reference), the project's switch (one
 * `Switch` per node, offloads on), a naive relay (bench/naive-relay.c: one frame per system
 * call) and, where it is installed, Open vSwitch's userspace datapath (bench/ovs.mjs: per node
 * its own ovsdb-server and ovs-vswitchd, netdev bridges, userspace VXLAN tunnelling).
 *
 * Tests (iperf3, ping and sockperf, pod to pod): TCP one stream and four streams across nodes,
 * TCP one stream between two pods of one node, UDP 64-byte datagrams received per second; the
 * latency group: ping RTT across nodes (median and p99), `sockperf ping-pong` with 64-byte
 * messages over UDP and TCP, across nodes and between two pods of one node (median and p99 RTT,
 * transactions per second, the data plane's CPU meanwhile); and the idle figures: the data
 * plane's CPU with no traffic, with one ping a second and at 1,000 requests a second. Each test
 * runs every path back to back, `--reps` times; the table shows medians and ratios to the
 * kernel. CPU: system-wide busy time (/proc/stat) per Gbit for every path, and the data-plane
 * process's own CPU time (/proc/<pid>/stat) per Gbit for the switch (this process hosts it), the
 * relay and ovs-vswitchd; for the latency and idle figures the switch's packet threads alone
 * (/proc/self/task/*, named overlay-pkt*).
 *
 * usage: node bench/run.mjs [--reps N] [--duration S] [--quick] [--only kernel,switch,switch0,naive,ovs]
 *                           [--tests tcp1,tcp4,local,udp64,ping,rr-udp,rr-tcp,rr-udp-local,
 *                            rr-tcp-local,idle | latency] [--udp-rate BITS] [--poll-us N]
 *                           [--no-save]
 * Needs root, iperf3, ping, sockperf, cc, and the compiled TypeScript (npx tsc -p
 * tsconfig.build.json); the OVS path needs Debian's openvswitch-switch (.ci/install-deps).
 * Past 400 lines on purpose: one run builds every path in one world and measures them side by
 * side, and the paths, the tests and the summary share that world and its samples; each path's
 * setup and each test's measurement is a function of its own.
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { cpus, loadavg, release, tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import {
  World,
  buildKernelOverlay,
  buildNodes,
  buildSwitchedOverlay,
  iperf3Client,
  iperf3Server,
  isRoot,
  linkStats,
  ping,
  pingUntil,
  podMac,
  sleep,
  sockperfPingPong,
  sockperfServer,
  threadCpuSeconds,
  threadIds,
  VXLAN_OVERHEAD,
} from "../dist/test/kit/netns/index.js";
import { buildOvsOverlay, ovsSchema } from "./ovs.mjs";
import { renderSvg } from "./svg.mjs";

const BENCH_DIR = fileURLToPath(new URL(".", import.meta.url));
const RESULTS_DIR = join(BENCH_DIR, "results");
const VNI = 100;

/** @typedef {"kernel" | "switch" | "switch0" | "naive" | "ovs"} PathName */
/** @typedef {"tcp1" | "tcp4" | "local" | "udp64" | "ping" | "rr-udp" | "rr-tcp" | "rr-udp-local" | "rr-tcp-local" | "idle"} TestName */

/** @type {Record<PathName, string>} */
const PATH_LABELS = {
  kernel: "kernel vxlan + bridge",
  switch: "switch (offloads on)",
  switch0: "switch (offloads on), polling off (pollUs 0)",
  naive: "naive relay",
  ovs: "Open vSwitch userspace (netdev)",
};
/** @type {PathName[]} */
const ALL_PATHS = ["kernel", "switch", "naive", "ovs"];
/** Every path --only may name: the default ones, and the switch with polling off. */
/** @type {PathName[]} */
const KNOWN_PATHS = ["kernel", "switch", "switch0", "naive", "ovs"];

/** @type {Record<TestName, { label: string, unit: string, higherIsBetter: boolean }>} */
const TESTS = {
  tcp1: { label: "TCP 1 stream across nodes", unit: "Gbit/s", higherIsBetter: true },
  tcp4: { label: "TCP 4 streams across nodes", unit: "Gbit/s", higherIsBetter: true },
  local: { label: "TCP 1 stream, two pods on one node", unit: "Gbit/s", higherIsBetter: true },
  udp64: { label: "UDP 64 B received", unit: "kpps", higherIsBetter: true },
  ping: { label: "ping RTT across nodes, median", unit: "ms", higherIsBetter: false },
  "rr-udp": {
    label: "UDP 64 B request/response across nodes, median RTT",
    unit: "us",
    higherIsBetter: false,
  },
  "rr-tcp": {
    label: "TCP 64 B request/response across nodes, median RTT",
    unit: "us",
    higherIsBetter: false,
  },
  "rr-udp-local": {
    label: "UDP 64 B request/response on one node, median RTT",
    unit: "us",
    higherIsBetter: false,
  },
  "rr-tcp-local": {
    label: "TCP 64 B request/response on one node, median RTT",
    unit: "us",
    higherIsBetter: false,
  },
  idle: { label: "data-plane threads, no traffic", unit: "% of a core", higherIsBetter: false },
};
/** @type {TestName[]} */
const ALL_TESTS = [
  "tcp1",
  "tcp4",
  "local",
  "udp64",
  "ping",
  "rr-udp",
  "rr-tcp",
  "rr-udp-local",
  "rr-tcp-local",
  "idle",
];
/** @type {TestName[]} */
const LATENCY_TESTS = ["ping", "rr-udp", "rr-tcp", "rr-udp-local", "rr-tcp-local"];
/** Which tests are request/response, where their server is and whether over TCP. */
const RR = {
  "rr-udp": { local: false, tcp: false },
  "rr-tcp": { local: false, tcp: true },
  "rr-udp-local": { local: true, tcp: false },
  "rr-tcp-local": { local: true, tcp: true },
};

/**
 * Rows below a test's own: a detail field's median per path. [field, label, unit, higherIsBetter]
 * @type {Partial<Record<TestName, [string, string, string, boolean][]>>}
 */
const DETAIL_ROWS = {
  ping: [
    ["p99Ms", "ping RTT across nodes, p99", "ms", false],
    ["dataPlaneCpuPct", "ping across nodes: data-plane threads", "% of a core", false],
  ],
  idle: [
    ["onePingPct", "data-plane threads, one ping a second", "% of a core", false],
    ["rr1000Pct", "data-plane threads, 1,000 UDP requests/s across nodes", "% of a core", false],
  ],
};
for (const [test, what] of /** @type {[TestName, string][]} */ ([
  ["rr-udp", "UDP 64 B request/response across nodes"],
  ["rr-tcp", "TCP 64 B request/response across nodes"],
  ["rr-udp-local", "UDP 64 B request/response on one node"],
  ["rr-tcp-local", "TCP 64 B request/response on one node"],
])) {
  DETAIL_ROWS[test] = [
    ["p99Us", `${what}, p99 RTT`, "us", false],
    ["transactionsPerSec", `${what}, transactions`, "1/s", true],
    ["dataPlaneCpuPct", `${what}: data-plane threads`, "% of a core", false],
  ];
}

/**
 * @typedef {object} Options
 * @property {number} reps
 * @property {number} duration
 * @property {PathName[]} paths
 * @property {TestName[]} tests
 * @property {number} udpRate
 * @property {number} pingCount
 * @property {number} pingInterval
 * @property {number} idleSeconds length of each idle phase
 * @property {number | undefined} pollUs the switch's poll window (SwitchOptions.pollUs)
 * @property {boolean} save
 * @property {boolean} quick
 * @property {boolean} pathsChosen whether --only named the paths
 */

/** @param {string[]} argv @returns {Options} */
function parseArgs(argv) {
  /** @type {Options} */
  const o = {
    reps: 3,
    duration: 5,
    paths: [...ALL_PATHS],
    tests: [...ALL_TESTS],
    udpRate: 200e6,
    pingCount: 100,
    pingInterval: 0.05,
    idleSeconds: 10,
    pollUs: undefined,
    save: true,
    quick: false,
    pathsChosen: false,
  };
  /** @param {number} i */
  const value = (i) => {
    const v = argv[i + 1];
    if (v === undefined) throw new Error(`${argv[i]} needs a value`);
    return v;
  };
  /** @param {string} name @param {string} v @param {number} min */
  const positive = (name, v, min) => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < min) throw new Error(`${name} must be a number >= ${min}, got ${v}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    switch (a) {
      case "--reps":
        o.reps = Math.floor(positive(a, value(i++), 1));
        break;
      case "--duration":
        o.duration = Math.floor(positive(a, value(i++), 1));
        break;
      case "--quick":
        o.quick = true;
        break;
      case "--only":
        o.paths = listOf(a, value(i++), KNOWN_PATHS);
        o.pathsChosen = true;
        break;
      case "--tests": {
        const v = value(i++);
        o.tests = listOf(a, v.replace(/\blatency\b/, LATENCY_TESTS.join(",")), ALL_TESTS);
        break;
      }
      case "--poll-us":
        o.pollUs = Math.floor(positive(a, value(i++), 0));
        break;
      case "--udp-rate":
        o.udpRate = positive(a, value(i++), 1e6);
        break;
      case "--no-save":
        o.save = false;
        break;
      case "-h":
      case "--help":
        console.log(
          "usage: node bench/run.mjs [--reps N] [--duration S] [--quick] [--only kernel,switch,switch0,naive,ovs]\n" +
            "                          [--tests tcp1,tcp4,local,udp64,ping,rr-udp,rr-tcp,rr-udp-local,rr-tcp-local,idle\n" +
            "                           | latency] [--udp-rate BITS] [--poll-us N] [--no-save]",
        );
        process.exit(0);
        break;
      default:
        throw new Error(`unknown argument ${a} (try --help)`);
    }
  }
  if (o.quick) {
    o.reps = 1;
    o.duration = 2;
    o.pingCount = 20;
    o.idleSeconds = 2;
  }
  return o;
}

/**
 * @template {string} T
 * @param {string} flag @param {string} text @param {readonly T[]} allowed @returns {T[]}
 */
function listOf(flag, text, allowed) {
  const items = text.split(",").filter(Boolean);
  for (const it of items) {
    if (!allowed.includes(/** @type {T} */ (it)))
      throw new Error(`${flag}: unknown ${it}; one or more of ${allowed.join(",")}`);
  }
  if (items.length === 0) throw new Error(`${flag}: empty list`);
  return allowed.filter((a) => items.includes(a));
}

/** @param {string} cmd */
function onPath(cmd) {
  return (process.env.PATH ?? "").split(delimiter).some((d) => d !== "" && existsSync(join(d, cmd)));
}

/** @param {string} cmd @param {string[]} args */
function firstLine(cmd, args) {
  try {
    return execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).split("\n")[0];
  } catch {
    return undefined;
  }
}

function machine() {
  const cpuinfo = readFileSync("/proc/cpuinfo", "utf8");
  const model = /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1]?.trim();
  return {
    nproc: cpus().length,
    cpuModel: model ?? "unknown",
    kernel: release(),
    node: process.version,
    iperf3: firstLine("iperf3", ["--version"]),
    clockTicksPerSecond: clockTicks(),
    loadAverageAtStart: loadavg().map((x) => round(x, 2)),
  };
}

/** Which code was measured: the commit, whether native/ had local changes, the addon's hash. */
function build() {
  const root = join(BENCH_DIR, "..");
  const addon = join(root, "build", "Release", "overlay_switch.node");
  const git = (/** @type {string[]} */ args) => {
    try {
      return execFileSync("git", ["-C", root, ...args], {
        encoding: "utf8",
        stdio: ["ignore", "pipe", "ignore"],
      });
    } catch {
      return undefined;
    }
  };
  return {
    commit: git(["rev-parse", "HEAD"])?.trim(),
    nativeChangedSinceCommit: (git(["status", "--porcelain", "--", "native"]) ?? "").trim() !== "",
    addonSha256: existsSync(addon)
      ? createHash("sha256").update(readFileSync(addon)).digest("hex")
      : undefined,
    addonBuiltAt: existsSync(addon) ? statSync(addon).mtime.toISOString() : undefined,
  };
}

let ticksCache = 0;
function clockTicks() {
  if (ticksCache === 0) {
    const t = Number(firstLine("getconf", ["CLK_TCK"]));
    ticksCache = Number.isFinite(t) && t > 0 ? t : 100;
  }
  return ticksCache;
}

// ---------------------------------------------------------------------------------------------
// CPU accounting

/**
 * utime + stime of one process, seconds; with `children`, the cutime + cstime of its children
 * that have been waited for instead. 0 when the process is gone.
 * @param {number | "self"} pid @param {boolean} [children]
 */
function processCpuSeconds(pid, children = false) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // Fields 14-17 of stat(5) (utime, stime, cutime, cstime); the slice starts at field 3.
    const i = children ? 13 : 11;
    return (Number(fields[i]) + Number(fields[i + 1])) / clockTicks();
  } catch {
    return 0;
  }
}

/** System-wide busy CPU seconds (user, nice, system, irq, softirq) from /proc/stat. */
function systemBusySeconds() {
  const line = readFileSync("/proc/stat", "utf8").split("\n", 1)[0] ?? "";
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0] = f;
  return (user + nice + system + irq + softirq) / clockTicks();
}

/**
 * @param {(number | "self")[]} pids the data plane's processes
 * @param {number} serverPid the iperf3 server; the client is a child of this process, counted
 *   once it has been waited for
 */
function cpuSnapshot(pids, serverPid) {
  return {
    t: performance.now(),
    sys: systemBusySeconds(),
    dp: pids.reduce((s, p) => s + processCpuSeconds(p), 0),
    ends: processCpuSeconds(serverPid) + processCpuSeconds("self", true),
  };
}

/**
 * @param {ReturnType<typeof cpuSnapshot>} a @param {ReturnType<typeof cpuSnapshot>} b
 * @param {boolean} hasDp
 */
function cpuDelta(a, b, hasDp) {
  const dp = b.dp - a.dp;
  const ends = b.ends - a.ends;
  return {
    wallS: round((b.t - a.t) / 1000, 3),
    systemS: round(b.sys - a.sys, 2),
    endpointsS: round(ends, 2),
    dataPlaneS: hasDp ? round(dp, 2) : undefined,
    endpointsAndDataPlaneS: round(ends + (hasDp ? dp : 0), 2),
  };
}

/** @param {number} x @param {number} digits */
function round(x, digits) {
  const m = 10 ** digits;
  return Math.round(x * m) / m;
}

// ---------------------------------------------------------------------------------------------
// Topologies

/**
 * @typedef {object} Target
 * @property {PathName} path
 * @property {string} a client pod on node 1
 * @property {string} b server pod on node 2
 * @property {{ name: string, ip: string }} bPod
 * @property {{ name: string, ip: string } | undefined} local second pod on node 1, if the path has one
 * @property {string} aIp
 * @property {() => (number | "self")[]} dataPlanePids processes whose CPU is the data plane's
 * @property {(() => number) | undefined} dataPlaneThreadsCpu CPU seconds of the data plane's
 *   packet-moving threads alone (the switch's packet threads; the relay's and ovs-vswitchd's
 *   processes), for the latency and idle figures; none for the kernel
 * @property {(() => Record<string, number> | Promise<Record<string, number>>) | undefined} drops
 *   drop counters, summed over nodes
 * @property {Record<string, unknown>} info
 */

/** @param {import("../dist/test/kit/netns/index.js").World} world @returns {Promise<Target>} */
async function kernelPath(world) {
  const cluster = await buildNodes(world, { count: 2, stem: "k" });
  const ov = await buildKernelOverlay(cluster, {
    vni: VNI,
    pods: [
      { node: 0, name: "ka1", ip: "172.31.1.2" },
      { node: 0, name: "ka2", ip: "172.31.1.3" },
      { node: 1, name: "kb1", ip: "172.31.2.2" },
    ],
  });
  const [a1, a2, b1] = ov.pods;
  return {
    path: "kernel",
    a: "ka1",
    aIp: a1.ip,
    b: "kb1",
    bPod: { name: "kb1", ip: b1.ip },
    local: { name: "ka2", ip: a2.ip },
    dataPlanePids: () => [],
    dataPlaneThreadsCpu: undefined,
    drops: undefined,
    info: { vxlanDev: ov.vxlanDev, bridge: ov.bridge },
  };
}

/**
 * @param {import("../dist/test/kit/netns/index.js").World} world
 * @param {{ overlays: import("../dist/test/kit/netns/index.js").SwitchedOverlay[] }} hold
 * @param {number | undefined} pollUs
 * @param {"switch" | "switch0"} path switch0: the same with polling off (pollUs 0)
 * @returns {Promise<Target>}
 */
async function switchPath(world, hold, pollUs, path) {
  const s = path === "switch" ? "s" : "z";
  const net = path === "switch" ? 30 : 27;
  const cluster = await buildNodes(world, { count: 2, stem: s });
  const threadsBefore = new Set(threadIds("self", "overlay-pkt"));
  const ov = await buildSwitchedOverlay(cluster, {
    pods: [
      { node: 0, name: `${s}a1`, ip: `172.${net}.1.2`, vni: VNI },
      { node: 0, name: `${s}a2`, ip: `172.${net}.1.3`, vni: VNI },
      { node: 1, name: `${s}b1`, ip: `172.${net}.2.2`, vni: VNI },
    ],
    switchOptions:
      path === "switch0"
        ? { offloads: true, pollUs: 0 }
        : pollUs === undefined
          ? { offloads: true }
          : { offloads: true, pollUs },
  });
  hold.overlays.push(ov);
  // This path's packet threads: those that its two switches started.
  const own = new Set(threadIds("self", "overlay-pkt").filter((tid) => !threadsBefore.has(tid)));
  const drops = () => {
    /** @type {Record<string, number>} */
    const sum = {};
    for (const n of ov.nodes) {
      for (const [k, v] of Object.entries(n.sw.counters().drops)) sum[k] = (sum[k] ?? 0) + v;
    }
    return sum;
  };
  return {
    path,
    a: `${s}a1`,
    aIp: ov.pod(`${s}a1`).ip,
    b: `${s}b1`,
    bPod: { name: `${s}b1`, ip: ov.pod(`${s}b1`).ip },
    local: { name: `${s}a2`, ip: ov.pod(`${s}a2`).ip },
    dataPlanePids: () => ["self"],
    dataPlaneThreadsCpu: () => threadCpuSeconds("self", "overlay-pkt", clockTicks(), own),
    drops,
    info: { features: ov.nodes.map((n) => n.sw.features()) },
  };
}

/** Compiles the relay into `dir`; returns the binary's path. @param {string} dir */
function compileRelay(dir) {
  const out = join(dir, "naive-relay");
  execFileSync("cc", ["-O2", "-Wall", "-pthread", "-o", out, join(BENCH_DIR, "naive-relay.c")], {
    stdio: ["ignore", "inherit", "inherit"],
  });
  return out;
}

/**
 * @param {import("../dist/test/kit/netns/index.js").World} world @param {string} relayBin
 * @returns {Promise<Target>}
 */
async function naivePath(world, relayBin) {
  const cluster = await buildNodes(world, { count: 2, stem: "r" });
  const podMtu = cluster.underlayMtu - VXLAN_OVERHEAD;
  const specs = [
    { node: 0, name: "ra1", ip: "172.29.1.2" },
    { node: 1, name: "rb1", ip: "172.29.2.2" },
  ];
  /** @type {number[]} */
  const pids = [];
  for (const spec of specs) {
    const node = cluster.nodes[spec.node];
    const peer = cluster.nodes[1 - spec.node];
    const podNs = await world.addNamespace(spec.name);
    const tap = "nrtap0";
    const proc = world.start(node.name, relayBin, [tap, node.underlayIp, peer.underlayIp, String(VNI)]);
    await waitFor(
      () => proc.stdout.includes("ready"),
      5000,
      () => {
        if (!proc.running) throw new Error(`naive relay exited: ${proc.stderr.trim()}`);
      },
    );
    pids.push(proc.pid);
    // The TAP keeps working through the relay's fd after it moves into the pod's namespace.
    await world.ip(node.name, ["link", "set", tap, "netns", podNs]);
    await world.ip(spec.name, ["link", "set", tap, "name", "eth0"]);
    await world.ip(spec.name, ["link", "set", "eth0", "address", podMac(spec.ip), "mtu", String(podMtu)]);
    await world.ip(spec.name, ["addr", "add", `${spec.ip}/16`, "dev", "eth0"]);
    await world.ip(spec.name, ["link", "set", "eth0", "up"]);
  }
  return {
    path: "naive",
    a: "ra1",
    aIp: specs[0].ip,
    b: "rb1",
    bPod: { name: "rb1", ip: specs[1].ip },
    local: undefined,
    dataPlanePids: () => pids,
    dataPlaneThreadsCpu: () => pids.reduce((s, p) => s + processCpuSeconds(p), 0),
    drops: undefined,
    info: { relayPids: pids, threadsPerRelay: 2 },
  };
}

/**
 * Open vSwitch's userspace datapath: per node an ovsdb-server and an ovs-vswitchd of its own,
 * pods on veth ports of a netdev bridge, VXLAN tunnelled by ovs-vswitchd through `br-phy`.
 * @param {import("../dist/test/kit/netns/index.js").World} world @param {string} tmp
 * @param {{ ovs?: import("./ovs.mjs").OvsOverlay }} hold
 * @returns {Promise<Target>}
 */
async function ovsPath(world, tmp, hold) {
  const cluster = await buildNodes(world, { count: 2, stem: "o" });
  const ov = await buildOvsOverlay(world, cluster, {
    dir: tmp,
    vni: VNI,
    pods: [
      { node: 0, name: "oa1", ip: "172.28.1.2" },
      { node: 0, name: "oa2", ip: "172.28.1.3" },
      { node: 1, name: "ob1", ip: "172.28.2.2" },
    ],
  });
  hold.ovs = ov;
  const [a1, a2, b1] = ov.pods;
  return {
    path: "ovs",
    a: "oa1",
    aIp: a1.ip,
    b: "ob1",
    bPod: { name: "ob1", ip: b1.ip },
    local: { name: "oa2", ip: a2.ip },
    dataPlanePids: ov.vswitchdPids,
    dataPlaneThreadsCpu: () => ov.vswitchdPids().reduce((s, p) => s + processCpuSeconds(p), 0),
    drops: ov.socketDrops,
    info: {
      version: ov.version,
      vswitchdPids: ov.vswitchdPids(),
      datapath: "netdev (userspace)",
      pods: "veth pairs, node end a netdev-linux (AF_PACKET) port of br-int; pod eth0 tx checksum offload off",
      tunnel: "br-int vxlan port, userspace tnl_push/tnl_pop through br-phy (underlay veth as its port)",
      forwarding: "NORMAL (MAC learning)",
    },
  };
}

/**
 * @param {() => boolean} ok @param {number} timeoutMs @param {() => void} check throws to abort
 */
async function waitFor(ok, timeoutMs, check) {
  const until = Date.now() + timeoutMs;
  while (!ok()) {
    check();
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms`);
    await sleep(20);
  }
}

// ---------------------------------------------------------------------------------------------
// Measurements

/**
 * @typedef {object} Sample
 * @property {PathName} path
 * @property {TestName} test
 * @property {number} rep
 * @property {number} value in the test's unit
 * @property {Record<string, unknown>} detail
 */

/**
 * One iperf3 run from `clientNs` to a server on `server`, CPU sampled around the client.
 * @param {import("../dist/test/kit/netns/index.js").World} world @param {Target} t
 * @param {string} clientNs @param {{ name: string, ip: string }} server
 * @param {import("../dist/test/kit/netns/index.js").Iperf3ClientOptions} opts
 */
async function iperfWithCpu(world, t, clientNs, server, opts) {
  // Not one-off: the server must still exist when its CPU time is read after the test.
  const srv = await iperf3Server(world, server.name, server.ip, { oneOff: false });
  try {
    const dropsBefore = await t.drops?.();
    const before = cpuSnapshot(t.dataPlanePids(), srv.process.pid);
    const r = await iperf3Client(world, clientNs, server.ip, opts);
    const after = cpuSnapshot(t.dataPlanePids(), srv.process.pid);
    const cpu = cpuDelta(before, after, t.dataPlanePids().length > 0);
    /** @type {Record<string, number> | undefined} */
    let drops;
    if (dropsBefore && t.drops) {
      const now = await t.drops();
      drops = {};
      for (const [k, v] of Object.entries(now))
        if (v !== (dropsBefore[k] ?? 0)) drops[k] = v - (dropsBefore[k] ?? 0);
    }
    return { r, cpu, drops };
  } finally {
    await srv.stop();
  }
}

/**
 * @param {import("../dist/test/kit/netns/index.js").World} world @param {Target} t @param {TestName} test
 * @param {Options} o @returns {Promise<{ value: number, detail: Record<string, unknown> } | undefined>}
 */
async function measure(world, t, test, o) {
  if (test === "ping") {
    const cpu0 = t.dataPlaneThreadsCpu?.();
    const t0 = performance.now();
    const r = await ping(world, t.a, t.bPod.ip, {
      count: o.pingCount,
      intervalSec: o.pingInterval,
      timeoutSec: 1,
      perReply: true,
    });
    const cpuPct = percentOfCore(t, cpu0, t0);
    const rtts = r.rttsMs ?? [];
    if (r.rttAvgMs === undefined || rtts.length === 0) throw new Error(`${t.path}: no ping replies`);
    const rtt = /= ([\d.]+)\/([\d.]+)\/([\d.]+)\/([\d.]+) ms/.exec(r.output);
    return {
      value: /** @type {number} */ (median(rtts)),
      detail: {
        sent: r.sent,
        received: r.received,
        lossPct: r.lossPct,
        p99Ms: percentile(rtts, 99),
        rttAvgMs: r.rttAvgMs,
        rttMinMs: rtt ? Number(rtt[1]) : undefined,
        rttMaxMs: rtt ? Number(rtt[3]) : undefined,
        rttMdevMs: rtt ? Number(rtt[4]) : undefined,
        dataPlaneCpuPct: cpuPct,
      },
    };
  }
  if (test in RR) {
    const { local, tcp } = RR[/** @type {keyof typeof RR} */ (test)];
    const server = local ? t.local : t.bPod;
    if (!server) return undefined;
    const srv = await sockperfServer(world, server.name, server.ip, { tcp });
    try {
      const cpu0 = t.dataPlaneThreadsCpu?.();
      const t0 = performance.now();
      const r = await sockperfPingPong(world, t.a, server.ip, { tcp, seconds: o.duration, msgSize: 64 });
      return {
        value: r.medianUs,
        detail: {
          p99Us: r.p99Us,
          avgUs: r.avgUs,
          maxUs: r.maxUs,
          transactionsPerSec: round(r.transactionsPerSec, 0),
          observations: r.observations,
          dataPlaneCpuPct: percentOfCore(t, cpu0, t0),
        },
      };
    } finally {
      await srv.stop();
    }
  }
  if (test === "idle") {
    if (!t.dataPlaneThreadsCpu) return undefined;
    const s = o.idleSeconds;
    // No traffic at all: nothing was sent for a second before it starts.
    await sleep(1000);
    let cpu0 = t.dataPlaneThreadsCpu();
    let t0 = performance.now();
    await sleep(s * 1000);
    const quietPct = percentOfCore(t, cpu0, t0);
    cpu0 = t.dataPlaneThreadsCpu();
    t0 = performance.now();
    await ping(world, t.a, t.bPod.ip, { count: s, intervalSec: 1, timeoutSec: 1 });
    const onePingPct = percentOfCore(t, cpu0, t0);
    const srv = await sockperfServer(world, t.b, t.bPod.ip, {});
    let rr1000Pct;
    let rr1000;
    try {
      cpu0 = t.dataPlaneThreadsCpu();
      t0 = performance.now();
      rr1000 = await sockperfPingPong(world, t.a, t.bPod.ip, { seconds: s, msgSize: 64, mps: 1000 });
      rr1000Pct = percentOfCore(t, cpu0, t0);
    } finally {
      await srv.stop();
    }
    return {
      value: /** @type {number} */ (quietPct),
      detail: {
        onePingPct,
        rr1000Pct,
        rr1000MedianUs: rr1000.medianUs,
        rr1000P99Us: rr1000.p99Us,
        rr1000TransactionsPerSec: round(rr1000.transactionsPerSec, 0),
        phaseSeconds: s,
      },
    };
  }
  if (test === "udp64") {
    // Where datagrams were lost: the sender's own interface queue, or the receiver's socket buffer.
    const txDropBefore = (await linkStats(world, t.a, "eth0")).tx.dropped;
    const rcvbufBefore = await udpRcvbufErrors(world, t.b);
    const { r, cpu, drops } = await iperfWithCpu(world, t, t.a, t.bPod, {
      seconds: o.duration,
      udpBitsPerSec: o.udpRate,
      extraArgs: ["-l", "64"],
    });
    const senderIfDrops = (await linkStats(world, t.a, "eth0")).tx.dropped - txDropBefore;
    const receiverRcvbufErrors = (await udpRcvbufErrors(world, t.b)) - rcvbufBefore;
    const { packets, lost, seconds } = udpCounts(r.json);
    const received = packets - lost;
    return {
      value: seconds > 0 ? received / seconds / 1000 : 0,
      detail: {
        sentPackets: packets,
        lostPackets: lost,
        seconds,
        senderIfDrops,
        receiverRcvbufErrors,
        cpu,
        drops,
      },
    };
  }
  const server = test === "local" ? t.local : t.bPod;
  if (!server) return undefined;
  const { r, cpu, drops } = await iperfWithCpu(world, t, t.a, server, {
    seconds: o.duration,
    parallel: test === "tcp4" ? 4 : 1,
  });
  const gbit = (r.bytesReceived * 8) / 1e9;
  return {
    value: r.bitsPerSecond / 1e9,
    detail: {
      bytesReceived: r.bytesReceived,
      retransmits: r.retransmits,
      cpu,
      systemCpuSecPerGbit: gbit > 0 ? round(cpu.systemS / gbit, 4) : undefined,
      endpointsAndDataPlaneCpuSecPerGbit: gbit > 0 ? round(cpu.endpointsAndDataPlaneS / gbit, 4) : undefined,
      dataPlaneCpuSecPerGbit:
        gbit > 0 && cpu.dataPlaneS !== undefined ? round(cpu.dataPlaneS / gbit, 4) : undefined,
      drops,
    },
  };
}

/**
 * The data plane's packet threads' CPU since `cpu0` (seconds, read at `t0`), as a percentage of
 * one core; both nodes' threads together. Undefined for the kernel path.
 * @param {Target} t @param {number | undefined} cpu0 @param {number} t0
 */
function percentOfCore(t, cpu0, t0) {
  if (!t.dataPlaneThreadsCpu || cpu0 === undefined) return undefined;
  const wall = (performance.now() - t0) / 1000;
  return wall > 0 ? round(((t.dataPlaneThreadsCpu() - cpu0) / wall) * 100, 2) : undefined;
}

/** The nearest-rank percentile `p` of `xs`. @param {number[]} xs @param {number} p */
function percentile(xs, p) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

/** The UDP receive-buffer overflow count of a namespace. @param {import("../dist/test/kit/netns/index.js").World} world @param {string} ns */
async function udpRcvbufErrors(world, ns) {
  const r = await world.exec(ns, "nstat", ["-a", "-s", "-z", "UdpRcvbufErrors"], { allowFailure: true });
  const m = /UdpRcvbufErrors\s+(\d+)/.exec(r.stdout);
  return m ? Number(m[1]) : 0;
}

/** Received-side datagram counts from an `iperf3 -u -J` client document. @param {unknown} json */
function udpCounts(json) {
  const end = /** @type {{ end?: Record<string, Record<string, number> | undefined> }} */ (json).end ?? {};
  const s = end.sum_received ?? end.sum ?? {};
  const packets = s.packets ?? 0;
  const lost = s.lost_packets ?? 0;
  const seconds = s.seconds ?? end.sum?.seconds ?? 0;
  return { packets, lost, seconds };
}

// ---------------------------------------------------------------------------------------------
// Reporting

/** The interesting side facts of one sample, for the progress line. @param {Record<string, unknown>} d */
function progressNote(d) {
  const parts = [];
  if (typeof d.retransmits === "number") parts.push(`retr ${d.retransmits}`);
  if (typeof d.lostPackets === "number")
    parts.push(
      `lost ${d.lostPackets}/${d.sentPackets} (sender if drops ${d.senderIfDrops}, receiver rcvbuf ${d.receiverRcvbufErrors})`,
    );
  if (typeof d.rttMaxMs === "number") parts.push(`p99 ${d.p99Ms} min ${d.rttMinMs} max ${d.rttMaxMs} ms`);
  if (typeof d.p99Us === "number") parts.push(`p99 ${d.p99Us} us, ${d.transactionsPerSec}/s`);
  if (typeof d.onePingPct === "number")
    parts.push(`one ping/s ${d.onePingPct}%, 1,000 req/s ${d.rr1000Pct}%`);
  if (typeof d.dataPlaneCpuPct === "number") parts.push(`data-plane threads ${d.dataPlaneCpuPct}% of a core`);
  const drops = /** @type {Record<string, number> | undefined} */ (d.drops);
  if (drops && Object.keys(drops).length > 0) parts.push(`drops ${JSON.stringify(drops)}`);
  if (typeof d.stealPct === "number" && d.stealPct >= STEAL_NOTE_PCT) parts.push(`host steal ${d.stealPct}%`);
  return parts.length > 0 ? `  (${parts.join("; ")})` : "";
}

/**
 * A sample during which the hypervisor ran something else on this VM's vCPUs for at least this
 * share of their time is marked: every path slows then, the polling switch most (a thread that
 * is descheduled mid-window holds up the exchange it polls for).
 */
const STEAL_NOTE_PCT = 5;

/** This machine's CPU time so far, in ticks: all of it, and what the hypervisor stole (/proc/stat). */
function hostCpuTicks() {
  const f = readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
  return { total: f.reduce((a, b) => a + b, 0), steal: f[7] ?? 0 };
}

/**
 * One line: how many samples the hypervisor disturbed (STEAL_NOTE_PCT), and the worst.
 * @param {{ path: string, test: string, rep: number, detail: Record<string, unknown> }[]} samples
 */
function stealSummary(samples) {
  const marked = samples.filter((x) => Number(x.detail.stealPct) >= STEAL_NOTE_PCT);
  if (marked.length === 0) return `host steal: under ${STEAL_NOTE_PCT}% in every sample`;
  const worst = marked.reduce((a, b) => (Number(b.detail.stealPct) > Number(a.detail.stealPct) ? b : a));
  return (
    `host steal: ${marked.length} of ${samples.length} samples at ${STEAL_NOTE_PCT}% or more (worst ` +
    `${String(worst.detail.stealPct)}%: ${worst.test} ${worst.path} rep ${worst.rep}); read those rows loosely`
  );
}

/** @param {{ total: number, steal: number }} a @param {{ total: number, steal: number }} b */
function stealPct(a, b) {
  const total = b.total - a.total;
  return total > 0 ? Math.round(((b.steal - a.steal) / total) * 1000) / 10 : 0;
}

/** @param {number[]} xs */
function median(xs) {
  if (xs.length === 0) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** @param {number | undefined} x @param {string} unit */
function fmt(x, unit) {
  if (x === undefined || !Number.isFinite(x)) return "-";
  if (unit === "ms") return x.toFixed(3);
  if (unit === "kpps") return x.toFixed(0);
  if (unit === "s/Gbit") return x.toFixed(3);
  if (unit === "us") return x.toFixed(1);
  if (unit === "1/s") return x.toFixed(0);
  return x.toFixed(2);
}

/** @param {number | undefined} a @param {number | undefined} b */
function ratio(a, b) {
  if (a === undefined || b === undefined || !(b > 0)) return "-";
  return `${(a / b).toFixed(2)}x`;
}

/**
 * Rows of the summary: one per test, plus CPU rows for the TCP tests across nodes.
 * @param {Sample[]} samples @param {PathName[]} paths @param {TestName[]} tests
 */
function summarize(samples, paths, tests) {
  /** @type {{ key: string, label: string, unit: string, higherIsBetter: boolean, medians: Partial<Record<PathName, number>> }[]} */
  const rows = [];
  /** @param {PathName} p @param {TestName} test @param {(s: Sample) => number | undefined} pick */
  const med = (p, test, pick) =>
    median(
      samples
        .filter((s) => s.path === p && s.test === test)
        .map(pick)
        .filter((v) => v !== undefined && Number.isFinite(v))
        .map(Number),
    );
  for (const test of tests) {
    const def = TESTS[test];
    /** @type {Partial<Record<PathName, number>>} */
    const medians = {};
    for (const p of paths) {
      const m = med(p, test, (s) => s.value);
      if (m !== undefined) medians[p] = m;
    }
    rows.push({ key: test, label: def.label, unit: def.unit, higherIsBetter: def.higherIsBetter, medians });
    for (const [field, label, unit, higherIsBetter] of DETAIL_ROWS[test] ?? []) {
      /** @type {Partial<Record<PathName, number>>} */
      const more = {};
      for (const p of paths) {
        const m = med(p, test, (s) => /** @type {number | undefined} */ (s.detail[field]));
        if (m !== undefined) more[p] = m;
      }
      rows.push({ key: `${test}.${field}`, label, unit, higherIsBetter, medians: more });
    }
  }
  for (const test of /** @type {TestName[]} */ (["tcp1", "tcp4"])) {
    if (!tests.includes(test)) continue;
    for (const [field, what] of [
      ["systemCpuSecPerGbit", "system CPU"],
      ["endpointsAndDataPlaneCpuSecPerGbit", "iperf3 + data-plane CPU"],
      ["dataPlaneCpuSecPerGbit", "data-plane process CPU"],
    ]) {
      /** @type {Partial<Record<PathName, number>>} */
      const medians = {};
      for (const p of paths) {
        const m = med(p, test, (s) => /** @type {number | undefined} */ (s.detail[field]));
        if (m !== undefined) medians[p] = m;
      }
      rows.push({
        key: `${test}.${field}`,
        label: `${what} per Gbit, ${test === "tcp1" ? "TCP 1 stream" : "TCP 4 streams"}`,
        unit: "s/Gbit",
        higherIsBetter: false,
        medians,
      });
    }
  }
  return rows;
}

/**
 * A Markdown table: medians per path, then the ratios between the paths present.
 * @param {ReturnType<typeof summarize>} rows @param {PathName[]} paths
 */
function table(rows, paths) {
  /** @type {[PathName, PathName][]} */
  const pairs = [
    ["switch", "kernel"],
    ["switch0", "kernel"],
    ["switch", "switch0"],
    ["naive", "kernel"],
    ["switch", "naive"],
    ["ovs", "kernel"],
    ["switch", "ovs"],
  ];
  const shown = pairs.filter(([a, b]) => paths.includes(a) && paths.includes(b));
  const head = ["test", ...paths, ...shown.map(([a, b]) => `${a}/${b}`)];
  const lines = [`| ${head.join(" | ")} |`, `|${head.map(() => "---").join("|")}|`];
  for (const r of rows) {
    const cells = [`${r.label} (${r.unit})`];
    for (const p of paths) cells.push(fmt(r.medians[p], r.unit));
    for (const [a, b] of shown) cells.push(ratio(r.medians[a], r.medians[b]));
    lines.push(`| ${cells.join(" | ")} |`);
  }
  return lines.join("\n");
}

function timestamp() {
  return new Date()
    .toISOString()
    .replace(/\.\d+Z$/, "Z")
    .replace(/:/g, "-");
}

// ---------------------------------------------------------------------------------------------

async function main() {
  const o = parseArgs(process.argv.slice(2));
  if (!isRoot()) {
    console.error("bench: needs root (network namespaces, TAP devices)");
    process.exit(2);
  }
  const needs = ["iperf3", "ping", "ip"];
  if (o.tests.some((t) => t in RR || t === "idle")) needs.push("sockperf");
  for (const cmd of needs) {
    if (!onPath(cmd)) throw new Error(`bench: ${cmd} is not installed`);
  }
  if (o.paths.includes("naive") && !onPath("cc")) throw new Error("bench: cc is needed for the naive relay");
  const ovsInstalled =
    ["ovsdb-tool", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl", "ovs-appctl"].every(onPath) &&
    ovsSchema() !== undefined;
  if (o.paths.includes("ovs") && !ovsInstalled) {
    if (o.pathsChosen)
      throw new Error(
        "bench: --only ovs needs Open vSwitch (Debian's openvswitch-switch, see .ci/install-deps)",
      );
    o.paths = o.paths.filter((p) => p !== "ovs");
  }
  const ovs = !ovsInstalled
    ? "skipped: not installed"
    : o.paths.includes("ovs")
      ? `measured: ${firstLine("ovs-vswitchd", ["--version"]) ?? "ovs-vswitchd"}`
      : "skipped: not in --only";
  const mach = machine();
  const code = build();
  const started = new Date();
  console.log(
    `bench: ${mach.nproc} x ${mach.cpuModel}, Linux ${mach.kernel}, node ${mach.node}, ${mach.iperf3 ?? "iperf3 ?"}`,
  );
  console.log(
    `bench: paths ${o.paths.join(", ")}; tests ${o.tests.join(", ")}; ${o.reps} rep(s) x ${o.duration} s` +
      `; UDP at -b ${o.udpRate / 1e6}M -l 64; ping ${o.pingCount} x ${o.pingInterval} s` +
      `; switch poll window ${o.pollUs === undefined ? "default" : `${o.pollUs} us`}`,
  );
  console.log(`bench: open vswitch ${ovs}`);

  /** @type {import("../dist/test/kit/netns/index.js").World | undefined} */
  let world;
  /** @type {{ overlays: import("../dist/test/kit/netns/index.js").SwitchedOverlay[], ovs?: import("./ovs.mjs").OvsOverlay }} */
  const hold = { overlays: [] };
  let tmp;
  let cleaning;
  const cleanup = async () => {
    cleaning ??= (async () => {
      try {
        for (const ov of hold.overlays) ov.close();
      } finally {
        try {
          // The OVS daemons by pid, ovs-vswitchd before its database; destroy() is the fallback
          // (it stops whatever the world started, then kills what is left in its namespaces).
          await hold.ovs?.close();
        } finally {
          await world?.destroy();
          if (tmp) rmSync(tmp, { recursive: true, force: true });
        }
      }
    })();
    return cleaning;
  };
  /** @param {NodeJS.Signals} sig */
  const onSignal = (sig) => {
    console.error(`bench: ${sig}, cleaning up`);
    void cleanup().finally(() => process.exit(130));
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);

  /** @type {Sample[]} */
  const samples = [];
  /** @type {Record<string, unknown>} */
  const pathInfo = {};
  try {
    tmp = mkdtempSync(join(tmpdir(), "overlay-bench-"));
    world = await World.create();
    /** @type {Target[]} */
    const targets = [];
    for (const p of o.paths) {
      const t =
        p === "kernel"
          ? await kernelPath(world)
          : p === "switch" || p === "switch0"
            ? await switchPath(world, hold, o.pollUs, p)
            : p === "naive"
              ? await naivePath(world, compileRelay(tmp))
              : await ovsPath(world, tmp, hold);
      targets.push(t);
      pathInfo[p] = t.info;
      // Neighbour entries and tables settle before anything is timed.
      for (const peer of [t.bPod, t.local]) {
        if (!peer) continue;
        const r = await pingUntil(world, t.a, peer.ip, 20, { intervalSec: 0.05 });
        if (r.received === 0) throw new Error(`${p}: ${t.a} cannot reach ${peer.name} (${peer.ip})`);
      }
    }
    for (let rep = 1; rep <= o.reps; rep++) {
      for (const test of o.tests) {
        for (const t of targets) {
          const cpu0 = hostCpuTicks();
          const m = await measure(world, t, test, o);
          if (!m) continue;
          m.detail.stealPct = stealPct(cpu0, hostCpuTicks());
          samples.push({ path: t.path, test, rep, value: m.value, detail: m.detail });
          console.error(
            `  rep ${rep}/${o.reps} ${test.padEnd(5)} ${t.path.padEnd(6)} ${fmt(m.value, TESTS[test].unit)} ${TESTS[test].unit}${progressNote(m.detail)}`,
          );
        }
      }
    }
  } finally {
    await cleanup();
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }

  const rows = summarize(samples, o.paths, o.tests);
  const md = table(rows, o.paths);
  console.log("");
  console.log(
    `medians of ${o.reps} x ${o.duration} s; ${o.paths.map((p) => `${p} = ${PATH_LABELS[p]}`).join("; ")}`,
  );
  console.log(`open vswitch userspace datapath: ${ovs}`);
  console.log(stealSummary(samples));
  console.log("");
  console.log(md);

  if (o.save) {
    mkdirSync(RESULTS_DIR, { recursive: true });
    const stamp = timestamp();
    const doc = {
      date: started.toISOString(),
      command: `node bench/run.mjs ${process.argv.slice(2).join(" ")}`.trim(),
      machine: { ...mach, loadAverageAtEnd: loadavg().map((x) => round(x, 2)) },
      build: code,
      config: {
        reps: o.reps,
        durationSec: o.duration,
        paths: o.paths,
        tests: o.tests,
        udpBitsPerSec: o.udpRate,
        udpPayloadBytes: 64,
        pingCount: o.pingCount,
        pingIntervalSec: o.pingInterval,
        idlePhaseSec: o.idleSeconds,
        switchPollUs: o.pollUs ?? "default",
      },
      openVSwitch: ovs,
      paths: pathInfo,
      units: Object.fromEntries(ALL_TESTS.map((t) => [t, TESTS[t].unit])),
      medians: Object.fromEntries(rows.map((r) => [r.key, r.medians])),
      samples,
      table: md,
    };
    const jsonPath = join(RESULTS_DIR, `${stamp}.json`);
    writeFileSync(jsonPath, `${JSON.stringify(doc, null, 2)}\n`);
    const svgPath = join(RESULTS_DIR, "latest.svg");
    writeFileSync(
      svgPath,
      renderSvg({
        title: `Pod to pod over VXLAN, medians of ${o.reps} x ${o.duration} s`,
        subtitle: `${mach.nproc} x ${mach.cpuModel}, Linux ${mach.kernel}, ${started.toISOString().slice(0, 10)}`,
        paths: o.paths.map((p) => ({ key: p, label: PATH_LABELS[p] })),
        panels: rows.map((r) => ({
          title: r.label,
          unit: r.unit,
          higherIsBetter: r.higherIsBetter,
          values: r.medians,
        })),
      }),
    );
    console.log("");
    console.log(`bench: wrote ${jsonPath} and ${svgPath}`);
  }
}

main().catch((e) => {
  console.error(e instanceof Error ? (e.stack ?? e.message) : String(e));
  process.exit(1);
});

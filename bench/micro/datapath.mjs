/**
 * Microbenchmarks of the data path's jobs, each against its obvious simple version, in one run
 * side by side (the `benchmark` package drives both; native/bench/ links the switch's real
 * sources and the simple versions into one bench-only addon):
 *
 *   lookup    1,024 destination MACs (6 bytes as in a frame) looked up among 10,000 remote
 *             endpoints: the real RemoteTable (FlatMap, BuildRemoteTable) vs
 *             std::unordered_map<std::string> keyed by the 6 bytes, and vs std::map<uint64_t>.
 *   encap     32 frames of one flow (UDP with 64 payload bytes, or a 1,398-byte TCP segment),
 *             checksum left to offload, no GSO: Encapsulator::Encap (finish checksum, VXLAN
 *             header, queue) + Flush (one sendmmsg) vs per frame a fresh buffer, the VXLAN
 *             header written field by field, the RFC 1071 textbook checksum, one sendto().
 *   segment   a 64 KB TSO super-frame (46 x 1,398 bytes of payload, virtio-net header with
 *             gso_size 1398): Encapsulator::Encap + Flush (UDP GSO: 2 sends of 44 and 2
 *             segments; also with GSO off: one sendmmsg of 46 datagrams) vs per segment a fresh
 *             buffer, headers and checksums fixed, one sendto() (also with the switch's own
 *             checksum code, to tell checksum cost from send cost).
 *   coalesce  44 consecutive full TCP segments of one flow into a real TAP (IFF_VNET_HDR) whose
 *             network namespace holds the TCP socket receiving them: Coalescer::Deliver x 44 +
 *             Flush (one writev of a GSO super-frame) vs one writev per segment. Each op also
 *             reads the 61,512 bytes from the socket and the ACKs from the TAP (same code for
 *             both). Needs root; skipped otherwise.
 *
 * Datagrams go to a sink socket on 127.0.0.1 whose receive buffer is the kernel's minimum (the
 * whole send path and loopback delivery run, then the sink drops them). Before timing, each
 * benchmark runs both versions on the same input and compares what they produced: the
 * datagrams byte for byte, the bytes the TCP socket received.
 *
 * Every variant of every benchmark runs in each round, one after the other (order reversed on
 * odd rounds), so a shared machine's drifts hit both sides alike; the table shows the median
 * ops/s over the rounds and the median of the per-round ratios project/simple (> 1: the
 * project's code does more ops per second).
 *
 * usage: node bench/micro/datapath.mjs [--rounds N] [--time S] [--quick] [--json]
 *                                      [--only lookup,encap,segment,coalesce]
 *   --rounds N  rounds (default 3)   --time S  seconds per variant per round (default 1)
 *   --quick     1 round of ~0.1 s per variant (smoke test)
 *   --json      the results as JSON on stdout; progress and the table go to stderr
 *
 * Past 400 lines on purpose: each microbenchmark pairs the switch's code with its simple version
 * under the same rounds, timer and table, which is one harness read top to bottom.
 */
import Benchmark from "benchmark";
import { execFileSync } from "node:child_process";
import { Buffer } from "node:buffer";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import os from "node:os";
import { loadAddon } from "./build.mjs";

const LOOKUP_ENTRIES = 10_000;
const LOOKUPS = 1024;
const ENCAP_FRAMES = 32;
const GSO_SIZE = 1398;
const SEGMENT_PAYLOAD = 46 * GSO_SIZE; // what Linux TSO puts in a 64 KB super-frame at MSS 1398
const COALESCE_SEGMENTS = 44;
const VNI = 100;

function parseArgs(argv) {
  const o = {
    rounds: 3,
    time: 1,
    quick: false,
    json: false,
    only: ["lookup", "encap", "segment", "coalesce"],
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === "--rounds") o.rounds = Number(next());
    else if (a === "--time") o.time = Number(next());
    else if (a === "--quick") o.quick = true;
    else if (a === "--json") o.json = true;
    else if (a === "--only") o.only = next().split(",");
    else throw new Error(`unknown option ${a}`);
  }
  if (o.quick) {
    o.rounds = 1;
    o.time = 0.1;
  }
  if (!Number.isInteger(o.rounds) || o.rounds < 1) throw new Error("--rounds: a positive integer");
  if (!(o.time > 0)) throw new Error("--time: seconds > 0");
  return o;
}

const fmtInt = (x) => Math.round(x).toLocaleString("en-US");
const fmt = (x, d) => x.toFixed(d);
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const gbit = (bytes) => (hz) => `${fmt((hz * bytes * 8) / 1e9, 2)} Gbit/s`;

/** @param {Buffer[]} a @param {Buffer[]} b */
const sameBuffers = (a, b) => a.length === b.length && a.every((x, i) => x.equals(b[i]));

/** The VXLAN header the switch sends for VNI 100. */
const VXLAN = Buffer.from([0x08, 0, 0, 0, (VNI >> 16) & 0xff, (VNI >> 8) & 0xff, VNI & 0xff, 0]);

function lookupGroup(addon) {
  const b = new addon.LookupBench(LOOKUP_ENTRIES, LOOKUPS);
  const rate = (hz) => `${fmt((hz * LOOKUPS) / 1e6, 1)} M lookups/s`;
  const label = `look up ${LOOKUPS} MACs among ${fmtInt(LOOKUP_ENTRIES)} remotes`;
  return {
    id: "lookup",
    variants: {
      project: { name: "RemoteTable by_mac (FlatMap)", fn: () => b.project() },
      unordered: { name: "std::unordered_map<std::string>", fn: () => b.unorderedMap() },
      ordered: { name: "std::map<uint64_t>", fn: () => b.orderedMap() },
    },
    rows: [
      { label, project: "project", simple: "unordered", rate },
      { label, project: "project", simple: "ordered", rate },
    ],
    check() {
      const sums = [b.project(), b.unorderedMap(), b.orderedMap()];
      return {
        ok: sums.every((s) => s === sums[0]),
        detail: `same endpoints found (sums ${sums.join(", ")})`,
      };
    },
  };
}

function encapGroup(addon, kind) {
  const b = new addon.EncapBench(kind, ENCAP_FRAMES);
  const what = kind === "udp" ? "UDP 64 B" : "TCP 1,398 B";
  const frameBytes = kind === "udp" ? 106 : 1464;
  return {
    id: `encap-${kind}`,
    variants: {
      project: { name: "Encapsulator::Encap + Flush", fn: () => b.project() },
      simple: { name: "buffer + sendto per frame", fn: () => b.simple() },
    },
    rows: [
      {
        label: `encapsulate ${ENCAP_FRAMES} ${what} frames`,
        project: "project",
        simple: "simple",
        rate: (hz) => `${fmt((hz * ENCAP_FRAMES) / 1e6, 2)} Mpps`,
      },
    ],
    check() {
      const v = b.verify();
      const ok =
        v.project.length === ENCAP_FRAMES &&
        sameBuffers(v.project, v.simple) &&
        v.project.every(
          (d) =>
            d.length === 8 + frameBytes &&
            d.subarray(0, 8).equals(VXLAN) &&
            addon.checksumsValid(d.subarray(8)),
        );
      return {
        ok,
        detail: `${v.project.length} and ${v.simple.length} datagrams, ${ok ? "identical, checksums valid" : "DIFFERENT"}`,
      };
    },
    stats: () => b.stats(),
  };
}

function segmentGroup(addon) {
  const b = new addon.SegmentBench(SEGMENT_PAYLOAD, GSO_SIZE);
  const rate = gbit(SEGMENT_PAYLOAD);
  const label = `segment a ${fmtInt(b.frameLength)} B TSO frame (${b.segments} x ${GSO_SIZE})`;
  return {
    id: "segment",
    variants: {
      project: { name: "Encapsulator (UDP GSO)", fn: () => b.project() },
      projectNoGso: { name: "Encapsulator, GSO off (sendmmsg)", fn: () => b.projectNoGso() },
      simple: { name: "buffer + sendto per segment", fn: () => b.simple() },
      simpleProjectSum: { name: "the same with checksum.h", fn: () => b.simpleProjectSum() },
    },
    rows: [
      { label, project: "project", simple: "simple", rate },
      { label, project: "projectNoGso", simple: "simple", rate },
      { label, project: "project", simple: "simpleProjectSum", rate },
    ],
    check() {
      const v = b.verify();
      const n = b.segments;
      const lens = v.project.map((d) => d.length);
      const ok =
        v.project.length === n &&
        sameBuffers(v.project, v.projectNoGso) &&
        sameBuffers(v.project, v.simple) &&
        sameBuffers(v.project, v.simpleProjectSum) &&
        v.project.every((d) => d.subarray(0, 8).equals(VXLAN) && addon.checksumsValid(d.subarray(8)));
      return {
        ok,
        detail: `${v.project.length}/${v.projectNoGso.length}/${v.simple.length}/${v.simpleProjectSum.length} datagrams of ${[...new Set(lens)].join(", ")} B, ${ok ? "identical, checksums valid" : "DIFFERENT"}`,
      };
    },
    stats: () => b.stats(),
  };
}

/** @param {(() => void)[]} cleanups */
function coalesceGroup(addon, cleanups) {
  if (typeof process.getuid === "function" && process.getuid() !== 0) {
    return { skip: "needs root (a network namespace and a TAP device)" };
  }
  if (!existsSync("/dev/net/tun")) return { skip: "no /dev/net/tun" };
  const ns = `ovmb-${process.pid}-${randomBytes(3).toString("hex")}`;
  const dev = "mbtap0";
  execFileSync("ip", ["netns", "add", ns]);
  /** @type {any} */
  let b;
  let done = false;
  const cleanup = () => {
    if (done) return;
    done = true;
    try {
      b?.close();
    } catch {
      // closing is best effort; the namespace goes below
    }
    try {
      execFileSync("ip", ["netns", "del", ns], { stdio: "ignore" });
    } catch {
      // already gone
    }
  };
  cleanups.push(cleanup);
  const C = addon.CoalesceBench;
  b = new C(`/run/netns/${ns}`, dev, COALESCE_SEGMENTS);
  execFileSync("ip", ["-n", ns, "addr", "add", `${C.devIp}/24`, "dev", dev]);
  execFileSync("ip", [
    "-n",
    ns,
    "neigh",
    "replace",
    C.peerIp,
    "lladdr",
    C.peerMac,
    "dev",
    dev,
    "nud",
    "permanent",
  ]);
  b.connect();
  const bytes = COALESCE_SEGMENTS * GSO_SIZE;
  return {
    id: "coalesce",
    variants: {
      project: { name: "Coalescer (one GSO writev)", fn: () => b.project() },
      simple: { name: "one writev per segment", fn: () => b.simple() },
    },
    rows: [
      {
        label: `deliver ${COALESCE_SEGMENTS} TCP segments to a TAP`,
        project: "project",
        simple: "simple",
        rate: gbit(bytes),
      },
    ],
    check() {
      const v = b.verify();
      const ok = v.project.equals(v.expected) && v.simple.equals(v.expected) && v.projectWrites === 1;
      return {
        ok,
        detail: `the socket received ${v.project.length} and ${v.simple.length} of ${v.expected.length} B, ${
          ok ? "identical" : "DIFFERENT"
        }; TAP writes ${v.projectWrites} and ${v.simpleWrites}`,
      };
    },
    stats: () => b.stats(),
    close: cleanup,
  };
}

function measure(name, fn, o) {
  const bench = new Benchmark(name, fn, {
    maxTime: o.time,
    minSamples: o.quick ? 2 : 5,
    minTime: o.quick ? 0.02 : 0,
    initCount: 1,
  });
  bench.run({ async: false });
  if (bench.error) throw bench.error;
  if (!(bench.hz > 0)) throw new Error(`${name}: no result`);
  return { hz: bench.hz, rme: bench.stats.rme };
}

function machine() {
  return {
    nproc: os.availableParallelism?.() ?? os.cpus().length,
    cpu: os.cpus()[0]?.model ?? "unknown",
    kernel: os.release(),
    node: process.version,
    loadavg: os.loadavg().map((x) => Number(x.toFixed(2))),
  };
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const log = o.json ? (/** @type {string} */ m) => console.error(m) : (m) => console.log(m);
  const addon = loadAddon({ log });
  /** @type {(() => void)[]} */
  const cleanups = [];
  const runCleanups = () => cleanups.splice(0).forEach((c) => c());
  process.on("exit", runCleanups);
  for (const sig of ["SIGINT", "SIGTERM"]) {
    process.on(sig, () => {
      runCleanups();
      process.exit(130);
    });
  }

  const start = machine();
  /** @type {any[]} */
  const groups = [];
  /** @type {{ id: string, reason: string }[]} */
  const skipped = [];
  const want = (id) => o.only.includes(id);
  if (want("lookup")) groups.push(lookupGroup(addon));
  if (want("encap")) groups.push(encapGroup(addon, "udp"), encapGroup(addon, "tcp"));
  if (want("segment")) groups.push(segmentGroup(addon));
  if (want("coalesce")) {
    const g = coalesceGroup(addon, cleanups);
    if (g.skip) skipped.push({ id: "coalesce", reason: g.skip });
    else groups.push(g);
  }

  log(
    `data-path microbenchmarks: ${o.rounds} round(s) x ${o.time} s per variant, interleaved; ` +
      `${start.nproc} x ${start.cpu}, load ${start.loadavg.join(" ")}`,
  );
  log("checks, both versions on the same input:");
  let ok = true;
  for (const g of groups) {
    g.check = g.check();
    ok &&= g.check.ok;
    log(`  ${g.id}: ${g.check.ok ? "ok" : "FAILED"}: ${g.check.detail}`);
  }
  for (const s of skipped) log(`  ${s.id}: skipped, ${s.reason}`);

  for (const g of groups) for (const v of Object.values(g.variants)) v.results = [];
  for (let round = 0; round < o.rounds; round++) {
    log(`round ${round + 1}/${o.rounds}`);
    for (const g of groups) {
      const keys = Object.keys(g.variants);
      if (round % 2) keys.reverse();
      for (const k of keys) {
        const v = g.variants[k];
        const r = measure(`${g.id} ${v.name}`, v.fn, o);
        v.results.push(r);
        log(
          `  ${g.id.padEnd(10)} ${v.name.padEnd(34)} ${fmtInt(r.hz).padStart(12)} ops/s ±${fmt(r.rme, 1)}%`,
        );
      }
    }
  }

  const rows = [];
  for (const g of groups) {
    for (const row of g.rows) {
      const p = g.variants[row.project];
      const s = g.variants[row.simple];
      const ratios = p.results.map((r, i) => r.hz / s.results[i].hz);
      rows.push({
        group: g.id,
        label: row.label,
        project: { name: p.name, hz: median(p.results.map((r) => r.hz)), rate: "" },
        simple: { name: s.name, hz: median(s.results.map((r) => r.hz)), rate: "" },
        ratio: median(ratios),
        ratios,
        rateOf: row.rate,
      });
    }
  }
  for (const r of rows) {
    r.project.rate = r.rateOf(r.project.hz);
    r.simple.rate = r.rateOf(r.simple.hz);
    delete r.rateOf;
  }

  log("");
  log("| benchmark (one op) | project | ops/s | simple version | ops/s | project/simple |");
  log("|---|---|---|---|---|---|");
  for (const r of rows) {
    const spread =
      r.ratios.length > 1 ? ` (${fmt(Math.min(...r.ratios), 2)}-${fmt(Math.max(...r.ratios), 2)})` : "";
    log(
      `| ${r.label} | ${r.project.name} | ${fmtInt(r.project.hz)} (${r.project.rate}) | ${r.simple.name} | ` +
        `${fmtInt(r.simple.hz)} (${r.simple.rate}) | ${fmt(r.ratio, 2)}x${spread} |`,
    );
  }
  log("");
  const stats = {};
  for (const g of groups) if (g.stats) stats[g.id] = g.stats();
  if (stats.segment) {
    const s = stats.segment;
    log(`segment: UDP GSO ${s.gso ? "on" : "not accepted by the kernel"}, udp_send drops ${s.udpSendDrops}`);
  }
  if (stats.coalesce) {
    const s = stats.coalesce;
    log(
      `coalesce: ACKs read back per op ${fmt(s.acksProject / s.burstsProject, 2)} (project), ` +
        `${fmt(s.acksSimple / s.burstsSimple, 2)} (simple); bursts not received whole ${s.shortBursts}; ` +
        `tap_write drops ${s.tapWriteDrops}`,
    );
  }
  for (const s of skipped) log(`${s.id}: skipped, ${s.reason}`);
  const end = machine();
  log(`load average at the end: ${end.loadavg.join(" ")}`);
  if (!ok) log("FAILED: the project's and the simple version's outputs differ (see the checks above)");

  if (o.json) {
    const out = {
      machine: { ...start, loadavgEnd: end.loadavg },
      options: { rounds: o.rounds, time: o.time },
      ok,
      checks: Object.fromEntries(groups.map((g) => [g.id, g.check])),
      variants: Object.fromEntries(
        groups.map((g) => [
          g.id,
          Object.fromEntries(
            Object.entries(g.variants).map(([k, v]) => [k, { name: v.name, hz: v.results.map((r) => r.hz) }]),
          ),
        ]),
      ),
      rows,
      stats,
      skipped,
    };
    console.log(JSON.stringify(out, null, 2));
  }
  runCleanups();
  if (!ok) process.exitCode = 1;
}

main().catch((e) => {
  console.error(e instanceof Error ? (e.stack ?? e.message) : String(e));
  process.exit(1);
});

/**
 * Microbenchmark: programming remote endpoints into the switch, each against its obvious simple
 * version in JavaScript, at two table sizes (--count, default 10,000, and --large, default
 * 64,000: the remote table of a cluster at scale):
 *
 *   replace N:      Switch.replaceRemotes (validation, conversion and a new native table version)
 *                   vs building a JS Map keyed by MAC from the same records.
 *   update 1 of N:  Switch.updateRemotes with one endpoint on an N-entry table
 *                   vs copying an N-entry JS Map and setting one key (copy on write),
 *                   vs Map.set on a shared Map.
 *
 * The switch binds its underlay socket to 127.0.0.1 on a free port and has no ports, so no
 * traffic is involved. Targets: 10,000 endpoints replaced in under 100 ms (issue 4); an update
 * costs in proportion to what it changes, not to the table (the switch's remote table is
 * sharded: an update copies the shards its entries fall in).
 *
 * usage: node bench/micro/remotes.mjs [--count N] [--large N]   (--large 0 leaves it out)
 */
import Benchmark from "benchmark";
import { createSocket } from "node:dgram";
import { performance } from "node:perf_hooks";
import { Switch } from "../../dist/src/dataplane/switch.js";

const TARGET_MS = 100;

/** @returns {Promise<number>} a UDP port that was free on 127.0.0.1 a moment ago */
function freeUdpPort() {
  return new Promise((resolve, reject) => {
    const s = createSocket("udp4");
    s.once("error", reject);
    s.bind(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** @param {number} i @returns {import("../../dist/src/dataplane/switch.js").RemoteEndpoint} */
function endpoint(i) {
  const hi = (i >> 8) & 0xff;
  const lo = i & 0xff;
  const h = (x) => x.toString(16).padStart(2, "0");
  return {
    vni: 100 + (i % 4),
    mac: `0a:58:ac:10:${h(hi)}:${h(lo)}`,
    ipv4: `172.16.${hi}.${lo}`,
    vtep: `10.0.${(i % 250) + 1}.1`,
  };
}

/** @param {Benchmark.Suite} suite @returns {Promise<Benchmark[]>} */
function runSuite(suite) {
  return new Promise((resolve) => {
    suite
      .on("cycle", (/** @type {Benchmark.Event} */ e) => console.log(`  ${String(e.target)}`))
      .on("complete", () => {
        resolve(Array.from({ length: suite.length }, (_, i) => /** @type {Benchmark} */ (suite[i])));
      })
      .run({ async: false });
  });
}

/** @param {Benchmark} b */
function meanMs(b) {
  return b.stats.mean * 1000;
}

/** @param {number} x @returns {string} a ratio, with two significant digits below 10 */
function ratio(x) {
  return x >= 10 ? `${x.toFixed(0)}x` : `${x.toPrecision(2)}x`;
}

/** @param {string} name @param {number} fallback */
function intArg(name, fallback) {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
}

/**
 * Runs the replace and update suites on a table of `count` endpoints.
 * @param {number} count
 * @returns {Promise<{ rows: string[], firstMs: number, replaceMs: number }>}
 */
async function measure(count) {
  const all = Array.from({ length: count }, (_, i) => endpoint(i));
  const sw = new Switch({ underlayIp: "127.0.0.1", port: await freeUdpPort(), workers: 1 });
  try {
    const once = performance.now();
    sw.replaceRemotes(all);
    const firstMs = performance.now() - once;

    console.log(`replace ${count} remote endpoints (one table version each call)`);
    const replace = await runSuite(
      new Benchmark.Suite("replace")
        .add(`switch.replaceRemotes (${count})`, () => sw.replaceRemotes(all))
        .add(`JS Map by MAC (${count}, simple version)`, () => {
          const m = new Map();
          for (const r of all) m.set(r.mac, r);
          if (m.size !== count) throw new Error("size");
        }),
    );

    let k = 0;
    const shared = new Map(all.map((r) => [r.mac, r]));
    console.log(`update 1 endpoint in a table of ${count}`);
    const update = await runSuite(
      new Benchmark.Suite("update")
        .add(`switch.updateRemotes (one endpoint of ${count})`, () => {
          const r = all[k++ % count];
          sw.updateRemotes([{ ...r, vni: r.vni ^ 1 }]);
        })
        .add(`JS Map copy + set (${count}, copy on write, simple version)`, () => {
          const r = all[k++ % count];
          const m = new Map(shared);
          m.set(r.mac, { ...r, vni: r.vni ^ 1 });
          if (m.size !== count) throw new Error("size");
        })
        .add(`JS Map.set in place (${count})`, () => {
          const r = all[k++ % count];
          shared.set(r.mac, { ...r, vni: r.vni ^ 1 });
        }),
    );

    const [swReplace, mapReplace] = replace;
    const [swUpdate, cowUpdate, setUpdate] = update;
    const rows = [
      `| replace ${count} endpoints (ms per call) | ${meanMs(swReplace).toFixed(2)} | ${meanMs(mapReplace).toFixed(2)} (JS Map) | ${ratio(meanMs(swReplace) / meanMs(mapReplace))} |`,
      `| update 1 of ${count} (ms per call) | ${meanMs(swUpdate).toFixed(4)} | ${meanMs(cowUpdate).toFixed(3)} (Map copy + set) | ${ratio(meanMs(swUpdate) / meanMs(cowUpdate))} |`,
      `| update 1 of ${count} (ms per call) | ${meanMs(swUpdate).toFixed(4)} | ${meanMs(setUpdate).toFixed(4)} (Map.set in place) | ${ratio(meanMs(swUpdate) / meanMs(setUpdate))} |`,
    ];
    return { rows, firstMs, replaceMs: meanMs(swReplace) };
  } finally {
    sw.close();
  }
}

async function main() {
  const count = intArg("--count", 10_000);
  const large = intArg("--large", 64_000);
  if (!Number.isInteger(count) || count < 1 || count > 65_536) throw new Error("--count 1..65536");
  if (!Number.isInteger(large) || large < 0 || large > 65_536) throw new Error("--large 0..65536");
  const sizes = large > 0 && large !== count ? [count, large] : [count];
  const results = [];
  for (const n of sizes) results.push(await measure(n));

  console.log("");
  console.log("| operation | switch | simple version | switch/simple |");
  console.log("|---|---|---|---|");
  for (const r of results) for (const row of r.rows) console.log(row);
  console.log("");
  sizes.forEach((n, i) => {
    const { firstMs, replaceMs } = results[i];
    const verdict =
      n > 10_000 ? "" : `: ${replaceMs < TARGET_MS ? "meets" : "misses"} the ${TARGET_MS} ms target`;
    console.log(
      `first replaceRemotes(${n}) ${firstMs.toFixed(1)} ms; mean ${replaceMs.toFixed(1)} ms${verdict}`,
    );
  });
}

main().catch((e) => {
  console.error(e instanceof Error ? (e.stack ?? e.message) : String(e));
  process.exit(1);
});

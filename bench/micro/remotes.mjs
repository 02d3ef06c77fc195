/**
 * Microbenchmark: programming remote endpoints into the switch, each against its obvious simple
 * version in JavaScript.
 *
 *   replace 10,000: Switch.replaceRemotes (validation, conversion and a new native table version)
 *                   vs building a JS Map keyed by MAC from the same records.
 *   update 1 of 10,000: Switch.updateRemotes with one endpoint on a 10,000-entry table
 *                   vs copying a 10,000-entry JS Map and setting one key (copy on write),
 *                   vs Map.set on a shared Map.
 *
 * The switch binds its underlay socket to 127.0.0.1 on a free port and has no ports, so no
 * traffic is involved. Target (issue 4): 10,000 endpoints in under 100 ms.
 *
 * usage: node bench/micro/remotes.mjs [--count N]
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

async function main() {
  const countArg = process.argv.indexOf("--count");
  const count = countArg > 0 ? Number(process.argv[countArg + 1]) : 10_000;
  if (!Number.isInteger(count) || count < 1 || count > 65_536) throw new Error("--count 1..65536");
  const all = Array.from({ length: count }, (_, i) => endpoint(i));
  const sw = new Switch({ underlayIp: "127.0.0.1", port: await freeUdpPort(), workers: 1 });
  try {
    const once = performance.now();
    sw.replaceRemotes(all);
    const firstMs = performance.now() - once;

    console.log(`replace ${count} remote endpoints (one table version each call)`);
    const replace = await runSuite(
      new Benchmark.Suite("replace")
        .add("switch.replaceRemotes", () => sw.replaceRemotes(all))
        .add("JS Map by MAC (simple version)", () => {
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
        .add("switch.updateRemotes (one endpoint)", () => {
          const r = all[k++ % count];
          sw.updateRemotes([{ ...r, vni: r.vni ^ 1 }]);
        })
        .add("JS Map copy + set (copy on write, simple version)", () => {
          const r = all[k++ % count];
          const m = new Map(shared);
          m.set(r.mac, { ...r, vni: r.vni ^ 1 });
          if (m.size !== count) throw new Error("size");
        })
        .add("JS Map.set in place", () => {
          const r = all[k++ % count];
          shared.set(r.mac, { ...r, vni: r.vni ^ 1 });
        }),
    );

    const [swReplace, mapReplace] = replace;
    const [swUpdate, cowUpdate, setUpdate] = update;
    console.log("");
    console.log("| operation | switch | simple version | switch/simple |");
    console.log("|---|---|---|---|");
    console.log(
      `| replace ${count} endpoints (ms per call) | ${meanMs(swReplace).toFixed(2)} | ${meanMs(mapReplace).toFixed(2)} (JS Map) | ${(meanMs(swReplace) / meanMs(mapReplace)).toFixed(1)}x |`,
    );
    console.log(
      `| update 1 of ${count} (ms per call) | ${meanMs(swUpdate).toFixed(3)} | ${meanMs(cowUpdate).toFixed(3)} (Map copy + set) | ${(meanMs(swUpdate) / meanMs(cowUpdate)).toFixed(1)}x |`,
    );
    console.log(
      `| update 1 of ${count} (ms per call) | ${meanMs(swUpdate).toFixed(3)} | ${meanMs(setUpdate).toFixed(4)} (Map.set in place) | ${(meanMs(swUpdate) / meanMs(setUpdate)).toFixed(0)}x |`,
    );
    console.log("");
    const verdict = meanMs(swReplace) < TARGET_MS ? "meets" : "misses";
    console.log(
      `first replaceRemotes(${count}) ${firstMs.toFixed(1)} ms; mean ${meanMs(swReplace).toFixed(1)} ms: ${verdict} the ${TARGET_MS} ms target`,
    );
  } finally {
    sw.close();
  }
}

main().catch((e) => {
  console.error(e instanceof Error ? (e.stack ?? e.message) : String(e));
  process.exit(1);
});

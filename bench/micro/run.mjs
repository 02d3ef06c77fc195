/**
 * `npm run bench:micro`: every microbenchmark, one after the other.
 *
 *   1. bench/micro/datapath.mjs: lookups, encapsulation, segmentation, coalescing, each against
 *      its simple version (builds native/bench/ first when needed). Options are passed on:
 *      --rounds N, --time S, --quick, --only lookup,encap,segment,coalesce, --json (which
 *      leaves out step 2, so stdout is one JSON document).
 *   2. bench/micro/remotes.mjs: programming remote endpoints into the switch (needs dist/ and
 *      the main addon; skipped with a note when dist/ is missing). --count N and --large N
 *      (the two table sizes) are passed to it; --no-remotes leaves it out.
 *
 * usage: node bench/micro/run.mjs [datapath options] [--count N] [--large N] [--no-remotes]
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const HERE = join(ROOT, "bench", "micro");

const args = process.argv.slice(2);
const datapathArgs = [];
const remotesArgs = [];
let remotes = true;
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (a === "--count" || a === "--large") remotesArgs.push(a, args[++i] ?? "");
  else if (a === "--no-remotes") remotes = false;
  else datapathArgs.push(a);
  if (a === "--json") remotes = false;
}

/** @param {string} script @param {string[]} argv */
function run(script, argv) {
  const r = spawnSync(process.execPath, [join(HERE, script), ...argv], { cwd: ROOT, stdio: "inherit" });
  return r.status ?? 1;
}

let failed = 0;
if (run("datapath.mjs", datapathArgs) !== 0) failed++;
if (remotes) {
  if (existsSync(join(ROOT, "dist", "src", "dataplane", "switch.js"))) {
    console.error("");
    if (run("remotes.mjs", remotesArgs) !== 0) failed++;
  } else {
    console.error("remotes.mjs: skipped, dist/ is missing (npx tsc -p tsconfig.build.json)");
  }
}
process.exit(failed ? 1 : 0);

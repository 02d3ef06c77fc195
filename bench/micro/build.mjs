/**
 * Builds the bench-only addon (native/bench/binding.gyp: the data path's real sources plus the
 * benchmarks' entry points) into native/bench/build/, never into the main build/ directory.
 * Rebuilds when the addon is missing or older than any source under native/.
 *
 * usage: node bench/micro/build.mjs   (prints the addon's path)
 */
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
export const BENCH_DIR = join(ROOT, "native", "bench");
export const ADDON = join(BENCH_DIR, "build", "Release", "micro_bench.node");

/** @param {string} dir @param {RegExp} pattern @returns {number} newest mtime of matching files */
function newest(dir, pattern) {
  let t = 0;
  for (const f of readdirSync(dir)) {
    if (pattern.test(f)) t = Math.max(t, statSync(join(dir, f)).mtimeMs);
  }
  return t;
}

/** Node's headers: where npm's configuration says (as `npm run build` uses), else node-gyp's default. */
function nodedir() {
  const fromEnv = process.env.npm_config_nodedir;
  if (fromEnv) return fromEnv;
  const r = spawnSync("npm", ["config", "get", "nodedir"], { cwd: ROOT, encoding: "utf8" });
  const v = r.status === 0 ? r.stdout.trim() : "";
  return v && v !== "undefined" && v !== "null" ? v : undefined;
}

/**
 * Builds the addon when it is missing or stale. Returns its path; throws with node-gyp's output
 * when the build fails.
 * @param {{ log?: (msg: string) => void }} [opts]
 */
export function ensureAddon(opts = {}) {
  const log = opts.log ?? ((m) => console.error(m));
  const sources = Math.max(newest(join(ROOT, "native"), /\.(cc|h|def)$/), newest(BENCH_DIR, /\.(cc|h|gyp)$/));
  const built = existsSync(ADDON) ? statSync(ADDON).mtimeMs : 0;
  if (built >= sources) return ADDON;
  const makefile = join(BENCH_DIR, "build", "Makefile");
  const gypChanged =
    !existsSync(makefile) || statSync(join(BENCH_DIR, "binding.gyp")).mtimeMs > statSync(makefile).mtimeMs;
  const action = gypChanged ? "rebuild" : "build";
  const args = [
    join(ROOT, "node_modules", "node-gyp", "bin", "node-gyp.js"),
    action,
    "--directory",
    BENCH_DIR,
  ];
  const dir = nodedir();
  if (dir) args.push(`--nodedir=${dir}`);
  log(`building the bench addon (node-gyp ${action} --directory native/bench)...`);
  const r = spawnSync(process.execPath, args, { cwd: ROOT, encoding: "utf8", maxBuffer: 64 << 20 });
  if (r.status !== 0 || !existsSync(ADDON)) {
    throw new Error(`node-gyp ${action} failed:\n${(r.stdout ?? "") + (r.stderr ?? "")}`.slice(-8000));
  }
  return ADDON;
}

/** Builds if needed and loads the addon. */
export function loadAddon(opts = {}) {
  return createRequire(import.meta.url)(ensureAddon(opts));
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  try {
    console.log(ensureAddon());
  } catch (e) {
    console.error(e instanceof Error ? e.message : String(e));
    process.exit(1);
  }
}

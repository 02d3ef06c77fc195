import { createRequire } from "node:module";
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { NativeBinding } from "./native.js";

const require = createRequire(import.meta.url);

/** The addon's build folders, relative to the package root; the first that exists is loaded. */
const CANDIDATES = ["build/Release/overlay_switch.node", "build/Debug/overlay_switch.node"];

/**
 * The package root: the nearest folder above this file holding binding.gyp, which node-gyp
 * builds the addon from (this file is src/dataplane/load.ts under vitest, dist/src/dataplane/load.js
 * when built, or a private build elsewhere in the tree). Without one, the folder two levels up.
 */
function packageRoot(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  for (let dir = here; ; dir = dirname(dir)) {
    if (existsSync(join(dir, "binding.gyp"))) return dir;
    if (dirname(dir) === dir) return resolve(here, "..", "..");
  }
}

let cached: NativeBinding | undefined;

/** Loads the data plane addon once; fails with one error naming every path it tried. */
export function loadNative(): NativeBinding {
  if (cached) return cached;
  const root = packageRoot();
  const override = process.env.OVERLAY_ADDON;
  const tried = override ? [override] : CANDIDATES.map((c) => join(root, c));
  for (const path of tried) {
    if (existsSync(path)) {
      cached = require(path) as NativeBinding;
      return cached;
    }
  }
  throw new Error(`overlay data plane addon not found; tried: ${tried.join(", ")} (run npm run build)`);
}

/** The product's version, from the package.json above this file (src/ or dist/src/). */
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

let cached: string | undefined;

export function productVersion(): string {
  if (cached !== undefined) return cached;
  cached = "unknown";
  for (let dir = dirname(fileURLToPath(import.meta.url)); ; dir = dirname(dir)) {
    const file = join(dir, "package.json");
    if (existsSync(file)) {
      try {
        const pkg = JSON.parse(readFileSync(file, "utf8")) as { name?: unknown; version?: unknown };
        if (pkg.name === "overlay-switch" && typeof pkg.version === "string") {
          cached = pkg.version;
          break;
        }
      } catch {
        // not ours; keep looking
      }
    }
    if (dirname(dir) === dir) break;
  }
  return cached;
}

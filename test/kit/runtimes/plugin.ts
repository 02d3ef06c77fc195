/**
 * What every real-runtime test does around the runtime: put the plugin binary into the runtime's
 * CNI bin folder, as a node's install does, and ping from inside a sandbox's network namespace.
 */
import { execFile } from "node:child_process";
import { chmodSync, copyFileSync } from "node:fs";
import { join } from "node:path";
import { BIN } from "../cluster.js";

/** Copies build/Release/overlay-cni into `binDir`, executable, as `overlay-cni`. */
export function installPlugin(binDir: string): void {
  const path = join(binDir, "overlay-cni");
  copyFileSync(BIN.cni, path);
  chmodSync(path, 0o755);
}

/** One ping from inside a sandbox's network namespace: did it come back? */
export function pings(netns: string, ip: string): Promise<boolean> {
  return new Promise((resolve) => {
    execFile("nsenter", [`--net=${netns}`, "ping", "-c", "1", "-W", "1", ip], { timeout: 10_000 }, (err) =>
      resolve(err === null),
    );
  });
}

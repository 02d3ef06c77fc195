/**
 * A private podman instance for tests: its own storage, run and temp folders, its own
 * containers.conf (CONTAINERS_CONF), the CNI network backend reading conflists from a folder of
 * the test's and plugins from another; nothing global is read or changed, except the network
 * namespaces podman mounts under /run/netns and libcni's result cache in /var/lib/cni/results
 * (podman 4.3 has no setting for it), both emptied as the containers are removed.
 *
 * Quirks of the development machine, kept in the configuration:
 * - root lacks CAP_SYS_RESOURCE, so the OCI runtime cannot raise rlimits: `default_ulimits`
 *   sets nofile and nproc at or under the current hard limits;
 * - cgroupfs (no systemd), events to a file, the vfs storage driver (no overlay mounts inside a
 *   container).
 *
 * The image is Debian's busybox-static as a root filesystem, imported (`podman import`): no
 * registry is reachable here.
 */
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, rmSync, symlinkSync, writeFileSync, copyFileSync } from "node:fs";
import { join } from "node:path";
import type { ExecResult } from "../cluster.js";

export const PODMAN = "/usr/bin/podman";
export const BUSYBOX = "/bin/busybox";
export const TEST_IMAGE = "localhost/overlay-test-busybox:1";

/** The applets the tests use, as links to /bin/busybox. */
const APPLETS = ["sh", "sleep", "ping", "ip", "cat", "ls", "true"];

function run(
  command: string,
  args: readonly string[],
  env?: NodeJS.ProcessEnv,
  timeoutMs = 120_000,
): Promise<ExecResult> {
  return new Promise((resolve) => {
    execFile(command, args, { env, timeout: timeoutMs, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const e = err as { code?: number | string; killed?: boolean; signal?: string; message: string } | null;
      resolve({
        code: e === null ? 0 : typeof e.code === "number" ? e.code : null,
        signal: e?.signal ?? null,
        stdout: String(stdout),
        stderr: String(stderr) + (e !== null && typeof e.code !== "number" ? e.message : ""),
        timedOut: e?.killed === true,
      });
    });
  });
}

/** Why podman cannot be used here, or undefined. */
export function podmanMissing(): string | undefined {
  if (!existsSync(PODMAN)) return `${PODMAN} is not installed (apt-get install podman)`;
  if (!existsSync(BUSYBOX)) return `${BUSYBOX} is not installed (apt-get install busybox-static)`;
  return undefined;
}

/** rlimits the OCI runtime sets without CAP_SYS_RESOURCE: at or under the usual hard limits. */
const NOFILE = "1024:1024";
const NPROC = "4096:4096";

export class PrivatePodman {
  readonly env: NodeJS.ProcessEnv;
  readonly netDir: string;
  readonly binDir: string;

  private constructor(readonly dir: string) {
    this.netDir = join(dir, "net.d");
    this.binDir = join(dir, "cni-bin");
    for (const d of [join(dir, "root"), join(dir, "runroot"), join(dir, "tmp"), this.netDir, this.binDir])
      mkdirSync(d, { recursive: true });
    const conf = join(dir, "containers.conf");
    writeFileSync(
      conf,
      [
        "[containers]",
        `default_ulimits = ["nofile=${NOFILE}", "nproc=${NPROC}"]`,
        "",
        "[network]",
        'network_backend = "cni"',
        `cni_plugin_dirs = ["${this.binDir}"]`,
        `network_config_dir = "${this.netDir}"`,
        "",
        "[engine]",
        'cgroup_manager = "cgroupfs"',
        'events_logger = "file"',
        `events_logfile_path = "${join(dir, "events.log")}"`,
        'runtime = "runc"',
        `tmp_dir = "${join(dir, "tmp")}"`,
        `static_dir = "${join(dir, "root", "libpod")}"`,
        `volume_path = "${join(dir, "root", "volumes")}"`,
        "",
      ].join("\n"),
    );
    const storage = join(dir, "storage.conf");
    writeFileSync(
      storage,
      [
        "[storage]",
        'driver = "vfs"',
        `runroot = "${join(dir, "runroot")}"`,
        `graphroot = "${join(dir, "root")}"`,
        "",
      ].join("\n"),
    );
    const registries = join(dir, "registries.conf");
    writeFileSync(registries, "unqualified-search-registries = []\n");
    this.env = {
      PATH: process.env.PATH,
      HOME: dir,
      CONTAINERS_CONF: conf,
      CONTAINERS_STORAGE_CONF: storage,
      CONTAINERS_REGISTRIES_CONF: registries,
    };
  }

  /** A podman of its own in `dir` (created), with the test image imported. */
  static async start(dir: string): Promise<PrivatePodman> {
    const p = new PrivatePodman(dir);
    const rootfs = join(dir, "rootfs");
    mkdirSync(join(rootfs, "bin"), { recursive: true });
    copyFileSync(BUSYBOX, join(rootfs, "bin", "busybox"));
    for (const a of APPLETS) symlinkSync("busybox", join(rootfs, "bin", a));
    const tar = join(dir, "rootfs.tar");
    const t = await run("tar", ["-C", rootfs, "-cf", tar, "."]);
    if (t.code !== 0) throw new Error(`tar: ${t.stderr}`);
    const imported = await p.podman(["import", "--change", "CMD=/bin/sh", tar, TEST_IMAGE]);
    if (imported.code !== 0) throw new Error(`podman import: ${imported.stderr}`);
    return p;
  }

  /** Runs `podman ARGS` against this instance only. */
  podman(args: readonly string[], timeoutMs = 120_000): Promise<ExecResult> {
    return run(
      PODMAN,
      [
        "--root",
        join(this.dir, "root"),
        "--runroot",
        join(this.dir, "runroot"),
        "--storage-driver",
        "vfs",
        ...args,
      ],
      this.env,
      timeoutMs,
    );
  }

  /** Removes every container (running their CNI DEL) and the folders. */
  async close(): Promise<void> {
    await this.podman(["rm", "--all", "--force", "--time", "0"]).catch(() => undefined);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * `overlayd install-cni` and `overlayd uninstall-cni`: the plugin binary and its network
 * configuration put into the runtime's folders (the DaemonSet's init container runs the first;
 * deploy/overlay.yaml), and taken out again.
 *
 * Atomic, so a runtime never execs half a binary nor reads half a conflist: each file is written
 * beside its destination under a temporary name (same folder, same file system), synced, given
 * its mode, and renamed over the destination. Rerunning replaces both (an upgrade).
 *
 * The conflist's `cniVersion` is 1.0.0 unless asked otherwise: containerd 1.x and podman 4
 * parse results only up to 1.0.0 and fail every pod of a 1.1.0 configuration (docs/CNI.md).
 * It declares the `io.kubernetes.cri.pod-annotations` capability, so containerd hands the pod's
 * annotations to the plugin and the agent need not read the pod from the API.
 */
import { Command, InvalidArgumentError } from "commander";
import {
  closeSync,
  existsSync,
  fsyncSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  unlinkSync,
  writeSync,
} from "node:fs";
import { basename, dirname, isAbsolute, join } from "node:path";
import { fileURLToPath } from "node:url";
import { DEFAULT_CONFIG_VERSION, PLUGIN_TYPE, SUPPORTED_VERSIONS } from "../cni/config.js";
import { isDnsLabel } from "../model/names.js";
import { DEFAULT_AGENT_SOCKET } from "./protocol.js";

export const INSTALL_COMMANDS: readonly string[] = ["install-cni", "uninstall-cni"];

/** The package's root (the repository, or /opt/overlay in the image): the nearest package.json up. */
function packageRoot(from: string): string {
  for (let dir = from; dirname(dir) !== dir; dir = dirname(dir)) {
    if (existsSync(join(dir, "package.json"))) return dir;
  }
  return from;
}
const ROOT = packageRoot(dirname(fileURLToPath(import.meta.url)));

/** The plugin binary as the build leaves it (the C++ shim that hands each call to the agent). */
export const DEFAULT_PLUGIN_SOURCE = join(ROOT, "build", "Release", "overlay-cni");
export const DEFAULT_BIN_DIR = "/opt/cni/bin";
export const DEFAULT_CONF_DIR = "/etc/cni/net.d";
/** Runtimes read the first configuration in lexical order: 10- comes before most others. */
export const DEFAULT_CONFLIST = "10-overlay.conflist";
export const POD_ANNOTATIONS_CAPABILITY = "io.kubernetes.cri.pod-annotations";

export interface InstallOptions {
  /** The plugin binary to install. */
  source: string;
  binDir: string;
  confDir: string;
  /** The conflist's file name in confDir. */
  conflist: string;
  /** The CNI network's name (the conflist's `name`). */
  name: string;
  cniVersion: string;
  socket: string;
  /** Where pods go whose runtime names no namespace (the plugin's `namespace` key); omitted: default. */
  namespace?: string;
  /**
   * The reference `loopback` plugin, copied into binDir when binDir has none: containerd's CRI
   * runs it for every sandbox and fails every pod without it. Never replaces one that is there
   * (it is the cluster's), and uninstall leaves it (other networks may need it).
   */
  loopbackSource?: string;
}

/** containerd's CRI sets up every sandbox's `lo` with this reference plugin from the CNI bin folder. */
export const LOOPBACK_PLUGIN = "loopback";

/** The network configuration list the runtime reads. */
export function conflist(o: Pick<InstallOptions, "name" | "cniVersion" | "socket" | "namespace">): object {
  return {
    cniVersion: o.cniVersion,
    name: o.name,
    plugins: [
      {
        type: PLUGIN_TYPE,
        socket: o.socket,
        ...(o.namespace === undefined ? {} : { namespace: o.namespace }),
        capabilities: { [POD_ANNOTATIONS_CAPABILITY]: true },
      },
    ],
  };
}

/** Writes `data` to `dest` atomically: a temporary file beside it, synced, then renamed. */
export function writeAtomically(dest: string, data: Buffer | string, mode: number): void {
  const tmp = join(dirname(dest), `.${basename(dest)}.tmp-${process.pid}`);
  const fd = openSync(tmp, "w", mode);
  try {
    const buf = typeof data === "string" ? Buffer.from(data) : data;
    for (let off = 0; off < buf.length;) off += writeSync(fd, buf, off, buf.length - off);
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw err;
  }
  closeSync(fd);
  try {
    renameSync(tmp, dest);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
  // The rename's directory entry, durable too.
  const dir = openSync(dirname(dest), "r");
  try {
    fsyncSync(dir);
  } finally {
    closeSync(dir);
  }
}

/** What install-cni did about the loopback plugin; a message for the operator when it is missing. */
export type LoopbackOutcome = "present" | "installed" | "missing";

/** Puts the binary and the conflist (and, when asked and missing, loopback) in place. */
export function installCni(o: InstallOptions): {
  binary: string;
  conflist: string;
  loopback: LoopbackOutcome;
} {
  let size: number;
  try {
    size = statSync(o.source).size;
  } catch {
    throw new Error(`the plugin binary ${o.source} does not exist (build it, or name it with --source)`);
  }
  if (size === 0) throw new Error(`the plugin binary ${o.source} is empty`);
  for (const dir of [o.binDir, o.confDir]) {
    if (!statSync(dir, { throwIfNoEntry: false })?.isDirectory())
      throw new Error(`${dir} is not a folder (is the host's folder mounted?)`);
  }
  const binary = join(o.binDir, PLUGIN_TYPE);
  const conf = join(o.confDir, o.conflist);
  writeAtomically(binary, readFileSync(o.source), 0o755);
  const loopback = ensureLoopback(o.binDir, o.loopbackSource);
  // The conflist last: a runtime that sees the network finds its plugins already there.
  writeAtomically(conf, `${JSON.stringify(conflist(o), null, 2)}\n`, 0o644);
  return { binary, conflist: conf, loopback };
}

function ensureLoopback(binDir: string, source: string | undefined): LoopbackOutcome {
  if (existsSync(join(binDir, LOOPBACK_PLUGIN))) return "present";
  if (source === undefined) return "missing";
  let data: Buffer;
  try {
    data = readFileSync(source);
  } catch {
    throw new Error(`the loopback plugin ${source} cannot be read (name it with --loopback-source)`);
  }
  if (data.length === 0) throw new Error(`the loopback plugin ${source} is empty`);
  writeAtomically(join(binDir, LOOPBACK_PLUGIN), data, 0o755);
  return "installed";
}

/** Removes the binary and the conflist (those that are there); returns what it removed. */
export function uninstallCni(o: Pick<InstallOptions, "binDir" | "confDir" | "conflist">): string[] {
  const removed: string[] = [];
  // The conflist first: a runtime that no longer sees the network never execs the plugin.
  for (const path of [join(o.confDir, o.conflist), join(o.binDir, PLUGIN_TYPE)]) {
    try {
      unlinkSync(path);
      removed.push(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
  }
  return removed;
}

function absolute(value: string): string {
  if (!isAbsolute(value)) throw new InvalidArgumentError("expected an absolute path");
  return value;
}

function cniVersion(value: string): string {
  if (!SUPPORTED_VERSIONS.some((v) => v === value))
    throw new InvalidArgumentError(`expected one of ${SUPPORTED_VERSIONS.join(", ")}`);
  return value;
}

function fileName(value: string): string {
  if (value === "" || value.includes("/") || value.startsWith("."))
    throw new InvalidArgumentError("expected a file name (no '/', not starting with '.')");
  return value;
}

function namespaceName(value: string): string {
  if (!isDnsLabel(value)) throw new InvalidArgumentError("expected a namespace name");
  return value;
}

/** Runs `overlayd install-cni|uninstall-cni ...` (argv as process.argv); returns the exit code. */
export async function runInstallCommand(
  argv: readonly string[],
  out: (line: string) => void = (l) => process.stdout.write(`${l}\n`),
): Promise<number> {
  let code = 0;
  const fail = (err: unknown): void => {
    process.stderr.write(`overlayd: ${err instanceof Error ? err.message : String(err)}\n`);
    code = 1;
  };
  const env = process.env;
  const program = new Command().name("overlayd").exitOverride();
  const dirs = (c: Command): Command =>
    c
      .option(
        "--bin-dir <path>",
        "the runtime's CNI plugin folder",
        absolute,
        env.CNI_BIN_DIR ?? DEFAULT_BIN_DIR,
      )
      .option(
        "--conf-dir <path>",
        "the runtime's CNI configuration folder",
        absolute,
        env.CNI_CONF_DIR ?? DEFAULT_CONF_DIR,
      )
      .option("--conflist <file>", "the configuration's file name", fileName, DEFAULT_CONFLIST);
  dirs(program.command("install-cni"))
    .description("put the CNI plugin and its configuration in place, atomically (write, then rename)")
    .option(
      "--source <path>",
      "the plugin binary to install",
      absolute,
      env.OVERLAY_CNI_SOURCE ?? DEFAULT_PLUGIN_SOURCE,
    )
    .option("--name <name>", "the CNI network's name", "overlay")
    .option(
      "--cni-version <version>",
      `the configuration's cniVersion (1.1.0 only for runtimes that parse 1.1.0 results)`,
      cniVersion,
      env.OVERLAY_CNI_VERSION ?? DEFAULT_CONFIG_VERSION,
    )
    .option(
      "--socket <path>",
      "the agent's socket, as the plugin will reach it",
      absolute,
      DEFAULT_AGENT_SOCKET,
    )
    .option(
      "--namespace <name>",
      "the namespace of pods whose runtime names none (default: default)",
      namespaceName,
    )
    .option(
      "--loopback-source <path>",
      "the reference loopback plugin, copied into the bin folder when it has none (containerd's CRI needs it)",
      absolute,
      env.OVERLAY_LOOPBACK_SOURCE,
    )
    .action((o: InstallOptions) => {
      try {
        const done = installCni(o);
        out(`installed ${done.binary} and ${done.conflist} (cniVersion ${o.cniVersion})`);
        const loopback = join(o.binDir, LOOPBACK_PLUGIN);
        if (done.loopback === "installed") out(`installed ${loopback} from ${o.loopbackSource ?? ""}`);
        if (done.loopback === "missing")
          out(
            `warning: ${o.binDir} has no ${LOOPBACK_PLUGIN} plugin, which containerd's CRI runs for every pod: ` +
              `install kubernetes-cni or containernetworking-plugins on the node, or pass --loopback-source`,
          );
      } catch (err) {
        fail(err);
      }
    });
  dirs(program.command("uninstall-cni"))
    .description("remove the CNI plugin and its configuration")
    .action((o: Pick<InstallOptions, "binDir" | "confDir" | "conflist">) => {
      try {
        const removed = uninstallCni(o);
        out(removed.length === 0 ? "nothing to remove" : `removed ${removed.join(" and ")}`);
      } catch (err) {
        fail(err);
      }
    });
  try {
    await program.parseAsync([...argv]);
  } catch (err) {
    const e = err as { exitCode?: number; code?: string };
    // --help and --version end here too, with exit code 0.
    return typeof e.exitCode === "number" ? e.exitCode : 1;
  }
  return code;
}

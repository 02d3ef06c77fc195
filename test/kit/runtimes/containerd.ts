/**
 * A private containerd for tests, driven through its CRI over gRPC as kubelet drives it (the
 * messages of `cri.proto`, the CRI's own definitions). Its root, state, sockets, CNI
 * configuration and plugin folders are the test's; globals it touches: the pods' network
 * namespaces under /var/run/netns, shim sockets under /run/containerd/s, libcni's result cache in
 * /var/lib/cni, all gone once its sandboxes are removed.
 *
 * Quirks of the development machine, in the configuration: root lacks CAP_SYS_RESOURCE, so the
 * CRI must not lower shims' OOM scores below its own (`restrict_oom_score_adj = true`); no
 * systemd (cgroupfs); the native snapshotter (no overlay mounts inside a container).
 *
 * The sandbox ("pause") image is built here: a static C binary that sleeps until SIGTERM or
 * SIGINT, in a one-layer OCI image imported with `ctr` (no registry is reachable).
 */
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { spawn, execFile, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
  createWriteStream,
} from "node:fs";
import { join } from "node:path";
import { REPO_ROOT } from "../cluster.js";

export const CONTAINERD = "/usr/bin/containerd";
export const CTR = "/usr/bin/ctr";
export const PAUSE_IMAGE = "localhost/overlay-test-pause:1";
/** containerd's CRI sets up every sandbox's `lo` with the reference `loopback` plugin, from its CNI bin folder. */
export const LOOPBACK_PLUGIN = "/usr/lib/cni/loopback";
/** From the source tree, also when this file runs built (the demo, from dist/test/kit/). */
const PROTO = join(REPO_ROOT, "test", "kit", "runtimes", "cri.proto");

/** Why containerd cannot be used here, or undefined. */
export function containerdMissing(): string | undefined {
  for (const bin of [
    CONTAINERD,
    CTR,
    "/usr/bin/containerd-shim-runc-v2",
    "/usr/sbin/runc",
    LOOPBACK_PLUGIN,
  ]) {
    if (!existsSync(bin))
      return `${bin} is not installed (apt-get install containerd runc containernetworking-plugins)`;
  }
  return undefined;
}

function exec(
  command: string,
  args: readonly string[],
  timeoutMs = 120_000,
): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(command, args, { timeout: timeoutMs, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const code =
        err === null
          ? 0
          : typeof (err as { code?: unknown }).code === "number"
            ? Number((err as { code: number }).code)
            : 1;
      resolve({
        code,
        out: `${String(stdout)}${String(stderr)}${err !== null && code === 1 ? err.message : ""}`,
      });
    });
  });
}

async function must(command: string, args: readonly string[]): Promise<string> {
  const r = await exec(command, args);
  if (r.code !== 0) throw new Error(`${command} ${args.join(" ")}: exit ${r.code}: ${r.out}`);
  return r.out;
}

function sha256(data: Buffer): string {
  return createHash("sha256").update(data).digest("hex");
}

/** A one-layer OCI image archive holding /pause (built from C, static), named PAUSE_IMAGE. */
async function buildPauseImage(dir: string): Promise<string> {
  mkdirSync(dir, { recursive: true });
  const src = join(dir, "pause.c");
  writeFileSync(
    src,
    [
      "#include <signal.h>",
      "#include <unistd.h>",
      "static void done(int s) { (void)s; _exit(0); }",
      "int main(void) {",
      "  signal(SIGTERM, done);",
      "  signal(SIGINT, done);",
      "  for (;;) pause();",
      "}",
      "",
    ].join("\n"),
  );
  const rootfs = join(dir, "rootfs");
  mkdirSync(rootfs, { recursive: true });
  await must("gcc", ["-static", "-O2", "-o", join(rootfs, "pause"), src]);
  const layout = join(dir, "layout");
  const blobs = join(layout, "blobs", "sha256");
  mkdirSync(blobs, { recursive: true });
  const layerTar = join(dir, "layer.tar");
  await must("tar", ["--owner=0", "--group=0", "--numeric-owner", "-C", rootfs, "-cf", layerTar, "pause"]);
  const blob = (data: Buffer): { digest: string; size: number } => {
    const hex = sha256(data);
    writeFileSync(join(blobs, hex), data);
    return { digest: `sha256:${hex}`, size: data.length };
  };
  const layer = blob(readFileSync(layerTar));
  const config = blob(
    Buffer.from(
      JSON.stringify({
        architecture: "amd64",
        os: "linux",
        config: { Entrypoint: ["/pause"] },
        rootfs: { type: "layers", diff_ids: [layer.digest] },
      }),
    ),
  );
  const manifest = blob(
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        config: { mediaType: "application/vnd.oci.image.config.v1+json", ...config },
        layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", ...layer }],
      }),
    ),
  );
  writeFileSync(join(layout, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  writeFileSync(
    join(layout, "index.json"),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: "application/vnd.oci.image.manifest.v1+json",
          ...manifest,
          platform: { architecture: "amd64", os: "linux" },
          annotations: { "io.containerd.image.name": PAUSE_IMAGE, "org.opencontainers.image.ref.name": "1" },
        },
      ],
    }),
  );
  const archive = join(dir, "pause.tar");
  await must("tar", ["-C", layout, "-cf", archive, "."]);
  return archive;
}

export interface SandboxRequest {
  name: string;
  namespace: string;
  uid: string;
  annotations?: Record<string, string>;
}

export interface SandboxStatus {
  id: string;
  state: "SANDBOX_READY" | "SANDBOX_NOTREADY";
  ip: string;
  /** The sandbox's network namespace (from the verbose status). */
  netns: string | undefined;
}

type Unary = (req: object, cb: (err: grpc.ServiceError | null, res: Record<string, unknown>) => void) => void;

export class PrivateContainerd {
  readonly socket: string;
  readonly netDir: string;
  readonly binDir: string;
  private proc: ChildProcess | undefined;
  private exited: Promise<void> | undefined;
  private client: grpc.Client & Record<string, Unary>;
  /** Sandboxes this instance started and has not removed. */
  private readonly sandboxes = new Set<string>();

  private constructor(readonly dir: string) {
    this.socket = join(dir, "containerd.sock");
    this.netDir = join(dir, "net.d");
    this.binDir = join(dir, "cni-bin");
    for (const d of [this.netDir, this.binDir, join(dir, "logs")]) mkdirSync(d, { recursive: true });
    copyFileSync(LOOPBACK_PLUGIN, join(this.binDir, "loopback"));
    const def = protoLoader.loadSync(PROTO, {
      keepCase: false,
      longs: String,
      enums: String,
      defaults: true,
    });
    const pkg = grpc.loadPackageDefinition(def) as unknown as {
      runtime: { v1: { RuntimeService: new (addr: string, creds: grpc.ChannelCredentials) => grpc.Client } };
    };
    this.client = new pkg.runtime.v1.RuntimeService(
      `unix://${this.socket}`,
      grpc.credentials.createInsecure(),
    ) as grpc.Client & Record<string, Unary>;
  }

  /** Starts containerd in `dir` (created) with the CNI folders of its own; imports the pause image. */
  static async start(dir: string): Promise<PrivateContainerd> {
    mkdirSync(dir, { recursive: true });
    const c = new PrivateContainerd(dir);
    try {
      await c.launch();
      const archive = await buildPauseImage(join(dir, "image"));
      await must(CTR, [
        "--address",
        c.socket,
        "--namespace",
        "k8s.io",
        "images",
        "import",
        "--snapshotter",
        "native",
        archive,
      ]);
    } catch (err) {
      await c.close();
      throw err;
    }
    return c;
  }

  private async launch(): Promise<void> {
    const d = this.dir;
    const cri = 'plugins."io.containerd.grpc.v1.cri"';
    const config = join(d, "config.toml");
    writeFileSync(
      config,
      [
        "version = 2",
        `root = "${join(d, "root")}"`,
        `state = "${join(d, "state")}"`,
        'disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.overlayfs"]',
        "[grpc]",
        `  address = "${this.socket}"`,
        "[ttrpc]",
        `  address = "${this.socket}.ttrpc"`,
        "[metrics]",
        '  address = ""',
        "[plugins]",
        `  [${cri}]`,
        `    sandbox_image = "${PAUSE_IMAGE}"`,
        "    restrict_oom_score_adj = true",
        "    disable_apparmor = true",
        '    stream_server_address = "127.0.0.1"',
        '    stream_server_port = "0"',
        `    [${cri}.containerd]`,
        '      snapshotter = "native"',
        '      default_runtime_name = "runc"',
        `      [${cri}.containerd.runtimes.runc]`,
        '        runtime_type = "io.containerd.runc.v2"',
        `        [${cri}.containerd.runtimes.runc.options]`,
        "          SystemdCgroup = false",
        `    [${cri}.cni]`,
        `      bin_dir = "${this.binDir}"`,
        `      conf_dir = "${this.netDir}"`,
        "      max_conf_num = 1",
        '  [plugins."io.containerd.internal.v1.opt"]',
        `    path = "${join(d, "opt")}"`,
        "",
      ].join("\n"),
    );
    const log = createWriteStream(join(d, "containerd.log"));
    const proc = spawn(CONTAINERD, ["--config", config], { stdio: ["ignore", "pipe", "pipe"] });
    this.proc = proc;
    proc.stdout?.pipe(log);
    proc.stderr?.pipe(log);
    this.exited = new Promise((resolve) => proc.once("exit", () => resolve()));
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (proc.exitCode !== null) throw new Error(`containerd exited: ${this.log()}`);
      if (existsSync(this.socket)) {
        try {
          await this.version();
          return;
        } catch {
          // not serving yet
        }
      }
      if (Date.now() > deadline) throw new Error(`containerd did not start within 30 s: ${this.log()}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /** containerd's log so far (for failure messages). */
  log(): string {
    const f = join(this.dir, "containerd.log");
    return existsSync(f) ? readFileSync(f, "utf8").slice(-6000) : "";
  }

  private call(method: string, req: object, timeoutMs = 60_000): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      const fn = this.client[method] as Unary | undefined;
      if (fn === undefined) return reject(new Error(`no CRI method ${method}`));
      const deadline = new Date(Date.now() + timeoutMs);
      (
        fn as unknown as (r: object, m: grpc.Metadata, o: grpc.CallOptions, cb: Parameters<Unary>[1]) => void
      ).call(this.client, req, new grpc.Metadata(), { deadline }, (err, res) =>
        err ? reject(err) : resolve(res),
      );
    });
  }

  async version(): Promise<{ runtimeName: string; runtimeVersion: string; runtimeApiVersion: string }> {
    const r = await this.call("Version", { version: "v1" }, 2000);
    return r as unknown as { runtimeName: string; runtimeVersion: string; runtimeApiVersion: string };
  }

  /** RunPodSandbox as kubelet sends it (pod network namespace, the pod's annotations). */
  async runPodSandbox(p: SandboxRequest): Promise<string> {
    const logDir = join(this.dir, "logs", p.uid);
    mkdirSync(logDir, { recursive: true });
    const r = await this.call("RunPodSandbox", {
      config: {
        metadata: { name: p.name, uid: p.uid, namespace: p.namespace, attempt: 0 },
        hostname: p.name,
        logDirectory: logDir,
        labels: { "io.kubernetes.pod.name": p.name, "io.kubernetes.pod.namespace": p.namespace },
        annotations: p.annotations ?? {},
        linux: { securityContext: { namespaceOptions: { network: "POD", pid: "CONTAINER", ipc: "POD" } } },
      },
    });
    const id = String(r.podSandboxId);
    this.sandboxes.add(id);
    return id;
  }

  async podSandboxStatus(id: string): Promise<SandboxStatus> {
    const r = (await this.call("PodSandboxStatus", { podSandboxId: id, verbose: true })) as {
      status: { id: string; state: SandboxStatus["state"]; network?: { ip: string } };
      info: Record<string, string>;
    };
    let netns: string | undefined;
    try {
      const info = JSON.parse(r.info.info ?? "{}") as {
        runtimeSpec?: { linux?: { namespaces?: { type: string; path?: string }[] } };
      };
      netns = info.runtimeSpec?.linux?.namespaces?.find((n) => n.type === "network")?.path;
    } catch {
      netns = undefined;
    }
    return { id: r.status.id, state: r.status.state, ip: r.status.network?.ip ?? "", netns };
  }

  async stopPodSandbox(id: string): Promise<void> {
    await this.call("StopPodSandbox", { podSandboxId: id });
  }

  async removePodSandbox(id: string): Promise<void> {
    await this.call("RemovePodSandbox", { podSandboxId: id });
    this.sandboxes.delete(id);
  }

  /** Stops and removes what it started, stops containerd (by its pid), removes its folder. */
  async close(): Promise<void> {
    for (const id of [...this.sandboxes]) {
      await this.stopPodSandbox(id).catch(() => undefined);
      await this.removePodSandbox(id).catch(() => undefined);
    }
    this.client.close();
    if (this.proc !== undefined && this.proc.exitCode === null) {
      this.proc.kill("SIGTERM");
      const timer = setTimeout(() => this.proc?.kill("SIGKILL"), 10_000);
      await this.exited;
      clearTimeout(timer);
    }
    // Bind mounts of a sandbox that could not be removed would make this fail: say so.
    try {
      rmSync(this.dir, { recursive: true, force: true });
    } catch (err) {
      const left = statSync(this.dir, { throwIfNoEntry: false }) ? this.dir : "";
      throw new Error(`cannot remove ${left}: ${String(err)}`);
    }
  }
}

/**
 * Starts a real etcd (Debian's etcd-server, /usr/bin/etcd) for tests: a fresh temp folder, free
 * ports, optionally inside a network namespace. Every process started here is stopped by its pid.
 */
import { spawn, execFile, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, createWriteStream, type WriteStream } from "node:fs";
import { get as httpsGet } from "node:https";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const execFileP = promisify(execFile);

export const ETCD_BINARY = process.env.ETCD_BINARY ?? "/usr/bin/etcd";

export interface EtcdOptions {
  /** Address to listen on. Default 127.0.0.1. */
  ip?: string;
  /** Run etcd inside this network namespace (via `ip netns exec`). */
  netnsName?: string;
  /** How long to wait for etcd to become ready (ms). Default 20000. */
  startTimeoutMs?: number;
  /**
   * etcd's --grpc-keepalive-min-time (ms): clients pinging more often get GOAWAY. Default etcd's
   * own (5 s); lower it for a client whose keepalive interval is shortened to keep a test short.
   */
  grpcKeepaliveMinTimeMs?: number;
  /**
   * Serve clients over https only, requiring a client certificate signed by `ca`
   * (--client-cert-auth); `client` is the certificate the readiness check uses.
   */
  tls?: { ca: string; cert: string; key: string; client: { cert: string; key: string } };
}

export interface TestEtcd {
  /** `etcd://IP:PORT` (`etcds://` with tls), for openStore. */
  url: string;
  /** `IP:PORT` of the client endpoint. */
  endpoint: string;
  ip: string;
  clientPort: number;
  peerPort: number;
  dataDir: string;
  /** pid of the running etcd, undefined while it is stopped. */
  readonly pid: number | undefined;
  /** Stops the etcd process but keeps its data and ports, for outage tests. */
  stopServer(): Promise<void>;
  /** Starts etcd again on the same data and ports. */
  startServer(): Promise<void>;
  /** Stops etcd and removes its folder. */
  stop(): Promise<void>;
}

/** Fails with a clear message when the etcd binary is missing (tests never skip on that). */
export function requireEtcdBinary(binary = ETCD_BINARY): void {
  if (!existsSync(binary)) {
    throw new Error(
      `etcd is not installed (${binary} missing): install Debian's etcd-server package ` +
        `(apt-get install etcd-server; .ci/install-deps does this) or set ETCD_BINARY`,
    );
  }
}

/** Ports that are free right now on `ip` (in `netnsName` when given), found by binding port 0. */
export async function freePorts(count: number, ip = "127.0.0.1", netnsName?: string): Promise<number[]> {
  if (netnsName !== undefined) {
    const script =
      "const net=require('net');const n=Number(process.argv[1]);const ip=process.argv[2];" +
      "const ss=[];let left=n;for(let i=0;i<n;i++){const s=net.createServer();ss.push(s);" +
      "s.listen(0,ip,()=>{if(--left===0){console.log(ss.map(x=>x.address().port).join(' '));ss.forEach(x=>x.close());}});}";
    const { stdout } = await execFileP("ip", [
      "netns",
      "exec",
      netnsName,
      process.execPath,
      "-e",
      script,
      String(count),
      ip,
    ]);
    return stdout.trim().split(/\s+/).map(Number);
  }
  const servers = Array.from({ length: count }, () => createServer());
  try {
    return await Promise.all(
      servers.map(
        (s) =>
          new Promise<number>((resolve, reject) => {
            s.once("error", reject);
            s.listen(0, ip, () => {
              const addr = s.address();
              if (addr === null || typeof addr === "string") reject(new Error("no port"));
              else resolve(addr.port);
            });
          }),
      ),
    );
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }
}

export async function startEtcd(options: EtcdOptions = {}): Promise<TestEtcd> {
  requireEtcdBinary();
  const ip = options.ip ?? "127.0.0.1";
  const startTimeoutMs = options.startTimeoutMs ?? 20_000;
  const dir = mkdtempSync(join(tmpdir(), "overlay-etcd-"));
  const dataDir = join(dir, "data");
  const [clientPort, peerPort] = await freePorts(2, ip, options.netnsName);
  if (clientPort === undefined || peerPort === undefined) throw new Error("could not find free ports");
  const host = ip.includes(":") ? `[${ip}]` : ip;
  const tls = options.tls;
  const clientUrl = `${tls === undefined ? "http" : "https"}://${host}:${clientPort}`;
  const peerUrl = `http://${host}:${peerPort}`;
  const etcdArgs = [
    "--name",
    "test",
    "--data-dir",
    dataDir,
    "--listen-client-urls",
    clientUrl,
    "--advertise-client-urls",
    clientUrl,
    "--listen-peer-urls",
    peerUrl,
    "--initial-advertise-peer-urls",
    peerUrl,
    "--initial-cluster",
    `test=${peerUrl}`,
    "--initial-cluster-state",
    "new",
    "--initial-cluster-token",
    `test-${process.pid}-${clientPort}`,
    "--logger",
    "zap",
    "--log-outputs",
    "stderr",
    // Shorter Raft timers make a single member ready (and leases checked) sooner.
    "--heartbeat-interval",
    "50",
    "--election-timeout",
    "500",
    ...(tls === undefined
      ? []
      : ["--client-cert-auth", "--trusted-ca-file", tls.ca, "--cert-file", tls.cert, "--key-file", tls.key]),
    ...(options.grpcKeepaliveMinTimeMs === undefined
      ? []
      : ["--grpc-keepalive-min-time", `${options.grpcKeepaliveMinTimeMs}ms`]),
  ];
  const [command, args] =
    options.netnsName === undefined
      ? [ETCD_BINARY, etcdArgs]
      : ["ip", ["netns", "exec", options.netnsName, ETCD_BINARY, ...etcdArgs]];

  let child: ChildProcess | undefined;
  let log: WriteStream | undefined;
  const onExit = (): void => {
    if (child?.pid !== undefined && child.exitCode === null) child.kill("SIGKILL");
  };
  process.on("exit", onExit);

  const startServer = async (): Promise<void> => {
    if (child !== undefined) return;
    log = createWriteStream(join(dir, "etcd.log"), { flags: "a" });
    const proc = spawn(command, args, { stdio: ["ignore", "ignore", "pipe"] });
    child = proc;
    let stderrTail = "";
    const ready = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`etcd did not become ready in ${startTimeoutMs} ms:\n${stderrTail}`)),
        startTimeoutMs,
      );
      proc.stderr?.on("data", (d: Buffer) => {
        log?.write(d);
        stderrTail = (stderrTail + d.toString()).slice(-4000);
        // etcd 3.4 logs one of these once its client listener serves requests.
        if (
          /ready to serve client requests|serving client traffic|serving (insecure )?client requests/.test(
            stderrTail,
          )
        ) {
          clearTimeout(timer);
          resolve();
        }
      });
      proc.once("error", (err) => {
        clearTimeout(timer);
        reject(err);
      });
      proc.once("exit", (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`etcd exited (${code ?? signal}) before it was ready:\n${stderrTail}`));
      });
    });
    try {
      await ready;
      await waitHealthy(clientUrl, startTimeoutMs, options.netnsName, tls);
    } catch (err) {
      await stopServer();
      throw err;
    }
  };

  const stopServer = async (): Promise<void> => {
    const proc = child;
    if (proc === undefined) return;
    if (proc.exitCode === null && proc.signalCode === null) {
      const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
      proc.kill("SIGTERM");
      const killTimer = setTimeout(() => proc.kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(killTimer);
    }
    child = undefined;
    await new Promise<void>((resolve) => (log === undefined ? resolve() : log.end(() => resolve())));
    log = undefined;
  };

  const handle: TestEtcd = {
    url: `${tls === undefined ? "etcd" : "etcds"}://${host}:${clientPort}`,
    endpoint: `${host}:${clientPort}`,
    ip,
    clientPort,
    peerPort,
    dataDir,
    get pid() {
      return child?.pid;
    },
    stopServer,
    startServer,
    stop: async () => {
      try {
        await stopServer();
      } finally {
        process.off("exit", onExit);
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };

  try {
    await startServer();
  } catch (err) {
    process.off("exit", onExit);
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return handle;
}

async function health(
  clientUrl: string,
  netnsName: string | undefined,
  tls: EtcdOptions["tls"],
): Promise<string> {
  const url = `${clientUrl}/health`;
  if (tls !== undefined) {
    if (netnsName !== undefined)
      throw new Error("a TLS etcd inside a network namespace is not supported here");
    const agent = {
      ca: readFileSync(tls.ca),
      cert: readFileSync(tls.client.cert),
      key: readFileSync(tls.client.key),
    };
    return await new Promise<string>((resolve, reject) => {
      const req = httpsGet(url, { ...agent, timeout: 1000 }, (res) => {
        let body = "";
        res.on("data", (d: Buffer) => (body += d.toString()));
        res.on("end", () => resolve(body));
        res.on("error", reject);
      });
      req.on("timeout", () => req.destroy(new Error("timed out")));
      req.on("error", reject);
    });
  }
  if (netnsName === undefined) {
    const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
    return await res.text();
  }
  // The namespace's addresses are not reachable from here: ask from inside it.
  const script =
    "fetch(process.argv[1],{signal:AbortSignal.timeout(1000)}).then(r=>r.text()).then(t=>console.log(t),e=>{console.log(String(e));})";
  const { stdout } = await execFileP("ip", ["netns", "exec", netnsName, process.execPath, "-e", script, url]);
  return stdout;
}

async function waitHealthy(
  clientUrl: string,
  timeoutMs: number,
  netnsName: string | undefined,
  tls: EtcdOptions["tls"],
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < deadline) {
    try {
      last = await health(clientUrl, netnsName, tls);
      if ((JSON.parse(last) as { health?: string }).health === "true") return;
    } catch (err) {
      last = `${last} ${String(err)}`;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`etcd at ${clientUrl} not healthy after ${timeoutMs} ms: ${last}`);
}

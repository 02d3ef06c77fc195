#!/usr/bin/env node
/**
 * overlayd: the node agent. Run as root in the node's network namespace, one per node:
 *   overlayd --node NAME --underlay-ip IP [--store URL [--etcd-ca FILE --etcd-cert FILE ...]]
 *            [--socket PATH] [--kubeconfig PATH|in-cluster]
 *   overlayd install-cni | uninstall-cni [...]   (install.ts: the plugin and its conflist)
 */
import { Command, InvalidArgumentError } from "commander";
import { isIPv4 } from "node:net";
import { pino } from "pino";
import { DEFAULT_AGENT_SOCKET } from "./protocol.js";
import { run } from "../process/run.js";
import { etcdTlsFlagsMisused, openStore, storeUrlFromEnv, type Store } from "../store/index.js";
import { addEtcdTlsOptions, etcdTlsFlagsOf, quietIpServernameWarning } from "../store/flags.js";
import { DEFAULT_POLL_US, switchLimits, type Switch } from "../dataplane/switch.js";
import { Agent } from "./agent.js";
import { managementCidrOf } from "./interfaces.js";
import { createMetrics, metricsAddress, serveMetrics } from "./metrics.js";
import { OperatorApi } from "./api.js";
import { ConnectivityEndpoints } from "./conntest.js";
import { IN_CLUSTER, KubeApi } from "./kubeapi.js";
import { INSTALL_COMMANDS, runInstallCommand } from "./install.js";

function ipv4(value: string): string {
  if (!isIPv4(value)) throw new InvalidArgumentError("expected an IPv4 address");
  return value;
}

/** HOST:PORT for the metrics listener, e.g. 0.0.0.0:9464. */
function listenAddress(value: string): { host: string; port: number } {
  const m = /^(.+):(\d{1,5})$/.exec(value);
  const port = m ? Number(m[2]) : NaN;
  if (!m || !isIPv4(m[1] as string) || port < 1 || port > 65535) {
    throw new InvalidArgumentError("expected IPV4:PORT, e.g. 0.0.0.0:9464");
  }
  return { host: m[1] as string, port };
}

/** 1..the switch's own limit (the addon's limits()). */
function workerCount(value: string): number {
  const n = Number(value);
  const max = switchLimits().workers.max;
  if (!Number.isInteger(n) || n < 1 || n > max) throw new InvalidArgumentError(`expected 1..${max}`);
  return n;
}

function pollMicroseconds(value: string): number {
  const n = Number(value);
  const { min, max } = switchLimits().pollUs;
  if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`expected ${min}..${max}`);
  return n;
}

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError("expected a positive integer");
  return n;
}

async function main(): Promise<void> {
  quietIpServernameWarning();
  const sub = process.argv[2];
  if (sub !== undefined && INSTALL_COMMANDS.includes(sub)) {
    process.exitCode = await runInstallCommand(process.argv);
    return;
  }
  const program = new Command().name("overlayd");
  program
    .description("Overlay network node agent: runs the node's VXLAN switch and serves the CNI plugin")
    .requiredOption("--node <name>", "this node's name, unique in the cluster")
    .requiredOption("--underlay-ip <ip>", "this node's underlay IPv4 address (the VTEP)", ipv4)
    .option(
      "--store <url>",
      "cluster store: sqlite:PATH, etcd://HOST:PORT[,...] or etcds://... (TLS: --etcd-* below) (default: $OVERLAY_STORE or the embedded SQLite file)",
    );
  addEtcdTlsOptions(program)
    .option("--socket <path>", "unix socket served to the CNI plugin", DEFAULT_AGENT_SOCKET)
    .option(
      "--management-cidr <cidr>",
      "this node's management network (default: the underlay address's subnet)",
    )
    .option("--workers <n>", "packet threads", workerCount, 2)
    .option("--lease-ttl <seconds>", "node registration lease", positiveInt, 10)
    .option(
      "--gc-grace <seconds>",
      "how long a pod's namespace must stay gone before its address is released",
      positiveInt,
      30,
    )
    .option("--no-offloads", "do not ask TAP devices for TCP super-frames")
    .option(
      "--poll-us <us>",
      "bound of the packet threads' adaptive poll window after traffic, microseconds; 0 = off",
      pollMicroseconds,
      DEFAULT_POLL_US,
    )
    .option(
      "--metrics-listen <ip:port>",
      "serve Prometheus metrics at http://IP:PORT/metrics and the operator API for dctl (default: off)",
      listenAddress,
    )
    .option(
      "--kubeconfig <path>",
      `follow the Kubernetes API (namespaces, pod annotations): a kubeconfig file, or "${IN_CLUSTER}" for the pod's service account (default: no Kubernetes)`,
    )
    .option("--log-level <level>", "trace, debug, info, warn, error", "info")
    .addHelpText("after", "\nSubcommands: overlayd install-cni --help, overlayd uninstall-cni --help")
    .parse();
  const o = program.opts<{
    node: string;
    underlayIp: string;
    store?: string;
    socket: string;
    managementCidr?: string;
    workers: number;
    leaseTtl: number;
    gcGrace: number;
    offloads: boolean;
    pollUs: number;
    metricsListen?: { host: string; port: number };
    kubeconfig?: string;
    logLevel: string;
  }>();
  const storeUrl = o.store ?? storeUrlFromEnv();
  const etcd = etcdTlsFlagsOf(program.opts());
  // Flags that the store would ignore are a usage error (exit 1, as commander's own).
  const misused = etcdTlsFlagsMisused(storeUrl, etcd);
  if (misused !== undefined) program.error(`error: ${misused}`);
  const logger = pino({ level: o.logLevel, base: { node: o.node } });
  if (process.getuid?.() !== 0) logger.warn("not running as root: creating TAP devices will fail");

  const addrs = await run("ip", ["-j", "-4", "addr", "show"], { allowFailure: true });
  const local = addrs.code === 0 ? managementCidrOf(addrs.stdout, o.underlayIp) : undefined;
  if (!local) {
    logger.error(
      { underlayIp: o.underlayIp },
      "no interface in this network namespace has the underlay address",
    );
    process.exit(1);
  }
  let kubernetes: KubeApi | undefined;
  try {
    kubernetes = o.kubeconfig === undefined ? undefined : KubeApi.load(o.kubeconfig);
  } catch (err) {
    logger.error(
      { kubeconfig: o.kubeconfig, err: err instanceof Error ? err.message : String(err) },
      "cannot load the Kubernetes credentials",
    );
    process.exit(1);
  }
  if (kubernetes) logger.info({ server: kubernetes.server }, "following the Kubernetes API");
  let store: Store;
  try {
    store = await openStore(storeUrl, { etcd });
  } catch (err) {
    // A bad URL, or an etcds:// certificate file that cannot be read or is out of date.
    logger.error(
      { err: err instanceof Error ? err.message : String(err), store: storeUrl },
      "cannot open the store",
    );
    process.exit(1);
  }
  const agent = new Agent({
    node: o.node,
    underlayIp: o.underlayIp,
    store,
    socketPath: o.socket,
    logger,
    managementCidr: o.managementCidr ?? local.cidr,
    underlayMtu: local.mtu,
    workers: o.workers,
    offloads: o.offloads,
    pollUs: o.pollUs,
    leaseTtlSeconds: o.leaseTtl,
    gcGraceMs: o.gcGrace * 1000,
    kubernetes,
  });
  // Metrics, the operator API and its connectivity test endpoints, with --metrics-listen.
  let api: OperatorApi | undefined;
  let tests: ConnectivityEndpoints | undefined;
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "stopping");
    void (tests?.stop() ?? Promise.resolve())
      .then(() => agent.stop())
      .then(() => store.close())
      .finally(() => process.exit(0));
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
  // Metrics and the operator API (api.ts) listen before the agent registers, so that the node
  // record can say where: the listening address, or the underlay address for 0.0.0.0.
  if (o.metricsListen) {
    tests = new ConnectivityEndpoints({
      handle: (req) => agent.handle(req),
      podMtu: agent.podMtu,
      log: logger,
    });
    const registry = createMetrics({
      state: () => agent.state(),
      counters: () => agent.dataplane?.counters(),
      onRequestDone: (listener) => agent.onRequestDone(listener),
    });
    api = new OperatorApi({
      state: () => agent.state(),
      inspection: () => agent.inspection(),
      // The real switch (no fakes here), which the API inspects beyond AgentSwitch.
      dataplane: () => agent.dataplane as Switch | undefined,
      connectivity: () => (agent.isReady ? tests : undefined),
    });
    try {
      const ready = (): boolean => {
        const s = agent.state();
        return s.ready && s.following;
      };
      const server = await serveMetrics(registry, o.metricsListen.host, o.metricsListen.port, api, ready);
      server.unref();
      const { host, port } = o.metricsListen;
      agent.setApiAddress(`${host === "0.0.0.0" ? o.underlayIp : host}:${port}`);
      logger.info({ address: metricsAddress(server) }, "metrics and the operator API served");
    } catch (err) {
      // The network works without metrics: say so, and go on.
      logger.error({ err: String(err) }, "cannot serve metrics");
    }
  }
  try {
    await agent.start();
  } catch (err) {
    logger.error(
      { err: err instanceof Error ? err.message : String(err), store: storeUrl },
      "agent failed to start",
    );
    await agent.stop().catch(() => undefined);
    await store.close().catch(() => undefined);
    process.exit(1);
  }
  api?.start();
  tests?.start();
}

void main();

/**
 * The node agent: its lifecycle, and the rooms it is built of.
 *
 *   lease.ts      the node's registration, renewed under a lease
 *   view.ts       the cluster's records, listed then watched, held in cluster.ts's index
 *   reconcile.ts  the switch brought to what the records say (desired.ts: the rules), per change
 *   requests.ts   CNI ADD, DEL, CHECK, STATUS, GC; the plugin's calls reach them through the
 *                 socket (server.ts) and the CNI layer (src/cni/plugin.ts)
 *   ports.ts      this node's pods as switch ports, and the lock that orders changes to them
 *   gateways.ts   the node's gateway ports and masquerade
 *   orphans.ts    pods whose namespace vanished without a DEL
 *   gc.ts         nodes that departed
 *   plumbing.ts   addresses, routes and shapers inside pods and on the node
 *   kubernetes.ts namespaces from the Kubernetes API (with --kubeconfig; kubeapi.ts the client)
 *
 * Restart: pod TAPs are persistent; a new agent finds its node's endpoints in the store and
 * re-attaches their devices, so pods keep their interface, address and MAC.
 *
 * Just past 400 lines: this file is only the wiring of those rooms and the order of start and
 * stop (and the state the metrics and the operator API read); the work is in the rooms.
 */
import type { Logger } from "pino";
import { Switch, VXLAN_OVERHEAD, type SwitchOptions } from "../dataplane/switch.js";
import type { EndpointRecord, Offload } from "../model/records.js";
import type { Store } from "../store/store.js";
import { DepartedNodeGc } from "./gc.js";
import { Gateways } from "./gateways.js";
import { NodeLease } from "./lease.js";
import { OrphanCollector } from "./orphans.js";
import { hostPlumbing, type Plumbing } from "./plumbing.js";
import { PodPorts, type AgentSwitch } from "./ports.js";
import type { AgentRequest, AgentResponse } from "./protocol.js";
import { Reconciler } from "./reconcile.js";
import { CniRequests } from "./requests.js";
import { AgentServer } from "./server.js";
import { runPlugin } from "../cni/plugin.js";
import type { ClusterRecords, RecordChange } from "./cluster.js";
import { ClusterView } from "./view.js";
import type { KubeApi } from "./kubeapi.js";
import { NamespaceSync } from "./kubernetes.js";

/** How often, about, everything is compared again under the per-event updates (a safety net). */
const RESYNC_MS = 5 * 60_000;

export interface AgentOptions {
  node: string;
  underlayIp: string;
  store: Store;
  socketPath: string;
  logger: Logger;
  managementCidr?: string;
  underlayMtu?: number;
  workers?: number;
  offloads?: boolean;
  /** The switch's adaptive poll window bound, microseconds (SwitchOptions.pollUs); 0 = off. */
  pollUs?: number;
  leaseTtlSeconds?: number;
  /** How long to wait after a change before reprogramming, to batch bursts of events. */
  debounceMs?: number;
  /** How long a local pod's namespace must stay gone before its address is released. */
  gcGraceMs?: number;
  /**
   * The Kubernetes API: namespace records follow the cluster's namespaces (kubernetes.ts), and a
   * pod's annotation is read from it when the runtime passes none. Absent: no Kubernetes.
   */
  kubernetes?: KubeApi;
  /** Bound on reading a pod from the Kubernetes API during an ADD. Default 5 s. */
  podReadTimeoutMs?: number;
}

/** The agent's side effects beyond the store; the defaults are the real switch and host. */
export interface AgentDeps {
  createSwitch(options: SwitchOptions): AgentSwitch;
  plumbing: Plumbing;
}

const realDeps: AgentDeps = { createSwitch: (o) => new Switch(o), plumbing: hostPlumbing };

export interface AgentStatus {
  /** Serving CNI ADD: the switch is programmed and the socket is listening. */
  ready: boolean;
  /** Following the cluster store now: listed, and the watch is open (view.ts). */
  following: boolean;
  /** Failed listings and watches of the store since start. */
  storeTroubles: number;
  remoteEndpoints: number;
  peers: number;
  /** Switch ports: pods ("namespace/pod") and the node's gateway ports (by device name). */
  ports: { id: number; kind: "pod" | "gateway"; name: string; network: string }[];
  offloads: Offload[];
  /** The switch's adaptive poll window bound, microseconds; 0 when off or not running. */
  pollUs: number;
}

export interface AgentInspection {
  node: string;
  /** The cluster as the agent follows it; undefined before start. */
  records: ClusterRecords | undefined;
  pods: { id: number; vni: number; endpoint: EndpointRecord }[];
  leaseRenewedAt: number | undefined;
  leaseTtlSeconds: number;
}

export class Agent {
  private readonly log: Logger;
  private readonly deps: AgentDeps;
  private sw: AgentSwitch | undefined;
  private view: ClusterView | undefined;
  private server: AgentServer | undefined;
  private readonly lease: NodeLease;
  private readonly ports: PodPorts;
  private readonly gateways: Gateways;
  private readonly reconciler: Reconciler;
  private readonly requests: CniRequests;
  private reconcileTimer: NodeJS.Timeout | undefined;
  private localTimer: NodeJS.Timeout | undefined;
  private resyncTimer: NodeJS.Timeout | undefined;
  /** Record changes not yet applied, and whether a resync or this node's side is wanted. */
  private pending: RecordChange[] = [];
  private resyncWanted = false;
  private localWanted = false;
  private departed: DepartedNodeGc | undefined;
  private namespaceSync: NamespaceSync | undefined;
  private readonly gcGraceMs: number;
  private ready = false;
  private stopped = false;
  private apiAddress: string | undefined;
  private readonly requestListeners: ((op: string, seconds: number, ok: boolean) => void)[] = [];
  readonly podMtu: number;

  constructor(
    private readonly opts: AgentOptions,
    deps: Partial<AgentDeps> = {},
  ) {
    this.log = opts.logger;
    this.deps = { ...realDeps, ...deps };
    this.podMtu = (opts.underlayMtu ?? 1500) - VXLAN_OVERHEAD;
    this.gcGraceMs = opts.gcGraceMs ?? 30_000;
    const { store } = opts;
    const { plumbing } = this.deps;
    this.ports = new PodPorts(this.podMtu);
    this.gateways = new Gateways(plumbing, this.log, this.podMtu);
    this.lease = new NodeLease(
      store,
      opts.leaseTtlSeconds ?? 10,
      () => ({
        name: opts.node,
        underlayIp: opts.underlayIp,
        managementCidr: opts.managementCidr,
        offloads: this.offloads(),
        pollUs: this.sw?.features().pollUs,
        ...(this.apiAddress === undefined ? {} : { apiAddress: this.apiAddress }),
      }),
      this.log,
    );
    this.reconciler = new Reconciler({
      node: opts.node,
      store,
      plumbing,
      ports: this.ports,
      gateways: this.gateways,
      orphans: new OrphanCollector(store, plumbing, this.ports, this.log, this.gcGraceMs),
      log: this.log,
    });
    this.requests = new CniRequests({
      node: opts.node,
      store,
      ports: this.ports,
      plumbing,
      podMtu: this.podMtu,
      log: this.log,
      ready: () => this.ready,
      dataplane: () => this.sw,
      records: () => this.view?.records,
      following: () => this.view?.healthy ?? false,
      changed: () => {
        this.localWanted = true;
        this.schedule();
      },
      ...(opts.kubernetes === undefined
        ? {}
        : {
            podAnnotations: (namespace: string, pod: string) =>
              (opts.kubernetes as KubeApi).podAnnotations(namespace, pod, opts.podReadTimeoutMs ?? 5000),
          }),
    });
  }

  get isReady(): boolean {
    return this.ready;
  }

  /** The switch, for metrics; undefined before start and after stop. */
  get dataplane(): AgentSwitch | undefined {
    return this.sw;
  }

  /** Publishes where the operator API is served (IPV4:PORT) in the node record; before start. */
  setApiAddress(address: string): void {
    this.apiAddress = address;
  }

  /** What the operator API (api.ts) reads besides state(): the records, this node's pods, the lease. */
  inspection(): AgentInspection {
    const pods: AgentInspection["pods"] = [];
    for (const [, p] of this.ports.all()) pods.push({ id: p.id, vni: p.vni, endpoint: p.endpoint });
    return {
      node: this.opts.node,
      records: this.view?.records,
      pods,
      leaseRenewedAt: this.lease.renewedAt,
      leaseTtlSeconds: this.opts.leaseTtlSeconds ?? 10,
    };
  }

  /** What the agent has programmed, for metrics; read on demand, never on the packet path. */
  state(): AgentStatus {
    const ports: AgentStatus["ports"] = [];
    for (const [, p] of this.ports.all()) {
      ports.push({
        id: p.id,
        kind: "pod",
        name: `${p.endpoint.namespace}/${p.endpoint.pod}`,
        network: p.endpoint.network,
      });
    }
    for (const g of this.gateways.all()) ports.push({ id: g.id, kind: "gateway", name: g.name, network: "" });
    return {
      ready: this.ready,
      following: this.view?.healthy ?? false,
      storeTroubles: this.view?.troubles ?? 0,
      remoteEndpoints: this.reconciler.remoteCount,
      peers: this.reconciler.peerCount,
      ports,
      offloads: this.offloads(),
      pollUs: this.sw?.features().pollUs ?? 0,
    };
  }

  async start(): Promise<void> {
    const o = this.opts;
    this.sw = this.deps.createSwitch({
      underlayIp: o.underlayIp,
      underlayMtu: o.underlayMtu ?? 1500,
      workers: o.workers ?? 2,
      offloads: o.offloads ?? true,
      ...(o.pollUs === undefined ? {} : { pollUs: o.pollUs }),
    });
    this.log.info({ features: this.sw.features() }, "switch started");
    await this.lease.register();
    this.view = new ClusterView(
      o.store,
      {
        onChange: (changes) => {
          this.pending.push(...changes);
          this.schedule();
          this.namespaceSync?.storeChanged(changes);
        },
        onResync: () => {
          this.resyncWanted = true;
          this.schedule();
        },
        onProblem: (p) => this.log.warn({ key: p.key, problem: p.problem }, "skipping invalid record"),
        onReset: (reason) => this.log.warn({ reason }, "store watch reset; re-listing"),
        onTrouble: (what, err, retryInMs) => {
          const detail = { what, err: err instanceof Error ? err.message : String(err), retryInMs };
          // A listing that fails leaves the agent deaf: an error. A broken watch resumes by itself.
          if (what === "list")
            this.log.error(detail, "cannot list the cluster store: changes are not applied until it can");
          else this.log.warn(detail, "store watch broken: changes may be late until it resumes");
        },
      },
      o.node,
    );
    await this.view.start();
    await this.reconcile();
    if (o.kubernetes !== undefined) {
      this.namespaceSync = new NamespaceSync({ api: o.kubernetes, store: o.store, log: this.log });
      this.namespaceSync.start();
    }
    this.departed = new DepartedNodeGc({
      store: o.store,
      self: o.node,
      logger: this.log,
      // Twice the lease TTL: a registration gone that long is a node gone, not a slow renewal.
      graceMs: 2 * 1000 * (o.leaseTtlSeconds ?? 10),
    });
    this.departed.start(() => this.view?.records);
    this.server = new AgentServer(o.socketPath, (call) =>
      runPlugin(call, { handle: (req) => this.handle(req) }),
    );
    await this.server.listen();
    this.ready = true;
    // Pod namespaces vanish without store events: look at this node's pods now and then.
    this.localTimer = setInterval(
      () => {
        this.localWanted = true;
        this.schedule();
      },
      Math.min(10_000, Math.max(500, this.gcGraceMs / 2)),
    );
    this.localTimer.unref();
    // A safety net under the per-event updates: everything compared again, now and then.
    const resyncEvery = () => RESYNC_MS * (0.75 + Math.random() / 2);
    const resync = (): void => {
      this.resyncTimer = setTimeout(() => {
        this.resyncWanted = true;
        this.schedule();
        resync();
      }, resyncEvery());
      this.resyncTimer.unref();
    };
    resync();
    this.log.info({ socket: o.socketPath, node: o.node }, "agent ready");
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.ready = false;
    this.lease.stop();
    clearTimeout(this.reconcileTimer);
    clearInterval(this.localTimer);
    clearTimeout(this.resyncTimer);
    await this.departed?.stop();
    await this.namespaceSync?.stop();
    await this.server?.close();
    await this.view?.close();
    await this.ports.lock.run(async () => {
      // Ports are persistent: closing the switch leaves pod devices in place for the next agent.
      this.sw?.close();
      this.sw = undefined;
    });
    this.log.info("agent stopped");
  }

  /** A CNI request from the plugin (requests.ts), timed for the listeners of onRequestDone. */
  async handle(req: AgentRequest): Promise<AgentResponse> {
    const started = performance.now();
    let ok = false;
    try {
      const res = await this.requests.handle(req);
      ok = res.ok;
      return res;
    } finally {
      const seconds = (performance.now() - started) / 1000;
      for (const l of this.requestListeners) l(req.op, seconds, ok);
    }
  }

  /** Calls `listener` as each CNI request is answered: its op, how long it took, success (metrics). */
  onRequestDone(listener: (op: string, seconds: number, ok: boolean) => void): void {
    this.requestListeners.push(listener);
  }

  /** Brings the switch to what the current view says, all of it (reconcile.ts resync). */
  reconcile(): Promise<void> {
    return this.ports.lock.run(async () => {
      const sw = this.sw;
      if (!sw || !this.view) return;
      this.pending = [];
      this.resyncWanted = false;
      await this.reconciler.resync(sw, this.view.records);
    });
  }

  /** Applies what is wanted (a resync, the pending changes, or this node's side) soon, in one go. */
  private schedule(): void {
    if (this.stopped || this.reconcileTimer) return;
    this.reconcileTimer = setTimeout(() => {
      this.reconcileTimer = undefined;
      this.flush().catch((err: unknown) => this.log.error({ err: String(err) }, "reconcile failed"));
    }, this.opts.debounceMs ?? 10);
  }

  private flush(): Promise<void> {
    return this.ports.lock.run(async () => {
      const sw = this.sw;
      if (!sw || !this.view) return;
      const c = this.view.records;
      const changes = this.pending;
      const resync = this.resyncWanted;
      const local = this.localWanted;
      this.pending = [];
      this.resyncWanted = false;
      this.localWanted = false;
      if (resync) await this.reconciler.resync(sw, c);
      else if (changes.length > 0) await this.reconciler.update(sw, c, changes);
      else if (local) await this.reconciler.local(sw, c);
    });
  }

  /** What the switch found and uses, as the node record reports it (dctl node list). */
  private offloads(): Offload[] {
    const f = this.sw?.features();
    if (!f) return [];
    const all: [boolean, Offload][] = [
      [f.tso, "tso"],
      [f.uso, "uso"],
      [f.udpGso, "udp-gso"],
      [f.udpGro, "udp-gro"],
      [f.multiQueue, "multi-queue"],
    ];
    return all.filter(([on]) => on).map(([, name]) => name);
  }
}

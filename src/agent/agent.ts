/**
 * The node agent. It registers its node under a lease, runs the node's switch, keeps the
 * switch's tables equal to what the cluster's records say (ClusterView -> desiredState -> the
 * switch), and plumbs pods for the CNI plugin.
 *
 * Restart: pod TAPs are persistent; a new agent finds its node's endpoints in the store and
 * re-attaches their devices, so pods keep their interface, address and MAC.
 * Stop: the lease is left to lapse rather than revoked, so a restart within its TTL is not seen
 * by peers as the node leaving.
 */
import type { Logger } from "pino";
import { existsSync } from "node:fs";
import { CNI_ERR, type AgentRequest, type AgentResponse, type AttachmentResult } from "./protocol.js";
import { Switch, VXLAN_OVERHEAD, type RemoteEndpoint } from "../dataplane/switch.js";
import { createEndpoint, deleteEndpoint, DEFAULT_IFNAME } from "../model/endpoints.js";
import { formatIpv4, parseCidr, parseIpv4 } from "../model/ipv4.js";
import { endpointKey } from "../model/keys.js";
import { GLOBAL_VNI, namespaceVni } from "../model/namespaces.js";
import { ensureNodeBlock } from "../model/ipam.js";
import { registerNode } from "../model/nodes.js";
import { getPerfTier } from "../model/perftier.js";
import { parseEndpoint, type EndpointRecord, type Offload } from "../model/records.js";
import type { Lease, Store } from "../store/store.js";
import { desiredState, endpointId, type DesiredState, type GatewayPort } from "./desired.js";
import { toAgentError } from "./errors.js";
import { DepartedNodeGc } from "./gc.js";
import {
  configureGateway,
  configureMasquerade,
  configurePod,
  inspectPod,
  netnsExists,
  removeMasquerade,
  removePodIngress,
  shapePodIngress,
} from "./plumbing.js";
import { AgentServer } from "./server.js";
import { ClusterView } from "./view.js";

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
  leaseTtlSeconds?: number;
  /** How long to wait after a change before reprogramming, to batch bursts of events. */
  debounceMs?: number;
  /** How long a local pod's namespace must stay gone before its address is released. */
  gcGraceMs?: number;
}

/** ADD and CHECK requests: the ones that name the pod and its namespace. */
type AttachRequest = Extract<AgentRequest, { podName: string; netns: string }>;

export interface AgentStatus {
  /** Serving CNI ADD: the switch is programmed and the socket is listening. */
  ready: boolean;
  remoteEndpoints: number;
  peers: number;
  /** Switch ports: pods ("namespace/pod") and the node's gateway ports (by device name). */
  ports: { id: number; kind: "pod" | "gateway"; name: string; network: string }[];
  offloads: Offload[];
}

interface LocalPort {
  id: number;
  vni: number;
  endpoint: EndpointRecord;
}

/** Serialises the sections that touch the switch and the port maps. */
class Mutex {
  private tail: Promise<unknown> = Promise.resolve();
  run<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.tail.then(fn, fn);
    this.tail = next.catch(() => undefined);
    return next;
  }
}

/** A tier's cap in bit/s, 0 for none or for a tier this agent does not know. */
function tierRate(name: string): number {
  try {
    return getPerfTier(name).maxBitsPerSecond ?? 0;
  } catch {
    return 0;
  }
}

/** Name of the gateway port for a block: "ovgw" and the block's third and fourth octet in hex. */
export function gatewayPortName(block: string): string {
  const cidr = parseCidr(block);
  const low = cidr ? cidr.address & 0xffff : 0;
  return `ovgw${low.toString(16).padStart(4, "0")}`;
}

export class Agent {
  private readonly log: Logger;
  private readonly store: Store;
  private sw: Switch | undefined;
  private view: ClusterView | undefined;
  private server: AgentServer | undefined;
  private lease: Lease | undefined;
  private keepAliveTimer: NodeJS.Timeout | undefined;
  private reconcileTimer: NodeJS.Timeout | undefined;
  private readonly lock = new Mutex();
  private readonly ports = new Map<string, LocalPort>();
  private readonly gateways = new Map<string, { id: number; name: string }>();
  private readonly adding = new Set<string>();
  private programmedPeers = "";
  private programmedRemotes = "";
  private programmedPeerCount = 0;
  private programmedRemoteCount = 0;
  /** Subnet masqueraded by this node's nftables table; "" none; undefined unknown (a table may be left from an earlier run). */
  private masqueraded: string | undefined = undefined;
  private readonly claimed = new Set<string>();
  /** Local endpoints whose pod namespace was found missing, and since when. */
  private readonly orphanSince = new Map<string, number>();
  private periodicTimer: NodeJS.Timeout | undefined;
  private readonly gcGraceMs: number;
  private departed: DepartedNodeGc | undefined;
  private ready = false;
  private stopped = false;
  readonly podMtu: number;

  constructor(private readonly opts: AgentOptions) {
    this.log = opts.logger;
    this.store = opts.store;
    this.podMtu = (opts.underlayMtu ?? 1500) - VXLAN_OVERHEAD;
    this.gcGraceMs = opts.gcGraceMs ?? 30_000;
  }

  get isReady(): boolean {
    return this.ready;
  }

  /** What the agent has programmed, for metrics; read on demand, never on the packet path. */
  state(): AgentStatus {
    const ports: AgentStatus["ports"] = [];
    for (const p of this.ports.values()) {
      ports.push({
        id: p.id,
        kind: "pod",
        name: `${p.endpoint.namespace}/${p.endpoint.pod}`,
        network: p.endpoint.network,
      });
    }
    for (const g of this.gateways.values())
      ports.push({ id: g.id, kind: "gateway", name: g.name, network: "" });
    return {
      ready: this.ready,
      remoteEndpoints: this.programmedRemoteCount,
      peers: this.programmedPeerCount,
      ports,
      offloads: this.offloads(),
    };
  }

  get dataplane(): Switch | undefined {
    return this.sw;
  }

  async start(): Promise<void> {
    const o = this.opts;
    this.sw = new Switch({
      underlayIp: o.underlayIp,
      underlayMtu: o.underlayMtu ?? 1500,
      workers: o.workers ?? 2,
      offloads: o.offloads ?? true,
    });
    this.log.info({ features: this.sw.features() }, "switch started");
    this.sw.setGlobalVnis([GLOBAL_VNI]);
    await this.register();
    this.view = new ClusterView(this.store, {
      onChange: () => this.scheduleReconcile(),
      onProblem: (p) => this.log.warn({ key: p.key, problem: p.problem }, "skipping invalid record"),
      onReset: (reason) => this.log.warn({ reason }, "store watch reset; re-listing"),
    });
    await this.view.start();
    await this.reconcile();
    this.startDepartedNodeGc();
    this.server = new AgentServer(o.socketPath, (req) => this.handle(req));
    await this.server.listen();
    this.ready = true;
    // Pod namespaces vanish without store events: look again now and then.
    this.periodicTimer = setInterval(
      () => this.scheduleReconcile(),
      Math.min(10_000, Math.max(500, this.gcGraceMs / 2)),
    );
    this.periodicTimer.unref();
    this.log.info({ socket: o.socketPath, node: o.node }, "agent ready");
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.ready = false;
    clearInterval(this.keepAliveTimer);
    clearTimeout(this.reconcileTimer);
    clearInterval(this.periodicTimer);
    await this.departed?.stop();
    await this.server?.close();
    await this.view?.close();
    await this.lock.run(async () => {
      // Ports are persistent: closing the switch leaves pod devices in place for the next agent.
      this.sw?.close();
      this.sw = undefined;
    });
    this.log.info("agent stopped");
  }

  // ---- node registration ------------------------------------------------------------------

  private async register(): Promise<void> {
    const ttl = this.opts.leaseTtlSeconds ?? 10;
    this.lease = await this.store.grantLease(ttl);
    await registerNode(
      this.store,
      {
        name: this.opts.node,
        underlayIp: this.opts.underlayIp,
        managementCidr: this.opts.managementCidr,
        offloads: this.offloads(),
      },
      this.lease.id,
    );
    clearInterval(this.keepAliveTimer);
    this.keepAliveTimer = setInterval(() => void this.keepAlive(), Math.max(1000, (ttl * 1000) / 3));
    this.keepAliveTimer.unref();
  }

  private async keepAlive(): Promise<void> {
    try {
      const alive = (await this.lease?.keepAlive()) ?? false;
      if (!alive && !this.stopped) {
        this.log.warn("node lease lapsed; registering again");
        await this.register();
      }
    } catch (err) {
      this.log.warn({ err: String(err) }, "cannot renew node lease");
    }
  }

  /** Departed nodes (registration gone for twice the lease TTL) lose their addresses: see gc.ts. */
  private startDepartedNodeGc(): void {
    const graceMs = 2 * 1000 * (this.opts.leaseTtlSeconds ?? 10);
    this.departed = new DepartedNodeGc({
      store: this.store,
      self: this.opts.node,
      logger: this.log,
      graceMs,
    });
    this.departed.start(() => this.view?.snapshot());
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

  // ---- tables ------------------------------------------------------------------------------

  private scheduleReconcile(): void {
    if (this.stopped || this.reconcileTimer) return;
    this.reconcileTimer = setTimeout(() => {
      this.reconcileTimer = undefined;
      this.reconcile().catch((err: unknown) => this.log.error({ err: String(err) }, "reconcile failed"));
    }, this.opts.debounceMs ?? 10);
  }

  /** Brings the switch to the desired state computed from the current view. */
  reconcile(): Promise<void> {
    return this.lock.run(async () => {
      const sw = this.sw;
      if (!sw || !this.view) return;
      const d = desiredState(this.view.snapshot(), this.opts.node);
      const peers = JSON.stringify(d.peers);
      if (peers !== this.programmedPeers) {
        sw.setPeers(d.peers.map((ip) => ({ ip })));
        this.programmedPeers = peers;
        this.programmedPeerCount = d.peers.length;
        this.log.info({ peers: d.peers }, "peers programmed");
      }
      const remotes = JSON.stringify(d.remotes);
      if (remotes !== this.programmedRemotes) {
        sw.replaceRemotes(d.remotes as RemoteEndpoint[]);
        this.programmedRemotes = remotes;
        this.programmedRemoteCount = d.remotes.length;
        this.log.debug({ count: d.remotes.length }, "remote endpoints programmed");
      }
      await this.reconcileGateways(sw, d.gateways);
      await this.reconcileLocal(sw, d);
      await this.claimBlocks(d);
    });
  }

  /**
   * Takes a block of every network this node has none of yet, so its gateway (the node's own
   * address on the overlay) exists before the first pod. The claim's watch event brings the
   * gateway port up in the next reconcile.
   */
  private async claimBlocks(d: DesiredState): Promise<void> {
    for (const net of d.networksWithoutBlock) {
      if (this.claimed.has(net)) continue;
      this.claimed.add(net);
      try {
        await ensureNodeBlock(this.store, net, this.opts.node);
      } catch (err) {
        this.claimed.delete(net);
        this.log.warn({ network: net, err: String(err) }, "cannot claim an address block yet");
      }
    }
  }

  private async reconcileGateways(sw: Switch, wanted: GatewayPort[]): Promise<void> {
    for (const [block, gw] of this.gateways) {
      if (wanted.some((g) => g.block === block)) continue;
      sw.removePort(gw.id, { destroy: true });
      this.gateways.delete(block);
    }
    if (wanted.length === 0 && this.masqueraded !== "") await this.unmasquerade();
    for (const [i, g] of wanted.entries()) {
      if (this.gateways.has(g.block)) continue;
      const name = gatewayPortName(g.block);
      try {
        const id = sw.addPort({
          name,
          kind: "host",
          vni: GLOBAL_VNI,
          mac: g.mac,
          ipv4: g.ip,
          persistent: true,
          mtu: this.podMtu,
        });
        const prefix = parseCidr(g.subnet)?.prefixLength ?? 16;
        await configureGateway(name, g.ip, prefix, i === 0);
        this.gateways.set(g.block, { id, name });
        if (i === 0) await this.masquerade(g.subnet);
        this.log.info({ block: g.block, gateway: g.ip, port: name }, "gateway port up");
      } catch (err) {
        this.log.error({ block: g.block, err: String(err) }, "cannot create gateway port");
      }
    }
  }

  private async masquerade(subnet: string): Promise<void> {
    if (this.masqueraded === subnet) return;
    try {
      await configureMasquerade(subnet);
      this.masqueraded = subnet;
      this.log.info({ subnet }, "pods reach beyond the overlay through this node (masquerade)");
    } catch (err) {
      this.log.warn(
        { err: String(err) },
        "masquerade not configured: pods reach only the overlay and this node",
      );
    }
  }

  /** The network is gone from this node: its masquerade rule goes too. */
  private async unmasquerade(): Promise<void> {
    try {
      await removeMasquerade();
      if (this.masqueraded)
        this.log.info({ subnet: this.masqueraded }, "masquerade removed: no overlay on this node");
    } catch (err) {
      this.log.warn({ err: String(err) }, "cannot remove the masquerade table (nftables)");
    }
    this.masqueraded = "";
  }

  private async reconcileLocal(sw: Switch, d: DesiredState): Promise<void> {
    const wanted = new Map(d.localEndpoints.map((e) => [endpointId(e), e]));
    // Ports whose endpoint is gone from the store (deleted elsewhere, or by GC): detach. The store
    // is asked directly, so an endpoint that was just created and is not yet in the view stays.
    for (const [id, port] of this.ports) {
      if (wanted.has(id) || this.adding.has(id)) continue;
      const e = port.endpoint;
      const kv = await this.store
        .get(endpointKey(e.network, e.namespace, e.pod))
        .catch(() => "unknown" as const);
      if (kv === "unknown") continue;
      const current = kv ? parseEndpoint(kv) : undefined;
      if (current?.ok && current.value.containerId === e.containerId) continue;
      sw.removePort(port.id, { destroy: true });
      this.ports.delete(id);
      this.log.info({ endpoint: id }, "port removed: endpoint no longer in the store");
    }
    const now = Date.now();
    for (const id of this.orphanSince.keys()) if (!wanted.has(id)) this.orphanSince.delete(id);
    for (const [id, e] of wanted) {
      if (!this.adding.has(id) && !netnsExists(e.netns)) {
        await this.collectOrphan(sw, id, e, now);
        continue;
      }
      this.orphanSince.delete(id);
      const port = this.ports.get(id);
      const vni = d.localVnis.get(id);
      if (port) {
        if (vni !== undefined && vni !== port.vni) {
          sw.setPortVni(port.id, vni);
          this.log.info({ endpoint: id, from: port.vni, to: vni }, "port moved to another VNI");
          port.vni = vni;
        }
        continue;
      }
      if (this.adding.has(id) || vni === undefined) continue;
      // A pod of this node without a port: the agent restarted. Re-attach its device.
      try {
        this.attach(sw, e, vni);
        await configurePod({
          netns: e.netns,
          ifname: e.ifname,
          ip: e.ip,
          prefixLength: e.prefixLength,
          gateway: e.gateway,
        });
        this.log.info({ endpoint: id }, "re-attached pod");
      } catch (err) {
        this.log.error({ endpoint: id, err: String(err) }, "cannot re-attach pod");
      }
    }
  }

  /**
   * A pod of this node whose network namespace is gone, with no CNI DEL (the runtime or the agent
   * died mid-operation, or the sandbox was removed by hand). After a grace period, and checking
   * again just before, its endpoint and address are released (only if the same container still
   * holds them) and its port detached.
   */
  private async collectOrphan(sw: Switch, id: string, e: EndpointRecord, now: number): Promise<void> {
    const since = this.orphanSince.get(id);
    if (since === undefined) {
      this.orphanSince.set(id, now);
      this.log.warn({ endpoint: id, netns: e.netns, graceMs: this.gcGraceMs }, "pod namespace is gone");
      return;
    }
    if (now - since < this.gcGraceMs || netnsExists(e.netns)) return;
    try {
      await deleteEndpoint(this.store, {
        network: e.network,
        namespace: e.namespace,
        pod: e.pod,
        containerId: e.containerId,
      });
    } catch (err) {
      this.log.warn({ endpoint: id, err: String(err) }, "cannot release the endpoint of a vanished pod yet");
      return;
    }
    const port = this.ports.get(id);
    if (port) {
      sw.removePort(port.id, { destroy: true });
      this.ports.delete(id);
    }
    this.orphanSince.delete(id);
    this.log.info(
      { endpoint: id, ip: e.ip, container: e.containerId },
      "released the address of a vanished pod",
    );
  }

  private attach(sw: Switch, e: EndpointRecord, vni: number): LocalPort {
    const tier = getPerfTier(e.tier);
    const id = sw.addPort({
      name: e.ifname,
      netns: e.netns,
      vni,
      mac: e.mac,
      ipv4: e.ip,
      persistent: true,
      mtu: this.podMtu,
      rateBitsPerSec: tier.maxBitsPerSecond ?? 0,
    });
    const port = { id, vni, endpoint: e };
    this.ports.set(endpointId(e), port);
    return port;
  }

  // ---- CNI requests ------------------------------------------------------------------------

  async handle(req: AgentRequest): Promise<AgentResponse> {
    try {
      switch (req.op) {
        case "ADD":
          return await this.add(req);
        case "DEL":
          return await this.del(req.containerId, req.ifName);
        case "CHECK":
          return await this.check(req.containerId, req.ifName);
        case "STATUS":
          return await this.status();
        case "GC":
          return await this.gc(req.valid);
      }
    } catch (err) {
      const error = toAgentError(err);
      this.log.warn({ op: req.op, error }, "request failed");
      return { ok: false, error };
    }
  }

  private result(e: EndpointRecord, netns: string): AttachmentResult {
    return {
      interfaces: [{ name: e.ifname, mac: e.mac, sandbox: netns, mtu: this.podMtu }],
      ips: [{ address: `${e.ip}/${e.prefixLength}`, gateway: e.gateway, interface: 0 }],
      routes: [{ dst: "0.0.0.0/0", gw: e.gateway }],
      dns: {},
    };
  }

  private async add(req: AttachRequest): Promise<AgentResponse> {
    if (!this.ready) return { ok: false, error: { code: CNI_ERR.tryAgainLater, msg: "agent is not ready" } };
    if (!existsSync(req.netns)) {
      return {
        ok: false,
        error: { code: CNI_ERR.invalidEnv, msg: `network namespace ${req.netns} does not exist` },
      };
    }
    const e = await createEndpoint(this.store, {
      network: req.network,
      namespace: req.podNamespace,
      pod: req.podName,
      node: this.opts.node,
      tier: req.perfTier,
      containerId: req.containerId,
      ifname: req.ifName || DEFAULT_IFNAME,
      netns: req.netns,
    });
    const id = endpointId(e);
    this.adding.add(id);
    try {
      await this.lock.run(async () => {
        const sw = this.sw;
        if (!sw) throw new Error("agent is stopping");
        const existing = this.ports.get(id);
        if (existing && existing.endpoint.containerId === e.containerId) return;
        if (existing) {
          // A recreated sandbox of the same pod: the old device goes with the old container.
          sw.removePort(existing.id, { destroy: true });
          this.ports.delete(id);
        }
        const vni =
          (this.view && desiredState(this.view.snapshot(), this.opts.node).localVnis.get(id)) ??
          (await this.vniFor(e));
        this.attach(sw, e, vni);
      });
      await configurePod({
        netns: req.netns,
        ifname: e.ifname,
        ip: e.ip,
        prefixLength: e.prefixLength,
        gateway: e.gateway,
      });
      await this.capIngress(e);
    } catch (err) {
      this.log.error({ endpoint: id, err: String(err) }, "plumbing failed; releasing the address");
      await this.lock.run(async () => {
        const port = this.ports.get(id);
        if (port && port.endpoint.containerId === e.containerId) {
          this.sw?.removePort(port.id, { destroy: true });
          this.ports.delete(id);
        }
      });
      await deleteEndpoint(this.store, {
        network: e.network,
        namespace: e.namespace,
        pod: e.pod,
        containerId: e.containerId,
      });
      throw err;
    } finally {
      this.adding.delete(id);
    }
    this.scheduleReconcile();
    this.log.info({ endpoint: id, ip: e.ip, container: e.containerId }, "pod attached");
    return { ok: true, result: this.result(e, req.netns) };
  }

  /** The VNI of a new endpoint's namespace, read from the store (the view may lag behind). */
  private async vniFor(e: EndpointRecord): Promise<number> {
    return (await namespaceVni(this.store, e.network, e.namespace)) ?? GLOBAL_VNI;
  }

  private findLocal(containerId: string, ifName: string): LocalPort | undefined {
    for (const p of this.ports.values()) {
      if (p.endpoint.containerId === containerId && p.endpoint.ifname === ifName) return p;
    }
    return undefined;
  }

  /**
   * The tier's cap on what the pod receives. Without it (no IFB support in the kernel, say) the
   * pod still works and its sending stays capped by the switch: say so, and go on.
   */
  private async capIngress(e: EndpointRecord): Promise<void> {
    const rate = tierRate(e.tier);
    if (rate === 0) return;
    try {
      await shapePodIngress(e.netns, e.ifname, rate);
    } catch (err) {
      this.log.error(
        { endpoint: endpointId(e), tier: e.tier, err: String(err) },
        "cannot cap what the pod receives (IFB + tbf); only what it sends is capped",
      );
    }
  }

  private async del(containerId: string, ifName: string): Promise<AgentResponse> {
    const ifname = ifName || DEFAULT_IFNAME;
    let endpoint = this.findLocal(containerId, ifname)?.endpoint;
    if (!endpoint && this.view) {
      endpoint = this.view
        .snapshot()
        .endpoints.find(
          (e) => e.containerId === containerId && e.ifname === ifname && e.node === this.opts.node,
        );
    }
    if (endpoint) {
      await deleteEndpoint(this.store, {
        network: endpoint.network,
        namespace: endpoint.namespace,
        pod: endpoint.pod,
        containerId,
      });
    }
    await this.lock.run(async () => {
      const port = this.findLocal(containerId, ifname);
      if (port) {
        this.sw?.removePort(port.id, { destroy: true });
        this.ports.delete(endpointId(port.endpoint));
      }
    });
    if (endpoint && tierRate(endpoint.tier) > 0 && netnsExists(endpoint.netns)) {
      await removePodIngress(endpoint.netns, endpoint.ifname);
    }
    if (endpoint) this.log.info({ endpoint: endpointId(endpoint), container: containerId }, "pod detached");
    return { ok: true };
  }

  private async check(containerId: string, ifName: string): Promise<AgentResponse> {
    const port = this.findLocal(containerId, ifName || DEFAULT_IFNAME);
    if (!port) {
      return {
        ok: false,
        error: { code: CNI_ERR.unknownContainer, msg: `no endpoint for container ${containerId}` },
      };
    }
    if (!netnsExists(port.endpoint.netns)) {
      return {
        ok: false,
        error: { code: CNI_ERR.ioError, msg: `pod namespace ${port.endpoint.netns} is gone` },
      };
    }
    // The pod's side as CNI ADD left it: the interface, its MAC and address, up.
    const e = port.endpoint;
    const want = `${e.ip}/${e.prefixLength}`;
    const got = await inspectPod(e.netns, e.ifname);
    const problem =
      got === undefined
        ? `interface ${e.ifname} is missing`
        : got.mac.toLowerCase() !== e.mac.toLowerCase()
          ? `interface ${e.ifname} has MAC ${got.mac}, not ${e.mac}`
          : !got.addresses.includes(want)
            ? `interface ${e.ifname} lacks address ${want} (has ${got.addresses.join(", ") || "none"})`
            : !got.up
              ? `interface ${e.ifname} is down`
              : undefined;
    if (problem !== undefined) {
      return { ok: false, error: { code: CNI_ERR.ioError, msg: `pod ${endpointId(e)}: ${problem}` } };
    }
    return { ok: true, result: this.result(e, e.netns) };
  }

  private async status(): Promise<AgentResponse> {
    if (!this.ready) {
      return {
        ok: false,
        error: { code: CNI_ERR.notAvailable, msg: "agent has not programmed its switch yet" },
      };
    }
    try {
      await this.store.get(endpointKey("_", "_", "_"));
    } catch (err) {
      return {
        ok: false,
        error: { code: CNI_ERR.notAvailable, msg: "cluster store unreachable", details: String(err) },
      };
    }
    return { ok: true };
  }

  private async gc(valid: { containerId: string; ifName: string }[]): Promise<AgentResponse> {
    const keep = new Set(valid.map((v) => `${v.containerId}/${v.ifName || DEFAULT_IFNAME}`));
    const mine = this.view?.snapshot().endpoints.filter((e) => e.node === this.opts.node) ?? [];
    for (const e of mine) {
      if (keep.has(`${e.containerId}/${e.ifname}`)) continue;
      this.log.info(
        { endpoint: endpointId(e), container: e.containerId },
        "GC releases an attachment the runtime no longer lists",
      );
      await this.del(e.containerId, e.ifname);
    }
    return { ok: true };
  }
}

/** The management network of the interface holding `ip`, e.g. "10.0.0.0/24", from `ip -j addr`. */
export function managementCidrOf(addrJson: string, ip: string): { cidr: string; mtu: number } | undefined {
  const links = JSON.parse(addrJson) as {
    mtu?: number;
    addr_info?: { family: string; local: string; prefixlen: number }[];
  }[];
  for (const l of links) {
    for (const a of l.addr_info ?? []) {
      if (a.family !== "inet" || a.local !== ip) continue;
      const n = parseIpv4(a.local);
      if (n === undefined) continue;
      const mask = a.prefixlen === 0 ? 0 : (0xffffffff << (32 - a.prefixlen)) >>> 0;
      return { cidr: `${formatIpv4((n & mask) >>> 0)}/${a.prefixlen}`, mtu: l.mtu ?? 1500 };
    }
  }
  return undefined;
}

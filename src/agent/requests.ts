/**
 * What happens on each CNI request the plugin hands the agent (ADD, DEL, CHECK, STATUS, GC), and
 * the results and errors it answers with (protocol.ts).
 *
 * ADD: the endpoint and its address are written in one transaction (model's createEndpoint, which
 * also makes the namespace known), the pod's VNI is read from its namespace record (model's
 * readPodVni: none without a valid record, and then the ADD fails, naming the namespace), the
 * port is attached under the ports' lock and the pod's interface configured. Any failure after
 * the write rolls back: the port detached, the endpoint and its address released.
 *
 * The pod's request (network, perf tier) comes with the ADD when the runtime passes the pod's
 * annotations. When it passes none at all (CRI-O; containerd without the pod-annotations
 * capability) and the pod is Kubernetes', the agent reads the pod from the API (`podAnnotations`)
 * before anything is written, within a few seconds, and fails with code 106 naming the pod, the
 * API server and why when it cannot (kubelet retries the sandbox).
 */
import type { Logger } from "pino";
import { createEndpoint, deleteEndpoint, DEFAULT_IFNAME } from "../model/endpoints.js";
import { OverlayError, precondition } from "../model/errors.js";
import { readPodVni } from "../model/namespaces.js";
import { checkStoreReachable } from "../model/nodes.js";
import { getPerfTier } from "../model/perftier.js";
import type { EndpointRecord } from "../model/records.js";
import type { Store } from "../store/store.js";
import { endpointId } from "./desired.js";
import { toAgentError } from "./errors.js";
import type { Plumbing } from "./plumbing.js";
import type { AgentSwitch, PodPorts } from "./ports.js";
import {
  CNI_ERR,
  type AgentError,
  type AgentRequest,
  type AgentResponse,
  type AttachmentResult,
  type EndpointRequest,
} from "./protocol.js";
import type { ClusterRecords } from "./cluster.js";
import { ENDPOINT_ANNOTATION, parseEndpointAnnotation } from "../cni/request.js";
import { CniError } from "../cni/errors.js";

/** ADD and CHECK requests: the ones that name the pod and its namespace. */
type AttachRequest = Extract<AgentRequest, { podName: string; netns: string }>;

export interface RequestDeps {
  node: string;
  store: Store;
  ports: PodPorts;
  plumbing: Plumbing;
  podMtu: number;
  log: Logger;
  /** Serving: the switch is programmed. */
  ready(): boolean;
  /** The switch; undefined once the agent stops. */
  dataplane(): AgentSwitch | undefined;
  /** The agent's picture of the cluster, for endpoints this node has no port of. */
  records(): ClusterRecords | undefined;
  /** Whether the agent follows the store now (its view listed and watching). */
  following(): boolean;
  /** Asks the reconcile to run soon. */
  changed(): void;
  /** The pod's annotations from the Kubernetes API; absent when the agent has no API. */
  podAnnotations?(namespace: string, pod: string): Promise<Record<string, string>>;
}

/** A tier's cap in bit/s, 0 for none or for a tier this agent does not know. */
function tierRate(name: string): number {
  try {
    return getPerfTier(name).maxBitsPerSecond ?? 0;
  } catch {
    return 0;
  }
}

export class CniRequests {
  constructor(private readonly d: RequestDeps) {}

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
      this.d.log.warn({ op: req.op, error }, "request failed");
      return { ok: false, error };
    }
  }

  private result(e: EndpointRecord, netns: string): AttachmentResult {
    return {
      interfaces: [{ name: e.ifname, mac: e.mac, sandbox: netns, mtu: this.d.podMtu }],
      ips: [{ address: `${e.ip}/${e.prefixLength}`, gateway: e.gateway, interface: 0 }],
      routes: [{ dst: "0.0.0.0/0", gw: e.gateway }],
      dns: {},
    };
  }

  /** The pod's network and tier: from the runtime, or from the API when the runtime gave none. */
  private async podRequest(req: AttachRequest): Promise<EndpointRequest | { error: AgentError }> {
    const given: EndpointRequest = {};
    if (req.network !== undefined) given.network = req.network;
    if (req.perfTier !== undefined) given.perfTier = req.perfTier;
    const read = this.d.podAnnotations;
    if (req.annotationsGiven !== false || req.kubernetesPod !== true || read === undefined) return given;
    const pod = `${req.podNamespace}/${req.podName}`;
    let annotations: Record<string, string>;
    try {
      annotations = await read(req.podNamespace, req.podName);
    } catch (err) {
      const msg = `cannot read pod ${pod} for its annotation ${ENDPOINT_ANNOTATION}: ${err instanceof Error ? err.message : String(err)}`;
      return {
        error: {
          code: CNI_ERR.podUnreadable,
          msg,
          details:
            "the runtime passed no pod annotations (declare the io.kubernetes.cri.pod-annotations capability in the conflist to skip this read)",
        },
      };
    }
    if (!(ENDPOINT_ANNOTATION in annotations)) return given;
    try {
      return {
        ...parseEndpointAnnotation(annotations[ENDPOINT_ANNOTATION], `pod ${pod} (Kubernetes API)`),
        ...given,
      };
    } catch (err) {
      if (err instanceof CniError)
        return { error: { code: err.code, msg: err.message, details: err.details } };
      throw err;
    }
  }

  private async add(req: AttachRequest): Promise<AgentResponse> {
    const { store, ports, plumbing, log } = this.d;
    if (!this.d.ready()) {
      return { ok: false, error: { code: CNI_ERR.tryAgainLater, msg: "agent is not ready" } };
    }
    if (!plumbing.netnsExists(req.netns)) {
      return {
        ok: false,
        error: { code: CNI_ERR.invalidEnv, msg: `network namespace ${req.netns} does not exist` },
      };
    }
    const wanted = await this.podRequest(req);
    if ("error" in wanted) return { ok: false, error: wanted.error };
    const e = await createEndpoint(store, {
      network: wanted.network,
      namespace: req.podNamespace,
      pod: req.podName,
      node: this.d.node,
      tier: wanted.perfTier,
      containerId: req.containerId,
      ifname: req.ifName || DEFAULT_IFNAME,
      netns: req.netns,
    });
    const id = endpointId(e);
    ports.adding.add(id);
    try {
      const vni = await this.vniOf(e);
      await ports.lock.run(async () => {
        const sw = this.d.dataplane();
        if (!sw) throw new Error("agent is stopping");
        const existing = ports.get(id);
        if (existing && existing.endpoint.containerId === e.containerId) return;
        // A recreated sandbox of the same pod: the old device goes with the old container.
        if (existing) await ports.detach(sw, id);
        ports.attach(sw, e, vni);
      });
      await plumbing.configurePod({
        netns: req.netns,
        ifname: e.ifname,
        ip: e.ip,
        prefixLength: e.prefixLength,
        gateway: e.gateway,
      });
      await this.capIngress(e);
    } catch (err) {
      log.error({ endpoint: id, err: String(err) }, "attach failed; releasing the address");
      await ports.lock.run(async () => {
        if (ports.get(id)?.endpoint.containerId === e.containerId) await ports.detach(this.d.dataplane(), id);
      });
      await deleteEndpoint(store, {
        network: e.network,
        namespace: e.namespace,
        pod: e.pod,
        containerId: e.containerId,
      });
      throw err;
    } finally {
      ports.adding.delete(id);
    }
    this.d.changed();
    log.info({ endpoint: id, ip: e.ip, container: e.containerId }, "pod attached");
    return { ok: true, result: this.result(e, req.netns) };
  }

  /**
   * The VNI of a new pod, from its namespace record as the store holds it now (the view may lag).
   * No valid record, no VNI: the pod is not attached (fail closed).
   */
  private async vniOf(e: EndpointRecord): Promise<number> {
    const v = await readPodVni(this.d.store, e.network, e.namespace);
    if ("vni" in v) return v.vni;
    if ("invalid" in v) {
      throw precondition(
        `namespace record ${e.namespace} of network ${e.network} is invalid: ${v.invalid}; run "dctl network overlay check ${e.network} --repair"`,
        { network: e.network, namespace: e.namespace },
      );
    }
    throw new OverlayError(
      "CONFLICT",
      `namespace ${e.namespace} has no record on network ${e.network} (removed while the pod was being added), so the pod has no VNI; try again`,
      { network: e.network, namespace: e.namespace },
    );
  }

  /**
   * The tier's cap on what the pod receives. Without it (no IFB support in the kernel, say) the
   * pod still works and its sending stays capped by the switch: say so, and go on.
   */
  private async capIngress(e: EndpointRecord): Promise<void> {
    const rate = tierRate(e.tier);
    if (rate === 0) return;
    try {
      await this.d.plumbing.shapePodIngress(e.netns, e.ifname, rate);
    } catch (err) {
      this.d.log.error(
        { endpoint: endpointId(e), tier: e.tier, err: String(err) },
        "cannot cap what the pod receives (IFB + tbf); only what it sends is capped",
      );
    }
  }

  private async del(containerId: string, ifName: string): Promise<AgentResponse> {
    const { ports, plumbing, log } = this.d;
    const ifname = ifName || DEFAULT_IFNAME;
    const endpoint =
      ports.find(containerId, ifname)?.endpoint ??
      (this.d.records()?.ownEndpoints() ?? []).find(
        (e) => e.containerId === containerId && e.ifname === ifname,
      );
    if (endpoint) {
      await deleteEndpoint(this.d.store, {
        network: endpoint.network,
        namespace: endpoint.namespace,
        pod: endpoint.pod,
        containerId,
      });
    }
    // Detached under the lock; the device's teardown is awaited outside it, so that other
    // pods' attaches do not queue behind it. DEL answers once the device is gone.
    let gone: Promise<void> | undefined;
    await ports.lock.run(async () => {
      const port = ports.find(containerId, ifname);
      if (port) gone = ports.detach(this.d.dataplane(), endpointId(port.endpoint));
    });
    await gone;
    if (endpoint && tierRate(endpoint.tier) > 0 && plumbing.netnsExists(endpoint.netns)) {
      await plumbing.removePodIngress(endpoint.netns, endpoint.ifname);
    }
    if (endpoint) log.info({ endpoint: endpointId(endpoint), container: containerId }, "pod detached");
    return { ok: true };
  }

  private async check(containerId: string, ifName: string): Promise<AgentResponse> {
    const port = this.d.ports.find(containerId, ifName || DEFAULT_IFNAME);
    if (!port) {
      return {
        ok: false,
        error: { code: CNI_ERR.unknownContainer, msg: `no endpoint for container ${containerId}` },
      };
    }
    const e = port.endpoint;
    if (!this.d.plumbing.netnsExists(e.netns)) {
      return { ok: false, error: { code: CNI_ERR.ioError, msg: `pod namespace ${e.netns} is gone` } };
    }
    // The pod's side as CNI ADD left it: the interface, its MAC and address, up.
    const want = `${e.ip}/${e.prefixLength}`;
    const got = await this.d.plumbing.inspectPod(e.netns, e.ifname);
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
    if (!this.d.ready()) {
      return {
        ok: false,
        error: { code: CNI_ERR.notAvailable, msg: "agent has not programmed its switch yet" },
      };
    }
    try {
      await checkStoreReachable(this.d.store);
    } catch (err) {
      return {
        ok: false,
        error: { code: CNI_ERR.notAvailable, msg: "cluster store unreachable", details: String(err) },
      };
    }
    if (!this.d.following()) {
      return {
        ok: false,
        error: {
          code: CNI_ERR.notAvailable,
          msg: "agent is not following the cluster store (its listing or watch fails; see its log): changes made since are not applied yet",
        },
      };
    }
    return { ok: true };
  }

  /** Releases every attachment of this node that the runtime no longer lists. */
  private async gc(valid: { containerId: string; ifName: string }[]): Promise<AgentResponse> {
    const keep = new Set(valid.map((v) => `${v.containerId}/${v.ifName || DEFAULT_IFNAME}`));
    const mine = this.d.records()?.ownEndpoints() ?? [];
    for (const e of mine) {
      if (keep.has(`${e.containerId}/${e.ifname}`)) continue;
      this.d.log.info(
        { endpoint: endpointId(e), container: e.containerId },
        "GC releases an attachment the runtime no longer lists",
      );
      await this.del(e.containerId, e.ifname);
    }
    return { ok: true };
  }
}

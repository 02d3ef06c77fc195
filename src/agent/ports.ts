/**
 * This node's pods as switch ports, and the one lock that orders every change to them: CNI ADD
 * and DEL, the reconcile's re-attach and VNI moves, and orphan collection all attach and detach
 * here, under `lock`, so a port is never added or removed twice.
 */
import type { Switch } from "../dataplane/switch.js";
import { getPerfTier } from "../model/perftier.js";
import type { EndpointRecord } from "../model/records.js";
import { endpointId } from "./desired.js";

/** What the agent asks of its switch: the typed Switch, or a fake of it in unit tests. */
export type AgentSwitch = Pick<
  Switch,
  | "addPort"
  | "removePort"
  | "setPortVni"
  | "setPeers"
  | "updateRemotes"
  | "replaceRemotes"
  | "setGlobalVnis"
  | "features"
  | "counters"
  | "close"
>;

export interface LocalPort {
  id: number;
  vni: number;
  endpoint: EndpointRecord;
}

/** Runs sections one at a time, in the order they were asked for. */
export class Mutex {
  private tail: Promise<unknown> = Promise.resolve();
  run<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.tail.then(fn, fn);
    this.tail = next.catch(() => undefined);
    return next;
  }
}

export class PodPorts {
  readonly lock = new Mutex();
  /** Endpoints whose ADD is in flight: the reconcile leaves them alone. */
  readonly adding = new Set<string>();
  private readonly byEndpoint = new Map<string, LocalPort>();

  constructor(private readonly podMtu: number) {}

  get(id: string): LocalPort | undefined {
    return this.byEndpoint.get(id);
  }

  /** The port of a container's interface (CNI DEL and CHECK know only those). */
  find(containerId: string, ifname: string): LocalPort | undefined {
    for (const p of this.byEndpoint.values()) {
      if (p.endpoint.containerId === containerId && p.endpoint.ifname === ifname) return p;
    }
    return undefined;
  }

  all(): IterableIterator<[string, LocalPort]> {
    return this.byEndpoint.entries();
  }

  /** Adds the pod's port (its persistent TAP: a restarted agent re-attaches the same device). */
  attach(sw: AgentSwitch, e: EndpointRecord, vni: number): LocalPort {
    const id = sw.addPort({
      name: e.ifname,
      netns: e.netns,
      vni,
      mac: e.mac,
      ipv4: e.ip,
      persistent: true,
      mtu: this.podMtu,
      rateBitsPerSec: getPerfTier(e.tier).maxBitsPerSecond ?? 0,
    });
    const port = { id, vni, endpoint: e };
    this.byEndpoint.set(endpointId(e), port);
    return port;
  }

  /** Removes the port and destroys its device; false when the endpoint had none. */
  /**
   * Detaches the endpoint's port at once (no frame reaches it after this returns); the promise
   * resolves once its device is gone. Undefined when the endpoint has no port.
   */
  detach(sw: AgentSwitch | undefined, id: string): Promise<void> | undefined {
    const port = this.byEndpoint.get(id);
    if (port === undefined) return undefined;
    const gone = sw?.removePort(port.id, { destroy: true }) ?? Promise.resolve();
    this.byEndpoint.delete(id);
    return gone;
  }

  moveToVni(sw: AgentSwitch, port: LocalPort, vni: number): void {
    sw.setPortVni(port.id, vni);
    port.vni = vni;
  }
}

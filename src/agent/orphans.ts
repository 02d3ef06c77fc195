/**
 * Pods of this node whose network namespace is gone with no CNI DEL: the runtime or the agent
 * died mid-operation, or the sandbox was removed by hand. After a grace period, checking again
 * just before, the pod's endpoint and address are released (only if the same container still
 * holds them) and its port detached.
 */
import type { Logger } from "pino";
import { deleteEndpoint } from "../model/endpoints.js";
import type { EndpointRecord } from "../model/records.js";
import type { Store } from "../store/store.js";
import type { Plumbing } from "./plumbing.js";
import type { AgentSwitch, PodPorts } from "./ports.js";

export class OrphanCollector {
  /** Local endpoints whose pod namespace was found missing, and since when. */
  private readonly missingSince = new Map<string, number>();

  constructor(
    private readonly store: Store,
    private readonly plumbing: Plumbing,
    private readonly ports: PodPorts,
    private readonly log: Logger,
    private readonly graceMs: number,
  ) {}

  /** Forgets endpoints no longer wanted (deleted meanwhile). */
  retain(wanted: ReadonlyMap<string, EndpointRecord>): void {
    for (const id of this.missingSince.keys()) if (!wanted.has(id)) this.missingSince.delete(id);
  }

  /**
   * True when the pod's namespace is gone (the caller then leaves the pod alone): notes since
   * when, and once the grace period is up releases the endpoint. Call under the ports' lock.
   */
  async gone(sw: AgentSwitch, id: string, e: EndpointRecord, now: number): Promise<boolean> {
    if (this.plumbing.netnsExists(e.netns)) {
      this.missingSince.delete(id);
      return false;
    }
    const since = this.missingSince.get(id);
    if (since === undefined) {
      this.missingSince.set(id, now);
      this.log.warn({ endpoint: id, netns: e.netns, graceMs: this.graceMs }, "pod namespace is gone");
      return true;
    }
    if (now - since < this.graceMs || this.plumbing.netnsExists(e.netns)) return true;
    try {
      await deleteEndpoint(this.store, {
        network: e.network,
        namespace: e.namespace,
        pod: e.pod,
        containerId: e.containerId,
      });
    } catch (err) {
      this.log.warn({ endpoint: id, err: String(err) }, "cannot release the endpoint of a vanished pod yet");
      return true;
    }
    await this.ports.detach(sw, id);
    this.missingSince.delete(id);
    this.log.info(
      { endpoint: id, ip: e.ip, container: e.containerId },
      "released the address of a vanished pod",
    );
    return true;
  }
}

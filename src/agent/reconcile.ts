/**
 * How the switch follows the store: the cluster view's snapshot becomes a desired state
 * (desired.ts, a pure function) and the switch is brought to it by difference:
 *   - peers and the global VNI set when they changed;
 *   - remote endpoints: the ones that changed, were added or went (updateRemotes), or the whole
 *     table in one version when most of it changed (replaceRemotes);
 *   - gateway ports (gateways.ts);
 *   - local pods: a pod whose namespace's VNI changed moves (join, isolate, make-global apply to
 *     running pods); a pod with no VNI (no valid namespace record) keeps the VNI it has, so it
 *     can lose reach but never gain it; a pod of this node without a port (the agent restarted)
 *     is re-attached; a port whose endpoint left the store is detached; a pod whose namespace
 *     vanished is collected (orphans.ts);
 *   - an address block of every network this node has none of yet, so its gateway exists before
 *     the first pod.
 * It runs after store events (debounced by the caller), after a CNI ADD and on a timer.
 */
import type { Logger } from "pino";
import type { RemoteEndpoint } from "../dataplane/switch.js";
import { getEndpoint } from "../model/endpoints.js";
import { ensureNodeBlock } from "../model/ipam.js";
import type { EndpointRecord } from "../model/records.js";
import type { Store } from "../store/store.js";
import { desiredState, endpointId, type DesiredState } from "./desired.js";
import type { Gateways } from "./gateways.js";
import type { OrphanCollector } from "./orphans.js";
import type { Plumbing } from "./plumbing.js";
import type { AgentSwitch, PodPorts } from "./ports.js";
import type { ClusterSnapshot } from "./view.js";

export interface ReconcilerDeps {
  node: string;
  store: Store;
  plumbing: Plumbing;
  ports: PodPorts;
  gateways: Gateways;
  orphans: OrphanCollector;
  log: Logger;
}

/** Above this share of the table changed, one replaceRemotes beats an update of each entry. */
const REPLACE_SHARE = 0.5;

function remoteKey(r: RemoteEndpoint): string {
  return `${r.vni} ${r.ipv4} ${r.vtep}`;
}

export class Reconciler {
  private programmedPeers = "";
  private programmedPeerCount = 0;
  private programmedGlobals = "";
  /** MAC -> what is programmed for it (remoteKey). */
  private readonly programmedRemotes = new Map<string, string>();
  /** Networks this node asked a block of (once; a failed claim is tried again). */
  private readonly claimed = new Set<string>();

  constructor(private readonly d: ReconcilerDeps) {}

  get peerCount(): number {
    return this.programmedPeerCount;
  }

  get remoteCount(): number {
    return this.programmedRemotes.size;
  }

  /** Brings `sw` to the desired state of `snapshot`. Call under the ports' lock. */
  async run(sw: AgentSwitch, snapshot: ClusterSnapshot): Promise<void> {
    const want = desiredState(snapshot, this.d.node);
    this.programTables(sw, want);
    await this.d.gateways.reconcile(sw, want.gateways);
    await this.reconcileLocal(sw, want);
    await this.claimBlocks(want);
  }

  /** Peers, global VNIs and remote endpoints: the switch's tables. */
  programTables(sw: AgentSwitch, want: DesiredState): void {
    const peers = JSON.stringify(want.peers);
    if (peers !== this.programmedPeers) {
      sw.setPeers(want.peers.map((ip) => ({ ip })));
      this.programmedPeers = peers;
      this.programmedPeerCount = want.peers.length;
      this.d.log.info({ peers: want.peers }, "peers programmed");
    }
    const globals = JSON.stringify(want.globalVnis);
    if (globals !== this.programmedGlobals) {
      sw.setGlobalVnis(want.globalVnis);
      this.programmedGlobals = globals;
    }
    this.programRemotes(sw, want.remotes);
  }

  private programRemotes(sw: AgentSwitch, remotes: readonly RemoteEndpoint[]): void {
    const wanted = new Map(remotes.map((r) => [r.mac, r]));
    const add = remotes.filter((r) => this.programmedRemotes.get(r.mac) !== remoteKey(r));
    const remove = [...this.programmedRemotes.keys()].filter((mac) => !wanted.has(mac));
    if (add.length === 0 && remove.length === 0) return;
    if (add.length + remove.length > REPLACE_SHARE * Math.max(wanted.size, 1)) {
      sw.replaceRemotes([...remotes]);
      this.programmedRemotes.clear();
      for (const r of remotes) this.programmedRemotes.set(r.mac, remoteKey(r));
    } else {
      sw.updateRemotes(add, remove);
      for (const mac of remove) this.programmedRemotes.delete(mac);
      for (const r of add) this.programmedRemotes.set(r.mac, remoteKey(r));
    }
    this.d.log.debug(
      { count: remotes.length, added: add.length, removed: remove.length },
      "remote endpoints programmed",
    );
  }

  private async reconcileLocal(sw: AgentSwitch, want: DesiredState): Promise<void> {
    const { ports, orphans, store, log } = this.d;
    const wanted = new Map(want.localEndpoints.map((e) => [endpointId(e), e]));
    // Ports whose endpoint is gone from the store (deleted elsewhere, or by GC): detach. The store
    // is asked directly, so an endpoint that was just created and is not yet in the view stays.
    for (const [id, port] of [...ports.all()]) {
      if (wanted.has(id) || ports.adding.has(id)) continue;
      const e = port.endpoint;
      const current = await getEndpoint(store, e.network, e.namespace, e.pod).catch(
        () => "unreachable" as const,
      );
      if (current === "unreachable") continue;
      if (typeof current === "object" && current.containerId === e.containerId) continue;
      ports.detach(sw, id);
      log.info({ endpoint: id }, "port removed: endpoint no longer in the store");
    }
    orphans.retain(wanted);
    const now = Date.now();
    for (const [id, e] of wanted) {
      if (ports.adding.has(id)) continue;
      if (await orphans.gone(sw, id, e, now)) continue;
      const vni = want.localVnis.get(id);
      const port = ports.get(id);
      if (port) {
        if (vni !== undefined && vni !== port.vni) {
          log.info({ endpoint: id, from: port.vni, to: vni }, "port moved to another VNI");
          ports.moveToVni(sw, port, vni);
        }
        continue;
      }
      if (vni === undefined) continue;
      await this.reattach(sw, id, e, vni);
    }
  }

  /** A pod of this node without a port: the agent restarted. Its device persisted; attach it. */
  private async reattach(sw: AgentSwitch, id: string, e: EndpointRecord, vni: number): Promise<void> {
    try {
      this.d.ports.attach(sw, e, vni);
      await this.d.plumbing.configurePod({
        netns: e.netns,
        ifname: e.ifname,
        ip: e.ip,
        prefixLength: e.prefixLength,
        gateway: e.gateway,
      });
      this.d.log.info({ endpoint: id }, "re-attached pod");
    } catch (err) {
      this.d.log.error({ endpoint: id, err: String(err) }, "cannot re-attach pod");
    }
  }

  /**
   * Takes a block of every network this node has none of yet, so its gateway (the node's own
   * address on the overlay) exists before the first pod. The claim's watch event brings the
   * gateway port up in the next reconcile.
   */
  private async claimBlocks(want: DesiredState): Promise<void> {
    for (const net of want.networksWithoutBlock) {
      if (this.claimed.has(net)) continue;
      this.claimed.add(net);
      try {
        await ensureNodeBlock(this.d.store, net, this.d.node);
      } catch (err) {
        this.claimed.delete(net);
        this.d.log.warn({ network: net, err: String(err) }, "cannot claim an address block yet");
      }
    }
  }
}

/**
 * How the switch follows the store. The view's records (cluster.ts) go through the rules of
 * desired.ts, and the switch is brought to the result by difference:
 *   - `update(changes)`, after each batch of watch events: only the remote entries those records
 *     touch (an endpoint: its own entry; a namespace: its pods'; a node: its pods', its
 *     gateways' and the peer list), applied with one updateRemotes. Work follows the event, not
 *     the cluster.
 *   - `resync()`, after a listing (start, a watch reset) and on a slow timer as a safety net:
 *     every entry, compared with what is programmed, the difference applied (one replaceRemotes
 *     when more than half of the table changed).
 *   - `local()`, this node's own side, small whatever the cluster's size: gateway ports
 *     (gateways.ts); local pods (a pod whose namespace's VNI changed moves, as join, isolate and
 *     make-global apply to running pods; a pod with no VNI, no valid namespace record, keeps the
 *     VNI it has, so it can lose reach but never gain it; a pod of this node without a port, the
 *     agent restarted, is re-attached; a port whose endpoint left the store is detached; a pod
 *     whose namespace vanished is collected, orphans.ts); and an address block in every network
 *     this node has none of yet, so its gateway exists before the first pod.
 * Every method runs under the ports' lock.
 */
import type { Logger } from "pino";
import type { RemoteEndpoint } from "../dataplane/switch.js";
import { getEndpoint } from "../model/endpoints.js";
import { ensureNodeBlock } from "../model/ipam.js";
import type { EndpointRecord } from "../model/records.js";
import type { Store } from "../store/store.js";
import type { ClusterRecords, RecordChange } from "./cluster.js";
import { GLOBAL_VNIS, endpointId, localState, peers, remoteEntry, type LocalState } from "./desired.js";
import type { Gateways } from "./gateways.js";
import type { OrphanCollector } from "./orphans.js";
import type { Plumbing } from "./plumbing.js";
import type { AgentSwitch, PodPorts } from "./ports.js";

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

type SourceKind = "endpoint" | "block";

function entryKey(r: RemoteEndpoint): string {
  return `${r.vni} ${r.ipv4} ${r.vtep}`;
}

export class Reconciler {
  private programmedPeers = "";
  private programmedPeerCount = 0;
  private programmedGlobals = "";
  /** MAC -> what is programmed for it (entryKey). */
  private readonly programmed = new Map<string, string>();
  /** Source record key -> the MAC of the entry it put in the switch. */
  private readonly sourceMac = new Map<string, string>();
  /** MAC -> the source record whose entry it is (so another source's removal leaves it). */
  private readonly macSource = new Map<string, string>();
  /** Networks this node asked a block of (once; a failed claim is tried again). */
  private readonly claimed = new Set<string>();

  constructor(private readonly d: ReconcilerDeps) {}

  get peerCount(): number {
    return this.programmedPeerCount;
  }

  get remoteCount(): number {
    return this.programmed.size;
  }

  /** Everything, compared with what is programmed. */
  async resync(sw: AgentSwitch, c: ClusterRecords): Promise<void> {
    this.programPeers(sw, c);
    const want = new Map<string, RemoteEndpoint>();
    this.sourceMac.clear();
    this.macSource.clear();
    for (const [key, kind] of c.remoteSources()) {
      const r = remoteEntry(c, this.d.node, kind, key);
      if (r === undefined) continue;
      want.set(r.mac, r);
      this.sourceMac.set(key, r.mac);
      this.macSource.set(r.mac, key);
    }
    const add = [...want.values()].filter((r) => this.programmed.get(r.mac) !== entryKey(r));
    const remove = [...this.programmed.keys()].filter((mac) => !want.has(mac));
    if (add.length + remove.length > REPLACE_SHARE * Math.max(want.size, 1)) {
      sw.replaceRemotes([...want.values()]);
      this.programmed.clear();
      for (const r of want.values()) this.programmed.set(r.mac, entryKey(r));
      this.d.log.debug({ count: want.size }, "remote endpoints programmed (whole table)");
    } else {
      this.apply(sw, add, remove);
    }
    await this.local(sw, c);
  }

  /** Only what `changes` touch. */
  async update(sw: AgentSwitch, c: ClusterRecords, changes: readonly RecordChange[]): Promise<void> {
    const self = this.d.node;
    const sources = new Map<string, SourceKind>();
    const ofNode = (node: string): void => {
      for (const key of c.endpointsOfNode(node).keys()) sources.set(key, "endpoint");
      for (const key of c.blocksOfNode(node).keys()) sources.set(key, "block");
    };
    let nodes = false;
    let local = false;
    for (const ch of changes) {
      switch (ch.kind) {
        case "endpoint":
          sources.set(ch.key, "endpoint");
          if (ch.before?.node === self || ch.after?.node === self) local = true;
          break;
        case "block":
          sources.set(ch.key, "block");
          if (ch.before?.node === self || ch.after?.node === self) local = true;
          break;
        case "namespace": {
          const n = ch.after ?? ch.before;
          if (n === undefined) break;
          for (const key of c.endpointsOfNamespace(n.network, n.name).keys()) sources.set(key, "endpoint");
          local = true;
          break;
        }
        case "node": {
          nodes = true;
          const name = (ch.after ?? ch.before)?.name;
          if (name !== undefined) ofNode(name);
          break;
        }
        case "network":
          // Rare (create, delete, isolation switched): every entry may change.
          return this.resync(sw, c);
      }
    }
    if (nodes) this.programPeers(sw, c);
    const add = new Map<string, RemoteEndpoint>();
    const remove = new Set<string>();
    const drop = (mac: string, key: string): void => {
      if (this.macSource.get(mac) !== key) return;
      this.macSource.delete(mac);
      if (!add.has(mac)) remove.add(mac);
    };
    for (const [key, kind] of sources) {
      const r = remoteEntry(c, self, kind, key);
      const old = this.sourceMac.get(key);
      if (r === undefined) {
        if (old !== undefined) drop(old, key);
        this.sourceMac.delete(key);
        continue;
      }
      if (old !== undefined && old !== r.mac) drop(old, key);
      this.sourceMac.set(key, r.mac);
      this.macSource.set(r.mac, key);
      remove.delete(r.mac);
      if (this.programmed.get(r.mac) !== entryKey(r)) add.set(r.mac, r);
    }
    this.apply(sw, [...add.values()], [...remove]);
    if (local) await this.local(sw, c);
  }

  /** This node's own side (see above). */
  async local(sw: AgentSwitch, c: ClusterRecords): Promise<void> {
    const want = localState(c, this.d.node);
    await this.d.gateways.reconcile(sw, want.gateways);
    await this.reconcileLocal(sw, want);
    await this.claimBlocks(want);
  }

  private programPeers(sw: AgentSwitch, c: ClusterRecords): void {
    const want = peers(c, this.d.node);
    const key = JSON.stringify(want);
    if (key !== this.programmedPeers) {
      sw.setPeers(want.map((ip) => ({ ip })));
      this.programmedPeers = key;
      this.programmedPeerCount = want.length;
      this.d.log.info({ peers: want }, "peers programmed");
    }
    const globals = JSON.stringify(GLOBAL_VNIS);
    if (globals !== this.programmedGlobals) {
      sw.setGlobalVnis([...GLOBAL_VNIS]);
      this.programmedGlobals = globals;
    }
  }

  private apply(sw: AgentSwitch, add: RemoteEndpoint[], remove: string[]): void {
    if (add.length === 0 && remove.length === 0) return;
    sw.updateRemotes(add, remove);
    for (const mac of remove) this.programmed.delete(mac);
    for (const r of add) this.programmed.set(r.mac, entryKey(r));
    this.d.log.debug(
      { count: this.programmed.size, added: add.length, removed: remove.length },
      "remote endpoints programmed",
    );
  }

  private async reconcileLocal(sw: AgentSwitch, want: LocalState): Promise<void> {
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
      await ports.detach(sw, id);
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
   * gateway port up.
   */
  private async claimBlocks(want: LocalState): Promise<void> {
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

/**
 * The project's own overlay on a cluster world: one `Switch` per node (its underlay socket
 * opened inside the node namespace), pods whose `eth0` is a switch TAP, peers and remote
 * endpoints programmed as an agent would.
 */
import { Switch, type SwitchOptions } from "../../../src/dataplane/switch.js";
import type { Cluster, NodeInfo, Pod } from "./topology.js";
import { podMac } from "./topology.js";

export interface SwitchPodSpec {
  node: number;
  /** Short namespace name of the pod. */
  name: string;
  ip: string;
  vni: number;
  kind?: "pod" | "host";
}

export interface SwitchPod extends Pod {
  vni: number;
  portId: number;
}

export interface SwitchedNode {
  info: NodeInfo;
  sw: Switch;
}

export interface SwitchedOverlayOptions {
  pods: SwitchPodSpec[];
  /** Prefix length of the pod pool; default 16. */
  poolPrefixLen?: number;
  /**
   * Passed to every Switch (underlayIp, netns and underlayMtu are set from the cluster). Without
   * `pollUs`, the environment's OVERLAY_TEST_POLL_US is used when set (so a whole suite can be
   * run with polling off: OVERLAY_TEST_POLL_US=0), else the Switch's default.
   */
  switchOptions?: Omit<SwitchOptions, "underlayIp" | "netns" | "underlayMtu">;
}

/** OVERLAY_TEST_POLL_US as a number, or undefined when unset; a bad value throws. */
function pollUsFromEnv(): number | undefined {
  const v = process.env.OVERLAY_TEST_POLL_US;
  if (v === undefined || v === "") return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0)
    throw new RangeError(`OVERLAY_TEST_POLL_US must be an integer >= 0, got ${v}`);
  return n;
}

export class SwitchedOverlay {
  private closed = false;

  constructor(
    readonly cluster: Cluster,
    readonly nodes: SwitchedNode[],
    readonly pods: SwitchPod[],
  ) {}

  pod(name: string): SwitchPod {
    const p = this.pods.find((x) => x.name === name);
    if (!p) throw new Error(`no pod ${name}`);
    return p;
  }

  switchOf(pod: SwitchPod | string): Switch {
    const p = typeof pod === "string" ? this.pod(pod) : pod;
    return this.nodes[p.node]!.sw;
  }

  /** Every node's switch learns every other node's pods as remote endpoints. */
  programRemotes(): void {
    for (const n of this.nodes) {
      n.sw.replaceRemotes(
        this.pods
          .filter((p) => p.node !== n.info.index)
          .map((p) => ({ vni: p.vni, mac: p.mac, ipv4: p.ip, vtep: this.cluster.nodes[p.node]!.underlayIp })),
      );
    }
  }

  /** Moves a pod to another VNI on its own switch and in every other node's remote table. */
  setPodVni(name: string, vni: number): void {
    const p = this.pod(name);
    this.switchOf(p).setPortVni(p.portId, vni);
    p.vni = vni;
    const vtep = this.cluster.nodes[p.node]!.underlayIp;
    for (const n of this.nodes) {
      if (n.info.index !== p.node) n.sw.updateRemotes([{ vni, mac: p.mac, ipv4: p.ip, vtep }]);
    }
  }

  setGlobalVnis(vnis: number[]): void {
    for (const n of this.nodes) n.sw.setGlobalVnis(vnis);
  }

  /** Closes every switch (their TAP devices go with them). Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const n of this.nodes) n.sw.close();
  }
}

/**
 * Starts a switch in every node of `cluster`, adds the pods (namespaces created here, `eth0`
 * created by the switch, address and link set here), and programs peers and remotes.
 * On failure, everything started so far is closed before the error propagates; the world
 * still owns (and removes) the namespaces.
 */
export async function buildSwitchedOverlay(
  cluster: Cluster,
  options: SwitchedOverlayOptions,
): Promise<SwitchedOverlay> {
  const { world } = cluster;
  const prefixLen = options.poolPrefixLen ?? 16;
  const nodes: SwitchedNode[] = [];
  const pods: SwitchPod[] = [];
  const overlay = new SwitchedOverlay(cluster, nodes, pods);
  try {
    for (const info of cluster.nodes) {
      const pollUs = options.switchOptions?.pollUs ?? pollUsFromEnv();
      const sw = new Switch({
        ...options.switchOptions,
        ...(pollUs === undefined ? {} : { pollUs }),
        underlayIp: info.underlayIp,
        netns: info.nsPath,
        underlayMtu: cluster.underlayMtu,
      });
      nodes.push({ info, sw });
      sw.setPeers(cluster.nodes.filter((o) => o !== info).map((o) => ({ ip: o.underlayIp })));
    }
    for (const spec of options.pods) {
      const node = nodes[spec.node];
      if (!node) throw new RangeError(`pod ${spec.name}: no node ${spec.node}`);
      const ns = await world.addNamespace(spec.name);
      const mac = podMac(spec.ip);
      const portId = node.sw.addPort({
        name: "eth0",
        netns: world.nsPath(spec.name),
        vni: spec.vni,
        mac,
        ipv4: spec.ip,
        kind: spec.kind ?? "pod",
      });
      await world.ip(spec.name, ["addr", "add", `${spec.ip}/${prefixLen}`, "dev", "eth0"]);
      await world.ip(spec.name, ["link", "set", "eth0", "up"]);
      pods.push({
        name: spec.name,
        ns,
        nsPath: world.nsPath(spec.name),
        node: spec.node,
        ip: spec.ip,
        mac,
        ifname: "eth0",
        vni: spec.vni,
        portId,
      });
    }
    overlay.programRemotes();
  } catch (e) {
    overlay.close();
    throw e;
  }
  return overlay;
}

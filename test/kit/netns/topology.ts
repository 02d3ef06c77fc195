/**
 * Cluster-shaped worlds: node namespaces joined by a veth underlay, pod namespaces, and the
 * reference overlay built from the Linux kernel's own vxlan device and a bridge per node.
 */
import { createHash } from "node:crypto";
import { VXLAN_OVERHEAD, VXLAN_PORT as VXLAN_DSTPORT } from "../../../src/dataplane/switch.js";
import { macFromIpv4 } from "../../../src/model/ipam.js";
import { checkIfName, type World } from "./world.js";

export { VXLAN_OVERHEAD, VXLAN_DSTPORT };

/** Pod MAC from its IPv4 address, as the agent gives it: 0a:58 + the four address bytes. */
export const podMac = macFromIpv4;

export interface NodeInfo {
  index: number;
  /** Short namespace name, e.g. "n1". */
  name: string;
  /** Full namespace name. */
  ns: string;
  /** /var/run/netns/<ns>, for `new Switch({netns})`. */
  nsPath: string;
  /** The node's underlay interface inside its namespace. */
  underlayIf: string;
  underlayIp: string;
  /** underlayIp with its prefix length, e.g. 10.123.1.1/24. */
  underlayCidr: string;
}

export interface Cluster {
  world: World;
  nodes: NodeInfo[];
  underlayMtu: number;
  /** The underlay subnet, e.g. 10.123.1.0/24. */
  underlaySubnet: string;
  /** Namespace holding the underlay bridge when there are more than two nodes. */
  hubNs: string | undefined;
}

export interface NodesOptions {
  /** Number of nodes; default 2. */
  count?: number;
  /** Underlay MTU; default 1500. */
  mtu?: number;
  /** Short-name stem for the node namespaces; default "n" (n1, n2, ...). */
  stem?: string;
  /** Underlay interface name in each node; default "ul0". */
  underlayIf?: string;
}

const subnetCounters = new WeakMap<World, number>();

/**
 * A /24 for the world's next underlay: 10.<x>.<y>.0, x from the world's prefix, y counting up, so
 * captures from different runs and clusters are told apart at a glance. All of it is private to the
 * world's namespaces.
 */
export function allocateUnderlaySubnet(world: World): string {
  const y = (subnetCounters.get(world) ?? 0) + 1;
  if (y > 254) throw new Error("too many underlay subnets in one world");
  subnetCounters.set(world, y);
  const x = 100 + (createHash("sha256").update(world.prefix).digest()[0]! % 100);
  return `10.${x}.${y}`;
}

/**
 * Node namespaces joined by an underlay: two nodes by one veth pair, more through a bridge in a
 * hub namespace. Node i (0-based) gets underlay address <subnet>.<i+1>/24.
 */
export async function buildNodes(world: World, options: NodesOptions = {}): Promise<Cluster> {
  const count = options.count ?? 2;
  const mtu = options.mtu ?? 1500;
  const stem = options.stem ?? "n";
  const ulIf = options.underlayIf ?? "ul0";
  checkIfName(ulIf);
  if (!Number.isInteger(count) || count < 1 || count > 200)
    throw new RangeError(`node count 1..200, got ${count}`);
  if (!Number.isInteger(mtu) || mtu < 1280 || mtu > 65535)
    throw new RangeError(`underlay mtu 1280..65535, got ${mtu}`);
  const base = allocateUnderlaySubnet(world);
  const nodes: NodeInfo[] = [];
  for (let i = 0; i < count; i++) {
    const name = `${stem}${i + 1}`;
    const ns = await world.addNamespace(name);
    const underlayIp = `${base}.${i + 1}`;
    nodes.push({
      index: i,
      name,
      ns,
      nsPath: world.nsPath(name),
      underlayIf: ulIf,
      underlayIp,
      underlayCidr: `${underlayIp}/24`,
    });
  }
  let hubNs: string | undefined;
  if (count === 2) {
    const [a, b] = nodes as [NodeInfo, NodeInfo];
    await world.addVeth(
      { ns: a.name, name: ulIf, addr: a.underlayCidr },
      { ns: b.name, name: ulIf, addr: b.underlayCidr },
      { mtu },
    );
  } else if (count > 2) {
    const hubShort = `${stem}hub`;
    hubNs = await world.addNamespace(hubShort);
    await world.ip(hubShort, ["link", "add", "ulbr", "mtu", String(mtu), "type", "bridge"]);
    await world.ip(hubShort, ["link", "set", "ulbr", "up"]);
    for (const n of nodes) {
      const port = `p${n.index + 1}`;
      await world.addVeth(
        { ns: n.name, name: ulIf, addr: n.underlayCidr },
        { ns: hubShort, name: port },
        { mtu },
      );
      await world.ip(hubShort, ["link", "set", port, "master", "ulbr"]);
    }
  }
  return { world, nodes, underlayMtu: mtu, underlaySubnet: `${base}.0/24`, hubNs };
}

export interface KernelVxlanDevice {
  /** Namespace (short or full) the device is created in. */
  ns: string;
  /** Device name; default "vx0". */
  name?: string;
  vni: number;
  /** Local underlay address (the VTEP's source). */
  localIp: string;
  /** Underlay device to send through. */
  dev: string;
  /** Default: underlay MTU - 50 (the kernel's own choice when `dev` is given). */
  mtu?: number;
  mac?: string;
  /** Kernel MAC learning from received frames; default false (static fdb entries). */
  learning?: boolean;
  /** Peer VTEPs that receive broadcast and unknown unicast (all-zero fdb entries). */
  floodTo?: string[];
  /**
   * Leave inner checksums to "hardware" (the kernel default). Over a veth underlay nothing ever
   * finishes them, so a userspace VTEP receives partial inner checksums that no real wire would
   * carry; false (`ethtool -K <dev> tx off`) makes the kernel finish them before encapsulation.
   */
  txChecksumOffload?: boolean;
}

/** A Linux vxlan device, as a foreign VTEP would configure one. */
export async function addKernelVxlan(world: World, d: KernelVxlanDevice): Promise<string> {
  const name = d.name ?? "vx0";
  checkIfName(name);
  const args = ["link", "add", name];
  if (d.mac !== undefined) args.push("address", d.mac);
  if (d.mtu !== undefined) args.push("mtu", String(d.mtu));
  args.push("type", "vxlan", "id", String(d.vni), "dstport", String(VXLAN_DSTPORT), "local", d.localIp);
  args.push("dev", d.dev, d.learning ? "learning" : "nolearning");
  await world.ip(d.ns, args);
  if (d.txChecksumOffload === false) await world.exec(d.ns, "ethtool", ["-K", name, "tx", "off"]);
  for (const peer of d.floodTo ?? []) await kernelFdb(world, d.ns, name, "00:00:00:00:00:00", peer, true);
  await world.ip(d.ns, ["link", "set", name, "up"]);
  return name;
}

/** A static forwarding entry on a kernel vxlan device: frames to `mac` go to VTEP `dst`. */
export async function kernelFdb(
  world: World,
  ns: string,
  dev: string,
  mac: string,
  dst: string,
  append = false,
): Promise<void> {
  await world.exec(ns, "bridge", [
    "fdb",
    append ? "append" : "replace",
    mac,
    "dev",
    dev,
    "dst",
    dst,
    "self",
    "permanent",
  ]);
}

export interface KernelPodSpec {
  /** Node index (0-based). */
  node: number;
  /** Short namespace name of the pod, e.g. "ka". */
  name: string;
  /** Pod address in the overlay pool (e.g. 172.31.1.2). */
  ip: string;
}

export interface KernelOverlayOptions {
  vni?: number;
  /** Prefix length of the pod pool; default 16. */
  poolPrefixLen?: number;
  pods: KernelPodSpec[];
  /** Kernel MAC learning on the vxlan devices; default false (every pod's MAC is programmed). */
  learning?: boolean;
}

export interface Pod {
  name: string;
  ns: string;
  nsPath: string;
  node: number;
  ip: string;
  mac: string;
  ifname: string;
}

export interface KernelOverlay {
  vni: number;
  pods: Pod[];
  /** Name of the vxlan device and of the bridge in every node namespace. */
  vxlanDev: string;
  bridge: string;
}

/**
 * The kernel's own overlay on a cluster: in every node a vxlan device and a bridge, pods attached
 * to the bridge by veth (`eth0` in the pod). Broadcast goes to every other node; each remote pod's
 * MAC has a static fdb entry unless `learning` is set.
 */
export async function buildKernelOverlay(
  cluster: Cluster,
  options: KernelOverlayOptions,
): Promise<KernelOverlay> {
  const { world, nodes } = cluster;
  const vni = options.vni ?? 100;
  const prefixLen = options.poolPrefixLen ?? 16;
  const podMtu = cluster.underlayMtu - VXLAN_OVERHEAD;
  const vxlanDev = "vx0";
  const bridge = "brvx";
  for (const n of nodes) {
    await addKernelVxlan(world, {
      ns: n.name,
      name: vxlanDev,
      vni,
      localIp: n.underlayIp,
      dev: n.underlayIf,
      mtu: podMtu,
      learning: options.learning ?? false,
      floodTo: nodes.filter((o) => o !== n).map((o) => o.underlayIp),
    });
    await world.ip(n.name, ["link", "add", bridge, "mtu", String(podMtu), "type", "bridge"]);
    await world.ip(n.name, ["link", "set", vxlanDev, "master", bridge]);
    await world.ip(n.name, ["link", "set", bridge, "up"]);
  }
  const pods: Pod[] = [];
  for (const spec of options.pods) {
    const node = nodes[spec.node];
    if (!node) throw new RangeError(`pod ${spec.name}: no node ${spec.node}`);
    const ns = await world.addNamespace(spec.name);
    const mac = podMac(spec.ip);
    const hostSide = `v${spec.name}`;
    await world.addVeth(
      { ns: spec.name, name: "eth0", addr: `${spec.ip}/${prefixLen}`, mac },
      { ns: node.name, name: hostSide },
      { mtu: podMtu },
    );
    await world.ip(node.name, ["link", "set", hostSide, "master", bridge]);
    pods.push({
      name: spec.name,
      ns,
      nsPath: world.nsPath(spec.name),
      node: spec.node,
      ip: spec.ip,
      mac,
      ifname: "eth0",
    });
  }
  if (!(options.learning ?? false)) {
    for (const n of nodes) {
      for (const p of pods) {
        if (p.node === n.index) continue;
        await kernelFdb(world, n.name, vxlanDev, p.mac, nodes[p.node]!.underlayIp);
      }
    }
  }
  return { vni, pods, vxlanDev, bridge };
}

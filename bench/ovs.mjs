/**
 * Open vSwitch's userspace datapath (`datapath_type=netdev`) as an overlay on a two-node
 * cluster, for the data-plane benchmark.
 *
 * Per node, inside the node's namespace: its own ovsdb-server and ovs-vswitchd (database, unix
 * sockets, pid and log files in a folder of their own; `OVS_RUNDIR` points there too, for the
 * bridges' management sockets), started in the foreground by `World.start`, so their pids are
 * known and they are stopped by pid. Two netdev bridges, the usual userspace tunnelling setup:
 *
 * - `br-phy` holds the underlay veth (`ul0`) as a port; the node's underlay address moves from
 *   `ul0` to the bridge's internal port, so the kernel's route to the peer goes through `br-phy`,
 *   which OVS's own route table copies and its tunnel ARP table learns from;
 * - `br-int` holds the pods' ports and a `vxlan` port (`key` = the VNI, UDP 4789) to the other
 *   node, whose encapsulation and decapsulation happen in ovs-vswitchd (tnl_push / tnl_pop).
 *
 * Both bridges forward with the NORMAL action (MAC learning), as a bridge without a controller
 * does by default.
 *
 * Pods are veth pairs (`eth0` in the pod, `v<pod>` in the node on `br-int`), which the netdev
 * datapath reads and writes with AF_PACKET sockets (netdev-linux "system" ports), as on the
 * kernel path. OVS tap or internal ports moved into a pod's namespace do forward, but
 * ovs-vswitchd manages ports by name in its own namespace and loses control of their MTU, flags
 * and link state there (failing ethtool calls in its log), for no gain in throughput. Without
 * userspace TSO (experimental in OVS 3.1, and with no tunnel support there) the datapath
 * handles neither segmentation offload nor partial checksums, so the pods' `eth0` send with
 * checksum offload off (which also turns TSO off): every frame is MTU-sized and complete.
 */
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { podMac, sleep, VXLAN_OVERHEAD } from "../dist/test/kit/netns/index.js";

const SCHEMA_CANDIDATES = [
  "/usr/share/openvswitch/vswitch.ovsschema",
  "/usr/local/share/openvswitch/vswitch.ovsschema",
];
const TIMEOUT_MS = 10_000;

/**
 * @typedef {object} OvsPodSpec
 * @property {number} node 0-based node index
 * @property {string} name short pod namespace name
 * @property {string} ip pod address in the /16 pool
 */

/**
 * @typedef {object} OvsNode
 * @property {string} name short node namespace name
 * @property {string} dir the node's OVS folder (db, sockets, logs)
 * @property {import("../dist/test/kit/netns/index.js").NsProcess} ovsdb
 * @property {import("../dist/test/kit/netns/index.js").NsProcess} vswitchd
 */

/**
 * @typedef {object} OvsOverlay
 * @property {OvsNode[]} nodes
 * @property {{ name: string, ip: string, mac: string, node: number }[]} pods
 * @property {string} version `ovs-vswitchd --version`, first line
 * @property {() => number[]} vswitchdPids the ovs-vswitchd processes (the data plane)
 * @property {(node: number, args: string[]) => Promise<string>} appctl `ovs-appctl` against a node's ovs-vswitchd
 * @property {() => Promise<Record<string, number>>} socketDrops frames the kernel dropped because
 *   ovs-vswitchd's AF_PACKET sockets were full (`ss -0 -m`, field d), summed over both nodes: on
 *   the underlay port and on the pods' ports
 * @property {() => Promise<void>} close stops every daemon (ovs-vswitchd first), by pid
 */

/** The OVS database schema, or undefined when Open vSwitch is not installed. */
export function ovsSchema() {
  return SCHEMA_CANDIDATES.find((p) => existsSync(p));
}

/**
 * @param {import("../dist/test/kit/netns/index.js").World} world
 * @param {import("../dist/test/kit/netns/index.js").Cluster} cluster two nodes
 * @param {{ dir: string, vni: number, pods: OvsPodSpec[] }} options
 * @returns {Promise<OvsOverlay>}
 */
export async function buildOvsOverlay(world, cluster, options) {
  const schema = ovsSchema();
  if (!schema) throw new Error("Open vSwitch is not installed (no vswitch.ovsschema)");
  if (cluster.nodes.length !== 2) throw new Error("the OVS overlay is built for two nodes");
  const podMtu = cluster.underlayMtu - VXLAN_OVERHEAD;
  /** @type {OvsNode[]} */
  const nodes = [];
  const close = async () => {
    // ovs-vswitchd first, so it does not log the database going away; then the databases.
    await Promise.all(nodes.map((n) => n.vswitchd?.stop(3000)));
    await Promise.all(nodes.map((n) => n.ovsdb?.stop(3000)));
  };
  try {
    for (const node of cluster.nodes) {
      const dir = join(options.dir, `ovs-${node.name}`);
      mkdirSync(dir, { recursive: true });
      /** @type {Partial<OvsNode>} */
      const n = { name: node.name, dir };
      nodes.push(/** @type {OvsNode} */ (n));
      await ovsTool(world, node.name, dir, "ovsdb-tool", ["create", join(dir, "conf.db"), schema]);
      n.ovsdb = startDaemon(world, node.name, dir, "ovsdb-server", [
        join(dir, "conf.db"),
        `--remote=punix:${join(dir, "db.sock")}`,
      ]);
      await waitForSocket(n.ovsdb, join(dir, "db.sock"));
      await vsctl(world, node.name, dir, ["--no-wait", "init"]);
      n.vswitchd = startDaemon(world, node.name, dir, "ovs-vswitchd", [`unix:${join(dir, "db.sock")}`]);
      await waitForSocket(n.vswitchd, join(dir, "ovs-vswitchd.ctl"));
    }

    for (const node of cluster.nodes) {
      const n = nodes[node.index];
      const peer = cluster.nodes[1 - node.index];
      // br-phy gets a MAC of its own, not ul0's (which a netdev bridge would otherwise pick,
      // and which the OVS guide sets for a DPDK NIC): with a kernel port under it, tunnel frames
      // addressed to ul0's MAC would also climb the node's own IP stack, find no socket on UDP
      // 4789 and send ICMP port unreachables across the underlay. Addressed to br-phy's MAC,
      // the kernel's copy that ul0 receives is dropped as "other host" at once.
      const phyMac = brPhyMac(node.underlayIp);
      /** @type {string[]} */
      const tx = [
        ...["--", "add-br", "br-phy", "--", "set", "bridge", "br-phy", "datapath_type=netdev"],
        ...[`other_config:hwaddr="${phyMac}"`],
        ...["--", "add-port", "br-phy", node.underlayIf],
        ...["--", "add-br", "br-int", "--", "set", "bridge", "br-int", "datapath_type=netdev"],
        ...["--", "add-port", "br-int", "vxlan0", "--", "set", "interface", "vxlan0", "type=vxlan"],
        ...[`options:remote_ip=${peer.underlayIp}`, `options:local_ip=${node.underlayIp}`],
        ...[`options:key=${options.vni}`, "options:dst_port=4789"],
      ];
      await vsctl(world, node.name, n.dir, ["--timeout=10", ...tx]);
      // The underlay address belongs to br-phy now: the kernel routes the peer through it, and
      // OVS's route table (read from the kernel's) picks br-phy as the tunnel's way out.
      await world.ip(node.name, ["addr", "flush", "dev", node.underlayIf]);
      await world.ip(node.name, ["link", "set", "br-phy", "mtu", String(cluster.underlayMtu), "up"]);
      await world.ip(node.name, ["addr", "add", node.underlayCidr, "dev", "br-phy"]);
      await world.ip(node.name, ["link", "set", "br-int", "up"]);
    }

    /** @type {OvsOverlay["pods"]} */
    const pods = [];
    for (const spec of options.pods) {
      const node = cluster.nodes[spec.node];
      if (!node) throw new RangeError(`pod ${spec.name}: no node ${spec.node}`);
      await world.addNamespace(spec.name);
      const mac = podMac(spec.ip);
      const hostSide = `v${spec.name}`;
      await world.addVeth(
        { ns: spec.name, name: "eth0", addr: `${spec.ip}/16`, mac },
        { ns: node.name, name: hostSide },
        { mtu: podMtu },
      );
      await world.exec(spec.name, "ethtool", ["-K", "eth0", "tx", "off"]);
      await vsctl(world, node.name, nodes[spec.node].dir, ["--timeout=10", "add-port", "br-int", hostSide]);
      pods.push({ name: spec.name, ip: spec.ip, mac, node: spec.node });
    }

    const appctl = async (/** @type {number} */ node, /** @type {string[]} */ args) => {
      const n = nodes[node];
      const r = await ovsTool(world, n.name, n.dir, "ovs-appctl", [
        "-t",
        join(n.dir, "ovs-vswitchd.ctl"),
        ...args,
      ]);
      return r.stdout;
    };
    // OVS learns the kernel's routes from netlink; the tunnel needs the one through br-phy.
    for (const node of cluster.nodes) {
      const subnet = cluster.underlaySubnet;
      const until = Date.now() + TIMEOUT_MS;
      while (
        !(await appctl(node.index, ["ovs/route/show"]))
          .split("\n")
          .some((l) => l.includes(subnet) && l.includes("br-phy"))
      ) {
        if (Date.now() > until) throw new Error(`ovs on ${node.name}: no route to ${subnet} through br-phy`);
        await sleep(50);
      }
    }
    const version = (
      await ovsTool(world, cluster.nodes[0].name, nodes[0].dir, "ovs-vswitchd", ["--version"])
    ).stdout.split("\n")[0];
    return {
      nodes,
      pods,
      version,
      vswitchdPids: () => nodes.map((n) => n.vswitchd.pid),
      appctl,
      socketDrops: async () => {
        const sum = { underlayRcvbuf: 0, podPortsRcvbuf: 0 };
        for (const node of cluster.nodes) {
          const r = await world.exec(node.name, "ss", ["-H", "-0", "-a", "-m"], { allowFailure: true });
          for (const line of r.stdout.split("\n")) {
            const d = /skmem:\(.*\bd(\d+)\)/.exec(line);
            const port = /\*:(\S+)/.exec(line)?.[1];
            if (!d || !port) continue;
            if (port === node.underlayIf) sum.underlayRcvbuf += Number(d[1]);
            else if (options.pods.some((p) => `v${p.name}` === port)) sum.podPortsRcvbuf += Number(d[1]);
          }
        }
        return sum;
      },
      close,
    };
  } catch (e) {
    const logs = nodes.map((n) => `${n.dir}/ovs-vswitchd.log`).join(", ");
    await close();
    throw new Error(`${e instanceof Error ? e.message : String(e)} (logs: ${logs})`);
  }
}

/** The environment every OVS command of a node runs with: its run, log and database folders. @param {string} dir */
function ovsEnv(dir) {
  return [`OVS_RUNDIR=${dir}`, `OVS_LOGDIR=${dir}`, `OVS_DBDIR=${dir}`];
}

/**
 * A daemon in the foreground inside the node's namespace (`ip netns exec` and `env` both exec in
 * place, so the handle's pid is the daemon's), logging to a file in `dir` only.
 * @param {import("../dist/test/kit/netns/index.js").World} world @param {string} ns @param {string} dir
 * @param {string} daemon @param {string[]} args
 */
function startDaemon(world, ns, dir, daemon, args) {
  return world.start(ns, "env", [
    ...ovsEnv(dir),
    daemon,
    ...args,
    `--unixctl=${join(dir, `${daemon}.ctl`)}`,
    `--pidfile=${join(dir, `${daemon}.pid`)}`,
    `--log-file=${join(dir, `${daemon}.log`)}`,
    "-vconsole:off",
    "-vsyslog:off",
  ]);
}

/**
 * @param {import("../dist/test/kit/netns/index.js").World} world @param {string} ns @param {string} dir
 * @param {string} tool @param {string[]} args
 */
function ovsTool(world, ns, dir, tool, args) {
  return world.exec(ns, "env", [...ovsEnv(dir), tool, ...args], { timeoutMs: TIMEOUT_MS + 5000 });
}

/**
 * @param {import("../dist/test/kit/netns/index.js").World} world @param {string} ns @param {string} dir
 * @param {string[]} args
 */
function vsctl(world, ns, dir, args) {
  return ovsTool(world, ns, dir, "ovs-vsctl", [`--db=unix:${join(dir, "db.sock")}`, ...args]);
}

/** @param {import("../dist/test/kit/netns/index.js").NsProcess} proc @param {string} path */
async function waitForSocket(proc, path) {
  const until = Date.now() + TIMEOUT_MS;
  while (!existsSync(path)) {
    if (!proc.running) throw new Error(`${proc.command.join(" ")} exited early: ${proc.stderr.trim()}`);
    if (Date.now() > until) throw new Error(`${path} did not appear in ${TIMEOUT_MS} ms`);
    await sleep(20);
  }
}

/** A locally administered MAC for a node's br-phy: 02:0b + the underlay address. @param {string} ip */
function brPhyMac(ip) {
  return ["02", "0b", ...ip.split(".").map((o) => Number(o).toString(16).padStart(2, "0"))].join(":");
}

/**
 * Interoperability: a Linux kernel vxlan device, configured as an ordinary peer VTEP, exchanges
 * traffic with a pod behind the switch; tshark checks the VXLAN headers on the wire.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Switch } from "../../src/dataplane/switch.js";
import {
  addKernelVxlan,
  buildNodes,
  type Cluster,
  iperf3,
  kernelFdb,
  ping,
  pingUntil,
  podMac,
  startCapture,
  World,
} from "../kit/netns/index.js";
import { dropDelta, drops, portCounters, skipReason } from "./env.js";

const skip = skipReason("test/dataplane/interop.test.ts");

const VNI = 42;
const POD_IP = "172.30.1.2";
const KERNEL_IP = "172.30.2.2";
const POD_MAC = podMac(POD_IP);
const KERNEL_MAC = podMac(KERNEL_IP);

describe.skipIf(skip !== undefined)("kernel vxlan device as a peer VTEP", () => {
  let world: World | undefined;
  let sw: Switch | undefined;
  let cluster: Cluster;
  let portId = 0;
  // Node n1 runs the switch with one pod; node n2 is the foreign VTEP, its vxlan device the endpoint.
  const n1 = (): Cluster["nodes"][number] => cluster.nodes[0]!;
  const n2 = (): Cluster["nodes"][number] => cluster.nodes[1]!;
  const w = (): World => world!;

  /** (Re)creates the kernel side: vxlan device `vx` on `vni` holding KERNEL_IP, static entries. */
  async function kernelVtep(vni: number, opts: { staticNeigh: boolean }): Promise<void> {
    await w().ip("n2", ["link", "del", "vx"], { allowFailure: true });
    await addKernelVxlan(w(), {
      ns: "n2",
      name: "vx",
      vni,
      localIp: n2().underlayIp,
      dev: n2().underlayIf,
      mtu: cluster.underlayMtu - 50,
      mac: KERNEL_MAC,
      // A real wire carries finished inner checksums; over veth only this makes the kernel finish them.
      txChecksumOffload: false,
    });
    await w().ip("n2", ["addr", "add", `${KERNEL_IP}/16`, "dev", "vx"]);
    if (opts.staticNeigh) {
      await kernelFdb(w(), "n2", "vx", POD_MAC, n1().underlayIp);
      await w().ip("n2", ["neigh", "replace", POD_IP, "lladdr", POD_MAC, "dev", "vx", "nud", "permanent"]);
    } else {
      // Broadcast (ARP) and unknown unicast go to the switch's VTEP.
      await kernelFdb(w(), "n2", "vx", "00:00:00:00:00:00", n1().underlayIp, true);
    }
  }

  beforeAll(async () => {
    world = await World.create();
    try {
      cluster = await buildNodes(world, { count: 2 });
      sw = new Switch({ underlayIp: n1().underlayIp, netns: n1().nsPath });
      await world.addNamespace("p1");
      portId = sw.addPort({ name: "eth0", netns: world.nsPath("p1"), vni: VNI, mac: POD_MAC, ipv4: POD_IP });
      await world.ip("p1", ["addr", "add", `${POD_IP}/16`, "dev", "eth0"]);
      await world.ip("p1", ["link", "set", "eth0", "up"]);
      // The Linux vxlan device sends IPv4 VXLAN with a zero UDP checksum.
      sw.setPeers([{ ip: n2().underlayIp, checksummed: false }]);
      sw.updateRemotes([{ vni: VNI, mac: KERNEL_MAC, ipv4: KERNEL_IP, vtep: n2().underlayIp }]);
      await kernelVtep(VNI, { staticNeigh: true });
    } catch (e) {
      sw?.close();
      await world.destroy();
      throw e;
    }
  });

  afterAll(async () => {
    try {
      sw?.close();
    } finally {
      await world?.destroy();
    }
  });

  it("pings both ways with static fdb and neighbour entries", async () => {
    await pingUntil(w(), "p1", KERNEL_IP, 5);
    expect(await ping(w(), "p1", KERNEL_IP, { count: 5 })).toMatchObject({ received: 5, lossPct: 0 });
    expect(await ping(w(), "n2", POD_IP, { count: 5 })).toMatchObject({ received: 5, lossPct: 0 });
    const c = portCounters(sw!, portId);
    expect(c.inPackets).toBeGreaterThanOrEqual(10);
    expect(c.outPackets).toBeGreaterThanOrEqual(10);
  });

  it("puts RFC 7348 VXLAN on the wire, as tshark decodes it", async () => {
    const fields = [
      "ip.src",
      "ip.dst",
      "udp.srcport",
      "udp.dstport",
      "vxlan.flag_i",
      "vxlan.vni",
      "eth.src",
      "tcp.checksum.status",
    ];
    const cap = await startCapture(w(), "n1", n1().underlayIf, {
      filter: "udp port 4789",
      decodeAs: ["udp.port==4789,vxlan"],
      preferences: ["tcp.check_checksum:TRUE"],
      fields,
    });
    let packets;
    try {
      expect((await ping(w(), "p1", KERNEL_IP, { count: 3 })).lossPct).toBe(0);
      expect((await ping(w(), "n2", POD_IP, { count: 3 })).lossPct).toBe(0);
      // Paced, so the capture keeps up.
      const tcp = await iperf3(w(), "p1", "n2", KERNEL_IP, { seconds: 1, extraArgs: ["-b", "20M"] });
      expect(tcp.bytesReceived).toBeGreaterThan(500_000);
    } finally {
      packets = await cap.stop();
    }
    const fromSwitch = packets.filter((p) => p["ip.src"]?.[0] === n1().underlayIp);
    const fromKernel = packets.filter((p) => p["ip.src"]?.[0] === n2().underlayIp);
    expect(fromSwitch.length).toBeGreaterThanOrEqual(6);
    expect(fromKernel.length).toBeGreaterThanOrEqual(6);
    for (const p of packets) {
      expect(p["udp.dstport"]).toEqual(["4789"]);
      expect(p["vxlan.vni"]).toEqual([String(VNI)]);
      expect(["1", "True", "true"]).toContain(p["vxlan.flag_i"]?.[0]);
      expect(Number(p["udp.srcport"]?.[0])).toBeGreaterThan(0);
    }
    // Inner headers: the pod's own MAC and address inside the switch's datagrams, and every
    // inner TCP checksum finished before it left the node (Wireshark: 1 = good).
    for (const p of fromSwitch) {
      expect(p["ip.src"]).toEqual([n1().underlayIp, POD_IP]);
      expect(p["ip.dst"]).toEqual([n2().underlayIp, KERNEL_IP]);
      expect(p["eth.src"]?.[1]).toBe(POD_MAC);
    }
    const switchTcp = fromSwitch.filter((p) => (p["tcp.checksum.status"] ?? []).length > 0);
    expect(switchTcp.length).toBeGreaterThan(0);
    expect(switchTcp.filter((p) => p["tcp.checksum.status"]?.[0] !== "1")).toEqual([]);
    for (const p of fromKernel) expect(p["ip.src"]).toEqual([n2().underlayIp, KERNEL_IP]);
  });

  it("carries iperf3 TCP both ways between the pod and the kernel VTEP", async () => {
    const up = await iperf3(w(), "p1", "n2", KERNEL_IP, { seconds: 2 });
    expect(up.bytesReceived).toBeGreaterThan(1_000_000);
    const down = await iperf3(w(), "p1", "n2", KERNEL_IP, { seconds: 2, reverse: true });
    expect(down.bytesReceived).toBeGreaterThan(1_000_000);
  });

  it("answers the kernel's ARP, flooded over VXLAN, from the switch", async () => {
    await kernelVtep(VNI, { staticNeigh: false });
    await w().ip("n2", ["neigh", "flush", "dev", "vx"], { allowFailure: true });
    const r = await pingUntil(w(), "n2", POD_IP, 5);
    expect(r.received).toBe(1);
    expect(await ping(w(), "n2", POD_IP, { count: 3 })).toMatchObject({ lossPct: 0 });
    const neigh = await w().ip("n2", ["neigh", "show", POD_IP, "dev", "vx"]);
    expect(neigh.stdout).toContain(POD_MAC);
    expect(await ping(w(), "p1", KERNEL_IP, { count: 3 })).toMatchObject({ lossPct: 0 });
  });

  it("does not deliver from a kernel VTEP on another VNI", async () => {
    await kernelVtep(VNI + 1, { staticNeigh: true });
    const before = drops(sw!);
    const outBefore = portCounters(sw!, portId).outPackets;
    expect((await ping(w(), "n2", POD_IP, { count: 3, timeoutSec: 1 })).lossPct).toBe(100);
    expect(dropDelta(sw!, before).vxlan_unknown_vni).toBeGreaterThanOrEqual(3);
    expect(portCounters(sw!, portId).outPackets).toBe(outBefore);
    expect((await ping(w(), "p1", KERNEL_IP, { count: 2, timeoutSec: 1 })).lossPct).toBe(100);
  });

  it("drops VXLAN from an address that is not a peer", async () => {
    await kernelVtep(VNI, { staticNeigh: true });
    expect((await pingUntil(w(), "n2", POD_IP, 5)).received).toBe(1);
    sw!.setPeers([]);
    try {
      const before = drops(sw!);
      expect((await ping(w(), "n2", POD_IP, { count: 3, timeoutSec: 1 })).lossPct).toBe(100);
      expect(dropDelta(sw!, before).vxlan_unknown_peer).toBeGreaterThanOrEqual(3);
    } finally {
      sw!.setPeers([{ ip: n2().underlayIp, checksummed: false }]);
    }
    expect((await pingUntil(w(), "n2", POD_IP, 5)).received).toBe(1);
  });
});

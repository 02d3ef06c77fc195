/**
 * Two nodes joined by a veth underlay, a Switch per node, pods whose eth0 is the switch's TAP:
 * real ping and iperf3 within a node and across nodes, VNI isolation and its changes.
 * Every case runs twice: with TAP offloads on (TCP super-frames, cut into segments by the switch
 * and sent with UDP GSO) and off (the pods' kernels hand over wire-sized frames), so a change
 * to either path cannot break forwarding or isolation unnoticed. With offloads on the packet
 * threads poll after traffic (the default window), with them off they do not (pollUs 0), so
 * both ways a thread finds its next batch are exercised too.
 */
import { describe, expect, it } from "vitest";
import { iperf3, linkStats, ping, pingUntil, startCapture } from "../kit/netns/index.js";
import { dropDelta, drops, portCounters, skipReason, useSwitchedOverlay } from "./env.js";

const skip = skipReason("test/dataplane/overlay.test.ts");

const RED = 100;
const BLUE = 200;
const SHARED = 300;

/** The Switch option `offloads`, as named in the test titles, and the poll window bound with it. */
const MODES = [
  ["on, polling on", true, undefined],
  ["off, polling off", false, 0],
] as const;

// Each mode builds a world of its own, so the two modes run side by side; within a mode the
// cases run in order (they share pods and change VNIs).
describe.skipIf(skip !== undefined).each(MODES)(
  "offloads %s",
  { concurrent: true },
  (_, offloads, pollUs) => {
    describe.sequential("switch overlay across two nodes", () => overlaySuite(offloads, pollUs));
  },
);

function overlaySuite(offloads: boolean, pollUs: number | undefined): void {
  const { world: w, ov: o } = useSwitchedOverlay({
    switchOptions: pollUs === undefined ? { offloads } : { offloads, pollUs },
    pods: [
      { node: 0, name: "a1", ip: "172.30.1.2", vni: RED },
      { node: 0, name: "a2", ip: "172.30.1.3", vni: RED },
      { node: 0, name: "b1", ip: "172.30.1.4", vni: BLUE },
      { node: 0, name: "g1", ip: "172.30.1.5", vni: SHARED },
      { node: 1, name: "c1", ip: "172.30.2.2", vni: RED },
      { node: 1, name: "d1", ip: "172.30.2.3", vni: BLUE },
      { node: 1, name: "g2", ip: "172.30.2.4", vni: SHARED },
    ],
  });
  const ip = (name: string): string => o().pod(name).ip;

  it("gives pods eth0 with the pod MAC and MTU underlay - 50, and TSO as the mode says", async () => {
    const eth0 = await linkStats(w(), "a1", "eth0");
    expect(eth0.mac).toBe("0a:58:ac:1e:01:02");
    expect(eth0.mtu).toBe(1450);
    const feats = o().switchOf("a1").features();
    expect(feats.workers).toBeGreaterThanOrEqual(1);
    expect(feats.tso).toBe(offloads);
  });

  it("pings within a node", async () => {
    await pingUntil(w(), "a1", ip("a2"), 5);
    const r = await ping(w(), "a1", ip("a2"), { count: 5 });
    expect(r).toMatchObject({ sent: 5, received: 5, lossPct: 0 });
  });

  it("pings across nodes, both ways", async () => {
    await pingUntil(w(), "a1", ip("c1"), 5);
    expect(await ping(w(), "a1", ip("c1"), { count: 5 })).toMatchObject({ received: 5, lossPct: 0 });
    expect(await ping(w(), "c1", ip("a1"), { count: 5 })).toMatchObject({ received: 5, lossPct: 0 });
  });

  it("counts per-port traffic in and out on both nodes", async () => {
    const s1 = o().switchOf("a1");
    const s2 = o().switchOf("c1");
    const a1Before = portCounters(s1, o().pod("a1").portId);
    const c1Before = portCounters(s2, o().pod("c1").portId);
    const ulBefore = s1.counters().underlay;
    const r = await ping(w(), "a1", ip("c1"), { count: 5, size: 1000 });
    expect(r.received).toBe(5);
    const a1 = portCounters(s1, o().pod("a1").portId);
    const c1 = portCounters(s2, o().pod("c1").portId);
    expect(a1.name).toBe("eth0");
    expect(a1.vni).toBe(RED);
    expect(a1.inPackets - a1Before.inPackets).toBeGreaterThanOrEqual(5);
    expect(a1.inBytes - a1Before.inBytes).toBeGreaterThanOrEqual(5 * 1028);
    expect(a1.outPackets - a1Before.outPackets).toBeGreaterThanOrEqual(5);
    expect(c1.outPackets - c1Before.outPackets).toBeGreaterThanOrEqual(5);
    expect(c1.inPackets - c1Before.inPackets).toBeGreaterThanOrEqual(5);
    const ul = s1.counters().underlay;
    expect(ul.txDatagrams - ulBefore.txDatagrams).toBeGreaterThanOrEqual(5);
    expect(ul.rxDatagrams - ulBefore.rxDatagrams).toBeGreaterThanOrEqual(5);
  });

  it("keeps different VNIs apart on one node (100% loss, ARP unanswered, vni_mismatch)", async () => {
    const s1 = o().switchOf("a1");
    let before = drops(s1);
    expect((await ping(w(), "a1", ip("b1"), { count: 3, timeoutSec: 1 })).lossPct).toBe(100);
    expect(dropDelta(s1, before).arp_unanswered).toBeGreaterThanOrEqual(1);

    // With the neighbour entry forced, frames reach the switch and die on the VNI check.
    await w().ip("a1", [
      "neigh",
      "replace",
      ip("b1"),
      "lladdr",
      o().pod("b1").mac,
      "dev",
      "eth0",
      "nud",
      "permanent",
    ]);
    try {
      before = drops(s1);
      const b1Before = portCounters(s1, o().pod("b1").portId);
      expect((await ping(w(), "a1", ip("b1"), { count: 3, timeoutSec: 1 })).lossPct).toBe(100);
      expect(dropDelta(s1, before).vni_mismatch).toBeGreaterThanOrEqual(3);
      expect(portCounters(s1, o().pod("b1").portId).outPackets).toBe(b1Before.outPackets);
    } finally {
      await w().ip("a1", ["neigh", "del", ip("b1"), "dev", "eth0"], { allowFailure: true });
    }
  });

  it("keeps different VNIs apart across nodes, checked by sender and by receiver", async () => {
    const s1 = o().switchOf("a1");
    const s2 = o().switchOf("d1");
    expect((await ping(w(), "a1", ip("d1"), { count: 3, timeoutSec: 1 })).lossPct).toBe(100);
    expect((await ping(w(), "d1", ip("a1"), { count: 3, timeoutSec: 1 })).lossPct).toBe(100);

    await w().ip("a1", [
      "neigh",
      "replace",
      ip("d1"),
      "lladdr",
      o().pod("d1").mac,
      "dev",
      "eth0",
      "nud",
      "permanent",
    ]);
    try {
      // Sender side: node 1 knows d1 is BLUE and refuses to send RED frames to it.
      let before1 = drops(s1);
      expect((await ping(w(), "a1", ip("d1"), { count: 3, timeoutSec: 1 })).lossPct).toBe(100);
      expect(dropDelta(s1, before1).vni_mismatch).toBeGreaterThanOrEqual(3);

      // Receiver side: node 1 holds a stale entry (d1 on RED) and sends; node 2 must refuse.
      const d1 = o().pod("d1");
      const vtep2 = o().cluster.nodes[1]!.underlayIp;
      s1.updateRemotes([{ vni: RED, mac: d1.mac, ipv4: d1.ip, vtep: vtep2 }]);
      before1 = drops(s1);
      const before2 = drops(s2);
      const d1Before = portCounters(s2, d1.portId);
      const txBefore = s1.counters().underlay.txDatagrams;
      expect((await ping(w(), "a1", ip("d1"), { count: 3, timeoutSec: 1 })).lossPct).toBe(100);
      expect(s1.counters().underlay.txDatagrams - txBefore).toBeGreaterThanOrEqual(3);
      expect(dropDelta(s2, before2).vni_mismatch).toBeGreaterThanOrEqual(3);
      expect(portCounters(s2, d1.portId).outPackets).toBe(d1Before.outPackets);
    } finally {
      o().programRemotes();
      await w().ip("a1", ["neigh", "del", ip("d1"), "dev", "eth0"], { allowFailure: true });
    }
  });

  it("lets pods talk after a VNI change, and parts them again after the change back", async () => {
    o().setPodVni("b1", RED);
    o().setPodVni("d1", RED);
    expect(portCounters(o().switchOf("b1"), o().pod("b1").portId).vni).toBe(RED);
    expect((await pingUntil(w(), "a1", ip("b1"), 5)).received).toBe(1);
    expect(await ping(w(), "a1", ip("b1"), { count: 3 })).toMatchObject({ lossPct: 0 });
    expect((await pingUntil(w(), "a1", ip("d1"), 5)).received).toBe(1);
    expect(await ping(w(), "d1", ip("a1"), { count: 3 })).toMatchObject({ lossPct: 0 });
    expect(await ping(w(), "b1", ip("d1"), { count: 3 })).toMatchObject({ lossPct: 0 });

    // Back to BLUE while a1 still has both in its ARP cache: frames reach the switch and stop there.
    o().setPodVni("b1", BLUE);
    o().setPodVni("d1", BLUE);
    expect((await ping(w(), "a1", ip("b1"), { count: 3, timeoutSec: 1 })).lossPct).toBe(100);
    expect((await ping(w(), "a1", ip("d1"), { count: 3, timeoutSec: 1 })).lossPct).toBe(100);
    expect(await ping(w(), "b1", ip("d1"), { count: 3 })).toMatchObject({ lossPct: 0 });
  });

  it("a global VNI reaches every VNI, and only it does", async () => {
    expect((await ping(w(), "a1", ip("g2"), { count: 2, timeoutSec: 1 })).lossPct).toBe(100);
    o().setGlobalVnis([SHARED]);
    try {
      for (const [from, to] of [
        ["a1", "g1"],
        ["b1", "g1"],
        ["a1", "g2"],
        ["d1", "g2"],
        ["b1", "g2"],
        ["g1", "c1"],
        ["g2", "b1"],
      ] as const) {
        await pingUntil(w(), from, ip(to), 5);
        expect(await ping(w(), from, ip(to), { count: 2 }), `${from} -> ${to}`).toMatchObject({ lossPct: 0 });
      }
      expect((await ping(w(), "a1", ip("b1"), { count: 2, timeoutSec: 1 })).lossPct).toBe(100);
      expect((await ping(w(), "a1", ip("d1"), { count: 2, timeoutSec: 1 })).lossPct).toBe(100);
    } finally {
      o().setGlobalVnis([]);
    }
    expect((await ping(w(), "a1", ip("g2"), { count: 2, timeoutSec: 1 })).lossPct).toBe(100);
  });

  it("puts the sender's VNI on the wire and keeps ARP off it (tshark)", async () => {
    await w().ip("a1", ["neigh", "flush", "dev", "eth0"]);
    await w().ip("b1", ["neigh", "flush", "dev", "eth0"]);
    const cap = await startCapture(w(), "n1", o().cluster.nodes[0]!.underlayIf, {
      filter: "udp port 4789",
      decodeAs: ["udp.port==4789,vxlan"],
      fields: [
        "ip.src",
        "ip.dst",
        "udp.srcport",
        "udp.checksum",
        "vxlan.flag_i",
        "vxlan.vni",
        "arp.opcode",
        "icmp.type",
      ],
    });
    let packets;
    try {
      expect((await ping(w(), "a1", ip("c1"), { count: 3 })).lossPct).toBe(0);
      o().setGlobalVnis([SHARED]);
      try {
        await pingUntil(w(), "b1", ip("g2"), 5);
        expect((await ping(w(), "b1", ip("g2"), { count: 3 })).lossPct).toBe(0);
      } finally {
        o().setGlobalVnis([]);
      }
    } finally {
      packets = await cap.stop();
    }
    expect(packets.filter((p) => (p["arp.opcode"] ?? []).length > 0)).toEqual([]);
    const flow = (src: string, dst: string): typeof packets =>
      packets.filter((p) => p["ip.src"]?.[1] === ip(src) && p["ip.dst"]?.[1] === ip(dst));
    const expectations: [string, string, number][] = [
      ["a1", "c1", RED],
      ["c1", "a1", RED],
      ["b1", "g2", BLUE],
      ["g2", "b1", SHARED],
    ];
    for (const [src, dst, vni] of expectations) {
      const f = flow(src, dst);
      expect(f.length, `${src} -> ${dst}`).toBeGreaterThanOrEqual(3);
      for (const p of f) {
        expect(p["vxlan.vni"], `${src} -> ${dst}`).toEqual([String(vni)]);
        expect(["1", "True", "true"]).toContain(p["vxlan.flag_i"]?.[0]);
        // Switches always send a UDP checksum (their peers are told checksummed: true).
        expect(p["udp.checksum"]?.[0]).not.toBe("0x0000");
      }
    }
  });

  it("derives the outer UDP source port from the inner flow: one flow, one port", async () => {
    const cap = await startCapture(w(), "n1", o().cluster.nodes[0]!.underlayIf, {
      filter: "udp port 4789",
      decodeAs: ["udp.port==4789,vxlan"],
      fields: ["ip.src", "ip.dst", "udp.srcport", "icmp.seq"],
    });
    let packets;
    try {
      // Every round is a new ping (a new ICMP id, so possibly another TAP queue inside the pod)
      // and starts with ARP resolution; for the switch's flow hash all of it is one flow.
      for (let round = 0; round < 8; round++) {
        await w().ip("a1", ["neigh", "flush", "dev", "eth0"]);
        expect((await ping(w(), "a1", ip("c1"), { count: 2 })).lossPct).toBe(0);
      }
    } finally {
      packets = await cap.stop();
    }
    const requests = packets.filter((p) => p["ip.src"]?.[1] === ip("a1") && p["ip.dst"]?.[1] === ip("c1"));
    expect(requests.length).toBeGreaterThanOrEqual(16);
    const ports = requests.map((p) => `seq ${p["icmp.seq"]?.[0]}: ${p["udp.srcport"]?.[0]}`);
    expect(new Set(requests.map((p) => p["udp.srcport"]?.[0])).size, ports.join(", ")).toBe(1);
  });

  it("drops frames with a source address that is not the pod's own", async () => {
    const s1 = o().switchOf("a1");
    await w().ip("a1", ["addr", "add", "172.30.1.99/16", "dev", "eth0"]);
    try {
      const before = drops(s1);
      const r = await ping(w(), "a1", ip("a2"), { count: 2, timeoutSec: 1 });
      expect(r.lossPct).toBe(0);
      const spoofed = await w().exec(
        "a1",
        "ping",
        ["-n", "-q", "-c", "2", "-W", "1", "-I", "172.30.1.99", ip("a2")],
        {
          allowFailure: true,
        },
      );
      expect(spoofed.stdout).toMatch(/100% packet loss/);
      const d = dropDelta(s1, before);
      expect((d.spoofed_ip ?? 0) + (d.arp_spoofed ?? 0)).toBeGreaterThanOrEqual(1);
    } finally {
      await w().ip("a1", ["addr", "del", "172.30.1.99/16", "dev", "eth0"], { allowFailure: true });
    }
  });

  it("carries an iperf3 TCP transfer across nodes, both directions", async () => {
    const s1 = o().switchOf("a1");
    const s2 = o().switchOf("c1");
    const c1Before = portCounters(s2, o().pod("c1").portId);
    const ulBefore = s1.counters().underlay;
    const up = await iperf3(w(), "a1", "c1", ip("c1"), { seconds: 2 });
    expect(up.bytesReceived).toBeGreaterThan(1_000_000);
    const c1 = portCounters(s2, o().pod("c1").portId);
    expect(c1.outBytes - c1Before.outBytes).toBeGreaterThanOrEqual(up.bytesReceived);
    // Offloads on: super-frames leave as UDP GSO sends of many datagrams; off: one datagram each.
    const ul = s1.counters().underlay;
    const datagrams = ul.txDatagrams - ulBefore.txDatagrams;
    const sends = ul.txSends - ulBefore.txSends;
    if (offloads) expect(datagrams).toBeGreaterThan(sends);
    else expect(datagrams).toBe(sends);
    const down = await iperf3(w(), "a1", "c1", ip("c1"), { seconds: 2, reverse: true });
    expect(down.bytesReceived).toBeGreaterThan(1_000_000);
  });

  it("carries iperf3 TCP within a node", async () => {
    const r = await iperf3(w(), "a1", "a2", ip("a2"), { seconds: 2 });
    expect(r.bytesReceived).toBeGreaterThan(1_000_000);
  });
}

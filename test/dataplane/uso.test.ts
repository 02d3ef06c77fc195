/**
 * UDP segmentation offload: where the kernel's TAP takes USO (Linux 6.2+), a pod's UDP GSO send
 * (one sendmsg with UDP_SEGMENT, as QUIC stacks do) reaches the switch as one super-frame. The
 * switch cuts it into datagrams with their own IPv4 and UDP headers and checksums and sends them
 * as one UDP GSO send towards another node, or hands it whole to a pod on the same node.
 *
 * Sender and receiver are python3 one-liners in the pods (node has no UDP_SEGMENT): every
 * datagram carries its index and a pattern derived from it, and the receiver checks both.
 */
import { describe, expect, it } from "vitest";
import { dropDelta, drops, skipReason, useSwitchedOverlay } from "./env.js";

const skip = skipReason("test/dataplane/uso.test.ts");

const VNI = 100;

/** Pods' own IPv6 neighbour discovery and multicast are counted as `flood`; nothing else may drop. */
function withoutFlood(d: Record<string, number>): Record<string, number> {
  const { flood: _flood, ...rest } = d;
  return rest;
}
const PORT = 9999;
const SEG = 1000; // payload bytes per datagram
const PER_SEND = 20; // datagrams per GSO send
const SENDS = 50;

const RECEIVER = `
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
s.bind(("0.0.0.0", ${PORT}))
print("ready", flush=True)
s.settimeout(3)
seen, bad = set(), 0
try:
    while len(seen) < ${PER_SEND * SENDS}:
        d = s.recv(65535)
        i = int.from_bytes(d[:4], "big")
        if len(d) != ${SEG} or d[4:] != bytes([(i * 7 + k) & 255 for k in range(${SEG - 4})]):
            bad += 1
        seen.add(i)
except socket.timeout:
    pass
print(len(seen), bad, flush=True)
`;

const SENDER = (dst: string) => `
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_UDP, 103, ${SEG})  # UDP_SEGMENT
for n in range(${SENDS}):
    buf = b"".join(i.to_bytes(4, "big") + bytes([(i * 7 + k) & 255 for k in range(${SEG - 4})])
                   for i in range(n * ${PER_SEND}, (n + 1) * ${PER_SEND}))
    s.sendto(buf, ("${dst}", ${PORT}))
    time.sleep(0.002)
`;

describe.skipIf(skip !== undefined)("UDP GSO from pods (USO)", () => {
  const built = useSwitchedOverlay({
    pods: [
      { node: 0, name: "u1", ip: "172.30.1.2", vni: VNI },
      { node: 0, name: "u2", ip: "172.30.1.3", vni: VNI },
      { node: 1, name: "u3", ip: "172.30.2.2", vni: VNI },
    ],
  });

  /** Runs the receiver in `to`, the sender in `from`; returns [distinct datagrams, bad ones]. */
  async function transfer(from: string, to: string): Promise<[number, number]> {
    const w = built.world();
    const o = built.ov();
    const rx = w.start(o.pod(to).ns, "python3", ["-c", RECEIVER]);
    try {
      const deadline = Date.now() + 5000;
      while (!rx.stdout.includes("ready")) {
        if (!rx.running || Date.now() > deadline) throw new Error(`receiver did not start: ${rx.stderr}`);
        await new Promise((r) => setTimeout(r, 20));
      }
      await w.exec(o.pod(from).ns, "python3", ["-c", SENDER(o.pod(to).ip)], { timeoutMs: 20_000 });
      await rx.exited;
      const [seen, bad] = rx.stdout.trim().split("\n").at(-1)!.split(" ").map(Number);
      return [seen!, bad!];
    } finally {
      await rx.stop();
    }
  }

  it("is offered on this kernel (reported in features)", () => {
    expect(built.ov().switchOf("u1").features().uso).toBe(true);
  });

  it("cuts a pod's UDP GSO sends into checksummed datagrams for another node, sent as GSO", async () => {
    const sw = built.ov().switchOf("u1");
    // The receiving switch treats this peer as unchecksummed, so it claims nothing about the
    // inner checksums and u3's kernel verifies every UDP checksum the sending switch wrote.
    built
      .ov()
      .switchOf("u3")
      .setPeers([{ ip: built.ov().cluster.nodes[0]!.underlayIp, checksummed: false }]);
    const before = sw.counters().underlay;
    const dropsBefore = drops(sw);
    const [seen, bad] = await transfer("u1", "u3");
    expect({ seen, bad }).toEqual({ seen: PER_SEND * SENDS, bad: 0 });
    const after = sw.counters().underlay;
    const datagrams = after.txDatagrams - before.txDatagrams;
    const sends = after.txSends - before.txSends;
    expect(datagrams).toBeGreaterThanOrEqual(PER_SEND * SENDS);
    // Without USO every datagram would be its own TAP read and its own message.
    expect(sends).toBeLessThan(datagrams / 5);
    expect(withoutFlood(dropDelta(sw, dropsBefore))).toEqual({});
  }, 40_000);

  it("merges a flow's consecutive datagrams from a checksummed peer into one TAP write", async () => {
    const sw = built.ov().switchOf("u1");
    const before = sw.counters().underlay.coalescedWrites;
    const dropsBefore = drops(sw);
    const [seen, bad] = await transfer("u3", "u1");
    expect({ seen, bad }).toEqual({ seen: PER_SEND * SENDS, bad: 0 });
    // Each GSO send arrives as one GRO batch of PER_SEND datagrams: most become one write.
    expect(sw.counters().underlay.coalescedWrites - before).toBeGreaterThanOrEqual(SENDS / 2);
    expect(withoutFlood(dropDelta(sw, dropsBefore))).toEqual({});
  }, 40_000);

  it("hands a pod's UDP super-frame whole to a pod on the same node", async () => {
    const sw = built.ov().switchOf("u1");
    const dropsBefore = drops(sw);
    const [seen, bad] = await transfer("u1", "u2");
    expect({ seen, bad }).toEqual({ seen: PER_SEND * SENDS, bad: 0 });
    expect(withoutFlood(dropDelta(sw, dropsBefore))).toEqual({});
  }, 40_000);
});

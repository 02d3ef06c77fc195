/**
 * Byte-exact delivery: 64 MiB of random bytes sent over TCP from a pod on one node to a pod on
 * the other, through both switches, arrive with the SHA-256 they left with. It runs once per
 * offload path, and the switches' counters show that the path taken is the one named:
 *
 *  (a) offloads on, checksummed peers: TAP super-frames cut into segments in userspace and sent
 *      as UDP GSO; received segments merged into GSO TAP writes.
 *  (b) offloads on, peers not checksummed: segmented and sent as UDP GSO; delivered one by one.
 *  (c) offloads off, peers not checksummed: wire-sized frames, one datagram per send, no merging.
 *
 * The packet threads poll after traffic (the default window) in (a) and (c), and do not in (b)
 * and (d), path (a) again with polling off: how a thread finds its next batch must not change
 * what it carries.
 */
import { createHash, randomBytes } from "node:crypto";
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Switch, SwitchCounters } from "../../src/dataplane/switch.js";
import { pingUntil, sleep } from "../kit/netns/index.js";
import { dropDelta, drops, type DropCounts, portCounters, skipReason, useSwitchedOverlay } from "./env.js";

const skip = skipReason("test/dataplane/integrity.test.ts");

const SIZE = 64 * 1024 * 1024;
const PORT = 5301;
const VNI = 100;
const SCRIPT = fileURLToPath(new URL("./transfer.mjs", import.meta.url));
/** Drops that would mean the switch mangled or lost frames it should have carried. */
const NEVER_DROPPED = ["frame_short", "bad_vnet_hdr", "bad_ipv4", "oversize", "tap_write", "vxlan_short"];

interface Mode {
  title: string;
  offloads: boolean;
  checksummed: boolean;
  /** The Switch's pollUs; undefined = its default (polling on). */
  pollUs?: number;
}

const MODES: Mode[] = [
  { title: "(a) offloads on, checksummed peers: segmented and coalesced", offloads: true, checksummed: true },
  {
    title: "(b) offloads on, peers not checksummed: segmented only; polling off",
    offloads: true,
    checksummed: false,
    pollUs: 0,
  },
  { title: "(c) offloads off, peers not checksummed: neither", offloads: false, checksummed: false },
  {
    title: "(d) as (a), polling off: segmented and coalesced",
    offloads: true,
    checksummed: true,
    pollUs: 0,
  },
];

/** Sender's pod, receiver's pod. */
const DIRECTIONS = [
  ["p1", "p2"],
  ["p2", "p1"],
] as const;

interface Digest {
  bytes: number;
  sha256: string;
}

function parseDigest(what: string, out: string): Digest {
  const line = out
    .split("\n")
    .map((l) => l.trim())
    .find((l) => l.startsWith("{"));
  if (!line) throw new Error(`${what}: no digest in output: ${out.slice(0, 500)}`);
  return JSON.parse(line) as Digest;
}

/** Counters of one switch, for deltas over a transfer. */
interface Snapshot {
  underlay: SwitchCounters["underlay"];
  drops: DropCounts;
}

function snapshot(sw: Switch): Snapshot {
  return { underlay: { ...sw.counters().underlay }, drops: drops(sw) };
}

function underlayDelta(sw: Switch, before: Snapshot): SwitchCounters["underlay"] {
  const now = sw.counters().underlay;
  const delta = { ...now };
  for (const k of Object.keys(now) as (keyof typeof now)[]) delta[k] = now[k] - before.underlay[k];
  return delta;
}

describe.skipIf(skip !== undefined)("TCP transfer integrity across two nodes", () => {
  let dir: string | undefined;
  let file = "";
  let fileSha = "";

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "overlay-integrity-"));
    file = join(dir, "random.bin");
    const hash = createHash("sha256");
    const fd = openSync(file, "w");
    try {
      for (let done = 0; done < SIZE; done += 1 << 20) {
        const chunk = randomBytes(1 << 20);
        hash.update(chunk);
        writeSync(fd, chunk);
      }
    } finally {
      closeSync(fd);
    }
    fileSha = hash.digest("hex");
  });

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  for (const mode of MODES) describe(mode.title, () => modeSuite(mode));

  function modeSuite({ offloads, checksummed, pollUs }: Mode): void {
    const { world: w, ov: o } = useSwitchedOverlay(
      {
        switchOptions: pollUs === undefined ? { offloads } : { offloads, pollUs },
        pods: [
          { node: 0, name: "p1", ip: "172.30.1.2", vni: VNI },
          { node: 1, name: "p2", ip: "172.30.2.2", vni: VNI },
        ],
      },
      async (ov, world) => {
        for (const n of ov.nodes) {
          const others = ov.cluster.nodes.filter((x) => x !== n.info);
          n.sw.setPeers(others.map((x) => ({ ip: x.underlayIp, checksummed })));
        }
        expect((await pingUntil(world, "p1", ov.pod("p2").ip, 10)).received).toBe(1);
      },
    );

    /** Receiver started in `to`, sender run in `from`; both digests. The receiver is always stopped. */
    async function transfer(from: string, to: string): Promise<{ sent: Digest; received: Digest }> {
      const ip = o().pod(to).ip;
      const rx = w().start(to, process.execPath, [SCRIPT, "receive", ip, String(PORT)]);
      try {
        for (let i = 0; !rx.stdout.includes("listening"); i++) {
          if (!rx.running || i > 100) throw new Error(`receiver in ${to} not listening: ${rx.stderr}`);
          await sleep(50);
        }
        const tx = await w().exec(from, process.execPath, [SCRIPT, "send", ip, String(PORT), file], {
          timeoutMs: 130_000,
        });
        const status = await Promise.race([rx.exited, sleep(10_000).then(() => undefined)]);
        if (status?.code !== 0) throw new Error(`receiver in ${to}: ${JSON.stringify(status)}: ${rx.stderr}`);
        return {
          sent: parseDigest(`sender in ${from}`, tx.stdout),
          received: parseDigest(`receiver in ${to}`, rx.stdout),
        };
      } finally {
        await rx.stop();
      }
    }

    it("runs with the offloads the mode names", () => {
      const f = o().switchOf("p1").features();
      expect(f.tso).toBe(offloads);
      if (pollUs !== undefined) expect(f.pollUs).toBe(pollUs);
      // Without UDP GSO the switch would send one datagram per segment: (a) and (b) need it.
      if (offloads) expect(f.udpGso).toBe(true);
    });

    it.each(DIRECTIONS)(
      "carries 64 MiB from %s to %s intact",
      async (from, to) => {
        const tx = o().switchOf(from);
        const rx = o().switchOf(to);
        const txBefore = snapshot(tx);
        const rxBefore = snapshot(rx);
        const portBefore = portCounters(rx, o().pod(to).portId);

        const { sent, received } = await transfer(from, to);

        expect(sent).toEqual({ bytes: SIZE, sha256: fileSha });
        expect(received).toEqual({ bytes: SIZE, sha256: fileSha });

        const out = underlayDelta(tx, txBefore);
        const back = underlayDelta(rx, rxBefore);
        const port = portCounters(rx, o().pod(to).portId);
        const evidence = JSON.stringify({ sender: out, receiver: back });
        // Every byte crossed the underlay, as at least one datagram per MSS (< 1450 bytes).
        expect(out.txBytes, evidence).toBeGreaterThan(SIZE);
        expect(out.txDatagrams, evidence).toBeGreaterThan(SIZE / 1450);
        expect(port.outBytes - portBefore.outBytes, evidence).toBeGreaterThan(SIZE);
        if (offloads) {
          // Super-frames were segmented here and left as UDP GSO sends of many datagrams each.
          expect(out.txDatagrams, evidence).toBeGreaterThan(2 * out.txSends);
        } else {
          expect(out.txDatagrams, evidence).toBe(out.txSends);
        }
        if (checksummed) {
          // The receiving switch merged segments into GSO TAP writes: fewer writes than segments.
          expect(back.coalescedWrites, evidence).toBeGreaterThan(0);
          expect(port.outPackets - portBefore.outPackets, evidence).toBeGreaterThanOrEqual(
            2 * back.coalescedWrites,
          );
        } else {
          expect(back.coalescedWrites, evidence).toBe(0);
          expect(out.coalescedWrites, evidence).toBe(0);
        }
        for (const [sw, before] of [
          [tx, txBefore],
          [rx, rxBefore],
        ] as const) {
          const d = dropDelta(sw, before.drops);
          for (const reason of NEVER_DROPPED)
            expect(d[reason] ?? 0, `${reason}: ${JSON.stringify(d)}`).toBe(0);
        }
      },
      150_000,
    );
  }
});

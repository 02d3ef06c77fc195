/**
 * A perf tier's cap holds end to end: a pod attached through the CNI plugin with a capped tier
 * (`medium`) moves at most the tier's bandwidth (within 5%) to a pod on the other node, and a good
 * part of it (a cap, not a throttle), while a best-effort pod on the same node is not slowed down.
 * The same holds for what it receives (shaped in its namespace, IFB + tbf).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { iperf3 } from "../kit/netns/index.js";
import { agentLogs, show, skipReason, startCluster, type LocalCluster, type Pod } from "./cluster.js";

const skip = skipReason("test/e2e/perftier.test.ts");

const CAPPED_TIER = "medium";
const SECONDS = 3;

describe.skipIf(skip !== undefined)("perf tiers on the overlay", () => {
  let cluster: LocalCluster | undefined;
  let cap = 0;
  let capped: Pod | undefined;
  let free: Pod | undefined;
  let server: Pod | undefined;

  beforeAll(async () => {
    const c = await startCluster({ store: "sqlite", nodes: 2 });
    cluster = c;
    const tiers = await c.dctl(["perf-tier", "list", "-o", "json"]);
    expect(tiers.code, show(tiers)).toBe(0);
    const tier = (JSON.parse(tiers.stdout) as { name: string; maxBitsPerSecond: number | null }[]).find(
      (t) => t.name === CAPPED_TIER,
    );
    if (tier?.maxBitsPerSecond == null) throw new Error(`tier ${CAPPED_TIER} has no cap: ${tiers.stdout}`);
    cap = tier.maxBitsPerSecond;
    const created = await c.dctl(["network", "overlay", "create", "red", "-s", "172.30.0.0/16"]);
    expect(created.code, show(created)).toBe(0);
    capped = await c.addPod(0, "perf", "capped", { network: "red", perfTier: CAPPED_TIER });
    free = await c.addPod(0, "perf", "free", { network: "red", perfTier: "best-effort" });
    server = await c.addPod(1, "perf", "server", { network: "red", perfTier: "best-effort" });
    for (const p of [capped, free]) {
      const r = await c.pingUntil(p, server.ip, "reach");
      expect(r.received, `${p.name} -> server: ${r.output}\n${agentLogs(c)}`).toBeGreaterThan(0);
    }
  }, 90_000);

  afterAll(async () => {
    await cluster?.close();
  }, 60_000);

  const run = async (
    client: Pod,
    options: { udpBitsPerSec?: number; reverse?: boolean } = {},
  ): Promise<number> => {
    const c = cluster;
    if (c?.world === undefined || server === undefined) throw new Error("cluster did not start");
    const r = await iperf3(c.world, client.short, server.short, server.ip, { seconds: SECONDS, ...options });
    expect(r.bytesReceived).toBeGreaterThan(0);
    const what =
      (options.udpBitsPerSec === undefined ? "TCP" : `UDP at ${options.udpBitsPerSec / 1e6} Mbit/s`) +
      (options.reverse ? " to it" : " from it");
    console.log(
      `${client.name}: ${what}: ${(r.bitsPerSecond / 1e6).toFixed(1)} Mbit/s received` +
        (r.retransmits === undefined ? "" : `, ${r.retransmits} retransmits`) +
        (r.lostPercent === undefined ? "" : `, ${r.lostPercent.toFixed(1)}% lost`) +
        ` (the ${CAPPED_TIER} cap is ${cap / 1e6} Mbit/s)`,
    );
    return r.bitsPerSecond;
  };
  const cappedPod = (): Pod => {
    if (capped === undefined) throw new Error("no capped pod");
    return capped;
  };

  it(`holds what a ${CAPPED_TIER} pod sends over TCP to the tier's bandwidth`, async () => {
    expect(await run(cappedPod())).toBeLessThanOrEqual(cap * 1.05);
  }, 40_000);

  it(`passes a ${CAPPED_TIER} pod's UDP at the tier's bandwidth and no more`, async () => {
    const bps = await run(cappedPod(), { udpBitsPerSec: cap * 1.6 });
    expect(bps).toBeLessThanOrEqual(cap * 1.05);
    expect(bps).toBeGreaterThan(cap * 0.8);
  }, 40_000);

  it(`lets a ${CAPPED_TIER} pod's TCP flow use at least half the tier's bandwidth`, async () => {
    expect(await run(cappedPod())).toBeGreaterThan(cap * 0.5);
  }, 40_000);

  it(`holds what a ${CAPPED_TIER} pod receives over TCP to the tier's bandwidth, and gives it most of it`, async () => {
    const bps = await run(cappedPod(), { reverse: true });
    expect(bps).toBeLessThanOrEqual(cap * 1.05);
    expect(bps).toBeGreaterThan(cap * 0.5);
  }, 40_000);

  it("does not slow down a best-effort pod on the same node", async () => {
    if (free === undefined) throw new Error("no best-effort pod");
    expect(await run(free)).toBeGreaterThan(cap * 2);
    expect(await run(free, { reverse: true })).toBeGreaterThan(cap * 2);
  }, 40_000);

  it(`removes the ${CAPPED_TIER} pod's ingress shaper with the pod (CNI DEL)`, async () => {
    const c = cluster;
    const p = cappedPod();
    if (c?.world === undefined) throw new Error("cluster did not start");
    const shaper = () => c.world!.ip(p.short, ["link", "show", "dev", "ovin-eth0"], { allowFailure: true });
    expect((await shaper()).code).toBe(0);
    const del = await c.delPod(p);
    expect(del.code, show(del)).toBe(0);
    expect((await shaper()).code).not.toBe(0);
  }, 40_000);
});

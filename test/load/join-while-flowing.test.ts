/**
 * A namespace join and a later isolation while traffic flows: two coffee pods on different nodes
 * run an iperf3 TCP transfer (reported every 0.5 s) and a ping every 10 ms; meanwhile
 * `dctl network overlay update red --join-namespaces coffee,tea` takes effect (coffee reaches
 * tea), then `--isolate-namespaces tea` does (coffee no longer reaches tea). Asserted: the
 * transfer completes without error, moves bytes in every interval, and the ping loses nothing.
 * The tea pair pings through the same changes, and its outcome is reported.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { iperf3Server, parseIperf3, sleep, type Iperf3Server } from "../kit/netns/index.js";
import {
  createOverlay,
  show,
  skipReason,
  startCluster,
  type LocalCluster,
  type Pod,
} from "../e2e/cluster.js";
import { endpointsOf, inPod } from "./helpers.js";

const FILE = "test/load/join-while-flowing.test.ts";
const skip = skipReason(FILE);

const IPERF_SECONDS = 25;
/** Echo requests 10 ms apart: a little shorter than the transfer, longer than both changes. */
const PINGS = 2200;
const ANNOTATION = { network: "red" };

interface Interval {
  sum?: { bytes?: number; start?: number; end?: number };
}

function pingSummary(text: string): { sent: number; received: number } {
  const m = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(text);
  return m ? { sent: Number(m[1]), received: Number(m[2]) } : { sent: 0, received: 0 };
}

describe.skipIf(skip !== undefined)("a namespace join while traffic flows", () => {
  let cluster: LocalCluster | undefined;
  let server: Iperf3Server | undefined;

  beforeAll(async () => {
    cluster = await startCluster({ store: "etcd", nodes: 2 });
    await createOverlay(cluster, "red", "172.30.0.0/16");
    for (const ns of ["coffee", "tea"]) {
      const r = await cluster.dctl(["namespace", "create", ns]);
      expect(r.code, show(r)).toBe(0);
    }
  }, 120_000);

  afterAll(async () => {
    await server?.stop();
    await cluster?.close();
  }, 60_000);

  it("keeps the coffee pair's TCP transfer and ping whole through join and isolate", async () => {
    const c = cluster as LocalCluster;
    const coffee1 = await c.addPod(0, "coffee", "coffee-1", ANNOTATION);
    const coffee2 = await c.addPod(1, "coffee", "coffee-2", ANNOTATION);
    const tea1 = await c.addPod(0, "tea", "tea-1", ANNOTATION);
    const tea2 = await c.addPod(1, "tea", "tea-2", ANNOTATION);
    for (const [a, b] of [
      [coffee1, coffee2],
      [tea1, tea2],
    ] as const) {
      expect((await c.pingUntil(a, b.ip, "reach")).received, `${a.name} -> ${b.name}`).toBeGreaterThan(0);
    }
    expect((await c.pingUntil(coffee1, tea1.ip, "blocked")).received).toBe(0);
    const vnis = async (): Promise<Record<string, number | null>> =>
      Object.fromEntries((await endpointsOf(c)).map((e) => [e.pod, e.vni]));
    const vniBefore = await vnis();

    const world = c.world;
    if (world === undefined) throw new Error("no world");
    server = await iperf3Server(world, coffee2.short, coffee2.ip);
    const transfer = inPod(
      c,
      coffee1,
      "iperf3",
      ["-c", coffee2.ip, "-J", "-t", String(IPERF_SECONDS), "-i", "0.5", "--connect-timeout", "3000"],
      (IPERF_SECONDS + 30) * 1000,
    ).then((r) => ({ ...r, endedAt: Date.now() }));
    const pingPair = (
      a: Pod,
      b: Pod,
    ): Promise<{ sent: number; received: number; output: string; endedAt: number }> =>
      inPod(c, a, "ping", ["-n", "-q", "-c", String(PINGS), "-i", "0.01", "-W", "1", b.ip], 60_000).then(
        (r) => ({
          ...pingSummary(r.stdout),
          output: r.stdout + r.stderr,
          endedAt: Date.now(),
        }),
      );
    const coffeePing = pingPair(coffee1, coffee2);
    const teaPing = pingPair(tea1, tea2);
    const t0 = Date.now();

    await sleep(2000);
    const joinAt = Date.now();
    const joined = await c.dctl(["network", "overlay", "update", "red", "--join-namespaces", "coffee,tea"]);
    expect(joined.code, show(joined)).toBe(0);
    const reach = await c.pingUntil(coffee1, tea2.ip, "reach", 5000, {
      count: 1,
      timeoutSec: 1,
      intervalSec: 0.01,
    });
    const joinedAfter = Date.now() - joinAt;
    expect(reach.received, `coffee-1 -> tea-2 after the join: ${reach.output}`).toBeGreaterThan(0);
    const vniJoined = await vnis();

    await sleep(1000);
    const isolateAt = Date.now();
    const isolated = await c.dctl(["network", "overlay", "update", "red", "--isolate-namespaces", "tea"]);
    expect(isolated.code, show(isolated)).toBe(0);
    const blocked = await c.pingUntil(coffee1, tea2.ip, "blocked", 5000);
    const isolatedAfter = Date.now() - isolateAt;
    expect(blocked.received, `coffee-1 -> tea-2 after isolating tea: ${blocked.output}`).toBe(0);
    const vniIsolated = await vnis();
    const changesDone = Date.now();
    const changesDoneAt = changesDone - t0;

    const [t, cp, tp] = await Promise.all([transfer, coffeePing, teaPing]);
    await server.stop();
    expect(t.code, show(t)).toBe(0);
    const result = parseIperf3(t.stdout);
    const intervals = ((result.json as { intervals?: Interval[] }).intervals ?? []).map(
      (i) => i.sum?.bytes ?? 0,
    );
    console.log(
      `${FILE}: join effective after ${joinedAfter} ms, isolation after ${isolatedAfter} ms ` +
        `(both within the first ${changesDoneAt} ms of a ${IPERF_SECONDS} s transfer); ` +
        `iperf3 ${(result.bitsPerSecond / 1e9).toFixed(2)} Gbit/s, ${result.bytesReceived} bytes, ` +
        `retransmits ${String(result.retransmits)}, smallest 0.5 s interval ${Math.min(...intervals)} bytes; ` +
        `coffee ping ${cp.received}/${cp.sent}, tea ping ${tp.received}/${tp.sent}; ` +
        `VNIs before ${JSON.stringify(vniBefore)}, joined ${JSON.stringify(vniJoined)}, ` +
        `tea isolated ${JSON.stringify(vniIsolated)}`,
    );
    expect(vniJoined["coffee-1"]).toBe(vniJoined["tea-1"]);
    expect(vniIsolated["coffee-1"]).not.toBe(vniIsolated["tea-1"]);
    expect(result.bytesReceived).toBeGreaterThan(0);
    expect(result.bitsPerSecond).toBeGreaterThan(0);
    expect(intervals.length).toBeGreaterThanOrEqual(IPERF_SECONDS * 2 - 1);
    expect(
      intervals.filter((b) => b === 0),
      `0.5 s intervals without a byte: ${JSON.stringify(intervals)}`,
    ).toEqual([]);
    // Both changes took effect while the transfer and the ping still ran.
    expect(t.endedAt, "the transfer ended before both changes took effect").toBeGreaterThan(changesDone);
    expect(cp.endedAt, "the ping ended before both changes took effect").toBeGreaterThan(changesDone);
    expect(cp.sent, cp.output).toBe(PINGS);
    expect(cp.received, `coffee-1 -> coffee-2 during join and isolate: ${cp.output}`).toBe(PINGS);
  }, 120_000);
});

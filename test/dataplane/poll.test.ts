/**
 * The packet threads' bounded adaptive polling (native/poll.h), both ways: with polling on, a
 * burst of back-to-back pings across nodes is carried and some of its batches are found by
 * polling rather than after a sleep (counters().threads); with it off, none are. Either way the
 * switch goes back to sleep: over a quiet second after the burst, its packet threads (named
 * overlay-pkt*, read from /proc/self/task/<tid>/stat) use a small share of one core. The bound is
 * loose (a loaded 2-core machine must not fail it); a thread that kept spinning would use all of
 * a core.
 */
import { describe, expect, it } from "vitest";
import { DEFAULT_POLL_US } from "../../src/dataplane/switch.js";
import { ping, pingUntil, sleep, threadCpuSeconds } from "../kit/netns/index.js";
import { skipReason, useSwitchedOverlay } from "./env.js";

const skip = skipReason("test/dataplane/poll.test.ts");

/** Percent of one core the packet threads may use over the quiet second, both nodes together. */
const QUIET_BOUND_PCT = 5;

const MODES = [
  ["on", DEFAULT_POLL_US],
  ["off", 0],
] as const;

/** Both switches' batches found by polling and after sleeping. */
function batches(sws: { counters(): { threads: { polledBatches: number; wokenBatches: number } } }[]) {
  let polled = 0;
  let woken = 0;
  for (const sw of sws) {
    polled += sw.counters().threads.polledBatches;
    woken += sw.counters().threads.wokenBatches;
  }
  return { polled, woken };
}

describe.skipIf(skip !== undefined).each(MODES)("adaptive polling %s", (mode, pollUs) => {
  const { world: w, ov: o } = useSwitchedOverlay({
    switchOptions: { pollUs },
    pods: [
      { node: 0, name: "a1", ip: "172.30.1.2", vni: 100 },
      { node: 1, name: "b1", ip: "172.30.2.2", vni: 100 },
    ],
  });
  const switches = () => o().nodes.map((n) => n.sw);

  it(`reports its poll window bound (${pollUs} us)`, () => {
    for (const sw of switches()) expect(sw.features().pollUs).toBe(pollUs);
  });

  it("carries a burst of back-to-back pings; batches are found by polling only when it is on", async () => {
    await pingUntil(w(), "a1", o().pod("b1").ip, 10);
    const before = batches(switches());
    // Interval 0 (root): each request leaves as soon as the previous reply is in.
    const r = await ping(w(), "a1", o().pod("b1").ip, { count: 2000, intervalSec: 0, timeoutSec: 2 });
    expect(r).toMatchObject({ sent: 2000, received: 2000 });
    const after = batches(switches());
    const polled = after.polled - before.polled;
    const woken = after.woken - before.woken;
    console.log(
      `polling ${mode}: ${polled} batches found polling, ${woken} after a sleep, avg ${r.rttAvgMs} ms`,
    );
    if (pollUs === 0) expect(polled).toBe(0);
    else expect(polled).toBeGreaterThan(0);
    expect(woken + polled).toBeGreaterThan(0);
  });

  it("goes back to sleep: the packet threads' CPU over a quiet second after the burst is small", async () => {
    const burst = ping(w(), "a1", o().pod("b1").ip, { count: 1000, intervalSec: 0, timeoutSec: 2 });
    expect((await burst).received).toBe(1000);
    // The last batches' windows (at most pollUs each) pass long before this.
    await sleep(100);
    const c0 = threadCpuSeconds("self", "overlay-pkt");
    const t0 = performance.now();
    await sleep(1000);
    const pct = ((threadCpuSeconds("self", "overlay-pkt") - c0) / ((performance.now() - t0) / 1000)) * 100;
    console.log(`polling ${mode}: packet threads used ${pct.toFixed(1)}% of a core over the quiet second`);
    expect(pct).toBeLessThan(QUIET_BOUND_PCT);
  });
});

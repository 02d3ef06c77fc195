/**
 * The switch's tables under real traffic. Exact, in every run: no frame lost or duplicated, no drop
 * counted, no frame sent after an update returned handled by the old table, forwarding never
 * waits for the control side. Timed, against the targets (test/helpers/timing.ts: loosely in
 * ordinary runs, exactly in `npm run bench:tables`, not at all under sanitizers):
 *   - a table update is visible to the packet threads within 10 ms;
 *   - programming 10,000 remote endpoints takes under 100 ms.
 *
 * A real Switch in a node namespace with one pod port (a TAP in a pod namespace) and two fake
 * peer VTEPs (UDP sockets on the other end of the node's underlay veth). Traffic comes from worker
 * threads (traffic-worker.mjs), so it keeps flowing while the main thread is inside a control
 * call: a sender writes a frame from the pod to one remote MAC every 0.5 ms, stamped with its
 * sequence number and send time; a receiver on each VTEP stamps each datagram's arrival. All
 * times are one monotonic clock (process.hrtime), so "the call returned at t, the first datagram
 * reached the new VTEP at t + x" is read directly.
 *
 * Noise. These tests share 2 cores with the packet threads, the traffic threads and, in a full
 * run, another test file (and on the development machine, other people's runs). A thread that
 * waits for a core shows up as a late datagram whatever the switch does: with no table change at
 * all, single frames took up to 47 ms from sender to receiver while the machine was loaded. So:
 *   - what does not depend on timing is exact (above);
 *   - the 10 ms target is judged on the 95th percentile of 20 rounds (one slow round allowed),
 *     the worst case only against WORST_MS, a stuck thread rather than a slow one;
 *   - replaceRemotes is judged by its time with a core (wall minus the time the kernel kept the
 *     thread waiting for one, from /proc schedstat; blocking still counts), and wall time printed;
 *   - "never pauses" is judged by the frames sent while a replaceRemotes call ran: if the packet
 *     threads waited for the control side, none would arrive before that call returned and their
 *     median transit would be half a call (about 10 ms); here nearly all do, in tens of us.
 *
 * Figures are printed (and documented in docs/ARCHITECTURE.md, "Control-side targets").
 */
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { Switch, type RemoteEndpoint } from "../../src/dataplane/switch.js";
import { World, podMac, sleep } from "../kit/netns/index.js";
import { dropDelta, drops, portCounters, skipReason } from "./env.js";
import { ETH_HLEN, IPV4_HLEN, UDP_HLEN, udpFrame } from "./packets.js";
import { expectWithin, timingMode } from "../helpers/timing.js";

const skip = skipReason("test/dataplane/visibility.test.ts") !== undefined;

const NODE_IP = "10.250.0.1";
const VTEP_A = "10.250.0.2";
const VTEP_B = "10.250.0.3";
const VXLAN_PORT = 4789;
const VNI = 100;

/** Target: an update is visible to the packet threads within this long. */
const VISIBLE_MS = 10;
/** Target: replacing every remote endpoint with 10,000 takes less than this. */
const REPLACE_MS = 100;
/** One frame every this long from the sender thread. */
const INTERVAL_MS = 0.5;
/** After an update, wait this long before reading what arrived where. */
const SETTLE_MS = 40;
const ROUNDS = 20;
/** Worst single figure allowed (see "Noise" above; loaded runs reached 160 ms, quiet ones 4). */
const WORST_MS = 250;
/** Target: the median frame sent during a replaceRemotes call is through the switch this fast. */
const IN_CALL_TRANSIT_MS = 1;
/**
 * Share of the frames sent during a replaceRemotes call that must arrive before it returns (if
 * the packet threads waited for the control side, none would): the target, and what a loaded
 * machine is held to.
 */
const PASS_THROUGH_SHARE = timingMode() === "targets" ? 0.8 : 0.5;

const POD = { ip: "10.60.0.2", mac: podMac("10.60.0.2") };
/** The remote endpoint the pod's frames go to; the tests move it between the VTEPs. */
const X = { ip: "10.60.1.2", mac: podMac("10.60.1.2") };
const xAt = (vtep: string): RemoteEndpoint => ({ vni: VNI, mac: X.mac, ipv4: X.ip, vtep });

// ---- traffic threads ------------------------------------------------------------------------------

const STOP = 0;
const COUNT = 1;
const READY = 2;
const PAYLOAD_OFFSET = ETH_HLEN + IPV4_HLEN + UDP_HLEN;
const WORKER = join(dirname(fileURLToPath(import.meta.url)), "traffic-worker.mjs");
const BASE_NS = process.hrtime.bigint();

/** ms on the clock the worker threads stamp with. */
function nowMs(): number {
  return Number(process.hrtime.bigint() - BASE_NS) / 1e6;
}

/**
 * ms this thread has spent waiting for a core (runnable, not running) since it started: the second
 * field of /proc/<pid>/task/<tid>/schedstat, in ns. The test's main thread is the process's first.
 */
function runqueueWaitMs(): number {
  const fields = readFileSync(`/proc/self/task/${process.pid}/schedstat`, "utf8").trim().split(/\s+/);
  return Number(fields[1]) / 1e6;
}

/**
 * Times a synchronous call: wall-clock ms from `start` to `end`, and ms of it (with the two
 * schedstat reads around it) spent with a core, i.e. minus the time the kernel kept this thread
 * runnable but waiting for one: other processes' doing on a shared machine.
 */
function timeCall(fn: () => void): { start: number; end: number; wall: number; onCore: number } {
  const outer0 = nowMs();
  const wait0 = runqueueWaitMs();
  const start = nowMs();
  fn();
  const end = nowMs();
  const wait1 = runqueueWaitMs();
  const outer1 = nowMs();
  return { start, end, wall: end - start, onCore: outer1 - outer0 - (wait1 - wait0) };
}

/** The addon file src/dataplane/load.ts loads, for the worker threads to load too. */
function addonPath(): string {
  const root = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
  const candidates = process.env.OVERLAY_ADDON
    ? [process.env.OVERLAY_ADDON]
    : ["build/Release/overlay_switch.node", "build/Debug/overlay_switch.node"].map((c) => join(root, c));
  const found = candidates.find((c) => existsSync(c));
  if (found === undefined) throw new Error(`addon not found; tried ${candidates.join(", ")}`);
  return found;
}

interface Arrival {
  seq: number;
  /** When the sender thread sent the frame (ms). */
  sent: number;
  /** When the receiver thread had the datagram (ms). */
  arrived: number;
}

class TrafficThread {
  private readonly ctrl = new Int32Array(new SharedArrayBuffer(16));
  private readonly data: Float64Array | undefined;
  private readonly worker: Worker;
  private readonly exited: Promise<void>;
  private failure: Error | undefined;

  private constructor(options: Record<string, unknown>, entries: number) {
    this.data = entries > 0 ? new Float64Array(new SharedArrayBuffer(entries * 3 * 8)) : undefined;
    this.worker = new Worker(WORKER, {
      workerData: {
        ...options,
        ctrl: this.ctrl.buffer,
        data: this.data?.buffer,
        addon: addonPath(),
        baseNs: BASE_NS.toString(),
        payloadOffset: PAYLOAD_OFFSET,
      },
    });
    this.worker.on("error", (e) => (this.failure = e));
    this.exited = new Promise((r) => this.worker.once("exit", () => r()));
  }

  /** Sends `frame` out of `ifname` in `netns` every INTERVAL_MS. */
  static sender(netns: string, ifname: string, frame: Buffer): Promise<TrafficThread> {
    const t = new TrafficThread({ role: "send", netns, ifname, frame, intervalMs: INTERVAL_MS }, 0);
    return t.ready();
  }

  /** Records the datagrams reaching ip:4789 in `netns`. */
  static receiver(netns: string, ip: string): Promise<TrafficThread> {
    const t = new TrafficThread({ role: "receive", netns, ip, port: VXLAN_PORT }, 400_000);
    return t.ready();
  }

  private async ready(): Promise<this> {
    const end = Date.now() + 5000;
    while (Atomics.load(this.ctrl, READY) === 0) {
      if (this.failure) throw this.failure;
      if (Date.now() > end) throw new Error("traffic thread not ready within 5 s");
      await sleep(5);
    }
    return this;
  }

  /** Frames sent (sender) or datagrams recorded (receiver) so far. */
  get count(): number {
    if (this.failure) throw this.failure;
    return Atomics.load(this.ctrl, COUNT);
  }

  /** Datagrams recorded from entry `from` on. */
  arrivals(from = 0): Arrival[] {
    const d = this.data;
    if (!d) throw new Error("a sender records no arrivals");
    const out: Arrival[] = [];
    for (let i = from, n = this.count; i < n; i++) {
      out.push({ seq: d[3 * i] as number, sent: d[3 * i + 1] as number, arrived: d[3 * i + 2] as number });
    }
    return out;
  }

  async stop(): Promise<void> {
    Atomics.store(this.ctrl, STOP, 1);
    Atomics.notify(this.ctrl, STOP);
    await this.exited;
    if (this.failure) throw this.failure;
  }
}

// ---- figures ----------------------------------------------------------------------------------

interface Summary {
  n: number;
  min: number;
  median: number;
  p95: number;
  max: number;
}

function summarize(values: readonly number[]): Summary {
  const s = [...values].sort((a, b) => a - b);
  const at = (p: number): number =>
    s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))] ?? NaN;
  return { n: s.length, min: s[0] ?? NaN, median: at(0.5), p95: at(0.95), max: s[s.length - 1] ?? NaN };
}

function show(s: Summary): string {
  const f = (x: number): string => x.toFixed(2);
  return `n=${s.n} min ${f(s.min)} median ${f(s.median)} p95 ${f(s.p95)} max ${f(s.max)} ms`;
}

/** Sequence numbers 0..sent-1 that did not arrive exactly once, over every receiver. */
function notExactlyOnce(sent: number, ...arrivals: Arrival[][]): { missing: number; duplicated: number } {
  const seen = new Uint8Array(sent);
  let duplicated = 0;
  for (const list of arrivals) {
    for (const a of list) {
      if (a.seq >= sent) continue;
      if (seen[a.seq]) duplicated++;
      seen[a.seq] = 1;
    }
  }
  return { missing: seen.reduce((m, v) => m + (v ? 0 : 1), 0), duplicated };
}

/** Remote endpoint `i` of a 10,000-entry table: unrouted VTEPs, four VNIs; `variant` moves them all. */
function bulkEndpoint(i: number, variant: number): RemoteEndpoint {
  const hi = (i >> 8) & 0xff;
  const lo = i & 0xff;
  const h = (x: number): string => x.toString(16).padStart(2, "0");
  return {
    vni: VNI + (i % 4),
    mac: `0a:58:ac:10:${h(hi)}:${h(lo)}`,
    ipv4: `172.16.${hi}.${lo}`,
    vtep: `10.0.${((i + variant) % 250) + 1}.1`,
  };
}

describe.skipIf(skip)("switch tables under traffic (issue 4, control-side targets)", () => {
  let world: World | undefined;
  let sw: Switch | undefined;
  let podId = 0;
  let podNs = "";
  let peerNs = "";
  const threads: TrafficThread[] = [];

  const S = (): Switch => {
    if (!sw) throw new Error("no switch");
    return sw;
  };

  beforeAll(async () => {
    world = await World.create();
    const w = world;
    await w.addNamespace("node");
    await w.addNamespace("peer");
    await w.addNamespace("pod");
    await w.addVeth(
      { ns: "node", name: "u0", addr: `${NODE_IP}/24` },
      { ns: "peer", name: "u0", addr: `${VTEP_A}/24` },
    );
    await w.ip("peer", ["addr", "add", `${VTEP_B}/24`, "dev", "u0"]);
    // No IPv6: the pod's kernel would send router solicitations and MLD reports of its own.
    await w.exec("pod", "sysctl", [
      "-qw",
      "net.ipv6.conf.all.disable_ipv6=1",
      "net.ipv6.conf.default.disable_ipv6=1",
    ]);
    podNs = w.nsPath("pod");
    peerNs = w.nsPath("peer");
    sw = new Switch({ underlayIp: NODE_IP, netns: w.nsPath("node") });
    podId = sw.addPort({ name: "eth0", netns: podNs, vni: VNI, mac: POD.mac, ipv4: POD.ip });
    sw.setPeers([{ ip: VTEP_A }, { ip: VTEP_B }]);
  });

  // A test that fails or times out must not leave its traffic flowing into the next one.
  afterEach(async () => {
    for (const t of threads.splice(0)) await t.stop().catch(() => undefined);
  });

  afterAll(async () => {
    try {
      for (const t of threads.splice(0)) await t.stop().catch(() => undefined);
      sw?.close();
    } finally {
      await world?.destroy();
    }
  });

  /** Starts a sender of frames from the pod to X and receivers on both VTEPs. */
  async function traffic(): Promise<{ tx: TrafficThread; a: TrafficThread; b: TrafficThread }> {
    const a = await TrafficThread.receiver(peerNs, VTEP_A);
    threads.push(a);
    const b = await TrafficThread.receiver(peerNs, VTEP_B);
    threads.push(b);
    // UDP checksum 0 ("none", RFC 768): the sender rewrites the payload of every frame.
    const frame = udpFrame(POD, X, Buffer.alloc(64));
    frame.writeUInt16BE(0, ETH_HLEN + IPV4_HLEN + 6);
    const tx = await TrafficThread.sender(podNs, "eth0", frame);
    threads.push(tx);
    return { tx, a, b };
  }

  async function stopAll(...ts: TrafficThread[]): Promise<void> {
    for (const t of ts) {
      await t.stop();
      threads.splice(threads.indexOf(t), 1);
    }
  }

  /**
   * Waits (a slow machine or an instrumented build may take well past SETTLE_MS) until `t` has
   * recorded a datagram past entry `from`, or gives up after 5 s and lets the caller's check say so.
   */
  async function arrived(t: TrafficThread, from: number): Promise<void> {
    const end = Date.now() + 5000;
    while (t.count <= from && Date.now() < end) await sleep(1);
  }

  /** Waits until `t` has recorded a datagram past entry `from`. */
  async function flowing(t: TrafficThread, from: number): Promise<void> {
    const end = Date.now() + 2000;
    while (t.count <= from) {
      if (Date.now() > end) throw new Error("no traffic reaches the VTEP");
      await sleep(5);
    }
  }

  it(`moves a remote endpoint to another VTEP (target ${VISIBLE_MS} ms), losing no frame`, async () => {
    S().replaceRemotes([xAt(VTEP_A)]);
    const { tx, a, b } = await traffic();
    const before = drops(S());
    const rx = new Map([
      [VTEP_A, a],
      [VTEP_B, b],
    ]);
    await flowing(a, 0);
    const firstAtNew: number[] = [];
    const lastAtOld: number[] = [];
    let sentAfterToOld = 0;
    let cur = VTEP_A;
    for (let i = 0; i < ROUNDS; i++) {
      // Land the update anywhere in the send cadence.
      await sleep(5 + Math.random() * 10);
      const next = cur === VTEP_A ? VTEP_B : VTEP_A;
      const oldRx = rx.get(cur) as TrafficThread;
      const newRx = rx.get(next) as TrafficThread;
      const oldFrom = oldRx.count;
      const newFrom = newRx.count;
      S().updateRemotes([xAt(next)]);
      const returned = nowMs();
      await arrived(newRx, newFrom);
      await sleep(SETTLE_MS);
      const atNew = newRx.arrivals(newFrom);
      const atOld = oldRx.arrivals(oldFrom);
      expect(atNew.length, `round ${i}: nothing reached the new VTEP ${next}`).toBeGreaterThan(0);
      firstAtNew.push((atNew[0] as Arrival).arrived - returned);
      lastAtOld.push(Math.max(0, ...atOld.map((x) => x.arrived - returned)));
      sentAfterToOld += atOld.filter((x) => x.sent > returned).length;
      cur = next;
    }
    await stopAll(tx);
    await sleep(50);
    const sent = tx.count;
    await stopAll(a, b);
    const lost = notExactlyOnce(sent, a.arrivals(), b.arrivals());
    const first = summarize(firstAtNew);
    const last = summarize(lastAtOld);
    console.log(`move: call returned -> first datagram at the new VTEP: ${show(first)}`);
    console.log(`move: call returned -> last datagram at the old VTEP: ${show(last)}`);
    console.log(`move: ${sent} frames sent, ${lost.missing} missing, ${lost.duplicated} duplicated`);
    expect(sentAfterToOld, "frames sent after updateRemotes returned that still went to the old VTEP").toBe(
      0,
    );
    expect(lost).toEqual({ missing: 0, duplicated: 0 });
    expect(dropDelta(S(), before)).toEqual({});
    expectWithin("move, first datagram at the new VTEP, p95", first.p95, VISIBLE_MS);
    expectWithin("move, first datagram at the new VTEP, max", first.max, WORST_MS);
    expectWithin("move, last datagram at the old VTEP, p95", last.p95, VISIBLE_MS);
    expectWithin("move, last datagram at the old VTEP, max", last.max, WORST_MS);
  });

  it(`stops and starts sending to a remote endpoint on its removal and re-adding (target ${VISIBLE_MS} ms)`, async () => {
    S().replaceRemotes([xAt(VTEP_A)]);
    const { tx, a, b } = await traffic();
    await flowing(a, 0);
    const removal: number[] = [];
    const adding: number[] = [];
    let sentAfterRemoval = 0;
    let unknown = 0;
    for (let i = 0; i < ROUNDS; i++) {
      await sleep(5 + Math.random() * 10);
      let from = a.count;
      const before = drops(S());
      S().updateRemotes([], [X.mac]);
      let returned = nowMs();
      await sleep(SETTLE_MS);
      const after = a.arrivals(from);
      removal.push(Math.max(0, ...after.map((x) => x.arrived - returned)));
      sentAfterRemoval += after.filter((x) => x.sent > returned).length;
      unknown += dropDelta(S(), before).unknown_dest ?? 0;

      from = a.count;
      S().updateRemotes([xAt(VTEP_A)]);
      returned = nowMs();
      await arrived(a, from);
      await sleep(SETTLE_MS);
      const back = a.arrivals(from);
      expect(back.length, `round ${i}: nothing reached the VTEP after re-adding`).toBeGreaterThan(0);
      adding.push((back[0] as Arrival).arrived - returned);
    }
    await stopAll(tx, a, b);
    expect(b.count, "datagrams at a VTEP the endpoint never had").toBe(0);
    const rm = summarize(removal);
    const add = summarize(adding);
    console.log(`remove: call returned -> last datagram at the old VTEP: ${show(rm)}`);
    console.log(`add: call returned -> first datagram at the VTEP: ${show(add)}`);
    console.log(`remove: ${unknown} frames dropped as unknown_dest while the endpoint was gone`);
    expect(sentAfterRemoval, "frames sent after the removal returned that still reached the VTEP").toBe(0);
    // Frames kept coming while the endpoint was gone: the switch counted them, not forwarded them.
    expect(unknown).toBeGreaterThan(ROUNDS);
    expectWithin("remove, last datagram at the old VTEP, p95", rm.p95, VISIBLE_MS);
    expectWithin("remove, last datagram at the old VTEP, max", rm.max, WORST_MS);
    expectWithin("add, first datagram at the VTEP, p95", add.p95, VISIBLE_MS);
    expectWithin("add, first datagram at the VTEP, max", add.max, WORST_MS);
  });

  it(`replaces every remote endpoint with 10,000 (target ${REPLACE_MS} ms, median of 9)`, () => {
    const sets = [0, 1].map((v) => Array.from({ length: 10_000 }, (_, i) => bulkEndpoint(i, v)));
    const t = Array.from({ length: 9 }, (_, i) =>
      timeCall(() => S().replaceRemotes(sets[i % 2] as RemoteEndpoint[])),
    );
    const wall = summarize(t.map((x) => x.wall));
    const onCore = summarize(t.map((x) => x.onCore));
    console.log(`replaceRemotes(10,000): wall ${show(wall)}; with a core ${show(onCore)}`);
    expectWithin("replaceRemotes(10,000), with a core, median", onCore.median, REPLACE_MS);
  });

  it("keeps forwarding, without a pause or a loss, while 10,000 endpoints are replaced again and again", async () => {
    // Both tables hold X at VTEP A, among 9,999 others that differ between the two.
    const sets = [0, 1].map((v) => [
      xAt(VTEP_A),
      ...Array.from({ length: 9_999 }, (_, i) => bulkEndpoint(i, v)),
    ]);
    S().replaceRemotes(sets[0] as RemoteEndpoint[]);
    // Counted from before the sender's first frame, so the port's count must equal what it sent
    // (a baseline read while frames flow would race the sender).
    const inBefore = portCounters(S(), podId).inPackets;
    const { tx, a, b } = await traffic();
    await flowing(a, 0);
    await sleep(100);
    const before = drops(S());
    const from = a.count;
    const calls: ReturnType<typeof timeCall>[] = [];
    const start = nowMs();
    // 3 s, and at least 12 replacements (a sanitizer build takes ~300 ms each), within 60 s.
    for (let i = 0; (nowMs() - start < 3000 || calls.length < 12) && nowMs() - start < 60_000; i++) {
      calls.push(timeCall(() => S().replaceRemotes(sets[i % 2] as RemoteEndpoint[])));
      // Let the test runner's own timers run; the switch is replaced back to back otherwise.
      await sleep(1);
    }
    const end = nowMs();
    await stopAll(tx);
    await sleep(50);
    const sent = tx.count;
    await stopAll(a, b);

    const lost = notExactlyOnce(sent, a.arrivals(), b.arrivals());
    const window = a.arrivals(from).filter((x) => x.arrived <= end);
    // The longest gap between arrivals, and the part of it the sender thread does not explain
    // (it too waits for a core now and then, and a frame not sent is no pause).
    let gap = 0;
    let unexplained = 0;
    for (let i = 1; i < window.length; i++) {
      const x = window[i] as Arrival;
      const prev = window[i - 1] as Arrival;
      gap = Math.max(gap, x.arrived - prev.arrived);
      unexplained = Math.max(unexplained, x.arrived - prev.arrived - (x.sent - prev.sent));
    }
    // Frames sent while a call ran (at least 1 ms before it returned): if the packet threads
    // waited for the control side, none of them would arrive before that call returned.
    const inCall: { transit: number; duringCall: boolean }[] = [];
    let c = 0;
    for (const x of [...window].sort((p, q) => p.sent - q.sent)) {
      while (c < calls.length && (calls[c] as { end: number }).end < x.sent) c++;
      const call = calls[c];
      if (call === undefined || x.sent < call.start || x.sent > call.end - 1) continue;
      inCall.push({ transit: x.arrived - x.sent, duringCall: x.arrived < call.end });
    }
    const duringCall = inCall.filter((x) => x.duringCall).length / inCall.length;
    const inCallTransit = summarize(inCall.map((x) => x.transit));
    const transit = summarize(window.map((x) => x.arrived - x.sent));
    const wall = summarize(calls.map((x) => x.wall));
    const onCore = summarize(calls.map((x) => x.onCore));
    console.log(`replaceRemotes(10,000) under traffic: wall ${show(wall)}; with a core ${show(onCore)}`);
    console.log(
      `forwarding during ${(end - start).toFixed(0)} ms of replacing: ${window.length} datagrams ` +
        `(one frame sent every ${INTERVAL_MS} ms), longest gap between arrivals ${gap.toFixed(2)} ms, ` +
        `${unexplained.toFixed(2)} ms of it not the sender's own; transit (sent -> arrived) ${show(transit)}`,
    );
    console.log(
      `frames sent during a call: ${inCall.length}, ${(100 * duringCall).toFixed(1)}% arrived before ` +
        `that call returned; their transit ${show(inCallTransit)}`,
    );
    console.log(`${sent} frames sent, ${lost.missing} missing, ${lost.duplicated} duplicated`);
    expect(calls.length, "replacements done").toBeGreaterThan(10);
    expect(lost).toEqual({ missing: 0, duplicated: 0 });
    expect(dropDelta(S(), before)).toEqual({});
    const counted = portCounters(S(), podId).inPackets - inBefore;
    expect(counted, `${counted} counted, ${sent} sent`).toBe(sent);
    expect(inCall.length, "frames sent during the calls").toBeGreaterThan(100);
    expectWithin("replaceRemotes(10,000) under traffic, with a core, median", onCore.median, REPLACE_MS);
    expectWithin("transit of a frame sent during a call, median", inCallTransit.median, IN_CALL_TRANSIT_MS);
    expectWithin("transit of a frame sent during a call, p95", inCallTransit.p95, VISIBLE_MS);
    expectWithin("transit while replacing, max", transit.max, WORST_MS);
    if (timingMode() !== "off") {
      expect(
        duringCall,
        "share of the frames sent during a call that arrived before it returned",
      ).toBeGreaterThan(PASS_THROUGH_SHARE);
    }
  });
});

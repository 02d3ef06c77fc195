/**
 * Load held: three agents on one etcd, network `red` created with dctl, 300 pods attached through
 * the CNI plugin binary in three waves of 100 (16 ADDs in flight, spread over the three nodes and
 * three Kubernetes namespaces), then deleted in waves while some are created again.
 *
 * Asserted: every ADD and DEL succeeds; no address is held twice (among the endpoints dctl lists
 * and among the plugin's results); the endpoints are exactly the live pods; on a sample of 12
 * pods (4 per namespace over the 3 nodes) every pair of one namespace pings and no pair across
 * namespaces does; after the last DEL no endpoint is left and `overlay check` is clean with 0
 * addresses. Measured (printed): ADD and DEL latency and throughput per wave, and convergence
 * (ADD started -> first reply to a ping from a pod of the same namespace on another node) for
 * every tenth pod.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { agentLogs, show, skipReason, startCluster, type LocalCluster, type Pod } from "../e2e/cluster.js";
import { createOverlay } from "../e2e/cluster.js";
import {
  checkOf,
  duplicates,
  endpointsOf,
  fastArp,
  firstReplyAt,
  formatSummary,
  pool,
  reachabilityMatrix,
  summarize,
  timed,
  type Timed,
} from "./helpers.js";

const FILE = "test/load/pods.test.ts";
const skip = skipReason(FILE);

const NAMESPACES = ["alpha", "beta", "gamma"] as const;
const WAVES = 3;
const PER_WAVE = 100;
const CONCURRENCY = 16;
/** Every SAMPLE_EVERY-th pod of a wave is timed from ADD to reachable. */
const SAMPLE_EVERY = 10;
const RECREATE = 30;
const ANNOTATION = { network: "red" };

interface Planned {
  name: string;
  namespace: string;
  node: number;
}

interface Converged {
  pod: string;
  /** ADD started -> first reply from the observer on another node. */
  fromAddStart: number;
  /** ADD returned -> first reply. */
  fromAddEnd: number;
}

function plan(wave: number): Planned[] {
  return Array.from({ length: PER_WAVE }, (_, i) => {
    const g = wave * PER_WAVE + i;
    return {
      name: `w${wave + 1}-${i}`,
      namespace: NAMESPACES[Math.floor(g / 3) % 3] as string,
      node: g % 3,
    };
  });
}

describe.skipIf(skip !== undefined)("300 pods through the CNI plugin on 3 agents and one etcd", () => {
  let cluster: LocalCluster | undefined;
  /** One pod per (namespace, node), with fast ARP retries: the far end of the convergence pings. */
  const observers: Pod[] = [];
  const waves: Pod[][] = [];
  const adds: Timed<Pod>[] = [];
  const dels: Timed<unknown>[] = [];
  const converged: Converged[] = [];
  const figures: string[] = [];
  /** Wall time of the pools, for throughput. */
  const wall = { addMs: 0, addCount: 0, delMs: 0, delCount: 0 };

  const cl = (): LocalCluster => {
    if (cluster === undefined) throw new Error("cluster did not start");
    return cluster;
  };

  beforeAll(async () => {
    cluster = await startCluster({ store: "etcd", nodes: 3 });
    const c = cluster;
    await createOverlay(c, "red", "172.30.0.0/16");
    for (const ns of NAMESPACES) {
      const r = await c.dctl(["namespace", "create", ns]);
      expect(r.code, show(r)).toBe(0);
    }
    for (const ns of NAMESPACES) {
      for (let n = 0; n < 3; n++) {
        const p = await c.addPod(n, ns, `obs-${ns}-${n + 1}`, ANNOTATION);
        await fastArp(c, p);
        observers.push(p);
      }
    }
  }, 120_000);

  afterAll(async () => {
    for (const f of figures) console.log(`${FILE}: ${f}`);
    await cluster?.close();
  }, 120_000);

  function observerFor(pod: Pod): Pod {
    const o = observers.find((x) => x.namespace === pod.namespace && x.node !== pod.node);
    if (o === undefined) throw new Error(`no observer for ${pod.namespace} off ${pod.node.name}`);
    return o;
  }

  /** ADD through the plugin, timed; every SAMPLE_EVERY-th is then pinged until it answers. */
  async function add(p: Planned, index: number): Promise<Pod> {
    const c = cl();
    const t = await timed(() => c.addPod(p.node, p.namespace, p.name, ANNOTATION));
    adds.push(t);
    if (index % SAMPLE_EVERY === 0) {
      const at = await firstReplyAt(c, observerFor(t.value), t.value.ip);
      expect(at, `${p.name} (${t.value.ip}) never answered ${observerFor(t.value).name}`).toBeDefined();
      converged.push({
        pod: p.name,
        fromAddStart: (at as number) - t.startedAt,
        fromAddEnd: (at as number) - t.endedAt,
      });
    }
    return t.value;
  }

  async function del(pod: Pod): Promise<void> {
    const c = cl();
    const t = await timed(() => c.delPod(pod));
    dels.push(t);
    expect(t.value.code, `DEL ${pod.name}: ${show(t.value)}`).toBe(0);
  }

  /** The pods attached now, by the cluster's own record of ADDs and DELs. */
  const live = (): Pod[] => cl().pods.filter((p) => !p.deleted);

  /** Endpoints are exactly the live pods, and no address is held twice anywhere. */
  async function expectConsistent(): Promise<void> {
    const c = cl();
    const pods = live();
    const eps = await endpointsOf(c);
    expect(duplicates(eps.map((e) => e.ip)), "duplicate address among endpoints").toEqual([]);
    expect(duplicates(pods.map((p) => p.ip)), "duplicate address among CNI results").toEqual([]);
    expect(eps.map((e) => `${e.namespace}/${e.pod} ${e.ip} ${e.node}`).sort()).toEqual(
      pods.map((p) => `${p.namespace}/${p.name} ${p.ip} ${p.node.name}`).sort(),
    );
  }

  it("creates 300 pods in waves of 100, 16 ADDs at a time: every ADD succeeds, no duplicate", async () => {
    const c = cl();
    for (let w = 0; w < WAVES; w++) {
      const start = Date.now();
      const pods = await pool(plan(w), CONCURRENCY, add);
      const ms = Date.now() - start;
      wall.addMs += ms;
      wall.addCount += PER_WAVE;
      waves.push(pods);
      figures.push(`wave ${w + 1}: ${PER_WAVE} ADDs in ${ms} ms (${((PER_WAVE * 1000) / ms).toFixed(1)}/s)`);
      await expectConsistent();
    }
    const eps = await endpointsOf(c);
    expect(eps).toHaveLength(WAVES * PER_WAVE + observers.length);
    for (const ns of NAMESPACES) {
      const vnis = new Set(eps.filter((e) => e.namespace === ns).map((e) => e.vni));
      expect(vnis.size, `${ns} has one VNI`).toBe(1);
    }
    expect(new Set(eps.map((e) => e.vni)).size).toBe(NAMESPACES.length);
    const addMs = summarize(adds.map((a) => a.ms));
    figures.push(`ADD latency under load (${CONCURRENCY} in flight): ${formatSummary(addMs)}`);
    const conv = summarize(converged.map((x) => x.fromAddStart));
    figures.push(`convergence, ADD start -> reachable from another node, under load: ${formatSummary(conv)}`);
    figures.push(
      `convergence, ADD return -> reachable: ${formatSummary(summarize(converged.map((x) => x.fromAddEnd)))}`,
    );
    expect(converged).toHaveLength(WAVES * (PER_WAVE / SAMPLE_EVERY));
    for (const n of c.nodes) expect(n.agent?.running, `overlayd on ${n.name}`).toBe(true);
  }, 300_000);

  it("reaches every pod of its namespace and none of another, on 12 pods over 3 nodes", async () => {
    const c = cl();
    const all = waves.flat();
    expect(all).toHaveLength(WAVES * PER_WAVE);
    const sample: Pod[] = [];
    for (const ns of NAMESPACES) {
      const mine = all.filter((p) => p.namespace === ns);
      for (const node of [0, 1, 2, 0]) {
        const p = mine.find((x) => x.node === c.node(node) && !sample.includes(x));
        if (p === undefined) throw new Error(`no pod of ${ns} on node ${node + 1}`);
        sample.push(p);
      }
    }
    const start = Date.now();
    const m = await reachabilityMatrix(c, sample, 16);
    figures.push(
      `reachability matrix: ${m.pairs} pairs, ${m.reached.length} reached, ${m.blocked.length} blocked, ` +
        `${m.wrong.length} wrong (${Date.now() - start} ms)`,
    );
    expect(m.wrong, agentLogs(c).slice(-4000)).toEqual([]);
    expect(m.reached).toHaveLength(3 * 4 * 3);
    expect(m.blocked).toHaveLength(12 * 11 - 3 * 4 * 3);
  }, 180_000);

  it("deletes in waves while some pods are created again; addresses stay unique", async () => {
    const c = cl();
    const [w1, w2] = waves as [Pod[], Pod[], Pod[]];
    let start = Date.now();
    await pool(w1, CONCURRENCY, del);
    wall.delMs += Date.now() - start;
    wall.delCount += w1.length;
    figures.push(`delete wave 1: ${w1.length} DELs in ${Date.now() - start} ms`);
    await expectConsistent();

    // Wave 2 goes away while 30 of wave 1's pods come back (same names, new sandboxes and
    // container ids, on the next node), in one pool.
    const again: Planned[] = w1.slice(0, RECREATE).map((p, i) => ({
      name: p.name,
      namespace: p.namespace,
      node: (c.nodes.indexOf(p.node) + 1 + (i % 2)) % 3,
    }));
    type Job = { kind: "del"; pod: Pod } | { kind: "add"; planned: Planned; index: number };
    const jobs: Job[] = [];
    const dels2 = w2.map((pod): Job => ({ kind: "del", pod }));
    const adds2 = again.map((planned, index): Job => ({ kind: "add", planned, index }));
    // Interleaved: 10 DELs, then 3 ADDs, and so on.
    while (dels2.length > 0 || adds2.length > 0) jobs.push(...dels2.splice(0, 10), ...adds2.splice(0, 3));
    start = Date.now();
    const recreated: Pod[] = [];
    await pool(jobs, CONCURRENCY, async (j) => {
      if (j.kind === "del") await del(j.pod);
      else recreated.push(await add(j.planned, j.index));
    });
    figures.push(
      `delete wave 2 with ${RECREATE} re-created: ${w2.length} DELs and ${RECREATE} ADDs in ${Date.now() - start} ms`,
    );
    expect(recreated).toHaveLength(RECREATE);
    await expectConsistent();
    expect(live()).toHaveLength(PER_WAVE + RECREATE + observers.length);
  }, 300_000);

  it("after the last DEL no endpoint is left and overlay check is clean with 0 addresses", async () => {
    const c = cl();
    const rest = live();
    const start = Date.now();
    await pool(rest, CONCURRENCY, del);
    wall.delMs += Date.now() - start;
    wall.delCount += rest.length;
    figures.push(`delete the rest: ${rest.length} DELs in ${Date.now() - start} ms`);
    const delMs = summarize(dels.map((d) => d.ms));
    figures.push(`DEL latency (${CONCURRENCY} in flight): ${formatSummary(delMs)}`);
    const rate = (n: number, ms: number): string => ((n * 1000) / ms).toFixed(1);
    figures.push(
      `throughput: ${wall.addCount} ADDs at ${rate(wall.addCount, wall.addMs)}/s, ` +
        `${wall.delCount} DELs at ${rate(wall.delCount, wall.delMs)}/s (pools of ADDs only and of DELs only); ` +
        `${adds.length} ADDs and ${dels.length} DELs in all, every one succeeded`,
    );
    expect(live()).toEqual([]);
    expect(await endpointsOf(c)).toEqual([]);
    const { r, report } = await checkOf(c);
    expect(r.code, show(r)).toBe(0);
    expect(report).toMatchObject({ consistent: true, counts: { endpoints: 0, addresses: 0 }, issues: [] });
    for (const n of c.nodes) {
      expect(n.agent?.running, `overlayd on ${n.name}`).toBe(true);
      const errors = c.agentLogLines(n).filter((l) => typeof l.level === "number" && l.level >= 50);
      expect(errors, `overlayd on ${n.name} logged errors`).toEqual([]);
    }
  }, 300_000);
});

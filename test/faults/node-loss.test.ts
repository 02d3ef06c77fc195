/**
 * Node loss on etcd: a node's agent is killed (-9) and does not come back. Its pod's address
 * stays allocated while its lease runs and for a grace period after; then the surviving agent
 * deletes its endpoints, returns the addresses and releases its block, and stops sending to it.
 * Then the node rejoins with another underlay address, and its peers follow.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { run } from "../kit/netns/exec.js";
import {
  agentLogs,
  createOverlay,
  podsThatTalk,
  skipReason,
  type LocalCluster,
  type Pod,
} from "../e2e/cluster.js";
import { endpoints } from "../e2e/scenario.js";
import { lastPeers, startEtcdCluster, storeState, waitFor, type EtcdCluster } from "./helpers.js";

const skip = skipReason("test/faults/node-loss.test.ts") !== undefined;

const LEASE_TTL_S = 2;

describe.skipIf(skip)("node loss and rejoin (etcd)", () => {
  let ec: EtcdCluster;
  let c: LocalCluster;
  let a: Pod;
  let b: Pod;
  let oldUnderlay: string;

  beforeAll(async () => {
    ec = await startEtcdCluster({ leaseTtlSeconds: LEASE_TTL_S });
    c = ec.cluster;
    await createOverlay(c);
    ({ a, b } = await podsThatTalk(c));
  }, 120_000);

  afterAll(async () => {
    await c?.close();
  });

  it("keeps a dead node's address until its lease and a grace period are over, then frees it", async () => {
    const dead = c.node(1);
    const agent = dead.agent;
    if (!agent) throw new Error("no agent on node2");
    oldUnderlay = dead.underlayIp;
    expect(lastPeers(c, 0)).toContain(oldUnderlay);

    const killedAt = Date.now();
    process.kill(agent.pid, "SIGKILL");
    await agent.exited;

    // Before the lease expires: the endpoint and its address are still there.
    let s = await storeState(c, "red");
    expect(s.addresses.map((x) => x.ip)).toContain(b.ip);
    expect(s.endpoints.map((x) => x.ip)).toContain(b.ip);

    // The lease expires: the registration goes, but the address is kept through the grace period.
    const gone = await waitFor(
      async () => !(await storeState(c, "red")).nodes.some((n) => n.name === dead.name),
      LEASE_TTL_S * 1000 + 10_000,
    );
    expect(gone, "node2's registration did not expire").toBe(true);
    const goneAt = Date.now();

    // After the grace period: endpoint, address and block are gone.
    const released = await waitFor(
      async () => !(await storeState(c, "red")).addresses.some((x) => x.ip === b.ip),
      4 * LEASE_TTL_S * 1000 + 10_000,
    );
    const releasedAt = Date.now();
    expect(released, `address ${b.ip} never released\n${agentLogs(c)}`).toBe(true);
    s = await storeState(c, "red");
    expect(s.endpoints.filter((x) => x.node === dead.name)).toEqual([]);
    expect(s.addresses.filter((x) => x.node === dead.name)).toEqual([]);
    expect(s.blocks.filter((x) => x.node === dead.name)).toEqual([]);
    // The survivor keeps everything of its own.
    expect(s.addresses.map((x) => x.ip)).toContain(a.ip);
    expect(s.endpoints.map((x) => x.ip)).toContain(a.ip);
    expect((await endpoints(c)).map((e) => e.pod)).toEqual(["web-a"]);

    // The peer stopped programming the dead node's VTEP, and the pod is unreachable.
    expect(lastPeers(c, 0)).toEqual([]);
    expect((await c.ping(a, b.ip, { count: 2, timeoutSec: 1 })).received).toBe(0);
    const log = c.agentLogLines(0).filter((l) => l.msg === "released a departed node's endpoints and blocks");
    expect(log.length, agentLogs(c)).toBeGreaterThan(0);
    // Not before the grace period: judged by the survivor's own clock (its log times), since this
    // test's store reads may lag far behind on a loaded machine.
    const noticed = c
      .agentLogLines(0)
      .find((l) => l.msg === "node registration gone; releasing its addresses after the grace period");
    expect(noticed, agentLogs(c)).toBeDefined();
    expect(Number(log[0]?.time) - Number(noticed?.time)).toBeGreaterThanOrEqual(2 * LEASE_TTL_S * 1000);
    console.log(
      `node loss: registration gone ${goneAt - killedAt} ms after kill -9, address released ` +
        `${releasedAt - goneAt} ms later (grace ${2 * LEASE_TTL_S * 1000} ms)`,
    );
  }, 90_000);

  it("follows a node that rejoins with another underlay address", async () => {
    const node = c.node(1);
    const world = c.world;
    if (!world) throw new Error("cluster not started");
    const prefix = oldUnderlay.split(".").slice(0, 3).join(".");
    const newUnderlay = `${prefix}.102`;
    // The new address takes over the interface; the old one goes, so nothing can still reach it.
    await run("ip", ["netns", "exec", node.ns, "sysctl", "-qw", "net.ipv4.conf.ul0.promote_secondaries=1"]);
    await run("ip", ["-n", node.ns, "addr", "add", `${newUnderlay}/24`, "dev", "ul0"]);
    await run("ip", ["-n", node.ns, "addr", "del", `${oldUnderlay}/24`, "dev", "ul0"]);
    node.underlayIp = newUnderlay;

    const startedAt = Date.now();
    node.agent = world.start(node.short, process.execPath, c.agentArgs(node));
    await c.waitReady(node);
    const d = await c.addPod(1, "coffee", "web-d");
    // The address the departed node's pod had is back in the pool: the rejoined node takes it.
    expect(d.ip).toBe(b.ip);
    const r = await c.pingUntil(a, d.ip, "reach", 15_000);
    const followedMs = Date.now() - startedAt;
    expect(r.received, agentLogs(c)).toBeGreaterThan(0);
    expect((await c.ping(d, a.ip, { count: 2, timeoutSec: 1 })).received).toBeGreaterThan(0);
    expect(lastPeers(c, 0)).toEqual([newUnderlay]);
    const s = await storeState(c, "red");
    expect(s.nodes.find((n) => n.name === node.name)?.underlayIp).toBe(newUnderlay);
    const ips = s.addresses.map((x) => x.ip);
    expect(new Set(ips).size).toBe(ips.length);
    console.log(`node rejoin with a new underlay address: pod reachable ${followedMs} ms after agent start`);
  }, 60_000);
});

/**
 * Store outages longer than a node's lease, on etcd. (1) etcd itself is down for more than twice
 * the lease TTL: etcd renews its leases when it returns, so every node stays registered and keeps
 * its block and pods. (2) One node is cut off from a running etcd for longer than its lease: its
 * registration expires and peers stop programming it; when it reaches etcd again it registers
 * again (before the departed-node grace period ends), keeps its block and its pods' addresses,
 * and peers program it again, though the history it missed was compacted meanwhile.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { run } from "../kit/netns/exec.js";
import { sleep } from "../kit/netns/index.js";
import {
  agentLogs,
  createOverlay,
  podsThatTalk,
  show,
  skipReason,
  type LocalCluster,
  type Pod,
} from "../e2e/cluster.js";
import {
  compactEtcd,
  lastPeers,
  startEtcdCluster,
  storeState,
  waitFor,
  type EtcdCluster,
  type StoreState,
} from "./helpers.js";

const skip = skipReason("test/faults/store-outage-long.test.ts") !== undefined;

const LEASE_TTL_S = 4;
const CUT_TABLE = "overlayfaultcut";

function blocksOf(s: StoreState): string[] {
  return s.blocks.map((b) => `${b.node} ${b.cidr}`).sort();
}

function ipsOf(s: StoreState): string[] {
  return s.endpoints.map((e) => `${e.pod} ${e.ip}`).sort();
}

describe.skipIf(skip)("store outage longer than a lease (etcd)", () => {
  let ec: EtcdCluster;
  let c: LocalCluster;
  let a: Pod;
  let b: Pod;
  let before: StoreState;

  beforeAll(async () => {
    ec = await startEtcdCluster({ leaseTtlSeconds: LEASE_TTL_S });
    c = ec.cluster;
    await createOverlay(c);
    ({ a, b } = await podsThatTalk(c));
    before = await storeState(c, "red");
    expect(before.blocks).toHaveLength(2);
  }, 120_000);

  afterAll(async () => {
    if (c?.world !== undefined) {
      await run("ip", ["netns", "exec", c.node(1).ns, "nft", "delete", "table", "ip", CUT_TABLE], {
        allowFailure: true,
      });
    }
    await c?.close();
  });

  it("keeps every node, block and address when etcd is down for more than twice the lease", async () => {
    await ec.etcd.stopServer();
    const traffic = c.ping(a, b.ip, { count: 40, intervalSec: 0.25, timeoutSec: 2 });
    await sleep(2 * LEASE_TTL_S * 1000 + 1000);
    await ec.etcd.startServer();
    const during = await traffic;
    expect(during.received, during.output).toBe(during.sent);
    for (const node of c.nodes) {
      const ready = await waitFor(async () => (await c.cni(node, "STATUS", {})).code === 0, 30_000);
      expect(ready, agentLogs(c)).toBe(true);
    }
    // Wait past the departed-node grace period: nothing may be released.
    await sleep(2 * LEASE_TTL_S * 1000 + 1000);
    const after = await storeState(c, "red");
    expect(after.nodes.map((n) => n.name).sort()).toEqual(["node1", "node2"]);
    expect(blocksOf(after)).toEqual(blocksOf(before));
    expect(ipsOf(after)).toEqual(ipsOf(before));
    expect(after.addresses).toHaveLength(2);
    const y = await c.addPod(1, "coffee", "web-y");
    expect(
      before.blocks
        .find((x) => x.node === "node2")
        ?.cidr.split(".")
        .slice(0, 3),
    ).toEqual(y.ip.split(".").slice(0, 3));
    expect((await c.pingUntil(a, y.ip, "reach", 15_000)).received, agentLogs(c)).toBeGreaterThan(0);
    expect((await c.delPod(y)).code).toBe(0);
  }, 90_000);

  it("re-registers a node cut off from etcd for longer than its lease, with its block and pods", async () => {
    const node = c.node(1);
    const etcdIp = ec.etcd.ip;
    const port = String(ec.etcd.clientPort);
    const nft = (command: string) => run("ip", ["netns", "exec", node.ns, "nft", command]);
    const cutAt = Date.now();
    await nft(`add table ip ${CUT_TABLE}`);
    await nft(`add chain ip ${CUT_TABLE} out { type filter hook output priority 0; policy accept; }`);
    await nft(`add rule ip ${CUT_TABLE} out ip daddr ${etcdIp} tcp dport ${port} reject with tcp reset`);

    // The lease expires: peers see the node go and stop programming it.
    const gone = await waitFor(
      async () => !(await storeState(c, "red")).nodes.some((n) => n.name === node.name),
      LEASE_TTL_S * 1000 + 10_000,
    );
    expect(gone, "node2's registration did not expire").toBe(true);
    const goneAt = Date.now();
    expect(await waitFor(() => Promise.resolve(lastPeers(c, 0)?.length === 0), 5000)).toBe(true);
    // The history the cut-off agent has not seen is compacted away: it must re-list, not resume.
    expect(await compactEtcd(c)).toBeGreaterThan(0);
    await sleep(1000);
    await nft(`delete table ip ${CUT_TABLE}`);
    const restoredAt = Date.now();

    // The node registers again, and peers program it again.
    const back = await waitFor(
      async () => (await storeState(c, "red")).nodes.some((n) => n.name === node.name),
      20_000,
    );
    const backAt = Date.now();
    expect(back, `node2 did not register again\n${agentLogs(c)}`).toBe(true);
    expect(c.agentLog(node)).toContain("node lease lapsed; registering again");
    expect((await c.pingUntil(a, b.ip, "reach", 15_000)).received, agentLogs(c)).toBeGreaterThan(0);
    expect(lastPeers(c, 0)).toEqual([node.underlayIp]);

    // Past the grace period: the same blocks, the same addresses, nothing released or renumbered.
    await sleep(2 * LEASE_TTL_S * 1000);
    const after = await storeState(c, "red");
    expect(blocksOf(after)).toEqual(blocksOf(before));
    expect(ipsOf(after)).toEqual(ipsOf(before));
    expect(after.addresses.map((x) => x.ip).sort()).toEqual(before.addresses.map((x) => x.ip).sort());
    const check = await c.dctl(["network", "overlay", "check", "red"]);
    expect(check.code, show(check)).toBe(0);
    console.log(
      `node cut off from etcd: registration gone ${goneAt - cutAt} ms after the cut, ` +
        `cut for ${restoredAt - cutAt} ms, registered again ${backAt - restoredAt} ms after it ended; ` +
        `watch reset logged: ${String(c.agentLog(node).includes("store watch reset"))}`,
    );
  }, 90_000);
});

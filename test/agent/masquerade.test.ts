/**
 * Pods reach beyond the overlay through their node: the agent turns forwarding on and
 * masquerades the overlay subnet behind the node's own address (an nftables table of its own),
 * and takes the table away again when the network is deleted.
 *
 * "Beyond" is a namespace of the test's own, joined to the node by a veth, with no route back
 * to the overlay subnet: only a masqueraded packet gets an answer.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { run } from "../kit/netns/exec.js";
import {
  agentLogs,
  createOverlay,
  show,
  skipReason,
  startCluster,
  type LocalCluster,
} from "../e2e/cluster.js";

const skip = skipReason("test/agent/masquerade.test.ts");

// TEST-NET-2 (RFC 5737), used only between the node and the test's own "outside" namespace.
const NODE_SIDE = "198.51.100.1";
const OUTSIDE = "198.51.100.2";

async function nftTable(ns: string): Promise<string | undefined> {
  const r = await run("ip", ["netns", "exec", ns, "nft", "list", "table", "ip", "overlay"], {
    allowFailure: true,
  });
  return r.code === 0 ? r.stdout : undefined;
}

async function until(what: string, ok: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe.skipIf(skip !== undefined)("masquerade beyond the overlay", () => {
  let c: LocalCluster;

  beforeAll(async () => {
    c = await startCluster({ store: "sqlite" });
    const world = c.world;
    if (world === undefined) throw new Error("cluster without a world");
    await world.addNamespace("out");
    await world.addVeth(
      { ns: c.node(0).short, name: "toout", addr: `${NODE_SIDE}/24` },
      { ns: "out", name: "tonode", addr: `${OUTSIDE}/24` },
    );
  }, 60_000);

  afterAll(async () => {
    await c?.close();
  });

  it("answers a pod's ping to an outside address only through the node's masquerade, and removes the rule with the network", async () => {
    await createOverlay(c);
    const node = c.node(0);
    const pod = await c.addPod(0, "coffee", "web");

    const r = await c.pingUntil(pod, OUTSIDE, "reach");
    expect(r.received, agentLogs(c)).toBeGreaterThan(0);
    const table = await nftTable(node.ns);
    expect(table).toContain("masquerade");
    expect(table).toContain("172.30.0.0/16");

    // Without the rule the outside host answers the pod's own address, which it cannot route.
    await run("ip", ["netns", "exec", node.ns, "nft", "flush", "table", "ip", "overlay"]);
    const blocked = await c.ping(pod, OUTSIDE, { count: 2, timeoutSec: 1 });
    expect(blocked.received).toBe(0);

    // The agent puts the rule back when it next configures a network; deleting the network
    // (pods first) takes its table away.
    const del = await c.delPod(pod);
    expect(del.code, show(del)).toBe(0);
    const gone = await c.dctl(["network", "overlay", "delete", "red"]);
    expect(gone.code, show(gone)).toBe(0);
    await until("the masquerade table to go", async () => (await nftTable(node.ns)) === undefined);
    expect(c.agentLog(node)).toContain("masquerade removed");
  }, 60_000);
});

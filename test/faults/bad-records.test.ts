/**
 * Store records that fail validation (hand-edited, or written by a newer version) are reported
 * with their key and skipped: agents keep running and forwarding, dctl warns and carries on.
 * And what an agent exposes locally is root's alone.
 */
import { statSync } from "node:fs";
import { dirname } from "node:path";
import { describe, expect, it } from "vitest";
import { isRoot } from "../kit/netns/index.js";
import { endpointKey, namespaceKey, nodeKey } from "../../src/model/keys.js";
import { openStore } from "../../src/store/index.js";
import { agentLogs, skipReason, useTalkingPods } from "../e2e/cluster.js";

const skip = skipReason("test/faults/bad-records.test.ts") !== undefined;

describe.skipIf(skip || !isRoot())("records that fail validation", () => {
  const pods = useTalkingPods({ store: "sqlite" });

  it("are reported with their key and skipped; agents keep forwarding and dctl keeps working", async () => {
    const { c, a, b } = pods;
    const bad = {
      [endpointKey("red", "coffee", "garbage")]: "{not json",
      [endpointKey("red", "coffee", "future")]: JSON.stringify({ schemaVersion: 99, pod: "future" }),
      [namespaceKey("red", "odd")]: JSON.stringify({ schemaVersion: 1, name: "odd", vni: "seven" }),
      [nodeKey("ghost")]: "[]",
    };
    const store = await openStore(c.storeUrl);
    try {
      await store.txn(
        [],
        Object.entries(bad).map(([key, value]) => ({ type: "put" as const, key, value })),
      );
    } finally {
      await store.close();
    }
    // Both agents log every bad key and stay up.
    const deadline = Date.now() + 10_000;
    const logged = (n: number) => Object.keys(bad).every((k) => c.agentLog(n).includes(k));
    while (!(logged(0) && logged(1)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    for (const n of [0, 1]) {
      expect(logged(n), agentLogs(c)).toBe(true);
      expect(c.node(n).agent?.running).toBe(true);
    }
    expect(c.agentLog(0)).toContain("skipping invalid record");
    // Forwarding and the control plane go on.
    expect((await c.ping(a, b.ip, { count: 2, timeoutSec: 1 })).received).toBeGreaterThan(0);
    const later = await c.addPod(1, "coffee", "web-c");
    expect((await c.pingUntil(a, later.ip, "reach")).received, agentLogs(c)).toBeGreaterThan(0);
    const list = await c.dctl(["network", "overlay", "endpoints", "red"]);
    expect(list.code).toBe(0);
    expect(list.stdout).toContain(a.ip);
    expect(list.stderr).toContain(endpointKey("red", "coffee", "garbage"));
  }, 60_000);

  it("keeps the agent's socket and its folder root's alone", () => {
    const { c } = pods;
    for (const node of c.nodes) {
      expect(statSync(node.socket).mode & 0o777).toBe(0o600);
      expect(statSync(node.socket).uid).toBe(0);
      expect(statSync(dirname(node.socket)).mode & 0o077).toBe(0);
    }
  });
});

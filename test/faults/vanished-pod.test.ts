/**
 * A pod whose network namespace disappears without a CNI DEL (the runtime, the plugin or the agent
 * died mid-operation): its agent releases the endpoint and address after a grace period, and not
 * before; an endpoint recorded for a sandbox that never got its device is released the same way.
 * CNI GC releases what the runtime no longer lists, and only that.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { run } from "../kit/netns/exec.js";
import { isRoot } from "../kit/netns/index.js";
import { createEndpoint } from "../../src/model/endpoints.js";
import { openStore } from "../../src/store/index.js";
import {
  agentLogs,
  createOverlay,
  show,
  skipReason,
  startCluster,
  type LocalCluster,
} from "../e2e/cluster.js";

const skip = skipReason("test/faults/vanished-pod.test.ts") !== undefined;
const GRACE_S = 2;

async function endpointIps(c: LocalCluster): Promise<string[]> {
  const r = await c.dctl(["network", "overlay", "endpoints", "red", "-o", "json"]);
  expect(r.code, show(r)).toBe(0);
  const parsed = JSON.parse(r.stdout) as { ip: string }[] | { endpoints: { ip: string }[] };
  const list = Array.isArray(parsed) ? parsed : parsed.endpoints;
  return list.map((e) => e.ip).sort();
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe.skipIf(skip || !isRoot())("pods that vanish without CNI DEL", () => {
  let c: LocalCluster;

  beforeAll(async () => {
    c = await startCluster({ store: "sqlite", agentArgs: ["--gc-grace", String(GRACE_S)] });
    await createOverlay(c);
  }, 120_000);

  afterAll(async () => {
    await c?.close();
  });

  it("releases the address of a pod whose namespace was deleted, after the grace period", async () => {
    const keep = await c.addPod(0, "coffee", "stays");
    const gone = await c.addPod(0, "coffee", "vanishes");
    expect(await endpointIps(c)).toEqual([gone.ip, keep.ip].sort());

    const deletedAt = Date.now();
    await run("ip", ["netns", "delete", gone.ns]);
    // Not before the grace period: the address is still held a moment later.
    await new Promise((r) => setTimeout(r, 500));
    expect(await endpointIps(c)).toContain(gone.ip);

    await waitFor(
      "the vanished pod's endpoint to be released",
      async () => !(await endpointIps(c)).includes(gone.ip),
      20_000,
    );
    expect(Date.now() - deletedAt).toBeGreaterThanOrEqual(GRACE_S * 1000);
    expect(await endpointIps(c)).toEqual([keep.ip]);
    const check = await c.dctl(["network", "overlay", "check", "red"]);
    expect(check.code, show(check)).toBe(0);
    expect(c.agentLog(0)).toContain("released the address of a vanished pod");
    // The pod that stayed is untouched.
    expect((await c.ping(keep, gone.gateway, { count: 1, timeoutSec: 1 })).received, agentLogs(c)).toBe(1);
  }, 60_000);

  it("CNI GC releases exactly the attachments the runtime no longer lists", async () => {
    const listed = await c.addPod(1, "tea", "listed");
    const forgotten = await c.addPod(1, "tea", "forgotten");
    const other = await c.addPod(0, "tea", "other-node");
    const node = c.node(1);
    const conf = {
      ...c.netConf(node),
      "cni.dev/valid-attachments": [{ containerID: listed.containerId, ifname: listed.ifName }],
    };
    const r = await c.cni(node, "GC", {}, conf);
    expect(r.code, show(r)).toBe(0);
    const ips = await endpointIps(c);
    expect(ips).toContain(listed.ip);
    expect(ips).not.toContain(forgotten.ip);
    // GC is per node: another node's attachments are not this runtime's to judge.
    expect(ips).toContain(other.ip);
    expect((await c.ping(other, listed.ip, { count: 2, timeoutSec: 1 })).received).toBeGreaterThan(0);
    const check = await c.dctl(["network", "overlay", "check", "red"]);
    expect(check.code, show(check)).toBe(0);
  }, 60_000);

  it("releases an endpoint recorded for a sandbox that never got its device", async () => {
    const store = await openStore(c.storeUrl);
    try {
      const e = await createEndpoint(store, {
        namespace: "tea",
        pod: "half-made",
        node: c.node(1).name,
        containerId: "c0ffee",
        netns: "/var/run/netns/does-not-exist-here",
      });
      expect(await endpointIps(c)).toContain(e.ip);
      await waitFor(
        "the half-made endpoint to be released",
        async () => !(await endpointIps(c)).includes(e.ip),
        20_000,
      );
      const check = await c.dctl(["network", "overlay", "check", "red"]);
      expect(check.code, show(check)).toBe(0);
    } finally {
      await store.close();
    }
  }, 60_000);
});

/**
 * overlayd restarts with pods running: their devices are persistent, so each pod keeps its eth0,
 * address and MAC, and the new agent re-attaches them; traffic resumes once it is ready.
 */
import { describe, expect, it } from "vitest";
import { run } from "../kit/netns/exec.js";
import { isRoot } from "../kit/netns/index.js";
import { agentLogs, skipReason, useTalkingPods, type Pod } from "../e2e/cluster.js";

const skip = skipReason("test/agent/restart.test.ts") !== undefined;

interface LinkState {
  mac: string;
  addrs: string[];
}

async function eth0(pod: Pod): Promise<LinkState> {
  const r = await run("ip", ["-n", pod.ns, "-j", "addr", "show", "dev", "eth0"]);
  const [link] = JSON.parse(r.stdout) as {
    address: string;
    addr_info: { family: string; local: string }[];
  }[];
  if (!link) throw new Error(`no eth0 in ${pod.ns}`);
  return {
    mac: link.address,
    addrs: link.addr_info.filter((a) => a.family === "inet").map((a) => a.local),
  };
}

async function linkNames(ns: string): Promise<string[]> {
  const r = await run("ip", ["-n", ns, "-j", "link", "show"]);
  return (JSON.parse(r.stdout) as { ifname: string }[]).map((l) => l.ifname);
}

describe.skipIf(skip || !isRoot())("overlayd restart with pods running", () => {
  const pods = useTalkingPods({ store: "sqlite" });

  it("reports each node's active offloads in dctl node list", async () => {
    const { c } = pods;
    const r = await c.dctl(["node", "list", "-o", "json"]);
    expect(r.code).toBe(0);
    const nodes = JSON.parse(r.stdout) as { name: string; offloads: string[] | null }[];
    expect(nodes).toHaveLength(2);
    // TAP super-frames and multi-queue TAPs work on every kernel these tests run on.
    for (const n of nodes) expect(n.offloads).toEqual(expect.arrayContaining(["tso", "multi-queue"]));
  });

  for (const signal of ["SIGTERM", "SIGKILL"] as const) {
    it(`keeps eth0, address and MAC, and forwards again after a ${signal}`, async () => {
      const { c, a, b } = pods;
      const node = c.node(0);
      const world = c.world;
      const agent = node.agent;
      if (!world || !agent) throw new Error("cluster not started");
      const before = await eth0(a);
      const linksBefore = await linkNames(node.ns);

      const killedAt = Date.now();
      process.kill(agent.pid, signal);
      await agent.exited;
      // The pod's device outlives the agent that made it.
      expect(await eth0(a)).toEqual(before);

      node.agent = world.start(node.short, process.execPath, c.agentArgs(node));
      await c.waitReady(node);
      const r = await c.pingUntil(a, b.ip, "reach", 15_000, { timeoutSec: 1 });
      const gapMs = Date.now() - killedAt;
      expect(r.received, agentLogs(c)).toBeGreaterThan(0);
      console.log(`restart after ${signal}: traffic resumed ${gapMs} ms after the agent died`);

      expect(await eth0(a)).toEqual(before);
      // Nothing leaked or duplicated: the node has the same links (one gateway port) as before.
      expect((await linkNames(node.ns)).sort()).toEqual(linksBefore.sort());
      expect(c.agentLog(node)).toContain("re-attached pod");
      // And the other direction, through the restarted agent's switch.
      expect((await c.ping(b, a.ip, { count: 2, timeoutSec: 1 })).received).toBeGreaterThan(0);
    }, 60_000);
  }
});

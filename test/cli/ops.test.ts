/**
 * The operator tools against the two-node world (LocalCluster: real agents with
 * `--metrics-listen`, a SQLite store, pods attached through the CNI plugin): `dctl status`,
 * `dctl network overlay trace` and `dctl network overlay drops`, then their failure paths
 * (a node that is not registered, an unreachable store, an agent that is down). The last
 * describe block stops node2's agent, so it runs last.
 */
import { describe, expect, it } from "vitest";
import type { StatusJson, TraceJson } from "../../src/agent/api.js";
import { BIN, execIn, type Pod } from "../kit/cluster.js";
import { sleep } from "../kit/netns/index.js";
import { agentLogs, show, skipReason, useTalkingPods } from "../e2e/cluster.js";

const skip = skipReason("test/cli/ops.test.ts");
const PORT = 9464;

describe.skipIf(skip !== undefined)("dctl status, trace and drops on two nodes", () => {
  const pods = useTalkingPods({ store: "sqlite", agentArgs: ["--metrics-listen", `0.0.0.0:${PORT}`] });
  let tea: Pod | undefined;
  const teaPod = async (): Promise<Pod> => (tea ??= await pods.c.addPod(1, "tea", "web-c"));

  it("publishes each agent's API address in its node record", async () => {
    const { c } = pods;
    const r = await c.dctl(["node", "list", "-o", "json"]);
    expect(r.code, show(r)).toBe(0);
    const nodes = JSON.parse(r.stdout) as { name: string; apiAddress: string | null }[];
    for (const n of c.nodes) {
      expect(nodes.find((x) => x.name === n.name)?.apiAddress).toBe(`${n.underlayIp}:${PORT}`);
    }
  });

  it("status: store reachable, both agents ready with their peer, exit 0", async () => {
    const { c } = pods;
    const r = await c.dctl(["status"]);
    expect(r.code, show(r)).toBe(0);
    expect(r.stdout).toMatch(/^Store: sqlite:\S+ reachable, [\d.]+ ms$/m);
    expect(r.stdout).toMatch(/^node1\s+ready\s+0\.1\.0\s+\S+\s+1\/1\s+1\s+/m);
    expect(r.stdout).toMatch(/^node2\s+ready\s+/m);
    expect(r.stdout).toContain("OK: store reachable, 2 of 2 nodes ready");
    const j = await c.dctl(["status", "-o", "json"]);
    const s = JSON.parse(j.stdout) as { ok: boolean; nodes: { name: string; agent: StatusJson }[] };
    expect(s.ok).toBe(true);
    const n1 = s.nodes.find((n) => n.name === "node1")?.agent;
    expect(n1).toMatchObject({ ready: true, following: true, peers: { programmed: 1, expected: 1 } });
    expect(n1?.endpoints).toMatchObject({ pods: 1, gateways: 1 });
    expect(n1?.lease.renewedAgoMs).toBeLessThan(5000);
    expect(n1?.drops).not.toBeNull();
  });

  it("trace: same namespace across nodes is forwarded to the other node's VTEP", async () => {
    const { c, a, b } = pods;
    const r = await c.dctl(["network", "overlay", "trace", "coffee/web-a", `${b.ip}:80`]);
    expect(r.code, show(r)).toBe(0);
    expect(r.stdout).toContain(`Trace coffee/web-a -> ${b.ip}:80 (tcp)`);
    expect(r.stdout).toMatch(/arp\s+answered with /);
    expect(r.stdout).toMatch(
      new RegExp(
        `destination\\s+coffee/web-b on node2 behind VTEP ${c.node(1).underlayIp} \\(a programmed peer\\)`,
      ),
    );
    expect(r.stdout).toMatch(/policy\s+same VNI \(\d+\): allowed/);
    expect(r.stdout).toMatch(/verdict\s+forwarded/);
    const j = await c.dctl(["network", "overlay", "trace", "coffee/web-a", b.ip, "-o", "json"]);
    const t = JSON.parse(j.stdout) as TraceJson;
    expect(t).toMatchObject({
      node: "node1",
      source: { pod: "coffee/web-a", ip: a.ip },
      destination: { ip: b.ip, port: null, protocol: "icmp" },
      nextHop: { ip: b.ip, via: "direct" },
      found: { kind: "remote", name: "coffee/web-b", node: "node2", peerProgrammed: true },
      policy: "same-vni",
      verdict: "forwarded",
      drop: null,
    });
  });

  it("trace: another namespace is isolated, and real pings are dropped as the trace says", async () => {
    const { c, a } = pods;
    const t3 = await teaPod();
    const r = await c.dctl([
      "network",
      "overlay",
      "trace",
      "coffee/web-a",
      t3.ip,
      "--proto",
      "udp",
      "-o",
      "json",
    ]);
    expect(r.code, show(r)).toBe(0);
    const t = JSON.parse(r.stdout) as TraceJson;
    expect(t).toMatchObject({
      found: { kind: "remote", name: "tea/web-c", node: "node2" },
      policy: "isolated",
      arp: { answered: false, drop: "arp_unanswered" },
      drop: "arp_unanswered",
      frameDrop: "vni_mismatch",
      verdict: "dropped",
    });
    // Arm recording, ping for real, and find the drop the trace named, from web-a to web-c.
    expect((await c.dctl(["network", "overlay", "drops", "--node", "node1"])).code).toBe(0);
    const since = Date.now();
    const p = await c.ping(a, t3.ip, { count: 1, timeoutSec: 1 });
    expect(p.received).toBe(0);
    await sleep(200);
    const d = await c.dctl([
      "network",
      "overlay",
      "drops",
      "--node",
      "node1",
      "--reason",
      "arp_unanswered",
      "-o",
      "json",
    ]);
    expect(d.code, show(d)).toBe(0);
    const out = JSON.parse(d.stdout) as {
      events: {
        node: string;
        reason: string;
        from: string;
        src: string;
        dst: string;
        timeMs: number;
        protocol: string;
      }[];
    };
    const seen = out.events.filter((e) => e.timeMs >= since - 5 && e.dst === t3.ip);
    expect(seen.length, d.stdout + agentLogs(c)).toBeGreaterThan(0);
    expect(seen[0]).toMatchObject({
      node: "node1",
      reason: "arp_unanswered",
      from: "coffee/web-a",
      src: a.ip,
      protocol: "arp",
    });
    // The table, as a flow log.
    const table = await c.dctl(["network", "overlay", "drops", "--reason", "arp_unanswered"]);
    expect(table.stdout).toMatch(
      /^TIME\s+NODE\s+REASON\s+FROM\s+VNI\s+PROTO\s+SOURCE\s+DESTINATION\s+COUNT$/m,
    );
    expect(table.stdout).toMatch(
      new RegExp(
        `node1\\s+arp_unanswered\\s+coffee/web-a\\s+\\d+\\s+arp\\s+${a.ip.replace(/\./g, "\\.")}\\s+${t3.ip.replace(/\./g, "\\.")}\\s+1`,
      ),
    );
  });

  it("drops --follow prints drops as they happen, until stopped", async () => {
    const { c, a } = pods;
    const t3 = await teaPod();
    const follow = c.dctl(
      ["network", "overlay", "drops", "--follow", "--reason", "arp_unanswered", "--since", "1s"],
      {
        timeoutMs: 4000,
      },
    );
    await sleep(1500);
    await c.ping(a, t3.ip, { count: 1, timeoutSec: 1 });
    const r = await follow;
    expect(r.stdout).toMatch(/^TIME\s+NODE\s+REASON/);
    expect(r.stdout).toMatch(new RegExp(`node1\\s+arp_unanswered\\s+coffee/web-a`));
  });

  it("names what is missing: an unregistered node, a pod nobody has, a bad destination", async () => {
    const { c } = pods;
    const noNode = await c.dctl(["network", "overlay", "drops", "--node", "node9"]);
    expect(noNode.code).toBe(1);
    expect(noNode.stderr).toBe("Error: node node9 is not registered (see dctl node list)\n");
    const noPod = await c.dctl(["network", "overlay", "trace", "coffee/nobody", "172.30.0.9"]);
    expect(noPod.code).toBe(1);
    expect(noPod.stderr).toContain("pod coffee/nobody has no endpoint in any overlay network");
    const bad = await c.dctl(["network", "overlay", "trace", "coffee/web-a", "172.30.0.9:99999"]);
    expect(bad.stderr).toContain('invalid destination "172.30.0.9:99999"');
  });

  it("status with the store unreachable: says so, exit 1, within its timeout", async () => {
    const { c } = pods;
    const started = Date.now();
    const r = await execIn(
      c.node(0).ns,
      process.execPath,
      [BIN.dctl, "status", "--store", "etcd://127.0.0.1:1"],
      {
        timeoutMs: 20_000,
      },
    );
    expect(r.timedOut).toBe(false);
    expect(r.code, show(r)).toBe(1);
    expect(r.stdout).toContain("Store: etcd://127.0.0.1:1 UNREACHABLE");
    expect(r.stdout).toMatch(/the cluster store is unreachable/);
    expect(Date.now() - started).toBeLessThan(15_000);
  });

  describe("with node2's agent down", () => {
    it("status names the agent that does not answer, then the node that left; trace and drops fail in words", async () => {
      const { c } = pods;
      await c.node(1).agent?.stop(3000);
      const r = await c.dctl(["status"]);
      expect(r.code, show(r)).toBe(1);
      expect(r.stdout).toMatch(/^node2\s+no answer/m);
      expect(r.stdout).toContain(`node2: nothing listens at ${c.node(1).underlayIp}:${PORT} on node2`);
      expect(r.stdout).toMatch(/see: overlayd's log on node2/);
      const d = await c.dctl(["network", "overlay", "drops"]);
      expect(d.code).toBe(1);
      expect(d.stderr).toContain("Warning: nothing listens at");
      const t = await c.dctl(["network", "overlay", "trace", "coffee/web-b", pods.a.ip]);
      expect(t.code).toBe(1);
      expect(t.stderr).toMatch(/^Error: cannot trace: nothing listens at/);
      // The lease (5 s) lapses: node2 is no longer registered but still holds its block.
      const deadline = Date.now() + 15_000;
      let last = r;
      while (Date.now() < deadline) {
        last = await c.dctl(["status"]);
        if (/node2\s+not registered/.test(last.stdout)) break;
        await sleep(500);
      }
      expect(last.stdout, show(last)).toMatch(/^node2\s+not registered/m);
      expect(last.stdout).toContain("node node2 holds address blocks but is not registered");
      expect(last.stdout).toMatch(
        /node1: 1 peer VTEPs programmed, but 0 other nodes are registered|^node1\s+ready/m,
      );
      expect(last.code).toBe(1);
      const t2 = await c.dctl(["network", "overlay", "trace", "coffee/web-b", pods.a.ip]);
      expect(t2.stderr).toContain("is on node node2, which is not registered");
    }, 60_000);
  });
});

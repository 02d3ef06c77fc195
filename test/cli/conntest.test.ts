/**
 * `dctl connectivity-test` on the two-node world (LocalCluster, real agents with
 * `--metrics-listen`): the whole matrix passes on a healthy cluster with isolated namespaces,
 * follows a join, leaves no endpoint, address or namespace behind (`check` clean), and when dctl
 * is killed mid-run the agents remove its endpoints at their TTL.
 */
import { spawn } from "node:child_process";
import { describe, expect, it } from "vitest";
import { BIN, execIn } from "../kit/cluster.js";
import { sleep } from "../kit/netns/index.js";
import { agentLogs, show, skipReason, useTalkingPods } from "../e2e/cluster.js";

const skip = skipReason("test/cli/conntest.test.ts");

describe.skipIf(skip !== undefined)("dctl connectivity-test on two nodes", () => {
  const pods = useTalkingPods({ store: "sqlite", agentArgs: ["--metrics-listen", "0.0.0.0:9464"] });

  async function expectClean(): Promise<void> {
    const { c } = pods;
    const check = await c.dctl(["network", "overlay", "check", "red"]);
    expect(check.code, show(check)).toBe(0);
    const eps = await c.dctl(["network", "overlay", "endpoints", "red"]);
    expect(eps.stdout).not.toContain("connectivity-test");
    const netns = await execIn(c.node(0).ns, "ip", ["netns", "list"]);
    expect(netns.stdout).not.toMatch(/ovct-/);
  }

  it("passes on a healthy cluster: isolated namespaces blocked, MTU and fragments pass; leaves nothing", async () => {
    const { c } = pods;
    const r = await c.dctl(["connectivity-test"], { timeoutMs: 90_000 });
    expect(r.code, show(r) + agentLogs(c)).toBe(0);
    expect(r.stdout).toMatch(/^CHECK\s+FROM\s+TO\s+EXPECT\s+RESULT\s+DETAIL$/m);
    expect(r.stdout).toMatch(
      /^same namespace, across nodes\s+connectivity-test-a\/ct-node1-a1\s+\S+ \(node2\)\s+reach\s+pass/m,
    );
    expect(r.stdout).toMatch(/^same namespace, same node\s+.*reach\s+pass/m);
    expect(r.stdout).toMatch(/^other namespace, across nodes\s+.*blocked\s+pass\s+0\/3 replies/m);
    expect(r.stdout).toMatch(/^node to its pod\s+node node1\s+.*reach\s+pass/m);
    expect(r.stdout).toMatch(/^MTU-sized, DF\s+.*reach\s+pass\s+\d\/3 replies, 1422 bytes DF/m);
    expect(r.stdout).toMatch(/^fragmented\s+.*reach\s+pass\s+\d\/3 replies, 2900 bytes$/m);
    expect(r.stdout).not.toContain("FAIL");
    // 6 endpoints: 30 pairs, 6 node checks, 2 x 2 large payloads.
    expect(r.stdout).toMatch(/OK: 40 checks on 2 nodes: 40 passed, 0 failed; 6 of 6 test endpoints removed/);
    await expectClean();
    const ns = await c.dctl(["namespace", "list", "-o", "json"]);
    expect(ns.stdout).not.toContain("connectivity-test");
  }, 120_000);

  it("follows a join: the two namespaces reach each other, and -o json says so", async () => {
    const { c } = pods;
    for (const n of ["connectivity-test-a", "connectivity-test-b"]) {
      expect((await c.dctl(["namespace", "create", n])).code).toBe(0);
    }
    const j = await c.dctl([
      "network",
      "overlay",
      "update",
      "red",
      "--join-namespaces",
      "connectivity-test-a,connectivity-test-b",
    ]);
    expect(j.code, show(j)).toBe(0);
    const r = await c.dctl(["connectivity-test", "-o", "json"], { timeoutMs: 90_000 });
    expect(r.code, show(r)).toBe(0);
    const out = JSON.parse(r.stdout) as {
      ok: boolean;
      checks: { check: string; expect: string; result: string }[];
    };
    expect(out.ok).toBe(true);
    const other = out.checks.filter((x) => x.check.startsWith("other namespace"));
    expect(other.length).toBeGreaterThan(0);
    expect(other.every((x) => x.expect === "reach" && x.result === "pass")).toBe(true);
    await expectClean();
    // Namespaces that existed before the run stay.
    const ns = await c.dctl(["namespace", "list", "-o", "json"]);
    expect(ns.stdout).toContain("connectivity-test-a");
    for (const n of ["connectivity-test-a", "connectivity-test-b"]) await c.dctl(["namespace", "delete", n]);
  }, 120_000);

  it("killed mid-run, its endpoints are removed by the agents at their TTL", async () => {
    const { c } = pods;
    const child = spawn(
      "ip",
      [
        "netns",
        "exec",
        c.node(0).ns,
        process.execPath,
        BIN.dctl,
        "connectivity-test",
        "--ttl",
        "3",
        "--store",
        c.storeUrl,
      ],
      { stdio: "ignore" },
    );
    // Wait until some test endpoint exists, then kill dctl before it can clean up.
    const deadline = Date.now() + 20_000;
    let seen = false;
    while (!seen && Date.now() < deadline) {
      seen = (await c.dctl(["network", "overlay", "endpoints", "red"])).stdout.includes("connectivity-test");
      if (!seen) await sleep(100);
    }
    if (child.pid !== undefined) process.kill(child.pid, "SIGKILL");
    await new Promise((r) => child.once("exit", r));
    expect(seen).toBe(true);
    // TTL 3 s, swept every 2 s.
    const gone = Date.now() + 20_000;
    let left = true;
    while (left && Date.now() < gone) {
      await sleep(500);
      left = (await c.dctl(["network", "overlay", "endpoints", "red"])).stdout.includes("connectivity-test");
    }
    expect(left, agentLogs(c)).toBe(false);
    await expectClean();
    for (const n of ["connectivity-test-a", "connectivity-test-b"]) await c.dctl(["namespace", "delete", n]);
  }, 60_000);
});

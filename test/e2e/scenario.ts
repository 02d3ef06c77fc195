/**
 * The seed's scenario end to end, on either store: `red` created with dctl, namespaces coffee and
 * tea, a pod of each on different nodes through the CNI plugin; isolated, joined, isolated again;
 * delete refused while pods exist and done once they are gone; and `--isolate-ns=False`.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  agentLogs,
  show,
  skipReason,
  startCluster,
  type ExecResult,
  type LocalCluster,
  type Pod,
  type StoreKind,
} from "./cluster.js";

export const NETWORK_COLUMNS = ["NAME", "TYPE", "SUBNET", "OVERLAY-NW", "ISOLATE-NS", "NETWORKGROUP"];
export const BEST_EFFORT = JSON.stringify({ network: "red", perfTier: "best-effort" });

/** A table as printed by dctl: cells cut at the header's column starts. */
export function parseTable(text: string): { headers: string[]; rows: Record<string, string>[] } {
  const lines = text.split("\n").filter((l) => l.trim() !== "");
  const [head, ...body] = lines;
  if (head === undefined) return { headers: [], rows: [] };
  const headers = head.trim().split(/\s+/);
  const starts = headers.map((h) => head.indexOf(h));
  const rows = body.map((line) => {
    const row: Record<string, string> = {};
    headers.forEach((h, i) => {
      row[h] = line.slice(starts[i], starts[i + 1] ?? line.length).trim();
    });
    return row;
  });
  return { headers, rows };
}

export interface EndpointJson {
  pod: string;
  namespace: string;
  ip: string;
  mac: string;
  node: string;
  vni: number | null;
  tier: string;
}

export async function endpoints(c: LocalCluster, network = "red"): Promise<EndpointJson[]> {
  const r = await c.dctl(["network", "overlay", "endpoints", network, "-o", "json"]);
  expect(r.code, show(r)).toBe(0);
  return JSON.parse(r.stdout) as EndpointJson[];
}

function ok(r: ExecResult): ExecResult {
  expect(r.code, show(r)).toBe(0);
  return r;
}

/** DELs every pod still attached and deletes every network, so a test starts from nothing. */
export async function resetCluster(c: LocalCluster): Promise<void> {
  for (const p of c.pods.filter((x) => !x.deleted)) ok(await c.delPod(p));
  const list = ok(await c.dctl(["network", "overlay", "list", "-o", "json"]));
  for (const n of JSON.parse(list.stdout) as { name: string }[]) {
    ok(await c.dctl(["network", "overlay", "delete", n.name]));
  }
}

/** Reachability as the user sees it: some probe gets through within the time, then 3 of 3. */
async function expectReach(c: LocalCluster, from: Pod, to: Pod): Promise<void> {
  const first = await c.pingUntil(from, to.ip, "reach");
  expect(
    first.received,
    `${from.name} -> ${to.name} (${to.ip}): ${first.output}\n${agentLogs(c)}`,
  ).toBeGreaterThan(0);
  const r = await c.ping(from, to.ip, { count: 3 });
  expect(r, `${from.name} -> ${to.name}: ${r.output}`).toMatchObject({ sent: 3, received: 3, lossPct: 0 });
}

/** Isolation as the user sees it: probes stop getting through within the time, then 0 of 3. */
async function expectBlocked(c: LocalCluster, from: Pod, to: Pod): Promise<void> {
  const first = await c.pingUntil(from, to.ip, "blocked");
  expect(first.received, `${from.name} -> ${to.name} (${to.ip}): ${first.output}\n${agentLogs(c)}`).toBe(0);
  const r = await c.ping(from, to.ip, { count: 3, timeoutSec: 1 });
  expect(r, `${from.name} -> ${to.name}: ${r.output}`).toMatchObject({ received: 0, lossPct: 100 });
  expect(r.sent).toBeGreaterThanOrEqual(3);
}

export function seedScenario(kind: StoreKind, file: string): void {
  const skip = skipReason(file);

  describe.skipIf(skip !== undefined)(`the seed's scenario, two nodes on ${kind}`, () => {
    let cluster: LocalCluster | undefined;

    beforeAll(async () => {
      cluster = await startCluster({ store: kind, nodes: 2 });
    }, 90_000);

    afterAll(async () => {
      await cluster?.close();
    }, 60_000);

    const cl = (): LocalCluster => {
      if (cluster === undefined) throw new Error("cluster did not start");
      return cluster;
    };

    it("isolates, joins and isolates again; delete is refused while pods exist", async () => {
      const c = cl();
      const [n1, n2] = [c.node(0), c.node(1)];

      // dctl network overlay create red -s 172.30.0.0/16 --set-default
      const created = ok(
        await c.dctl(["network", "overlay", "create", "red", "-s", "172.30.0.0/16", "--set-default"]),
      );
      const table = parseTable(created.stdout);
      expect(table.headers).toEqual(NETWORK_COLUMNS);
      expect(table.rows).toEqual([
        {
          NAME: "red",
          TYPE: "private",
          SUBNET: "172.30.0.0/16",
          "OVERLAY-NW": expect.any(String) as string,
          "ISOLATE-NS": "true",
          NETWORKGROUP: expect.any(String) as string,
        },
      ]);
      const listed = parseTable(ok(await c.dctl(["network", "overlay", "list"])).stdout);
      expect(listed.headers).toEqual(NETWORK_COLUMNS);
      expect(listed.rows).toEqual(table.rows);

      // kubectl create namespace coffee / tea
      expect(ok(await c.dctl(["namespace", "create", "coffee"])).stdout).toBe(
        "Successfully created namespace coffee\n",
      );
      ok(await c.dctl(["namespace", "create", "tea"]));
      const names = parseTable(ok(await c.dctl(["network", "overlay", "list-namespaces", "red"])).stdout);
      expect(names.headers).toEqual(["NAME"]);
      expect(names.rows.map((r) => r.NAME)).toEqual(expect.arrayContaining(["default", "coffee", "tea"]));

      // kubectl create -f nginx.json -n coffee (on node 1) / -n tea (on node 2), through the plugin
      const coffee = await c.addPod(n1, "coffee", "nginx-1", BEST_EFFORT);
      const tea = await c.addPod(n2, "tea", "nginx-2", BEST_EFFORT);
      // A second coffee pod on node 2: proves the tables are programmed while coffee and tea are apart.
      const coffee2 = await c.addPod(n2, "coffee", "nginx-3", BEST_EFFORT);
      for (const p of [coffee, tea, coffee2]) {
        expect(p.ip).toMatch(/^172\.30\.\d+\.\d+$/);
        expect(p.prefixLength).toBe(16);
        expect(p.result.cniVersion).toBe("1.1.0");
        expect(p.result.interfaces[0]?.name).toBe("eth0");
        expect(p.result.interfaces[0]?.sandbox).toBe(p.netns);
      }
      expect(new Set([coffee.ip, tea.ip, coffee2.ip]).size).toBe(3);
      expect(coffee.gateway).not.toBe(tea.gateway);

      // Isolated: coffee reaches coffee across nodes, not tea.
      await expectReach(c, coffee, coffee2);
      await expectBlocked(c, coffee, tea);

      let eps = await endpoints(c);
      expect(eps).toHaveLength(3);
      const byPod = (list: EndpointJson[], pod: string): EndpointJson => {
        const e = list.find((x) => x.pod === pod);
        if (e === undefined) throw new Error(`no endpoint for ${pod} in ${JSON.stringify(list)}`);
        return e;
      };
      for (const p of [coffee, tea, coffee2]) {
        expect(byPod(eps, p.name)).toMatchObject({
          namespace: p.namespace,
          ip: p.ip,
          mac: p.mac,
          node: p.node.name,
          tier: "best-effort",
          vni: expect.any(Number) as number,
        });
      }
      expect(byPod(eps, "nginx-1").vni).not.toBe(byPod(eps, "nginx-2").vni);
      expect(byPod(eps, "nginx-1").vni).toBe(byPod(eps, "nginx-3").vni);
      const epTable = parseTable(ok(await c.dctl(["network", "overlay", "endpoints", "red"])).stdout);
      expect(epTable.headers).toEqual(
        expect.arrayContaining(["POD", "NAMESPACE", "IP", "MAC", "NODE", "VNI"]),
      );
      expect(epTable.rows.find((r) => r.POD === "nginx-2")).toMatchObject({
        NAMESPACE: "tea",
        IP: tea.ip,
        MAC: tea.mac,
        NODE: n2.name,
        VNI: String(byPod(eps, "nginx-2").vni),
      });

      // dctl network overlay update red --join-namespaces coffee,tea
      const joined = ok(
        await c.dctl(["network", "overlay", "update", "red", "--join-namespaces", "coffee,tea"]),
      );
      expect(joined.stdout).toBe("Successfully joined the network namespaces [[coffee tea]]\n");
      await expectReach(c, coffee, tea);
      await expectReach(c, tea, coffee);
      eps = await endpoints(c);
      expect(byPod(eps, "nginx-1").vni).toBe(byPod(eps, "nginx-2").vni);

      // dctl network overlay update red --isolate-namespaces tea
      const isolated = ok(
        await c.dctl(["network", "overlay", "update", "red", "--isolate-namespaces", "tea"]),
      );
      expect(isolated.stdout).toBe("Successfully updated network\n");
      await expectBlocked(c, coffee, tea);
      await expectBlocked(c, tea, coffee);
      await expectReach(c, coffee, coffee2);
      eps = await endpoints(c);
      expect(byPod(eps, "nginx-1").vni).not.toBe(byPod(eps, "nginx-2").vni);

      const names2 = parseTable(ok(await c.dctl(["network", "overlay", "list-namespaces", "red"])).stdout);
      expect(names2.rows.map((r) => r.NAME)).toEqual(expect.arrayContaining(["coffee", "tea"]));

      // dctl network overlay delete red: refused while the pods are there, with their count.
      const refused = await c.dctl(["network", "overlay", "delete", "red"]);
      expect(refused.code, show(refused)).not.toBe(0);
      expect(refused.stdout).toBe("");
      expect(refused.stderr).toMatch(/^Error: .*\b3 endpoints\b/);
      expect(refused.stderr.trim().split("\n")).toHaveLength(1);
      expect(parseTable(ok(await c.dctl(["network", "overlay", "list"])).stdout).rows).toHaveLength(1);

      // The runtime deletes the pods: CNI DEL, and DEL again is fine (idempotent).
      for (const p of [coffee, tea, coffee2]) {
        const del = await c.delPod(p);
        expect(del.code, show(del)).toBe(0);
        expect(del.stdout.trim()).toBe("");
      }
      for (const p of [coffee, tea, coffee2]) {
        const again = await c.delPod(p);
        expect(again.code, show(again)).toBe(0);
      }
      expect(await endpoints(c)).toEqual([]);

      const deleted = ok(await c.dctl(["network", "overlay", "delete", "red"]));
      expect(deleted.stdout).toBe("Successfully deleted network\n");
      expect(parseTable(ok(await c.dctl(["network", "overlay", "list"])).stdout).rows).toEqual([]);

      // The agents lived through it all and logged no error.
      for (const n of c.nodes) {
        expect(n.agent?.running, `overlayd on ${n.name}:\n${c.agentLog(n)}`).toBe(true);
        const errors = c.agentLogLines(n).filter((l) => typeof l.level === "number" && l.level >= 50);
        expect(errors, `overlayd on ${n.name} logged errors`).toEqual([]);
      }
    }, 100_000);

    it("lets coffee and tea talk at once with --isolate-ns=False", async () => {
      const c = cl();
      await resetCluster(c);
      const created = ok(
        await c.dctl(["network", "overlay", "create", "red", "-s", "172.30.0.0/16", "--isolate-ns=False"]),
      );
      expect(parseTable(created.stdout).rows[0]).toMatchObject({ NAME: "red", "ISOLATE-NS": "false" });
      const coffee = await c.addPod(c.node(0), "coffee", "nginx-1", BEST_EFFORT);
      const tea = await c.addPod(c.node(1), "tea", "nginx-2", BEST_EFFORT);
      await expectReach(c, coffee, tea);
      await expectReach(c, tea, coffee);
      const eps = await endpoints(c);
      expect(eps).toHaveLength(2);
      expect(eps[0]?.vni).toBe(eps[1]?.vni);
      await resetCluster(c);
    }, 60_000);
  });
}

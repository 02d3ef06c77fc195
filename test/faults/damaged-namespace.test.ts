/**
 * The namespace record of `tea` overwritten with invalid JSON in etcd while pods run (a user's
 * report: a new tea pod's ADD spun through 1000 store transactions and answered code 11). Now:
 * the ADD fails at once with an error naming the record and the repair command, allocating
 * nothing; running pods stay isolated; `dctl network overlay check` reports the record and
 * `--repair` rebuilds it; then a new tea pod attaches, reaches the running tea pod and is isolated
 * from coffee.
 */
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";
import { CNI_ERR } from "../../src/agent/protocol.js";
import { namespaceKey } from "../../src/model/keys.js";
import { parseNamespace } from "../../src/model/records.js";
import { REPO_ROOT, execIn } from "../kit/cluster.js";
import { isRoot } from "../kit/netns/index.js";
import {
  agentLogs,
  CniCallError,
  show,
  skipReason,
  useTalkingPods,
  type LocalCluster,
} from "../e2e/cluster.js";
import { expectWithin } from "../helpers/timing.js";
import { storeState } from "./helpers.js";

const skip = skipReason("test/faults/damaged-namespace.test.ts") !== undefined;

const TEA = namespaceKey("red", "tea");
const DAMAGE = '{"schemaVersion":1,"network":"red","name":"tea","vn';

/** Writes a raw value under a key, from inside the first node's namespace (where etcd is reachable). */
async function putRaw(c: LocalCluster, key: string, value: string): Promise<void> {
  const store = pathToFileURL(join(REPO_ROOT, "dist", "src", "store", "index.js")).href;
  const script = `
    const { openStore } = await import(${JSON.stringify(store)});
    const [url, key, value] = process.argv.slice(1);
    const s = await openStore(url);
    try {
      await s.txn([], [{ type: "put", key, value }]);
    } finally {
      await s.close();
    }`;
  const r = await execIn(c.node(0).ns, process.execPath, [
    "--input-type=module",
    "-e",
    script,
    c.storeUrl,
    key,
    value,
  ]);
  expect(r.code, show(r)).toBe(0);
}

describe.skipIf(skip || !isRoot())("a damaged namespace record while pods run (etcd)", () => {
  const pods = useTalkingPods({ store: "etcd" });

  it("names the damage at once, keeps running pods isolated, and check --repair fixes it", async () => {
    const { c, a, b } = pods;
    const tea1 = await c.addPod(1, "tea", "tea-1");
    expect((await c.ping(a, tea1.ip, { count: 2, timeoutSec: 1 })).received).toBe(0);

    await putRaw(c, TEA, DAMAGE);
    const parsed = parseNamespace({ key: TEA, value: DAMAGE });
    if (parsed.ok) throw new Error("the damage parses");
    const message = `namespace record tea of network red is invalid: ${parsed.problem.problem}; run "dctl network overlay check red --repair"`;

    // A new tea pod's ADD fails at once, with the record named and the command to run.
    const started = performance.now();
    const failed = await c.addPod(0, "tea", "tea-2").then(
      () => undefined,
      (e: unknown) => e,
    );
    expectWithin("CNI ADD of a pod whose namespace record is damaged", performance.now() - started, 500);
    expect(failed, agentLogs(c)).toBeInstanceOf(CniCallError);
    expect((failed as CniCallError).error).toMatchObject({ code: CNI_ERR.invalidConfig, msg: message });
    // ... allocating nothing.
    const state = await storeState(c, "red");
    expect(state.endpoints.map((e) => e.pod).sort()).toEqual(["tea-1", "web-a", "web-b"]);
    expect(state.addresses.map((x) => x.pod).sort()).toEqual(["tea-1", "web-a", "web-b"]);

    // Running pods stay as they were: coffee talks, tea stays isolated from it.
    expect((await c.pingUntil(a, b.ip, "reach")).received, agentLogs(c)).toBeGreaterThan(0);
    expect((await c.ping(a, tea1.ip, { count: 2, timeoutSec: 1 })).received).toBe(0);
    expect((await c.ping(tea1, b.ip, { count: 2, timeoutSec: 1 })).received).toBe(0);

    // check names it; --repair rebuilds it; check is clean again.
    const check = await c.dctl(["network", "overlay", "check", "red"]);
    expect(check.code, show(check)).toBe(1);
    expect(check.stdout).toContain("damaged-namespace-record");
    expect(check.stdout).toContain(`namespace record tea is invalid: ${parsed.problem.problem}`);
    expect(check.stderr).toBe("Error: network red is inconsistent: 1 problem remains\n");
    const repair = await c.dctl(["network", "overlay", "check", "red", "--repair", "-o", "json"]);
    expect(repair.code, show(repair)).toBe(0);
    const repaired = JSON.parse(repair.stdout) as {
      consistent: boolean;
      repaired: { issue: { kind: string; key: string }; action: string; vni: number }[];
    };
    expect(repaired.consistent).toBe(true);
    expect(repaired.repaired).toMatchObject([
      { issue: { kind: "damaged-namespace-record", key: TEA }, action: "rebuilt" },
    ]);
    expect((await c.dctl(["network", "overlay", "check", "red"])).code).toBe(0);

    // A new tea pod attaches, reaches the running one on the other node, and not coffee.
    const tea3 = await c.addPod(0, "tea", "tea-3");
    expect((await c.pingUntil(tea3, tea1.ip, "reach")).received, agentLogs(c)).toBeGreaterThan(0);
    const once = { count: 2, timeoutSec: 1 };
    expect((await c.ping(tea3, a.ip, once)).received).toBe(0);
    expect((await c.ping(tea3, b.ip, once)).received).toBe(0);
    expect((await c.ping(a, tea1.ip, once)).received).toBe(0);
    expect((await c.ping(a, b.ip, once)).received).toBeGreaterThan(0);
  }, 120_000);
});

/** `dctl network overlay check [--repair]` on SQLite, in-process. */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  createEndpoint,
  createNetwork,
  parseNamespace,
  registerNode,
  type AddressRecord,
} from "../../src/model/index.js";
import { addressKey, namespaceKey } from "../../src/model/keys.js";
import { openStore } from "../../src/store/index.js";
import type { Store } from "../../src/store/store.js";
import { cells, dctl } from "./harness.js";

let store: Store;
beforeEach(async () => {
  store = await openStore("sqlite::memory:");
  await createNetwork(store, { name: "red", subnet: "172.30.0.0/16" });
  await registerNode(store, { name: "n1", underlayIp: "10.0.0.1" });
  await createEndpoint(store, {
    network: "red",
    namespace: "coffee",
    pod: "a",
    node: "n1",
    containerId: "c-a",
  });
});
afterEach(async () => {
  await store.close();
});

async function writeLeak(ip: string, allocatedAt: string): Promise<void> {
  const rec: AddressRecord = {
    schemaVersion: 1,
    network: "red",
    ip,
    block: "172.30.0.0/24",
    node: "n1",
    owner: { namespace: "coffee", pod: "ghost", containerId: "c-ghost", ifname: "eth0" },
    allocatedAt,
  };
  await store.txn(
    [],
    [{ type: "put", key: addressKey("red", "172.30.0.0/24", ip), value: JSON.stringify(rec) }],
  );
}

describe("dctl network overlay check", () => {
  it("says a consistent network is consistent and exits 0", async () => {
    const r = await dctl(store, "network", "overlay", "check", "red");
    expect(r).toEqual({
      code: 0,
      stdout: "Network red is consistent: 1 endpoints, 1 addresses, 1 blocks\n",
      stderr: "",
    });
  });

  it("lists a leak in a table, exits 1 with one error line, and changes nothing", async () => {
    await writeLeak("172.30.0.40", "2020-01-01T00:00:00.000Z");
    const r = await dctl(store, "network", "overlay", "check", "red");
    expect(r.code).toBe(1);
    expect(r.stderr).toBe("Error: network red is inconsistent: 1 problem remains\n");
    const rows = cells(r.stdout);
    expect(rows[0]).toEqual(["PROBLEM", "ADDRESS", "NODE", "POD", "DETAIL"]);
    expect(rows.slice(1).map((row) => row.slice(0, 4))).toEqual([
      ["leaked-address", "172.30.0.40", "n1", "coffee/ghost"],
    ]);
    const again = await dctl(store, "network", "overlay", "check", "red", "-o", "json");
    expect(again.code).toBe(1);
    const report = JSON.parse(again.stdout) as {
      consistent: boolean;
      issues: { kind: string; ip: string }[];
    };
    expect(report.consistent).toBe(false);
    expect(report.issues.map((i) => [i.kind, i.ip])).toEqual([["leaked-address", "172.30.0.40"]]);
  });

  it("--repair releases an old leak, keeps a fresh one, and reports both", async () => {
    await writeLeak("172.30.0.40", "2020-01-01T00:00:00.000Z");
    await writeLeak("172.30.0.41", new Date().toISOString());
    const r = await dctl(store, "network", "overlay", "check", "red", "--repair", "-o", "json");
    expect(r.code).toBe(1);
    const out = JSON.parse(r.stdout) as {
      repaired: { issue: { ip: string }; action: string }[];
      issues: { ip: string }[];
    };
    expect(out.repaired.map((x) => [x.issue.ip, x.action])).toEqual([
      ["172.30.0.40", "released"],
      ["172.30.0.41", "kept"],
    ]);
    expect(out.issues.map((i) => i.ip)).toEqual(["172.30.0.41"]);

    const fixed = await dctl(store, "network", "overlay", "check", "red", "--repair", "--grace", "0");
    expect(fixed.code, fixed.stderr).toBe(0);
    expect(cells(fixed.stdout)[1]?.slice(0, 5)).toEqual([
      "leaked-address",
      "172.30.0.41",
      "n1",
      "coffee/ghost",
      "released",
    ]);
    expect(fixed.stdout).toContain("Network red is consistent: 1 endpoints, 1 addresses, 1 blocks\n");
    expect((await dctl(store, "network", "overlay", "check", "red")).code).toBe(0);
  });

  it("reports a damaged namespace record, and --repair rebuilds it on the VNI it still holds", async () => {
    // coffee got VNI 4099 when pod a started; the damaged record keeps it readable.
    const key = namespaceKey("red", "coffee");
    await store.txn([], [{ type: "put", key, value: '{"schemaVersion":1,"name":"coffee","vni":4099}' }]);
    const r = await dctl(store, "network", "overlay", "check", "red");
    expect(r.code).toBe(1);
    expect(r.stderr).toBe("Error: network red is inconsistent: 1 problem remains\n");
    const row = cells(r.stdout)[1] ?? [];
    expect(row.slice(0, 4)).toEqual(["damaged-namespace-record", "-", "-", "-"]);
    expect(row[4]).toBe(
      'namespace record coffee is invalid: field "network" must be a non-empty string; its VNI 4099 can still be read',
    );
    const json = JSON.parse(
      (await dctl(store, "network", "overlay", "check", "red", "-o", "json")).stdout,
    ) as {
      issues: { kind: string; key: string; namespace: string }[];
    };
    expect(json.issues).toMatchObject([{ kind: "damaged-namespace-record", key, namespace: "coffee" }]);

    const fixed = await dctl(store, "network", "overlay", "check", "red", "--repair", "-o", "json");
    expect(fixed.code, fixed.stderr).toBe(0);
    const out = JSON.parse(fixed.stdout) as {
      consistent: boolean;
      repaired: { issue: { kind: string }; action: string; vni: number; reason: string }[];
    };
    expect(out.consistent).toBe(true);
    expect(out.repaired).toMatchObject([
      {
        issue: { kind: "damaged-namespace-record" },
        action: "rebuilt",
        vni: 4099,
        reason: "kept its VNI 4099",
      },
    ]);
    expect((await dctl(store, "network", "overlay", "check", "red")).code).toBe(0);
  });

  it("namespace commands meeting a damaged record fail with one error line naming it", async () => {
    await store.txn([], [{ type: "put", key: namespaceKey("red", "tea"), value: "{not json" }]);
    const parsed = parseNamespace({ key: namespaceKey("red", "tea"), value: "{not json" });
    const problem = parsed.ok ? "" : parsed.problem.problem;
    expect(problem).toMatch(/^not JSON: /);
    for (const argv of [
      ["namespace", "create", "tea", "--network", "red"],
      ["namespace", "delete", "tea", "--network", "red"],
      ["network", "overlay", "update", "red", "--join-namespaces", "coffee,tea"],
      ["network", "overlay", "isolate-namespaces", "red", "tea"],
      ["network", "overlay", "make-global", "red", "tea"],
    ]) {
      const r = await dctl(store, ...argv);
      expect(r, argv.join(" ")).toEqual({
        code: 1,
        stdout: "",
        stderr: `Error: namespace record tea of network red is invalid: ${problem}; run "dctl network overlay check red --repair"\n`,
      });
    }
    // A namespace of its own still works.
    expect((await dctl(store, "namespace", "create", "milk", "--network", "red")).code).toBe(0);
    expect((await dctl(store, "network", "overlay", "check", "red", "--repair")).code).toBe(0);
    expect((await dctl(store, "namespace", "create", "tea", "--network", "red")).code).toBe(0);
  });

  it("refuses an unknown network and a bad --grace with one error line", async () => {
    const unknown = await dctl(store, "network", "overlay", "check", "blue");
    expect(unknown.code).not.toBe(0);
    expect(unknown.stdout).toBe("");
    expect(unknown.stderr).toMatch(/^Error: .*blue.*\n$/);
    const bad = await dctl(store, "network", "overlay", "check", "red", "--repair", "--grace", "soon");
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toBe(
      'Error: invalid value "soon" for --grace: expected a whole number of seconds >= 0\n',
    );
  });
});

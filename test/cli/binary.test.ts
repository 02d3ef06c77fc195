/**
 * End to end: the compiled dctl binary, run as a user runs it, against a SQLite file. The build
 * goes to a private folder so that it never races another build of dist/.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const repo = resolve(import.meta.dirname, "../..");
// Under node_modules so that the compiled files resolve the project's dependencies.
const cacheRoot = join(repo, "node_modules", ".cache");
let outDir: string;
let work: string;
let bin: string;

beforeAll(() => {
  mkdirSync(cacheRoot, { recursive: true });
  outDir = mkdtempSync(join(cacheRoot, "dctl-e2e-"));
  work = mkdtempSync(join(tmpdir(), "dctl-e2e-"));
  const tsc = spawnSync(
    process.execPath,
    [
      join(repo, "node_modules", "typescript", "bin", "tsc"),
      "-p",
      join(repo, "tsconfig.build.json"),
      "--outDir",
      outDir,
    ],
    { cwd: repo, encoding: "utf8" },
  );
  bin = join(outDir, "src", "cli", "dctl.js");
  // Type errors elsewhere in the tree are the typecheck's business; this test needs the emit.
  expect(() => readFileSync(bin), `tsc produced no ${bin}: ${tsc.stdout}${tsc.stderr}`).not.toThrow();
  writeFileSync(join(outDir, "package.json"), JSON.stringify({ type: "module" }));
}, 120_000);

afterAll(() => {
  rmSync(outDir, { recursive: true, force: true });
  rmSync(work, { recursive: true, force: true });
});

function run(
  args: string[],
  env: Record<string, string> = {},
): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [bin, ...args], {
    encoding: "utf8",
    env: { ...process.env, OVERLAY_STORE: "", ...env },
    timeout: 30_000,
  });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

describe("the dctl binary", () => {
  it("starts with a node shebang", () => {
    expect(readFileSync(bin, "utf8").split("\n")[0]).toBe("#!/usr/bin/env node");
  });

  it("runs the seed's commands against a SQLite file", () => {
    const store = `sqlite:${join(work, "store.db")}`;
    const s = ["--store", store];

    const created = run(["network", "overlay", "create", "red", "-s", "172.30.0.0/16", ...s]);
    expect(created).toEqual({
      code: 0,
      stdout:
        "NAME   TYPE      SUBNET          OVERLAY-NW   ISOLATE-NS   NETWORKGROUP\n" +
        "red    private   172.30.0.0/16                true\n",
      stderr: "",
    });
    // The store can come from the environment as well.
    expect(run(["network", "overlay", "list"], { OVERLAY_STORE: store }).stdout).toBe(created.stdout);
    expect(run([...s, "network", "overlay", "update", "red", "--set-default"]).stdout).toBe(
      "Successfully updated network\n",
    );
    expect(run(["namespace", "create", "coffee", ...s]).code).toBe(0);
    expect(run(["namespace", "create", "tea", ...s]).code).toBe(0);
    expect(run(["network", "overlay", "list-namespaces", "red", ...s]).stdout.split("\n")).toEqual([
      "NAME",
      "coffee",
      "default",
      "kube-node-lease",
      "kube-public",
      "kube-system",
      "tea",
      "",
    ]);
    expect(run(["network", "overlay", "update", "red", "--join-namespaces", "coffee,tea", ...s]).stdout).toBe(
      "Successfully joined the network namespaces [[coffee tea]]\n",
    );
    expect(run(["network", "overlay", "update", "red", "--isolate-namespaces", "tea", ...s]).stdout).toBe(
      "Successfully updated network\n",
    );
    const json = JSON.parse(run(["namespace", "list", "-o", "json", ...s]).stdout) as {
      name: string;
      vni: number;
    }[];
    const vni = Object.fromEntries(json.map((n) => [n.name, n.vni]));
    expect(vni.coffee).not.toBe(vni.tea);
    expect(run(["network", "overlay", "endpoints", "red", ...s]).stdout).toBe(
      "POD   NAMESPACE   IP   MAC   NODE   VNI   TIER\n",
    );
    expect(run(["perf-tier", "list", "-o", "json", ...s]).code).toBe(0);

    const bad = run(["network", "overlay", "create", "blue", "-s", "172.31.0.0/24", ...s]);
    expect(bad.code).toBe(1);
    expect(bad.stdout).toBe("");
    expect(bad.stderr).toBe(
      "Error: subnet 172.31.0.0/24 has netmask 255.255.255.0; the overlay network requires netmask 255.255.0.0 (a /16)\n",
    );

    expect(run(["network", "overlay", "delete", "red", ...s]).stdout).toBe("Successfully deleted network\n");
    expect(run(["network", "overlay", "list", "-o", "json", ...s]).stdout).toBe("[]\n");
  });

  it("fails in one line, without a stack trace, when the store cannot be opened", () => {
    // A regular file where the store's folder should be.
    writeFileSync(join(work, "plain-file"), "");
    const r = run(["network", "overlay", "list", "--store", `sqlite:${join(work, "plain-file", "x.db")}`]);
    expect(r.code).not.toBe(0);
    expect(r.stderr.trimEnd().split("\n")).toHaveLength(1);
    expect(r.stderr).toMatch(/^Error: cannot open the store sqlite:/);
    expect(r.stderr).not.toMatch(/\bat .*\.js:\d+/);
  });
});

/**
 * The built plugin as a runtime runs it: a process with CNI_* in its environment and the
 * network configuration on stdin, installed in a CNI bin directory as the wrapper script that
 * docs/CNI.md describes. The build goes to a temp directory (same layout as dist/: the plugin is
 * dist/src/cni/main.js), from src/cni alone, so that it does not depend on the state of other
 * parts of the tree.
 */
import { execFileSync, spawn } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { FakeAgent, sampleResult } from "./fake-agent.js";
import { expectWithin } from "../helpers/timing.js";

const here = dirname(fileURLToPath(import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "cni-e2e-"));
const out = join(dir, "dist");
const pluginMain = join(out, "src", "cni", "main.js");
const binDir = join(dir, "opt-cni-bin");
const plugin = join(binDir, "overlay-cni");
const netns = join(dir, "netns-pod1");

beforeAll(() => {
  const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
  execFileSync(process.execPath, [tsc, "-p", join(here, "tsconfig.plugin.json"), "--outDir", out], {
    stdio: "pipe",
  });
  mkdirSync(binDir);
  writeFileSync(plugin, `#!/bin/sh\nexec "${process.execPath}" "${pluginMain}" "$@"\n`);
  chmodSync(plugin, 0o755);
  writeFileSync(netns, "");
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let agent: FakeAgent;
beforeEach(async () => {
  agent = new FakeAgent();
  await agent.start();
});
afterEach(async () => agent.stop());

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(env: Record<string, string>, stdin: string, executable = plugin): Promise<Run> {
  return new Promise((resolve, reject) => {
    // Only what a runtime passes, plus PATH for the wrapper's shell.
    const child = spawn(executable, [], { env: { PATH: process.env["PATH"] ?? "/usr/bin:/bin", ...env } });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    // The plugin may stop reading early (an oversized stdin); its answer is what counts.
    child.stdin.on("error", () => undefined);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(stdin);
  });
}

function conf(extra: Record<string, unknown> = {}): string {
  return JSON.stringify({
    cniVersion: "1.1.0",
    name: "overlay",
    type: "overlay-cni",
    socket: agent.socket,
    ...extra,
  });
}

function env(command: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    CNI_COMMAND: command,
    CNI_CONTAINERID: "pod1",
    CNI_NETNS: netns,
    CNI_IFNAME: "eth0",
    CNI_ARGS: "IgnoreUnknown=1;K8S_POD_NAMESPACE=coffee;K8S_POD_NAME=nginx-1",
    CNI_PATH: binDir,
    ...extra,
  };
}

function expectCniError(r: Run, code: number): { msg: string; cniVersion: string } {
  expect(r.code).toBe(1);
  expect(r.stderr).toBe("");
  expect(r.stdout).not.toMatch(/\n\s+at /);
  const e = JSON.parse(r.stdout) as { cniVersion: string; code: number; msg: string };
  expect(e.code).toBe(code);
  expect(Object.keys(e).every((k) => ["cniVersion", "code", "msg", "details"].includes(k))).toBe(true);
  return e;
}

describe("overlay-cni as a process", () => {
  it("starts with a node shebang, as the package's bin entry needs", () => {
    const main = readFileSync(pluginMain, "utf8");
    expect(main.startsWith("#!/usr/bin/env node\n")).toBe(true);
    const pkg = JSON.parse(readFileSync(join(here, "..", "..", "package.json"), "utf8")) as {
      bin: Record<string, string>;
    };
    expect(pkg.bin["overlay-cni"]).toBe("dist/src/cni/main.js");
  });

  it("VERSION", async () => {
    const r = await run({ CNI_COMMAND: "VERSION" }, '{"cniVersion":"1.1.0"}');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({
      cniVersion: "1.1.0",
      supportedVersions: ["0.4.0", "1.0.0", "1.1.0"],
    });
  });

  it("ADD, CHECK, DEL, DEL again", async () => {
    const annotated = conf({
      cniVersion: "1.0.0",
      runtimeConfig: {
        annotations: { "diamanti.com/endpoint0": '{ "network": "red", "perfTier": "best-effort" }' },
      },
    });
    const added = await run(env("ADD"), annotated);
    expect(added.code).toBe(0);
    expect(JSON.parse(added.stdout)).toEqual({ cniVersion: "1.0.0", ...sampleResult("eth0", netns) });

    const checked = await run(env("CHECK"), annotated);
    expect(checked).toEqual({ code: 0, stdout: "", stderr: "" });

    for (let i = 0; i < 2; i++) {
      expect(await run(env("DEL"), annotated)).toEqual({ code: 0, stdout: "", stderr: "" });
    }
    expect(agent.requests.map((r) => r.op)).toEqual(["ADD", "CHECK", "DEL", "DEL"]);
    expect(agent.requests[0]).toMatchObject({
      network: "red",
      perfTier: "best-effort",
      podNamespace: "coffee",
    });
  });

  it("DEL with a netns that is gone", async () => {
    const r = await run(env("DEL", { CNI_NETNS: join(dir, "gone") }), conf());
    expect(r.code).toBe(0);
    expect(agent.requests[0]).not.toHaveProperty("netns");
  });

  it("STATUS ready, not ready, agent unreachable", async () => {
    expect((await run({ CNI_COMMAND: "STATUS", CNI_PATH: binDir }, conf())).code).toBe(0);
    agent.ready = false;
    expectCniError(await run({ CNI_COMMAND: "STATUS", CNI_PATH: binDir }, conf()), 50);
    const none = join(dir, "none.sock");
    const e = expectCniError(await run({ CNI_COMMAND: "STATUS" }, conf({ socket: none })), 50);
    expect(e.msg).toContain(none);
  });

  it("GC passes the valid attachments", async () => {
    const r = await run(
      { CNI_COMMAND: "GC", CNI_PATH: binDir },
      conf({ "cni.dev/valid-attachments": [{ containerID: "keep", ifname: "eth0" }] }),
    );
    expect(r.code).toBe(0);
    expect(agent.requests).toEqual([{ op: "GC", valid: [{ containerId: "keep", ifName: "eth0" }] }]);
  });

  it("bad JSON on stdin", async () => {
    expectCniError(await run(env("ADD"), "{not json"), 6);
  });

  it("an oversized stdin", async () => {
    const e = expectCniError(await run(env("ADD"), " ".repeat(5 << 20)), 6);
    expect(e.msg).toContain("longer than");
  });

  it("a missing variable, named", async () => {
    const { CNI_IFNAME: _, ...rest } = env("ADD");
    const e = expectCniError(await run(rest, conf()), 4);
    expect(e.msg).toBe("CNI_IFNAME is required for ADD but is not set");
  });

  it("a malformed annotation, named", async () => {
    const bad = conf({ args: { cni: { annotations: { "diamanti.com/endpoint0": '{"network":' } } } });
    const e = expectCniError(await run(env("ADD"), bad), 7);
    expect(e.msg).toContain("diamanti.com/endpoint0");
  });

  it("an unreachable agent, with its socket path", async () => {
    const none = join(dir, "none.sock");
    const e = expectCniError(await run(env("ADD"), conf({ socket: none })), 104);
    expect(e.msg).toContain(none);
    // DEL too: the runtime must retry, the address may still be held.
    expectCniError(await run(env("DEL"), conf({ socket: none })), 104);
  });

  it("an agent that does not answer, within timeoutMs", async () => {
    agent.behave({ kind: "hang" });
    const started = Date.now();
    const e = expectCniError(await run(env("ADD"), conf({ timeoutMs: 300 })), 104);
    // The plugin's own start-up comes on top of timeoutMs.
    expectWithin("a plugin call to a hung agent, exec to exit", Date.now() - started, 500);
    expect(e.msg).toContain("within 300 ms");
  });

  it("the agent's error, passed through", async () => {
    agent.behave({
      kind: "respond",
      response: { ok: false, error: { code: 101, msg: "unknown network blue", details: "known: red" } },
    });
    const r = await run(env("ADD"), conf());
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout)).toEqual({
      cniVersion: "1.1.0",
      code: 101,
      msg: "unknown network blue",
      details: "known: red",
    });
  });

  it("runs with node directly, as `node dist/src/cni/main.js`", async () => {
    const child = spawn(process.execPath, [pluginMain], { env: { CNI_COMMAND: "VERSION" } });
    let stdout = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stdin.end("");
    const code = await new Promise((resolve) => child.on("close", resolve));
    expect(code).toBe(0);
    expect(JSON.parse(stdout)).toMatchObject({ cniVersion: "1.1.0" });
  });
});

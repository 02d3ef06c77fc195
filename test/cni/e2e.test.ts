/**
 * The plugin as a runtime runs it: the binary copied into a CNI bin directory (as docs/CNI.md
 * says to install it), exec'd with only the CNI_* variables and PATH=/nonexistent in its
 * environment, against the agent's real socket server and CNI layer (fake request handlers).
 */
import {
  copyFileSync,
  chmodSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readSync,
  closeSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { REPO_ROOT } from "../kit/cluster.js";
import { execPlugin, PLUGIN, requirePlugin, type PluginEnv, type PluginRun } from "./binary.js";
import { FakeAgent, sampleResult } from "./fake-agent.js";
import { expectWithin } from "../helpers/timing.js";

const dir = mkdtempSync(join(tmpdir(), "cni-e2e-"));
const binDir = join(dir, "opt-cni-bin");
const plugin = join(binDir, "overlay-cni");
const netns = join(dir, "netns-pod1");

beforeAll(() => {
  requirePlugin();
  mkdirSync(binDir);
  copyFileSync(PLUGIN, plugin);
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

function run(env: PluginEnv, stdin: string): Promise<PluginRun> {
  return execPlugin(env, stdin, { path: plugin });
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

function env(command: string, extra: PluginEnv = {}): PluginEnv {
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

function expectCniError(r: PluginRun, code: number): { msg: string; cniVersion: string } {
  expect(r.code).toBe(code);
  expect(r.stderr).toBe("");
  const e = JSON.parse(r.stdout) as { cniVersion: string; code: number; msg: string };
  expect(e.code).toBe(code);
  expect(Object.keys(e).every((k) => ["cniVersion", "code", "msg", "details"].includes(k))).toBe(true);
  return e;
}

/** The ELF program headers' types: a PT_INTERP (3) means a dynamic loader is needed. */
function programHeaderTypes(path: string): number[] {
  const fd = openSync(path, "r");
  try {
    const head = Buffer.alloc(64);
    readSync(fd, head, 0, 64, 0);
    expect(head.subarray(0, 4).toString("latin1")).toBe("\x7fELF");
    expect(head[4]).toBe(2); // 64-bit
    const phoff = Number(head.readBigUInt64LE(32));
    const phentsize = head.readUInt16LE(54);
    const phnum = head.readUInt16LE(56);
    const table = Buffer.alloc(phentsize * phnum);
    readSync(fd, table, 0, table.length, phoff);
    return Array.from({ length: phnum }, (_, i) => table.readUInt32LE(i * phentsize));
  } finally {
    closeSync(fd);
  }
}

describe("overlay-cni as a runtime runs it", () => {
  it("is what package.json's bin names, a static executable needing no loader", () => {
    const pkg = JSON.parse(readFileSync(join(REPO_ROOT, "package.json"), "utf8")) as {
      bin: Record<string, string>;
    };
    expect(join(REPO_ROOT, pkg.bin["overlay-cni"] ?? "")).toBe(PLUGIN);
    const types = programHeaderTypes(PLUGIN);
    expect(types.length).toBeGreaterThan(0);
    expect(types).not.toContain(3);
  });

  it("VERSION, with nothing but CNI_COMMAND and PATH=/nonexistent, from exec to exit", async () => {
    const times: number[] = [];
    for (let i = 0; i < 21; i++) {
      const r = await run({ CNI_COMMAND: "VERSION" }, '{"cniVersion":"1.1.0"}');
      expect(r.code).toBe(0);
      expect(JSON.parse(r.stdout)).toEqual({
        cniVersion: "1.1.0",
        supportedVersions: ["0.4.0", "1.0.0", "1.1.0"],
      });
      times.push(r.ms);
    }
    times.sort((a, b) => a - b);
    // The figure includes Node's own spawn and exit notification, so it overstates the binary's.
    expectWithin("overlay-cni VERSION, exec to exit, median of 21", times[10] as number, 5);
    expect(agent.calls).toEqual([]);
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
    expect({ code: checked.code, stdout: checked.stdout, stderr: checked.stderr }).toEqual({
      code: 0,
      stdout: "",
      stderr: "",
    });

    for (let i = 0; i < 2; i++) {
      const r = await run(env("DEL"), annotated);
      expect({ code: r.code, stdout: r.stdout, stderr: r.stderr }).toEqual({
        code: 0,
        stdout: "",
        stderr: "",
      });
    }
    expect(agent.requests.map((r) => r.op)).toEqual(["ADD", "CHECK", "DEL", "DEL"]);
    expect(agent.requests[0]).toMatchObject({
      network: "red",
      perfTier: "best-effort",
      podNamespace: "coffee",
    });
  });

  it("hands the CNI_* variables and stdin over unchanged", async () => {
    const text = `  ${conf({ extra: "é\u0000\n" })}\n\n`;
    await run(env("DEL"), text);
    const call = agent.calls[0];
    expect(call?.stdin.toString("utf8")).toBe(text);
    expect(
      Object.fromEntries([...(call?.env ?? new Map<string, Buffer>())].map(([k, v]) => [k, v.toString()])),
    ).toEqual(env("DEL"));
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

  it("a missing variable, named", async () => {
    const e = expectCniError(await run(env("ADD", { CNI_IFNAME: undefined }), conf()), 4);
    expect(e.msg).toBe("CNI_IFNAME is required for ADD but is not set");
  });

  it("a malformed annotation, named", async () => {
    const bad = conf({ args: { cni: { annotations: { "diamanti.com/endpoint0": '{"network":' } } } });
    const e = expectCniError(await run(env("ADD"), bad), 7);
    expect(e.msg).toContain("diamanti.com/endpoint0");
  });

  it("an agent that does not answer, within timeoutMs", async () => {
    agent.behave({ kind: "hang" });
    const r = await run(env("ADD"), conf({ timeoutMs: 300 }));
    const e = expectCniError(r, 11);
    expectWithin("a plugin call to a hung agent, exec to exit", r.ms, 300);
    expect(e.msg).toContain("within 300 ms");
  });

  it("the agent's error, passed through", async () => {
    agent.behave({
      kind: "respond",
      response: { ok: false, error: { code: 101, msg: "unknown network blue", details: "known: red" } },
    });
    const r = await run(env("ADD"), conf());
    expect(r.code).toBe(101);
    expect(JSON.parse(r.stdout)).toEqual({
      cniVersion: "1.1.0",
      code: 101,
      msg: "unknown network blue",
      details: "known: red",
    });
  });
});

/**
 * Bad input from a runtime (or a person trying the plugin by hand) goes through the plugin binary
 * to the agent's real socket server and CNI layer, and gets a CNI error JSON with a code and a
 * message saying what to fix; the agent keeps serving after each. (What the plugin answers by
 * itself, an agent it cannot reach, is in unreachable.test.ts.)
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeEach, describe, expect, it } from "vitest";
import { MAX_STDIN_BYTES } from "../../src/agent/protocol.js";
import { isRoot } from "../kit/netns/index.js";
import { execPlugin, execPluginAtDefaultSocket, PLUGIN, type PluginEnv, type PluginRun } from "./binary.js";
import { FakeAgent } from "./fake-agent.js";

const dir = mkdtempSync(join(tmpdir(), "cni-bad-input-"));
const netns = join(dir, "netns-pod1");
writeFileSync(netns, "");
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let agent: FakeAgent;
beforeEach(async () => {
  agent = new FakeAgent();
  await agent.start();
});
afterEach(async () => {
  // Whatever came before, the agent still serves.
  const r = await execPlugin({ CNI_COMMAND: "STATUS" }, conf());
  expect(r.code, r.stdout).toBe(0);
  await agent.stop();
});

function conf(extra: Record<string, unknown> = {}): string {
  return JSON.stringify({
    cniVersion: "1.1.0",
    name: "overlay",
    type: "overlay-cni",
    socket: agent.socket,
    ...extra,
  });
}

const add: PluginEnv = {
  CNI_COMMAND: "ADD",
  CNI_CONTAINERID: "pod1",
  CNI_NETNS: netns,
  CNI_IFNAME: "eth0",
  CNI_ARGS: "K8S_POD_NAMESPACE=coffee;K8S_POD_NAME=nginx-1",
};

function errorOf(r: PluginRun, code: number): { cniVersion: string; msg: string; details?: string } {
  expect(r.stderr).toBe("");
  const e = JSON.parse(r.stdout) as { cniVersion: string; code: number; msg: string; details?: string };
  expect(e.code, r.stdout).toBe(code);
  expect(r.code).toBe(code);
  return e;
}

describe("stdin", () => {
  it.skipIf(!isRoot())("of 0 bytes, to the default socket: code 6, stdin is empty", async () => {
    const r = await execPluginAtDefaultSocket(agent.dir, add, "");
    const e = errorOf(r, 6);
    expect(e.msg).toBe("network configuration: stdin is empty");
    expect(agent.calls).toHaveLength(1);
    expect(agent.calls[0]?.stdin.length).toBe(0);
  });

  it("of exactly the maximum (1 MiB), whitespace after the configuration: accepted", async () => {
    const text = conf();
    const padded = text + " ".repeat(MAX_STDIN_BYTES - Buffer.byteLength(text));
    expect(Buffer.byteLength(padded)).toBe(MAX_STDIN_BYTES);
    const r = await execPlugin(add, padded);
    expect(r.code, r.stdout).toBe(0);
    expect(agent.calls[0]?.stdin.length).toBe(MAX_STDIN_BYTES);
  });

  it("one byte over the maximum: code 6 naming it, from the plugin, the agent never bothered", async () => {
    const text = conf();
    const r = await execPlugin(add, text + " ".repeat(MAX_STDIN_BYTES + 1 - Buffer.byteLength(text)));
    const e = errorOf(r, 6);
    expect(e.msg).toBe(`network configuration: stdin is longer than ${MAX_STDIN_BYTES} bytes`);
    expect(e.cniVersion).toBe("1.1.0");
    expect(agent.calls).toEqual([]);
  });

  it("of 5 MB (a runaway writer): the plugin stops reading at the maximum", async () => {
    const r = await execPlugin(add, conf() + " ".repeat(5 << 20));
    expect(errorOf(r, 6).msg).toContain("longer than");
  });

  it("that is not JSON: code 6 with the parser's reason", async () => {
    const r = await execPlugin(add, `{"socket":${JSON.stringify(agent.socket)}, "cniVersion": 1.1.0}`);
    const e = errorOf(r, 6);
    expect(e.msg).toBe("network configuration: stdin is not valid JSON");
    expect(e.details).toBeTruthy();
  });

  it("an object without the keys a configuration needs: code 7 naming the first", async () => {
    const r = await execPlugin(add, `{"socket":${JSON.stringify(agent.socket)}}`);
    expect(errorOf(r, 7).msg).toBe("network configuration: cniVersion is missing");
  });

  it("that is not UTF-8: code 6 naming the byte", async () => {
    const text = conf({ name: "overlay-XX" });
    const bytes = Buffer.from(text);
    const at = text.indexOf("XX");
    bytes[at] = 0xff;
    bytes[at + 1] = 0xfe;
    const e = errorOf(await execPlugin(add, bytes), 6);
    expect(e.msg).toBe("network configuration: stdin is not valid UTF-8");
    expect(e.details).toContain(`byte ${at} (0xff)`);
  });

  it("with an overlong UTF-8 encoding or a lone surrogate: code 6", async () => {
    for (const bad of [
      [0xc0, 0xaf],
      [0xed, 0xa0, 0x80],
    ]) {
      const text = conf({ name: "overlay-XXX" });
      const bytes = Buffer.from(text);
      Buffer.from(bad).copy(bytes, text.indexOf("XXX"));
      expect(errorOf(await execPlugin(add, bytes), 6).msg).toContain("UTF-8");
    }
  });
});

describe("CNI_COMMAND", () => {
  it("missing: code 4", async () => {
    const e = errorOf(await execPlugin({ ...add, CNI_COMMAND: undefined }, conf()), 4);
    expect(e.msg).toBe("CNI_COMMAND is not set");
    expect(agent.calls).toHaveLength(1);
  });

  it("unknown: code 4 listing the commands", async () => {
    const e = errorOf(await execPlugin({ ...add, CNI_COMMAND: "UPDATE" }, conf()), 4);
    expect(e.msg).toBe("CNI_COMMAND=UPDATE is not a CNI command");
    expect(e.details).toContain("ADD, DEL, CHECK, VERSION, STATUS, GC");
  });

  it("lower case: code 4 (commands are upper case)", async () => {
    errorOf(await execPlugin({ ...add, CNI_COMMAND: "add" }, conf()), 4);
  });
});

describe("other variables", () => {
  it("a value that is not UTF-8: code 4 naming the variable", async () => {
    // Node puts only UTF-8 in a child's environment; the shell's printf puts the byte 0xff.
    const script =
      `exec env -i PATH=/nonexistent CNI_COMMAND=DEL CNI_CONTAINERID=pod1 CNI_IFNAME=eth0 ` +
      `"CNI_ARGS=$(printf 'K8S_POD_NAMESPACE=caf\\377')" '${PLUGIN}'`;
    const r = await execPlugin({ PATH: process.env["PATH"] }, conf(), {
      path: "/bin/sh",
      args: ["-c", script],
    });
    expect(errorOf(r, 4).msg).toBe("CNI_ARGS is not valid UTF-8");
    expect(agent.calls[0]?.env.get("CNI_ARGS")?.at(-1)).toBe(0xff);
  });

  it("only CNI_* variables reach the agent", async () => {
    await execPlugin({ ...add, HOME: "/root", OTHER: "x", CNI_COMMAND: "DEL" }, conf());
    expect([...(agent.calls[0]?.env.keys() ?? [])].sort()).toEqual([
      "CNI_ARGS",
      "CNI_COMMAND",
      "CNI_CONTAINERID",
      "CNI_IFNAME",
      "CNI_NETNS",
    ]);
  });
});

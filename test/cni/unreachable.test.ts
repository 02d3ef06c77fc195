/**
 * The plugin binary when the agent does not answer: each case is answered by the plugin itself,
 * code 50 for STATUS and 11 (try again later) for the rest, with a message naming the socket and
 * saying what is wrong, and never later than timeoutMs.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execPlugin, type PluginRun } from "./binary.js";
import { rawServer } from "./fake-agent.js";
import { expectWithin } from "../helpers/timing.js";

const dir = mkdtempSync(join(tmpdir(), "cni-unreachable-"));
const stale = join(dir, "stale.sock");
const netns = join(dir, "netns");

beforeAll(async () => {
  writeFileSync(netns, "");
  // A socket file whose listener died (kill -9 leaves the file behind): ECONNREFUSED.
  const child = spawn(process.execPath, [
    "-e",
    `require("node:net").createServer().listen(${JSON.stringify(stale)}, () => console.log("up"))`,
  ]);
  await new Promise<void>((resolve) => child.stdout.once("data", () => resolve()));
  child.kill("SIGKILL");
  await new Promise((resolve) => child.once("exit", resolve));
  expect(existsSync(stale)).toBe(true);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function conf(socket: string, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ cniVersion: "1.0.0", name: "overlay", type: "overlay-cni", socket, ...extra });
}

const add = {
  CNI_COMMAND: "ADD",
  CNI_CONTAINERID: "c1",
  CNI_NETNS: netns,
  CNI_IFNAME: "eth0",
  CNI_ARGS: "K8S_POD_NAMESPACE=coffee;K8S_POD_NAME=nginx",
};

interface ErrorOut {
  cniVersion: string;
  code: number;
  msg: string;
  details?: string;
}

function errorOf(r: PluginRun, code: number): ErrorOut {
  expect(r.stderr).toBe("");
  expect(r.code).toBe(code);
  const e = JSON.parse(r.stdout) as ErrorOut;
  expect(e.code).toBe(code);
  // The request's version, which the plugin reads from stdin.
  expect(e.cniVersion).toBe("1.0.0");
  return e;
}

describe("an agent that cannot be reached", () => {
  it("a missing socket (ENOENT): 11 for ADD, CHECK, DEL, GC, 50 for STATUS", async () => {
    const path = join(dir, "missing.sock");
    for (const command of ["ADD", "CHECK", "DEL", "GC"]) {
      const e = errorOf(await execPlugin({ ...add, CNI_COMMAND: command }, conf(path)), 11);
      expect(e.msg).toBe(`overlay agent at ${path} is unreachable: the socket does not exist`);
      expect(e.details).toContain("overlayd");
    }
    const e = errorOf(await execPlugin({ CNI_COMMAND: "STATUS" }, conf(path)), 50);
    expect(e.msg).toContain(path);
  });

  it("a stale socket (ECONNREFUSED)", async () => {
    const e = errorOf(await execPlugin(add, conf(stale)), 11);
    expect(e.msg).toBe(`overlay agent at ${stale} is unreachable: connection refused`);
    expect(e.details).toContain("nothing listens");
  });

  it("a path that is a regular file", async () => {
    const file = join(dir, "plain");
    writeFileSync(file, "");
    const e = errorOf(await execPlugin(add, conf(file)), 11);
    expect(e.msg).toBe(`overlay agent at ${file} is unreachable: the path is not a socket`);
  });

  it("a path that is a directory", async () => {
    const folder = join(dir, "folder");
    mkdirSync(folder);
    const e = errorOf(await execPlugin(add, conf(folder)), 11);
    expect(e.msg).toBe(`overlay agent at ${folder} is unreachable: the path is a directory, not a socket`);
    errorOf(await execPlugin({ CNI_COMMAND: "STATUS" }, conf(folder)), 50);
  });

  it("a path under a regular file (ENOTDIR)", async () => {
    const under = join(dir, "plain2", "agent.sock");
    writeFileSync(join(dir, "plain2"), "");
    const e = errorOf(await execPlugin(add, conf(under)), 11);
    expect(e.msg).toContain(under);
  });

  it("the default socket when the configuration names none", async () => {
    if (existsSync("/run/overlay/agent.sock")) {
      console.log("test/cni/unreachable.test.ts: an agent serves the default socket here; not tried");
      return;
    }
    const text = JSON.stringify({ cniVersion: "1.0.0", name: "overlay", type: "overlay-cni" });
    const e = errorOf(await execPlugin(add, text), 11);
    expect(e.msg).toContain("/run/overlay/agent.sock");
  });
});

describe("an agent that does not answer", () => {
  const sock = (name: string) => join(dir, `${name}.sock`);

  it("gives up after timeoutMs, naming the socket and the bound", async () => {
    const path = sock("silent");
    const server = await rawServer(path, () => undefined);
    try {
      const r = await execPlugin(add, conf(path, { timeoutMs: 300 }));
      const e = errorOf(r, 11);
      expect(e.msg).toBe(`overlay agent at ${path} did not answer ADD within 300 ms`);
      expect(r.ms).toBeGreaterThanOrEqual(290);
      expectWithin("a plugin call to a silent agent, exec to exit", r.ms, 300);
      errorOf(await execPlugin({ CNI_COMMAND: "STATUS" }, conf(path, { timeoutMs: 100 })), 50);
    } finally {
      await server.close();
    }
  });

  it("an agent that closes the connection without answering (killed mid-call)", async () => {
    const path = sock("closing");
    const server = await rawServer(path, (conn) => conn.destroy());
    try {
      const e = errorOf(await execPlugin(add, conf(path)), 11);
      expect(e.msg).toBe(`overlay agent at ${path} closed the connection without answering ADD`);
    } finally {
      await server.close();
    }
  });

  it("a reply that is not the protocol (code 6; STATUS 50)", async () => {
    const path = sock("foreign");
    const server = await rawServer(path, (conn) => conn.end('{"ok":true}\n'));
    try {
      const e = errorOf(await execPlugin(add, conf(path)), 6);
      expect(e.msg).toContain(`overlay agent at ${path} sent an invalid reply`);
      errorOf(await execPlugin({ CNI_COMMAND: "STATUS" }, conf(path)), 50);
    } finally {
      await server.close();
    }
  });

  it("a reply cut short of its length", async () => {
    const path = sock("short");
    const server = await rawServer(path, (conn) => conn.end("OVCNI/1 0 100\n{}"));
    try {
      const e = errorOf(await execPlugin(add, conf(path)), 6);
      expect(e.msg).toContain("shorter than its header says");
    } finally {
      await server.close();
    }
  });
});

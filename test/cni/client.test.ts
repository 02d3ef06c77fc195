import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { callAgent, decodeResponse } from "../../src/cni/client.js";
import { CniError } from "../../src/cni/errors.js";
import { FakeAgent, sampleResult } from "./fake-agent.js";
import { expectWithin } from "../helpers/timing.js";

async function failure(p: Promise<unknown>): Promise<CniError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof CniError) return err;
    throw err;
  }
  throw new Error("expected a CniError");
}

const add = {
  op: "ADD" as const,
  containerId: "c1",
  netns: "/var/run/netns/c1",
  ifName: "eth0",
  podNamespace: "coffee",
  podName: "nginx",
  network: "red",
};

describe("callAgent against a listening agent", () => {
  let agent: FakeAgent;
  beforeEach(async () => {
    agent = new FakeAgent();
    await agent.start();
  });
  afterEach(async () => agent.stop());

  it("sends the request as one JSON line and returns the answer", async () => {
    const response = await callAgent(agent.socket, add, 2000);
    expect(response).toEqual({ ok: true, result: sampleResult("eth0", add.netns) });
    expect(agent.lines).toEqual([JSON.stringify(add)]);
    expect(agent.requests).toEqual([add]);
  });

  it("returns the agent's error as it came", async () => {
    agent.behave({
      kind: "respond",
      response: {
        ok: false,
        error: { code: 101, msg: "unknown network red", details: "create it with dctl" },
      },
    });
    expect(await callAgent(agent.socket, add, 2000)).toEqual({
      ok: false,
      error: { code: 101, msg: "unknown network red", details: "create it with dctl" },
    });
  });

  it("accepts a last line without newline", async () => {
    agent.behave({ kind: "raw", text: '{"ok":true}' });
    expect(await callAgent(agent.socket, { op: "STATUS" }, 2000)).toEqual({ ok: true });
  });

  it("gives up after the timeout with code 104 naming the socket", async () => {
    agent.behave({ kind: "hang" });
    const started = Date.now();
    const e = await failure(callAgent(agent.socket, add, 300));
    const elapsed = Date.now() - started;
    expect(e.code).toBe(104);
    expect(e.message).toBe(`overlay agent at ${agent.socket} did not answer ADD within 300 ms`);
    expect(elapsed).toBeGreaterThanOrEqual(290);
    expectWithin("an agent that never answers, until the client gives up", elapsed, 300);
  });

  it("reports a connection closed without an answer as code 104", async () => {
    agent.behave({ kind: "close" });
    const e = await failure(callAgent(agent.socket, add, 2000));
    expect(e.code).toBe(104);
    expect(e.message).toContain("closed the connection without answering ADD");
    expect(e.message).toContain(agent.socket);
  });

  it.each([
    ["garbage", "hello\n", "not JSON"],
    ["an array", "[1]\n", "not a JSON object"],
    ["no ok", '{"result":{}}\n', '"ok" is neither true nor false'],
    ["a malformed error", '{"ok":false,"error":{"code":"x"}}\n', "malformed error"],
    ["a malformed result", '{"ok":true,"result":{"interfaces":"eth0"}}\n', "malformed result"],
  ])("reports %s from the agent as code 6", async (_what, text, why) => {
    agent.behave({ kind: "raw", text });
    const e = await failure(callAgent(agent.socket, add, 2000));
    expect(e.code).toBe(6);
    expect(e.message).toBe(`overlay agent at ${agent.socket} sent an invalid response: ${why}`);
  });
});

describe("callAgent when no agent answers", () => {
  const dir = mkdtempSync(join(tmpdir(), "cni-client-"));
  const stale = join(dir, "stale.sock");

  beforeAll(async () => {
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

  it("explains a missing socket (ENOENT) with code 104", async () => {
    const path = join(dir, "missing.sock");
    const e = await failure(callAgent(path, { op: "STATUS" }, 2000));
    expect(e.code).toBe(104);
    expect(e.message).toBe(`overlay agent at ${path} is unreachable: the socket does not exist`);
    expect(e.details).toContain("overlayd");
  });

  it("explains a stale socket (ECONNREFUSED) with code 104", async () => {
    const e = await failure(callAgent(stale, { op: "STATUS" }, 2000));
    expect(e.code).toBe(104);
    expect(e.message).toBe(`overlay agent at ${stale} is unreachable: connection refused`);
    expect(e.details).toContain("nothing listens");
  });

  it("reports a path that is no socket with code 104", async () => {
    const file = join(dir, "plain");
    writeFileSync(file, "");
    const e = await failure(callAgent(file, { op: "STATUS" }, 2000));
    expect(e.code).toBe(104);
    expect(e.message).toContain(file);
  });
});

describe("decodeResponse", () => {
  it("keeps an error's details and drops nothing of a result", () => {
    const result = sampleResult("eth0", "/x");
    expect(decodeResponse("/s", JSON.stringify({ ok: true, result }))).toEqual({ ok: true, result });
    expect(decodeResponse("/s", '{"ok":false,"error":{"code":3,"msg":"m"}}')).toEqual({
      ok: false,
      error: { code: 3, msg: "m" },
    });
  });
});

/**
 * Every command through the plugin binary, against the agent's real socket server and CNI layer
 * in front of fake request handlers (fake-agent.ts).
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeEach, describe, expect, it } from "vitest";
import { outcome as plugin, type Outcome } from "./binary.js";
import { versionInfo } from "../../src/cni/result.js";
import { FakeAgent, sampleResult } from "./fake-agent.js";
import { expectWithin } from "../helpers/timing.js";

const dir = mkdtempSync(join(tmpdir(), "cni-plugin-"));
const netns = join(dir, "netns-pod1");
writeFileSync(netns, "");
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let agent: FakeAgent;
beforeEach(async () => {
  agent = new FakeAgent();
  await agent.start();
});
afterEach(async () => agent.stop());

function conf(extra: Record<string, unknown> = {}): string {
  return JSON.stringify({
    cniVersion: "1.1.0",
    name: "overlay",
    type: "overlay-cni",
    socket: agent.socket,
    ...extra,
  });
}

function env(
  command: string,
  extra: Record<string, string | undefined> = {},
): Record<string, string | undefined> {
  return {
    CNI_COMMAND: command,
    CNI_CONTAINERID: "pod1",
    CNI_NETNS: netns,
    CNI_IFNAME: "eth0",
    CNI_ARGS: "IgnoreUnknown=1;K8S_POD_NAMESPACE=coffee;K8S_POD_NAME=nginx-1;K8S_POD_UID=123",
    CNI_PATH: "/opt/cni/bin",
    ...extra,
  };
}

interface ErrorOut {
  cniVersion: string;
  code: number;
  msg: string;
  details?: string;
}

/** The error printed; the exit status is its code where that fits in one (1..255), else 1. */
function errorOf(out: Outcome): ErrorOut {
  expect(out.stdout.endsWith("\n")).toBe(true);
  const e = JSON.parse(out.stdout) as ErrorOut;
  expect(out.exitCode).toBe(e.code >= 1 && e.code <= 255 ? e.code : 1);
  return e;
}

function ok(out: Outcome): void {
  expect(out).toEqual({ stdout: "", exitCode: 0 });
}

const annotated = (value: string): Record<string, unknown> => ({
  args: { cni: { annotations: { "diamanti.com/endpoint0": value } } },
});

describe("VERSION", () => {
  it("lists the supported versions whatever stdin holds", async () => {
    for (const stdin of ['{"cniVersion":"1.0.0"}', "", "not json"]) {
      const out = await plugin({ CNI_COMMAND: "VERSION" }, stdin);
      expect(out.exitCode).toBe(0);
      expect(JSON.parse(out.stdout)).toEqual({
        cniVersion: "1.1.0",
        supportedVersions: ["0.4.0", "1.0.0", "1.1.0"],
      });
    }
    expect(agent.requests).toEqual([]);
  });
});

describe("VERSION", () => {
  it("answers what the agent's CNI layer supports", async () => {
    const out = await plugin({ CNI_COMMAND: "VERSION" }, "");
    expect(JSON.parse(out.stdout)).toEqual(versionInfo());
  });
});

describe("the socket key", () => {
  it("is read from the top level only, a nested one (prevResult, args) not counting", async () => {
    const nested = { socket: join(dir, "nested.sock") };
    ok(await plugin(env("DEL"), conf({ prevResult: nested, args: { cni: nested }, x: [nested, "socket"] })));
    expect(agent.requests).toHaveLength(1);
  });

  it("counts with its last value when given twice, as JSON.parse has it", async () => {
    const text = conf().replace("{", `{"socket":${JSON.stringify(join(dir, "first.sock"))},`);
    ok(await plugin(env("DEL"), text));
    expect(agent.requests).toHaveLength(1);
  });

  it("is decoded: escapes and a leading byte order mark", async () => {
    const escaped = JSON.stringify(agent.socket).replaceAll("/", "\\/").replace("a", "\\u0061");
    const text = `\ufeff{"cniVersion":"1.1.0","name":"overlay","type":"overlay-cni","socket":${escaped}}`;
    ok(await plugin(env("DEL"), text));
    expect(agent.requests).toHaveLength(1);
  });

  it("is found among decoys: nested keys, keys and strings that look like it, any key order", async () => {
    // Random configurations, the same each run; the agent is reached only if the plugin read
    // the right key, and the agent's JSON.parse sees the same configuration.
    let seed = 7;
    const rand = (): number => {
      seed = (seed * 1664525 + 1013904223) >>> 0;
      return seed / 2 ** 32;
    };
    const decoys: unknown[] = [
      { socket: "/nonexistent/a.sock" },
      ["socket", { socket: 1 }, [[{ socket: "/x" }]]],
      'quote " brace } bracket ] socket',
      "\\",
      { "socket\u0000": "/y", sock: "/z", "": { socket: null } },
      12.5e3,
      null,
      true,
    ];
    for (let i = 0; i < 40; i++) {
      const entries: [string, unknown][] = [
        ["cniVersion", "1.1.0"],
        ["name", "overlay"],
        ["type", "overlay-cni"],
        ["socket", agent.socket],
      ];
      for (let k = 0; k < 4; k++) entries.push([`k${k}`, decoys[Math.floor(rand() * decoys.length)]]);
      entries.sort(() => rand() - 0.5);
      const text = JSON.stringify(Object.fromEntries(entries), null, rand() < 0.5 ? 2 : undefined);
      ok(await plugin(env("DEL"), text));
    }
    expect(agent.requests).toHaveLength(40);
  });

  it("must be an absolute path of at most 107 bytes, a string (code 7, from the plugin)", async () => {
    for (const socket of ["agent.sock", `/${"x".repeat(107)}`, 42, ""]) {
      const e = errorOf(await plugin(env("ADD"), conf({ socket })));
      expect(e.code, JSON.stringify(socket)).toBe(7);
      expect(e.msg).toContain("socket");
    }
    expect(agent.calls).toEqual([]);
  });
});

describe("ADD", () => {
  it("sends the pod's request and prints the result in the request's version", async () => {
    const out = await plugin(env("ADD"), conf(annotated('{ "network": "red", "perfTier": "best-effort" }')));
    expect(out.exitCode).toBe(0);
    expect(JSON.parse(out.stdout)).toEqual({ cniVersion: "1.1.0", ...sampleResult("eth0", netns) });
    expect(agent.requests).toEqual([
      {
        op: "ADD",
        containerId: "pod1",
        netns,
        ifName: "eth0",
        podNamespace: "coffee",
        podName: "nginx-1",
        kubernetesPod: true,
        network: "red",
        perfTier: "best-effort",
        annotationsGiven: true,
      },
    ]);
  });

  it("sends no network or tier when the pod has no annotation", async () => {
    const out = await plugin(env("ADD"), conf());
    expect(out.exitCode).toBe(0);
    expect(agent.requests[0]).not.toHaveProperty("network");
    expect(agent.requests[0]).not.toHaveProperty("perfTier");
  });

  it("answers 1.0.0 configurations in 1.0.0 and adds ips[].version for 0.4.0", async () => {
    const v1 = JSON.parse((await plugin(env("ADD"), conf({ cniVersion: "1.0.0" }))).stdout) as {
      cniVersion: string;
      ips: Record<string, unknown>[];
    };
    expect(v1.cniVersion).toBe("1.0.0");
    expect(v1.ips[0]).not.toHaveProperty("version");
    const v04 = JSON.parse((await plugin(env("ADD"), conf({ cniVersion: "0.4.0" }))).stdout) as {
      cniVersion: string;
      ips: Record<string, unknown>[];
    };
    expect(v04.cniVersion).toBe("0.4.0");
    expect(v04.ips[0]).toMatchObject({ version: "4", address: "172.30.8.2/16" });
  });

  it("passes the agent's error through with its code, message and details", async () => {
    agent.behave({
      kind: "respond",
      response: { ok: false, error: { code: 100, msg: "address pool exhausted", details: "172.30.0.0/16" } },
    });
    expect(errorOf(await plugin(env("ADD"), conf()))).toEqual({
      cniVersion: "1.1.0",
      code: 100,
      msg: "address pool exhausted",
      details: "172.30.0.0/16",
    });
  });

  it("refuses an agent answer without a result (an internal error, 999)", async () => {
    agent.behave({ kind: "respond", response: { ok: true } });
    const e = errorOf(await plugin(env("ADD"), conf()));
    expect(e.code).toBe(999);
    expect(e.msg).toContain("without a result");
  });

  it("refuses a malformed annotation with code 7 before asking the agent", async () => {
    const e = errorOf(await plugin(env("ADD"), conf(annotated("{red"))));
    expect(e.code).toBe(7);
    expect(e.msg).toContain("diamanti.com/endpoint0");
    expect(agent.requests).toEqual([]);
  });

  it("refuses a netns that does not exist with code 4", async () => {
    const gone = join(dir, "gone");
    const e = errorOf(await plugin(env("ADD", { CNI_NETNS: gone }), conf()));
    expect(e).toEqual({
      cniVersion: "1.1.0",
      code: 4,
      msg: `CNI_NETNS=${gone} does not exist`,
      details: expect.any(String),
    });
    expect(agent.requests).toEqual([]);
  });

  it("puts a pod without K8S_POD_NAMESPACE (podman) in the configuration's namespace, named as the runtime names it", async () => {
    const podman = { CNI_ARGS: "IgnoreUnknown=1;K8S_POD_NAME=wonderful_galileo" };
    expect((await plugin(env("ADD", podman), conf())).exitCode).toBe(0);
    expect((await plugin(env("ADD", { CNI_ARGS: "" }), conf({ namespace: "espresso" }))).exitCode).toBe(0);
    expect(agent.requests).toMatchObject([
      {
        podNamespace: "default",
        podName: "wonderful_galileo",
        kubernetesPod: false,
        annotationsGiven: false,
      },
      { podNamespace: "espresso", podName: "pod1", kubernetesPod: false },
    ]);
  });

  it("refuses missing or invalid pod identity with code 4, and a bad namespace key with code 7", async () => {
    expect(errorOf(await plugin(env("ADD", { CNI_ARGS: "K8S_POD_NAMESPACE=x" }), conf()))).toMatchObject({
      code: 4,
      msg: "CNI_ARGS lacks K8S_POD_NAME",
    });
    const bad = errorOf(await plugin(env("ADD", { CNI_ARGS: "" }), conf({ namespace: "Coffee" })));
    expect(bad.code).toBe(7);
    expect(bad.msg).toContain("namespace");
    expect(agent.requests).toEqual([]);
  });

  it.each(["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"])("refuses a missing %s with code 4", async (v) => {
    const e = errorOf(await plugin(env("ADD", { [v]: undefined }), conf()));
    expect(e.code).toBe(4);
    expect(e.msg).toContain(v);
  });

  it("reports an unreachable agent with code 11 (try again later) and the socket path", async () => {
    const e = errorOf(await plugin(env("ADD"), conf({ socket: join(dir, "none.sock") })));
    expect(e.code).toBe(11);
    expect(e.msg).toContain(join(dir, "none.sock"));
  });

  it("bounds the wait by timeoutMs", async () => {
    agent.behave({ kind: "hang" });
    const started = Date.now();
    const e = errorOf(await plugin(env("ADD"), conf({ timeoutMs: 200 })));
    expectWithin("a call to a hung agent, until the plugin gives up", Date.now() - started, 200);
    expect(e.code).toBe(11);
    expect(e.msg).toContain("within 200 ms");
  });
});

describe("configuration errors", () => {
  it("reports bad JSON on stdin with code 6", async () => {
    // The plugin finds the socket before the syntax error; the agent reports the error.
    const e = errorOf(await plugin(env("ADD"), `{"socket":${JSON.stringify(agent.socket)},cniVersion`));
    expect(e.code).toBe(6);
    expect(e.cniVersion).toBe("1.1.0");
  });

  it("reports an unsupported version with code 1, answering in the plugin's version", async () => {
    const e = errorOf(await plugin(env("ADD"), conf({ cniVersion: "0.3.1" })));
    expect(e).toMatchObject({ cniVersion: "1.1.0", code: 1 });
  });

  it("reports a foreign type with code 7 in the request's version", async () => {
    const e = errorOf(await plugin(env("DEL"), conf({ cniVersion: "1.0.0", type: "bridge" })));
    expect(e).toMatchObject({ cniVersion: "1.0.0", code: 7 });
  });

  it("reports a missing or unknown CNI_COMMAND with code 4", async () => {
    expect(errorOf(await plugin({}, conf())).msg).toBe("CNI_COMMAND is not set");
    expect(errorOf(await plugin({ CNI_COMMAND: "UPDATE" }, conf())).code).toBe(4);
  });
});

describe("CHECK", () => {
  it("succeeds silently for a known attachment", async () => {
    await plugin(env("ADD"), conf(annotated('{"network":"red"}')));
    ok(await plugin(env("CHECK"), conf(annotated('{"network":"red"}'))));
    expect(agent.requests[1]).toMatchObject({ op: "CHECK", containerId: "pod1", netns, network: "red" });
  });

  it("reports the agent's error", async () => {
    const e = errorOf(await plugin(env("CHECK"), conf()));
    expect(e.code).toBe(3);
    expect(e.msg).toBe("no attachment pod1");
  });

  it("needs the netns to exist", async () => {
    expect(errorOf(await plugin(env("CHECK", { CNI_NETNS: join(dir, "x") }), conf())).code).toBe(4);
  });

  describe("compares the attachment with the runtime's prevResult", () => {
    // As a runtime holds it: plain JSON, where other plugins' host-side interfaces have no sandbox.
    interface Prev {
      interfaces: { name: string; mac: string; sandbox?: string; mtu?: number }[];
      ips: { address: string; gateway: string; interface: number }[];
    }
    const prev = () => JSON.parse(JSON.stringify(sampleResult("eth0", netns))) as Prev;

    it("passes when prevResult is what ADD printed, with other plugins' entries beside it", async () => {
      await plugin(env("ADD"), conf());
      const p = prev();
      p.interfaces.unshift({ name: "cni0", mac: "02:00:00:00:00:01", mtu: 1500 });
      p.ips = p.ips.map((ip) => ({ ...ip, interface: 1 }));
      ok(await plugin(env("CHECK"), conf({ prevResult: p })));
    });

    it("fails with code 105 when prevResult has another MAC", async () => {
      await plugin(env("ADD"), conf());
      const p = prev();
      p.interfaces[0]!.mac = "0a:58:ac:1e:08:99";
      const e = errorOf(await plugin(env("CHECK"), conf({ prevResult: p })));
      expect(e).toMatchObject({ code: 105, msg: "attachment differs from prevResult" });
      expect(e.details).toContain("0a:58:ac:1e:08:99");
    });

    it("fails with code 105 when prevResult has another address or gateway", async () => {
      await plugin(env("ADD"), conf());
      const other = prev();
      other.ips[0]!.address = "172.30.8.3/16";
      expect(errorOf(await plugin(env("CHECK"), conf({ prevResult: other }))).details).toMatch(
        /has address 172\.30\.8\.2\/16, prevResult says 172\.30\.8\.3\/16/,
      );
      const gw = prev();
      gw.ips[0]!.gateway = "172.30.8.254";
      expect(errorOf(await plugin(env("CHECK"), conf({ prevResult: gw }))).code).toBe(105);
    });

    it("fails with code 105 when prevResult does not list the interface", async () => {
      await plugin(env("ADD"), conf());
      const p = prev();
      p.interfaces[0]!.name = "net1";
      expect(errorOf(await plugin(env("CHECK"), conf({ prevResult: p }))).details).toBe(
        "prevResult has no interface eth0",
      );
    });
  });
});

describe("DEL", () => {
  it("is idempotent: a second DEL of the same attachment succeeds", async () => {
    await plugin(env("ADD"), conf());
    ok(await plugin(env("DEL"), conf()));
    ok(await plugin(env("DEL"), conf()));
    expect(agent.requests.map((r) => r.op)).toEqual(["ADD", "DEL", "DEL"]);
    expect(agent.attachments.size).toBe(0);
  });

  it("succeeds without CNI_NETNS and without pod identity", async () => {
    ok(await plugin(env("DEL", { CNI_NETNS: undefined, CNI_ARGS: undefined }), conf()));
    expect(agent.requests).toEqual([{ op: "DEL", containerId: "pod1", ifName: "eth0" }]);
  });

  it("leaves out a netns that no longer exists", async () => {
    ok(await plugin(env("DEL", { CNI_NETNS: join(dir, "gone") }), conf()));
    expect(agent.requests[0]).not.toHaveProperty("netns");
    expect(agent.requests[0]).toMatchObject({ podNamespace: "coffee", podName: "nginx-1" });
  });

  it("passes a netns that exists", async () => {
    ok(await plugin(env("DEL"), conf()));
    expect(agent.requests[0]).toMatchObject({ netns });
  });

  it("does not read the annotation (a malformed one cannot block teardown)", async () => {
    ok(await plugin(env("DEL"), conf(annotated("{bad"))));
  });

  it("fails when the agent is unreachable, so that the runtime retries", async () => {
    const e = errorOf(await plugin(env("DEL"), conf({ socket: join(dir, "none.sock") })));
    expect(e.code).toBe(11);
  });

  it("fails on agent errors other than an unknown attachment", async () => {
    agent.behave({
      kind: "respond",
      response: { ok: false, error: { code: 103, msg: "store unreachable" } },
    });
    expect(errorOf(await plugin(env("DEL"), conf()))).toEqual({
      cniVersion: "1.1.0",
      code: 103,
      msg: "store unreachable",
    });
  });

  it("still validates the container ID and interface name", async () => {
    expect(errorOf(await plugin(env("DEL", { CNI_CONTAINERID: "../x" }), conf())).code).toBe(4);
    expect(errorOf(await plugin(env("DEL", { CNI_IFNAME: undefined }), conf())).msg).toContain("CNI_IFNAME");
  });
});

describe("STATUS", () => {
  const statusEnv = { CNI_COMMAND: "STATUS", CNI_PATH: "/opt/cni/bin" };

  it("succeeds silently when the agent is ready", async () => {
    ok(await plugin(statusEnv, conf()));
    expect(agent.requests).toEqual([{ op: "STATUS" }]);
  });

  it("reports code 50 when the agent is not ready", async () => {
    agent.ready = false;
    expect(errorOf(await plugin(statusEnv, conf()))).toEqual({
      cniVersion: "1.1.0",
      code: 50,
      msg: "tables not programmed yet",
    });
  });

  it("reports code 50 when the agent is unreachable or silent", async () => {
    const none = join(dir, "none.sock");
    const e = errorOf(await plugin(statusEnv, conf({ socket: none })));
    expect(e.code).toBe(50);
    expect(e.msg).toContain(none);
    agent.behave({ kind: "hang" });
    expect(errorOf(await plugin(statusEnv, conf({ timeoutMs: 100 }))).code).toBe(50);
  });

  it("keeps 51 and turns other agent codes into 50", async () => {
    agent.behave({ kind: "respond", response: { ok: false, error: { code: 51, msg: "limited" } } });
    expect(errorOf(await plugin(statusEnv, conf())).code).toBe(51);
    agent.behave({
      kind: "respond",
      response: { ok: false, error: { code: 103, msg: "store unreachable" } },
    });
    expect(errorOf(await plugin(statusEnv, conf()))).toEqual({
      cniVersion: "1.1.0",
      code: 50,
      msg: "store unreachable",
      details: "agent error 103",
    });
  });

  it("needs a 1.1.0 configuration", async () => {
    expect(errorOf(await plugin(statusEnv, conf({ cniVersion: "1.0.0" }))).code).toBe(1);
    expect(agent.requests).toEqual([]);
  });
});

describe("GC", () => {
  const gcEnv = { CNI_COMMAND: "GC", CNI_PATH: "/opt/cni/bin" };

  it("passes the runtime's valid attachments to the agent", async () => {
    for (const id of ["a", "b", "c"]) await plugin(env("ADD", { CNI_CONTAINERID: id }), conf());
    const valid = [
      { containerID: "a", ifname: "eth0" },
      { containerID: "c", ifname: "eth0" },
    ];
    ok(await plugin(gcEnv, conf({ "cni.dev/valid-attachments": valid })));
    expect(agent.requests.at(-1)).toEqual({
      op: "GC",
      valid: [
        { containerId: "a", ifName: "eth0" },
        { containerId: "c", ifName: "eth0" },
      ],
    });
    expect([...agent.attachments.keys()].sort()).toEqual(["a/eth0", "c/eth0"]);
  });

  it("passes an empty list as empty", async () => {
    ok(await plugin(gcEnv, conf({ "cni.dev/valid-attachments": [] })));
    expect(agent.requests).toEqual([{ op: "GC", valid: [] }]);
  });

  it("refuses to run without the list", async () => {
    const e = errorOf(await plugin(gcEnv, conf()));
    expect(e.code).toBe(7);
    expect(e.msg).toContain("cni.dev/valid-attachments");
    expect(agent.requests).toEqual([]);
  });

  it("reports the agent's error", async () => {
    agent.behave({
      kind: "respond",
      response: { ok: false, error: { code: 103, msg: "store unreachable" } },
    });
    expect(errorOf(await plugin(gcEnv, conf({ "cni.dev/valid-attachments": [] }))).code).toBe(103);
  });
});

import { describe, expect, it } from "vitest";
import {
  decodeConfig,
  DEFAULT_TIMEOUT_MS,
  parseConfig,
  replyVersion,
  validAttachments,
  versionAtLeast,
} from "../../src/cni/config.js";
import { CniError } from "../../src/cni/errors.js";
import { DEFAULT_AGENT_SOCKET } from "../../src/agent/protocol.js";

function failure(fn: () => unknown): { code: number; msg: string } {
  try {
    fn();
  } catch (err) {
    if (err instanceof CniError) return { code: err.code, msg: err.message };
    throw err;
  }
  throw new Error("expected a CniError");
}

const base = { cniVersion: "1.1.0", name: "overlay", type: "overlay-cni" };

describe("decodeConfig", () => {
  it("parses an object", () => {
    expect(decodeConfig(JSON.stringify(base))).toEqual(base);
  });

  it("refuses bad JSON with code 6 and a non-object with code 7", () => {
    expect(failure(() => decodeConfig("{"))).toEqual({
      code: 6,
      msg: "network configuration: stdin is not valid JSON",
    });
    expect(failure(() => decodeConfig(""))).toEqual({
      code: 6,
      msg: "network configuration: stdin is empty",
    });
    expect(failure(() => decodeConfig("[1]")).code).toBe(7);
    expect(failure(() => decodeConfig("null")).code).toBe(7);
  });
});

describe("parseConfig", () => {
  it("applies defaults for socket and timeout", () => {
    const c = parseConfig(base, "ADD");
    expect(c).toMatchObject({
      cniVersion: "1.1.0",
      name: "overlay",
      type: "overlay-cni",
      socket: DEFAULT_AGENT_SOCKET,
      timeoutMs: DEFAULT_TIMEOUT_MS,
    });
  });

  it("takes socket and timeoutMs", () => {
    const c = parseConfig({ ...base, socket: "/tmp/a.sock", timeoutMs: 1500 }, "ADD");
    expect(c.socket).toBe("/tmp/a.sock");
    expect(c.timeoutMs).toBe(1500);
  });

  it.each(["1.0.0", "1.1.0", "0.4.0"])("accepts cniVersion %s", (v) => {
    expect(parseConfig({ ...base, cniVersion: v }, "ADD").cniVersion).toBe(v);
  });

  it("refuses an unsupported cniVersion with code 1 and a missing one with code 7", () => {
    const e = failure(() => parseConfig({ ...base, cniVersion: "0.3.1" }, "ADD"));
    expect(e.code).toBe(1);
    expect(e.msg).toContain('"0.3.1"');
    expect(failure(() => parseConfig({ ...base, cniVersion: 1 }, "ADD")).code).toBe(1);
    const { cniVersion: _, ...noVersion } = base;
    expect(failure(() => parseConfig(noVersion, "ADD"))).toEqual({
      code: 7,
      msg: "network configuration: cniVersion is missing",
    });
  });

  it("refuses STATUS and GC below 1.1.0 with code 1", () => {
    expect(failure(() => parseConfig({ ...base, cniVersion: "1.0.0" }, "STATUS"))).toEqual({
      code: 1,
      msg: "STATUS needs cniVersion 1.1.0 or later, the configuration has 1.0.0",
    });
    expect(failure(() => parseConfig({ ...base, cniVersion: "0.4.0" }, "GC")).code).toBe(1);
    expect(parseConfig({ ...base, cniVersion: "0.4.0" }, "CHECK").cniVersion).toBe("0.4.0");
  });

  it("requires a valid name and this plugin's type (code 7)", () => {
    expect(failure(() => parseConfig({ ...base, name: undefined }, "ADD")).code).toBe(7);
    expect(failure(() => parseConfig({ ...base, name: "" }, "ADD")).code).toBe(7);
    expect(failure(() => parseConfig({ ...base, name: "a b" }, "ADD")).msg).toContain('"a b"');
    const t = failure(() => parseConfig({ ...base, type: "bridge" }, "ADD"));
    expect(t.code).toBe(7);
    expect(t.msg).toContain('"bridge"');
  });

  it.each([["relative.sock"], [7], ["/" + "s".repeat(107)]])("refuses socket %j with code 7", (socket) => {
    const e = failure(() => parseConfig({ ...base, socket }, "ADD"));
    expect(e.code).toBe(7);
    expect(e.msg).toContain("socket");
  });

  it.each([[0], [-1], [1.5], ["100"], [300_001]])("refuses timeoutMs %j with code 7", (timeoutMs) => {
    const e = failure(() => parseConfig({ ...base, timeoutMs }, "ADD"));
    expect(e.code).toBe(7);
    expect(e.msg).toContain("timeoutMs");
  });
});

describe("versions", () => {
  it("answers in the request's version when supported", () => {
    expect(replyVersion({ cniVersion: "1.0.0" })).toBe("1.0.0");
    expect(replyVersion({ cniVersion: "0.2.0" })).toBe("1.1.0");
    expect(replyVersion(undefined)).toBe("1.1.0");
  });

  it("orders versions numerically", () => {
    expect(versionAtLeast("1.1.0", "1.1.0")).toBe(true);
    expect(versionAtLeast("1.10.0", "1.9.0")).toBe(true);
    expect(versionAtLeast("1.0.0", "1.1.0")).toBe(false);
    expect(versionAtLeast("0.4.0", "1.0.0")).toBe(false);
  });
});

describe("validAttachments", () => {
  it("maps the runtime's list to the agent's shape", () => {
    const raw = {
      "cni.dev/valid-attachments": [
        { containerID: "c1", ifname: "eth0" },
        { containerID: "c2", ifname: "net1" },
      ],
    };
    expect(validAttachments(raw)).toEqual([
      { containerId: "c1", ifName: "eth0" },
      { containerId: "c2", ifName: "net1" },
    ]);
    expect(validAttachments({ "cni.dev/valid-attachments": [] })).toEqual([]);
  });

  it("refuses a missing or malformed list rather than releasing everything", () => {
    expect(failure(() => validAttachments({})).msg).toContain("cni.dev/valid-attachments");
    expect(failure(() => validAttachments({ "cni.dev/valid-attachments": {} })).code).toBe(7);
    expect(failure(() => validAttachments({ "cni.dev/valid-attachments": ["c1"] })).code).toBe(7);
    expect(
      failure(() => validAttachments({ "cni.dev/valid-attachments": [{ containerID: "c1" }] })).msg,
    ).toContain("[0].ifname");
    expect(
      failure(() =>
        validAttachments({ "cni.dev/valid-attachments": [{ containerID: "-x", ifname: "eth0" }] }),
      ).msg,
    ).toContain("[0].containerID");
    expect(
      failure(() => validAttachments({ "cni.dev/valid-attachments": [{ containerID: "ok", ifname: "a/b" }] }))
        .code,
    ).toBe(7);
  });
});

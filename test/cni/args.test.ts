import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  optionalPodRef,
  parseCniArgs,
  parseCommand,
  parseEnv,
  podRef,
  requireNetns,
} from "../../src/cni/args.js";
import { netnsExists } from "../../src/agent/plumbing.js";
import { CniError } from "../../src/cni/errors.js";

function codeOf(fn: () => unknown): { code: number; msg: string } {
  try {
    fn();
  } catch (err) {
    if (err instanceof CniError) return { code: err.code, msg: err.message };
    throw err;
  }
  throw new Error("expected a CniError");
}

const full = {
  CNI_COMMAND: "ADD",
  CNI_CONTAINERID: "abc123",
  CNI_NETNS: "/var/run/netns/x",
  CNI_IFNAME: "eth0",
  CNI_ARGS: "IgnoreUnknown=1;K8S_POD_NAMESPACE=coffee;K8S_POD_NAME=nginx-1",
  CNI_PATH: "/opt/cni/bin:/usr/lib/cni",
};

describe("parseCommand", () => {
  it("accepts every spec command", () => {
    for (const c of ["ADD", "DEL", "CHECK", "VERSION", "STATUS", "GC"]) {
      expect(parseCommand({ CNI_COMMAND: c })).toBe(c);
    }
  });

  it("refuses a missing or unknown command with code 4", () => {
    expect(codeOf(() => parseCommand({}))).toEqual({ code: 4, msg: "CNI_COMMAND is not set" });
    expect(codeOf(() => parseCommand({ CNI_COMMAND: "" })).code).toBe(4);
    const e = codeOf(() => parseCommand({ CNI_COMMAND: "add" }));
    expect(e.code).toBe(4);
    expect(e.msg).toContain("CNI_COMMAND=add");
  });
});

describe("parseEnv", () => {
  it("reads every variable", () => {
    expect(parseEnv(full)).toEqual({
      command: "ADD",
      containerId: "abc123",
      netns: "/var/run/netns/x",
      ifName: "eth0",
      args: { IgnoreUnknown: "1", K8S_POD_NAMESPACE: "coffee", K8S_POD_NAME: "nginx-1" },
      path: ["/opt/cni/bin", "/usr/lib/cni"],
    });
  });

  it.each([
    ["ADD", "CNI_CONTAINERID"],
    ["ADD", "CNI_NETNS"],
    ["ADD", "CNI_IFNAME"],
    ["CHECK", "CNI_CONTAINERID"],
    ["CHECK", "CNI_NETNS"],
    ["CHECK", "CNI_IFNAME"],
    ["DEL", "CNI_CONTAINERID"],
    ["DEL", "CNI_IFNAME"],
  ])("%s without %s fails with code 4 naming it", (command, variable) => {
    const env: Record<string, string> = { ...full, CNI_COMMAND: command };
    delete env[variable];
    const e = codeOf(() => parseEnv(env));
    expect(e.code).toBe(4);
    expect(e.msg).toBe(`${variable} is required for ${command} but is not set`);
    // An empty value is no value.
    expect(codeOf(() => parseEnv({ ...env, [variable]: "" })).msg).toContain(variable);
  });

  it("lets DEL go without CNI_NETNS, and STATUS, GC, VERSION without any container variable", () => {
    expect(parseEnv({ ...full, CNI_COMMAND: "DEL", CNI_NETNS: "" }).netns).toBeUndefined();
    for (const c of ["STATUS", "GC", "VERSION"]) expect(parseEnv({ CNI_COMMAND: c }).command).toBe(c);
  });

  it.each(["-abc", "_abc", "a b", "a/b", "a;b", "ä"])("refuses container ID %j with code 4", (id) => {
    const e = codeOf(() => parseEnv({ ...full, CNI_CONTAINERID: id }));
    expect(e.code).toBe(4);
    expect(e.msg).toContain("CNI_CONTAINERID");
  });

  it("accepts container IDs with the spec's characters", () => {
    expect(parseEnv({ ...full, CNI_CONTAINERID: "a0_b.c-d" }).containerId).toBe("a0_b.c-d");
  });

  it.each(["a".repeat(16), ".", "..", "eth/0", "eth:0", "eth 0", "eth\t0"])(
    "refuses interface name %j with code 4",
    (name) => {
      const e = codeOf(() => parseEnv({ ...full, CNI_IFNAME: name }));
      expect(e.code).toBe(4);
      expect(e.msg).toContain("CNI_IFNAME");
    },
  );

  it("accepts a 15-character interface name", () => {
    expect(parseEnv({ ...full, CNI_IFNAME: "a".repeat(15) }).ifName).toBe("a".repeat(15));
  });
});

describe("parseCniArgs", () => {
  it("splits K=V pairs, tolerates a trailing ';' and '=' in values", () => {
    expect(parseCniArgs("A=1;B=x=y;;C=")).toEqual({ A: "1", B: "x=y", C: "" });
    expect(parseCniArgs(undefined)).toEqual({});
    expect(parseCniArgs("")).toEqual({});
  });

  it.each(["novalue", "=v", "A=1;junk"])("refuses %j with code 4", (raw) => {
    const e = codeOf(() => parseCniArgs(raw));
    expect(e.code).toBe(4);
    expect(e.msg).toContain("CNI_ARGS");
  });
});

describe("podRef", () => {
  it("takes namespace and name", () => {
    expect(podRef({ K8S_POD_NAMESPACE: "tea", K8S_POD_NAME: "web.v1-2" })).toEqual({
      podNamespace: "tea",
      podName: "web.v1-2",
      kubernetesPod: true,
    });
  });

  const defaults = { namespace: "espresso", containerId: "3f1c0ffee" };

  it("without K8S_POD_NAMESPACE takes the configuration's namespace and the runtime's name as is", () => {
    // podman: IgnoreUnknown=1;K8S_POD_NAME=<container name>, generated names with '_'.
    expect(podRef({ IgnoreUnknown: "1", K8S_POD_NAME: "wonderful_galileo" }, defaults)).toEqual({
      podNamespace: "espresso",
      podName: "wonderful_galileo",
      kubernetesPod: false,
    });
    expect(podRef({ K8S_POD_NAME: "Web.1" }, defaults).podName).toBe("Web.1");
    // No name at all: the container ID.
    expect(podRef({}, defaults)).toEqual({
      podNamespace: "espresso",
      podName: "3f1c0ffee",
      kubernetesPod: false,
    });
    // A Kubernetes pod keeps Kubernetes' rules, whatever the defaults.
    expect(podRef({ K8S_POD_NAMESPACE: "tea", K8S_POD_NAME: "web" }, defaults).podNamespace).toBe("tea");
    expect(codeOf(() => podRef({ K8S_POD_NAMESPACE: "tea", K8S_POD_NAME: "a_b" }, defaults)).code).toBe(4);
    expect(codeOf(() => podRef({ K8S_POD_NAME: "a/b" }, defaults))).toMatchObject({
      code: 4,
      msg: 'CNI_ARGS has an invalid K8S_POD_NAME="a/b"',
    });
  });

  it("names what is missing or invalid", () => {
    expect(codeOf(() => podRef({ K8S_POD_NAME: "x" }))).toEqual({
      code: 4,
      msg: "CNI_ARGS lacks K8S_POD_NAMESPACE",
    });
    expect(codeOf(() => podRef({ K8S_POD_NAMESPACE: "x" }))).toEqual({
      code: 4,
      msg: "CNI_ARGS lacks K8S_POD_NAME",
    });
    expect(codeOf(() => podRef({ K8S_POD_NAMESPACE: "Coffee", K8S_POD_NAME: "x" })).msg).toContain(
      "K8S_POD_NAMESPACE",
    );
    expect(codeOf(() => podRef({ K8S_POD_NAMESPACE: "a/b", K8S_POD_NAME: "x" })).code).toBe(4);
    expect(codeOf(() => podRef({ K8S_POD_NAMESPACE: "a", K8S_POD_NAME: "../x" })).msg).toContain(
      "K8S_POD_NAME",
    );
    expect(codeOf(() => podRef({ K8S_POD_NAMESPACE: "a".repeat(64), K8S_POD_NAME: "x" })).code).toBe(4);
  });

  it("is optional for DEL", () => {
    expect(optionalPodRef({})).toEqual({});
    expect(optionalPodRef({ K8S_POD_NAMESPACE: "a", K8S_POD_NAME: "b" })).toEqual({
      podNamespace: "a",
      podName: "b",
    });
  });
});

describe("netns checks", () => {
  const dir = mkdtempSync(join(tmpdir(), "cni-args-"));
  const present = join(dir, "ns");
  writeFileSync(present, "");
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("accepts an existing absolute path", () => {
    expect(() => requireNetns(present)).not.toThrow();
    expect(netnsExists(present)).toBe(true);
  });

  it("refuses a path that does not exist, with code 4 naming it", () => {
    const gone = join(dir, "gone");
    const e = codeOf(() => requireNetns(gone));
    expect(e).toEqual({ code: 4, msg: `CNI_NETNS=${gone} does not exist` });
    expect(netnsExists(gone)).toBe(false);
  });

  it("refuses a relative path", () => {
    expect(codeOf(() => requireNetns("netns/x"))).toEqual({
      code: 4,
      msg: "CNI_NETNS=netns/x is not an absolute path",
    });
  });
});

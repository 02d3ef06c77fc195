import { describe, expect, it } from "vitest";
import {
  parseAddress,
  parseEndpoint,
  parseNamespace,
  parseNetwork,
  parseNode,
} from "../../src/model/records.js";

const key = "/overlay/v1/network/red";
const good = {
  schemaVersion: 1,
  name: "red",
  type: "private",
  subnet: "172.30.0.0/16",
  isolateNs: true,
  isDefault: false,
  blockPrefix: 24,
  networkGroup: "",
  createdAt: "2025-01-01T00:00:00.000Z",
};

describe("records", () => {
  it("parses a valid network record", () => {
    const r = parseNetwork({ key, value: JSON.stringify(good) });
    expect(r).toEqual({ ok: true, value: good });
  });

  it.each([
    ["not JSON", "{", /not JSON/],
    ["not an object", "[1]", /not a JSON object/],
    ["no schemaVersion", JSON.stringify({ ...good, schemaVersion: undefined }), /schemaVersion must be 1/],
    [
      "newer schema",
      JSON.stringify({ ...good, schemaVersion: 2 }),
      /schemaVersion 2 is newer than this program/,
    ],
    ["missing name", JSON.stringify({ ...good, name: undefined }), /field "name" must be a non-empty string/],
    ["wrong type", JSON.stringify({ ...good, type: "public" }), /field "type" must be one of private/],
    [
      "bool as string",
      JSON.stringify({ ...good, isolateNs: "true" }),
      /field "isolateNs" must be true or false/,
    ],
    [
      "block prefix",
      JSON.stringify({ ...good, blockPrefix: 24.5 }),
      /field "blockPrefix" must be an integer/,
    ],
  ])("reports %s with the key", (_what, value, problem) => {
    const r = parseNetwork({ key, value });
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.problem.key).toBe(key);
      expect(r.problem.problem).toMatch(problem);
    }
  });

  it("validates nested and list fields", () => {
    const ns = parseNamespace({
      key: "k",
      value: JSON.stringify({
        schemaVersion: 1,
        network: "red",
        name: "a",
        vni: 5000,
        sources: ["pod", "x"],
        createdAt: "t",
      }),
    });
    expect(ns.ok ? "" : ns.problem.problem).toMatch(
      /field "sources" must be a list of builtin, dctl, pod, kubernetes/,
    );
    const addr = parseAddress({
      key: "k",
      value: JSON.stringify({
        schemaVersion: 1,
        network: "red",
        ip: "172.30.0.2",
        block: "172.30.0.0/24",
        node: "n1",
        owner: { namespace: "a", pod: 3, containerId: "c", ifname: "eth0" },
        allocatedAt: "t",
      }),
    });
    expect(addr.ok ? "" : addr.problem.problem).toMatch(/field "owner.pod" must be a string/);
    const ep = parseEndpoint({ key: "k", value: JSON.stringify({ schemaVersion: 1 }) });
    expect(ep.ok).toBe(false);
  });

  it("keeps optional node fields optional", () => {
    const r = parseNode({
      key: "k",
      value: JSON.stringify({ schemaVersion: 1, name: "n1", underlayIp: "10.0.0.1", registeredAt: "t" }),
    });
    expect(r.ok && r.value.managementCidr).toBe(undefined);
    const bad = parseNode({
      key: "k",
      value: JSON.stringify({
        schemaVersion: 1,
        name: "n1",
        underlayIp: "10.0.0.1",
        registeredAt: "t",
        managementCidr: 5,
      }),
    });
    expect(bad.ok).toBe(false);
  });

  it("reads a node's reported offloads, known names only", () => {
    const node = { schemaVersion: 1, name: "n1", underlayIp: "10.0.0.1", registeredAt: "t" };
    const r = parseNode({ key: "k", value: JSON.stringify({ ...node, offloads: ["tso", "udp-gro"] }) });
    expect(r.ok && r.value.offloads).toEqual(["tso", "udp-gro"]);
    const bad = parseNode({ key: "k", value: JSON.stringify({ ...node, offloads: ["warp-drive"] }) });
    expect(bad.ok).toBe(false);
    expect(!bad.ok && bad.problem.problem).toContain("offloads");
  });

  it("reads a node's reported poll window bound; a record without one has none", () => {
    const node = { schemaVersion: 1, name: "n1", underlayIp: "10.0.0.1", registeredAt: "t" };
    const r = parseNode({ key: "k", value: JSON.stringify({ ...node, pollUs: 100 }) });
    expect(r.ok && r.value.pollUs).toBe(100);
    const none = parseNode({ key: "k", value: JSON.stringify(node) });
    expect(none.ok && none.value.pollUs).toBeUndefined();
    expect(parseNode({ key: "k", value: JSON.stringify({ ...node, pollUs: -1 }) }).ok).toBe(false);
  });
});

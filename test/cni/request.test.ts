import { describe, expect, it } from "vitest";
import { CniError } from "../../src/cni/errors.js";
import { ENDPOINT_ANNOTATION, endpointRequest } from "../../src/cni/request.js";

function failure(fn: () => unknown): { code: number; msg: string } {
  try {
    fn();
  } catch (err) {
    if (err instanceof CniError) return { code: err.code, msg: err.message };
    throw err;
  }
  throw new Error("expected a CniError");
}

const viaArgs = (value: unknown): Record<string, unknown> => ({
  args: { cni: { annotations: { [ENDPOINT_ANNOTATION]: value } } },
});

describe("endpointRequest", () => {
  it("reads the annotation from args.cni.annotations", () => {
    expect(endpointRequest(viaArgs('{ "network": "red", "perfTier": "best-effort" }'))).toEqual({
      network: "red",
      perfTier: "best-effort",
      annotationsGiven: true,
    });
  });

  it("reads runtimeConfig.annotations and containerd's pod-annotations", () => {
    expect(
      endpointRequest({ runtimeConfig: { annotations: { [ENDPOINT_ANNOTATION]: '{"network":"blue"}' } } }),
    ).toEqual({ network: "blue", annotationsGiven: true });
    expect(
      endpointRequest({
        runtimeConfig: {
          "io.kubernetes.cri.pod-annotations": { [ENDPOINT_ANNOTATION]: '{"perfTier":"high"}' },
        },
      }),
    ).toEqual({ perfTier: "high", annotationsGiven: true });
  });

  it("prefers args.cni.annotations over runtimeConfig", () => {
    expect(
      endpointRequest({
        ...viaArgs('{"network":"red"}'),
        runtimeConfig: { annotations: { [ENDPOINT_ANNOTATION]: '{"network":"blue"}' } },
      }),
    ).toEqual({ network: "red", annotationsGiven: true });
  });

  it("gives nothing when the annotation is absent, so the agent applies its defaults", () => {
    expect(endpointRequest({ args: { cni: { annotations: { other: "x" } } } })).toEqual({
      annotationsGiven: true,
    });
    expect(endpointRequest(viaArgs("{}"))).toEqual({ annotationsGiven: true });
  });

  it("says when the runtime passed no annotations at all, so the agent may ask the Kubernetes API", () => {
    expect(endpointRequest({})).toEqual({ annotationsGiven: false });
    expect(endpointRequest({ runtimeConfig: { portMappings: [] } })).toEqual({ annotationsGiven: false });
    expect(endpointRequest({ runtimeConfig: { "io.kubernetes.cri.pod-annotations": {} } })).toEqual({
      annotationsGiven: true,
    });
  });

  it.each([
    ["not JSON", "{network: red}", "not valid JSON"],
    ["an array", '["red"]', "not a JSON object"],
    ["a number network", '{"network": 5}', '"network" must be a non-empty string'],
    ["an empty tier", '{"perfTier": ""}', '"perfTier" must be a non-empty string'],
    ["a misspelt key", '{"perftier": "high"}', 'unknown key "perftier"'],
    ["a non-string value", { network: "red" }, "not a JSON string"],
  ])("refuses %s with code 7 naming the annotation", (_what, value, why) => {
    const e = failure(() => endpointRequest(viaArgs(value)));
    expect(e.code).toBe(7);
    expect(e.msg).toContain(ENDPOINT_ANNOTATION);
    expect(e.msg).toContain("args.cni.annotations");
    expect(e.msg).toContain(why);
  });

  it("names runtimeConfig when the bad annotation is there", () => {
    const e = failure(() =>
      endpointRequest({ runtimeConfig: { annotations: { [ENDPOINT_ANNOTATION]: "{" } } }),
    );
    expect(e.msg).toContain("runtimeConfig.annotations");
  });

  it("refuses annotation containers that are not objects", () => {
    expect(failure(() => endpointRequest({ args: { cni: "x" } })).msg).toContain(
      "args.cni must be an object",
    );
    expect(failure(() => endpointRequest({ runtimeConfig: { annotations: [] } })).code).toBe(7);
  });
});

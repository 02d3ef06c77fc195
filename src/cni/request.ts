/**
 * The pod's request: the annotation `diamanti.com/endpoint0`, a JSON string such as
 * `{"network":"red","perfTier":"best-effort"}`. Runtimes hand pod annotations to plugins in one
 * of three places, read in this order:
 *   1. `args.cni.annotations` (the CNI "args" convention),
 *   2. `runtimeConfig.annotations`,
 *   3. `runtimeConfig["io.kubernetes.cri.pod-annotations"]` (containerd, when the configuration
 *      declares that capability).
 * No annotation means no network and no tier: the agent applies the default network and
 * `best-effort`, and fails clearly when there is no default network. No annotations at all (no
 * source present) lets the agent read the pod's from the Kubernetes API (src/agent/requests.ts).
 */
import { invalidConfig } from "./errors.js";
import { isObject, type JsonObject } from "./config.js";
import type { EndpointRequest } from "../agent/protocol.js";

export const ENDPOINT_ANNOTATION = "diamanti.com/endpoint0";
const CRI_POD_ANNOTATIONS = "io.kubernetes.cri.pod-annotations";
const FIELDS: readonly (keyof EndpointRequest)[] = ["network", "perfTier"];

interface Source {
  where: string;
  path: readonly string[];
}

const SOURCES: readonly Source[] = [
  { where: "args.cni.annotations", path: ["args", "cni", "annotations"] },
  { where: "runtimeConfig.annotations", path: ["runtimeConfig", "annotations"] },
  { where: `runtimeConfig["${CRI_POD_ANNOTATIONS}"]`, path: ["runtimeConfig", CRI_POD_ANNOTATIONS] },
];

/** Follows `path` through nested objects; a step that is present but not an object is an error. */
function lookup(raw: JsonObject, source: Source): JsonObject | undefined {
  let node: JsonObject = raw;
  for (let i = 0; i < source.path.length; i++) {
    const key = source.path[i] as string;
    const next = node[key];
    if (next === undefined || next === null) return undefined;
    if (!isObject(next)) {
      const at = source.path.slice(0, i + 1).join(".");
      throw invalidConfig(`network configuration: ${at} must be an object`);
    }
    node = next;
  }
  return node;
}

function malformed(where: string, why: string): never {
  throw invalidConfig(
    `annotation ${ENDPOINT_ANNOTATION} (in ${where}) is malformed: ${why}`,
    'expected a JSON object such as {"network":"red","perfTier":"best-effort"}',
  );
}

export function parseEndpointAnnotation(value: unknown, where: string): EndpointRequest {
  if (typeof value !== "string") malformed(where, `its value is a ${typeof value}, not a JSON string`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch (err) {
    malformed(where, `not valid JSON (${err instanceof Error ? err.message : String(err)})`);
  }
  if (!isObject(parsed)) malformed(where, "not a JSON object");
  const out: EndpointRequest = {};
  for (const [key, v] of Object.entries(parsed)) {
    const field = FIELDS.find((f) => f === key);
    // An unknown key is most likely a misspelt one ("perftier"): ignoring it would silently give
    // the pod the default instead of what was asked.
    if (field === undefined)
      malformed(where, `unknown key ${JSON.stringify(key)} (known: ${FIELDS.join(", ")})`);
    if (typeof v !== "string" || v === "") malformed(where, `"${field}" must be a non-empty string`);
    out[field] = v;
  }
  return out;
}

/**
 * The pod's request, and whether the runtime passed the pod's annotations at all: when it passed
 * none (`annotationsGiven` false), the agent may read them from the Kubernetes API instead.
 */
export function endpointRequest(raw: JsonObject): EndpointRequest & { annotationsGiven: boolean } {
  let annotationsGiven = false;
  for (const source of SOURCES) {
    const annotations = lookup(raw, source);
    if (annotations === undefined) continue;
    annotationsGiven = true;
    if (!(ENDPOINT_ANNOTATION in annotations)) continue;
    return { ...parseEndpointAnnotation(annotations[ENDPOINT_ANNOTATION], source.where), annotationsGiven };
  }
  return { annotationsGiven };
}

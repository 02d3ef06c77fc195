/**
 * The network configuration the runtime writes on stdin (CNI spec 1.1, "Network configuration").
 * Keys of this plugin: `socket` (the agent's unix socket, default `DEFAULT_AGENT_SOCKET`),
 * `timeoutMs` (how long to wait for the agent) and `namespace` (where pods go whose runtime
 * names no namespace, default `default`). Everything else the runtime adds (`args`,
 * `runtimeConfig`, `prevResult`, `cni.dev/valid-attachments`) is read where it is needed.
 */
import { isAbsolute } from "node:path";
import { ifNameProblem, isValidContainerId, type CniCommand } from "./args.js";
import { CniError, invalidConfig } from "./errors.js";
import { isDnsLabel } from "../model/names.js";
import { CNI_ERR, DEFAULT_AGENT_SOCKET, type AttachmentRef } from "../agent/protocol.js";

export const PLUGIN_TYPE = "overlay-cni";
export const CURRENT_VERSION = "1.1.0";
/**
 * The version to write in configurations (overlayd install-cni, docs/CNI.md): containerd 1.x and
 * podman 4 parse results only up to 1.0.0, and refuse every pod of a 1.1.0 configuration.
 */
export const DEFAULT_CONFIG_VERSION = "1.0.0";
/** Where pods go whose runtime names no namespace (no K8S_POD_NAMESPACE in CNI_ARGS). */
export const DEFAULT_POD_NAMESPACE = "default";
/**
 * 0.4.0 is the oldest version with the whole ADD/CHECK/DEL lifecycle, and its result differs
 * from 1.x only by `ips[].version`; older versions have no CHECK and are not offered.
 */
export const SUPPORTED_VERSIONS = ["0.4.0", "1.0.0", "1.1.0"] as const;
export type CniVersion = (typeof SUPPORTED_VERSIONS)[number];

/** Above the agent's own store timeouts, so that its clearer error arrives first. */
export const DEFAULT_TIMEOUT_MS = 30_000;
export const MAX_TIMEOUT_MS = 300_000;
/** sun_path holds 108 bytes including the terminating NUL. */
const MAX_SOCKET_PATH_BYTES = 107;
/** The spec's rule for network names. */
const NETWORK_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
export const VALID_ATTACHMENTS_KEY = "cni.dev/valid-attachments";

export type JsonObject = Record<string, unknown>;

export interface NetConf {
  cniVersion: CniVersion;
  name: string;
  type: typeof PLUGIN_TYPE;
  socket: string;
  timeoutMs: number;
  /** The namespace of pods whose runtime names none (podman and other runtimes without Kubernetes). */
  namespace: string;
  /** The whole object as given, for keys read elsewhere (`args`, `runtimeConfig`). */
  raw: JsonObject;
}

export function isObject(v: unknown): v is JsonObject {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function isSupported(v: unknown): v is CniVersion {
  return SUPPORTED_VERSIONS.some((s) => s === v);
}

/** Stdin as JSON: unreadable JSON is code 6 (decode failure), JSON that is no object code 7. */
export function decodeConfig(stdin: string): JsonObject {
  let parsed: unknown;
  try {
    parsed = JSON.parse(stdin);
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    const what = stdin.trim() === "" ? "stdin is empty" : "stdin is not valid JSON";
    throw new CniError(CNI_ERR.decodeError, `network configuration: ${what}`, why);
  }
  if (!isObject(parsed)) throw invalidConfig("network configuration: stdin must hold a JSON object");
  return parsed;
}

/** The version to answer with: the request's when this plugin speaks it, else its own. */
export function replyVersion(raw: JsonObject | undefined): CniVersion {
  const v = raw?.["cniVersion"];
  return isSupported(v) ? v : CURRENT_VERSION;
}

/** True when `a` is the same version as `b` or a later one (both dotted triples). */
export function versionAtLeast(a: string, b: string): boolean {
  const pa = a.split(".").map(Number);
  const pb = b.split(".").map(Number);
  for (let i = 0; i < 3; i++) {
    const x = pa[i] ?? 0;
    const y = pb[i] ?? 0;
    if (x !== y) return x > y;
  }
  return true;
}

const SINCE: Partial<Record<CniCommand, string>> = { CHECK: "0.4.0", STATUS: "1.1.0", GC: "1.1.0" };

export function parseConfig(raw: JsonObject, command: CniCommand): NetConf {
  const version = raw["cniVersion"];
  if (version === undefined) throw invalidConfig("network configuration: cniVersion is missing");
  if (!isSupported(version)) {
    throw new CniError(
      CNI_ERR.incompatibleVersion,
      `network configuration: cniVersion ${JSON.stringify(version)} is not supported`,
      `supported versions: ${SUPPORTED_VERSIONS.join(", ")}`,
    );
  }
  const since = SINCE[command];
  if (since !== undefined && !versionAtLeast(version, since)) {
    throw new CniError(
      CNI_ERR.incompatibleVersion,
      `${command} needs cniVersion ${since} or later, the configuration has ${version}`,
    );
  }

  const name = raw["name"];
  if (typeof name !== "string" || name === "") {
    throw invalidConfig("network configuration: name is missing or not a string");
  }
  if (!NETWORK_NAME.test(name)) {
    throw invalidConfig(
      `network configuration: name ${JSON.stringify(name)} is invalid`,
      "it must start with a letter or digit and contain only letters, digits, '_', '.' and '-'",
    );
  }

  const type = raw["type"];
  if (type !== PLUGIN_TYPE) {
    throw invalidConfig(
      `network configuration: type is ${JSON.stringify(type)}, this plugin is ${JSON.stringify(PLUGIN_TYPE)}`,
    );
  }

  return {
    cniVersion: version,
    name,
    type: PLUGIN_TYPE,
    socket: socketOf(raw),
    timeoutMs: timeoutOf(raw),
    namespace: namespaceOf(raw),
    raw,
  };
}

function namespaceOf(raw: JsonObject): string {
  const ns = raw["namespace"];
  if (ns === undefined) return DEFAULT_POD_NAMESPACE;
  if (typeof ns !== "string" || !isDnsLabel(ns)) {
    throw invalidConfig(
      `network configuration: namespace must be a namespace name, got ${JSON.stringify(ns)}`,
      "1-63 lowercase letters, digits and '-', starting and ending with a letter or digit",
    );
  }
  return ns;
}

function socketOf(raw: JsonObject): string {
  const socket = raw["socket"];
  if (socket === undefined) return DEFAULT_AGENT_SOCKET;
  if (typeof socket !== "string" || !isAbsolute(socket)) {
    throw invalidConfig(
      `network configuration: socket must be an absolute path, got ${JSON.stringify(socket)}`,
    );
  }
  if (Buffer.byteLength(socket) > MAX_SOCKET_PATH_BYTES) {
    throw invalidConfig(
      `network configuration: socket path ${socket} is longer than ${MAX_SOCKET_PATH_BYTES} bytes`,
      "unix socket paths are limited by sun_path",
    );
  }
  return socket;
}

function timeoutOf(raw: JsonObject): number {
  const t = raw["timeoutMs"];
  if (t === undefined) return DEFAULT_TIMEOUT_MS;
  if (typeof t !== "number" || !Number.isInteger(t) || t < 1 || t > MAX_TIMEOUT_MS) {
    throw invalidConfig(
      `network configuration: timeoutMs must be an integer from 1 to ${MAX_TIMEOUT_MS}, got ${JSON.stringify(t)}`,
    );
  }
  return t;
}

/**
 * The runtime's list of attachments that still exist (GC). A missing or malformed list fails:
 * treating it as empty would release every attachment of the node.
 */
export function validAttachments(raw: JsonObject): AttachmentRef[] {
  const list = raw[VALID_ATTACHMENTS_KEY];
  if (!Array.isArray(list)) {
    throw invalidConfig(
      `network configuration: GC needs ${VALID_ATTACHMENTS_KEY} as a list`,
      "without it every attachment would look unused",
    );
  }
  return list.map((entry: unknown, i): AttachmentRef => {
    const where = `${VALID_ATTACHMENTS_KEY}[${i}]`;
    if (!isObject(entry)) throw invalidConfig(`network configuration: ${where} is not an object`);
    const containerId = entry["containerID"];
    const ifName = entry["ifname"];
    if (typeof containerId !== "string" || !isValidContainerId(containerId)) {
      throw invalidConfig(`network configuration: ${where}.containerID is missing or invalid`);
    }
    if (typeof ifName !== "string") throw invalidConfig(`network configuration: ${where}.ifname is missing`);
    const problem = ifNameProblem(ifName);
    if (problem !== undefined) {
      throw invalidConfig(
        `network configuration: ${where}.ifname ${JSON.stringify(ifName)} is invalid`,
        problem,
      );
    }
    return { containerId, ifName };
  });
}

/**
 * What the runtime puts in the environment (CNI spec 1.1, "Parameters"): CNI_COMMAND,
 * CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME, CNI_ARGS and CNI_PATH. Every variable a command needs
 * is checked here, so a bad call fails with code 4 naming the variable before anything else
 * happens.
 */
import { statSync } from "node:fs";
import { isAbsolute } from "node:path";
import { IFNAME_MAX } from "../dataplane/names.js";
import { isDnsLabel, isDnsSubdomain, isRuntimeName } from "../model/names.js";
import { invalidEnv } from "./errors.js";

export const COMMANDS = ["ADD", "DEL", "CHECK", "VERSION", "STATUS", "GC"] as const;
export type CniCommand = (typeof COMMANDS)[number];

export interface CniEnv {
  command: CniCommand;
  containerId?: string;
  netns?: string;
  ifName?: string;
  /** CNI_ARGS as key/value pairs (K8S_POD_NAMESPACE, K8S_POD_NAME, ...). */
  args: Record<string, string>;
  /** CNI_PATH, read for completeness: this plugin delegates to no other plugin. */
  path: string[];
}

export type Env = Readonly<Record<string, string | undefined>>;

type Variable = "CNI_CONTAINERID" | "CNI_NETNS" | "CNI_IFNAME";

/** What the spec requires per command; DEL may come without CNI_NETNS (the netns may be gone). */
const REQUIRED: Record<CniCommand, readonly Variable[]> = {
  ADD: ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"],
  CHECK: ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"],
  DEL: ["CNI_CONTAINERID", "CNI_IFNAME"],
  VERSION: [],
  STATUS: [],
  GC: [],
};

// The spec's rules (and libcni's): container IDs are at least one character, alphanumeric first,
// then alphanumerics, '_', '.', '-'; interface names fit IFNAMSIZ and hold no '/', ':' or space.
const CONTAINER_ID = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
const IFNAME_FORBIDDEN = /[/:\s]/;

function value(env: Env, name: string): string | undefined {
  const v = env[name];
  return v === undefined || v === "" ? undefined : v;
}

export function parseCommand(env: Env): CniCommand {
  const raw = value(env, "CNI_COMMAND");
  if (raw === undefined) throw invalidEnv("CNI_COMMAND is not set");
  const command = COMMANDS.find((c) => c === raw);
  if (command === undefined) {
    throw invalidEnv(`CNI_COMMAND=${raw} is not a CNI command`, `expected one of ${COMMANDS.join(", ")}`);
  }
  return command;
}

export function isValidContainerId(id: string): boolean {
  return CONTAINER_ID.test(id);
}

/** Why a name cannot be an interface name, or undefined when it can. */
export function ifNameProblem(name: string): string | undefined {
  if (name === "") return "it is empty";
  if (name.length > IFNAME_MAX) return `it is longer than ${IFNAME_MAX} characters`;
  if (name === "." || name === "..") return "'.' and '..' are not interface names";
  if (IFNAME_FORBIDDEN.test(name)) return "it contains '/', ':' or white space";
  return undefined;
}

export function validateContainerId(id: string): void {
  if (!isValidContainerId(id)) {
    throw invalidEnv(
      `CNI_CONTAINERID=${JSON.stringify(id)} is not a valid container ID`,
      "it must start with a letter or digit and contain only letters, digits, '_', '.' and '-'",
    );
  }
}

export function validateIfName(name: string): void {
  const problem = ifNameProblem(name);
  if (problem !== undefined) {
    throw invalidEnv(`CNI_IFNAME=${JSON.stringify(name)} is not a valid interface name`, problem);
  }
}

/** `K=V;K=V` as runtimes send it; empty segments (a trailing ';') are tolerated. */
export function parseCniArgs(raw: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (raw === undefined || raw === "") return out;
  for (const pair of raw.split(";")) {
    if (pair === "") continue;
    const eq = pair.indexOf("=");
    if (eq <= 0) throw invalidEnv(`CNI_ARGS has an invalid pair ${JSON.stringify(pair)}`, "expected K=V");
    out[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return out;
}

export function parseEnv(env: Env): CniEnv {
  const command = parseCommand(env);
  for (const name of REQUIRED[command]) {
    if (value(env, name) === undefined) throw invalidEnv(`${name} is required for ${command} but is not set`);
  }
  const out: CniEnv = {
    command,
    args: parseCniArgs(env["CNI_ARGS"]),
    path: (env["CNI_PATH"] ?? "").split(":").filter((p) => p !== ""),
  };
  const containerId = value(env, "CNI_CONTAINERID");
  const ifName = value(env, "CNI_IFNAME");
  const netns = value(env, "CNI_NETNS");
  if (containerId !== undefined) {
    validateContainerId(containerId);
    out.containerId = containerId;
  }
  if (ifName !== undefined) {
    validateIfName(ifName);
    out.ifName = ifName;
  }
  if (netns !== undefined) out.netns = netns;
  return out;
}

/**
 * ADD and CHECK enter the netns, so a path that is relative (the agent's working directory is
 * not the runtime's) or absent is refused here, with code 4: the faulty value is an environment
 * variable, not the network configuration (which code 7 is about).
 */
export function requireNetns(netns: string): void {
  if (!isAbsolute(netns)) throw invalidEnv(`CNI_NETNS=${netns} is not an absolute path`);
  try {
    statSync(netns);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? "error";
    const why = code === "ENOENT" ? "does not exist" : `cannot be read (${code})`;
    throw invalidEnv(`CNI_NETNS=${netns} ${why}`, "the pod's network namespace must exist for ADD and CHECK");
  }
}

export interface PodRef {
  podNamespace: string;
  podName: string;
  /** The runtime named the namespace (K8S_POD_NAMESPACE): a Kubernetes pod, known to the API. */
  kubernetesPod: boolean;
}

/** Where a pod without K8S_POD_NAMESPACE goes: the configuration's namespace, named by its container. */
export interface PodDefaults {
  /** The network configuration's `namespace` (config.ts, default "default"). */
  namespace: string;
  /** CNI_CONTAINERID, the pod's name when the runtime gives none. */
  containerId: string;
}

/**
 * The pod's namespace and name. The namespace decides the pod's VNI, so it is never guessed:
 * - with K8S_POD_NAMESPACE in CNI_ARGS (kubelet's runtimes), a Kubernetes pod: K8S_POD_NAMESPACE
 *   and K8S_POD_NAME, both required, in Kubernetes' own shapes;
 * - without it (podman and other runtimes without Kubernetes), the namespace the network
 *   configuration names (`defaults.namespace`), and the pod's name as the runtime gives it:
 *   K8S_POD_NAME as it is (podman passes the container's name there, `_` and capitals
 *   included), else the container ID. Without `defaults` such a call fails with code 4.
 */
export function podRef(args: Record<string, string>, defaults?: PodDefaults): PodRef {
  const podNamespace = args["K8S_POD_NAMESPACE"];
  const podName = args["K8S_POD_NAME"];
  if (podNamespace === undefined || podNamespace === "") {
    if (defaults === undefined) {
      throw invalidEnv("CNI_ARGS lacks K8S_POD_NAMESPACE", "the pod's namespace decides its VNI");
    }
    const name = podName === undefined || podName === "" ? defaults.containerId : podName;
    if (!isRuntimeName(name)) {
      throw invalidEnv(
        `CNI_ARGS has an invalid K8S_POD_NAME=${JSON.stringify(name)}`,
        "a container name: 1-253 letters, digits, '_', '.' and '-', starting with a letter or digit",
      );
    }
    return { podNamespace: defaults.namespace, podName: name, kubernetesPod: false };
  }
  if (podName === undefined || podName === "") throw invalidEnv("CNI_ARGS lacks K8S_POD_NAME");
  // Kubernetes' own shapes (model/names.ts): they become parts of store keys.
  if (!isDnsLabel(podNamespace)) {
    throw invalidEnv(`CNI_ARGS has an invalid K8S_POD_NAMESPACE=${JSON.stringify(podNamespace)}`);
  }
  if (!isDnsSubdomain(podName)) {
    throw invalidEnv(`CNI_ARGS has an invalid K8S_POD_NAME=${JSON.stringify(podName)}`);
  }
  return { podNamespace, podName, kubernetesPod: true };
}

/** DEL takes the pod's identity when the runtime still gives it, and does without otherwise. */
export function optionalPodRef(
  args: Record<string, string>,
  defaults?: PodDefaults,
): Partial<Omit<PodRef, "kubernetesPod">> {
  try {
    const { podNamespace, podName } = podRef(args, defaults);
    return { podNamespace, podName };
  } catch {
    return {};
  }
}

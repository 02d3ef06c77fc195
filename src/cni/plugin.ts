/**
 * One plugin invocation: environment and stdin in, what to print and the exit code out. Kept
 * apart from `main.ts` so that tests can run every command in-process.
 */
import { optionalPodRef, parseCommand, parseEnv, podRef, requireNetns, type Env } from "./args.js";
import { callAgent } from "./client.js";
import {
  decodeConfig,
  parseConfig,
  replyVersion,
  validAttachments,
  type JsonObject,
  type NetConf,
} from "./config.js";
import { asCniError, CniError } from "./errors.js";
import { netnsExists } from "../agent/plumbing.js";
import { CNI_ERR, type AgentError, type AgentRequest, type AgentResponse } from "../agent/protocol.js";
import { endpointRequest } from "./request.js";
import { formatError, formatResult, prevResultMismatch, versionInfo } from "./result.js";

export interface Outcome {
  /** Exactly what goes to stdout (empty for commands that print nothing on success). */
  stdout: string;
  exitCode: number;
}

/** Seams for tests; production uses the real agent client. */
export interface PluginDeps {
  callAgent: (socket: string, request: AgentRequest, timeoutMs: number) => Promise<AgentResponse>;
}

const DEFAULT_DEPS: PluginDeps = { callAgent };

function fromAgent(error: AgentError): CniError {
  return new CniError(error.code, error.msg, error.details);
}

function required(value: string | undefined, name: string): string {
  // parseEnv has checked the command's variables; this only narrows the type.
  if (value === undefined) throw new CniError(CNI_ERR.invalidEnv, `${name} is not set`);
  return value;
}

async function ask(deps: PluginDeps, conf: NetConf, request: AgentRequest): Promise<AgentResponse> {
  return deps.callAgent(conf.socket, request, conf.timeoutMs);
}

/** ADD and CHECK name the same things: the container, its namespace, the pod and its request. */
async function attach(
  deps: PluginDeps,
  env: Env,
  conf: NetConf,
  op: "ADD" | "CHECK",
): Promise<AgentResponse> {
  const e = parseEnv(env);
  const netns = required(e.netns, "CNI_NETNS");
  requireNetns(netns);
  const containerId = required(e.containerId, "CNI_CONTAINERID");
  const response = await ask(deps, conf, {
    op,
    containerId,
    netns,
    ifName: required(e.ifName, "CNI_IFNAME"),
    ...podRef(e.args, { namespace: conf.namespace, containerId }),
    ...endpointRequest(conf.raw),
  });
  if (!response.ok) throw fromAgent(response.error);
  return response;
}

async function add(deps: PluginDeps, env: Env, conf: NetConf): Promise<string> {
  const response = await attach(deps, env, conf, "ADD");
  if (!response.ok || response.result === undefined) {
    throw new CniError(CNI_ERR.decodeError, `overlay agent at ${conf.socket} answered ADD without a result`);
  }
  return JSON.stringify(formatResult(conf.cniVersion, response.result));
}

/** The agent checks the pod's side; this compares its answer with the runtime's prevResult. */
async function check(deps: PluginDeps, env: Env, conf: NetConf): Promise<void> {
  const response = await attach(deps, env, conf, "CHECK");
  if (!response.ok || response.result === undefined) return;
  const ifName = required(parseEnv(env).ifName, "CNI_IFNAME");
  const mismatch = prevResultMismatch(conf.raw.prevResult, ifName, response.result);
  if (mismatch !== undefined) {
    throw new CniError(CNI_ERR.attachmentMismatch, "attachment differs from prevResult", mismatch);
  }
}

/**
 * DEL succeeds when there is nothing left to delete: no netns (or one already gone, which is
 * then not passed on) and an attachment the agent does not know. An unreachable agent is an
 * error, though: the address may still be held, and the runtime retries a failed DEL.
 */
async function del(deps: PluginDeps, env: Env, conf: NetConf): Promise<void> {
  const e = parseEnv(env);
  const request: AgentRequest = {
    op: "DEL",
    containerId: required(e.containerId, "CNI_CONTAINERID"),
    ifName: required(e.ifName, "CNI_IFNAME"),
    ...optionalPodRef(e.args),
  };
  if (e.netns !== undefined && netnsExists(e.netns)) request.netns = e.netns;
  const response = await ask(deps, conf, request);
  if (!response.ok && response.error.code !== CNI_ERR.unknownContainer) throw fromAgent(response.error);
}

/** STATUS speaks only codes 50 and 51 to the runtime; anything else means "cannot serve ADD". */
async function status(deps: PluginDeps, env: Env, conf: NetConf): Promise<void> {
  parseEnv(env);
  let response: AgentResponse;
  try {
    response = await ask(deps, conf, { op: "STATUS" });
  } catch (err) {
    const e = asCniError(err);
    throw new CniError(CNI_ERR.notAvailable, e.message, e.details);
  }
  if (response.ok) return;
  const { code, msg, details } = response.error;
  if (code === CNI_ERR.notAvailable || code === CNI_ERR.limitedConnectivity) throw fromAgent(response.error);
  const why = details === undefined ? `agent error ${code}` : `agent error ${code}: ${details}`;
  throw new CniError(CNI_ERR.notAvailable, msg, why);
}

async function gc(deps: PluginDeps, env: Env, conf: NetConf): Promise<void> {
  parseEnv(env);
  const response = await ask(deps, conf, { op: "GC", valid: validAttachments(conf.raw) });
  if (!response.ok) throw fromAgent(response.error);
}

function tryDecode(stdin: string): JsonObject | undefined {
  try {
    return decodeConfig(stdin);
  } catch {
    return undefined;
  }
}

export async function runPlugin(env: Env, stdin: string, deps: PluginDeps = DEFAULT_DEPS): Promise<Outcome> {
  const version = replyVersion(tryDecode(stdin));
  try {
    const command = parseCommand(env);
    // VERSION answers whatever stdin holds: runtimes call it to learn what to send.
    if (command === "VERSION") return { stdout: `${JSON.stringify(versionInfo())}\n`, exitCode: 0 };
    const conf = parseConfig(decodeConfig(stdin), command);
    switch (command) {
      case "ADD":
        return { stdout: `${await add(deps, env, conf)}\n`, exitCode: 0 };
      case "CHECK":
        await check(deps, env, conf);
        break;
      case "DEL":
        await del(deps, env, conf);
        break;
      case "STATUS":
        await status(deps, env, conf);
        break;
      case "GC":
        await gc(deps, env, conf);
        break;
    }
    return { stdout: "", exitCode: 0 };
  } catch (err) {
    return { stdout: `${JSON.stringify(formatError(version, asCniError(err)))}\n`, exitCode: 1 };
  }
}

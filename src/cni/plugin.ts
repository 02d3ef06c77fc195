/**
 * One plugin invocation, in the agent: the runtime's raw call in (CNI_* variables and stdin as
 * the `overlay-cni` shim forwarded them), what the plugin prints and its exit code out. Every
 * check, the version negotiation, the pod's annotation, the result and the error JSON happen
 * here; the typed request goes to the agent's handlers (requests.ts) in-process.
 */
import { optionalPodRef, parseCommand, parseEnv, podRef, requireNetns, type Env } from "./args.js";
import {
  CURRENT_VERSION,
  decodeConfig,
  parseConfig,
  replyVersion,
  validAttachments,
  type CniVersion,
  type JsonObject,
  type NetConf,
} from "./config.js";
import { asCniError, CniError, INTERNAL_ERROR } from "./errors.js";
import { envText, stdinText } from "./input.js";
import { netnsExists } from "../agent/plumbing.js";
import {
  CNI_ERR,
  type AgentError,
  type AgentRequest,
  type AgentResponse,
  type CniCall,
  type CniReply,
} from "../agent/protocol.js";
import { endpointRequest } from "./request.js";
import { exitCodeFor, formatError, formatResult, prevResultMismatch, versionInfo } from "./result.js";

/** What the CNI layer needs of the agent: its request handlers. */
export interface PluginDeps {
  handle: (request: AgentRequest) => Promise<AgentResponse>;
}

function fromAgent(error: AgentError): CniError {
  return new CniError(error.code, error.msg, error.details);
}

function required(value: string | undefined, name: string): string {
  // parseEnv has checked the command's variables; this only narrows the type.
  if (value === undefined) throw new CniError(CNI_ERR.invalidEnv, `${name} is not set`);
  return value;
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
  const response = await deps.handle({
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
    throw new CniError(INTERNAL_ERROR, "internal error: the agent answered ADD without a result");
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
 * then not passed on) and an attachment the agent does not know. (An agent the plugin cannot
 * reach is an error, code 11, answered by the plugin: the address may still be held, and the
 * runtime retries a failed DEL.)
 */
async function del(deps: PluginDeps, env: Env): Promise<void> {
  const e = parseEnv(env);
  const request: AgentRequest = {
    op: "DEL",
    containerId: required(e.containerId, "CNI_CONTAINERID"),
    ifName: required(e.ifName, "CNI_IFNAME"),
    ...optionalPodRef(e.args),
  };
  if (e.netns !== undefined && netnsExists(e.netns)) request.netns = e.netns;
  const response = await deps.handle(request);
  if (!response.ok && response.error.code !== CNI_ERR.unknownContainer) throw fromAgent(response.error);
}

/** STATUS speaks only codes 50 and 51 to the runtime; anything else means "cannot serve ADD". */
async function status(deps: PluginDeps, env: Env): Promise<void> {
  parseEnv(env);
  let response: AgentResponse;
  try {
    response = await deps.handle({ op: "STATUS" });
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
  const response = await deps.handle({ op: "GC", valid: validAttachments(conf.raw) });
  if (!response.ok) throw fromAgent(response.error);
}

function tryDecode(stdin: string): JsonObject | undefined {
  try {
    return decodeConfig(stdin);
  } catch {
    return undefined;
  }
}

/** The error JSON for `err`, in `version`, and its exit status (exitCodeFor). */
export function errorReply(version: CniVersion, err: CniError): CniReply {
  return { stdout: `${JSON.stringify(formatError(version, err))}\n`, exitCode: exitCodeFor(err.code) };
}

export async function runPlugin(call: CniCall, deps: PluginDeps): Promise<CniReply> {
  let version: CniVersion = CURRENT_VERSION;
  try {
    let stdin: string | CniError;
    try {
      stdin = stdinText(call.stdin);
      version = replyVersion(tryDecode(stdin));
    } catch (err) {
      stdin = asCniError(err);
    }
    const env = envText(call.env);
    const command = parseCommand(env);
    // VERSION answers whatever stdin holds: runtimes call it to learn what to send.
    if (command === "VERSION") return { stdout: `${JSON.stringify(versionInfo())}\n`, exitCode: 0 };
    if (stdin instanceof CniError) throw stdin;
    const conf = parseConfig(decodeConfig(stdin), command);
    switch (command) {
      case "ADD":
        return { stdout: `${await add(deps, env, conf)}\n`, exitCode: 0 };
      case "CHECK":
        await check(deps, env, conf);
        break;
      case "DEL":
        await del(deps, env);
        break;
      case "STATUS":
        await status(deps, env);
        break;
      case "GC":
        await gc(deps, env, conf);
        break;
    }
    return { stdout: "", exitCode: 0 };
  } catch (err) {
    return errorReply(version, asCniError(err));
  }
}

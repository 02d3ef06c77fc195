/**
 * The agent's client: one connection per request, the request as one JSON line, the answer as
 * one JSON line (see `src/agent/protocol.ts`). Every call is bounded by a timeout that covers connecting,
 * writing and waiting, so a stuck agent never holds the runtime up for longer than configured.
 */
import { createConnection } from "node:net";
import { CniError } from "./errors.js";
import { isObject } from "./config.js";
import {
  CNI_ERR,
  type AgentError,
  type AgentRequest,
  type AgentResponse,
  type AttachmentResult,
} from "../agent/protocol.js";

/** Far above any real answer; only a broken peer gets near it. */
const MAX_RESPONSE_BYTES = 1 << 20;

function unreachable(socket: string, why: string, details?: string): CniError {
  return new CniError(CNI_ERR.agentUnreachable, `overlay agent at ${socket} ${why}`, details);
}

/** What a failed connection means to whoever reads the runtime's events. */
function explain(socket: string, err: NodeJS.ErrnoException): CniError {
  switch (err.code) {
    case "ENOENT":
      return unreachable(
        socket,
        "is unreachable: the socket does not exist",
        "is overlayd running on this node?",
      );
    case "ECONNREFUSED":
      return unreachable(
        socket,
        "is unreachable: connection refused",
        "the socket file exists but nothing listens on it (overlayd stopped or is restarting)",
      );
    case "EACCES":
    case "EPERM":
      return unreachable(socket, "is unreachable: permission denied", "the agent's socket is for root only");
    case "ENOTSOCK":
      return unreachable(socket, "is unreachable: the path is not a socket");
    default:
      return unreachable(socket, `is unreachable: ${err.message}`);
  }
}

function invalidResponse(socket: string, why: string, line: string): CniError {
  const excerpt = line.length > 200 ? `${line.slice(0, 200)}...` : line;
  return new CniError(
    CNI_ERR.decodeError,
    `overlay agent at ${socket} sent an invalid response: ${why}`,
    excerpt,
  );
}

function isString(v: unknown): v is string {
  return typeof v === "string";
}

function isAgentError(v: unknown): v is AgentError {
  return (
    isObject(v) &&
    Number.isInteger(v["code"]) &&
    isString(v["msg"]) &&
    (v["details"] === undefined || isString(v["details"]))
  );
}

function isAttachmentResult(v: unknown): v is AttachmentResult {
  if (!isObject(v)) return false;
  const { interfaces, ips, routes, dns } = v;
  return (
    Array.isArray(interfaces) &&
    interfaces.every(
      (i: unknown) =>
        isObject(i) &&
        isString(i["name"]) &&
        isString(i["mac"]) &&
        isString(i["sandbox"]) &&
        typeof i["mtu"] === "number",
    ) &&
    Array.isArray(ips) &&
    ips.every(
      (ip: unknown) =>
        isObject(ip) &&
        isString(ip["address"]) &&
        isString(ip["gateway"]) &&
        Number.isInteger(ip["interface"]),
    ) &&
    Array.isArray(routes) &&
    routes.every((r: unknown) => isObject(r) && isString(r["dst"]) && isString(r["gw"])) &&
    (dns === undefined || isObject(dns))
  );
}

export function decodeResponse(socket: string, line: string): AgentResponse {
  let parsed: unknown;
  try {
    parsed = JSON.parse(line);
  } catch {
    throw invalidResponse(socket, "not JSON", line);
  }
  if (!isObject(parsed)) throw invalidResponse(socket, "not a JSON object", line);
  if (parsed["ok"] === true) {
    const result = parsed["result"];
    if (result === undefined) return { ok: true };
    if (!isAttachmentResult(result)) throw invalidResponse(socket, "malformed result", line);
    return { ok: true, result };
  }
  if (parsed["ok"] === false) {
    const error = parsed["error"];
    if (!isAgentError(error)) throw invalidResponse(socket, "malformed error", line);
    return { ok: false, error };
  }
  throw invalidResponse(socket, '"ok" is neither true nor false', line);
}

export function callAgent(socket: string, request: AgentRequest, timeoutMs: number): Promise<AgentResponse> {
  return new Promise((resolve, reject) => {
    const conn = createConnection({ path: socket });
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;

    const finish = (outcome: { response: AgentResponse } | { error: CniError }): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      conn.destroy();
      if ("response" in outcome) resolve(outcome.response);
      else reject(outcome.error);
    };

    const timer = setTimeout(() => {
      finish({
        error: unreachable(
          socket,
          `did not answer ${request.op} within ${timeoutMs} ms`,
          "the agent may be overloaded or waiting for the cluster store; timeoutMs in the network configuration sets this bound",
        ),
      });
    }, timeoutMs);

    conn.on("connect", () => {
      // No half-close after the request: the agent answers on this same connection.
      conn.write(`${JSON.stringify(request)}\n`);
    });
    conn.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_RESPONSE_BYTES) {
        finish({ error: invalidResponse(socket, `longer than ${MAX_RESPONSE_BYTES} bytes`, "") });
        return;
      }
      chunks.push(chunk);
      const text = Buffer.concat(chunks).toString("utf8");
      const nl = text.indexOf("\n");
      if (nl < 0) return;
      try {
        finish({ response: decodeResponse(socket, text.slice(0, nl)) });
      } catch (err) {
        finish({ error: err as CniError });
      }
    });
    conn.on("end", () => {
      const text = Buffer.concat(chunks).toString("utf8").trim();
      if (text === "") {
        finish({ error: unreachable(socket, `closed the connection without answering ${request.op}`) });
        return;
      }
      // A last line without its newline is still a whole answer.
      try {
        finish({ response: decodeResponse(socket, text) });
      } catch (err) {
        finish({ error: err as CniError });
      }
    });
    conn.on("error", (err: NodeJS.ErrnoException) => {
      if (err.code === "ECONNRESET" || err.code === "EPIPE") {
        finish({
          error: unreachable(socket, `closed the connection without answering ${request.op}`, err.code),
        });
      } else {
        finish({ error: explain(socket, err) });
      }
    });
  });
}

/**
 * The agent's unix socket, served to the `overlay-cni` plugin: one framed request per
 * connection (the runtime's CNI_* variables and stdin, raw), one framed reply (what the plugin
 * prints and its exit code); the frames are described in protocol.ts. A request that is not the
 * protocol, is larger than its limits, or does not arrive whole in time gets a reply with CNI
 * error 6 (and the connection closes); the server goes on serving. The socket and its folder are
 * root's alone.
 */
import { chmodSync, mkdirSync, rmSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { dirname } from "node:path";
import { CURRENT_VERSION } from "../cni/config.js";
import { asCniError, CniError, INTERNAL_ERROR } from "../cni/errors.js";
import { errorReply } from "../cni/plugin.js";
import {
  CNI_ERR,
  MAX_ENV_BYTES,
  MAX_HEADER_BYTES,
  MAX_STDIN_BYTES,
  MAX_STDOUT_BYTES,
  WIRE_MAGIC,
  type CniCall,
  type CniReply,
} from "./protocol.js";

/** A plugin sends its whole request at once; a connection that does not is answered and closed. */
export const REQUEST_TIMEOUT_MS = 10_000;

export type CallHandler = (call: CniCall) => Promise<CniReply>;

interface RequestHeader {
  /** Bytes of the header line, its newline included. */
  headerBytes: number;
  envBytes: number;
  stdinBytes: number;
}

const DECIMAL = /^(0|[1-9][0-9]{0,9})$/;

/** The request header line (without its newline), or why it is not one. */
export function parseRequestHeader(line: string): Omit<RequestHeader, "headerBytes"> | string {
  const parts = line.split(" ");
  if (parts[0] !== WIRE_MAGIC || parts.length !== 3) {
    return `the request does not start with "${WIRE_MAGIC} <env bytes> <stdin bytes>" (is the plugin from the same build as overlayd?)`;
  }
  const [env, stdin] = [parts[1] as string, parts[2] as string];
  if (!DECIMAL.test(env) || !DECIMAL.test(stdin))
    return "the request header's lengths are not decimal numbers";
  const envBytes = Number(env);
  const stdinBytes = Number(stdin);
  if (envBytes > MAX_ENV_BYTES) {
    return `the CNI_* variables take ${envBytes} bytes, more than the ${MAX_ENV_BYTES} allowed`;
  }
  if (stdinBytes > MAX_STDIN_BYTES) {
    return `network configuration: stdin is longer than ${MAX_STDIN_BYTES} bytes (${stdinBytes})`;
  }
  return { envBytes, stdinBytes };
}

/** "NAME=value\0" entries; the first of a name counts, as getenv's does. */
export function parseEnvBlock(block: Buffer): CniCall["env"] | string {
  const env: CniCall["env"] = new Map();
  let start = 0;
  while (start < block.length) {
    const end = block.indexOf(0, start);
    if (end < 0) return "the last CNI_* variable is not terminated by a NUL byte";
    const entry = block.subarray(start, end);
    const eq = entry.indexOf(0x3d);
    if (eq <= 0) return `variable ${JSON.stringify(entry.toString("latin1"))} is not NAME=value`;
    const name = entry.subarray(0, eq).toString("latin1");
    if (!env.has(name)) env.set(name, entry.subarray(eq + 1));
    start = end + 1;
  }
  return env;
}

/** The reply frame; an answer over the limit (a bug) becomes an internal error. */
export function encodeReply(reply: CniReply): Buffer {
  let stdout = Buffer.from(reply.stdout, "utf8");
  if (stdout.length > MAX_STDOUT_BYTES) {
    const err = new CniError(
      INTERNAL_ERROR,
      `internal error: the answer is longer than ${MAX_STDOUT_BYTES} bytes`,
    );
    reply = errorReply(CURRENT_VERSION, err);
    stdout = Buffer.from(reply.stdout, "utf8");
  }
  const code =
    Number.isInteger(reply.exitCode) && reply.exitCode >= 0 && reply.exitCode <= 255 ? reply.exitCode : 1;
  return Buffer.concat([Buffer.from(`${WIRE_MAGIC} ${code} ${stdout.length}\n`, "latin1"), stdout]);
}

function refusal(msg: string): CniReply {
  return errorReply(CURRENT_VERSION, new CniError(CNI_ERR.decodeError, msg));
}

export class AgentServer {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();

  private readonly requestTimeoutMs: number;

  constructor(
    private readonly path: string,
    private readonly handle: CallHandler,
    options: { requestTimeoutMs?: number } = {},
  ) {
    this.requestTimeoutMs = options.requestTimeoutMs ?? REQUEST_TIMEOUT_MS;
  }

  async listen(): Promise<void> {
    mkdirSync(dirname(this.path), { recursive: true, mode: 0o700 });
    rmSync(this.path, { force: true });
    const server = createServer((sock) => this.serve(sock));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.path, () => resolve());
    });
    chmodSync(this.path, 0o600);
  }

  private serve(sock: Socket): void {
    this.sockets.add(sock);
    sock.on("close", () => this.sockets.delete(sock));
    sock.on("error", () => sock.destroy());
    let chunks: Buffer[] = [];
    let size = 0;
    let header: RequestHeader | undefined;
    let done = false;
    const timer = setTimeout(() => {
      if (!done) this.refuse(sock, `the request did not arrive whole within ${this.requestTimeoutMs} ms`);
      done = true;
    }, this.requestTimeoutMs);
    timer.unref();
    sock.on("close", () => clearTimeout(timer));
    const finish = (): void => {
      done = true;
      clearTimeout(timer);
    };

    // After a reply, whatever else the client sends is read and dropped until it closes.
    sock.on("data", (chunk: Buffer) => {
      if (done) return;
      chunks.push(chunk);
      size += chunk.length;
      if (header === undefined) {
        const all = Buffer.concat(chunks);
        chunks = [all];
        const nl = all.indexOf(0x0a);
        if (nl < 0 || nl >= MAX_HEADER_BYTES) {
          if (nl >= 0 || size >= MAX_HEADER_BYTES) {
            finish();
            this.refuse(
              sock,
              `the request has no "${WIRE_MAGIC}" header line in its first ${MAX_HEADER_BYTES} bytes`,
            );
          }
          return;
        }
        const parsed = parseRequestHeader(all.subarray(0, nl).toString("latin1"));
        if (typeof parsed === "string") {
          finish();
          this.refuse(sock, parsed);
          return;
        }
        header = { headerBytes: nl + 1, ...parsed };
      }
      const total = header.headerBytes + header.envBytes + header.stdinBytes;
      if (size < total) return;
      finish();
      const all = Buffer.concat(chunks);
      const env = parseEnvBlock(all.subarray(header.headerBytes, header.headerBytes + header.envBytes));
      if (typeof env === "string") {
        this.refuse(sock, env);
        return;
      }
      const stdin = all.subarray(header.headerBytes + header.envBytes, total);
      chunks = [];
      this.handle({ env, stdin }).then(
        (reply) => this.reply(sock, reply),
        (err: unknown) => this.reply(sock, errorReply(CURRENT_VERSION, asCniError(err))),
      );
    });
  }

  private refuse(sock: Socket, msg: string): void {
    this.reply(sock, refusal(msg));
  }

  private reply(sock: Socket, reply: CniReply): void {
    if (sock.destroyed) return;
    sock.end(encodeReply(reply));
    // The plugin closes once it has the reply; a client that does not is not kept for long.
    setTimeout(() => sock.destroy(), this.requestTimeoutMs).unref();
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    rmSync(this.path, { force: true });
  }
}

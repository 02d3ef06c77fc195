/**
 * The agent's unix socket, served to the CNI plugin: one JSON request line per connection, one
 * JSON response line (src/agent/protocol.ts). The socket and its folder are root's alone.
 */
import { chmodSync, mkdirSync, rmSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { dirname } from "node:path";
import { CNI_ERR, type AgentRequest, type AgentResponse } from "./protocol.js";

const MAX_REQUEST_BYTES = 1 << 20;

export type RequestHandler = (req: AgentRequest) => Promise<AgentResponse>;

function parseRequest(line: string): AgentRequest | string {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return "request is not JSON";
  }
  if (typeof v !== "object" || v === null) return "request is not an object";
  const op = (v as { op?: unknown }).op;
  const str = (k: string) => typeof (v as Record<string, unknown>)[k] === "string";
  switch (op) {
    case "ADD":
    case "CHECK":
      for (const k of ["containerId", "netns", "ifName", "podNamespace", "podName"]) {
        if (!str(k)) return `${op} needs ${k} (a string)`;
      }
      return v as AgentRequest;
    case "DEL":
      if (!str("containerId") || !str("ifName")) return "DEL needs containerId and ifName";
      return v as AgentRequest;
    case "STATUS":
      return v as AgentRequest;
    case "GC":
      if (!Array.isArray((v as { valid?: unknown }).valid)) return "GC needs valid (an array)";
      return v as AgentRequest;
    default:
      return `unknown op ${JSON.stringify(op)}`;
  }
}

export class AgentServer {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();

  constructor(
    private readonly path: string,
    private readonly handle: RequestHandler,
  ) {}

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
    let buf = "";
    let done = false;
    sock.setEncoding("utf8");
    sock.on("data", (chunk: string) => {
      if (done) return;
      buf += chunk;
      if (buf.length > MAX_REQUEST_BYTES) {
        done = true;
        this.reply(sock, { ok: false, error: { code: CNI_ERR.decodeError, msg: "request too large" } });
        return;
      }
      const nl = buf.indexOf("\n");
      if (nl < 0) return;
      done = true;
      const req = parseRequest(buf.slice(0, nl));
      if (typeof req === "string") {
        this.reply(sock, { ok: false, error: { code: CNI_ERR.decodeError, msg: req } });
        return;
      }
      this.handle(req).then(
        (res) => this.reply(sock, res),
        (err: unknown) =>
          this.reply(sock, {
            ok: false,
            error: { code: CNI_ERR.ioError, msg: err instanceof Error ? err.message : String(err) },
          }),
      );
    });
  }

  private reply(sock: Socket, res: AgentResponse): void {
    if (!sock.destroyed) sock.end(`${JSON.stringify(res)}\n`);
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    rmSync(this.path, { force: true });
  }
}

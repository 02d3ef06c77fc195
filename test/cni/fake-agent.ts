/**
 * A stand-in for overlayd's CNI socket: listens on a unix socket, records every request line,
 * and answers like the agent would (attachments kept in memory, DEL of an unknown attachment
 * answered with code 3). `behave` replaces the answer for the next requests: a scripted
 * response, silence (to test timeouts), a dropped connection, or bytes that are not the protocol.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  CNI_ERR,
  type AgentRequest,
  type AgentResponse,
  type AttachmentResult,
} from "../../src/agent/protocol.js";

export type Behaviour =
  | { kind: "normal" }
  | { kind: "respond"; response: AgentResponse }
  | { kind: "hang" }
  | { kind: "close" }
  | { kind: "raw"; text: string };

export function sampleResult(ifName: string, netns: string): AttachmentResult {
  return {
    interfaces: [{ name: ifName, mac: "0a:58:ac:1e:08:02", sandbox: netns, mtu: 1450 }],
    ips: [{ address: "172.30.8.2/16", gateway: "172.30.8.1", interface: 0 }],
    routes: [{ dst: "0.0.0.0/0", gw: "172.30.8.1" }],
    dns: {},
  };
}

export class FakeAgent {
  readonly dir: string;
  readonly socket: string;
  /** Every request as parsed, in arrival order. */
  readonly requests: AgentRequest[] = [];
  /** Every request line exactly as received (without its newline). */
  readonly lines: string[] = [];
  readonly attachments = new Map<string, AttachmentResult>();
  ready = true;
  behaviour: Behaviour = { kind: "normal" };
  private server: Server | undefined;
  private readonly open = new Set<Socket>();

  constructor() {
    this.dir = mkdtempSync(join(tmpdir(), "cni-fake-agent-"));
    this.socket = join(this.dir, "agent.sock");
  }

  behave(b: Behaviour): void {
    this.behaviour = b;
  }

  async start(): Promise<void> {
    const server = createServer((conn) => this.serve(conn));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.socket, () => resolve());
    });
  }

  async stop(): Promise<void> {
    for (const conn of this.open) conn.destroy();
    const server = this.server;
    this.server = undefined;
    if (server !== undefined) await new Promise<void>((resolve) => server.close(() => resolve()));
    rmSync(this.dir, { recursive: true, force: true });
  }

  private serve(conn: Socket): void {
    this.open.add(conn);
    conn.on("close", () => this.open.delete(conn));
    conn.on("error", () => undefined);
    let buf = "";
    conn.on("data", (chunk: Buffer) => {
      buf += chunk.toString("utf8");
      const nl = buf.indexOf("\n");
      if (nl < 0) return;
      const line = buf.slice(0, nl);
      this.lines.push(line);
      const request = JSON.parse(line) as AgentRequest;
      this.requests.push(request);
      const b = this.behaviour;
      switch (b.kind) {
        case "hang":
          return;
        case "close":
          conn.destroy();
          return;
        case "raw":
          conn.end(b.text);
          return;
        case "respond":
          conn.end(`${JSON.stringify(b.response)}\n`);
          return;
        case "normal":
          conn.end(`${JSON.stringify(this.answer(request))}\n`);
      }
    });
  }

  private answer(req: AgentRequest): AgentResponse {
    switch (req.op) {
      case "ADD": {
        const result = sampleResult(req.ifName, req.netns);
        this.attachments.set(`${req.containerId}/${req.ifName}`, result);
        return { ok: true, result };
      }
      case "CHECK": {
        const result = this.attachments.get(`${req.containerId}/${req.ifName}`);
        return result
          ? { ok: true, result }
          : { ok: false, error: { code: CNI_ERR.unknownContainer, msg: `no attachment ${req.containerId}` } };
      }
      case "DEL":
        return this.attachments.delete(`${req.containerId}/${req.ifName}`)
          ? { ok: true }
          : { ok: false, error: { code: CNI_ERR.unknownContainer, msg: `no attachment ${req.containerId}` } };
      case "STATUS":
        return this.ready
          ? { ok: true }
          : { ok: false, error: { code: CNI_ERR.notAvailable, msg: "tables not programmed yet" } };
      case "GC": {
        const keep = new Set(req.valid.map((v) => `${v.containerId}/${v.ifName}`));
        for (const key of [...this.attachments.keys()]) if (!keep.has(key)) this.attachments.delete(key);
        return { ok: true };
      }
    }
  }
}

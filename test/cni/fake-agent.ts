/**
 * The agent's socket with everything real but the request handlers: the real AgentServer (the
 * wire protocol) and the real CNI layer (src/cni/plugin.ts: configuration, annotations, results,
 * errors) in front of in-memory handlers standing in for requests.ts (attachments kept in a map,
 * DEL of an unknown attachment answered with code 3). `behave` replaces the handlers' answer for
 * the next requests: a scripted response, or silence (to test timeouts).
 *
 * `rawServer` is for what the real server never does (close without answering, send bytes that
 * are not the protocol).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runPlugin } from "../../src/cni/plugin.js";
import {
  CNI_ERR,
  type AgentRequest,
  type AgentResponse,
  type AttachmentResult,
  type CniCall,
} from "../../src/agent/protocol.js";
import { AgentServer } from "../../src/agent/server.js";

export type Behaviour = { kind: "normal" } | { kind: "respond"; response: AgentResponse } | { kind: "hang" };

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
  /** Every call as it arrived on the socket: the plugin's CNI_* variables and stdin, raw. */
  readonly calls: CniCall[] = [];
  /** Every request the CNI layer made of the handlers, in arrival order. */
  readonly requests: AgentRequest[] = [];
  readonly attachments = new Map<string, AttachmentResult>();
  ready = true;
  behaviour: Behaviour = { kind: "normal" };
  private server: AgentServer | undefined;

  constructor(options: { requestTimeoutMs?: number } = {}) {
    this.dir = mkdtempSync(join(tmpdir(), "cni-fake-agent-"));
    this.socket = join(this.dir, "agent.sock");
    this.requestTimeoutMs = options.requestTimeoutMs;
  }

  private readonly requestTimeoutMs: number | undefined;

  behave(b: Behaviour): void {
    this.behaviour = b;
  }

  async start(): Promise<void> {
    const server = new AgentServer(
      this.socket,
      (call) => {
        this.calls.push(call);
        return runPlugin(call, { handle: (req) => this.handle(req) });
      },
      this.requestTimeoutMs === undefined ? {} : { requestTimeoutMs: this.requestTimeoutMs },
    );
    await server.listen();
    this.server = server;
  }

  async stop(): Promise<void> {
    await this.server?.close();
    this.server = undefined;
    rmSync(this.dir, { recursive: true, force: true });
  }

  private handle(request: AgentRequest): Promise<AgentResponse> {
    this.requests.push(request);
    const b = this.behaviour;
    switch (b.kind) {
      case "hang":
        return new Promise(() => undefined);
      case "respond":
        return Promise.resolve(b.response);
      case "normal":
        return Promise.resolve(this.answer(request));
    }
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

/** A unix socket whose every connection gets `onConnection` (after its first bytes arrive). */
export async function rawServer(
  path: string,
  onFirstData: (conn: Socket, data: Buffer) => void,
): Promise<{ close(): Promise<void> }> {
  const open = new Set<Socket>();
  const server: Server = createServer((conn) => {
    open.add(conn);
    conn.on("close", () => open.delete(conn));
    conn.on("error", () => undefined);
    conn.once("data", (d: Buffer) => onFirstData(conn, d));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(path, () => resolve());
  });
  return {
    close: async () => {
      for (const c of open) c.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

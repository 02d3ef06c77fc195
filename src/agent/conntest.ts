/**
 * Short-lived test endpoints for `dctl connectivity-test`, served through the operator API
 * (api.ts): each is a network namespace of its own attached by this agent's own CNI ADD (the path
 * a pod takes: endpoint and address in the store, a TAP on the switch, address and route inside),
 * and probed with ping from inside it (or from the node itself). Each lives at most its TTL: the
 * agent removes it (CNI DEL, then the namespace) when dctl does not, so an interrupted or killed
 * test leaves nothing behind for long. On stop, the agent removes every one it holds.
 */
import { randomBytes } from "node:crypto";
import type { Logger } from "pino";
import { run, type RunResult } from "../process/run.js";
import type { AgentRequest, AgentResponse } from "./protocol.js";

export interface TestEndpoint {
  id: string;
  namespace: string;
  pod: string;
  network: string | undefined;
  ip: string;
  /** The network namespace's name (`ip netns`), ovct-ID. */
  netns: string;
  containerId: string;
  expiresAt: number;
}

export type Payload = "small" | "mtu" | "fragmented";

export interface PingResult {
  sent: number;
  received: number;
  /** The ICMP payload bytes and whether DF was set. */
  bytes: number;
  df: boolean;
}

export interface ConnectivityDeps {
  /** The agent's CNI handler (Agent.handle). */
  handle(req: AgentRequest): Promise<AgentResponse>;
  podMtu: number;
  log: Logger;
  /** Runs a command (process/run.ts); a fake in tests. */
  exec?: (file: string, args: readonly string[]) => Promise<RunResult>;
  now?: () => number;
}

const NETNS_DIR = "/run/netns";
const SWEEP_MS = 2000;
/**
 * The API has no authentication (whoever reaches the metrics listener may ask): test endpoints
 * are held to namespaces of this prefix, where no real pod runs, and to a few at once.
 */
export const TEST_NAMESPACE_PREFIX = "connectivity-test-";
export const MAX_TEST_ENDPOINTS = 32;

export class ConnectivityEndpoints {
  private readonly held = new Map<string, TestEndpoint>();
  private creating = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly exec: (file: string, args: readonly string[]) => Promise<RunResult>;
  private readonly now: () => number;

  constructor(private readonly d: ConnectivityDeps) {
    this.exec = d.exec ?? ((file, args) => run(file, args, { allowFailure: true, timeoutMs: 15_000 }));
    this.now = d.now ?? Date.now;
  }

  start(): void {
    this.timer = setInterval(() => void this.sweep(), SWEEP_MS);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await Promise.all([...this.held.keys()].map((id) => this.remove(id).catch(() => undefined)));
  }

  list(): TestEndpoint[] {
    return [...this.held.values()];
  }

  /** Creates a namespace and attaches it as pod `namespace/pod` through CNI ADD. */
  async create(input: {
    namespace: string;
    pod: string;
    network?: string;
    ttlMs: number;
  }): Promise<TestEndpoint> {
    if (!input.namespace.startsWith(TEST_NAMESPACE_PREFIX)) {
      throw new RangeError(
        `test endpoints live in namespaces named ${TEST_NAMESPACE_PREFIX}*, not ${input.namespace}`,
      );
    }
    if (this.held.size >= MAX_TEST_ENDPOINTS) {
      throw new RangeError(
        `this node holds ${this.held.size} test endpoints already, the most it keeps at once`,
      );
    }
    const id = randomBytes(4).toString("hex");
    const netns = `ovct-${id}`;
    const add = await this.exec("ip", ["netns", "add", netns]);
    if (add.code !== 0) throw new Error(`cannot create network namespace ${netns}: ${add.stderr.trim()}`);
    const containerId = `connectivity-test-${id}`;
    const res = await this.d.handle({
      op: "ADD",
      containerId,
      netns: `${NETNS_DIR}/${netns}`,
      ifName: "eth0",
      podNamespace: input.namespace,
      podName: input.pod,
      ...(input.network === undefined ? {} : { network: input.network }),
    });
    if (!res.ok || res.result === undefined) {
      await this.exec("ip", ["netns", "del", netns]);
      throw new Error(
        `CNI ADD of ${input.namespace}/${input.pod} failed: ${res.ok ? "no result" : `${res.error.msg} (code ${res.error.code})`}`,
      );
    }
    const ip = (res.result.ips[0]?.address ?? "").split("/")[0] ?? "";
    const e: TestEndpoint = {
      id,
      namespace: input.namespace,
      pod: input.pod,
      network: input.network,
      ip,
      netns,
      containerId,
      expiresAt: this.now() + input.ttlMs,
    };
    this.held.set(id, e);
    this.d.log.info({ id, pod: `${e.namespace}/${e.pod}`, ip }, "connectivity test endpoint created");
    return e;
  }

  /** CNI DEL, then the namespace; true when there was one. */
  async remove(id: string): Promise<boolean> {
    const e = this.held.get(id);
    if (e === undefined) return false;
    const res = await this.d.handle({
      op: "DEL",
      containerId: e.containerId,
      ifName: "eth0",
      netns: `${NETNS_DIR}/${e.netns}`,
      podNamespace: e.namespace,
      podName: e.pod,
    });
    if (!res.ok) throw new Error(`CNI DEL of ${e.namespace}/${e.pod} failed: ${res.error.msg}`);
    const del = await this.exec("ip", ["netns", "del", e.netns]);
    if (del.code !== 0 && !/No such file/.test(del.stderr)) {
      throw new Error(`cannot delete network namespace ${e.netns}: ${del.stderr.trim()}`);
    }
    this.held.delete(id);
    this.d.log.info({ id, pod: `${e.namespace}/${e.pod}` }, "connectivity test endpoint removed");
    return true;
  }

  /** Pings `dst` from endpoint `from` (or from the node itself when undefined). */
  async ping(from: string | undefined, dst: string, payload: Payload): Promise<PingResult> {
    const e = from === undefined ? undefined : this.held.get(from);
    if (from !== undefined && e === undefined) throw new Error(`no test endpoint ${from} on this node`);
    // ICMP payload: IPv4 (20) and ICMP (8) headers fit the MTU with it; twice the MTU fragments.
    const bytes = payload === "small" ? 56 : payload === "mtu" ? this.d.podMtu - 28 : 2 * this.d.podMtu;
    const df = payload !== "fragmented";
    const args = [
      "-n",
      "-q",
      "-c",
      "3",
      "-i",
      "0.2",
      "-W",
      "1",
      "-s",
      String(bytes),
      "-M",
      df ? "do" : "dont",
      dst,
    ];
    const r =
      e === undefined
        ? await this.exec("ping", args)
        : await this.exec("ip", ["netns", "exec", e.netns, "ping", ...args]);
    const m = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(r.stdout);
    if (!m) throw new Error(`ping ${dst} printed no summary: ${(r.stderr || r.stdout).trim().slice(0, 200)}`);
    return { sent: Number(m[1]), received: Number(m[2]), bytes, df };
  }

  /** Removes the endpoints whose TTL ran out (dctl died or was interrupted before it could). */
  async sweep(): Promise<void> {
    const now = this.now();
    for (const e of [...this.held.values()]) {
      if (e.expiresAt > now) continue;
      try {
        await this.remove(e.id);
        this.d.log.warn(
          { id: e.id, pod: `${e.namespace}/${e.pod}` },
          "connectivity test endpoint expired; removed",
        );
      } catch (err) {
        this.d.log.error(
          { id: e.id, err: String(err) },
          "cannot remove an expired connectivity test endpoint; retrying",
        );
      }
    }
  }
}

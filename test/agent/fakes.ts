/**
 * Test doubles for the agent's side effects (src/agent/agent.ts `AgentDeps`): a switch that
 * records its tables, and plumbing that records what it was asked. With an in-memory SQLite
 * store they run a real Agent without root.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { Agent, type AgentOptions } from "../../src/agent/agent.js";
import type { PodAddress, PodInterface, Plumbing } from "../../src/agent/plumbing.js";
import type { AgentSwitch } from "../../src/agent/ports.js";
import type { Peer, PortOptions, RemoteEndpoint } from "../../src/dataplane/switch.js";
import type { Store } from "../../src/store/store.js";

export interface FakePort {
  options: PortOptions;
  vni: number;
}

/** The tables a real switch would hold, and the calls that built them. */
export class FakeSwitch implements AgentSwitch {
  readonly ports = new Map<number, FakePort>();
  readonly remotes = new Map<string, RemoteEndpoint>();
  /** Ids of ports removed with their device destroyed. */
  readonly destroyed: number[] = [];
  peers: Peer[] = [];
  globalVnis: number[] = [];
  readonly calls: string[] = [];
  private nextId = 1;
  closed = false;

  addPort(p: PortOptions): number {
    const id = this.nextId++;
    this.ports.set(id, { options: p, vni: p.vni });
    this.calls.push(`addPort ${p.name}`);
    return id;
  }
  removePort(id: number, options: { destroy?: boolean } = {}): Promise<void> {
    if (!this.ports.delete(id)) throw new Error(`no port ${id}`);
    if (options.destroy) this.destroyed.push(id);
    this.calls.push(`removePort ${id}`);
    return Promise.resolve();
  }
  setPortVni(id: number, vni: number): void {
    const p = this.ports.get(id);
    if (!p) throw new Error(`no port ${id}`);
    p.vni = vni;
    this.calls.push(`setPortVni ${id} ${vni}`);
  }
  setPeers(peers: Peer[]): void {
    this.peers = peers;
    this.calls.push("setPeers");
  }
  updateRemotes(add: RemoteEndpoint[], remove: string[] = []): void {
    for (const mac of remove) this.remotes.delete(mac);
    for (const r of add) this.remotes.set(r.mac, r);
    this.calls.push(`updateRemotes +${add.length} -${remove.length}`);
  }
  replaceRemotes(all: RemoteEndpoint[]): void {
    this.remotes.clear();
    for (const r of all) this.remotes.set(r.mac, r);
    this.calls.push(`replaceRemotes ${all.length}`);
  }
  setGlobalVnis(vnis: number[]): void {
    this.globalVnis = [...vnis];
    this.calls.push(`setGlobalVnis ${vnis.join(",")}`);
  }
  features(): ReturnType<AgentSwitch["features"]> {
    return {
      vnetHdr: true,
      tso: false,
      uso: false,
      udpGso: false,
      udpGro: false,
      multiQueue: false,
      workers: 1,
      pollUs: 0,
      kernelBusyPoll: false,
    };
  }
  counters(): ReturnType<AgentSwitch["counters"]> {
    return {
      ports: [],
      drops: {},
      underlay: { rxDatagrams: 0, rxBytes: 0, txDatagrams: 0, txBytes: 0, txSends: 0, coalescedWrites: 0 },
      threads: { polledBatches: 0, wokenBatches: 0 },
    };
  }
  close(): void {
    this.closed = true;
  }

  /** The pod ports (kind "pod"), by interface name and netns. */
  podPorts(): FakePort[] {
    return [...this.ports.values()].filter((p) => p.options.kind !== "host");
  }
}

/** Plumbing that succeeds and records, with namespaces that exist until removed. */
export class FakePlumbing implements Plumbing {
  readonly namespaces = new Set<string>();
  readonly configured: PodAddress[] = [];
  /** When set, configurePod throws it. */
  failConfigure: Error | undefined;

  netnsExists(netns: string): boolean {
    return this.namespaces.has(netns);
  }
  async configurePod(a: PodAddress): Promise<void> {
    if (this.failConfigure) throw this.failConfigure;
    this.configured.push(a);
  }
  async inspectPod(): Promise<PodInterface | undefined> {
    return undefined;
  }
  async shapePodIngress(): Promise<void> {}
  async removePodIngress(): Promise<void> {}
  async configureGateway(): Promise<void> {}
  async configureMasquerade(): Promise<void> {}
  async removeMasquerade(): Promise<void> {}
}

/** A real Agent on `store` with a fake switch and plumbing, its socket in a temp folder. */
export async function startFakeAgent(
  store: Store,
  options: Partial<AgentOptions> = {},
): Promise<{ agent: Agent; sw: FakeSwitch; plumbing: FakePlumbing; stop: () => Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), "overlay-agent-unit-"));
  const sw = new FakeSwitch();
  const plumbing = new FakePlumbing();
  const agent = new Agent(
    {
      node: "node1",
      underlayIp: "10.99.0.1",
      store,
      socketPath: join(dir, "agent.sock"),
      logger: pino({ level: process.env.OVERLAY_TEST_LOG ?? "silent" }),
      debounceMs: 1,
      ...options,
    },
    { createSwitch: () => sw, plumbing },
  );
  await agent.start();
  return {
    agent,
    sw,
    plumbing,
    stop: async () => {
      await agent.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

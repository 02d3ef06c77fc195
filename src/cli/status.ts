/**
 * `dctl status`: the cluster on one screen. The store (reachable, and how long a read takes),
 * then every node's agent as it reports itself over its operator API (src/agent/api.ts): ready,
 * version, lease, peers programmed against the nodes registered, endpoints, offloads, drops in
 * the last minute. What is wrong is said in words with the command that tells more, and makes
 * the exit code 1, for scripts and probes. Nothing waits longer than its timeout.
 */
import type { Command } from "commander";
import type { StatusJson } from "../agent/api.js";
import { checkStoreReachable, listBlocks, listNetworks, listNodes, type NodeRecord } from "../model/index.js";
import type { Store } from "../store/store.js";
import { askAgent, timeoutOption, TIMEOUT_FLAG, TIMEOUT_HELP } from "./agents.js";
import { OUTPUT_FLAG, OUTPUT_HELP, outputFormat, type CliContext } from "./context.js";
import * as ops from "./format-ops.js";

/** Rejects after `ms` with `what`: a store that does not answer must not hang the command. */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms / 1000} s`)), ms);
    }),
  ]);
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export function registerStatusCommand(program: Command, ctx: CliContext): void {
  program
    .command("status")
    .description(
      "the cluster at a glance: store, every node's agent, and what is wrong (exit 1 when something is)",
    )
    .option(TIMEOUT_FLAG, TIMEOUT_HELP)
    .option(OUTPUT_FLAG, OUTPUT_HELP)
    .action(async (opts: Record<string, unknown>) => {
      const format = outputFormat(opts.output);
      const timeoutMs = timeoutOption(opts.timeout);
      const s = await clusterStatus(ctx, timeoutMs);
      ctx.out(ops.status(s, format));
      if (!s.ok) ctx.exitCode = 1;
    });
}

async function clusterStatus(ctx: CliContext, timeoutMs: number): Promise<ops.ClusterStatus> {
  const problems: ops.Problem[] = [];
  const notes: ops.Problem[] = [];
  const storeTimeout = Math.max(timeoutMs, 5000);
  const storeState: ops.StoreState = { url: ctx.storeUrl(), reachable: false, latencyMs: null, error: null };
  let store: Store;
  try {
    store = await within(ctx.store(), storeTimeout, "the store");
    const t0 = performance.now();
    await within(checkStoreReachable(store), storeTimeout, "the store");
    storeState.latencyMs = performance.now() - t0;
    storeState.reachable = true;
  } catch (err) {
    storeState.error = message(err);
    problems.push({
      what: `the cluster store is unreachable: ${storeState.error}`,
      more: "the store's own health (etcdctl endpoint health, or the SQLite file), and --store / $OVERLAY_STORE",
    });
    return { ok: false, store: storeState, nodes: [], problems, notes };
  }

  const nodes = ctx.parsed(await within(listNodes(store), storeTimeout, "the store"));
  // Nodes that hold address blocks without a registration: their agent stopped renewing it.
  const holders = new Set<string>();
  for (const net of ctx.parsed(await within(listNetworks(store), storeTimeout, "the store"))) {
    for (const b of ctx.parsed(await within(listBlocks(store, net.name), storeTimeout, "the store")))
      holders.add(b.node);
  }
  const answers = await Promise.all(
    nodes.map(async (n) => ({ node: n, answer: await askAgent<StatusJson>(n, "/status", { timeoutMs }) })),
  );
  const states: ops.NodeState[] = answers.map(({ node, answer }) => ({
    name: node.name,
    underlayIp: node.underlayIp,
    apiAddress: node.apiAddress ?? null,
    registered: true,
    agent: answer.ok ? answer.value : null,
    error: answer.ok ? null : answer.problem,
  }));
  for (const name of [...holders].sort()) {
    if (nodes.some((n) => n.name === name)) continue;
    states.push({
      name,
      underlayIp: null,
      apiAddress: null,
      registered: false,
      agent: null,
      error: "not registered",
    });
    problems.push({
      what: `node ${name} holds address blocks but is not registered: its agent stopped renewing its lease (down, or cut off from the store); its pods are unreachable, and its addresses are released after twice the lease TTL`,
      more: `dctl node list; overlayd's log on ${name}`,
    });
  }
  states.sort((a, b) => a.name.localeCompare(b.name));

  if (nodes.length === 0) {
    problems.push({
      what: "no node is registered: no agent is running",
      more: "dctl node list; start overlayd on every node",
    });
  }
  const others = nodes.length - 1;
  const versions = new Set<string>();
  for (const { node, answer } of answers) {
    if (!answer.ok) {
      problems.push({ what: `${node.name}: ${answer.problem}`, more: agentHelp(node) });
      continue;
    }
    const a = answer.value;
    versions.add(a.version);
    if (!a.ready)
      problems.push({
        what: `${node.name}: the agent is not ready (it serves no CNI ADD)`,
        more: agentHelp(node),
      });
    if (!a.following) {
      problems.push({
        what: `${node.name}: the agent does not follow the cluster store (${a.storeTroubles} failed listings and watches): changes are not applied there`,
        more: agentHelp(node),
      });
    }
    if (a.lease.renewedAgoMs !== null && a.lease.renewedAgoMs > a.lease.ttlSeconds * 1000) {
      problems.push({
        what: `${node.name}: the node's lease was last renewed ${Math.round(a.lease.renewedAgoMs / 1000)} s ago, past its ${a.lease.ttlSeconds} s TTL`,
        more: agentHelp(node),
      });
    }
    if (a.peers.programmed !== others) {
      problems.push({
        what: `${node.name}: ${a.peers.programmed} peer VTEPs programmed, but ${others} other node${others === 1 ? " is" : "s are"} registered: frames to the missing ones are not sent or not accepted`,
        more: `dctl node list; dctl network overlay trace NAMESPACE/POD IP for a pod on ${node.name}`,
      });
    }
    if (a.drops !== null && a.drops.total > 0) {
      const top = Object.entries(a.drops.byReason)
        .sort(([, x], [, y]) => y - x)
        .slice(0, 3)
        .map(([r, n]) => `${r} ${n}`)
        .join(", ");
      notes.push({
        what: `${node.name} dropped ${a.drops.total} frame${a.drops.total === 1 ? "" : "s"} in the last ${Math.round(a.drops.windowMs / 1000)} s (${top})`,
        more: `dctl network overlay drops --node ${node.name}`,
      });
    }
  }
  if (versions.size > 1) {
    notes.push({
      what: `agents run different versions: ${[...versions].sort().join(", ")}`,
      more: "dctl status -o json",
    });
  }
  return { ok: problems.length === 0, store: storeState, nodes: states, problems, notes };
}

function agentHelp(node: NodeRecord): string {
  return `overlayd's log on ${node.name}; curl http://${node.apiAddress ?? "IP:PORT"}/status`;
}

/**
 * `dctl network overlay drops` and `dctl network overlay trace`: the switches' own view of why a
 * frame is dropped and where it would go, asked of the node agents (agents.ts; the agent's side
 * is src/agent/api.ts).
 */
import type { Command } from "commander";
import type { DropsJson, TraceJson } from "../agent/api.js";
import {
  invalid,
  listEndpoints,
  listNetworks,
  listNodes,
  notFound,
  parseIpv4,
  type NodeRecord,
} from "../model/index.js";
import { askAgent, timeoutOption, TIMEOUT_FLAG, TIMEOUT_HELP } from "./agents.js";
import { OUTPUT_FLAG, OUTPUT_HELP, outputFormat, type CliContext } from "./context.js";
import * as ops from "./format-ops.js";

/** "5m", "30s", "2h", "1500ms" as milliseconds. */
export function parseDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(text);
  if (!m) throw invalid(`invalid duration "${text}": expected e.g. 30s, 5m, 1h`);
  const scale = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as "ms" | "s" | "m" | "h"];
  return Number(m[1]) * scale;
}

/** "ns/pod" */
function podRef(text: string): { namespace: string; pod: string } {
  const m = /^([^/\s]+)\/([^/\s]+)$/.exec(text);
  if (!m) throw invalid(`invalid pod "${text}": expected NAMESPACE/POD`);
  return { namespace: m[1] as string, pod: m[2] as string };
}

/** "ip" or "ip:port" */
function target(text: string): { ip: string; port?: number } {
  const m = /^([\d.]+)(?::(\d{1,5}))?$/.exec(text);
  const port = m?.[2] === undefined ? undefined : Number(m[2]);
  if (!m || parseIpv4(m[1] as string) === undefined || (port !== undefined && port > 65535)) {
    throw invalid(`invalid destination "${text}": expected IP or IP:PORT, e.g. 172.30.1.3:80`);
  }
  return { ip: m[1] as string, ...(port === undefined ? {} : { port }) };
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}

export function registerInspectCommands(overlay: Command, ctx: CliContext): void {
  overlay
    .command("drops")
    .description("show the frames the switches dropped recently, and why, like a flow log")
    .option("--node <node>", "only this node's drops")
    .option("--reason <reason>", "only drops of this reason, e.g. vni_mismatch")
    .option("--since <duration>", "only drops newer than this, e.g. 5m (default: all recorded)")
    .option("-f, --follow", "keep printing drops as they happen, until interrupted")
    .option(TIMEOUT_FLAG, TIMEOUT_HELP)
    .option(OUTPUT_FLAG, OUTPUT_HELP)
    .action(async (opts: Record<string, unknown>) => {
      const format = outputFormat(opts.output);
      const timeoutMs = timeoutOption(opts.timeout);
      const started = Date.now();
      const since = opts.since === undefined ? 0 : started - parseDuration(String(opts.since));
      const reason = opts.reason === undefined ? undefined : String(opts.reason);
      const nodes = await nodesToAsk(ctx, opts.node === undefined ? undefined : String(opts.node));
      const last = new Map<string, number>(nodes.map((n) => [n.name, since]));
      const warned = new Map<string, string>();
      /** One round: every node's events newer than the last seen, merged by time. */
      const round = async (first: boolean): Promise<{ events: ops.NodeDrop[]; answers: unknown[] }> => {
        const answers = await Promise.all(
          nodes.map(async (n) => {
            const q = new URLSearchParams({ since: String(last.get(n.name) ?? 0) });
            if (reason !== undefined) q.set("reason", reason);
            const a = await askAgent<DropsJson>(n, `/drops?${q.toString()}`, {
              timeoutMs,
              ...(ctx.signal ? { signal: ctx.signal } : {}),
            });
            return { node: n, answer: a };
          }),
        );
        const events: ops.NodeDrop[] = [];
        const summary: unknown[] = [];
        let failed = 0;
        for (const { node, answer } of answers) {
          if (!answer.ok) {
            failed++;
            summary.push({ node: node.name, ok: false, error: answer.problem });
            if (warned.get(node.name) !== answer.problem && answer.problem !== "interrupted") {
              ctx.err(`Warning: ${answer.problem}\n`);
              warned.set(node.name, answer.problem);
            }
            continue;
          }
          warned.delete(node.name);
          const d = answer.value;
          summary.push({
            node: node.name,
            ok: true,
            recordingSinceMs: d.recordingSinceMs,
            sampledOut: d.sampledOut,
          });
          // Asked for all that is recorded: say so only when recording started with this read.
          const window = since === 0 ? started - 1000 : since;
          if (first && d.recordingSinceMs > window && format !== "json") {
            ctx.err(
              `Note: ${node.name} records drops since ${ops.clock(d.recordingSinceMs)} ` +
                "(recording starts at a read and lasts 10 minutes after the last); earlier drops are only counted\n",
            );
          }
          for (const e of d.events) {
            events.push({ node: node.name, ...e });
            if (e.timeMs > (last.get(node.name) ?? 0)) last.set(node.name, e.timeMs);
          }
        }
        if (failed > 0) ctx.exitCode = 1;
        events.sort((a, b) => a.timeMs - b.timeMs);
        return { events, answers: summary };
      };
      if (opts.follow !== true) {
        const { events, answers } = await round(true);
        ctx.out(ops.drops(events, format, answers));
        return;
      }
      ctx.out(ops.followHeader(format));
      let first = true;
      while (!(ctx.signal?.aborted ?? false)) {
        const { events } = await round(first);
        first = false;
        for (const e of events) ctx.out(ops.dropLine(e, format, ops.FOLLOW_WIDTHS));
        await sleep(1000, ctx.signal);
      }
    });

  overlay
    .command("trace <pod> <destination>")
    .description(
      "show what the switch of the pod's node does with a frame from NAMESPACE/POD to IP[:PORT]: its own lookup and policy, step by step",
    )
    .option("--proto <protocol>", "tcp, udp or icmp (default: tcp with a port, else icmp)")
    .option(TIMEOUT_FLAG, TIMEOUT_HELP)
    .option(OUTPUT_FLAG, OUTPUT_HELP)
    .action(async (podText: string, destText: string, opts: Record<string, unknown>) => {
      const format = outputFormat(opts.output);
      const timeoutMs = timeoutOption(opts.timeout);
      const { namespace, pod } = podRef(podText);
      const { ip, port } = target(destText);
      const proto = opts.proto === undefined ? (port === undefined ? "icmp" : "tcp") : String(opts.proto);
      if (proto !== "tcp" && proto !== "udp" && proto !== "icmp") {
        throw invalid(`invalid --proto "${proto}": expected tcp, udp or icmp`);
      }
      const store = await ctx.store();
      let nodeName: string | undefined;
      for (const net of ctx.parsed(await listNetworks(store))) {
        const e = ctx.parsed(await listEndpoints(store, net.name, { namespace })).find((x) => x.pod === pod);
        if (e !== undefined) nodeName = e.node;
      }
      if (nodeName === undefined) {
        throw notFound(
          `pod ${namespace}/${pod} has no endpoint in any overlay network (see dctl network overlay endpoints)`,
        );
      }
      const node = ctx.parsed(await listNodes(store)).find((n) => n.name === nodeName);
      if (node === undefined) {
        throw notFound(
          `pod ${namespace}/${pod} is on node ${nodeName}, which is not registered: its agent is down or the node left (see dctl status)`,
        );
      }
      const a = await askAgent<TraceJson>(node, "/trace", {
        body: { namespace, pod, ip, protocol: proto, ...(port === undefined ? {} : { port }) },
        timeoutMs,
      });
      if (!a.ok) throw new Error(`cannot trace: ${a.problem}`);
      ctx.out(ops.trace(a.value, format));
    });
}

/** The registered nodes to ask: all, or the one named (an error when it is not registered). */
async function nodesToAsk(ctx: CliContext, only: string | undefined): Promise<NodeRecord[]> {
  const nodes = ctx.parsed(await listNodes(await ctx.store()));
  if (only === undefined) {
    if (nodes.length === 0) throw notFound("no node is registered: no agent is running (see dctl node list)");
    return nodes;
  }
  const n = nodes.find((x) => x.name === only);
  if (n === undefined) throw notFound(`node ${only} is not registered (see dctl node list)`);
  return [n];
}

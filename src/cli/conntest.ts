/**
 * `dctl connectivity-test`: short-lived test endpoints, two namespaces on every node, created by
 * each node's agent through its own CNI ADD (src/agent/conntest.ts, the path a pod takes), then
 * the whole matrix checked with ping from inside them: the same namespace reaches across and
 * within nodes, different namespaces do not (unless joined or global: expected from the VNIs
 * the store gives them), each node reaches its own pods, MTU-sized (DF) and fragmented payloads
 * pass. Everything is removed afterwards, also when interrupted; an endpoint that cannot be
 * removed at once is tried again, and the agent removes it by itself at its TTL in any case.
 * Exit 1 on any failure.
 */
import type { Command } from "commander";
import {
  deleteNamespace,
  GLOBAL_VNI,
  invalid,
  listNamespaces,
  listNetworks,
  listNodes,
  notFound,
  podVni,
  type NetworkRecord,
  type NodeRecord,
} from "../model/index.js";
import { askAgent, timeoutOption, TIMEOUT_FLAG, TIMEOUT_HELP } from "./agents.js";
import { OUTPUT_FLAG, OUTPUT_HELP, outputFormat, type CliContext } from "./context.js";
import { json, table } from "./format.js";

export const TEST_NAMESPACES = ["connectivity-test-a", "connectivity-test-b"] as const;
const CREATE_TIMEOUT_MS = 30_000;
const PING_TIMEOUT_MS = 15_000;
const REMOVE_ATTEMPTS = 3;

interface Endpoint {
  node: NodeRecord;
  namespace: string;
  pod: string;
  id: string;
  ip: string;
}

interface Check {
  check: string;
  from: string;
  to: string;
  expect: "reach" | "blocked";
  result: "pass" | "FAIL";
  detail: string;
}

interface PingAnswer {
  sent: number;
  received: number;
  bytes: number;
  df: boolean;
}

function podName(node: NodeRecord, suffix: string): string {
  const base = node.name
    .toLowerCase()
    .replace(/[^a-z0-9-]/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 40);
  return `ct-${base || "node"}-${suffix}`;
}

const label = (e: Endpoint): string => `${e.namespace}/${e.pod}`;

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export function registerConnectivityTestCommand(program: Command, ctx: CliContext): void {
  program
    .command("connectivity-test")
    .description(
      "start test endpoints on every node, check who reaches whom (namespaces, nodes, MTU, fragments), then remove them; exit 1 on any failure",
    )
    .option("--network <name>", "the overlay network (default: the default network)")
    .option("--ttl <seconds>", "how long an agent keeps a test endpoint dctl did not remove (default 300)")
    .option(TIMEOUT_FLAG, TIMEOUT_HELP)
    .option(OUTPUT_FLAG, OUTPUT_HELP)
    .action(async (opts: Record<string, unknown>) => {
      const format = outputFormat(opts.output);
      const timeoutMs = timeoutOption(opts.timeout);
      const ttl = opts.ttl === undefined ? 300 : Number(opts.ttl);
      if (!Number.isInteger(ttl) || ttl < 1 || ttl > 3600) {
        throw invalid(`invalid --ttl "${String(opts.ttl)}": expected whole seconds from 1 to 3600`);
      }
      const store = await ctx.store();
      const net = pickNetwork(ctx.parsed(await listNetworks(store)), opts.network as string | undefined);
      const nodes = ctx.parsed(await listNodes(store)).sort((a, b) => a.name.localeCompare(b.name));
      if (nodes.length === 0) throw notFound("no node is registered: no agent is running (see dctl status)");
      const existed = new Set(ctx.parsed(await listNamespaces(store, net.name)).map((n) => n.name));

      const checks: Check[] = [];
      const created: Endpoint[] = [];
      const problems: string[] = [];
      let interrupted = false;
      const stopped = (): boolean => (interrupted ||= ctx.signal?.aborted ?? false);
      try {
        // 1. Endpoints: two of the first namespace and one of the second on every node.
        const wanted = nodes.flatMap((node) => [
          { node, namespace: TEST_NAMESPACES[0], pod: podName(node, "a1") },
          { node, namespace: TEST_NAMESPACES[0], pod: podName(node, "a2") },
          { node, namespace: TEST_NAMESPACES[1], pod: podName(node, "b1") },
        ]);
        await Promise.all(
          wanted.map(async (w) => {
            if (stopped()) return;
            const a = await askAgent<{ id: string; ip: string }>(w.node, "/connectivity/endpoints", {
              body: { namespace: w.namespace, pod: w.pod, network: net.name, ttlSeconds: ttl },
              timeoutMs: Math.max(timeoutMs, CREATE_TIMEOUT_MS),
            });
            if (a.ok) created.push({ ...w, id: a.value.id, ip: a.value.ip });
            else {
              checks.push({
                check: "start a test endpoint",
                from: w.node.name,
                to: `${w.namespace}/${w.pod}`,
                expect: "reach",
                result: "FAIL",
                detail: a.problem,
              });
            }
          }),
        );
        created.sort((a, b) => label(a).localeCompare(label(b)) || a.node.name.localeCompare(b.node.name));

        // 2. Who should reach whom: the VNIs the store gives the two namespaces now.
        const records = ctx.parsed(await listNamespaces(store, net.name));
        const vni = (ns: string): number | undefined =>
          podVni(
            net,
            records.find((r) => r.name === ns),
          );
        const reaches = (a: Endpoint, b: Endpoint): boolean => {
          if (a.namespace === b.namespace) return true; // one namespace, one VNI
          const x = vni(a.namespace);
          const y = vni(b.namespace);
          return x !== undefined && y !== undefined && (x === y || x === GLOBAL_VNI || y === GLOBAL_VNI);
        };
        const relation = (a: Endpoint, b: Endpoint): string =>
          `${a.namespace === b.namespace ? "same namespace" : "other namespace"}, ${a.node.name === b.node.name ? "same node" : "across nodes"}`;

        const probe = async (
          check: string,
          source: Endpoint | NodeRecord,
          to: Endpoint,
          expect: "reach" | "blocked",
          payload: "small" | "mtu" | "fragmented",
        ): Promise<void> => {
          const node = "id" in source ? source.node : source;
          const from = "id" in source ? label(source) : `node ${source.name}`;
          const a = await askAgent<PingAnswer>(node, "/connectivity/ping", {
            body: { ...("id" in source ? { from: source.id } : {}), dst: to.ip, payload },
            timeoutMs: Math.max(timeoutMs, PING_TIMEOUT_MS),
          });
          if (!a.ok) {
            checks.push({ check, from, to: label(to), expect, result: "FAIL", detail: a.problem });
            return;
          }
          const p = a.value;
          const ok = expect === "reach" ? p.received > 0 : p.received === 0;
          const size = payload === "small" ? "" : `, ${p.bytes} bytes${p.df ? " DF" : ""}`;
          checks.push({
            check,
            from,
            to: `${label(to)} (${to.node.name})`,
            expect,
            result: ok ? "pass" : "FAIL",
            detail: `${p.received}/${p.sent} replies${size}`,
          });
        };

        // 3. The matrix, the node to its pods, and large payloads within the first namespace.
        const jobs: Promise<void>[] = [];
        for (const a of created) {
          for (const b of created) {
            if (a === b) continue;
            jobs.push(probe(relation(a, b), a, b, reaches(a, b) ? "reach" : "blocked", "small"));
          }
          jobs.push(probe("node to its pod", a.node, a, "reach", "small"));
        }
        const firsts = created.filter((e) => e.pod.endsWith("-a1"));
        const pairs =
          firsts.length > 1
            ? firsts.flatMap((a) => firsts.filter((b) => b !== a).map((b) => [a, b] as const))
            : [];
        if (pairs.length === 0) {
          const [a1, a2] = created.filter((e) => e.namespace === TEST_NAMESPACES[0]);
          if (a1 !== undefined && a2 !== undefined) pairs.push([a1, a2]);
        }
        for (const [a, b] of pairs) {
          jobs.push(probe("MTU-sized, DF", a, b, "reach", "mtu"));
          jobs.push(probe("fragmented", a, b, "reach", "fragmented"));
        }
        if (!stopped()) await Promise.all(jobs);
        else await Promise.allSettled(jobs);
      } finally {
        // 4. Remove everything, whatever happened above; try each a few times.
        await Promise.all(
          created.map(async (e) => {
            let last = "";
            for (let attempt = 1; attempt <= REMOVE_ATTEMPTS; attempt++) {
              const a = await askAgent<{ removed: boolean }>(e.node, `/connectivity/endpoints/${e.id}`, {
                method: "DELETE",
                timeoutMs: Math.max(timeoutMs, CREATE_TIMEOUT_MS),
              });
              if (a.ok) {
                if (attempt > 1)
                  ctx.err(`Note: removed ${label(e)} on ${e.node.name} at attempt ${attempt}\n`);
                return;
              }
              last = a.problem;
              await sleep(500 * attempt);
            }
            problems.push(
              `could not remove test endpoint ${label(e)} on ${e.node.name} (${last}); its agent removes it by itself within ${ttl} s`,
            );
          }),
        );
        for (const ns of TEST_NAMESPACES) {
          if (!existed.has(ns)) await deleteNamespace(store, net.name, ns).catch(() => undefined);
        }
      }
      if (interrupted) problems.push("interrupted: not every check ran");
      checks.sort(
        (a, b) => a.check.localeCompare(b.check) || a.from.localeCompare(b.from) || a.to.localeCompare(b.to),
      );
      const failed = checks.filter((c) => c.result === "FAIL").length;
      const ok = failed === 0 && problems.length === 0;
      if (!ok) ctx.exitCode = 1;
      const summary =
        `${checks.length} checks on ${nodes.length} node${nodes.length === 1 ? "" : "s"}: ${checks.length - failed} passed, ${failed} failed; ` +
        `${created.length - problems.filter((p) => p.startsWith("could not remove")).length} of ${created.length} test endpoints removed`;
      if (format === "json") {
        ctx.out(
          json({
            ok,
            network: net.name,
            namespaces: TEST_NAMESPACES,
            endpoints: created.map((e) => ({
              node: e.node.name,
              namespace: e.namespace,
              pod: e.pod,
              ip: e.ip,
            })),
            checks,
            problems,
            summary,
          }),
        );
        return;
      }
      ctx.out(
        table(
          ["CHECK", "FROM", "TO", "EXPECT", "RESULT", "DETAIL"],
          checks.map((c) => [c.check, c.from, c.to, c.expect, c.result, c.detail]),
        ),
      );
      for (const p of problems) ctx.out(`Problem: ${p}\n`);
      ctx.out(`\n${ok ? "OK" : "FAILED"}: ${summary}\n`);
    });
}

function pickNetwork(nets: readonly NetworkRecord[], name: string | undefined): NetworkRecord {
  if (name !== undefined) {
    const n = nets.find((x) => x.name === name);
    if (n === undefined) throw notFound(`network ${name} not found (see dctl network overlay list)`);
    return n;
  }
  const n = nets.find((x) => x.isDefault) ?? (nets.length === 1 ? nets[0] : undefined);
  if (n === undefined) {
    throw invalid(
      nets.length === 0
        ? "no overlay network exists (see dctl network overlay create)"
        : "no default network: name one with --network",
    );
  }
  return n;
}

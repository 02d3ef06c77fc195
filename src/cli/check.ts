/**
 * `dctl network overlay check <name> [--repair]`: the consistency check of model/check.ts (the
 * IPAM records and endpoints, and the namespace records). Prints what it found (and with --repair
 * what it did), one row per issue: its kind (leaked-address, missing-address,
 * address-owner-mismatch, duplicate-address, block-of-unregistered-node,
 * damaged-namespace-record), address, node and pod where it has them ("-" where not), and what is
 * wrong; `-o json` prints the report's issues and repair outcomes as they are (a namespace
 * record's issue has its `key` and `namespace`, a rebuilt record's outcome its `vni`). Exits 0
 * only when the network is consistent (after the repair, with --repair).
 */
import type { Command } from "commander";
import {
  DEFAULT_REPAIR_GRACE_MS,
  checkNetwork,
  repairNetwork,
  type CheckReport,
  type RepairOutcome,
} from "../model/check.js";
import { invalid } from "../model/errors.js";
import { OUTPUT_FLAG, OUTPUT_HELP, outputFormat, type CliContext } from "./context.js";
import { json, messages, table, type OutputFormat } from "./format.js";

export class InconsistentNetworkError extends Error {
  constructor(report: CheckReport) {
    const n = report.issues.length;
    super(
      `network ${report.network} is inconsistent: ${n} ${n === 1 ? "problem remains" : "problems remain"}`,
    );
    this.name = "InconsistentNetworkError";
  }
}

function graceSeconds(value: unknown): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) {
    throw invalid(`invalid value "${String(value)}" for --grace: expected a whole number of seconds >= 0`);
  }
  return n;
}

export function renderCheck(
  report: CheckReport,
  repaired: readonly RepairOutcome[] | undefined,
  format: OutputFormat,
): string {
  if (format === "json") {
    return json({
      network: report.network,
      consistent: report.consistent,
      counts: report.counts,
      issues: report.issues,
      ...(repaired === undefined ? {} : { repaired }),
    });
  }
  let out = "";
  if (repaired !== undefined && repaired.length > 0) {
    out += table(
      ["PROBLEM", "ADDRESS", "NODE", "POD", "ACTION", "REASON"],
      repaired.map((r) => [
        r.issue.kind,
        r.issue.ip || "-",
        r.issue.node || "-",
        r.issue.pod || "-",
        r.action,
        r.reason ?? "-",
      ]),
    );
    out += "\n";
  }
  const c = report.counts;
  if (report.consistent) {
    return `${out}Network ${report.network} is consistent: ${c.endpoints} endpoints, ${c.addresses} addresses, ${c.blocks} blocks\n`;
  }
  out += table(
    ["PROBLEM", "ADDRESS", "NODE", "POD", "DETAIL"],
    report.issues.map((i) => [i.kind, i.ip || "-", i.node || "-", i.pod || "-", i.detail]),
  );
  return out;
}

/** Adds `check` to `dctl network overlay`. */
export function registerCheckCommand(program: Command, ctx: CliContext): void {
  const overlay = program.commands
    .find((c) => c.name() === "network")
    ?.commands.find((c) => c.name() === "overlay");
  if (overlay === undefined) throw new Error("dctl: the network overlay commands must be registered first");
  overlay
    .command("check <name>")
    .description(
      "check that addresses and endpoints agree and namespace records are valid: leaked and missing addresses, duplicates, blocks of unregistered nodes, damaged namespace records",
    )
    .option(
      "--repair",
      "release leaked addresses older than the grace period, recreate missing ones and rebuild damaged namespace records",
    )
    .option(
      "--grace <seconds>",
      "with --repair: keep leaked addresses allocated less than this long ago",
      String(DEFAULT_REPAIR_GRACE_MS / 1000),
    )
    .option(OUTPUT_FLAG, OUTPUT_HELP)
    .action(async (name: string, opts: Record<string, unknown>) => {
      const format = outputFormat(opts.output);
      const graceMs = graceSeconds(opts.grace) * 1000;
      const store = await ctx.store();
      let repaired: RepairOutcome[] | undefined;
      if (opts.repair === true) repaired = await repairNetwork(store, name, { graceMs });
      const report = await checkNetwork(store, name);
      for (const p of report.problems) ctx.err(messages.badRecord(p));
      ctx.out(renderCheck(report, repaired, format));
      if (!report.consistent) throw new InconsistentNetworkError(report);
    });
}

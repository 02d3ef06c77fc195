/**
 * dctl as a function: parses argv, runs the command against the store, writes to the given
 * streams and returns the exit code. Every failure is one "Error: ..." line on stderr.
 */
import { Command, CommanderError } from "commander";
import { OverlayError } from "../model/index.js";
import { StoreUnavailableError } from "../store/store.js";
import { CliContext, StoreOpenError, type DctlIo } from "./context.js";
import { etcdTlsFlagsMisused } from "../store/index.js";
import { addEtcdTlsOptions } from "../store/flags.js";
import { messages } from "./format.js";
import { registerCheckCommand } from "./check.js";
import { registerDataNetworkCommands } from "./datanet.js";
import { registerInspectCommands } from "./inspect.js";
import { registerNamespaceCommands } from "./namespace.js";
import { registerNetworkCommands } from "./network.js";
import { registerNodeCommands } from "./node.js";
import { registerPerfTierCommands } from "./perftier.js";
import { registerStatusCommand } from "./status.js";
import { registerConnectivityTestCommand } from "./conntest.js";

export type { DctlIo } from "./context.js";

/** "–isolate-ns=False", as typesetting turns "--" into a dash in documents, reads as "--". */
function normalizeDashes(argv: readonly string[]): string[] {
  return argv.map((a) => a.replace(/^[\u2013\u2014]+(?=[a-z])/, "--"));
}

export function buildProgram(io: DctlIo): { program: Command; ctx: CliContext } {
  const program = new Command("dctl");
  const ctx = new CliContext(io, program);
  program
    .description("manage the cluster's overlay network")
    .option(
      "--store <url>",
      "cluster store: sqlite:PATH, etcd://HOST:PORT[,...] or etcds://... (TLS: --etcd-* below) (default: $OVERLAY_STORE)",
    );
  addEtcdTlsOptions(program)
    // Flags that the store would ignore are a mistake: say so before the command runs.
    .hook("preAction", () => {
      const misused = etcdTlsFlagsMisused(ctx.storeUrl(), ctx.etcdFlags());
      if (misused !== undefined) throw new UsageError(misused);
    })
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: (s) => io.stderr.write(s),
      // Commander's own errors are reported by runDctl, in the one-line form of every error.
      outputError: () => undefined,
    })
    .showHelpAfterError(false);
  const network = registerNetworkCommands(program, ctx);
  registerDataNetworkCommands(network, ctx);
  const overlay = network.commands.find((c) => c.name() === "overlay");
  if (overlay !== undefined) registerInspectCommands(overlay, ctx);
  registerNamespaceCommands(program, ctx);
  registerPerfTierCommands(program, ctx);
  registerNodeCommands(program, ctx);
  registerCheckCommand(program, ctx);
  registerStatusCommand(program, ctx);
  registerConnectivityTestCommand(program, ctx);
  // A group named without a command prints its help; that is a mistake, so report it as one.
  const groups: Command[] = [];
  const walk = (c: Command): void => {
    if (c.commands.length > 0) groups.push(c);
    c.commands.forEach(walk);
  };
  walk(program);
  for (const g of groups) {
    g.allowExcessArguments(true).action(() => {
      const path: string[] = [];
      for (let c: Command | null = g; c !== null; c = c.parent) path.unshift(c.name());
      const known = g.commands.map((c) => c.name()).join(", ");
      const [unknown] = g.args;
      throw new UsageError(
        unknown === undefined
          ? `"${path.join(" ")}" needs a command: one of ${known} (see ${path.join(" ")} --help)`
          : `unknown command "${unknown}" for "${path.join(" ")}": expected one of ${known}`,
      );
    });
  }
  return { program, ctx };
}

class UsageError extends Error {}

function errorMessage(e: unknown): string {
  if (e instanceof OverlayError || e instanceof UsageError || e instanceof StoreOpenError) return e.message;
  if (e instanceof StoreUnavailableError) return `the store is unavailable: ${e.message}`;
  if (e instanceof CommanderError) return e.message.replace(/^error:\s*/, "");
  if (e instanceof Error) return e.message;
  return String(e);
}

export async function runDctl(argv: readonly string[], io: DctlIo): Promise<number> {
  const { program, ctx } = buildProgram(io);
  try {
    await program.parseAsync(normalizeDashes(argv), { from: "user" });
    return ctx.exitCode ?? 0;
  } catch (e) {
    if (e instanceof CommanderError && (e.exitCode === 0 || e.code === "commander.helpDisplayed")) return 0;
    io.stderr.write(messages.error(errorMessage(e)));
    return e instanceof CommanderError && e.exitCode !== 0 ? e.exitCode : 1;
  } finally {
    try {
      await ctx.close();
    } catch {
      // The command's outcome stands; a store that fails to close has nothing left to lose.
    }
  }
}

/** `dctl perf-tier list`. */
import type { Command } from "commander";
import { listPerfTiers } from "../model/index.js";
import { OUTPUT_FLAG, OUTPUT_HELP, outputFormat, type CliContext } from "./context.js";
import * as fmt from "./format.js";

export function registerPerfTierCommands(program: Command, ctx: CliContext): void {
  const tier = program
    .command("perf-tier")
    .description("performance tiers (on the overlay: upper bandwidth limits)");
  tier
    .command("list")
    .description("list perf tiers")
    .option(OUTPUT_FLAG, OUTPUT_HELP)
    .action((opts: Record<string, unknown>) => {
      ctx.out(fmt.perfTiers(listPerfTiers(), outputFormat(opts.output)));
    });
}

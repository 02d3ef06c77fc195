/**
 * `dctl network data create|list|delete`: the cluster's data networks, which the overlay subnet
 * must not overlap.
 */
import type { Command } from "commander";
import { deleteDataNetwork, listDataNetworks, putDataNetwork } from "../model/index.js";
import { OUTPUT_FLAG, OUTPUT_HELP, outputFormat, type CliContext } from "./context.js";
import * as fmt from "./format.js";

export function registerDataNetworkCommands(network: Command, ctx: CliContext): void {
  const data = network
    .command("data")
    .description("cluster data networks (the overlay must not overlap them)");

  data
    .command("create <name>")
    .description("record a data network of the cluster")
    .requiredOption("-s, --subnet <subnet>", "its subnet, e.g. 192.168.30.0/24")
    .option(OUTPUT_FLAG, OUTPUT_HELP)
    .action(async (name: string, opts: Record<string, unknown>) => {
      const format = outputFormat(opts.output);
      const record = await putDataNetwork(await ctx.store(), name, String(opts.subnet));
      ctx.out(
        format === "json"
          ? fmt.json({ name: record.name, subnet: record.cidr })
          : fmt.dataNetworks([record], format),
      );
    });

  data
    .command("list")
    .description("list data networks")
    .option(OUTPUT_FLAG, OUTPUT_HELP)
    .action(async (opts: Record<string, unknown>) => {
      const format = outputFormat(opts.output);
      ctx.out(fmt.dataNetworks(ctx.parsed(await listDataNetworks(await ctx.store())), format));
    });

  data
    .command("delete <name>")
    .description("forget a data network")
    .action(async (name: string) => {
      await deleteDataNetwork(await ctx.store(), name);
      ctx.out(fmt.messages.dataNetworkDeleted(name));
    });
}

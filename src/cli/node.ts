/** `dctl node list`: nodes registered by their agents, with the address blocks they hold. */
import type { Command } from "commander";
import { blockGateway, listBlocks, listNetworks, listNodes, parseCidr } from "../model/index.js";
import { OUTPUT_FLAG, OUTPUT_HELP, outputFormat, type CliContext } from "./context.js";
import * as fmt from "./format.js";

export function registerNodeCommands(program: Command, ctx: CliContext): void {
  const node = program.command("node").description("cluster nodes");
  node
    .command("list")
    .description("list nodes registered by their agents")
    .option(OUTPUT_FLAG, OUTPUT_HELP)
    .action(async (opts: Record<string, unknown>) => {
      const format = outputFormat(opts.output);
      const store = await ctx.store();
      const nodes = ctx.parsed(await listNodes(store));
      const blocks: fmt.NodeView["blocks"][number][] = [];
      const owner = new Map<string, string>();
      for (const net of ctx.parsed(await listNetworks(store))) {
        for (const b of ctx.parsed(await listBlocks(store, net.name))) {
          blocks.push({ network: net.name, cidr: b.cidr, gateway: blockGateway(b.cidr) });
          owner.set(`${net.name} ${b.cidr}`, b.node);
        }
      }
      const start = (cidr: string): number => parseCidr(cidr)?.address ?? 0;
      blocks.sort((a, b) => start(a.cidr) - start(b.cidr));
      const views = nodes.map((n) => ({
        node: n,
        blocks: blocks.filter((b) => owner.get(`${b.network} ${b.cidr}`) === n.name),
      }));
      ctx.out(fmt.nodes(views, format));
    });
}

/** `dctl namespace create|delete|list`: namespaces known to the overlay network. */
import type { Command } from "commander";
import {
  deleteNamespace,
  describeNamespaces,
  ensureNamespace,
  listNamespaces,
  listNetworks,
  resolveNetwork,
  type NamespaceView,
} from "../model/index.js";
import { OUTPUT_FLAG, OUTPUT_HELP, outputFormat, type CliContext } from "./context.js";
import * as fmt from "./format.js";

const NETWORK_FLAG = "--network <name>";
const NETWORK_HELP = "the overlay network (default: the cluster's only one)";

export function registerNamespaceCommands(program: Command, ctx: CliContext): void {
  const ns = program.command("namespace").description("manage the namespaces known to the overlay network");

  ns.command("create <name>")
    .description("make a namespace known to the overlay network (it gets a VNI of its own)")
    .option(NETWORK_FLAG, NETWORK_HELP)
    .option(OUTPUT_FLAG, OUTPUT_HELP)
    .action(async (name: string, opts: Record<string, unknown>) => {
      const format = outputFormat(opts.output);
      const store = await ctx.store();
      const { value: net } = await resolveNetwork(store, opts.network as string | undefined);
      await ensureNamespace(store, net.name, name, "dctl");
      if (format === "json") {
        const views = describeNamespaces(net, ctx.parsed(await listNamespaces(store, net.name)));
        ctx.out(fmt.namespace(views.find((v) => v.name === name) as NamespaceView, format));
      } else ctx.out(fmt.messages.namespaceCreated(name));
    });

  ns.command("delete <name>")
    .description("forget a namespace (refused while its pods have endpoints)")
    .option(NETWORK_FLAG, NETWORK_HELP)
    .action(async (name: string, opts: Record<string, unknown>) => {
      const store = await ctx.store();
      const { value: net } = await resolveNetwork(store, opts.network as string | undefined);
      await deleteNamespace(store, net.name, name);
      ctx.out(fmt.messages.namespaceDeleted(name));
    });

  ns.command("list")
    .description("list namespaces with their VNI and policy")
    .option(NETWORK_FLAG, "only this overlay network")
    .option(OUTPUT_FLAG, OUTPUT_HELP)
    .action(async (opts: Record<string, unknown>) => {
      const format = outputFormat(opts.output);
      const store = await ctx.store();
      const nets =
        opts.network === undefined
          ? ctx.parsed(await listNetworks(store))
          : [(await resolveNetwork(store, String(opts.network))).value];
      const views: NamespaceView[] = [];
      for (const net of nets)
        views.push(...describeNamespaces(net, ctx.parsed(await listNamespaces(store, net.name))));
      ctx.out(fmt.namespaces(views, format));
    });
}

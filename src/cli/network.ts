/** `dctl network overlay ...`: the seed's commands and `endpoints`. */
import type { Command } from "commander";
import {
  createNetwork,
  deleteNetwork,
  describeEndpoints,
  describeNamespaces,
  getNetwork,
  invalid,
  isolateNamespaces,
  joinNamespaces,
  listEndpoints,
  listNamespaces,
  listNetworks,
  makeNamespacesGlobal,
  parseBlockSize,
  setDefaultNetwork,
} from "../model/index.js";
import { OUTPUT_FLAG, OUTPUT_HELP, nameList, outputFormat, type CliContext } from "./context.js";
import * as fmt from "./format.js";

/** --isolate-ns=True|False (as the seed spells it) or true|false; bare --isolate-ns is True. */
export function parseIsolateNs(value: unknown): boolean {
  if (value === undefined || value === true) return true;
  const text = String(value);
  if (/^true$/i.test(text)) return true;
  if (/^false$/i.test(text)) return false;
  throw invalid(`invalid value "${text}" for --isolate-ns: expected True or False`);
}

interface UpdateOptions {
  setDefault?: boolean;
  clearDefault?: boolean;
  joinNamespaces?: string;
  isolateNamespaces?: string;
  makeGlobal?: string;
}

export function registerNetworkCommands(program: Command, ctx: CliContext): Command {
  const network = program.command("network").description("manage networks");
  const overlay = network.command("overlay").description("manage the overlay (private) network");

  overlay
    .command("create <name>")
    .description("create the cluster's overlay network")
    .requiredOption(
      "-s, --subnet <subnet>",
      "the overlay subnet, a /16 (netmask 255.255.0.0), e.g. 172.30.0.0/16",
    )
    .option("--isolate-ns [bool]", "isolate namespaces from each other: True (default) or False")
    .option("--set-default", "use this network for pods that name none")
    .option("--block-size <prefix>", "size of the address block each node takes, e.g. /24 (default)")
    .option(OUTPUT_FLAG, OUTPUT_HELP)
    .action(async (name: string, opts: Record<string, unknown>) => {
      const format = outputFormat(opts.output);
      const isolateNs = parseIsolateNs(opts.isolateNs);
      const blockPrefix = opts.blockSize === undefined ? undefined : parseBlockSize(String(opts.blockSize));
      const created = await createNetwork(await ctx.store(), {
        name,
        subnet: String(opts.subnet),
        isolateNs,
        setDefault: opts.setDefault === true,
        ...(blockPrefix === undefined ? {} : { blockPrefix }),
      });
      ctx.out(fmt.network(created, format));
    });

  overlay
    .command("list")
    .description("list overlay networks")
    .option(OUTPUT_FLAG, OUTPUT_HELP)
    .action(async (opts: Record<string, unknown>) => {
      const format = outputFormat(opts.output);
      ctx.out(fmt.networks(ctx.parsed(await listNetworks(await ctx.store())), format));
    });

  overlay
    .command("update <name>")
    .description("change the default mark or the namespace policy of the overlay network")
    .option("--set-default", "use this network for pods that name none")
    .option("--clear-default", "stop using this network for pods that name none")
    .option("--join-namespaces <namespaces>", "put the namespaces (a,b,...) on one VNI")
    .option("--isolate-namespaces <namespaces>", "give each namespace (a,b,...) a VNI of its own")
    .option("--make-global <namespaces>", "put the namespaces (a,b,...) on the global VNI")
    .action(async (name: string, opts: UpdateOptions) => {
      const chosen = (
        [
          ["--set-default", opts.setDefault === true],
          ["--clear-default", opts.clearDefault === true],
          ["--join-namespaces", opts.joinNamespaces !== undefined],
          ["--isolate-namespaces", opts.isolateNamespaces !== undefined],
          ["--make-global", opts.makeGlobal !== undefined],
        ] as const
      ).filter(([, on]) => on);
      if (chosen.length !== 1) {
        throw invalid(
          chosen.length === 0
            ? "update needs one of --set-default, --clear-default, --join-namespaces, --isolate-namespaces, --make-global"
            : `update takes one change at a time, got ${chosen.map(([flag]) => flag).join(" and ")}`,
        );
      }
      const store = await ctx.store();
      if (opts.setDefault === true || opts.clearDefault === true) {
        await setDefaultNetwork(store, name, opts.setDefault === true);
        ctx.out(fmt.messages.networkUpdated);
      } else if (opts.joinNamespaces !== undefined) {
        const group = await joinNamespaces(store, name, nameList(opts.joinNamespaces));
        ctx.out(fmt.messages.namespacesJoined(group));
      } else if (opts.isolateNamespaces !== undefined) {
        await isolateNamespaces(store, name, nameList(opts.isolateNamespaces));
        ctx.out(fmt.messages.networkUpdated);
      } else if (opts.makeGlobal !== undefined) {
        await makeNamespacesGlobal(store, name, nameList(opts.makeGlobal));
        ctx.out(fmt.messages.networkUpdated);
      }
    });

  overlay
    .command("join-namespaces <name> <namespaces...>")
    .description("put the namespaces (a,b,...) on one VNI")
    .action(async (name: string, namespaces: string[]) => {
      const group = await joinNamespaces(await ctx.store(), name, nameList(namespaces));
      ctx.out(fmt.messages.namespacesJoined(group));
    });

  overlay
    .command("isolate-namespaces <name> <namespaces...>")
    .description("give each namespace (a,b,...) a VNI of its own")
    .action(async (name: string, namespaces: string[]) => {
      await isolateNamespaces(await ctx.store(), name, nameList(namespaces));
      ctx.out(fmt.messages.networkUpdated);
    });

  overlay
    .command("make-global <name> <namespaces...>")
    .description("put the namespaces (a,b,...) on the global VNI: they reach and are reached by all")
    .action(async (name: string, namespaces: string[]) => {
      await makeNamespacesGlobal(await ctx.store(), name, nameList(namespaces));
      ctx.out(fmt.messages.networkUpdated);
    });

  overlay
    .command("list-namespaces <name>")
    .description("list the namespaces known to the overlay network")
    .option(OUTPUT_FLAG, OUTPUT_HELP)
    .action(async (name: string, opts: Record<string, unknown>) => {
      const format = outputFormat(opts.output);
      const store = await ctx.store();
      const { value: net } = await getNetwork(store, name);
      const views = describeNamespaces(net, ctx.parsed(await listNamespaces(store, name)));
      ctx.out(fmt.namespaceNames(views, format));
    });

  overlay
    .command("endpoints <name>")
    .description("list the pod endpoints of the overlay network")
    .option("--node <node>", "only endpoints on this node")
    .option("-n, --namespace <namespace>", "only endpoints of this namespace")
    .option(OUTPUT_FLAG, OUTPUT_HELP)
    .action(async (name: string, opts: Record<string, unknown>) => {
      const format = outputFormat(opts.output);
      const store = await ctx.store();
      const { value: net } = await getNetwork(store, name);
      const namespaces = ctx.parsed(await listNamespaces(store, name));
      const endpoints = ctx.parsed(
        await listEndpoints(store, name, {
          ...(opts.node === undefined ? {} : { node: String(opts.node) }),
          ...(opts.namespace === undefined ? {} : { namespace: String(opts.namespace) }),
        }),
      );
      ctx.out(fmt.endpoints(describeEndpoints(net, namespaces, endpoints), format));
    });

  overlay
    .command("delete <name>")
    .description("delete the overlay network (refused while pods use it)")
    .action(async (name: string) => {
      await deleteNetwork(await ctx.store(), name);
      ctx.out(fmt.messages.networkDeleted);
    });
  return network;
}

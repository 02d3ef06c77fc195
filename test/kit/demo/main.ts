#!/usr/bin/env node
/**
 * `sudo npm run demo [-- --plain | --kubernetes]`: the product's scenario on this machine. Two
 * nodes are network namespaces joined by a veth underlay, each runs `overlayd`, the store is the
 * embedded SQLite file. Where containerd and runc are installed, the scenario is
 * Kubernetes-shaped (kubernetes.ts: namespaces through the Kubernetes API, pods through
 * containerd's CRI); elsewhere, or with --plain, pods are network namespaces attached by calling
 * the `overlay-cni` plugin as a runtime does (plain.ts). --kubernetes insists on the former.
 * Each step prints the command a user would type and its output. Everything lives under one
 * namespace prefix and its temp folders, removed when the demo ends, fails or is interrupted
 * (SIGINT, SIGTERM).
 */
import { isRoot } from "../netns/index.js";
import { containerdMissing } from "../kubecluster.js";
import { kubernetesScenario } from "./kubernetes.js";
import { Unexpected, out, type Stage } from "./narrate.js";
import { plainScenario } from "./plain.js";

const USAGE = "usage: npm run demo [-- --plain | --kubernetes]";

let stage: Stage | undefined;
let interrupted: string | undefined;

async function teardown(): Promise<void> {
  const s = stage;
  if (s === undefined) return;
  out(`\nTearing down: stopping overlayd, removing ${s.describe()}`);
  await s.close();
  out("Nothing left behind.");
}

function onSignal(signal: NodeJS.Signals): void {
  if (interrupted !== undefined) return;
  interrupted = signal;
  out(`\nInterrupted (${signal}).`);
  const code = signal === "SIGINT" ? 130 : 143;
  teardown().then(
    () => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`teardown failed: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    },
  );
}

/** Which scenario: from the flags, and whether containerd is here. Undefined after a usage error. */
function choose(args: readonly string[]): "plain" | "kubernetes" | undefined {
  const unknown = args.filter((a) => a !== "--plain" && a !== "--kubernetes");
  if (unknown.length > 0 || args.length > 1) {
    process.stderr.write(
      `${unknown.length > 0 ? `unknown argument ${unknown[0]}` : "--plain or --kubernetes, not both"}\n${USAGE}\n`,
    );
    return undefined;
  }
  const missing = containerdMissing();
  if (args[0] === "--plain") return "plain";
  if (args[0] === "--kubernetes") {
    if (missing === undefined) return "kubernetes";
    process.stderr.write(`--kubernetes needs containerd: ${missing}\n`);
    return undefined;
  }
  if (missing === undefined) return "kubernetes";
  out(`The Kubernetes-shaped scenario is skipped: ${missing}. The plain one follows.`);
  return "plain";
}

async function main(): Promise<number> {
  const which = choose(process.argv.slice(2));
  if (which === undefined) return 2;
  if (!isRoot()) {
    process.stderr.write(
      "The demo creates network namespaces and TAP devices: run it as root (sudo npm run demo).\n",
    );
    return 1;
  }
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  let code = 0;
  try {
    await (which === "kubernetes" ? kubernetesScenario : plainScenario)((s) => (stage = s));
    out("\nEverything behaved as the product documentation shows.");
  } catch (err) {
    // An interrupted run is torn down by the signal handler; its steps fail meanwhile.
    if (interrupted !== undefined) return new Promise<number>(() => undefined);
    code = 1;
    const what = err instanceof Unexpected ? "Unexpected" : "Failed";
    process.stderr.write(`\n${what}: ${err instanceof Error ? err.message : String(err)}\n`);
    if (stage !== undefined && !(err instanceof Unexpected)) process.stderr.write(stage.logs());
  }
  if (interrupted !== undefined) return new Promise<number>(() => undefined);
  try {
    await teardown();
  } catch (err) {
    process.stderr.write(`teardown failed: ${err instanceof Error ? err.message : String(err)}\n`);
    code = 1;
  }
  return code;
}

process.exitCode = await main();

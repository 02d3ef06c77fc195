/**
 * How the demo speaks: each step as the command a user would type (`$ ...`) and its real output,
 * comments as `# ...`; and what both of its scenarios share (dctl, pings, the seed's steps).
 */
import { execFile } from "node:child_process";
import type { ExecResult, LocalCluster } from "../cluster.js";

export const SUBNET = "172.30.0.0/16";
/** Node names of the seed's `kubectl get pods -o wide`. */
export const NODE_NAMES = ["appserv76", "appserv78"];
/** The seed's annotation value: the network and the tier. */
export const ANNOTATION = JSON.stringify({ network: "red", perfTier: "best-effort" });

export const out = (text = ""): void => {
  process.stdout.write(text.endsWith("\n") || text === "" ? text || "\n" : `${text}\n`);
};
export const comment = (text: string): void => out(`\n# ${text}`);
export const command = (text: string): void => out(`$ ${text}`);

/** The scenario did not behave as the product documentation shows. */
export class Unexpected extends Error {}

export function expectThat(ok: boolean, what: string): void {
  if (!ok) throw new Unexpected(what);
}

export function shellQuote(s: string): string {
  return /^[A-Za-z0-9_./:=@%+,-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** What a running scenario leaves to tear down, and what to show when it fails. */
export interface Stage {
  /** The namespace prefix and folders, to name in the teardown message. */
  describe(): string;
  close(): Promise<void>;
  /** The agents' (and runtimes') logs, for an unexpected failure. */
  logs(): string;
}

/** Prints the `$ dctl ...` line, runs it, prints its output. */
export async function dctl(c: LocalCluster, args: string[]): Promise<ExecResult> {
  command(["dctl", ...args].map(shellQuote).join(" "));
  const r = await c.dctl(args);
  if (r.stdout !== "") out(r.stdout);
  if (r.stderr !== "") out(r.stderr);
  return r;
}

export async function dctlOk(c: LocalCluster, args: string[], expected?: string): Promise<ExecResult> {
  const r = await dctl(c, args);
  expectThat(r.code === 0, `dctl ${args.join(" ")} exited with ${String(r.code)}`);
  if (expected !== undefined) {
    expectThat(r.stdout.includes(expected), `dctl ${args.join(" ")} did not print "${expected}"`);
  }
  return r;
}

/** The seed's `dctl network overlay create`, `list` and `update --set-default`. */
export async function createRed(c: LocalCluster): Promise<void> {
  comment("create the overlay network");
  const created = await dctlOk(c, ["network", "overlay", "create", "red", "-s", SUBNET]);
  expectThat(
    /NAME\s+TYPE\s+SUBNET\s+OVERLAY-NW\s+ISOLATE-NS\s+NETWORKGROUP/.test(created.stdout),
    "no table",
  );
  await dctlOk(c, ["network", "overlay", "list"]);
  await dctlOk(c, ["network", "overlay", "update", "red", "--set-default"], "Successfully updated network");
}

/** The agents, as the user would start them on each node. */
export function showAgents(c: LocalCluster, why: string): void {
  comment("the cluster store is the embedded SQLite file; every command below uses it");
  command(`export OVERLAY_STORE=${c.storeUrl}`);
  comment(why);
  for (const n of c.nodes) {
    command(`ip netns exec ${n.ns} overlayd ${c.agentArgs(n).slice(1).map(shellQuote).join(" ")} &`);
  }
  out(`overlayd is ready on ${c.nodes.map((n) => n.name).join(" and ")} (CNI STATUS succeeds)`);
}

/** A pod's side of the seed's `kubectl exec -it nginx ... ping`. */
export interface PingFrom {
  name: string;
  namespace: string;
  /** The command that runs ping inside the pod's network namespace, before ping's own arguments. */
  enter: string[];
}

/**
 * Runs and prints `ping -c 3` from inside the pod (once the change has reached the agents, which
 * the caller has waited for) and checks that all replies came, or none.
 */
export async function showPing(
  from: PingFrom,
  to: { name: string; namespace: string; ip: string },
  want: "reach" | "blocked",
): Promise<void> {
  comment(
    `kubectl exec -it ${from.name} -n ${from.namespace} -- ping ${to.ip}   (${to.name} in ${to.namespace})`,
  );
  const args = [...from.enter, "ping", "-c", "3", "-i", "0.2", "-W", "1", to.ip];
  command(args.join(" "));
  const r = await new Promise<{ stdout: string; stderr: string }>((resolve) => {
    execFile(args[0] as string, args.slice(1), { timeout: 15_000 }, (_err, stdout, stderr) =>
      resolve({ stdout, stderr }),
    );
  });
  out(r.stdout.trimEnd());
  if (r.stderr.trim() !== "") out(r.stderr.trimEnd());
  const m = /(\d+) packets transmitted, (\d+) received/.exec(r.stdout);
  const received = m ? Number(m[2]) : 0;
  expectThat(
    want === "reach" ? received === 3 : received === 0,
    want === "reach"
      ? `${from.name} could not reach ${to.name}`
      : `${from.name} reached ${to.name} while isolated`,
  );
}

/**
 * The heart of the seed's scenario, the same whichever way the pods were made: coffee and tea
 * isolated, joined onto one VNI, then tea isolated again; `ping(want)` pings from coffee's pod to
 * tea's (waiting until the change has reached the agents) and checks the outcome.
 */
export async function isolateJoinIsolate(
  c: LocalCluster,
  ping: (want: "reach" | "blocked") => Promise<void>,
): Promise<void> {
  comment("coffee and tea are isolated from each other (different VNIs)");
  await ping("blocked");
  comment("join the namespaces: one VNI for both, applied to the running pods");
  await dctlOk(
    c,
    ["network", "overlay", "update", "red", "--join-namespaces", "coffee,tea"],
    "Successfully joined the network namespaces [[coffee tea]]",
  );
  await ping("reach");
  await dctlOk(c, ["network", "overlay", "endpoints", "red"]);
  comment("isolate tea again");
  await dctlOk(
    c,
    ["network", "overlay", "update", "red", "--isolate-namespaces", "tea"],
    "Successfully updated network",
  );
  await ping("blocked");
}

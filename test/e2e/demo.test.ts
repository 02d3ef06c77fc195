/**
 * `npm run demo` (dist/test/kit/demo/main.js): runs the seed's scenario to the end with exit code 0,
 * printing the seed's messages, and leaves nothing behind, also when interrupted: the plain
 * scenario (`--plain`), and by default the Kubernetes-shaped one where containerd is installed
 * (else the plain one, saying why).
 */
import { spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { describe, expect, it } from "vitest";
import { listNamespaces, WORLD_REGISTRY_DIR } from "../kit/netns/index.js";
import { REPO_ROOT } from "../kit/cluster.js";
import { containerdMissing } from "../kit/kubecluster.js";
import { requireTools, skipReason } from "./cluster.js";

const skip = skipReason("test/e2e/demo.test.ts");
const DEMO = join(REPO_ROOT, "dist/test/kit/demo/main.js");
/** Why the default run is the plain scenario here, or undefined: it is the Kubernetes-shaped one. */
const noContainerd = containerdMissing();

interface DemoRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs the demo; when `interrupt` is given, sends that signal (to the demo's pid only) once its
 * output contains `after`.
 */
function runDemo(args: string[], interrupt?: { signal: NodeJS.Signals; after: string }): Promise<DemoRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [DEMO, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    let sent = false;
    const timer = setTimeout(() => {
      if (child.pid !== undefined) process.kill(child.pid, "SIGKILL");
    }, 100_000);
    child.stdout.setEncoding("utf8").on("data", (d: string) => {
      stdout += d;
      if (interrupt !== undefined && !sent && stdout.includes(interrupt.after) && child.pid !== undefined) {
        sent = true;
        process.kill(child.pid, interrupt.signal);
      }
    });
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    child.once("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** Pids of processes whose command line mentions `text`. */
function processesMentioning(text: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, "utf8").includes(text)) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

/**
 * What a run left behind: namespaces with its prefix, its temp folders (the cluster's, the API
 * server's), processes naming them, its record, the pods' network namespaces it named.
 */
async function leftovers(run: DemoRun): Promise<{ prefix: string; temp: string; found: string[] }> {
  const prefix = /Namespace prefix: (ov[0-9a-z]{5});/.exec(run.stdout)?.[1];
  const temp = /temp folder: (\/\S+)/.exec(run.stdout)?.[1];
  if (prefix === undefined || temp === undefined) throw new Error(`the demo named no prefix:\n${run.stdout}`);
  const kubeconfig = /KUBECONFIG=(\/\S+)/.exec(run.stdout)?.[1];
  const folders = [temp, ...(kubeconfig === undefined ? [] : [dirname(kubeconfig)])];
  const sandboxes = [...new Set(run.stdout.match(/\/var\/run\/netns\/cni-[0-9a-f-]+/g) ?? [])];
  const found = [
    ...(await listNamespaces()).filter((n) => n.startsWith(`${prefix}-`)),
    ...folders.filter((f) => existsSync(f)),
    ...folders.flatMap((f) => processesMentioning(f).map((pid) => `process ${pid} (${f})`)),
    ...(existsSync(join(WORLD_REGISTRY_DIR, `${prefix}.json`)) ? [`${prefix}.json`] : []),
    ...sandboxes.filter((n) => existsSync(n)),
  ];
  return { prefix, temp, found };
}

/** The lines a command printed: those after its `$ ...` line, up to the next step or a blank line. */
function outputsOf(o: string, commandLine: string): string[][] {
  return o
    .split(`${commandLine}\n`)
    .slice(1)
    .map((rest) => {
      const lines = rest.split("\n");
      const end = lines.findIndex((l) => l === "" || l.startsWith("$ ") || l.startsWith("# "));
      return lines.slice(0, end === -1 ? lines.length : end);
    });
}

/** The steps both scenarios print alike: the network, join and isolate, delete refused then done. */
function expectSeedSteps(o: string): void {
  expect(o).toContain("$ dctl network overlay create red -s 172.30.0.0/16\n");
  expect(o).toMatch(
    /NAME\s+TYPE\s+SUBNET\s+OVERLAY-NW\s+ISOLATE-NS\s+NETWORKGROUP\nred\s+private\s+172\.30\.0\.0\/16\s+true/,
  );
  expect(o).toContain("$ dctl network overlay list\n");
  expect(o).toContain("$ dctl network overlay update red --set-default\nSuccessfully updated network\n");
  expect(o).toContain("$ dctl network overlay list-namespaces red\n");
  expect(o).toContain("pod/nginx-1 created");
  expect(o).toContain("pod/nginx-2 created");
  expect(o).toContain(
    "$ dctl network overlay update red --join-namespaces coffee,tea\nSuccessfully joined the network namespaces [[coffee tea]]\n",
  );
  expect(o).toContain(
    "$ dctl network overlay update red --isolate-namespaces tea\nSuccessfully updated network\n",
  );
  expect(o).toMatch(/Error: cannot delete network red: 2 endpoints/);
  expect(o).toContain("$ dctl network overlay delete red\nSuccessfully deleted network\n");
  // Isolated, joined, isolated again: the pings in that order.
  const losses = [...o.matchAll(/ (\d+)% packet loss/g)].map((m) => Number(m[1]));
  expect(losses).toEqual([100, 0, 100]);
  expect(o).toContain("Everything behaved as the product documentation shows.");
}

const show = (r: DemoRun): string =>
  `exit ${String(r.code)} ${String(r.signal)}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;

describe("npm run demo's arguments", () => {
  it("refuses an unknown one, saying how to call it", async () => {
    const r = await runDemo(["--bogus"]);
    expect(r.code, show(r)).toBe(2);
    expect(r.stderr).toBe("unknown argument --bogus\nusage: npm run demo [-- --plain | --kubernetes]\n");
  });
});

describe.skipIf(skip !== undefined)("npm run demo", () => {
  it("--plain: runs the seed's scenario with pods attached through the plugin, and cleans up", async () => {
    requireTools("sqlite");
    const r = await runDemo(["--plain"]);
    expect(r.code, show(r)).toBe(0);
    expectSeedSteps(r.stdout);
    expect(r.stdout).not.toContain("Kubernetes-shaped");
    expect(r.stdout).toMatch(/\$ ip netns exec ov[0-9a-z]{5}-p1 ping /);
    expect((await leftovers(r)).found).toEqual([]);
  }, 110_000);

  it(`by default: ${noContainerd === undefined ? "the Kubernetes-shaped scenario (containerd is installed)" : "the plain scenario, saying why"}`, async () => {
    requireTools("sqlite");
    const r = await runDemo([]);
    expect(r.code, show(r)).toBe(0);
    const o = r.stdout;
    expectSeedSteps(o);
    if (noContainerd !== undefined) {
      expect(o).toContain(
        `The Kubernetes-shaped scenario is skipped: ${noContainerd}. The plain one follows.\n`,
      );
    } else {
      expect(o).toMatch(/^Overlay network demo, Kubernetes-shaped/);
      expect(o).toMatch(/\$ export KUBECONFIG=\/\S+\/kubeconfig\n/);
      expect(o).toMatch(/ overlayd .*--kubeconfig \S+ &\n/);
      expect(o).toMatch(
        /\$ overlayd install-cni .*--socket \S+\ninstalled \S+ and \S+ \(cniVersion 1\.0\.0\)/,
      );
      expect(o).toContain('"io.kubernetes.cri.pod-annotations": true');
      expect(o).toContain("$ kubectl create namespace coffee\nnamespace/coffee created\n");
      expect(o).toContain("$ kubectl create namespace tea\nnamespace/tea created\n");
      // The cluster's namespaces, the product's own, and the new ones; tea while its pod runs, then not.
      const listings = outputsOf(o, "$ dctl network overlay list-namespaces red");
      // The cluster's namespaces, the product's own, and coffee (sorted, as list-namespaces prints them).
      const withoutTea = [
        "NAME",
        "coffee",
        "default",
        "kube-node-lease",
        "kube-public",
        "kube-system",
        "overlay-system",
      ];
      expect(listings[0]).toEqual([...withoutTea, "tea"]);
      expect(listings).toHaveLength(3);
      expect(listings[1]).toContain("tea");
      expect(listings[2]).toEqual(withoutTea);
      expect(o).toContain("$ kubectl create -f nginx.json -n coffee\npod/nginx-1 created\n");
      expect(o).toContain("$ kubectl create -f nginx-2.json -n tea\npod/nginx-2 created\n");
      expect(o).toContain(
        '"diamanti.com/endpoint0":"{ \\"network\\": \\"red\\", \\"perfTier\\": \\"best-effort\\" }"',
      );
      expect(o).toMatch(/^nginx-1\s+coffee\s+172\.30\.\S+\s+\S+\s+appserv78\s/m);
      expect(o).toMatch(/^nginx-2\s+tea\s+172\.30\.\S+\s+\S+\s+appserv76\s/m);
      expect(o).toMatch(/\$ nsenter --net=\/var\/run\/netns\/cni-\S+ ping /);
      expect(o).toContain('$ kubectl delete namespace tea\nnamespace "tea" deleted\n');
    }
    expect((await leftovers(r)).found).toEqual([]);
  }, 110_000);

  it.each([
    { args: ["--plain"], signal: "SIGINT" as const, after: "pod/nginx-1 created", code: 130 },
    { args: [], signal: "SIGTERM" as const, after: "Namespace prefix", code: 143 },
    ...(noContainerd === undefined
      ? [{ args: [], signal: "SIGINT" as const, after: "pod/nginx-1 created", code: 130 }]
      : []),
  ])(
    "leaves nothing behind when interrupted by $signal after $after ($args)",
    async ({ args, signal, after, code }) => {
      requireTools("sqlite");
      const r = await runDemo(args, { signal, after });
      expect(r.code, show(r)).toBe(code);
      expect(r.stdout).toContain(`Interrupted (${signal})`);
      expect(r.stdout).toContain("Nothing left behind.");
      const left = await leftovers(r);
      expect(left.found).toEqual([]);
    },
    110_000,
  );
});

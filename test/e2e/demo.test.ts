/**
 * `npm run demo` (dist/test/kit/demo/main.js): runs the seed's scenario to the end with exit code 0,
 * printing the seed's messages, and leaves nothing behind, also when interrupted.
 */
import { spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { listNamespaces, WORLD_REGISTRY_DIR } from "../kit/netns/index.js";
import { REPO_ROOT } from "../kit/cluster.js";
import { requireTools, skipReason } from "./cluster.js";

const skip = skipReason("test/e2e/demo.test.ts");
const DEMO = join(REPO_ROOT, "dist/test/kit/demo/main.js");

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
function runDemo(interrupt?: { signal: NodeJS.Signals; after: string }): Promise<DemoRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [DEMO], { stdio: ["ignore", "pipe", "pipe"] });
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

/** What a run left behind: namespaces with its prefix, its temp folder, its processes, its record. */
async function leftovers(run: DemoRun): Promise<{ prefix: string; temp: string; found: string[] }> {
  const prefix = /Namespace prefix: (ov[0-9a-z]{5});/.exec(run.stdout)?.[1];
  const temp = /temp folder: (\/\S+)/.exec(run.stdout)?.[1];
  if (prefix === undefined || temp === undefined) throw new Error(`the demo named no prefix:\n${run.stdout}`);
  const found = [
    ...(await listNamespaces()).filter((n) => n.startsWith(`${prefix}-`)),
    ...(existsSync(temp) ? [temp] : []),
    ...processesMentioning(temp).map((pid) => `process ${pid}`),
    ...(existsSync(join(WORLD_REGISTRY_DIR, `${prefix}.json`)) ? [`${prefix}.json`] : []),
  ];
  return { prefix, temp, found };
}

const show = (r: DemoRun): string =>
  `exit ${String(r.code)} ${String(r.signal)}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;

describe.skipIf(skip !== undefined)("npm run demo", () => {
  it("runs the seed's scenario, prints each command and its result, and cleans up", async () => {
    requireTools("sqlite");
    const r = await runDemo();
    expect(r.code, show(r)).toBe(0);
    const o = r.stdout;
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
    expect(o).toMatch(/\$ ip netns exec ov[0-9a-z]{5}-p1 ping /);
    const left = await leftovers(r);
    expect(left.found).toEqual([]);
  }, 110_000);

  it.each([
    { signal: "SIGINT" as const, after: "pod/nginx-1 created", code: 130 },
    { signal: "SIGTERM" as const, after: "Namespace prefix", code: 143 },
  ])(
    "leaves nothing behind when interrupted by $signal",
    async ({ signal, after, code }) => {
      requireTools("sqlite");
      const r = await runDemo({ signal, after });
      expect(r.code, show(r)).toBe(code);
      expect(r.stdout).toContain(`Interrupted (${signal})`);
      expect(r.stdout).toContain("Nothing left behind.");
      const left = await leftovers(r);
      expect(left.found).toEqual([]);
    },
    110_000,
  );
});

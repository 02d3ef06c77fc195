/**
 * A test world: network namespaces, veth pairs and processes that belong to one run, named with
 * a prefix unique to that run, and removed together by `destroy()`.
 *
 * Every link a world creates lives inside one of its namespaces (veth pairs are created directly
 * in their target namespaces), so deleting the namespaces deletes the links, and nothing touches
 * the host's own namespace. Commands and processes only ever run inside the world's namespaces;
 * those namespaces have no route out, which keeps test traffic inside the world.
 *
 * Past 400 lines on purpose: what a world creates (namespaces, veths, processes) and how it is
 * removed (also after a crash, by prefix) are one ownership record, kept together so that the
 * removal cannot miss what creation added.
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { run, sleep, type RunOptions, type RunResult } from "./exec.js";
import { IFNAME_MAX, IFNAME_RE, MAC_RE } from "../../../src/dataplane/names.js";

/** Linux IFNAMSIZ is 16 including the terminating NUL. */
export { IFNAME_MAX };
export const NETNS_DIR = "/var/run/netns";
/** Where each live world records its owner and namespaces, so a later run can sweep stale ones. */
export const WORLD_REGISTRY_DIR = "/run/overlay-test-worlds";

export const PREFIX_RE = /^ov[0-9a-z]{5}$/;
const SHORT_NAME_RE = /^[a-z0-9][a-z0-9-]*$/;
const CIDR_RE = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/;

export function isRoot(): boolean {
  return typeof process.getuid === "function" && process.getuid() === 0;
}

/** `ov` + 5 random base36 characters: 7 characters, leaving 8 for `-name` under IFNAMSIZ. */
export function newPrefix(): string {
  const alphabet = "0123456789abcdefghijklmnopqrstuvwxyz";
  const bytes = randomBytes(5);
  let s = "ov";
  for (const b of bytes) s += alphabet[b % 36];
  return s;
}

export function checkIfName(name: string, what = "interface name"): void {
  if (name.length < 1 || name.length > IFNAME_MAX || !IFNAME_RE.test(name))
    throw new RangeError(`${what} must be 1-${IFNAME_MAX} of [A-Za-z0-9_.-], got ${name}`);
}

function checkCidr(cidr: string): void {
  const m = CIDR_RE.exec(cidr);
  if (!m || m.slice(1, 5).some((o) => Number(o) > 255) || Number(m[5]) > 32) {
    throw new TypeError(`address must be IPv4 CIDR like 10.1.2.1/24, got ${cidr}`);
  }
}

/** Start time of a process in clock ticks since boot (field 22 of /proc/<pid>/stat), or undefined. */
function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
  } catch {
    return undefined;
  }
}

interface WorldRecord {
  prefix: string;
  ownerPid: number;
  ownerStart: string;
  namespaces: string[];
}

function recordPath(prefix: string): string {
  return join(WORLD_REGISTRY_DIR, `${prefix}.json`);
}

export interface ExitStatus {
  code: number | null;
  signal: string | null;
}

const OUTPUT_LIMIT = 8 * 1024 * 1024;

/** A long-running process inside a namespace. `stop()` signals this one pid, nothing else. */
export class NsProcess {
  readonly pid: number;
  readonly exited: Promise<ExitStatus>;
  private out = "";
  private err = "";
  private status: ExitStatus | undefined;

  constructor(
    readonly ns: string,
    readonly command: readonly string[],
    private readonly child: ChildProcess,
  ) {
    if (child.pid === undefined) throw new Error(`could not start ${command.join(" ")} in ${ns}`);
    this.pid = child.pid;
    child.stdout?.setEncoding("utf8").on("data", (d: string) => {
      if (this.out.length < OUTPUT_LIMIT) this.out += d;
    });
    child.stderr?.setEncoding("utf8").on("data", (d: string) => {
      if (this.err.length < OUTPUT_LIMIT) this.err += d;
    });
    this.exited = new Promise((resolve) => {
      child.on("close", (code, signal) => {
        this.status = { code, signal };
        resolve(this.status);
      });
    });
  }

  get running(): boolean {
    return this.status === undefined;
  }

  get stdout(): string {
    return this.out;
  }

  get stderr(): string {
    return this.err;
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. Safe to repeat. */
  async stop(graceMs = 2000): Promise<ExitStatus> {
    if (this.status) return this.status;
    this.child.kill("SIGTERM");
    let timer: NodeJS.Timeout | undefined;
    const killed = await Promise.race([
      this.exited.then(() => false),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), graceMs);
      }),
    ]);
    clearTimeout(timer);
    if (killed && this.running) this.child.kill("SIGKILL");
    return this.exited;
  }
}

export interface VethEnd {
  /** Namespace (short or full name) the end lives in. */
  ns: string;
  /** Interface name inside that namespace. */
  name: string;
  /** IPv4 address with prefix length, e.g. 10.7.1.1/24. */
  addr?: string;
  mac?: string;
}

export interface VethOptions {
  /** Default 1500. */
  mtu?: number;
  /** Bring both ends up; default true. */
  up?: boolean;
}

export interface WorldOptions {
  /** Use this prefix instead of a random one (must match ov + 5 base36 chars). */
  prefix?: string;
  /** Remove worlds left by processes that no longer exist before creating this one; default true. */
  sweepStale?: boolean;
}

const liveWorlds = new Set<World>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Last resort for a world whose owner never called destroy(): synchronous, best effort.
  process.on("exit", () => {
    for (const w of liveWorlds) w.destroySync();
  });
}

export class World {
  readonly prefix: string;
  private readonly namespaces = new Set<string>();
  private readonly processes = new Set<NsProcess>();
  private destroying: Promise<void> | undefined;

  private constructor(prefix: string) {
    this.prefix = prefix;
  }

  /** Creates an empty world (no namespaces yet) and registers it for the stale-world sweep. */
  static async create(options: WorldOptions = {}): Promise<World> {
    if (!isRoot()) throw new Error("network namespaces need root");
    if (options.sweepStale ?? true) await sweepStaleWorlds();
    const prefix = options.prefix ?? newPrefix();
    if (!PREFIX_RE.test(prefix)) throw new RangeError(`world prefix must match ${PREFIX_RE}, got ${prefix}`);
    const existing = (await listNamespaces()).filter((n) => n.startsWith(`${prefix}-`));
    if (existing.length > 0)
      throw new Error(`namespaces with prefix ${prefix} already exist: ${existing.join(", ")}`);
    const w = new World(prefix);
    w.writeRecord();
    liveWorlds.add(w);
    installExitHook();
    return w;
  }

  get destroyed(): boolean {
    return this.destroying !== undefined;
  }

  /** Full namespace name for a short one: `<prefix>-<short>`. */
  ns(short: string): string {
    if (short.startsWith(`${this.prefix}-`)) return short;
    return `${this.prefix}-${short}`;
  }

  /** Path of the namespace, as `Switch` and `setns(2)` want it. */
  nsPath(name: string): string {
    return join(NETNS_DIR, this.owned(name));
  }

  /** Full names of the namespaces this world created. */
  listNamespaces(): string[] {
    return [...this.namespaces];
  }

  /** The full name of one of this world's namespaces; throws for anything else. */
  owned(name: string): string {
    const full = this.ns(name);
    if (!this.namespaces.has(full)) throw new Error(`${name} is not a namespace of world ${this.prefix}`);
    return full;
  }

  /** Creates namespace `<prefix>-<short>` with loopback up; returns its full name. */
  async addNamespace(short: string): Promise<string> {
    this.checkAlive();
    const full = `${this.prefix}-${short}`;
    if (!SHORT_NAME_RE.test(short) || full.length > IFNAME_MAX) {
      throw new RangeError(
        `namespace short name must be [a-z0-9-], at most ${IFNAME_MAX - this.prefix.length - 1} chars, got ${short}`,
      );
    }
    if (this.namespaces.has(full)) throw new Error(`namespace ${full} already exists in this world`);
    // Recorded before creation so that a crash in between still leaves it to the sweep.
    this.namespaces.add(full);
    this.writeRecord();
    await run("ip", ["netns", "add", full]);
    await run("ip", ["-n", full, "link", "set", "lo", "up"]);
    return full;
  }

  /** Creates a veth pair whose ends are born inside their namespaces, with optional addresses. */
  async addVeth(a: VethEnd, b: VethEnd, options: VethOptions = {}): Promise<void> {
    this.checkAlive();
    const nsA = this.owned(a.ns);
    const nsB = this.owned(b.ns);
    checkIfName(a.name);
    checkIfName(b.name);
    const mtu = String(options.mtu ?? 1500);
    const end = (e: VethEnd, ns: string): string[] => {
      const args = [e.name, "netns", ns, "mtu", mtu];
      if (e.mac !== undefined) {
        if (!MAC_RE.test(e.mac)) throw new TypeError(`bad mac ${e.mac}`);
        args.push("address", e.mac);
      }
      return args;
    };
    await run("ip", ["link", "add", ...end(a, nsA), "type", "veth", "peer", "name", ...end(b, nsB)]);
    for (const [e, ns] of [
      [a, nsA],
      [b, nsB],
    ] as const) {
      if (e.addr !== undefined) {
        checkCidr(e.addr);
        await run("ip", ["-n", ns, "addr", "add", e.addr, "dev", e.name]);
      }
      if (options.up ?? true) await run("ip", ["-n", ns, "link", "set", e.name, "up"]);
    }
  }

  /** `ip -n <ns> <args...>`. */
  ip(ns: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    return run("ip", ["-n", this.owned(ns), ...args], options);
  }

  /** Runs a command inside one of the world's namespaces and waits for it (default timeout 15 s). */
  exec(
    ns: string,
    command: string,
    args: readonly string[] = [],
    options: RunOptions = {},
  ): Promise<RunResult> {
    this.checkAlive();
    return run("ip", ["netns", "exec", this.owned(ns), command, ...args], options);
  }

  /**
   * Starts a long-running process inside a namespace. `ip netns exec` execs the command in place,
   * so the handle's pid is the command's own.
   */
  start(ns: string, command: string, args: readonly string[] = []): NsProcess {
    this.checkAlive();
    const full = this.owned(ns);
    const child = spawn("ip", ["netns", "exec", full, command, ...args], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    const p = new NsProcess(full, [command, ...args], child);
    this.processes.add(p);
    void p.exited.then(() => this.processes.delete(p));
    return p;
  }

  /**
   * Stops every process, then removes every namespace (and with them every link) this world
   * created. Safe to call twice or concurrently; throws after doing all it can if something
   * could not be removed.
   */
  destroy(): Promise<void> {
    this.destroying ??= this.doDestroy();
    return this.destroying;
  }

  private async doDestroy(): Promise<void> {
    const problems: string[] = [];
    await Promise.all(
      [...this.processes].map((p) =>
        p.stop(1000).catch((e: unknown) => {
          problems.push(`stop ${p.pid}: ${String(e)}`);
        }),
      ),
    );
    const present = new Set(await listNamespaces());
    for (const ns of this.namespaces) {
      if (!present.has(ns)) continue;
      // Anything still running in the namespace was started inside it by this world.
      await killNamespacePids(ns);
      const r = await run("ip", ["netns", "del", ns], { allowFailure: true });
      if (r.code !== 0) problems.push(`ip netns del ${ns}: ${r.stderr.trim()}`);
    }
    liveWorlds.delete(this);
    if (problems.length === 0) rmSync(recordPath(this.prefix), { force: true });
    if (problems.length > 0)
      throw new Error(`world ${this.prefix} not fully destroyed: ${problems.join("; ")}`);
  }

  /** Synchronous best-effort cleanup for process exit. */
  destroySync(): void {
    if (!liveWorlds.has(this)) return;
    liveWorlds.delete(this);
    for (const p of this.processes) {
      try {
        process.kill(p.pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    for (const ns of this.namespaces) {
      try {
        execFileSync("ip", ["netns", "del", ns], { stdio: "ignore", timeout: 5000 });
      } catch {
        // the sweep gets another chance
      }
    }
    rmSync(recordPath(this.prefix), { force: true });
  }

  private checkAlive(): void {
    if (this.destroying) throw new Error(`world ${this.prefix} is destroyed`);
  }

  private writeRecord(): void {
    const rec: WorldRecord = {
      prefix: this.prefix,
      ownerPid: process.pid,
      ownerStart: processStartTime(process.pid) ?? "",
      namespaces: [...this.namespaces],
    };
    mkdirSync(WORLD_REGISTRY_DIR, { recursive: true });
    const tmp = `${recordPath(this.prefix)}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(rec));
    renameSync(tmp, recordPath(this.prefix));
  }
}

/** Names of every network namespace on the machine (`ip -j netns list`). */
export async function listNamespaces(): Promise<string[]> {
  const r = await run("ip", ["-j", "netns", "list"]);
  const text = r.stdout.trim();
  if (!text) return [];
  const parsed = JSON.parse(text) as unknown;
  if (!Array.isArray(parsed)) return [];
  return parsed.flat().flatMap((e: unknown) => {
    const name = (e as { name?: unknown } | null)?.name;
    return typeof name === "string" ? [name] : [];
  });
}

async function killNamespacePids(ns: string): Promise<void> {
  const r = await run("ip", ["netns", "pids", ns], { allowFailure: true });
  const pids = r.stdout
    .split(/\s+/)
    .filter(Boolean)
    .map(Number)
    .filter((pid) => Number.isInteger(pid) && pid > 1 && pid !== process.pid);
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // exited meanwhile
    }
  }
  for (let i = 0; i < 20 && pids.some((pid) => processStartTime(pid) !== undefined); i++) await sleep(50);
}

/**
 * Removes every namespace whose name starts with `<prefix>-`, killing what runs in them first.
 * Only for a prefix known to belong to a finished run.
 */
export async function removeWorldByPrefix(prefix: string): Promise<string[]> {
  if (!PREFIX_RE.test(prefix)) throw new RangeError(`not a world prefix: ${prefix}`);
  const removed: string[] = [];
  for (const ns of await listNamespaces()) {
    if (!ns.startsWith(`${prefix}-`)) continue;
    await killNamespacePids(ns);
    const r = await run("ip", ["netns", "del", ns], { allowFailure: true });
    if (r.code === 0) removed.push(ns);
  }
  rmSync(recordPath(prefix), { force: true });
  return removed;
}

/**
 * Removes the worlds whose owning process has exited (crashed or killed before its cleanup ran).
 * Worlds of live processes (other test files running in parallel) are left alone.
 * Returns the prefixes swept.
 */
export async function sweepStaleWorlds(): Promise<string[]> {
  let files: string[];
  try {
    files = readdirSync(WORLD_REGISTRY_DIR).filter((f) => f.endsWith(".json"));
  } catch {
    return [];
  }
  const swept: string[] = [];
  for (const f of files) {
    let rec: WorldRecord;
    try {
      rec = JSON.parse(readFileSync(join(WORLD_REGISTRY_DIR, f), "utf8")) as WorldRecord;
    } catch {
      continue;
    }
    if (!PREFIX_RE.test(rec.prefix)) continue;
    const start = processStartTime(rec.ownerPid);
    if (start !== undefined && start === rec.ownerStart) continue;
    await removeWorldByPrefix(rec.prefix);
    swept.push(rec.prefix);
  }
  return swept;
}

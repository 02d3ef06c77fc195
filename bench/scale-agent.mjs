/**
 * The process the real agent runs in, for one scale point of bench/scale.mjs (which forks it):
 * an Agent (src/agent/agent.ts) on the benchmark's etcd, through its public constructor, start,
 * state and stop only, with
 *   - a switch that is a real `Switch` (bound to 127.0.0.1 on a free port, no ports, no root)
 *     behind a recorder: table calls (setPeers, updateRemotes, replaceRemotes, setGlobalVnis) are
 *     forwarded and, for the remote table, remembered as what they added and removed, with the
 *     time each call returned; port calls (addPort, removePort, setPortVni) are recorded, not
 *     made (no TAP devices);
 *   - plumbing that does nothing (no ip, no nft, nothing on the host).
 * This process measures itself: CPU with process.cpuUsage(), memory from /proc/self/status. It
 * holds nothing of the cluster but the recorder's copy of the remote table (MAC -> entry) and a
 * digest of it; the expected table comes as a digest too, so "programmed" is seen the moment the
 * table call that completes it returns.
 *
 * usage (from bench/scale.mjs): fork with --store URL --node NAME --socket PATH
 *   --expect COUNT,SUM,XOR --timeout-ms MS. It starts the agent at once and reports
 *   { type: "started" | "start-failed" | "programmed" | "not-programmed" }; then answers
 *   { cmd: "churn-begin" | "churn-end" | "log" | "state" | "dump" | "stop" }.
 */
import { createSocket } from "node:dgram";
import { clearTimeout, setTimeout } from "node:timers";
import { pino } from "pino";
import { Agent } from "../dist/src/agent/agent.js";
import { Switch } from "../dist/src/dataplane/switch.js";
import { openStore } from "../dist/src/store/index.js";
import { TableDigest, clock, entryValue, errorText, memory } from "./scale-common.mjs";

function parseArgs(argv) {
  const o = {
    store: "",
    node: "",
    socket: "",
    expect: { count: 0, sum: 0, xor: 0 },
    timeoutMs: 120_000,
    leaseTtlS: 10,
  };
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (value === undefined) throw new Error(`${flag} needs a value`);
    if (flag === "--store") o.store = value;
    else if (flag === "--node") o.node = value;
    else if (flag === "--socket") o.socket = value;
    else if (flag === "--timeout-ms") o.timeoutMs = Number(value);
    else if (flag === "--lease-ttl") o.leaseTtlS = Number(value);
    else if (flag === "--expect") {
      const [count, sum, xor] = value.split(",").map(Number);
      o.expect = { count: Number(count), sum: Number(sum), xor: Number(xor) };
    } else throw new Error(`unknown argument ${flag}`);
  }
  return o;
}

/** @returns {Promise<number>} a UDP port that was free on 127.0.0.1 a moment ago */
function freeUdpPort() {
  return new Promise((resolve, reject) => {
    const s = createSocket("udp4");
    s.once("error", reject);
    s.bind(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/**
 * The agent's switch: a real Switch for the tables, a recorder of every call.
 * @implements {import("../dist/src/agent/ports.js").AgentSwitch}
 */
class RecordingSwitch {
  /** MAC -> entryValue: the remote table as the calls left it. @type {Map<string, string>} */
  remotes = new Map();
  digest = new TableDigest();
  /** While set, each remote-table call is logged with the MACs it added and removed. */
  logging = false;
  /** @type {{ t: number, call: string, added: string[], removed: string[] }[]} */
  log = [];
  /** Calls by name, and the entries the remote-table calls carried. */
  calls = /** @type {Record<string, number>} */ ({});
  entriesCarried = 0;
  /** Milliseconds spent in the real switch's table calls. */
  switchMs = 0;
  /** Milliseconds spent recording remote-table calls (the measurement's own cost, in this process). */
  recorderMs = 0;
  peers = 0;
  /** @type {Map<number, { name: string, kind: string, vni: number }>} */
  ports = new Map();
  nextPort = 1;
  /** Called after every remote-table call. @type {((t: number) => void) | undefined} */
  onRemotes;

  /** @param {import("../dist/src/dataplane/switch.js").SwitchOptions} options @param {number} port */
  constructor(options, port) {
    this.sw = new Switch({ ...options, underlayIp: "127.0.0.1", port });
  }

  count(call) {
    this.calls[call] = (this.calls[call] ?? 0) + 1;
  }

  /** Runs a call of the real switch, timed; returns the time it returned. */
  forward(call, fn) {
    this.count(call);
    const t0 = clock();
    fn();
    const t = clock();
    this.switchMs += t - t0;
    return t;
  }

  addPort(p) {
    this.count("addPort");
    const id = this.nextPort++;
    this.ports.set(id, { name: p.name, kind: p.kind ?? "pod", vni: p.vni });
    return id;
  }

  removePort(id) {
    this.count("removePort");
    this.ports.delete(id);
    return Promise.resolve();
  }

  setPortVni(id, vni) {
    this.count("setPortVni");
    const p = this.ports.get(id);
    if (p) p.vni = vni;
  }

  setPeers(peers) {
    this.forward("setPeers", () => this.sw.setPeers(peers));
    this.peers = peers.length;
  }

  setGlobalVnis(vnis) {
    this.forward("setGlobalVnis", () => this.sw.setGlobalVnis(vnis));
  }

  /** @param {import("../dist/src/dataplane/switch.js").RemoteEndpoint[]} add @param {string[]} [remove] */
  updateRemotes(add, remove = []) {
    const t = this.forward("updateRemotes", () => this.sw.updateRemotes(add, remove));
    this.entriesCarried += add.length + remove.length;
    const added = [];
    const removed = [];
    for (const mac of remove) {
      const old = this.remotes.get(mac);
      if (old === undefined) continue;
      this.remotes.delete(mac);
      this.digest.remove(mac, old);
      removed.push(mac);
    }
    for (const r of add) {
      const value = entryValue(r);
      const old = this.remotes.get(r.mac);
      if (old === value) continue;
      if (old !== undefined) this.digest.remove(r.mac, old);
      this.remotes.set(r.mac, value);
      this.digest.add(r.mac, value);
      added.push(r.mac);
    }
    this.after(t, "updateRemotes", added, removed);
  }

  /** @param {import("../dist/src/dataplane/switch.js").RemoteEndpoint[]} all */
  replaceRemotes(all) {
    const t = this.forward("replaceRemotes", () => this.sw.replaceRemotes(all));
    this.entriesCarried += all.length;
    const next = new Map();
    const digest = new TableDigest();
    const added = [];
    for (const r of all) {
      const value = entryValue(r);
      next.set(r.mac, value);
      digest.add(r.mac, value);
      if (this.remotes.get(r.mac) !== value) added.push(r.mac);
    }
    const removed = [];
    for (const mac of this.remotes.keys()) if (!next.has(mac)) removed.push(mac);
    this.remotes = next;
    this.digest = digest;
    this.after(t, "replaceRemotes", added, removed);
  }

  after(t, call, added, removed) {
    if (this.logging && (added.length > 0 || removed.length > 0)) this.log.push({ t, call, added, removed });
    this.onRemotes?.(t);
    this.recorderMs += clock() - t;
  }

  features() {
    return this.sw.features();
  }

  counters() {
    return this.sw.counters();
  }

  close() {
    this.count("close");
    this.sw.close();
  }
}

/** @type {import("../dist/src/agent/plumbing.js").Plumbing} */
const noPlumbing = {
  netnsExists: () => true,
  configurePod: async () => undefined,
  inspectPod: async () => undefined,
  shapePodIngress: async () => undefined,
  removePodIngress: async () => undefined,
  configureGateway: async () => undefined,
  configureMasquerade: async () => undefined,
  removeMasquerade: async () => undefined,
};

function send(message) {
  process.send?.(message);
}

const o = parseArgs(process.argv.slice(2));
const port = await freeUdpPort();

/** The agent's log at overlayd's default level, kept here: lines counted, warnings and errors kept. */
const logged = { lines: 0, warnings: /** @type {string[]} */ ([]) };
const logger = pino(
  { level: "info", base: { node: o.node } },
  {
    write(line) {
      logged.lines++;
      if (/"level":(40|50|60)/.test(line)) {
        logged.warnings.push(line.trim().slice(0, 600));
        if (logged.warnings.length > 20) logged.warnings.shift();
      }
    },
  },
);

const baseline = memory();
/** @type {RecordingSwitch | undefined} */
let recorder;
const store = await openStore(o.store);
const agent = new Agent(
  {
    node: o.node,
    underlayIp: "127.0.0.1",
    store,
    socketPath: o.socket,
    logger,
    leaseTtlSeconds: o.leaseTtlS,
  },
  {
    createSwitch: (options) => {
      recorder = new RecordingSwitch(options, port);
      recorder.onRemotes = (t) => checkProgrammed(t);
      return recorder;
    },
    plumbing: noPlumbing,
  },
);

const tStart = clock();
/** @type {number | undefined} */
let startedAt;
/** @type {{ t: number, rssMb: number, hwmMb: number } | undefined} */
let programmed;
let reported = false;

function checkProgrammed(t) {
  if (programmed !== undefined || recorder === undefined) return;
  if (!TableDigest.equal(recorder.digest.value(), o.expect)) return;
  programmed = { t, ...memory() };
  report();
}

/** Sends "programmed" once the agent has started and its table holds every expected entry. */
function report() {
  if (reported || startedAt === undefined || programmed === undefined || recorder === undefined) return;
  reported = true;
  clearTimeout(timer);
  send({
    type: "programmed",
    programmedMs: programmed.t - tStart,
    startMs: startedAt - tStart,
    rssMb: programmed.rssMb,
    hwmMb: programmed.hwmMb,
    baselineRssMb: baseline.rssMb,
    calls: { ...recorder.calls },
    entriesCarried: recorder.entriesCarried,
    switchMs: recorder.switchMs,
  });
}

const timer = setTimeout(() => {
  if (reported) return;
  reported = true;
  send({
    type: "not-programmed",
    afterMs: clock() - tStart,
    startMs: startedAt === undefined ? undefined : startedAt - tStart,
    have: recorder?.digest.value() ?? { count: 0, sum: 0, xor: 0 },
    ...memory(),
    warnings: logged.warnings,
  });
}, o.timeoutMs);

agent.start().then(
  () => {
    startedAt = clock();
    send({ type: "started", startMs: startedAt - tStart });
    report();
  },
  (err) => {
    reported = true;
    clearTimeout(timer);
    send({
      type: "start-failed",
      afterMs: clock() - tStart,
      error: errorText(err),
      ...memory(),
      warnings: logged.warnings,
    });
  },
);

/** @type {{ t: number, cpu: NodeJS.CpuUsage } | undefined} */
let churnBegin;

process.on("disconnect", () => process.exit(0));
process.on("message", (/** @type {{ cmd: string, from?: number }} */ m) => {
  const sw = recorder;
  if (m.cmd === "churn-begin") {
    if (sw) sw.logging = true;
    churnBegin = { t: clock(), cpu: process.cpuUsage() };
    send({
      type: "churn-begun",
      t: churnBegin.t,
      switchMs: sw?.switchMs ?? 0,
      recorderMs: sw?.recorderMs ?? 0,
      calls: { ...sw?.calls },
    });
  } else if (m.cmd === "churn-end") {
    const cpu = process.cpuUsage(churnBegin?.cpu);
    const t = clock();
    send({
      type: "churn-ended",
      t,
      wallMs: t - (churnBegin?.t ?? t),
      userMs: cpu.user / 1000,
      systemMs: cpu.system / 1000,
      switchMs: sw?.switchMs ?? 0,
      recorderMs: sw?.recorderMs ?? 0,
      calls: { ...sw?.calls },
      ...memory(),
    });
  } else if (m.cmd === "log") {
    send({ type: "log", from: m.from ?? 0, entries: sw?.log.slice(m.from ?? 0) ?? [] });
  } else if (m.cmd === "state") {
    const s = agent.state();
    send({
      type: "state",
      digest: sw?.digest.value() ?? { count: 0, sum: 0, xor: 0 },
      agent: {
        ready: s.ready,
        // Fields newer agents report; undefined on older ones.
        following: /** @type {{ following?: boolean }} */ (s).following,
        storeTroubles: /** @type {{ storeTroubles?: number }} */ (s).storeTroubles,
        remoteEndpoints: s.remoteEndpoints,
        peers: s.peers,
        ports: s.ports.length,
      },
      switchPeers: sw?.peers ?? 0,
      calls: { ...sw?.calls },
      logLines: logged.lines,
      warnings: logged.warnings,
      ...memory(),
    });
  } else if (m.cmd === "dump") {
    send({ type: "dump", entries: sw ? [...sw.remotes] : [] });
  } else if (m.cmd === "stop") {
    clearTimeout(timer);
    agent
      .stop()
      .catch(() => undefined)
      .then(() => store.close())
      .catch(() => undefined)
      .finally(() => process.exit(0));
  }
});
process.on("unhandledRejection", (err) => {
  logged.warnings.push(`unhandled rejection: ${errorText(err)}`);
});

/**
 * Smoke test of the data-path microbenchmarks (bench/micro/datapath.mjs, native/bench/): builds
 * the bench addon, checks that the switch's real code and each simple version produce the same
 * bytes for the same input (and that those bytes are right on their own: VXLAN header,
 * checksums, sequence numbers), then runs every benchmark for a fraction of a second and checks
 * the figures are positive. The coalescing benchmark needs root (a namespace and a TAP); without
 * root the test checks that it is reported as skipped.
 */
import { execFile } from "node:child_process";
import { createRequire } from "node:module";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";
import { isRoot } from "../kit/netns/index.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const ADDON = join(ROOT, "native", "bench", "build", "Release", "micro_bench.node");
const VNI = 100;
const MSS = 1398;

interface Lookup {
  project(): number;
  unorderedMap(): number;
  orderedMap(): number;
}
interface Encap {
  verify(): { project: Buffer[]; simple: Buffer[] };
}
interface Segment {
  readonly segments: number;
  readonly frameLength: number;
  verify(): Record<"project" | "projectNoGso" | "simple" | "simpleProjectSum", Buffer[]>;
}
interface MicroAddon {
  LookupBench: new (entries: number, lookups: number) => Lookup;
  EncapBench: new (kind: "udp" | "tcp", frames: number) => Encap;
  SegmentBench: new (payload: number, gsoSize: number) => Segment;
  checksumsValid(frame: Buffer): boolean;
}

interface Row {
  group: string;
  project: { name: string; hz: number };
  simple: { name: string; hz: number };
  ratio: number;
}
interface Report {
  ok: boolean;
  checks: Record<string, { ok: boolean; detail: string }>;
  rows: Row[];
  skipped: { id: string; reason: string }[];
}

function node(
  script: string,
  args: string[],
  timeoutMs: number,
): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [join(ROOT, script), ...args],
      { cwd: ROOT, timeout: timeoutMs, encoding: "utf8", maxBuffer: 16 << 20 },
      (error, out, err) => {
        const code = error ? (typeof error.code === "number" ? error.code : null) : 0;
        resolve({ code, out, err });
      },
    );
  });
}

const VXLAN = Buffer.from([0x08, 0, 0, 0, 0, 0, VNI, 0]);

describe("data-path microbenchmarks", () => {
  let addon: MicroAddon;

  beforeAll(async () => {
    const built = await node("bench/micro/build.mjs", [], 110_000);
    expect(built.code, `building native/bench failed:\n${built.err}`).toBe(0);
    addon = createRequire(import.meta.url)(ADDON) as MicroAddon;
  }, 120_000);

  it("finds the same endpoints in the real table and the simple maps", () => {
    const b = new addon.LookupBench(10_000, 1024);
    const sum = b.project();
    expect(sum).toBeGreaterThan(0);
    expect(b.unorderedMap()).toBe(sum);
    expect(b.orderedMap()).toBe(sum);
  });

  it("encapsulates frames into the same datagrams both ways", () => {
    for (const [kind, frameLen] of [
      ["udp", 106],
      ["tcp", 1464],
    ] as const) {
      const v = new addon.EncapBench(kind, 32).verify();
      expect(v.project).toHaveLength(32);
      expect(v.simple).toHaveLength(32);
      v.project.forEach((d, i) => {
        expect(d.equals(v.simple[i]!), `${kind} datagram ${i} differs`).toBe(true);
        expect(d.length).toBe(8 + frameLen);
        expect(d.subarray(0, 8).equals(VXLAN)).toBe(true);
        expect(addon.checksumsValid(d.subarray(8)), `${kind} datagram ${i}: checksum`).toBe(true);
      });
    }
  });

  it("cuts a TSO super-frame into the same segments both ways, as TSO would", () => {
    const b = new addon.SegmentBench(46 * MSS, MSS);
    expect(b.segments).toBe(46);
    const v = b.verify();
    const project = v.project;
    expect(project).toHaveLength(46);
    for (const other of ["projectNoGso", "simple", "simpleProjectSum"] as const) {
      expect(v[other], other).toHaveLength(46);
      project.forEach((d, i) => expect(d.equals(v[other][i]!), `${other} segment ${i} differs`).toBe(true));
    }
    // Inner frame: Ethernet (14), IPv4 (20), TCP with timestamps (32), 1398 bytes of payload.
    const ip = 8 + 14;
    const tcp = ip + 20;
    const seq0 = project[0]!.readUInt32BE(tcp + 4);
    const id0 = project[0]!.readUInt16BE(ip + 4);
    project.forEach((d, i) => {
      expect(d.length).toBe(8 + 66 + MSS);
      expect(d.subarray(0, 8).equals(VXLAN)).toBe(true);
      expect(addon.checksumsValid(d.subarray(8)), `segment ${i}: checksum`).toBe(true);
      expect(d.readUInt16BE(ip + 2)).toBe(20 + 32 + MSS);
      expect(d.readUInt16BE(ip + 4)).toBe((id0 + i) & 0xffff);
      expect(d.readUInt32BE(tcp + 4)).toBe((seq0 + i * MSS) >>> 0);
      const psh = (d[tcp + 13]! & 0x08) !== 0;
      expect(psh, `PSH on segment ${i}`).toBe(i === 45);
    });
  });

  it("runs every benchmark briefly with positive figures", { timeout: 60_000 }, async () => {
    const r = await node("bench/micro/datapath.mjs", ["--quick", "--json"], 50_000);
    expect(r.code, `datapath.mjs failed:\n${r.err}\n${r.out}`).toBe(0);
    const report = JSON.parse(r.out) as Report;
    expect(report.ok, r.err).toBe(true);
    const groups = new Set(report.rows.map((row) => row.group));
    for (const g of ["lookup", "encap-udp", "encap-tcp", "segment"]) expect(groups, g).toContain(g);
    for (const row of report.rows) {
      expect(row.project.hz, `${row.group} ${row.project.name}`).toBeGreaterThan(0);
      expect(row.simple.hz, `${row.group} ${row.simple.name}`).toBeGreaterThan(0);
      expect(row.ratio).toBeGreaterThan(0);
    }
    for (const [id, check] of Object.entries(report.checks))
      expect(check.ok, `${id}: ${check.detail}`).toBe(true);
    if (isRoot()) {
      expect(groups).toContain("coalesce");
      expect(report.checks.coalesce?.detail).toMatch(/TAP writes 1 and 44/);
    } else {
      expect(report.skipped.map((s) => s.id)).toContain("coalesce");
    }
  });
});

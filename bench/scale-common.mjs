/**
 * What the three processes of the control-plane scale benchmark (bench/scale.mjs) share: one
 * clock, the form of a remote table entry, an order-independent digest of a remote table, and
 * the process's memory as /proc reports it.
 */
import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";

/**
 * Milliseconds since the epoch on a high-resolution clock that is the same in every process of
 * the machine (performance.timeOrigin is taken from the wall clock at process start).
 */
export function clock() {
  return performance.timeOrigin + performance.now();
}

/**
 * One remote table entry as text: what must be programmed for its MAC.
 * @param {{ vni: number, ipv4: string, vtep: string }} r
 */
export function entryValue(r) {
  return `${r.vni} ${r.ipv4} ${r.vtep}`;
}

/** @param {string} s @returns {number} FNV-1a, 32 bits */
function fnv1a(s) {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/**
 * A digest of a set of (MAC, entry) pairs that is kept up to date entry by entry (add and remove
 * in any order): their count, the sum and the XOR of their hashes. Two tables with equal digests
 * are equal but for a hash collision; the benchmark compares digests while it measures (cheap,
 * nothing held but three numbers) and whole tables only to name what differs.
 */
export class TableDigest {
  count = 0;
  sum = 0;
  xor = 0;

  /** @param {string} mac @param {string} value */
  add(mac, value) {
    const h = fnv1a(`${mac} ${value}`);
    this.count++;
    this.sum = (this.sum + h) >>> 0;
    this.xor = (this.xor ^ h) >>> 0;
  }

  /** @param {string} mac @param {string} value */
  remove(mac, value) {
    const h = fnv1a(`${mac} ${value}`);
    this.count--;
    this.sum = (this.sum - h) >>> 0;
    this.xor = (this.xor ^ h) >>> 0;
  }

  /** @returns {{ count: number, sum: number, xor: number }} */
  value() {
    return { count: this.count, sum: this.sum, xor: this.xor };
  }

  /** @param {{ count: number, sum: number, xor: number }} a @param {{ count: number, sum: number, xor: number }} b */
  static equal(a, b) {
    return a.count === b.count && a.sum === b.sum && a.xor === b.xor;
  }
}

/** @returns {{ rssMb: number, hwmMb: number }} this process's resident set now and its peak */
export function memory() {
  const status = readFileSync("/proc/self/status", "utf8");
  const kb = (field) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? NaN);
  return { rssMb: kb("VmRSS") / 1024, hwmMb: kb("VmHWM") / 1024 };
}

/** Node i of a scale point (1 is the real agent's), as its registration names it. */
export function nodeName(i) {
  return `node-${String(i).padStart(3, "0")}`;
}

/** @param {unknown} err */
export function errorText(err) {
  if (err instanceof Error) {
    const code = /** @type {{ code?: unknown }} */ (err).code;
    return `${err.name}${code === undefined ? "" : ` ${String(code)}`}: ${err.message}`;
  }
  return String(err);
}

/**
 * Time in tests. Speed targets are proven by benchmarks (bench/), which print the figures; a test
 * only bounds time loosely, so that a loaded 2-core machine cannot fail it while a stuck thread,
 * a lost wake-up or a timeout that never fires still does.
 *
 * OVERLAY_TEST_TIMING chooses how a timed figure is judged:
 *   - "loose" (default): against LOOSE_FACTOR times its target;
 *   - "targets": against the target itself (what `npm run bench:tables` runs);
 *   - "off": not judged, only printed. The sanitizer run sets it: an instrumented build is many
 *     times slower, and that run proves memory safety and defined behaviour, not speed.
 */
import { expect } from "vitest";

export type TimingMode = "loose" | "targets" | "off";

/** How far past its target a figure may be in an ordinary test run. */
export const LOOSE_FACTOR = 10;

export function timingMode(): TimingMode {
  const v = process.env.OVERLAY_TEST_TIMING ?? "loose";
  if (v === "loose" || v === "targets" || v === "off") return v;
  throw new Error(`OVERLAY_TEST_TIMING=${v}: expected loose, targets or off`);
}

/** The bound a figure whose target is `targetMs` is held to in this run; Infinity when off. */
export function boundFor(targetMs: number): number {
  const mode = timingMode();
  if (mode === "off") return Infinity;
  return mode === "targets" ? targetMs : targetMs * LOOSE_FACTOR;
}

/**
 * Expects `ms` to stay under the bound for `targetMs` (see above). Prints the figure and the
 * bound, so a run records what it measured whatever the mode.
 */
export function expectWithin(what: string, ms: number, targetMs: number): void {
  const bound = boundFor(targetMs);
  const judged = bound === Infinity ? "not judged" : `bound ${bound} ms`;
  console.log(`timing: ${what}: ${ms.toFixed(2)} ms (target ${targetMs} ms, ${judged})`);
  if (bound !== Infinity) expect(ms, `${what} (target ${targetMs} ms)`).toBeLessThan(bound);
}

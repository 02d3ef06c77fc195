/**
 * Perf tiers. On the overlay only a tier's upper bandwidth limit is enforced, on what a pod sends
 * (the switch's per-port token bucket) and on what it receives (a tbf behind an IFB device in the
 * pod's namespace); there is no guaranteed minimum. best-effort is not capped: it is the
 * tier of pods that asked for nothing, and capping it would slow down every such pod.
 */
import { invalid } from "./errors.js";

export interface PerfTier {
  name: string;
  /** Upper bandwidth limit of what a pod sends, and of what it receives, on the overlay, bit/s; null: none. */
  maxBitsPerSecond: number | null;
  builtin: boolean;
}

export const DEFAULT_PERF_TIER = "best-effort";

export const PERF_TIERS: readonly PerfTier[] = [
  { name: "best-effort", maxBitsPerSecond: null, builtin: true },
  { name: "medium", maxBitsPerSecond: 125_000_000, builtin: true },
  { name: "high", maxBitsPerSecond: 500_000_000, builtin: true },
];

export function listPerfTiers(): PerfTier[] {
  return PERF_TIERS.map((t) => ({ ...t }));
}

export function getPerfTier(name: string): PerfTier {
  const tier = PERF_TIERS.find((t) => t.name === name);
  if (tier === undefined) {
    throw invalid(
      `unknown perf tier "${name}": known tiers are ${PERF_TIERS.map((t) => t.name).join(", ")}`,
      {
        tier: name,
      },
    );
  }
  return { ...tier };
}

/**
 * Preconditions shared by the data-plane integration tests: root (namespaces, TAP) and a built addon.
 */
import { afterAll, beforeAll } from "vitest";
import { dropReasons, type Switch, type SwitchCounters } from "../../src/dataplane/switch.js";
import {
  buildNodes,
  buildSwitchedOverlay,
  isRoot,
  type SwitchedOverlay,
  type SwitchedOverlayOptions,
  World,
} from "../kit/netns/index.js";

function addonError(): string | undefined {
  try {
    dropReasons();
    return undefined;
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
}

/** Why the integration tests of `file` cannot run here, or undefined when they can. */
export function skipReason(file: string): string | undefined {
  let why: string | undefined;
  if (!isRoot()) why = "network namespaces and TAP devices need root";
  else {
    const err = addonError();
    if (err) why = `data plane addon unavailable: ${err}`;
  }
  if (why) console.log(`${file}: skipped, ${why}`);
  return why;
}

export type DropCounts = Record<string, number>;

/** Drop counters now, for a later `dropDelta`. */
export function drops(sw: Switch): DropCounts {
  return { ...sw.counters().drops };
}

/** Drops by reason since `before`, only the reasons that moved. */
export function dropDelta(sw: Switch, before: DropCounts): DropCounts {
  const now = sw.counters().drops;
  const out: DropCounts = {};
  for (const [k, v] of Object.entries(now)) {
    const d = v - (before[k] ?? 0);
    if (d !== 0) out[k] = d;
  }
  return out;
}

export function portCounters(sw: Switch, portId: number): SwitchCounters["ports"][number] {
  const p = sw.counters().ports.find((x) => x.id === portId);
  if (!p) throw new Error(`no counters for port ${portId}`);
  return p;
}

/**
 * A two-node switched overlay for the enclosing describe block: built in beforeAll (and torn
 * down again when building or `setup` fails), removed in afterAll, switches first so that their
 * TAP fds are closed before the namespaces go. The accessors are for use inside the tests.
 */
export function useSwitchedOverlay(
  options: SwitchedOverlayOptions,
  setup?: (ov: SwitchedOverlay, world: World) => Promise<void>,
): { world: () => World; ov: () => SwitchedOverlay } {
  let world: World | undefined;
  let ov: SwitchedOverlay | undefined;
  beforeAll(async () => {
    world = await World.create();
    try {
      ov = await buildSwitchedOverlay(await buildNodes(world, { count: 2 }), options);
      await setup?.(ov, world);
    } catch (e) {
      ov?.close();
      await world.destroy();
      throw e;
    }
  });
  afterAll(async () => {
    try {
      ov?.close();
    } finally {
      await world?.destroy();
    }
  });
  const built = <T>(v: T | undefined): T => {
    if (v === undefined) throw new Error("the overlay is not built (beforeAll failed or has not run)");
    return v;
  };
  return { world: () => built(world), ov: () => built(ov) };
}

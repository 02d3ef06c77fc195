/**
 * Namespace records that fail validation, as the mutations and the check meet them.
 *
 * A reader that only looks (an agent, a listing) skips a record it cannot parse. A writer cannot:
 * the key exists, so creating the namespace again (compare "the key is absent") loses every time,
 * and rewriting it would decide the namespace's VNI without knowing it. So every namespace
 * mutation that must read or write a damaged record fails at once with DAMAGED_RECORD, naming the
 * record and what to run ("dctl network overlay check <network> --repair", see check.ts), and
 * VNI allocation never hands out a VNI the pods of a damaged namespace may still be on (below).
 *
 * Damaged here means: not JSON, not a valid NamespaceRecord (records.ts), or a valid record whose
 * network or name is not the one its key says (it would be taken for another namespace). A record
 * of a newer schema version is reported the same way, but it is a newer program's record, not
 * damage: it must not be rebuilt by this one, and the advice is to upgrade.
 */
import type { KeyValue, Store } from "../store/store.js";
import { OverlayError } from "./errors.js";
import { namespaceEndpointsPrefix, namespacesPrefix } from "./keys.js";
import { SCHEMA_VERSION, parseNamespace, type Entry, type NamespaceRecord } from "./records.js";

/** A key under a network's namespace prefix whose record fails validation. */
export interface DamagedNamespace {
  network: string;
  /** The namespace the key names (its last level). */
  name: string;
  kv: KeyValue;
  /** What is wrong with it, as the parser (or the key check) says. */
  problem: string;
  /** The `vni` the stored JSON still holds, when it is readable as one (an integer in 1..2^24-1). */
  readableVni: number | undefined;
  /** The record's schemaVersion when it is newer than this program's: written by a newer version. */
  newerSchema: number | undefined;
}

/** A network's namespace records by the name their key gives, the damaged ones apart. */
export interface NamespaceRecords {
  entries: Map<string, Entry<NamespaceRecord>>;
  damaged: Map<string, DamagedNamespace>;
  /** The store revision the listing reflects. */
  revision: number;
}

function readJson(value: string): Record<string, unknown> | undefined {
  try {
    const raw: unknown = JSON.parse(value);
    return typeof raw === "object" && raw !== null && !Array.isArray(raw)
      ? (raw as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

function damaged(network: string, name: string, kv: KeyValue, problem: string): DamagedNamespace {
  const obj = readJson(kv.value);
  const vni = obj?.vni;
  const version = obj?.schemaVersion;
  return {
    network,
    name,
    kv,
    problem,
    readableVni:
      typeof vni === "number" && Number.isInteger(vni) && vni >= 1 && vni <= 0xffffff ? vni : undefined,
    newerSchema: typeof version === "number" && version > SCHEMA_VERSION ? version : undefined,
  };
}

/** Sorts the stored key-values of one network's namespace prefix into valid and damaged. */
export function sortNamespaceRecords(
  network: string,
  items: readonly KeyValue[],
  revision: number,
): NamespaceRecords {
  const prefix = namespacesPrefix(network);
  const entries = new Map<string, Entry<NamespaceRecord>>();
  const bad = new Map<string, DamagedNamespace>();
  for (const kv of items) {
    if (!kv.key.startsWith(prefix)) continue;
    const name = kv.key.slice(prefix.length);
    const parsed = parseNamespace(kv);
    if (!parsed.ok) bad.set(name, damaged(network, name, kv, parsed.problem.problem));
    else if (parsed.value.network !== network) {
      const problem = `its network is "${parsed.value.network}", but its key is under network ${network}`;
      bad.set(name, damaged(network, name, kv, problem));
    } else if (parsed.value.name !== name) {
      bad.set(
        name,
        damaged(network, name, kv, `its name is "${parsed.value.name}", but its key names ${name}`),
      );
    } else entries.set(name, { value: parsed.value, kv });
  }
  return { entries, damaged: bad, revision };
}

/** Reads the network's namespace records (one listing), the damaged ones apart. */
export async function readNamespaceRecords(store: Store, network: string): Promise<NamespaceRecords> {
  const { items, revision } = await store.list(namespacesPrefix(network));
  return sortNamespaceRecords(network, items, revision);
}

/** The damaged record for one key (undefined when it is absent or valid). */
export function damagedNamespaceOf(
  network: string,
  name: string,
  kv: KeyValue | undefined,
): DamagedNamespace | undefined {
  if (kv === undefined) return undefined;
  return sortNamespaceRecords(network, [kv], kv.modRevision).damaged.get(name);
}

/**
 * The VNIs damaged records may still hold, where they can be read: kept off VNI allocation. A
 * running pod whose namespace record turned invalid keeps the VNI its port is on (the agents'
 * reconcile never moves it: docs/ARCHITECTURE.md, "A pod's VNI"), so handing that VNI to another
 * namespace would put that namespace's pods beside it; and the repair gives the namespace its VNI
 * back (see check.ts).
 *
 * Where the VNI cannot be read (not JSON, no integer `vni`), nothing can be kept off: any free VNI
 * may be the one its pods are still on. See damagedWithPods: allocation then refuses while such a
 * namespace has pods, and goes on when it has none (no port can be on its old VNI then); the
 * repair gives the namespace a fresh VNI, never one another namespace holds.
 */
export function vnisHeldByDamaged(damage: ReadonlyMap<string, DamagedNamespace>): number[] {
  return [...damage.values()].flatMap((d) => (d.readableVni === undefined ? [] : [d.readableVni]));
}

/**
 * The damaged records whose VNI cannot be read and whose namespace has endpoints on the network:
 * their pods may still be on any VNI allocation could hand out (one list per such record; none
 * while nothing is damaged).
 */
export async function damagedWithPods(
  store: Store,
  damage: ReadonlyMap<string, DamagedNamespace>,
): Promise<DamagedNamespace[]> {
  const found: DamagedNamespace[] = [];
  for (const d of damage.values()) {
    if (d.readableVni !== undefined) continue;
    const { items } = await store.list(namespaceEndpointsPrefix(d.network, d.name));
    if (items.length > 0) found.push(d);
  }
  return found;
}

/** The error of a VNI allocation refused because pods of a damaged namespace may hold any VNI. */
export function unknownVniError(forWhom: string, held: readonly DamagedNamespace[]): OverlayError {
  const d = held[0] as DamagedNamespace;
  return new OverlayError(
    "DAMAGED_RECORD",
    `cannot give ${forWhom} a VNI of its own: namespace record ${d.name} of network ${d.network} is invalid: ${d.problem}; its pods may still be on the VNI it held, which cannot be read; run "dctl network overlay check ${d.network} --repair"`,
    { network: d.network, namespace: d.name, key: d.kv.key, problem: d.problem },
  );
}

/** The error of a mutation that meets a damaged record: it names it and says what to do. */
export function damagedNamespaceError(d: DamagedNamespace): OverlayError {
  const advice =
    d.newerSchema === undefined
      ? `run "dctl network overlay check ${d.network} --repair"`
      : `a newer version of the overlay wrote it: upgrade dctl and overlayd on this node rather than repair it`;
  return new OverlayError(
    "DAMAGED_RECORD",
    `namespace record ${d.name} of network ${d.network} is invalid: ${d.problem}; ${advice}`,
    { network: d.network, namespace: d.name, key: d.kv.key, problem: d.problem },
  );
}

/**
 * Namespace records that fail validation, as the mutations and the check meet them.
 *
 * A reader that only looks (an agent, a listing) skips a record it cannot parse. A writer cannot:
 * the key exists, so creating the namespace again (compare "the key is absent") loses every time,
 * and rewriting it would decide the namespace's VNI without knowing it. So every namespace
 * mutation that must read or write a damaged record fails at once with DAMAGED_RECORD, naming the
 * record and what to run ("dctl network overlay check <network> --repair", see check.ts), and
 * VNI allocation keeps off the VNI a damaged record still holds where that can be read.
 *
 * Damaged here means: not JSON, not a valid NamespaceRecord (records.ts), or a valid record whose
 * network or name is not the one its key says (it would be taken for another namespace). A record
 * of a newer schema version is reported the same way, but it is a newer program's record, not
 * damage: it must not be rebuilt by this one, and the advice is to upgrade.
 */
import type { KeyValue, Store } from "../store/store.js";
import { OverlayError } from "./errors.js";
import { namespacesPrefix } from "./keys.js";
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
 * The VNIs damaged records may still hold, where they can be read: kept off VNI allocation, so
 * that the repair can give each its VNI back without putting it on another namespace's. Where the
 * VNI cannot be read, nothing can be kept off: the next free VNI may be one the record held. That
 * joins no pods: the agents program no VNI for the pods of a namespace without a valid record
 * (fail closed), so no port is on the old VNI; and the repair gives the namespace a fresh VNI
 * (see check.ts), never one another namespace holds.
 */
export function vnisHeldByDamaged(damage: ReadonlyMap<string, DamagedNamespace>): number[] {
  return [...damage.values()].flatMap((d) => (d.readableVni === undefined ? [] : [d.readableVni]));
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

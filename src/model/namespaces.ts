/**
 * Namespace VNI policy.
 *
 * With isolation on (the default), every namespace has a VNI of its own, allocated from
 * FIRST_VNI up; `joinNamespaces` puts namespaces on one VNI, `isolateNamespaces` gives each a
 * VNI of its own again. Frames never cross from one VNI to another, except that GLOBAL_VNI is
 * global (as VNID 0 is in OpenShift's multitenant mode): its ports reach and are reached by every
 * VNI. The node gateway ports live there, and `makeGlobal` puts a namespace there.
 *
 * Global by default: kube-system. Cluster DNS (CoreDNS/kube-dns) and the other cluster add-ons
 * run there, and a pod in an isolated namespace that cannot reach cluster DNS cannot resolve any
 * name; kube-system holds only cluster-administered workloads, so opening it costs nothing that
 * isolation is meant to protect. Every other namespace (default included) is isolated; an
 * administrator makes e.g. an ingress or monitoring namespace global with --make-global.
 *
 * With `--isolate-ns=False` every namespace is on GLOBAL_VNI: all pods reach each other, which is
 * what turning isolation off means. The per-namespace VNIs are still kept, unused.
 *
 * Namespaces are known from pods that use them (source "pod"), from `dctl namespace create`
 * ("dctl"), from network creation ("builtin": the namespaces every Kubernetes cluster has) and
 * from Kubernetes itself ("kubernetes": the agent's namespace sync, src/agent/kubernetes.ts,
 * through ensureNamespaces and releaseNamespace).
 *
 * Past 400 lines on purpose: the pure policy (which VNI a pod is on) and the writes that change
 * it (ensure, join, isolate, make-global, delete) are one rule read from two sides; every write
 * goes through mutateNamespaces, whose compare-and-swap keeps two writers from handing out one VNI.
 */
import type { Compare, Op, Store } from "../store/store.js";
import {
  damagedNamespaceError,
  damagedNamespaceOf,
  damagedWithPods,
  readNamespaceRecords,
  unknownVniError,
  vnisHeldByDamaged,
  type DamagedNamespace,
} from "./damage.js";
import { OverlayError, invalid, notFound, precondition } from "./errors.js";
import { namespaceEndpointsPrefix, namespaceKey, namespacesPrefix, networkKey } from "./keys.js";
import { checkNamespaceName } from "./names.js";
import { getNetwork } from "./networkread.js";
import {
  encode,
  now,
  parseNamespace,
  type Entry,
  type Listing,
  type NamespaceRecord,
  type NamespaceSource,
  type NetworkRecord,
} from "./records.js";
import { RETRY, listParsed, retrying } from "./storeutil.js";

export const GLOBAL_VNI = 1;
export const FIRST_VNI = 4096;
export const MAX_VNI = 0xffffff;

/** The namespaces every Kubernetes cluster has, known to a network from its creation. */
export const BUILTIN_NAMESPACES: readonly string[] = [
  "default",
  "kube-node-lease",
  "kube-public",
  "kube-system",
];
/** Namespaces placed on the global VNI when they first become known (see above for why). */
export const GLOBAL_BY_DEFAULT: readonly string[] = ["kube-system"];

// ---- pure policy -------------------------------------------------------------------------

/**
 * The VNI a namespace's pods are on: the one rule every caller (the agent's ADD, its reconcile,
 * dctl's listings) uses. With isolation off every pod shares the global VNI, which is what the
 * network asks for. With isolation on it is the namespace record's VNI, and with no valid record
 * none at all: a pod is never placed on a VNI that reaches others by default (fail closed).
 */
export function podVni(network: NetworkRecord, record: NamespaceRecord | undefined): number | undefined {
  if (!network.isolateNs) return GLOBAL_VNI;
  return record?.vni;
}

/** The VNI every namespace of the network is on, as the switches must program it. */
export function computeVnis(
  network: NetworkRecord,
  namespaces: readonly NamespaceRecord[],
): Map<string, number> {
  const vnis = new Map<string, number>();
  for (const ns of namespaces) {
    if (ns.network !== network.name) continue;
    vnis.set(ns.name, podVni(network, ns) as number);
  }
  return vnis;
}

export function nextFreeVni(used: Iterable<number>): number {
  const taken = new Set(used);
  for (let vni = FIRST_VNI; vni <= MAX_VNI; vni++) if (!taken.has(vni)) return vni;
  throw new OverlayError("EXHAUSTED", `no free VNI left between ${FIRST_VNI} and ${MAX_VNI}`);
}

export type NamespacePolicy = "global" | "isolated" | "joined" | "shared";

export interface NamespaceView {
  name: string;
  network: string;
  /** The VNI in effect. */
  vni: number;
  policy: NamespacePolicy;
  /** Other namespaces on the same (non-global) VNI. */
  joinedWith: string[];
  sources: NamespaceSource[];
}

export function describeNamespaces(
  network: NetworkRecord,
  namespaces: readonly NamespaceRecord[],
): NamespaceView[] {
  const vnis = computeVnis(network, namespaces);
  const byVni = new Map<number, string[]>();
  for (const [name, vni] of vnis) byVni.set(vni, [...(byVni.get(vni) ?? []), name]);
  return namespaces
    .filter((ns) => ns.network === network.name)
    .map((ns) => {
      const vni = vnis.get(ns.name) ?? GLOBAL_VNI;
      const peers = (byVni.get(vni) ?? []).filter((n) => n !== ns.name).sort();
      let policy: NamespacePolicy;
      if (!network.isolateNs) policy = "shared";
      else if (vni === GLOBAL_VNI) policy = "global";
      else policy = peers.length > 0 ? "joined" : "isolated";
      return {
        name: ns.name,
        network: ns.network,
        vni,
        policy,
        joinedWith: policy === "joined" ? peers : [],
        sources: [...ns.sources],
      };
    })
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** The records a new network starts with: the builtin namespaces, kube-system global. */
export function initialNamespaces(network: string): NamespaceRecord[] {
  const used: number[] = [];
  return BUILTIN_NAMESPACES.map((name) => {
    const vni = GLOBAL_BY_DEFAULT.includes(name) ? GLOBAL_VNI : nextFreeVni(used);
    used.push(vni);
    return { schemaVersion: 1, network, name, vni, sources: ["builtin"], createdAt: now() };
  });
}

// ---- store operations --------------------------------------------------------------------

export async function listNamespaces(store: Store, network: string): Promise<Listing<NamespaceRecord>> {
  return listParsed(store, namespacesPrefix(network), parseNamespace);
}

interface PlanContext {
  network: NetworkRecord;
  namespaces: Map<string, Entry<NamespaceRecord>>;
  /**
   * The network's namespace keys whose record fails validation, by the name the key gives. A
   * plan that must read or write one of them throws damagedNamespaceError (see damage.ts); VNIs
   * it allocates keep off those vnisHeldByDamaged.
   */
  damaged: Map<string, DamagedNamespace>;
  /** Damaged records whose VNI cannot be read while their namespace has pods (damagedWithPods). */
  unknownVniHeldBy: DamagedNamespace[];
}

/**
 * A VNI no namespace of the network holds and no damaged record may still hold (see damage.ts):
 * refused while the pods of a damaged namespace may be on a VNI nobody can read.
 */
function freshVni(ctx: PlanContext, used: Iterable<number>, forWhom: string): number {
  if (ctx.unknownVniHeldBy.length > 0) throw unknownVniError(forWhom, ctx.unknownVniHeldBy);
  return nextFreeVni([...used, ...vnisHeldByDamaged(ctx.damaged)]);
}

/** Fails with the damaged record's error when the namespace's record fails validation. */
function requireUndamaged(ctx: Pick<PlanContext, "damaged">, name: string): void {
  const broken = ctx.damaged.get(name);
  if (broken !== undefined) throw damagedNamespaceError(broken);
}

/**
 * Reads the network and its namespaces, lets `plan` decide which records to write, and writes
 * them in one transaction that fails if any namespace of the network changed meanwhile, so
 * that two writers never hand out one VNI twice. Retries while it loses (within RETRY_LIMITS);
 * never writes over a damaged record (no retry could win against one: the error names it).
 */
async function mutateNamespaces<T>(
  store: Store,
  networkName: string,
  what: string,
  plan: (ctx: PlanContext) => { puts: NamespaceRecord[]; result: T },
): Promise<T> {
  const contended = `the namespace records of network ${networkName}`;
  return retrying(
    what,
    async () => {
      const net = await getNetwork(store, networkName);
      const records = await readNamespaceRecords(store, networkName);
      const { entries: namespaces, damaged } = records;
      const unknownVniHeldBy = await damagedWithPods(store, damaged);
      const { puts, result } = plan({ network: net.value, namespaces, damaged, unknownVniHeldBy });
      if (puts.length === 0) return result;
      const compares: Compare[] = [
        { key: networkKey(networkName), modRevision: net.kv.modRevision },
        { prefix: namespacesPrefix(networkName), maxModRevision: records.revision },
      ];
      const ops: Op[] = [];
      for (const rec of puts) {
        requireUndamaged(records, rec.name);
        const key = namespaceKey(networkName, rec.name);
        compares.push({ key, modRevision: namespaces.get(rec.name)?.kv.modRevision ?? 0 });
        ops.push({ type: "put", key, value: encode(rec) });
      }
      const txn = await store.txn(compares, ops);
      return txn.succeeded ? result : RETRY;
    },
    { contended },
  );
}

/**
 * The VNI in effect for a namespace of the network, read from the store; undefined while the
 * namespace is unknown to the network.
 */
export async function namespaceVni(
  store: Store,
  network: string,
  namespace: string,
): Promise<number | undefined> {
  const v = await readPodVni(store, network, namespace);
  return "vni" in v ? v.vni : undefined;
}

/** A pod's VNI as read from the store, or why it has none (see podVni). */
export type PodVniReading = { vni: number } | { missing: true } | { invalid: string };

export async function readPodVni(store: Store, network: string, namespace: string): Promise<PodVniReading> {
  const { value: net } = await getNetwork(store, network);
  const kv = await store.get(namespaceKey(network, namespace));
  const parsed = kv === undefined ? undefined : parseNamespace(kv);
  if (parsed !== undefined && !parsed.ok) {
    // Isolation off: no record decides anything, every pod is on the global VNI.
    return net.isolateNs ? { invalid: parsed.problem.problem } : { vni: GLOBAL_VNI };
  }
  const vni = podVni(net, parsed?.value);
  return vni === undefined ? { missing: true } : { vni };
}

function usedVnis(namespaces: Map<string, Entry<NamespaceRecord>>): number[] {
  return [...namespaces.values()].map((e) => e.value.vni);
}

/**
 * Makes a namespace known to a network (idempotent). A namespace new to the network gets a VNI
 * of its own, or GLOBAL_VNI if it is global by default.
 */
export async function ensureNamespace(
  store: Store,
  network: string,
  name: string,
  source: NamespaceSource,
): Promise<NamespaceRecord> {
  checkNamespaceName(name);
  return mutateNamespaces(store, network, `registering namespace ${name}`, (ctx) => {
    const { namespaces } = ctx;
    requireUndamaged(ctx, name);
    const existing = namespaces.get(name)?.value;
    if (existing !== undefined) {
      if (existing.sources.includes(source)) return { puts: [], result: existing };
      const updated = { ...existing, sources: [...existing.sources, source] };
      return { puts: [updated], result: updated };
    }
    const vni = GLOBAL_BY_DEFAULT.includes(name)
      ? GLOBAL_VNI
      : freshVni(ctx, usedVnis(namespaces), `namespace ${name}`);
    const created: NamespaceRecord = {
      schemaVersion: 1,
      network,
      name,
      vni,
      sources: [source],
      createdAt: now(),
    };
    return { puts: [created], result: created };
  });
}

/** Forgets a namespace; refused while pods of the namespace have endpoints on the network. */
export async function deleteNamespace(store: Store, network: string, name: string): Promise<void> {
  const key = namespaceKey(network, name);
  await retrying(
    `deleting namespace ${name}`,
    async () => {
      const kv = await store.get(key);
      if (kv === undefined)
        throw notFound(`namespace ${name} not found on network ${network}`, { network, name });
      // A damaged record is not deleted unseen either: check reports it and the repair rebuilds
      // it; delete the namespace once its record is valid again.
      const broken = damagedNamespaceOf(network, name, kv);
      if (broken !== undefined) throw damagedNamespaceError(broken);
      const endpoints = await store.list(namespaceEndpointsPrefix(network, name));
      if (endpoints.items.length > 0) {
        const n = endpoints.items.length;
        throw precondition(
          `cannot delete namespace ${name}: ${n} endpoint${n === 1 ? "" : "s"} on network ${network} still use${n === 1 ? "s" : ""} it; delete those pods first`,
          { network, name, endpoints: n },
        );
      }
      const txn = await store.txn(
        [
          { key, modRevision: kv.modRevision },
          { prefix: namespaceEndpointsPrefix(network, name), maxModRevision: 0 },
        ],
        [{ type: "delete", key }],
      );
      return txn.succeeded ? undefined : RETRY;
    },
    { contended: `namespace record ${name} of network ${network}` },
  );
}

function requireIsolation(network: NetworkRecord): void {
  if (!network.isolateNs) {
    throw precondition(
      `namespace isolation is off on network ${network.name} (created with --isolate-ns=False): every namespace already shares one VNI`,
      { network: network.name },
    );
  }
}

/** The distinct names of a list given by a user, validated and known to the network. */
function knownNames(
  names: readonly string[],
  ctx: PlanContext,
  minimum: number,
  verb: string,
): Entry<NamespaceRecord>[] {
  const distinct = [...new Set(names.map((n) => n.trim()).filter((n) => n !== ""))];
  if (distinct.length < minimum) {
    throw invalid(
      minimum === 1
        ? `${verb} needs at least one namespace`
        : `${verb} needs at least ${minimum} different namespaces, got ${distinct.length === 0 ? "none" : distinct.join(",")}`,
    );
  }
  return distinct.map((name) => {
    checkNamespaceName(name);
    requireUndamaged(ctx, name);
    const entry = ctx.namespaces.get(name);
    if (entry === undefined) {
      throw notFound(
        `namespace ${name} is not known on network ${ctx.network.name}; create it with "dctl namespace create ${name}" or start a pod in it`,
        { network: ctx.network.name, namespace: name },
      );
    }
    return entry;
  });
}

/**
 * Puts the namespaces on one VNI: that of the first one named, so `join a,b` brings b into a's
 * group and a's other members stay with it. Global namespaces cannot be joined: they already
 * reach everything, and joining would silently make the others global. Returns the group.
 */
export async function joinNamespaces(
  store: Store,
  network: string,
  names: readonly string[],
): Promise<string[]> {
  return mutateNamespaces(store, network, "joining namespaces", (ctx) => {
    requireIsolation(ctx.network);
    const entries = knownNames(names, ctx, 2, "join");
    for (const e of entries) {
      if (e.value.vni === GLOBAL_VNI) {
        throw precondition(
          `cannot join namespace ${e.value.name}: it is global (VNI ${GLOBAL_VNI}) and already reaches every namespace; isolate it first`,
          { network, namespace: e.value.name },
        );
      }
    }
    const target = (entries[0] as Entry<NamespaceRecord>).value.vni;
    const puts = entries.filter((e) => e.value.vni !== target).map((e) => ({ ...e.value, vni: target }));
    return { puts, result: entries.map((e) => e.value.name) };
  });
}

/** Gives each namespace a VNI of its own (taking it off the global VNI or out of its group). */
export async function isolateNamespaces(
  store: Store,
  network: string,
  names: readonly string[],
): Promise<string[]> {
  return mutateNamespaces(store, network, "isolating namespaces", (ctx) => {
    requireIsolation(ctx.network);
    const entries = knownNames(names, ctx, 1, "isolate");
    const vniOf = new Map([...ctx.namespaces.values()].map((e) => [e.value.name, e.value.vni]));
    const puts: NamespaceRecord[] = [];
    for (const e of entries) {
      const vni = vniOf.get(e.value.name) as number;
      const shared = [...vniOf].some(([other, v]) => other !== e.value.name && v === vni);
      if (vni !== GLOBAL_VNI && !shared) continue;
      const fresh = freshVni(ctx, vniOf.values(), `namespace ${e.value.name}`);
      vniOf.set(e.value.name, fresh);
      puts.push({ ...e.value, vni: fresh });
    }
    return { puts, result: entries.map((e) => e.value.name) };
  });
}

/** Puts the namespaces on the global VNI: their pods reach and are reached by every namespace. */
export async function makeNamespacesGlobal(
  store: Store,
  network: string,
  names: readonly string[],
): Promise<string[]> {
  return mutateNamespaces(store, network, "making namespaces global", (ctx) => {
    requireIsolation(ctx.network);
    const entries = knownNames(names, ctx, 1, "make-global");
    const puts = entries
      .filter((e) => e.value.vni !== GLOBAL_VNI)
      .map((e) => ({ ...e.value, vni: GLOBAL_VNI }));
    return { puts, result: entries.map((e) => e.value.name) };
  });
}

// ---- namespaces that come and go with an outside source (Kubernetes) ---------------------

/**
 * etcd refuses a transaction of more than 128 operations (`--max-txn-ops`); a batch of names is
 * written in groups well below that (each name one compare and one put).
 */
const ENSURE_BATCH = 100;

/**
 * Makes every namespace of `names` known to the network with `source` among its sources, in one
 * transaction per ENSURE_BATCH names (ensureNamespace for many: one read of the network's
 * namespaces instead of one per name). Idempotent: names already known with `source` cost no
 * write, so many agents calling it with the same names agree on one record and one VNI each
 * (the losers of the compare-and-swap read again and find nothing left to do). Returns the
 * names it wrote. Damaged records are left alone, and reported by the error of the batch they are in.
 */
export async function ensureNamespaces(
  store: Store,
  network: string,
  names: readonly string[],
  source: NamespaceSource,
): Promise<string[]> {
  const wanted = [...new Set(names)].sort();
  for (const name of wanted) checkNamespaceName(name);
  const written: string[] = [];
  for (let i = 0; i < wanted.length; i += ENSURE_BATCH) {
    const batch = wanted.slice(i, i + ENSURE_BATCH);
    const done = await mutateNamespaces(store, network, `registering ${batch.length} namespaces`, (ctx) => {
      const used = usedVnis(ctx.namespaces);
      const puts: NamespaceRecord[] = [];
      for (const name of batch) {
        requireUndamaged(ctx, name);
        const existing = ctx.namespaces.get(name)?.value;
        if (existing !== undefined) {
          if (!existing.sources.includes(source))
            puts.push({ ...existing, sources: [...existing.sources, source] });
          continue;
        }
        const vni = GLOBAL_BY_DEFAULT.includes(name) ? GLOBAL_VNI : freshVni(ctx, used, `namespace ${name}`);
        used.push(vni);
        puts.push({ schemaVersion: 1, network, name, vni, sources: [source], createdAt: now() });
      }
      return { puts, result: puts.map((r) => r.name) };
    });
    written.push(...done);
  }
  return written;
}

/**
 * Sources a namespace record may lose when the outside source forgets the namespace: its own,
 * and "pod" (a pod of that namespace registered it first). The others ("builtin", "dctl",
 * "repair") are someone's explicit word and keep the record.
 */
const FOLLOWS_SOURCE: readonly NamespaceSource[] = ["pod"];

export type ReleaseOutcome = "deleted" | "kept" | "in-use" | "absent";

/**
 * The outside `source` (Kubernetes) no longer has the namespace. A record that only that source
 * (or a pod) made is deleted, in a transaction that requires the record unchanged and no endpoint
 * of the namespace on the network, so it never runs under a pod being added ("in-use": the
 * caller tries again once the namespace's endpoints are gone). A record someone else also asked
 * for loses `source` from its sources and stays ("kept"). "absent": nothing to do.
 */
export async function releaseNamespace(
  store: Store,
  network: string,
  name: string,
  source: NamespaceSource,
): Promise<ReleaseOutcome> {
  const key = namespaceKey(network, name);
  return retrying(
    `releasing namespace ${name}`,
    async () => {
      const kv = await store.get(key);
      if (kv === undefined) return "absent";
      const broken = damagedNamespaceOf(network, name, kv);
      if (broken !== undefined) throw damagedNamespaceError(broken);
      const parsed = parseNamespace(kv);
      if (!parsed.ok) throw invalid(`namespace record ${key}: ${parsed.problem.problem}`);
      const rec = parsed.value;
      if (!rec.sources.includes(source)) return "kept";
      const others = rec.sources.filter((s) => s !== source && !FOLLOWS_SOURCE.includes(s));
      if (others.length > 0) {
        const updated = { ...rec, sources: rec.sources.filter((s) => s !== source) };
        const txn = await store.txn(
          [{ key, modRevision: kv.modRevision }],
          [{ type: "put", key, value: encode(updated) }],
        );
        return txn.succeeded ? "kept" : RETRY;
      }
      const endpoints = namespaceEndpointsPrefix(network, name);
      const txn = await store.txn(
        [
          { key, modRevision: kv.modRevision },
          { prefix: endpoints, maxModRevision: 0 },
        ],
        [{ type: "delete", key }],
      );
      if (txn.succeeded) return "deleted";
      // Lost to a change of the record, or the namespace has endpoints: which one?
      const again = await store.get(key);
      if (again?.modRevision !== kv.modRevision) return RETRY;
      return "in-use";
    },
    { contended: `namespace record ${name} of network ${network}` },
  );
}

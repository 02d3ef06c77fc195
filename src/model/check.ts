/**
 * The consistency check of one overlay network's records. As an IPAM check: every endpoint must
 * hold its address record, every address record must belong to an endpoint, no two endpoints may
 * share an address, and every block must belong to a registered node. And every namespace record
 * must be valid: a damaged one (not JSON, failing validation, or naming another namespace than
 * its key, see damage.ts) leaves its pods on no VNI and makes every mutation of the namespace fail
 * (a new pod of it cannot start) until it is rebuilt.
 *
 * Repair fixes what has one right answer, each in a transaction that re-checks the condition:
 *   - a leaked address (no endpoint holds it) older than the grace period is released, only if no
 *     endpoint of the network was written since the check read them;
 *   - a missing address record is recreated for its endpoint;
 *   - an address record owned by a container that holds no endpoint with it is given to the
 *     endpoint that does;
 *   - a damaged namespace record is rebuilt, sources ["repair"], only if its key was not written
 *     since the check read it and no namespace of the network was written since the repair read
 *     them. It keeps its VNI when the damaged JSON still holds a readable one that is an isolated
 *     VNI no other namespace holds (or the global VNI, for a namespace global by default);
 *     otherwise it gets a fresh isolated VNI: never the global one unless the namespace is global
 *     by default (fail closed), never one another namespace holds (a repair never joins). An
 *     administrator joins or globalizes it again where that was meant.
 * Duplicate addresses (a pod must be restarted) and blocks of unregistered nodes (released by the
 * agents once the node has been gone for the grace period) are reported, not repaired; nor are
 * namespace records of a newer schema version (a newer program's records: upgrade instead) or
 * under a key that names no valid namespace (delete the key).
 *
 * Past 400 lines on purpose: one check reads a network's records once and every finding and its
 * repair share that reading and its revisions; split by kind, each part would re-read the store.
 */
import type { Compare, Store } from "../store/store.js";
import {
  readNamespaceRecords,
  vnisHeldByDamaged,
  type DamagedNamespace,
  type NamespaceRecords,
} from "./damage.js";
import { listAddresses, listBlocks } from "./ipam.js";
import { listEndpoints } from "./endpoints.js";
import { addressKey, endpointsPrefix, namespacesPrefix } from "./keys.js";
import { checkNamespaceName } from "./names.js";
import { FIRST_VNI, GLOBAL_BY_DEFAULT, GLOBAL_VNI, MAX_VNI, nextFreeVni } from "./namespaces.js";
import { getNetwork } from "./network.js";
import { listNodes } from "./nodes.js";
import {
  encode,
  now,
  type AddressRecord,
  type EndpointRecord,
  type Entry,
  type NamespaceRecord,
  type RecordProblem,
} from "./records.js";

export type CheckIssueKind =
  | "leaked-address"
  | "missing-address"
  | "address-owner-mismatch"
  | "duplicate-address"
  | "block-of-unregistered-node"
  | "damaged-namespace-record";

export const CHECK_ISSUE_KINDS: readonly CheckIssueKind[] = [
  "leaked-address",
  "missing-address",
  "address-owner-mismatch",
  "duplicate-address",
  "block-of-unregistered-node",
  "damaged-namespace-record",
];

export interface CheckIssue {
  kind: CheckIssueKind;
  /** The store key the issue is about (the address, endpoint, block or namespace record). */
  key: string;
  /** The address, or the block's CIDR; "" for a namespace record. */
  ip: string;
  node: string;
  /** namespace/pod of the endpoint or address owner, when there is one. */
  pod: string;
  /** The namespace a namespace record's key names. */
  namespace?: string;
  detail: string;
}

export type RepairAction =
  "released" | "recreated" | "owner-rewritten" | "rebuilt" | "kept" | "not-repairable";

export interface RepairOutcome {
  issue: CheckIssue;
  action: RepairAction;
  /** Why an issue was kept or not repaired; for a rebuilt namespace record, which VNI and why. */
  reason?: string;
  /** The VNI a rebuilt namespace record was given. */
  vni?: number;
}

export interface CheckReport {
  network: string;
  consistent: boolean;
  counts: { endpoints: number; addresses: number; blocks: number };
  issues: CheckIssue[];
  /** Records that failed validation (not counted as issues: they are skipped everywhere). */
  problems: RecordProblem[];
  /** The store revision the check read. */
  revision: number;
}

interface Snapshot {
  report: CheckReport;
  endpoints: Entry<EndpointRecord>[];
  addresses: Entry<AddressRecord>[];
  endpointsRevision: number;
  namespaces: NamespaceRecords;
}

function damageDetail(d: DamagedNamespace): string {
  const vni =
    d.readableVni === undefined ? "its VNI cannot be read" : `its VNI ${d.readableVni} can still be read`;
  const newer = d.newerSchema === undefined ? "" : "; written by a newer version of the overlay";
  return `namespace record ${d.name} is invalid: ${d.problem}; ${vni}${newer}`;
}

const podOf = (x: { namespace: string; pod: string }): string => `${x.namespace}/${x.pod}`;

async function read(store: Store, network: string): Promise<Snapshot> {
  await getNetwork(store, network);
  // Read side by side: the store serves them at once, and the revisions below say what was seen.
  const [endpoints, addresses, blocks, nodes, namespaces] = await Promise.all([
    listEndpoints(store, network),
    listAddresses(store, network),
    listBlocks(store, network),
    listNodes(store),
    readNamespaceRecords(store, network),
  ]);
  const registered = new Set(nodes.entries.map((e) => e.value.name));
  const issues: CheckIssue[] = [];

  const addressByIp = new Map(addresses.entries.map((a) => [a.value.ip, a]));
  const endpointsByIp = new Map<string, Entry<EndpointRecord>[]>();
  for (const e of endpoints.entries) {
    const list = endpointsByIp.get(e.value.ip) ?? [];
    list.push(e);
    endpointsByIp.set(e.value.ip, list);
  }

  for (const a of addresses.entries) {
    const holders = endpointsByIp.get(a.value.ip) ?? [];
    if (holders.length === 0) {
      issues.push({
        kind: "leaked-address",
        key: a.kv.key,
        ip: a.value.ip,
        node: a.value.node,
        pod: podOf(a.value.owner),
        detail: `no endpoint holds ${a.value.ip} (allocated ${a.value.allocatedAt} for container ${a.value.owner.containerId})`,
      });
    }
  }
  for (const e of endpoints.entries) {
    const a = addressByIp.get(e.value.ip);
    if (a === undefined) {
      issues.push({
        kind: "missing-address",
        key: e.kv.key,
        ip: e.value.ip,
        node: e.value.node,
        pod: podOf(e.value),
        detail: `endpoint holds ${e.value.ip} but the pool has no record of it`,
      });
    } else if (a.value.owner.containerId !== e.value.containerId) {
      issues.push({
        kind: "address-owner-mismatch",
        key: e.kv.key,
        ip: e.value.ip,
        node: e.value.node,
        pod: podOf(e.value),
        detail: `address record of ${e.value.ip} belongs to container ${a.value.owner.containerId} (${podOf(a.value.owner)}), not the endpoint's ${e.value.containerId}`,
      });
    }
  }
  for (const [ip, holders] of endpointsByIp) {
    if (holders.length < 2) continue;
    for (const e of holders) {
      issues.push({
        kind: "duplicate-address",
        key: e.kv.key,
        ip,
        node: e.value.node,
        pod: podOf(e.value),
        detail: `${ip} is held by ${holders.length} endpoints: ${holders.map((h) => podOf(h.value)).join(", ")}`,
      });
    }
  }
  for (const b of blocks.entries) {
    if (registered.has(b.value.node)) continue;
    issues.push({
      kind: "block-of-unregistered-node",
      key: b.kv.key,
      ip: b.value.cidr,
      node: b.value.node,
      pod: "",
      detail: `block ${b.value.cidr} belongs to node ${b.value.node}, which is not registered`,
    });
  }
  for (const d of namespaces.damaged.values()) {
    issues.push({
      kind: "damaged-namespace-record",
      key: d.kv.key,
      ip: "",
      node: "",
      pod: "",
      namespace: d.name,
      detail: damageDetail(d),
    });
  }
  const order = (i: CheckIssue): number => CHECK_ISSUE_KINDS.indexOf(i.kind);
  issues.sort((x, y) => order(x) - order(y) || (x.key < y.key ? -1 : x.key > y.key ? 1 : 0));

  return {
    report: {
      network,
      consistent: issues.length === 0,
      counts: {
        endpoints: endpoints.entries.length,
        addresses: addresses.entries.length,
        blocks: blocks.entries.length,
      },
      issues,
      problems: [...endpoints.problems, ...addresses.problems, ...blocks.problems, ...nodes.problems],
      revision: Math.max(
        endpoints.revision,
        addresses.revision,
        blocks.revision,
        nodes.revision,
        namespaces.revision,
      ),
    },
    endpoints: endpoints.entries,
    addresses: addresses.entries,
    endpointsRevision: endpoints.revision,
    namespaces,
  };
}

/** Reports the network's inconsistencies; changes nothing. */
export async function checkNetwork(store: Store, network: string): Promise<CheckReport> {
  return (await read(store, network)).report;
}

export interface RepairOptions {
  /** Leaked addresses allocated less than this long ago are kept (default 60 s). */
  graceMs?: number;
  /** The clock, for tests. */
  nowMs?: number;
}

export const DEFAULT_REPAIR_GRACE_MS = 60_000;

/**
 * Repairs what has one right answer (see the top of this file). Returns what was done for each
 * issue found; run checkNetwork afterwards for what remains.
 */
export async function repairNetwork(
  store: Store,
  network: string,
  options: RepairOptions = {},
): Promise<RepairOutcome[]> {
  const graceMs = options.graceMs ?? DEFAULT_REPAIR_GRACE_MS;
  const nowMs = options.nowMs ?? Date.now();
  const snap = await read(store, network);
  const noNewEndpoint: Compare = { prefix: endpointsPrefix(network), maxModRevision: snap.endpointsRevision };
  const endpointByKey = new Map(snap.endpoints.map((e) => [e.kv.key, e]));
  const addressByIp = new Map(snap.addresses.map((a) => [a.value.ip, a]));
  const addressByKey = new Map(snap.addresses.map((a) => [a.kv.key, a]));
  const endpointIps = new Map<string, number>();
  for (const e of snap.endpoints) endpointIps.set(e.value.ip, (endpointIps.get(e.value.ip) ?? 0) + 1);
  const outcomes: RepairOutcome[] = [];

  for (const issue of snap.report.issues) {
    const done = (action: RepairAction, reason?: string): void => {
      outcomes.push(reason === undefined ? { issue, action } : { issue, action, reason });
    };
    switch (issue.kind) {
      case "leaked-address": {
        const a = addressByKey.get(issue.key);
        if (a === undefined) break;
        const allocated = Date.parse(a.value.allocatedAt);
        if (Number.isFinite(allocated) && nowMs - allocated < graceMs) {
          done("kept", `allocated less than ${Math.round(graceMs / 1000)} s ago`);
          break;
        }
        const txn = await store.txn(
          [{ key: a.kv.key, modRevision: a.kv.modRevision }, noNewEndpoint],
          [{ type: "delete", key: a.kv.key }],
        );
        done(
          txn.succeeded ? "released" : "kept",
          txn.succeeded ? undefined : "changed meanwhile; check again",
        );
        break;
      }
      case "missing-address": {
        const e = endpointByKey.get(issue.key);
        if (e === undefined) break;
        const key = addressKey(network, e.value.block, e.value.ip);
        const record: AddressRecord = {
          schemaVersion: 1,
          network,
          ip: e.value.ip,
          block: e.value.block,
          node: e.value.node,
          owner: {
            namespace: e.value.namespace,
            pod: e.value.pod,
            containerId: e.value.containerId,
            ifname: e.value.ifname,
          },
          allocatedAt: now(),
        };
        const txn = await store.txn(
          [
            { key, modRevision: 0 },
            { key: e.kv.key, modRevision: e.kv.modRevision },
          ],
          [{ type: "put", key, value: encode(record) }],
        );
        done(
          txn.succeeded ? "recreated" : "kept",
          txn.succeeded ? undefined : "changed meanwhile; check again",
        );
        break;
      }
      case "address-owner-mismatch": {
        const e = endpointByKey.get(issue.key);
        const a = addressByIp.get(issue.ip);
        if (e === undefined || a === undefined) break;
        if ((endpointIps.get(issue.ip) ?? 0) > 1) {
          done("not-repairable", "the address is held by more than one endpoint");
          break;
        }
        const record: AddressRecord = {
          ...a.value,
          owner: {
            namespace: e.value.namespace,
            pod: e.value.pod,
            containerId: e.value.containerId,
            ifname: e.value.ifname,
          },
        };
        const txn = await store.txn(
          [
            { key: a.kv.key, modRevision: a.kv.modRevision },
            { key: e.kv.key, modRevision: e.kv.modRevision },
          ],
          [{ type: "put", key: a.kv.key, value: encode(record) }],
        );
        done(
          txn.succeeded ? "owner-rewritten" : "kept",
          txn.succeeded ? undefined : "changed meanwhile; check again",
        );
        break;
      }
      case "duplicate-address":
        done("not-repairable", "restart all but one of the pods holding the address");
        break;
      case "block-of-unregistered-node":
        done("not-repairable", "the agents release it once the node has been gone for the grace period");
        break;
      case "damaged-namespace-record": {
        const d = snap.namespaces.damaged.get(issue.namespace ?? "");
        if (d === undefined) break;
        const r = await rebuildNamespace(store, network, d);
        outcomes.push({ issue, ...r });
        break;
      }
    }
  }
  return outcomes;
}

/** The VNI a rebuilt namespace record gets, and why (see the top of this file). */
function vniForRebuilt(d: DamagedNamespace, current: NamespaceRecords): { vni: number; reason: string } {
  const globalByDefault = GLOBAL_BY_DEFAULT.includes(d.name);
  const fresh = (why: string) => {
    const vni = nextFreeVni([
      ...[...current.entries.values()].map((e) => e.value.vni),
      ...vnisHeldByDamaged(current.damaged),
    ]);
    return { vni, reason: `${why}: isolated on a fresh VNI ${vni}` };
  };
  const old = d.readableVni;
  if (old === undefined) {
    return globalByDefault
      ? {
          vni: GLOBAL_VNI,
          reason: `its VNI cannot be read: on the global VNI ${GLOBAL_VNI}, as ${d.name} is by default`,
        }
      : fresh("its VNI cannot be read");
  }
  if (old === GLOBAL_VNI) {
    return globalByDefault
      ? { vni: GLOBAL_VNI, reason: `kept its VNI ${GLOBAL_VNI} (global, as ${d.name} is by default)` }
      : fresh(
          `its VNI was the global VNI ${GLOBAL_VNI}, which a repair gives back only to a namespace global by default (make it global again if it should be)`,
        );
  }
  if (old < FIRST_VNI || old > MAX_VNI) return fresh(`its VNI ${old} is outside ${FIRST_VNI}-${MAX_VNI}`);
  const holders = [...current.entries.values()].filter((e) => e.value.vni === old).map((e) => e.value.name);
  if (holders.length > 0) {
    return fresh(
      `its VNI ${old} is held by ${holders.sort().join(", ")} (join them again if they belong together)`,
    );
  }
  return { vni: old, reason: `kept its VNI ${old}` };
}

/**
 * Rebuilds one damaged namespace record in one transaction: only if its key still holds what the
 * check read and no namespace of the network was written since the VNI was chosen.
 */
async function rebuildNamespace(
  store: Store,
  network: string,
  seen: DamagedNamespace,
): Promise<Pick<RepairOutcome, "action" | "reason" | "vni">> {
  if (seen.newerSchema !== undefined) {
    return {
      action: "not-repairable",
      reason: `written by a newer version of the overlay (schemaVersion ${seen.newerSchema}): upgrade dctl and overlayd rather than rebuild it`,
    };
  }
  try {
    checkNamespaceName(seen.name);
  } catch {
    return {
      action: "not-repairable",
      reason: `its key names no valid namespace: delete the key ${seen.kv.key}`,
    };
  }
  const changed = { action: "kept", reason: "changed meanwhile; check again" } as const;
  const current = await readNamespaceRecords(store, network);
  if (current.damaged.get(seen.name)?.kv.modRevision !== seen.kv.modRevision) return changed;
  const { vni, reason } = vniForRebuilt(seen, current);
  const record: NamespaceRecord = {
    schemaVersion: 1,
    network,
    name: seen.name,
    vni,
    sources: ["repair"],
    createdAt: now(),
  };
  const txn = await store.txn(
    [
      { key: seen.kv.key, modRevision: seen.kv.modRevision },
      { prefix: namespacesPrefix(network), maxModRevision: current.revision },
    ],
    [{ type: "put", key: seen.kv.key, value: encode(record) }],
  );
  return txn.succeeded ? { action: "rebuilt", reason, vni } : changed;
}

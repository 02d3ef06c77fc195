/**
 * The consistency check of one overlay network's address records and endpoints, as an IPAM
 * check: every endpoint must hold its address record, every address record must belong to an
 * endpoint, no two endpoints may share an address, and every block must belong to a registered
 * node.
 *
 * Repair fixes what has one right answer, each in a transaction that re-checks the condition:
 *   - a leaked address (no endpoint holds it) older than the grace period is released, only if no
 *     endpoint of the network was written since the check read them;
 *   - a missing address record is recreated for its endpoint;
 *   - an address record owned by a container that holds no endpoint with it is given to the
 *     endpoint that does.
 * Duplicate addresses (a pod must be restarted) and blocks of unregistered nodes (released by the
 * agents once the node has been gone for the grace period) are reported, not repaired.
 */
import type { Compare, Store } from "../store/store.js";
import { listAddresses, listBlocks } from "./ipam.js";
import { listEndpoints } from "./endpoints.js";
import { addressKey, endpointsPrefix } from "./keys.js";
import { getNetwork } from "./network.js";
import { listNodes } from "./nodes.js";
import {
  encode,
  now,
  type AddressRecord,
  type EndpointRecord,
  type Entry,
  type RecordProblem,
} from "./records.js";

export type CheckIssueKind =
  | "leaked-address"
  | "missing-address"
  | "address-owner-mismatch"
  | "duplicate-address"
  | "block-of-unregistered-node";

export const CHECK_ISSUE_KINDS: readonly CheckIssueKind[] = [
  "leaked-address",
  "missing-address",
  "address-owner-mismatch",
  "duplicate-address",
  "block-of-unregistered-node",
];

export interface CheckIssue {
  kind: CheckIssueKind;
  /** The store key the issue is about (the address, endpoint or block record). */
  key: string;
  /** The address, or the block's CIDR. */
  ip: string;
  node: string;
  /** namespace/pod of the endpoint or address owner, when there is one. */
  pod: string;
  detail: string;
}

export type RepairAction = "released" | "recreated" | "owner-rewritten" | "kept" | "not-repairable";

export interface RepairOutcome {
  issue: CheckIssue;
  action: RepairAction;
  /** Why an issue was kept or not repaired. */
  reason?: string;
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
}

const podOf = (x: { namespace: string; pod: string }): string => `${x.namespace}/${x.pod}`;

async function read(store: Store, network: string): Promise<Snapshot> {
  await getNetwork(store, network);
  const endpoints = await listEndpoints(store, network);
  const addresses = await listAddresses(store, network);
  const blocks = await listBlocks(store, network);
  const nodes = await listNodes(store);
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
      revision: Math.max(endpoints.revision, addresses.revision, blocks.revision, nodes.revision),
    },
    endpoints: endpoints.entries,
    addresses: addresses.entries,
    endpointsRevision: endpoints.revision,
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
    }
  }
  return outcomes;
}

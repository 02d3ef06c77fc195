/**
 * The cluster's records as the agent holds them, indexed the ways it asks: by key, endpoints by
 * node and by namespace, blocks by node. Every put and delete says what changed (the record
 * before and after), so the reconcile can work in proportion to the change, not to the cluster.
 */
import type { RecordKind } from "../model/keys.js";
import type { RecordOfKind } from "../model/scan.js";
import type {
  BlockRecord,
  EndpointRecord,
  NamespaceRecord,
  NetworkRecord,
  NodeRecord,
} from "../model/records.js";

export type { RecordOfKind } from "../model/scan.js";
export type AnyRecord = RecordOfKind[RecordKind];

/**
 * What the agent keeps of another node's endpoint: what forwarding to it needs. Its own node's
 * endpoints are kept whole (attach, DEL, GC need them); at 64,000 pods the difference is most of
 * the agent's memory.
 */
export type RemoteEndpointRecord = Pick<
  EndpointRecord,
  "network" | "namespace" | "pod" | "node" | "ip" | "mac"
>;

/** An endpoint as held: whole for this node's, compact for the others'. */
export type HeldEndpoint = EndpointRecord | RemoteEndpointRecord;

interface HeldOfKind extends Omit<RecordOfKind, "endpoint"> {
  endpoint: HeldEndpoint;
}

/** One record that changed; `before`/`after` undefined for one created/deleted. */
export type RecordChange = {
  [K in RecordKind]: { kind: K; key: string; before?: HeldOfKind[K]; after?: HeldOfKind[K] };
}[RecordKind];

/** The cluster as a plain list of records (tests, GC, and the CNI handlers' rare scans). */
export interface ClusterSnapshot {
  networks: NetworkRecord[];
  namespaces: NamespaceRecord[];
  endpoints: HeldEndpoint[];
  nodes: NodeRecord[];
  blocks: BlockRecord[];
  revision: number;
}

/** A Map of Sets, for the indexes. */
class Index<V> {
  private readonly sets = new Map<string, Map<string, V>>();
  add(group: string, key: string, value: V): void {
    let s = this.sets.get(group);
    if (s === undefined) this.sets.set(group, (s = new Map()));
    s.set(key, value);
  }
  remove(group: string, key: string): void {
    const s = this.sets.get(group);
    if (s === undefined) return;
    s.delete(key);
    if (s.size === 0) this.sets.delete(group);
  }
  get(group: string): ReadonlyMap<string, V> {
    return this.sets.get(group) ?? new Map();
  }
  groups(): IterableIterator<string> {
    return this.sets.keys();
  }
}

export class ClusterRecords {
  /** Every record, by key. */
  private readonly byKey = new Map<string, { kind: RecordKind; record: AnyRecord | HeldEndpoint }>();
  private readonly networksByName = new Map<string, NetworkRecord>();
  /** "network/namespace" -> record. */
  private readonly namespacesByName = new Map<string, NamespaceRecord>();
  private readonly nodesByName = new Map<string, NodeRecord>();
  private readonly endpointsByNode = new Index<HeldEndpoint>();
  private readonly endpointsByNamespace = new Index<HeldEndpoint>();
  private readonly blocksByNode = new Index<BlockRecord>();

  /** @param self this node: its endpoints are kept whole, the others' compact. */
  constructor(private readonly self?: string) {}

  /** Records of a snapshot, under the keys `keyOf` gives them. */
  static fromSnapshot(
    s: ClusterSnapshot,
    keyOf: (kind: RecordKind, r: AnyRecord | HeldEndpoint) => string,
    self?: string,
  ): ClusterRecords {
    const c = new ClusterRecords(self);
    const all: [RecordKind, readonly (AnyRecord | HeldEndpoint)[]][] = [
      ["network", s.networks],
      ["namespace", s.namespaces],
      ["node", s.nodes],
      ["endpoint", s.endpoints],
      ["block", s.blocks],
    ];
    for (const [kind, records] of all) for (const r of records) c.put(kind, keyOf(kind, r), r as AnyRecord);
    return c;
  }

  get size(): number {
    return this.byKey.size;
  }

  network(name: string): NetworkRecord | undefined {
    return this.networksByName.get(name);
  }
  namespace(network: string, name: string): NamespaceRecord | undefined {
    return this.namespacesByName.get(`${network}/${name}`);
  }
  node(name: string): NodeRecord | undefined {
    return this.nodesByName.get(name);
  }
  endpoint(key: string): HeldEndpoint | undefined {
    const e = this.byKey.get(key);
    return e?.kind === "endpoint" ? (e.record as HeldEndpoint) : undefined;
  }
  block(key: string): BlockRecord | undefined {
    const b = this.byKey.get(key);
    return b?.kind === "block" ? (b.record as BlockRecord) : undefined;
  }
  networks(): IterableIterator<NetworkRecord> {
    return this.networksByName.values();
  }
  nodes(): IterableIterator<NodeRecord> {
    return this.nodesByName.values();
  }
  /** Every endpoint and block, by key: the sources of remote entries. */
  *remoteSources(): IterableIterator<[string, "endpoint" | "block"]> {
    for (const [key, { kind }] of this.byKey) if (kind === "endpoint" || kind === "block") yield [key, kind];
  }
  endpointsOfNode(node: string): ReadonlyMap<string, HeldEndpoint> {
    return this.endpointsByNode.get(node);
  }
  /** This node's endpoints, whole. */
  ownEndpoints(): EndpointRecord[] {
    if (this.self === undefined) throw new Error("ClusterRecords made without its node");
    return [...this.endpointsByNode.get(this.self).values()] as EndpointRecord[];
  }
  endpointsOfNamespace(network: string, namespace: string): ReadonlyMap<string, HeldEndpoint> {
    return this.endpointsByNamespace.get(`${network}/${namespace}`);
  }
  blocksOfNode(node: string): ReadonlyMap<string, BlockRecord> {
    return this.blocksByNode.get(node);
  }
  /** Nodes that own endpoints or blocks, registered or not. */
  owners(): Set<string> {
    return new Set([...this.endpointsByNode.groups(), ...this.blocksByNode.groups()]);
  }

  /** Stores a record under its key; says what changed. */
  put<K extends RecordKind>(kind: K, key: string, record: RecordOfKind[K]): RecordChange {
    const before = this.delete(key);
    let r: AnyRecord | HeldEndpoint = record as AnyRecord;
    if (kind === "endpoint" && this.self !== undefined && (r as EndpointRecord).node !== this.self) {
      const { network, namespace, pod, node, ip, mac } = r as EndpointRecord;
      r = { network, namespace, pod, node, ip, mac };
    }
    this.byKey.set(key, { kind, record: r });
    this.index(kind, key, r, true);
    return {
      kind,
      key,
      before: before?.kind === kind ? before.before : undefined,
      after: record,
    } as RecordChange;
  }

  /** Removes the record under a key; undefined when there was none. */
  delete(key: string): RecordChange | undefined {
    const e = this.byKey.get(key);
    if (e === undefined) return undefined;
    this.byKey.delete(key);
    this.index(e.kind, key, e.record, false);
    return { kind: e.kind, key, before: e.record } as RecordChange;
  }

  clear(): void {
    for (const key of [...this.byKey.keys()]) this.delete(key);
  }

  snapshot(revision: number): ClusterSnapshot {
    const s: ClusterSnapshot = {
      networks: [],
      namespaces: [],
      endpoints: [],
      nodes: [],
      blocks: [],
      revision,
    };
    for (const { kind, record } of this.byKey.values()) {
      if (kind === "network") s.networks.push(record as NetworkRecord);
      else if (kind === "namespace") s.namespaces.push(record as NamespaceRecord);
      else if (kind === "endpoint") s.endpoints.push(record as HeldEndpoint);
      else if (kind === "node") s.nodes.push(record as NodeRecord);
      else s.blocks.push(record as BlockRecord);
    }
    return s;
  }

  private index(kind: RecordKind, key: string, r: AnyRecord | HeldEndpoint, add: boolean): void {
    const named = <V>(m: Map<string, V>, name: string, v: V): void => {
      if (add) m.set(name, v);
      else if (m.get(name) === v) m.delete(name);
    };
    const grouped = <V>(ix: Index<V>, group: string, v: V): void => {
      if (add) ix.add(group, key, v);
      else ix.remove(group, key);
    };
    switch (kind) {
      case "network":
        named(this.networksByName, (r as NetworkRecord).name, r as NetworkRecord);
        break;
      case "namespace": {
        const n = r as NamespaceRecord;
        named(this.namespacesByName, `${n.network}/${n.name}`, n);
        break;
      }
      case "node":
        named(this.nodesByName, (r as NodeRecord).name, r as NodeRecord);
        break;
      case "endpoint": {
        const e = r as HeldEndpoint;
        grouped(this.endpointsByNode, e.node, e);
        grouped(this.endpointsByNamespace, `${e.network}/${e.namespace}`, e);
        break;
      }
      case "block":
        grouped(this.blocksByNode, (r as BlockRecord).node, r as BlockRecord);
        break;
    }
  }
}

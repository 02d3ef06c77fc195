/**
 * The agent's picture of the cluster: every record under the overlay's root, kept equal to the
 * store by one listing and one watch from the listing's revision. A watch reset (history
 * compacted, connection lost too long) re-lists; it never reads as "everything was deleted".
 * Records that fail validation are reported with their key and left out.
 */
import type { KeyValue, Store, Watch, WatchEvent } from "../store/store.js";
import {
  parseBlock,
  parseEndpoint,
  parseNamespace,
  parseNetwork,
  parseNode,
  type BlockRecord,
  type EndpointRecord,
  type NamespaceRecord,
  type NetworkRecord,
  type NodeRecord,
  type Parsed,
  type RecordProblem,
} from "../model/records.js";
import { ROOT, recordKindOf, type RecordKind } from "../model/keys.js";

export interface ClusterSnapshot {
  networks: NetworkRecord[];
  namespaces: NamespaceRecord[];
  endpoints: EndpointRecord[];
  nodes: NodeRecord[];
  blocks: BlockRecord[];
  revision: number;
}

const PARSERS: Record<RecordKind, (kv: Pick<KeyValue, "key" | "value">) => Parsed<unknown>> = {
  network: parseNetwork,
  namespace: parseNamespace,
  endpoint: parseEndpoint,
  node: parseNode,
  block: parseBlock,
};

export interface ViewHandlers {
  /** Something changed; called after each batch of events (the agent debounces). */
  onChange(): void;
  onProblem(problem: RecordProblem): void;
  onReset?(reason: string): void;
}

export class ClusterView {
  private records = new Map<string, { kind: RecordKind; value: unknown }>();
  private watch: Watch | undefined;
  private revision = 0;
  private closed = false;
  private relisting: Promise<void> | undefined;

  constructor(
    private readonly store: Store,
    private readonly handlers: ViewHandlers,
  ) {}

  /** Lists everything and starts watching; resolves once the first listing is in. */
  async start(): Promise<void> {
    await this.relist();
  }

  snapshot(): ClusterSnapshot {
    const s: ClusterSnapshot = {
      networks: [],
      namespaces: [],
      endpoints: [],
      nodes: [],
      blocks: [],
      revision: this.revision,
    };
    for (const { kind, value } of this.records.values()) {
      if (kind === "network") s.networks.push(value as NetworkRecord);
      else if (kind === "namespace") s.namespaces.push(value as NamespaceRecord);
      else if (kind === "endpoint") s.endpoints.push(value as EndpointRecord);
      else if (kind === "node") s.nodes.push(value as NodeRecord);
      else s.blocks.push(value as BlockRecord);
    }
    return s;
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.watch?.close();
    this.watch = undefined;
  }

  private put(key: string, value: string): void {
    const kind = recordKindOf(key);
    if (kind === undefined) return;
    const parsed = PARSERS[kind]({ key, value });
    if (parsed.ok) {
      this.records.set(key, { kind, value: parsed.value });
    } else {
      this.records.delete(key);
      this.handlers.onProblem(parsed.problem);
    }
  }

  private apply(events: WatchEvent[]): void {
    for (const e of events) {
      if (e.type === "put" && e.value !== undefined) this.put(e.key, e.value);
      else this.records.delete(e.key);
      this.revision = Math.max(this.revision, e.modRevision);
    }
    this.handlers.onChange();
  }

  private relist(): Promise<void> {
    this.relisting ??= (async () => {
      try {
        await this.watch?.close().catch(() => undefined);
        this.watch = undefined;
        const { items, revision } = await this.store.list(ROOT);
        this.records.clear();
        for (const kv of items) this.put(kv.key, kv.value);
        this.revision = revision;
        if (this.closed) return;
        this.watch = await this.store.watch(ROOT, revision, {
          onEvents: (events) => this.apply(events),
          onReset: (reason) => {
            this.handlers.onReset?.(reason);
            this.scheduleRelist();
          },
          onError: () => this.scheduleRelist(),
        });
        this.handlers.onChange();
      } finally {
        this.relisting = undefined;
      }
    })();
    return this.relisting;
  }

  /** Re-lists after a reset, retrying every second while the store is unreachable. */
  private scheduleRelist(): void {
    if (this.closed || this.relisting) return;
    this.relist().catch(() => {
      if (!this.closed) setTimeout(() => this.scheduleRelist(), 1000).unref();
    });
  }
}

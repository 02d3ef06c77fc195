/**
 * Namespaces from Kubernetes: the agent keeps the overlay's namespace records in step with the
 * cluster's namespaces (`overlayd --kubeconfig`).
 *
 * Two halves, as in a client-go controller:
 * - `follow` (the reflector): lists the namespaces, then watches from the listing's
 *   resourceVersion (with bookmarks; the server ends each watch after 5 to 10 minutes and it is
 *   resumed from the last version seen); `410 Gone` lists again; any other failure is logged and
 *   retried after 0.5 s doubling to 30 s, jittered. Its result is a cache: the set of names.
 * - `sync` (the reconcile): compares the cache with the namespace records of every network and
 *   converges, through the model only: names the records lack (or lack as "kubernetes") are
 *   registered in one `ensureNamespaces` per network (a new one gets a VNI of its own, isolated;
 *   kube-system global, as ever); records that have "kubernetes" among their sources and whose
 *   namespace the cache no longer holds are released (`releaseNamespace`): deleted once no
 *   endpoint of the namespace is left, or kept without that source if `dctl` or the network's
 *   creation also asked for them. Before releasing, the API server is asked for the namespace
 *   itself (a GET, not the cache): an agent whose watch lags never deletes a namespace another
 *   agent has just seen created.
 *
 * Many agents, one record per namespace: every agent runs this, and every write is the model's
 * compare-and-swap, idempotent (docs/ARCHITECTURE.md, "Namespaces from Kubernetes"): the first
 * writer of a namespace allocates its VNI, the others read again and find nothing to do. No
 * writer is elected, so nothing waits for a leader after a node fails.
 *
 * Triggers: a change in the cache; a network created (its records start with the builtin
 * namespaces only); a namespace record deleted (by hand: Kubernetes still has it); an endpoint
 * deleted in a namespace waiting to be released; and every minute, a safety net. Nothing is
 * written before the first listing: an agent that cannot reach the API server changes nothing.
 */
import type { Logger } from "pino";
import { checkNamespaceName } from "../model/names.js";
import { ensureNamespaces, listNamespaces, releaseNamespace } from "../model/namespaces.js";
import { listNetworks } from "../model/networkread.js";
import { namespacesPrefix } from "../model/keys.js";
import type { Store } from "../store/store.js";
import type { RecordChange } from "./cluster.js";
import type { KubeApi, NamespaceEvent } from "./kubeapi.js";

/** What the sync asks of the API (KubeApi; tests may hand a narrower one). */
export type NamespaceApi = Pick<KubeApi, "server" | "listNamespaces" | "watchNamespaces" | "namespaceExists">;

export interface NamespaceSyncOptions {
  api: NamespaceApi;
  store: Store;
  log: Logger;
  /** The safety-net period of the full comparison. Default 60 s. */
  resyncMs?: number;
  /** Bound on each list and get. Default 10 s. */
  requestTimeoutMs?: number;
  /** The server ends a watch after this many seconds, plus up to as many again (jitter). Default 300. */
  watchSeconds?: number;
  /** How long to wait after a change before comparing, to take bursts in one go. Default 50 ms. */
  debounceMs?: number;
}

const SOURCE = "kubernetes";

function jittered(ms: number): number {
  return ms * (0.5 + Math.random());
}

export class NamespaceSync {
  private readonly log: Logger;
  /** The cluster's namespaces, as last listed and watched. */
  private names = new Set<string>();
  private resourceVersion = "";
  private listed = false;
  private watching = false;
  private stopped = false;
  private readonly abort = new AbortController();
  private following: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private resyncTimer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  /** Comparisons failed in a row: the retry waits 2 s, doubling to 60 s. */
  private failedInARow = 0;
  /** "network/namespace" records waiting for their last endpoint to go. */
  private readonly waiting = new Set<string>();
  /** Failed listings, watches and syncs since start. */
  troubles = 0;
  /** Syncs done (for tests and the debug log). */
  syncs = 0;

  constructor(private readonly o: NamespaceSyncOptions) {
    this.log = o.log.child({ component: "namespace-sync" });
  }

  /** Listed, and the watch open: the records follow Kubernetes now. */
  get healthy(): boolean {
    return this.listed && this.watching;
  }

  /** The namespaces Kubernetes has, as the agent last saw them. */
  get namespaces(): ReadonlySet<string> {
    return this.names;
  }

  start(): void {
    this.following = this.follow();
    const every = this.o.resyncMs ?? 60_000;
    this.resyncTimer = setInterval(() => this.schedule(), every);
    this.resyncTimer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.abort.abort();
    clearTimeout(this.timer);
    clearInterval(this.resyncTimer);
    await this.following;
    await this.running;
  }

  /** Store changes the agent's view saw: does any of them call for a comparison? */
  storeChanged(changes: readonly RecordChange[]): void {
    for (const c of changes) {
      if (c.kind === "network" && c.before === undefined) return this.schedule();
      if (c.kind === "namespace" && c.after === undefined) return this.schedule();
      if (c.kind === "endpoint" && c.after === undefined && c.before !== undefined) {
        if (this.waiting.has(`${c.before.network}/${c.before.namespace}`)) return this.schedule();
      }
    }
  }

  /** Compares soon (once, whatever asked meanwhile). */
  schedule(): void {
    if (this.stopped || this.timer !== undefined) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.runSync();
    }, this.o.debounceMs ?? 50);
  }

  /** One comparison at a time; a request during one makes one more. Resolves when settled. */
  async runSync(): Promise<void> {
    if (this.running !== undefined) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      do {
        this.again = false;
        try {
          await this.sync();
          this.failedInARow = 0;
        } catch (err) {
          this.troubles++;
          const retryInMs = Math.min(60_000, 2000 * 2 ** this.failedInARow++);
          this.log.warn(
            { err: err instanceof Error ? err.message : String(err), retryInMs },
            "namespace sync failed; trying again later",
          );
          if (!this.stopped) setTimeout(() => this.schedule(), retryInMs).unref();
        }
      } while (this.again && !this.stopped);
    })().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  /** The records of every network brought to the cache (see the top of the file). */
  private async sync(): Promise<void> {
    if (!this.listed || this.stopped) return;
    const cluster = new Set(this.names);
    const { store } = this.o;
    this.syncs++;
    const stillWaiting = new Set<string>();
    for (const { value: net } of (await listNetworks(store)).entries) {
      const listing = await listNamespaces(store, net.name);
      const prefix = namespacesPrefix(net.name);
      const damaged = new Set(listing.problems.map((p) => p.key.slice(prefix.length)));
      const records = new Map(listing.entries.map((e) => [e.value.name, e.value]));
      const missing = [...cluster].filter(
        (n) => !damaged.has(n) && !records.get(n)?.sources.includes(SOURCE),
      );
      if (missing.length > 0) {
        const written = await ensureNamespaces(store, net.name, missing, SOURCE);
        if (written.length > 0)
          this.log.info({ network: net.name, namespaces: written }, "namespaces registered from Kubernetes");
      }
      for (const rec of records.values()) {
        if (!rec.sources.includes(SOURCE) || cluster.has(rec.name)) continue;
        const key = `${net.name}/${rec.name}`;
        const where = { network: net.name, namespace: rec.name };
        let outcome: Awaited<ReturnType<typeof releaseNamespace>>;
        try {
          // The cache may lag behind another agent's: the API server has the last word.
          if (await this.o.api.namespaceExists(rec.name, this.o.requestTimeoutMs ?? 10_000)) continue;
          outcome = await releaseNamespace(store, net.name, rec.name, SOURCE);
        } catch (err) {
          // One namespace that cannot be settled now (API or store trouble, a damaged record)
          // holds up no other: it is tried again with the next comparison.
          this.troubles++;
          stillWaiting.add(key);
          this.log.warn(
            { ...where, err: err instanceof Error ? err.message : String(err) },
            "namespace deleted in Kubernetes: its record cannot be released now; trying again later",
          );
          continue;
        }
        if (outcome === "in-use") {
          if (!this.waiting.has(key))
            this.log.info(
              where,
              "namespace deleted in Kubernetes; its record goes once its endpoints are gone",
            );
          stillWaiting.add(key);
        } else if (outcome === "deleted")
          this.log.info(where, "namespace deleted in Kubernetes: record deleted");
        else if (outcome === "kept")
          this.log.info(
            where,
            "namespace deleted in Kubernetes: record kept, other sources still ask for it",
          );
      }
    }
    this.waiting.clear();
    for (const w of stillWaiting) this.waiting.add(w);
  }

  private apply(e: NamespaceEvent): void {
    if (e.type === "BOOKMARK") {
      this.resourceVersion = e.resourceVersion;
      return;
    }
    const { name, resourceVersion } = e.namespace;
    if (resourceVersion !== "") this.resourceVersion = resourceVersion;
    if (!this.valid(name)) return;
    if (e.type === "DELETED") {
      if (this.names.delete(name)) this.schedule();
    } else if (!this.names.has(name)) {
      this.names.add(name);
      this.schedule();
    }
  }

  private valid(name: string): boolean {
    try {
      checkNamespaceName(name);
      return true;
    } catch (err) {
      this.log.warn(
        { namespace: name, err: String(err) },
        "skipping a namespace whose name the overlay refuses",
      );
      return false;
    }
  }

  /** The reflector: list, watch from there, list again on 410 Gone; failures back off. */
  private async follow(): Promise<void> {
    const { api } = this.o;
    const timeoutMs = this.o.requestTimeoutMs ?? 10_000;
    const watchSeconds = this.o.watchSeconds ?? 300;
    let delay = 500;
    while (!this.stopped) {
      try {
        if (this.resourceVersion === "") {
          const list = await api.listNamespaces(timeoutMs);
          this.names = new Set(list.items.map((n) => n.name).filter((n) => this.valid(n)));
          this.resourceVersion = list.resourceVersion;
          if (!this.listed)
            this.log.info({ server: api.server, namespaces: this.names.size }, "namespaces listed");
          this.listed = true;
          this.schedule();
        }
        const started = performance.now();
        this.watching = true;
        const seconds = Math.round(watchSeconds * (1 + Math.random()));
        const end = await api.watchNamespaces(
          this.resourceVersion,
          { timeoutSeconds: seconds, idleMs: (seconds + 60) * 1000, signal: this.abort.signal },
          (e) => this.apply(e),
        );
        this.watching = false;
        if (end.expired) {
          this.log.info("namespace watch expired (410 Gone): listing again");
          this.resourceVersion = "";
        }
        delay = 500;
        // A server that ends every watch at once must not make this spin.
        if (performance.now() - started < 1000) await this.sleep(1000);
      } catch (err) {
        this.watching = false;
        if (this.stopped) break;
        this.troubles++;
        if ((err as { status?: number }).status === 410) this.resourceVersion = "";
        this.log.warn(
          { err: err instanceof Error ? err.message : String(err), retryInMs: delay },
          this.listed
            ? "namespace watch broken: new namespaces wait until it resumes"
            : "cannot list namespaces",
        );
        await this.sleep(jittered(delay));
        delay = Math.min(delay * 2, 30_000);
      }
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      if (this.abort.signal.aborted) return resolve();
      const done = (): void => {
        clearTimeout(t);
        this.abort.signal.removeEventListener("abort", done);
        resolve();
      };
      const t = setTimeout(done, ms);
      this.abort.signal.addEventListener("abort", done);
    });
  }
}

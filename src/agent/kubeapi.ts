/**
 * The agent's window on the Kubernetes API, through @kubernetes/client-node: the namespaces,
 * listed then watched from the listing's resourceVersion (as client-go's reflector does), and a
 * pod read by name for its annotations. Everything the agent asks the API server is here, and
 * KUBE_API_ACCESS says what that is: the DaemonSet's ClusterRole grants exactly those verbs
 * (deploy/overlay.yaml; test/deploy/manifest.test.ts holds the two together, and against what
 * the test kit's API server saw asked).
 *
 * Credentials: a kubeconfig file (`overlayd --kubeconfig PATH`), or the pod's own service
 * account when the agent runs in the cluster (`--kubeconfig in-cluster`).
 */
import {
  ApiException,
  CoreV1Api,
  KubeConfig,
  Observable,
  Watch,
  type ObservableMiddleware,
  type V1Namespace,
} from "@kubernetes/client-node";

/** The API calls the agent makes: the ClusterRole's rules (the core API group only). */
export const KUBE_API_ACCESS: readonly { resource: string; verbs: readonly string[] }[] = [
  // namespaceSync: list then watch; get confirms a namespace is gone before its record goes.
  { resource: "namespaces", verbs: ["get", "list", "watch"] },
  // podAnnotations: CNI ADD of a pod whose runtime passed no annotations.
  { resource: "pods", verbs: ["get"] },
];

/** What `--kubeconfig` takes besides a path: the service account of the pod the agent runs in. */
export const IN_CLUSTER = "in-cluster";

/** A namespace as the agent needs it: its name (and the version, for the watch). */
export interface KubeNamespace {
  name: string;
  resourceVersion: string;
}

export type NamespaceEvent =
  | { type: "ADDED" | "MODIFIED" | "DELETED"; namespace: KubeNamespace }
  /** A bookmark: nothing changed up to `resourceVersion`. */
  | { type: "BOOKMARK"; resourceVersion: string };

/** How a watch ended. "expired": the resourceVersion is too old (410 Gone), list again. */
export type WatchEnd = { expired: boolean };

/** A failed API call, with the HTTP status when there was an answer (0 when there was none). */
export class KubeApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
    this.name = "KubeApiError";
  }
}

/** The message of a Status object the API server answered with, if the body is one. */
function statusMessage(body: unknown): string | undefined {
  let b: unknown = body;
  if (typeof body === "string") {
    try {
      b = JSON.parse(body);
    } catch {
      return body.trim() === "" ? undefined : body.trim();
    }
  }
  if (typeof b === "object" && b !== null && "message" in b && typeof b.message === "string")
    return b.message;
  return undefined;
}

/** "GET /api/v1/... at https://host: 403 Forbidden (namespaces is forbidden: ...)". */
function apiError(what: string, server: string, err: unknown, timeoutMs?: number): KubeApiError {
  if (err instanceof KubeApiError) return err;
  if (err instanceof ApiException) {
    const code = Number(err.code);
    const why = statusMessage(err.body);
    return new KubeApiError(`${what} at ${server}: HTTP ${code}${why ? ` (${why})` : ""}`, code);
  }
  const e = err as { name?: string; message?: string; code?: string; statusCode?: number };
  if (e?.name === "AbortError" || e?.name === "TimeoutError") {
    return new KubeApiError(`${what} at ${server}: no answer within ${timeoutMs ?? "?"} ms`, 0);
  }
  if (typeof e?.statusCode === "number") {
    return new KubeApiError(`${what} at ${server}: HTTP ${e.statusCode} (${e.message ?? ""})`, e.statusCode);
  }
  return new KubeApiError(`${what} at ${server}: ${e?.code ?? e?.message ?? String(err)}`, 0);
}

/** Hands the request an abort signal that fires after `ms` (the generated client takes no timeout). */
function withTimeout(ms: number): { middleware: ObservableMiddleware[]; middlewareMergeStrategy: "append" } {
  return {
    middleware: [
      {
        pre: (ctx) => {
          ctx.setSignal(AbortSignal.timeout(ms));
          return new Observable(Promise.resolve(ctx));
        },
        post: (ctx) => new Observable(Promise.resolve(ctx)),
      },
    ],
    middlewareMergeStrategy: "append",
  };
}

function namespaceOf(o: V1Namespace): KubeNamespace {
  return { name: o.metadata?.name ?? "", resourceVersion: o.metadata?.resourceVersion ?? "" };
}

export class KubeApi {
  private readonly core: CoreV1Api;
  private readonly watcher: Watch;
  /** The API server's address, for messages. */
  readonly server: string;

  constructor(private readonly config: KubeConfig) {
    const cluster = config.getCurrentCluster();
    if (cluster === null) throw new Error("the kubeconfig names no current cluster");
    this.server = cluster.server;
    this.core = config.makeApiClient(CoreV1Api);
    this.watcher = new Watch(config);
  }

  /** From a kubeconfig file, or IN_CLUSTER for the pod's service account. */
  static load(kubeconfig: string): KubeApi {
    const kc = new KubeConfig();
    if (kubeconfig === IN_CLUSTER) kc.loadFromCluster();
    else kc.loadFromFile(kubeconfig);
    return new KubeApi(kc);
  }

  /** Every namespace, and the resourceVersion to watch from. */
  async listNamespaces(timeoutMs: number): Promise<{ items: KubeNamespace[]; resourceVersion: string }> {
    try {
      const list = await this.core.listNamespace({}, withTimeout(timeoutMs));
      return { items: list.items.map(namespaceOf), resourceVersion: list.metadata?.resourceVersion ?? "" };
    } catch (err) {
      throw apiError("listing namespaces", this.server, err, timeoutMs);
    }
  }

  /** Whether the namespace exists now, asked of the API server itself (not a cache). */
  async namespaceExists(name: string, timeoutMs: number): Promise<boolean> {
    try {
      await this.core.readNamespace({ name }, withTimeout(timeoutMs));
      return true;
    } catch (err) {
      if (err instanceof ApiException && Number(err.code) === 404) return false;
      throw apiError(`reading namespace ${name}`, this.server, err, timeoutMs);
    }
  }

  /** The pod's annotations (none: an empty object). */
  async podAnnotations(namespace: string, name: string, timeoutMs: number): Promise<Record<string, string>> {
    try {
      const pod = await this.core.readNamespacedPod({ namespace, name }, withTimeout(timeoutMs));
      return pod.metadata?.annotations ?? {};
    } catch (err) {
      throw apiError(`reading pod ${namespace}/${name}`, this.server, err, timeoutMs);
    }
  }

  /**
   * Watches namespaces from `resourceVersion`, with bookmarks, until the server ends the watch
   * (after `timeoutSeconds`), the connection drops, `stop` is called, or nothing at all arrives
   * for `idleMs` (a connection that died without a word). Resolves with whether the version had
   * expired; rejects when the watch could not start or broke.
   */
  watchNamespaces(
    resourceVersion: string,
    opts: { timeoutSeconds: number; idleMs: number; signal: AbortSignal },
    onEvent: (e: NamespaceEvent) => void,
  ): Promise<WatchEnd> {
    return new Promise<WatchEnd>((resolve, reject) => {
      let expired = false;
      let failure: KubeApiError | undefined;
      let controller: AbortController | undefined;
      let idle: NodeJS.Timeout | undefined;
      let settled = false;
      const what = "watching namespaces";
      const finish = (err: unknown): void => {
        if (settled) return;
        settled = true;
        clearTimeout(idle);
        opts.signal.removeEventListener("abort", abort);
        controller?.abort();
        if (opts.signal.aborted || expired) resolve({ expired });
        else if (failure !== undefined) reject(failure);
        else if (err !== null && err !== undefined) {
          const e = apiError(what, this.server, err);
          if (e.status === 410) resolve({ expired: true });
          else reject(e);
        } else resolve({ expired: false });
      };
      const abort = (): void => finish(null);
      if (opts.signal.aborted) {
        resolve({ expired: false });
        return;
      }
      const alive = (): void => {
        clearTimeout(idle);
        idle = setTimeout(() => {
          failure = new KubeApiError(`${what} at ${this.server}: nothing received for ${opts.idleMs} ms`, 0);
          finish(null);
        }, opts.idleMs);
      };
      opts.signal.addEventListener("abort", abort);
      alive();
      this.watcher
        .watch(
          "/api/v1/namespaces",
          { resourceVersion, allowWatchBookmarks: true, timeoutSeconds: opts.timeoutSeconds },
          (type: string, obj: unknown) => {
            alive();
            if (type === "ERROR") {
              const status = obj as { code?: number; message?: string };
              if (status.code === 410) expired = true;
              else
                failure = new KubeApiError(
                  `${what} at ${this.server}: HTTP ${status.code ?? "?"} (${status.message ?? "no message"})`,
                  status.code ?? 0,
                );
              finish(null);
              return;
            }
            const o = obj as V1Namespace;
            if (type === "BOOKMARK") onEvent({ type, resourceVersion: o.metadata?.resourceVersion ?? "" });
            else if (type === "ADDED" || type === "MODIFIED" || type === "DELETED")
              onEvent({ type, namespace: namespaceOf(o) });
          },
          finish,
        )
        .then(
          (c: AbortController) => {
            controller = c;
            if (settled) c.abort();
          },
          (err: unknown) => finish(err ?? new Error("watch failed")),
        );
    });
  }
}

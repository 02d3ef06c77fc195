/**
 * A small Kubernetes API server for tests and the demo: namespaces and pods, reached through
 * @kubernetes/client-node with a kubeconfig file exactly as in production (no API server can
 * be installed on these machines): HTTPS with a certificate made for the run (`openssl`),
 * named in the kubeconfig as its certificate authority, and a bearer token. It keeps the
 * semantics the agent relies on:
 *
 * - every change gets the next resourceVersion (one counter, as etcd's revision);
 * - list (`GET /api/v1/namespaces`, `/api/v1/pods`, `/api/v1/namespaces/NS/pods`) answers the
 *   items and the version to watch from; get answers an item or a 404 Status;
 * - watch (`?watch=true&resourceVersion=N`) sends every change after N, then follows; with
 *   `allowWatchBookmarks=true` a BOOKMARK every `bookmarkMs`; the server ends it after
 *   `timeoutSeconds`; a version older than the retained history (`expireHistory()`) gets an
 *   ERROR event with a 410 Status (`Expired`, "too old resource version"), as the real server;
 * - a bearer token is required (401 without), `forbid(verb, resource)` answers 403 for it as RBAC
 *   would, `delay(resource, ms)` holds answers back, `dropWatches()` cuts every open watch;
 * - every request is logged as (verb, resource), so a test can hold the ClusterRole to what the
 *   code asked (`requests`).
 *
 * Past 400 lines on purpose: the server's objects, its watch streams and the faults a test injects
 * (410, 403, dropped connections, delays) all act on one resourceVersion history.
 */
import { execFileSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer, type Server } from "node:https";
import type { AddressInfo, Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

export type Resource = "namespaces" | "pods";
export type Verb = "get" | "list" | "watch";

interface StoredObject {
  apiVersion: "v1";
  kind: "Namespace" | "Pod";
  metadata: {
    name: string;
    namespace?: string;
    uid: string;
    resourceVersion: string;
    creationTimestamp: string;
    annotations?: Record<string, string>;
  };
}

interface Change {
  rv: number;
  resource: Resource;
  type: "ADDED" | "MODIFIED" | "DELETED";
  object: StoredObject;
}

interface OpenWatch {
  resource: Resource;
  namespace: string | undefined;
  res: ServerResponse;
  end(): void;
}

const TOKEN = "overlay-test-token";

function keyOf(resource: Resource, namespace: string | undefined, name: string): string {
  return `${resource}/${namespace ?? ""}/${name}`;
}

function status(code: number, reason: string, message: string): object {
  return { kind: "Status", apiVersion: "v1", metadata: {}, status: "Failure", message, reason, code };
}

export class FakeKubeApi {
  private rv = 1;
  /** Changes at or below this version are forgotten: watches from there get 410. */
  private compacted = 0;
  private readonly objects = new Map<string, StoredObject>();
  private readonly history: Change[] = [];
  private readonly watches = new Set<OpenWatch>();
  private readonly sockets = new Set<Socket>();
  private readonly forbidden = new Set<string>();
  private readonly delays = new Map<Resource, number>();
  /** Every request served, in order. */
  readonly requests: { verb: Verb; resource: Resource; path: string }[] = [];
  bookmarkMs = 1000;
  readonly dir: string;
  readonly kubeconfig: string;

  private constructor(
    private readonly server: Server,
    readonly url: string,
    dir: string,
    cert: Buffer,
  ) {
    this.dir = dir;
    this.kubeconfig = join(this.dir, "kubeconfig");
    writeFileSync(this.kubeconfig, kubeconfigFor(url, TOKEN, cert));
  }

  /**
   * Listens on 127.0.0.1 on a free port, or, with `relayPort`, on a unix socket in its folder
   * (`socketPath`) for agents in other network namespaces, each reaching it through a relay from
   * 127.0.0.1:relayPort in its own namespace (`relayIn`); the kubeconfig names
   * https://127.0.0.1:relayPort then. Starts with the namespaces every cluster has.
   */
  static async start(
    opts: { namespaces?: readonly string[]; relayPort?: number } = {},
  ): Promise<FakeKubeApi> {
    const dir = mkdtempSync(join(tmpdir(), "overlay-kubeapi-"));
    const certFile = join(dir, "server.crt");
    const keyFile = join(dir, "server.key");
    // Self-signed for 127.0.0.1, valid a day: the kubeconfig names it as the CA.
    execFileSync(
      "openssl",
      [
        ...["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"],
        ...["-keyout", keyFile, "-out", certFile, "-days", "1", "-subj", "/CN=overlay-test-apiserver"],
        ...["-addext", "subjectAltName=IP:127.0.0.1"],
      ],
      { stdio: "ignore" },
    );
    const cert = readFileSync(certFile);
    const server = createServer({ cert, key: readFileSync(keyFile) });
    let url: string;
    if (opts.relayPort === undefined) {
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
    } else {
      await new Promise<void>((resolve) => server.listen(join(dir, "api.sock"), resolve));
      url = `https://127.0.0.1:${opts.relayPort}`;
    }
    const api = new FakeKubeApi(server, url, dir, cert);
    server.on("request", (req, res) => api.serve(req, res));
    server.on("secureConnection", (s) => {
      api.sockets.add(s);
      s.on("close", () => api.sockets.delete(s));
    });
    for (const ns of opts.namespaces ?? ["default", "kube-node-lease", "kube-public", "kube-system"])
      api.createNamespace(ns);
    return api;
  }

  /** The unix socket it listens on (with `relayPort`). */
  get socketPath(): string {
    return join(this.dir, "api.sock");
  }

  /**
   * The command that relays 127.0.0.1:PORT of the namespace it runs in to this server's unix
   * socket (run it there: World.start(ns, ...relayCommand())).
   */
  relayCommand(): [string, string[]] {
    const port = Number(new URL(this.url).port);
    const script = [
      'const net = require("node:net");',
      "const [port, path] = process.argv.slice(1);",
      "net.createServer((c) => {",
      "  const u = net.connect(path);",
      "  c.pipe(u).on('error', () => u.destroy());",
      "  u.pipe(c).on('error', () => c.destroy());",
      "  c.on('error', () => u.destroy()); u.on('error', () => c.destroy());",
      "}).listen(Number(port), '127.0.0.1');",
    ].join("\n");
    return [process.execPath, ["-e", script, String(port), this.socketPath]];
  }

  get resourceVersion(): number {
    return this.rv;
  }

  createNamespace(name: string): void {
    this.put("namespaces", undefined, name, {});
  }

  deleteNamespace(name: string): void {
    for (const o of [...this.objects.values()])
      if (o.kind === "Pod" && o.metadata.namespace === name) this.remove("pods", name, o.metadata.name);
    this.remove("namespaces", undefined, name);
  }

  putPod(namespace: string, name: string, annotations: Record<string, string> = {}): void {
    this.put("pods", namespace, name, annotations);
  }

  deletePod(namespace: string, name: string): void {
    this.remove("pods", namespace, name);
  }

  namespaceNames(): string[] {
    return [...this.objects.values()].filter((o) => o.kind === "Namespace").map((o) => o.metadata.name);
  }

  /** Forgets the history so far: a watch from any version up to now is answered 410 Gone. */
  expireHistory(): void {
    this.compacted = ++this.rv;
    this.history.length = 0;
  }

  /** Cuts every open watch connection without a word (a restarting API server, a lost link). */
  dropWatches(): void {
    for (const w of this.watches) w.res.socket?.destroy();
  }

  /** Answers 403 to this verb on this resource (a ClusterRole that lacks it), until allowed again. */
  forbid(verb: Verb, resource: Resource): void {
    this.forbidden.add(`${verb} ${resource}`);
  }

  allow(verb: Verb, resource: Resource): void {
    this.forbidden.delete(`${verb} ${resource}`);
  }

  /** Holds every answer about this resource back by `ms` (0 to stop). */
  delay(resource: Resource, ms: number): void {
    this.delays.set(resource, ms);
  }

  /** The distinct (verb, resource) pairs asked so far. */
  verbsUsed(): Map<Resource, Set<Verb>> {
    const out = new Map<Resource, Set<Verb>>();
    for (const r of this.requests) {
      const s = out.get(r.resource) ?? new Set<Verb>();
      s.add(r.verb);
      out.set(r.resource, s);
    }
    return out;
  }

  async close(): Promise<void> {
    for (const w of this.watches) w.end();
    for (const s of this.sockets) s.destroy();
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
    rmSync(this.dir, { recursive: true, force: true });
  }

  // ---- changes ---------------------------------------------------------------------------

  private put(
    resource: Resource,
    namespace: string | undefined,
    name: string,
    annotations: Record<string, string>,
  ): void {
    const key = keyOf(resource, namespace, name);
    const old = this.objects.get(key);
    const rv = ++this.rv;
    const object: StoredObject = {
      apiVersion: "v1",
      kind: resource === "namespaces" ? "Namespace" : "Pod",
      metadata: {
        name,
        ...(namespace === undefined ? {} : { namespace }),
        uid: old?.metadata.uid ?? randomUUID(),
        resourceVersion: String(rv),
        creationTimestamp: old?.metadata.creationTimestamp ?? new Date().toISOString(),
        ...(Object.keys(annotations).length > 0 ? { annotations } : {}),
      },
    };
    this.objects.set(key, object);
    this.record({ rv, resource, type: old === undefined ? "ADDED" : "MODIFIED", object });
  }

  private remove(resource: Resource, namespace: string | undefined, name: string): void {
    const key = keyOf(resource, namespace, name);
    const old = this.objects.get(key);
    if (old === undefined) return;
    this.objects.delete(key);
    const rv = ++this.rv;
    const object = { ...old, metadata: { ...old.metadata, resourceVersion: String(rv) } };
    this.record({ rv, resource, type: "DELETED", object });
  }

  private record(change: Change): void {
    this.history.push(change);
    for (const w of this.watches) {
      if (w.resource === change.resource && this.inScope(change.object, w.namespace)) send(w.res, change);
    }
  }

  private inScope(o: StoredObject, namespace: string | undefined): boolean {
    return namespace === undefined || o.metadata.namespace === namespace;
  }

  // ---- serving ---------------------------------------------------------------------------

  private serve(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? "/", this.url);
    const route = parseRoute(url.pathname);
    if (req.method !== "GET" || route === undefined) {
      json(
        res,
        404,
        status(
          404,
          "NotFound",
          `the server could not find the requested resource (${req.method} ${url.pathname})`,
        ),
      );
      return;
    }
    const watch = url.searchParams.get("watch") === "true" || url.searchParams.get("watch") === "1";
    const verb: Verb = route.name !== undefined ? "get" : watch ? "watch" : "list";
    this.requests.push({ verb, resource: route.resource, path: url.pathname });
    if (req.headers.authorization !== `Bearer ${TOKEN}`) {
      json(res, 401, status(401, "Unauthorized", "Unauthorized"));
      return;
    }
    if (this.forbidden.has(`${verb} ${route.resource}`)) {
      const scope =
        route.namespace === undefined ? "at the cluster scope" : `in the namespace "${route.namespace}"`;
      json(
        res,
        403,
        status(
          403,
          "Forbidden",
          `${route.resource}${route.name ? ` "${route.name}"` : ""} is forbidden: User "system:serviceaccount:overlay-system:overlayd" cannot ${verb} resource "${route.resource}" in API group "" ${scope}`,
        ),
      );
      return;
    }
    const answer = (): void => {
      if (route.name !== undefined) this.get(res, route.resource, route.namespace, route.name);
      else if (watch) this.watch(res, route.resource, route.namespace, url.searchParams);
      else this.list(res, route.resource, route.namespace);
    };
    const delay = this.delays.get(route.resource) ?? 0;
    if (delay > 0) setTimeout(answer, delay);
    else answer();
  }

  private get(res: ServerResponse, resource: Resource, namespace: string | undefined, name: string): void {
    const o = this.objects.get(keyOf(resource, namespace, name));
    if (o === undefined) {
      json(res, 404, status(404, "NotFound", `${resource} "${name}" not found`));
      return;
    }
    json(res, 200, o);
  }

  private list(res: ServerResponse, resource: Resource, namespace: string | undefined): void {
    const items = [...this.objects.entries()]
      .filter(([k, o]) => k.startsWith(`${resource}/`) && this.inScope(o, namespace))
      .map(([, o]) => o);
    json(res, 200, {
      apiVersion: "v1",
      kind: resource === "namespaces" ? "NamespaceList" : "PodList",
      metadata: { resourceVersion: String(this.rv) },
      items,
    });
  }

  private watch(
    res: ServerResponse,
    resource: Resource,
    namespace: string | undefined,
    q: URLSearchParams,
  ): void {
    res.writeHead(200, { "content-type": "application/json", "transfer-encoding": "chunked" });
    const from = q.get("resourceVersion") ?? "";
    const timeoutSeconds = Number(q.get("timeoutSeconds") ?? "0");
    if (from !== "" && from !== "0" && Number(from) < this.compacted) {
      send(res, {
        type: "ERROR",
        object: status(410, "Expired", `too old resource version: ${from} (${this.compacted})`),
      });
      res.end();
      return;
    }
    if (from === "" || from === "0") {
      // No version: the current state as ADDED events first, as the real server does.
      for (const [k, o] of this.objects)
        if (k.startsWith(`${resource}/`) && this.inScope(o, namespace))
          send(res, { type: "ADDED", object: o });
    } else {
      for (const c of this.history)
        if (c.rv > Number(from) && c.resource === resource && this.inScope(c.object, namespace)) send(res, c);
    }
    const timers: NodeJS.Timeout[] = [];
    const w: OpenWatch = {
      resource,
      namespace,
      res,
      end: () => {
        for (const t of timers) clearTimeout(t);
        this.watches.delete(w);
        if (!res.writableEnded) res.end();
      },
    };
    this.watches.add(w);
    res.on("close", () => w.end());
    if (q.get("allowWatchBookmarks") === "true") {
      const bookmark = (): void => {
        send(res, {
          type: "BOOKMARK",
          object: {
            kind: resource === "namespaces" ? "Namespace" : "Pod",
            apiVersion: "v1",
            metadata: { resourceVersion: String(this.rv) },
          },
        });
        timers[0] = setTimeout(bookmark, this.bookmarkMs);
      };
      timers[0] = setTimeout(bookmark, this.bookmarkMs);
    }
    if (timeoutSeconds > 0) timers[1] = setTimeout(() => w.end(), timeoutSeconds * 1000);
  }
}

function parseRoute(path: string): { resource: Resource; namespace?: string; name?: string } | undefined {
  const p = path.replace(/\/+$/, "").split("/").slice(1);
  if (p[0] !== "api" || p[1] !== "v1") return undefined;
  const rest = p.slice(2);
  if (rest.length === 1 && rest[0] === "namespaces") return { resource: "namespaces" };
  if (rest.length === 1 && rest[0] === "pods") return { resource: "pods" };
  if (rest.length === 2 && rest[0] === "namespaces")
    return { resource: "namespaces", name: rest[1] as string };
  if (rest.length === 3 && rest[0] === "namespaces" && rest[2] === "pods")
    return { resource: "pods", namespace: rest[1] as string };
  if (rest.length === 4 && rest[0] === "namespaces" && rest[2] === "pods")
    return { resource: "pods", namespace: rest[1] as string, name: rest[3] as string };
  return undefined;
}

function json(res: ServerResponse, code: number, body: object): void {
  res.writeHead(code, { "content-type": "application/json" }).end(JSON.stringify(body));
}

function send(res: ServerResponse, event: { type: string; object: object }): void {
  if (!res.writableEnded) res.write(`${JSON.stringify({ type: event.type, object: event.object })}\n`);
}

/** A kubeconfig for the fake server (JSON, which is YAML too). */
export function kubeconfigFor(server: string, token: string, ca: Buffer): string {
  return JSON.stringify(
    {
      apiVersion: "v1",
      kind: "Config",
      clusters: [{ name: "fake", cluster: { server, "certificate-authority-data": ca.toString("base64") } }],
      users: [{ name: "overlayd", user: { token } }],
      contexts: [{ name: "fake", context: { cluster: "fake", user: "overlayd" } }],
      "current-context": "fake",
    },
    null,
    2,
  );
}

/**
 * Opens the cluster store named by a URL:
 *   sqlite:PATH                          a SQLite file shared by the processes of one machine
 *   sqlite::memory:                      a private in-memory store (one process; tests)
 *   etcd://HOST:PORT[,HOST:PORT...]      an etcd cluster
 */
import type { Store } from "./store.js";

export * from "./store.js";
export type { SqliteStoreOptions } from "./sqlite.js";
export type { EtcdStoreOptions } from "./etcd.js";

export const DEFAULT_STORE_URL = "sqlite:/var/lib/overlay/store.db";

export type StoreLocation = { kind: "sqlite"; path: string } | { kind: "etcd"; endpoints: string[] };

const EXPECTED = "expected sqlite:PATH, sqlite::memory: or etcd://HOST:PORT[,HOST:PORT...]";

export class StoreUrlError extends Error {
  constructor(url: string, problem: string) {
    super(`invalid store URL ${JSON.stringify(url)}: ${problem}; ${EXPECTED}`);
    this.name = "StoreUrlError";
  }
}

/** The URL to use when none is given: $OVERLAY_STORE, then the default SQLite file. */
export function storeUrlFromEnv(env: NodeJS.ProcessEnv = process.env): string {
  const fromEnv = env.OVERLAY_STORE?.trim();
  return fromEnv !== undefined && fromEnv !== "" ? fromEnv : DEFAULT_STORE_URL;
}

export function parseStoreUrl(url: string): StoreLocation {
  const trimmed = url.trim();
  if (trimmed.startsWith("sqlite:")) {
    let path = trimmed.slice("sqlite:".length);
    // Accept the URL-ish spelling sqlite:///abs/path too.
    if (path.startsWith("//")) path = path.slice(2);
    if (path === "") throw new StoreUrlError(url, "the SQLite path is empty");
    return { kind: "sqlite", path };
  }
  if (trimmed.startsWith("etcd://")) {
    const rest = trimmed.slice("etcd://".length).replace(/\/+$/, "");
    if (rest === "") throw new StoreUrlError(url, "no etcd endpoint given");
    const endpoints = rest.split(",").map((hostPort) => parseHostPort(url, hostPort.trim()));
    return { kind: "etcd", endpoints };
  }
  throw new StoreUrlError(url, "unknown scheme");
}

function parseHostPort(url: string, hostPort: string): string {
  const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._-]+):(\d{1,5})$/.exec(hostPort);
  if (m === null) throw new StoreUrlError(url, `endpoint ${JSON.stringify(hostPort)} is not HOST:PORT`);
  const port = Number(m[2]);
  if (port < 1 || port > 65535) throw new StoreUrlError(url, `port ${port} is out of range`);
  return hostPort;
}

export interface OpenStoreOptions {
  /** etcd request timeout (ms). */
  timeoutMs?: number;
}

export async function openStore(url?: string, options: OpenStoreOptions = {}): Promise<Store> {
  const location = parseStoreUrl(url ?? storeUrlFromEnv());
  if (location.kind === "sqlite") {
    const { SqliteStore } = await import("./sqlite.js");
    return new SqliteStore(location.path);
  }
  const { EtcdStore } = await import("./etcd.js");
  return new EtcdStore(
    location.endpoints,
    options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs },
  );
}

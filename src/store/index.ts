/**
 * Opens the cluster store named by a URL:
 *   sqlite:PATH                          a SQLite file shared by the processes of one machine
 *   sqlite::memory:                      a private in-memory store (one process; tests)
 *   etcd://HOST:PORT[,HOST:PORT...]      an etcd cluster
 *   etcds://HOST:PORT[,HOST:PORT...]     an etcd cluster over TLS, with the CA, client certificate
 *                                        and key (and etcd user/password) from the environment:
 *                                        see etcdTlsFromEnv
 */
import { X509Certificate, createPrivateKey } from "node:crypto";
import { readFileSync } from "node:fs";
import type { EtcdAuth, EtcdTls } from "./etcd.js";
import type { Store } from "./store.js";

export * from "./store.js";
export type { SqliteStoreOptions } from "./sqlite.js";
export type { EtcdStoreOptions, EtcdTls, EtcdAuth } from "./etcd.js";

export const DEFAULT_STORE_URL = "sqlite:/var/lib/overlay/store.db";

export type StoreLocation =
  { kind: "sqlite"; path: string } | { kind: "etcd"; endpoints: string[]; tls?: true };

const EXPECTED =
  "expected sqlite:PATH, sqlite::memory:, etcd://HOST:PORT[,HOST:PORT...] or etcds://HOST:PORT[,HOST:PORT...]";

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
  const scheme = /^(etcds?):\/\//.exec(trimmed)?.[1];
  if (scheme !== undefined) {
    const rest = trimmed.slice(scheme.length + 3).replace(/\/+$/, "");
    if (rest === "") throw new StoreUrlError(url, "no etcd endpoint given");
    const endpoints = rest.split(",").map((hostPort) => parseHostPort(url, hostPort.trim()));
    return scheme === "etcds" ? { kind: "etcd", endpoints, tls: true } : { kind: "etcd", endpoints };
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
  /** Where etcds:// URLs find their certificate files and credentials. Default process.env. */
  env?: NodeJS.ProcessEnv;
}

/** The environment variables an etcds:// store reads (files are read when the store opens). */
export const ETCD_TLS_ENV = {
  /** PEM file of the CA that signed etcd's server certificate; unset: the system's roots. */
  ca: "OVERLAY_ETCD_CA",
  /** PEM file of this client's certificate (chain); with OVERLAY_ETCD_KEY. */
  cert: "OVERLAY_ETCD_CERT",
  /** PEM file of this client's private key; with OVERLAY_ETCD_CERT. */
  key: "OVERLAY_ETCD_KEY",
  /** etcd user (etcd's own auth, on top of the certificate); with OVERLAY_ETCD_PASSWORD. */
  user: "OVERLAY_ETCD_USER",
  /** etcd user's password, or OVERLAY_ETCD_PASSWORD_FILE: a file holding it. */
  password: "OVERLAY_ETCD_PASSWORD",
  passwordFile: "OVERLAY_ETCD_PASSWORD_FILE",
} as const;

/** An etcds:// store's configuration could not be read: names the variable and the file. */
export class StoreConfigError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "StoreConfigError";
  }
}

function envValue(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const v = env[name]?.trim();
  return v === undefined || v === "" ? undefined : v;
}

function readEnvFile(url: string, env: NodeJS.ProcessEnv, name: string): Buffer | undefined {
  const path = envValue(env, name);
  if (path === undefined) return undefined;
  try {
    const data = readFileSync(path);
    if (data.length === 0) throw new Error("the file is empty");
    return data;
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new StoreConfigError(`store ${url}: cannot read ${name}=${path}: ${reason}`, { cause: err });
  }
}

/**
 * What can be known of the client certificate before dialling: it parses, it is within its dates
 * and the key is its own. (etcd's refusal of an expired certificate does not say why.)
 */
function checkClientCert(url: string, env: NodeJS.ProcessEnv, certPem: Buffer, keyPem: Buffer): void {
  const E = ETCD_TLS_ENV;
  const where = `${E.cert}=${envValue(env, E.cert)}`;
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch (err) {
    throw new StoreConfigError(`store ${url}: ${where} is not a PEM certificate: ${(err as Error).message}`, {
      cause: err,
    });
  }
  let key;
  try {
    key = createPrivateKey(keyPem);
  } catch (err) {
    throw new StoreConfigError(
      `store ${url}: ${E.key}=${envValue(env, E.key)} is not a PEM private key: ${(err as Error).message}`,
      { cause: err },
    );
  }
  const now = Date.now();
  if (Date.parse(cert.validTo) < now) {
    throw new StoreConfigError(
      `store ${url}: the client certificate ${where} (${cert.subject.replace(/\n/g, ", ")}) expired on ${cert.validTo}`,
    );
  }
  if (Date.parse(cert.validFrom) > now) {
    throw new StoreConfigError(
      `store ${url}: the client certificate ${where} is not valid before ${cert.validFrom}`,
    );
  }
  if (!cert.checkPrivateKey(key)) {
    throw new StoreConfigError(`store ${url}: ${E.key}=${envValue(env, E.key)} is not the key of ${where}`);
  }
}

/**
 * The TLS material and credentials of an etcds:// store, from OVERLAY_ETCD_* (see ETCD_TLS_ENV):
 * files are read now, and a variable naming a file that cannot be read is an error naming both.
 */
export function etcdTlsFromEnv(
  url: string,
  env: NodeJS.ProcessEnv = process.env,
): { tls: EtcdTls; auth?: EtcdAuth } {
  const E = ETCD_TLS_ENV;
  const ca = readEnvFile(url, env, E.ca);
  const cert = readEnvFile(url, env, E.cert);
  const key = readEnvFile(url, env, E.key);
  if ((cert === undefined) !== (key === undefined)) {
    const [given, missing] = cert === undefined ? [E.key, E.cert] : [E.cert, E.key];
    throw new StoreConfigError(`store ${url}: ${given} is set but ${missing} is not; set both or neither`);
  }
  if (cert !== undefined && key !== undefined) checkClientCert(url, env, cert, key);
  const tls: EtcdTls = {
    ...(ca === undefined ? {} : { ca, caSource: `${E.ca}=${envValue(env, E.ca)}` }),
    ...(cert === undefined || key === undefined
      ? {}
      : { cert, key, certSource: `${E.cert}=${envValue(env, E.cert)}` }),
  };
  const user = envValue(env, E.user);
  let password = env[E.password];
  const passwordFile = readEnvFile(url, env, E.passwordFile);
  if (passwordFile !== undefined) password = passwordFile.toString("utf8").replace(/\r?\n$/, "");
  if (user === undefined) {
    if (password !== undefined && password !== "") {
      throw new StoreConfigError(`store ${url}: an etcd password is set but ${E.user} is not`);
    }
    return { tls };
  }
  if (password === undefined || password === "") {
    throw new StoreConfigError(
      `store ${url}: ${E.user} is set but neither ${E.password} nor ${E.passwordFile} is`,
    );
  }
  return { tls, auth: { username: user, password } };
}

export async function openStore(url?: string, options: OpenStoreOptions = {}): Promise<Store> {
  const location = parseStoreUrl(url ?? storeUrlFromEnv());
  if (location.kind === "sqlite") {
    const { SqliteStore } = await import("./sqlite.js");
    return new SqliteStore(location.path);
  }
  const { EtcdStore } = await import("./etcd.js");
  const secure = location.tls === true ? etcdTlsFromEnv(url ?? storeUrlFromEnv(), options.env) : {};
  return new EtcdStore(location.endpoints, {
    ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
    ...secure,
  });
}

/**
 * Opens the cluster store named by a URL:
 *   sqlite:PATH                          a SQLite file shared by the processes of one machine
 *   sqlite::memory:                      a private in-memory store (one process; tests)
 *   etcd://HOST:PORT[,HOST:PORT...]      an etcd cluster
 *   etcds://HOST:PORT[,HOST:PORT...]     an etcd cluster over TLS, with the CA, client certificate
 *                                        and key (and etcd user/password) from flags or the
 *                                        environment: see etcdTlsSettings
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
  /** etcds:// settings from the command line (ETCD_TLS_FLAGS); each wins over its variable. */
  etcd?: EtcdTlsFlags;
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

/**
 * The command-line flags of the same settings (overlayd, dctl: see flags.ts). There is no flag
 * for the password itself, which `ps` would show to everyone: a file, or the environment.
 */
export const ETCD_TLS_FLAGS = {
  ca: "--etcd-ca",
  cert: "--etcd-cert",
  key: "--etcd-key",
  user: "--etcd-user",
  passwordFile: "--etcd-password-file",
} as const;

/** The values of ETCD_TLS_FLAGS given on a command line (paths, and the user's name). */
export type EtcdTlsFlags = Partial<Record<keyof typeof ETCD_TLS_FLAGS, string>>;

/** An etcds:// store's configuration could not be read: names the flag or variable and the file. */
export class StoreConfigError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "StoreConfigError";
  }
}

/**
 * The flags given for a store they do not apply to (anything but etcds://), as a message for a
 * usage error, or undefined when there is nothing wrong. An unparsable URL is openStore's to report.
 */
export function etcdTlsFlagsMisused(url: string, flags: EtcdTlsFlags = {}): string | undefined {
  const given = (Object.keys(ETCD_TLS_FLAGS) as (keyof typeof ETCD_TLS_FLAGS)[])
    .filter((k) => flags[k] !== undefined)
    .map((k) => ETCD_TLS_FLAGS[k]);
  if (given.length === 0) return undefined;
  let location: StoreLocation;
  try {
    location = parseStoreUrl(url);
  } catch {
    return undefined;
  }
  if (location.kind === "etcd" && location.tls === true) return undefined;
  return (
    `${given.join(", ")} ${given.length === 1 ? "is" : "are"} for an etcds:// store (etcd over TLS), ` +
    `not ${url.trim()}: give the store as etcds://HOST:PORT, or leave ${given.length === 1 ? "it" : "them"} out`
  );
}

/** Where a setting came from: the flag or the variable, and its value. */
interface Source {
  /** "--etcd-cert" or "OVERLAY_ETCD_CERT". */
  name: string;
  value: string;
}

function named(s: Source): string {
  return `${s.name}=${s.value}`;
}

/** "neither --etcd-key nor OVERLAY_ETCD_KEY": every name a missing setting could have come from. */
function neither(k: keyof typeof ETCD_TLS_FLAGS): string {
  return `neither ${ETCD_TLS_FLAGS[k]} nor ${ETCD_TLS_ENV[k]}`;
}

function envValue(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const v = env[name]?.trim();
  return v === undefined || v === "" ? undefined : v;
}

/** The one rule for every setting: the flag if given, else the environment variable. */
function sourceOf(
  env: NodeJS.ProcessEnv,
  flags: EtcdTlsFlags,
  k: keyof typeof ETCD_TLS_FLAGS,
): Source | undefined {
  const flag = flags[k]?.trim();
  if (flag !== undefined && flag !== "") return { name: ETCD_TLS_FLAGS[k], value: flag };
  const v = envValue(env, ETCD_TLS_ENV[k]);
  return v === undefined ? undefined : { name: ETCD_TLS_ENV[k], value: v };
}

function readSource(url: string, s: Source | undefined): Buffer | undefined {
  if (s === undefined) return undefined;
  try {
    const data = readFileSync(s.value);
    if (data.length === 0) throw new Error("the file is empty");
    return data;
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new StoreConfigError(`store ${url}: cannot read ${named(s)}: ${reason}`, { cause: err });
  }
}

/**
 * What can be known of the client certificate before dialling: it parses, it is within its dates
 * and the key is its own. (etcd's refusal of an expired certificate does not say why.)
 */
function checkClientCert(url: string, cert: Source, key: Source, certPem: Buffer, keyPem: Buffer): void {
  const where = named(cert);
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(certPem);
  } catch (err) {
    throw new StoreConfigError(`store ${url}: ${where} is not a PEM certificate: ${(err as Error).message}`, {
      cause: err,
    });
  }
  let privateKey;
  try {
    privateKey = createPrivateKey(keyPem);
  } catch (err) {
    throw new StoreConfigError(
      `store ${url}: ${named(key)} is not a PEM private key: ${(err as Error).message}`,
      { cause: err },
    );
  }
  const now = Date.now();
  if (Date.parse(x509.validTo) < now) {
    throw new StoreConfigError(
      `store ${url}: the client certificate ${where} (${x509.subject.replace(/\n/g, ", ")}) expired on ${x509.validTo}`,
    );
  }
  if (Date.parse(x509.validFrom) > now) {
    throw new StoreConfigError(
      `store ${url}: the client certificate ${where} is not valid before ${x509.validFrom}`,
    );
  }
  if (!x509.checkPrivateKey(privateKey)) {
    throw new StoreConfigError(`store ${url}: ${named(key)} is not the key of ${where}`);
  }
}

/**
 * The TLS material and credentials of an etcds:// store: each setting from its flag
 * (ETCD_TLS_FLAGS) if given, else from its variable (ETCD_TLS_ENV). Files are read now, and one
 * that cannot be read is an error naming the flag or variable that gave it, and the path.
 */
export function etcdTlsSettings(
  url: string,
  env: NodeJS.ProcessEnv = process.env,
  flags: EtcdTlsFlags = {},
): { tls: EtcdTls; auth?: EtcdAuth } {
  const from = (k: keyof typeof ETCD_TLS_FLAGS): Source | undefined => sourceOf(env, flags, k);
  const [caFrom, certFrom, keyFrom] = [from("ca"), from("cert"), from("key")];
  const ca = readSource(url, caFrom);
  const cert = readSource(url, certFrom);
  const key = readSource(url, keyFrom);
  if (certFrom === undefined && keyFrom !== undefined) {
    throw new StoreConfigError(
      `store ${url}: ${keyFrom.name} is set but ${neither("cert")} is; set both or neither`,
    );
  }
  if (certFrom !== undefined && keyFrom === undefined) {
    throw new StoreConfigError(
      `store ${url}: ${certFrom.name} is set but ${neither("key")} is; set both or neither`,
    );
  }
  if (cert !== undefined && key !== undefined && certFrom !== undefined && keyFrom !== undefined) {
    checkClientCert(url, certFrom, keyFrom, cert, key);
  }
  const tls: EtcdTls = {
    ...(ca === undefined || caFrom === undefined ? {} : { ca, caSource: named(caFrom) }),
    ...(cert === undefined || key === undefined || certFrom === undefined
      ? {}
      : { cert, key, certSource: named(certFrom) }),
  };
  const userFrom = from("user");
  const passwordFileFrom = from("passwordFile");
  const passwordFile = readSource(url, passwordFileFrom);
  const password =
    passwordFile === undefined
      ? env[ETCD_TLS_ENV.password]
      : passwordFile.toString("utf8").replace(/\r?\n$/, "");
  if (userFrom === undefined) {
    if (password !== undefined && password !== "") {
      throw new StoreConfigError(`store ${url}: an etcd password is set but ${neither("user")} is`);
    }
    return { tls };
  }
  if (password === undefined || password === "") {
    throw new StoreConfigError(
      `store ${url}: ${userFrom.name} is set but none of ${ETCD_TLS_FLAGS.passwordFile}, ` +
        `${ETCD_TLS_ENV.password} and ${ETCD_TLS_ENV.passwordFile} is`,
    );
  }
  return { tls, auth: { username: userFrom.value, password } };
}

export async function openStore(url?: string, options: OpenStoreOptions = {}): Promise<Store> {
  const given = url ?? storeUrlFromEnv(options.env);
  const location = parseStoreUrl(given);
  const misused = etcdTlsFlagsMisused(given, options.etcd);
  if (misused !== undefined) throw new StoreConfigError(misused);
  if (location.kind === "sqlite") {
    const { SqliteStore } = await import("./sqlite.js");
    return new SqliteStore(location.path);
  }
  const { EtcdStore } = await import("./etcd.js");
  const secure = location.tls === true ? etcdTlsSettings(given, options.env, options.etcd) : {};
  return new EtcdStore(location.endpoints, {
    ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
    ...secure,
  });
}

/**
 * The etcds:// flags of every command that opens a store (overlayd, dctl): declared once here,
 * resolved against the environment in one place (etcdTlsSettings in index.ts: a flag wins over
 * its variable).
 */
import { InvalidArgumentError, type Command } from "commander";
import { ETCD_TLS_ENV, ETCD_TLS_FLAGS, type EtcdTlsFlags } from "./index.js";

function nonEmpty(value: string): string {
  if (value.trim() === "") throw new InvalidArgumentError("expected a value");
  return value;
}

const HELP: Record<keyof typeof ETCD_TLS_FLAGS, [string, string]> = {
  ca: [
    "<file>",
    `PEM CA that signed etcd's server certificate (default: $${ETCD_TLS_ENV.ca}, else the system's roots)`,
  ],
  cert: ["<file>", `PEM client certificate, with --etcd-key (default: $${ETCD_TLS_ENV.cert})`],
  key: ["<file>", `PEM private key of --etcd-cert (default: $${ETCD_TLS_ENV.key})`],
  user: ["<name>", `etcd user, when etcd has auth enabled (default: $${ETCD_TLS_ENV.user})`],
  passwordFile: [
    "<file>",
    `file holding the etcd user's password (default: $${ETCD_TLS_ENV.passwordFile}, or the password ` +
      `itself in $${ETCD_TLS_ENV.password}); no flag takes the password, which ps would show to every user`,
  ],
};

/** Declares --etcd-ca, --etcd-cert, --etcd-key, --etcd-user and --etcd-password-file on `cmd`. */
export function addEtcdTlsOptions(cmd: Command): Command {
  for (const k of Object.keys(ETCD_TLS_FLAGS) as (keyof typeof ETCD_TLS_FLAGS)[]) {
    const [arg, help] = HELP[k];
    cmd.option(`${ETCD_TLS_FLAGS[k]} ${arg}`, `etcds:// only: ${help}`, nonEmpty);
  }
  return cmd;
}

/** The etcds:// flags among a command's parsed options (commander's camel-case keys). */
export function etcdTlsFlagsOf(opts: {
  etcdCa?: string;
  etcdCert?: string;
  etcdKey?: string;
  etcdUser?: string;
  etcdPasswordFile?: string;
}): EtcdTlsFlags {
  const flags: EtcdTlsFlags = {};
  if (opts.etcdCa !== undefined) flags.ca = opts.etcdCa;
  if (opts.etcdCert !== undefined) flags.cert = opts.etcdCert;
  if (opts.etcdKey !== undefined) flags.key = opts.etcdKey;
  if (opts.etcdUser !== undefined) flags.user = opts.etcdUser;
  if (opts.etcdPasswordFile !== undefined) flags.passwordFile = opts.etcdPasswordFile;
  return flags;
}

/**
 * Drops Node's DEP0123 warning, and only it: gRPC gives the TLS server name (SNI) as the endpoint
 * dialled, and for an etcds:// endpoint given by IP address Node warns that RFC 6066 does not
 * allow an IP there. The server certificate is still checked against that IP (its
 * subjectAltName); the warning, printed once per process, would only be the first line of every
 * dctl error. Called by the binaries (overlayd, dctl), not by the store, which leaves the process
 * alone.
 */
export function quietIpServernameWarning(): void {
  const emit = process.emitWarning.bind(process) as (...args: unknown[]) => void;
  process.emitWarning = ((warning: string | Error, ...rest: unknown[]): void => {
    const [typeOrOptions, code] = rest;
    const given =
      typeof typeOrOptions === "object" && typeOrOptions !== null
        ? (typeOrOptions as { code?: unknown }).code
        : code;
    if (given === "DEP0123") return;
    emit(warning, ...rest);
  }) as typeof process.emitWarning;
}

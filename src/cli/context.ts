/** What every command needs: the store, output streams and the chosen output format. */
import type { Command } from "commander";
import { openStore, storeUrlFromEnv, type EtcdTlsFlags } from "../store/index.js";
import { etcdTlsFlagsOf } from "../store/flags.js";
import type { Store } from "../store/store.js";
import { invalid, type Listing } from "../model/index.js";
import { OUTPUT_FORMATS, messages, type OutputFormat } from "./format.js";

export interface TextSink {
  write(text: string): unknown;
}

export interface DctlIo {
  /** A store to use as is (left open); otherwise one is opened from --store / OVERLAY_STORE. */
  store?: Store;
  env?: NodeJS.ProcessEnv;
  stdout: TextSink;
  stderr: TextSink;
  /** Ends a command that runs until stopped (--follow); the binary aborts it on SIGINT/SIGTERM. */
  signal?: AbortSignal;
}

export class CliContext {
  private opened: Store | undefined;
  /** Set by a command that succeeded in running but found something wrong (dctl status). */
  exitCode: number | undefined;

  constructor(
    private readonly io: DctlIo,
    private readonly program: Command,
  ) {}

  /** The store named by --store, else $OVERLAY_STORE, else the default; opened once. */
  async store(): Promise<Store> {
    if (this.io.store !== undefined) return this.io.store;
    if (this.opened !== undefined) return this.opened;
    const url = this.storeUrl();
    try {
      this.opened = await openStore(url, { env: this.io.env ?? process.env, etcd: this.etcdFlags() });
    } catch (e) {
      throw new StoreOpenError(url, e);
    }
    return this.opened;
  }

  async close(): Promise<void> {
    const s = this.opened;
    this.opened = undefined;
    await s?.close();
  }

  /** Aborted when the user stops a command that runs until stopped; never, in-process without one. */
  get signal(): AbortSignal | undefined {
    return this.io.signal;
  }

  /** The etcds:// settings given as flags (--etcd-cert and the rest), which win over OVERLAY_ETCD_*. */
  etcdFlags(): EtcdTlsFlags {
    return etcdTlsFlagsOf(this.program.opts());
  }

  /** The store URL the commands use (for display). */
  storeUrl(): string {
    const flag = this.program.opts<{ store?: string }>().store;
    return flag ?? storeUrlFromEnv(this.io.env ?? process.env);
  }

  out(text: string): void {
    this.io.stdout.write(text);
  }

  err(text: string): void {
    this.io.stderr.write(text);
  }

  /** Reports the records a listing had to skip, and hands back what parsed. */
  parsed<T>(listing: Listing<T>): T[] {
    for (const p of listing.problems) this.err(messages.badRecord(p));
    return listing.entries.map((e) => e.value);
  }
}

export class StoreOpenError extends Error {
  constructor(url: string, cause: unknown) {
    super(`cannot open the store ${url}: ${cause instanceof Error ? cause.message : String(cause)}`);
    this.name = "StoreOpenError";
  }
}

export function outputFormat(value: unknown): OutputFormat {
  const v = value === undefined ? "table" : String(value);
  if (!(OUTPUT_FORMATS as readonly string[]).includes(v)) {
    throw invalid(`invalid output format "${v}": expected ${OUTPUT_FORMATS.join(" or ")}`);
  }
  return v as OutputFormat;
}

/** Splits "a,b" (and "a" "b") into names. */
export function nameList(values: string | readonly string[]): string[] {
  const all = typeof values === "string" ? [values] : values;
  return all.flatMap((v) => v.split(",")).map((v) => v.trim());
}

export const OUTPUT_FLAG = "-o, --output <format>";
export const OUTPUT_HELP = "output format: table or json";

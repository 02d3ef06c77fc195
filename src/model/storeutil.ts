/** Small helpers over the Store shared by the model modules: parsed reads and txn retries. */
import { listInPages, type KeyValue, type Store } from "../store/store.js";
import { OverlayError } from "./errors.js";
import { parseAll, type Listing, type Parsed } from "./records.js";

/** Every record under the prefix, parsed page by page as the store delivers them, at one revision. */
export async function listParsed<T>(
  store: Store,
  prefix: string,
  parse: (kv: KeyValue) => Parsed<T>,
): Promise<Listing<T>> {
  const listing: Listing<T> = { entries: [], problems: [], revision: 0 };
  const { revision } = await listInPages(store, prefix, (page) => {
    const parsed = parseAll(page, parse, 0);
    for (const e of parsed.entries) listing.entries.push(e);
    for (const p of parsed.problems) listing.problems.push(p);
  });
  listing.revision = revision;
  return listing;
}

/** Returned by an attempt that lost a compare-and-swap race and must read again. */
export const RETRY: unique symbol = Symbol("retry");

export interface RetryLimits {
  /** Attempts before giving up. */
  maxAttempts: number;
  /** Time since the first attempt began after which no further attempt is started. */
  maxElapsedMs: number;
}

/**
 * How long `retrying` keeps at it: 50 attempts or 10 s, whichever comes first. Every conflict a
 * caller meets is a real race with another writer, and one that is resolved each time someone
 * wins: with N writers contending for one key range, each writer commits once, so none loses more
 * than N - 1 times (the 300-pod load test's races settle in a handful of attempts). 50 losses in a
 * row mean something no retry fixes (a record no attempt can win against, a writer looping), and
 * 10 s is what a CNI runtime or a person at dctl can wait for; the caller then gets CONFLICT.
 */
export const RETRY_LIMITS: Readonly<RetryLimits> = { maxAttempts: 50, maxElapsedMs: 10_000 };

export interface RetryOptions extends Partial<RetryLimits> {
  /** What the attempts race for, for the message on giving up, e.g. "the namespace records of network red". */
  contended?: string;
}

/**
 * Runs `attempt` until it returns something other than RETRY, within RETRY_LIMITS (or the limits
 * given). Attempts that lose a race back off a little, with jitter, so that many writers
 * contending for one key spread out. Gives up with CONFLICT, saying how many attempts over how
 * long and what they raced for.
 */
export async function retrying<T>(
  what: string,
  attempt: (n: number) => Promise<T | typeof RETRY>,
  options: RetryOptions = {},
): Promise<T> {
  const maxAttempts = options.maxAttempts ?? RETRY_LIMITS.maxAttempts;
  const maxElapsedMs = options.maxElapsedMs ?? RETRY_LIMITS.maxElapsedMs;
  const started = performance.now();
  let n = 0;
  for (;;) {
    const result = await attempt(n);
    if (result !== RETRY) return result;
    n++;
    const left = maxElapsedMs - (performance.now() - started);
    if (n >= maxAttempts || left <= 0) break;
    const ceiling = Math.min(20, n);
    await new Promise((r) => setTimeout(r, Math.min(left, Math.random() * ceiling)));
  }
  const elapsedMs = Math.round(performance.now() - started);
  const contended = options.contended ?? "the records it read";
  throw new OverlayError(
    "CONFLICT",
    `${what}: gave up after ${n} attempts in ${(elapsedMs / 1000).toFixed(1)} s: each lost a race for ${contended} to another writer`,
    { attempts: n, elapsedMs, contended },
  );
}

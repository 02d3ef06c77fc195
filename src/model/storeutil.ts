/** Small helpers over the Store shared by the model modules: parsed reads and txn retries. */
import type { KeyValue, Store } from "../store/store.js";
import { OverlayError } from "./errors.js";
import { parseAll, type Listing, type Parsed } from "./records.js";

export async function listParsed<T>(
  store: Store,
  prefix: string,
  parse: (kv: KeyValue) => Parsed<T>,
): Promise<Listing<T>> {
  const { items, revision } = await store.list(prefix);
  return parseAll(items, parse, revision);
}

/** Returned by an attempt that lost a compare-and-swap race and must read again. */
export const RETRY: unique symbol = Symbol("retry");

const MAX_ATTEMPTS = 1000;

/**
 * Runs `attempt` until it returns something other than RETRY. Attempts that lose a race back
 * off a little, with jitter, so that many writers contending for one key spread out.
 */
export async function retrying<T>(
  what: string,
  attempt: (n: number) => Promise<T | typeof RETRY>,
): Promise<T> {
  for (let n = 0; n < MAX_ATTEMPTS; n++) {
    const result = await attempt(n);
    if (result !== RETRY) return result;
    const ceiling = Math.min(20, 1 + n);
    await new Promise((r) => setTimeout(r, Math.random() * ceiling));
  }
  throw new OverlayError("CONFLICT", `${what}: gave up after ${MAX_ATTEMPTS} conflicting attempts`);
}

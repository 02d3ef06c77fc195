/**
 * The plugin's one failure type. Whatever goes wrong ends as a `CniError`, which `main.ts` prints
 * as the spec's error JSON on stdout; the codes are those of `src/agent/protocol.ts` (`CNI_ERR`).
 */
import { CNI_ERR } from "../agent/protocol.js";

/** For failures nothing else names (a bug, not bad input); Go's libcni uses the same code. */
export const INTERNAL_ERROR = 999;

export class CniError extends Error {
  readonly code: number;
  readonly details: string | undefined;

  constructor(code: number, msg: string, details?: string) {
    super(msg);
    this.name = "CniError";
    this.code = code;
    this.details = details;
  }
}

export function invalidEnv(msg: string, details?: string): CniError {
  return new CniError(CNI_ERR.invalidEnv, msg, details);
}

export function invalidConfig(msg: string, details?: string): CniError {
  return new CniError(CNI_ERR.invalidConfig, msg, details);
}

/** Turns anything thrown into a CniError without losing a code it already had. */
export function asCniError(err: unknown): CniError {
  if (err instanceof CniError) return err;
  const text = err instanceof Error ? err.message : String(err);
  return new CniError(INTERNAL_ERROR, `internal error: ${text}`);
}

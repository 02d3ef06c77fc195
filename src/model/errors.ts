/**
 * Every failure the control model reports to a caller is an OverlayError: a stable code for
 * programs, a one-line message for people, and the values the message was built from.
 */

export type OverlayErrorCode =
  | "INVALID_ARGUMENT"
  | "NOT_FOUND"
  | "ALREADY_EXISTS"
  | "FAILED_PRECONDITION"
  | "EXHAUSTED"
  /** Lost every attempt of a compare-and-swap race, within the bound of storeutil's `retrying`. */
  | "CONFLICT"
  /**
   * A store record the operation must read or write fails validation: no retry helps, an
   * administrator must repair it (the message says how). See damage.ts.
   */
  | "DAMAGED_RECORD";

export class OverlayError extends Error {
  constructor(
    readonly code: OverlayErrorCode,
    message: string,
    readonly details: Readonly<Record<string, unknown>> = {},
  ) {
    super(message);
    this.name = "OverlayError";
  }
}

export function invalid(message: string, details?: Record<string, unknown>): OverlayError {
  return new OverlayError("INVALID_ARGUMENT", message, details);
}

export function notFound(message: string, details?: Record<string, unknown>): OverlayError {
  return new OverlayError("NOT_FOUND", message, details);
}

export function precondition(message: string, details?: Record<string, unknown>): OverlayError {
  return new OverlayError("FAILED_PRECONDITION", message, details);
}

/** The store's own failure (it could not be reached), as the model's callers meet it. */
export { StoreUnavailableError } from "../store/store.js";

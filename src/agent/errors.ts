/** Maps failures of the control model and the store onto the CNI error codes of protocol.ts. */
import { CNI_ERR, type AgentError } from "./protocol.js";
import { OverlayError, StoreUnavailableError } from "../model/errors.js";

export function toAgentError(err: unknown): AgentError {
  if (err instanceof StoreUnavailableError) {
    return { code: CNI_ERR.storeUnreachable, msg: "cluster store unreachable", details: err.message };
  }
  if (err instanceof OverlayError) {
    switch (err.code) {
      case "EXHAUSTED":
        return { code: CNI_ERR.poolExhausted, msg: err.message };
      case "NOT_FOUND":
        return { code: CNI_ERR.unknownNetwork, msg: err.message };
      case "INVALID_ARGUMENT":
        return {
          code: "tier" in err.details ? CNI_ERR.unknownPerfTier : CNI_ERR.invalidConfig,
          msg: err.message,
        };
      case "CONFLICT":
        return { code: CNI_ERR.tryAgainLater, msg: err.message };
      case "DAMAGED_RECORD":
        // A store record the request needs fails validation (a namespace record, say): no retry
        // helps until an administrator repairs it, which the message says how to do, so not 11
        // (try again later). What is invalid is the network's configuration as the cluster store
        // holds it: CNI's "invalid network config". The key goes in details, for whoever reads
        // the runtime's events.
        return {
          code: CNI_ERR.invalidConfig,
          msg: err.message,
          details: typeof err.details.key === "string" ? `store key ${err.details.key}` : undefined,
        };
      default:
        return { code: CNI_ERR.invalidConfig, msg: err.message };
    }
  }
  const msg = err instanceof Error ? err.message : String(err);
  return { code: CNI_ERR.ioError, msg };
}

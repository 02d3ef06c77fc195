/** The control model: what dctl, the node agent and the CNI plugin share. */
export * from "./errors.js";
export * from "./ipv4.js";
export * from "./keys.js";
export * from "./names.js";
export * from "./records.js";
export * from "./network.js";
export * from "./networkread.js";
export * from "./namespaces.js";
export * from "./ipam.js";
export * from "./endpoints.js";
export * from "./nodes.js";
export * from "./departed.js";
export * from "./perftier.js";

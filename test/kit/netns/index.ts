/**
 * Test worlds in network namespaces: used by the integration tests, the benchmarks and the demo.
 */
export * from "./exec.js";
export * from "./world.js";
export * from "./measure.js";
export * from "./latency.js";
export * from "./topology.js";
export * from "./switched.js";
export * from "./capture.js";

/** Commands for the test worlds: the product's runner (src/process/run.ts), and a sleep. */
export * from "../../../src/process/run.js";

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

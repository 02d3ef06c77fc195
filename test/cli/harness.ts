import { runDctl } from "../../src/cli/run.js";
import type { Store } from "../../src/store/store.js";

export interface DctlResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs dctl in-process against the given store. */
export async function dctl(store: Store, ...argv: string[]): Promise<DctlResult> {
  let stdout = "";
  let stderr = "";
  const code = await runDctl(argv, {
    store,
    stdout: { write: (s: string) => (stdout += s) },
    stderr: { write: (s: string) => (stderr += s) },
  });
  return { code, stdout, stderr };
}

/** Splits a table into rows of cells (cells are separated by two or more spaces). */
export function cells(table: string): string[][] {
  return table
    .trimEnd()
    .split("\n")
    .map((line) => line.split(/\s{2,}/));
}

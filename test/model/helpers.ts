import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "vitest";
import { OverlayError } from "../../src/model/errors.js";
import { openStore } from "../../src/store/index.js";
import type { Store } from "../../src/store/store.js";

/** A private in-memory store, closed by the returned function. */
export async function memoryStore(): Promise<Store> {
  return openStore("sqlite::memory:");
}

/** A temp folder removed by `cleanup`. */
export function tempDir(): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), "overlay-model-"));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export function owner(pod: string, namespace = "coffee", containerId = `ctr-${pod}`) {
  return { namespace, pod, containerId, ifname: "eth0" };
}

/** The OverlayError a promise rejects with (failing the test if it resolves or throws another). */
export async function rejection(p: Promise<unknown>): Promise<OverlayError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(OverlayError);
  return e as OverlayError;
}

/** `retrying`: an attempt that keeps losing its race is given up within a bound a person can wait for. */
import { describe, expect, it } from "vitest";
import { RETRY, RETRY_LIMITS, retrying } from "../../src/model/storeutil.js";
import { rejection } from "./helpers.js";

describe("retrying", () => {
  it("returns what the first attempt that does not lose returns", async () => {
    let n = 0;
    expect(await retrying("counting", async () => (++n < 3 ? RETRY : n))).toBe(3);
  });

  it("gives up within its default bound, saying how many attempts over how long and on what", async () => {
    expect(RETRY_LIMITS.maxAttempts).toBeLessThanOrEqual(100);
    expect(RETRY_LIMITS.maxElapsedMs).toBeLessThanOrEqual(30_000);
    let attempts = 0;
    const started = performance.now();
    const e = await rejection(
      retrying(
        "registering namespace tea",
        async () => {
          attempts++;
          return RETRY;
        },
        { contended: "the namespace records of network red" },
      ),
    );
    const elapsed = performance.now() - started;
    expect(attempts).toBe(RETRY_LIMITS.maxAttempts);
    expect(elapsed).toBeLessThan(RETRY_LIMITS.maxElapsedMs);
    expect(e.code).toBe("CONFLICT");
    expect(e.message).toMatch(
      new RegExp(
        `^registering namespace tea: gave up after ${attempts} attempts in \\d+\\.\\d s: ` +
          "each lost a race for the namespace records of network red to another writer$",
      ),
    );
    expect(e.details).toMatchObject({ attempts, contended: "the namespace records of network red" });
  }, 20_000);

  it("gives up on elapsed time when attempts are slow", async () => {
    let attempts = 0;
    const started = performance.now();
    const e = await rejection(
      retrying(
        "slow",
        async () => {
          attempts++;
          await new Promise((r) => setTimeout(r, 40));
          return RETRY;
        },
        { maxAttempts: 1000, maxElapsedMs: 150 },
      ),
    );
    expect(attempts).toBeGreaterThanOrEqual(2);
    expect(attempts).toBeLessThanOrEqual(5);
    expect(performance.now() - started).toBeLessThan(1000);
    expect(e.message).toMatch(/^slow: gave up after \d attempts in 0\.\d s: each lost a race/);
  });

  it("stops at the number of attempts it is given", async () => {
    let attempts = 0;
    await rejection(
      retrying(
        "few",
        async () => {
          attempts++;
          return RETRY;
        },
        { maxAttempts: 3 },
      ),
    );
    expect(attempts).toBe(3);
  });
});

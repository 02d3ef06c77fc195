import { defineConfig } from "vitest/config";

// Integration tests build network namespaces and run real traffic; two cores means two files at a time.
export default defineConfig({
  test: {
    include: ["test/**/*.test.ts", "src/**/*.test.ts"],
    pool: "forks",
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
    testTimeout: 60_000,
    // expect.poll waits for something to happen, not for it to be fast: on a loaded 2-core
    // machine 1 s (vitest's default) is too short, and a slow answer is no failure.
    expect: { poll: { timeout: 15_000 } },
    hookTimeout: 120_000,
    reporters: ["default"],
  },
});

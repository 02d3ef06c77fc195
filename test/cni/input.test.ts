/**
 * The raw call decoded (src/cni/input.ts): the UTF-8 check against Node's own, on every kind of
 * sequence and on random bytes.
 */
import { isUtf8 } from "node:buffer";
import { describe, expect, it } from "vitest";
import { envText, firstInvalidUtf8, stdinText } from "../../src/cni/input.js";
import { CniError } from "../../src/cni/errors.js";

/** A small deterministic generator, so a failure repeats. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

describe("firstInvalidUtf8", () => {
  it("accepts what UTF-8 is, at every length of sequence", () => {
    for (const text of ["", "plain", "é", "€", "😀", "a\u0000b", "\uffff", "\u{10ffff}"]) {
      expect(firstInvalidUtf8(Buffer.from(text)), text).toBe(-1);
    }
  });

  it("names the first byte of what is not", () => {
    const cases: [number[], number][] = [
      [[0x61, 0xff], 1],
      [[0xc0, 0xaf], 0], // overlong "/"
      [[0xe0, 0x80, 0xaf], 0], // overlong
      [[0xed, 0xa0, 0x80], 0], // surrogate
      [[0xf4, 0x90, 0x80, 0x80], 0], // past U+10FFFF
      [[0x61, 0x62, 0xe2, 0x82], 2], // cut short
      [[0x80], 0], // a lone continuation
    ];
    for (const [bytes, at] of cases) expect(firstInvalidUtf8(Buffer.from(bytes)), String(bytes)).toBe(at);
  });

  it("agrees with Node's isUtf8 on random bytes", () => {
    const rand = prng(12);
    for (let i = 0; i < 20_000; i++) {
      const bytes = Buffer.from(
        Array.from({ length: 1 + Math.floor(rand() * 6) }, () =>
          // Mostly the interesting high bytes.
          rand() < 0.2 ? Math.floor(rand() * 0x80) : 0x80 + Math.floor(rand() * 0x80),
        ),
      );
      expect(firstInvalidUtf8(bytes) === -1, bytes.toString("hex")).toBe(isUtf8(bytes));
    }
  });
});

describe("stdinText and envText", () => {
  it("drop a leading byte order mark from stdin, as the plugin's scanner skips it", () => {
    expect(stdinText(Buffer.from("\ufeff{}"))).toBe("{}");
  });

  it("refuse bytes that are not UTF-8 with codes 6 (stdin) and 4 (a variable)", () => {
    const bad = Buffer.from([0x7b, 0xff, 0x7d]);
    expect(() => stdinText(bad)).toThrow(CniError);
    try {
      stdinText(bad);
    } catch (err) {
      expect((err as CniError).code).toBe(6);
      expect((err as CniError).details).toContain("byte 1 (0xff) of 3");
    }
    try {
      envText(new Map([["CNI_ARGS", bad]]));
      throw new Error("expected a failure");
    } catch (err) {
      expect((err as CniError).code).toBe(4);
      expect((err as CniError).message).toBe("CNI_ARGS is not valid UTF-8");
    }
  });
});

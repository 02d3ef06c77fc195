/**
 * The runtime's call as the plugin hands it over (protocol.ts, `CniCall`): raw bytes, since the
 * plugin forwards them unchanged. Here they become text, or a CNI error saying what is wrong and
 * where: stdin that is not UTF-8 is code 6 (content that cannot be decoded), an environment
 * variable that is not UTF-8 code 4.
 */
import type { Env } from "./args.js";
import { CniError, invalidEnv } from "./errors.js";
import { CNI_ERR, type CniCall } from "../agent/protocol.js";

/** Offset of the first byte that does not start or continue a valid UTF-8 sequence, or -1. */
export function firstInvalidUtf8(buf: Uint8Array): number {
  let i = 0;
  while (i < buf.length) {
    const c = buf[i] as number;
    let n: number;
    let min = 0x80;
    let max = 0xbf;
    if (c < 0x80) n = 0;
    else if (c >= 0xc2 && c <= 0xdf) n = 1;
    else if (c >= 0xe0 && c <= 0xef) {
      n = 2;
      if (c === 0xe0) min = 0xa0; // overlong
      if (c === 0xed) max = 0x9f; // surrogates
    } else if (c >= 0xf0 && c <= 0xf4) {
      n = 3;
      if (c === 0xf0) min = 0x90; // overlong
      if (c === 0xf4) max = 0x8f; // past U+10FFFF
    } else return i;
    for (let k = 1; k <= n; k++) {
      const b = buf[i + k];
      const lo = k === 1 ? min : 0x80;
      const hi = k === 1 ? max : 0xbf;
      if (b === undefined || b < lo || b > hi) return i;
    }
    i += n + 1;
  }
  return -1;
}

const decoder = new TextDecoder("utf-8", { fatal: true });

/** Stdin as text; a leading byte order mark is dropped (as the plugin's own scanner skips it). */
export function stdinText(stdin: Buffer): string {
  const bad = firstInvalidUtf8(stdin);
  if (bad >= 0) {
    throw new CniError(
      CNI_ERR.decodeError,
      "network configuration: stdin is not valid UTF-8",
      `byte ${bad} (0x${(stdin[bad] as number).toString(16).padStart(2, "0")}) of ${stdin.length} starts no UTF-8 character; the configuration must be UTF-8 JSON`,
    );
  }
  return decoder.decode(stdin);
}

/** The CNI_* variables as text. */
export function envText(env: CniCall["env"]): Env {
  const out: Record<string, string> = {};
  for (const [name, value] of env) {
    if (firstInvalidUtf8(value) >= 0) {
      throw invalidEnv(`${name} is not valid UTF-8`, "CNI variables are UTF-8 text");
    }
    out[name] = decoder.decode(value);
  }
  return out;
}

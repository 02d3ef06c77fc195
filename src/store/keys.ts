/**
 * Key-range helpers shared by the store implementations. Keys are compared as UTF-8 bytes (as
 * etcd and SQLite's BINARY collation both do), which orders like Unicode code points.
 */

/**
 * The smallest string greater than every string that starts with `prefix`, or undefined when
 * there is none (empty prefix: the range is unbounded).
 */
export function prefixEndString(prefix: string): string | undefined {
  const points = Array.from(prefix, (ch) => ch.codePointAt(0) ?? 0);
  while (points.length > 0) {
    const last = points.pop() ?? 0;
    let next = last + 1;
    // Lone surrogates are not valid text; the next code point after U+D7FF is U+E000.
    if (next >= 0xd800 && next <= 0xdfff) next = 0xe000;
    if (next <= 0x10ffff) {
      points.push(next);
      return String.fromCodePoint(...points);
    }
  }
  return undefined;
}

/** etcd's [key, range_end) for a prefix; the empty prefix means every key. */
export function prefixRangeBytes(prefix: string): { key: Buffer; rangeEnd: Buffer } {
  const key = Buffer.from(prefix, "utf8");
  if (key.length === 0) return { key: Buffer.from([0]), rangeEnd: Buffer.from([0]) };
  const end = Buffer.from(key);
  for (let i = end.length - 1; i >= 0; i--) {
    const byte = end[i] ?? 0xff;
    if (byte < 0xff) {
      end[i] = byte + 1;
      return { key, rangeEnd: end.subarray(0, i + 1) };
    }
  }
  // Every byte is 0xff: no upper bound.
  return { key, rangeEnd: Buffer.from([0]) };
}

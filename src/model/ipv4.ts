/**
 * IPv4 addresses as unsigned 32-bit integers, and CIDR blocks over them. Hand-written because the
 * control model needs only a handful of operations and wants strict parsing (no octal, no
 * shorthand forms) so that a stored subnet always reads back exactly as the user typed it.
 */

export interface Ipv4Cidr {
  /** The address as written (may have host bits set). */
  address: number;
  prefixLength: number;
}

const OCTET = /^(0|[1-9][0-9]{0,2})$/;

export function parseIpv4(text: string): number | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  let value = 0;
  for (const part of parts) {
    if (!OCTET.test(part)) return undefined;
    const octet = Number(part);
    if (octet > 255) return undefined;
    value = value * 256 + octet;
  }
  return value >>> 0;
}

export function formatIpv4(value: number): string {
  const v = value >>> 0;
  return `${v >>> 24}.${(v >>> 16) & 0xff}.${(v >>> 8) & 0xff}.${v & 0xff}`;
}

export function parseCidr(text: string): Ipv4Cidr | undefined {
  const slash = text.indexOf("/");
  if (slash < 0) return undefined;
  const address = parseIpv4(text.slice(0, slash));
  const lengthText = text.slice(slash + 1);
  if (address === undefined || !/^(0|[1-9][0-9]?)$/.test(lengthText)) return undefined;
  const prefixLength = Number(lengthText);
  if (prefixLength > 32) return undefined;
  return { address, prefixLength };
}

export function maskOf(prefixLength: number): number {
  return prefixLength === 0 ? 0 : (0xffffffff << (32 - prefixLength)) >>> 0;
}

export function networkAddress(cidr: Ipv4Cidr): number {
  return (cidr.address & maskOf(cidr.prefixLength)) >>> 0;
}

export function blockSize(prefixLength: number): number {
  return 2 ** (32 - prefixLength);
}

/** First and last address of the block the CIDR names. */
export function rangeOf(cidr: Ipv4Cidr): { first: number; last: number } {
  const first = networkAddress(cidr);
  return { first, last: first + blockSize(cidr.prefixLength) - 1 };
}

export function overlaps(a: Ipv4Cidr, b: Ipv4Cidr): boolean {
  const ra = rangeOf(a);
  const rb = rangeOf(b);
  return ra.first <= rb.last && rb.first <= ra.last;
}

export function contains(cidr: Ipv4Cidr, address: number): boolean {
  const r = rangeOf(cidr);
  return address >= r.first && address <= r.last;
}

export function formatCidr(cidr: Ipv4Cidr): string {
  return `${formatIpv4(cidr.address)}/${cidr.prefixLength}`;
}

/** 255.255.0.0 for 16. */
export function formatMask(prefixLength: number): string {
  return formatIpv4(maskOf(prefixLength));
}

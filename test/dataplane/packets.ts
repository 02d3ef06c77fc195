/**
 * Builders and parsers for the frames the data-plane unit tests craft and inspect: Ethernet II,
 * ARP (RFC 826), IPv4 (RFC 791) with its header checksum, UDP (RFC 768) and TCP (RFC 9293) with
 * their pseudo-header checksums, VXLAN (RFC 7348). Multi-byte fields are big-endian on the wire.
 */

export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_ARP = 0x0806;
export const ETHERTYPE_IPV6 = 0x86dd;
export const BROADCAST_MAC = "ff:ff:ff:ff:ff:ff";
export const ZERO_MAC = "00:00:00:00:00:00";
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const ARP_REQUEST = 1;
export const ARP_REPLY = 2;
export const VXLAN_FLAG_I = 0x08;

export const ETH_HLEN = 14;
export const ARP_LEN = 28;
export const IPV4_HLEN = 20;
export const UDP_HLEN = 8;
export const TCP_HLEN = 20;
export const VXLAN_HLEN = 8;

export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_PSH = 0x08;
export const TCP_ACK = 0x10;

// ---- addresses -------------------------------------------------------------------------------

export function macBytes(mac: string): Buffer {
  if (!/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(mac)) throw new TypeError(`bad MAC ${mac}`);
  return Buffer.from(mac.split(":").map((h) => parseInt(h, 16)));
}

export function macString(b: Buffer, offset = 0): string {
  const parts: string[] = [];
  for (let i = 0; i < 6; i++)
    parts.push(
      b
        .readUInt8(offset + i)
        .toString(16)
        .padStart(2, "0"),
    );
  return parts.join(":");
}

export function ipBytes(ip: string): Buffer {
  const parts = ip.split(".").map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) {
    throw new TypeError(`bad IPv4 ${ip}`);
  }
  return Buffer.from(parts);
}

export function ipString(b: Buffer, offset = 0): string {
  return [0, 1, 2, 3].map((i) => b.readUInt8(offset + i)).join(".");
}

// ---- checksums -------------------------------------------------------------------------------

/** Ones'-complement sum of 16-bit big-endian words (odd length padded with zero), not folded. */
function sum16(b: Buffer, initial = 0): number {
  let s = initial;
  for (let i = 0; i + 1 < b.length; i += 2) s += b.readUInt16BE(i);
  if (b.length % 2 === 1) s += b.readUInt8(b.length - 1) << 8;
  return s;
}

function fold(s: number): number {
  let v = s;
  while (v > 0xffff) v = (v & 0xffff) + Math.floor(v / 0x10000);
  return v;
}

/** The Internet checksum (RFC 1071) of `b`, with an optional starting sum (a pseudo-header). */
export function internetChecksum(b: Buffer, initial = 0): number {
  return ~fold(sum16(b, initial)) & 0xffff;
}

function pseudoHeaderSum(src: string, dst: string, protocol: number, length: number): number {
  return sum16(Buffer.concat([ipBytes(src), ipBytes(dst)])) + protocol + length;
}

// ---- Ethernet --------------------------------------------------------------------------------

export interface Ethernet {
  dst: string;
  src: string;
  type: number;
  payload: Buffer;
}

export function ethernet(e: Ethernet): Buffer {
  const h = Buffer.alloc(ETH_HLEN);
  macBytes(e.dst).copy(h, 0);
  macBytes(e.src).copy(h, 6);
  h.writeUInt16BE(e.type, 12);
  return Buffer.concat([h, e.payload]);
}

export function parseEthernet(b: Buffer): Ethernet {
  if (b.length < ETH_HLEN) throw new RangeError(`frame of ${b.length} bytes has no Ethernet header`);
  return {
    dst: macString(b, 0),
    src: macString(b, 6),
    type: b.readUInt16BE(12),
    payload: b.subarray(ETH_HLEN),
  };
}

// ---- ARP -------------------------------------------------------------------------------------

export interface Arp {
  op: number;
  sha: string;
  spa: string;
  tha: string;
  tpa: string;
  /** Defaults: Ethernet (1), IPv4 (0x0800), 6, 4. */
  htype?: number;
  ptype?: number;
  hlen?: number;
  plen?: number;
}

export interface ParsedArp {
  htype: number;
  ptype: number;
  hlen: number;
  plen: number;
  op: number;
  sha: string;
  spa: string;
  tha: string;
  tpa: string;
}

export function arp(a: Arp): Buffer {
  const b = Buffer.alloc(ARP_LEN);
  b.writeUInt16BE(a.htype ?? 1, 0);
  b.writeUInt16BE(a.ptype ?? ETHERTYPE_IPV4, 2);
  b.writeUInt8(a.hlen ?? 6, 4);
  b.writeUInt8(a.plen ?? 4, 5);
  b.writeUInt16BE(a.op, 6);
  macBytes(a.sha).copy(b, 8);
  ipBytes(a.spa).copy(b, 14);
  macBytes(a.tha).copy(b, 18);
  ipBytes(a.tpa).copy(b, 24);
  return b;
}

export function parseArp(b: Buffer): ParsedArp {
  if (b.length < ARP_LEN) throw new RangeError(`ARP of ${b.length} bytes`);
  return {
    htype: b.readUInt16BE(0),
    ptype: b.readUInt16BE(2),
    hlen: b.readUInt8(4),
    plen: b.readUInt8(5),
    op: b.readUInt16BE(6),
    sha: macString(b, 8),
    spa: ipString(b, 14),
    tha: macString(b, 18),
    tpa: ipString(b, 24),
  };
}

/** An Ethernet frame holding an ARP request from (mac, ip) for `target`, broadcast. */
export function arpRequestFrame(mac: string, ip: string, target: string, dst = BROADCAST_MAC): Buffer {
  return ethernet({
    dst,
    src: mac,
    type: ETHERTYPE_ARP,
    payload: arp({ op: ARP_REQUEST, sha: mac, spa: ip, tha: ZERO_MAC, tpa: target }),
  });
}

// ---- IPv4 ------------------------------------------------------------------------------------

export interface Ipv4 {
  src: string;
  dst: string;
  protocol: number;
  payload: Buffer;
  ttl?: number;
  id?: number;
  tos?: number;
  /** Flags and fragment offset field; default 0x4000 (DF). */
  fragOff?: number;
  /** Overrides the version/IHL byte (for malformed headers); default 0x45. */
  verIhl?: number;
  /** Overrides the total length field; default header + payload. */
  totalLength?: number;
}

export interface ParsedIpv4 {
  version: number;
  ihl: number;
  tos: number;
  totalLength: number;
  id: number;
  fragOff: number;
  ttl: number;
  protocol: number;
  checksum: number;
  src: string;
  dst: string;
  /** The header's checksum verifies. */
  headerChecksumOk: boolean;
  /** The bytes after the header, up to the total length. */
  payload: Buffer;
}

export function ipv4(p: Ipv4): Buffer {
  const h = Buffer.alloc(IPV4_HLEN);
  h.writeUInt8(p.verIhl ?? 0x45, 0);
  h.writeUInt8(p.tos ?? 0, 1);
  h.writeUInt16BE(p.totalLength ?? IPV4_HLEN + p.payload.length, 2);
  h.writeUInt16BE(p.id ?? 0x1234, 4);
  h.writeUInt16BE(p.fragOff ?? 0x4000, 6);
  h.writeUInt8(p.ttl ?? 64, 8);
  h.writeUInt8(p.protocol, 9);
  ipBytes(p.src).copy(h, 12);
  ipBytes(p.dst).copy(h, 16);
  h.writeUInt16BE(internetChecksum(h), 10);
  return Buffer.concat([h, p.payload]);
}

export function parseIpv4(b: Buffer): ParsedIpv4 {
  if (b.length < IPV4_HLEN) throw new RangeError(`IPv4 packet of ${b.length} bytes`);
  const verIhl = b.readUInt8(0);
  const ihl = (verIhl & 0xf) * 4;
  const totalLength = b.readUInt16BE(2);
  if (ihl < IPV4_HLEN || ihl > b.length) throw new RangeError(`IPv4 header length ${ihl}`);
  return {
    version: verIhl >> 4,
    ihl,
    tos: b.readUInt8(1),
    totalLength,
    id: b.readUInt16BE(4),
    fragOff: b.readUInt16BE(6),
    ttl: b.readUInt8(8),
    protocol: b.readUInt8(9),
    checksum: b.readUInt16BE(10),
    src: ipString(b, 12),
    dst: ipString(b, 16),
    headerChecksumOk: internetChecksum(b.subarray(0, ihl)) === 0,
    payload: b.subarray(ihl, Math.min(b.length, totalLength)),
  };
}

/** True when the TCP or UDP checksum of `segment` (carried from src to dst) verifies. */
export function l4ChecksumOk(src: string, dst: string, protocol: number, segment: Buffer): boolean {
  if (protocol === IPPROTO_UDP && segment.length >= UDP_HLEN && segment.readUInt16BE(6) === 0) {
    return true; // no checksum (RFC 768)
  }
  return internetChecksum(segment, pseudoHeaderSum(src, dst, protocol, segment.length)) === 0;
}

// ---- UDP -------------------------------------------------------------------------------------

export interface Udp {
  srcPort: number;
  dstPort: number;
  payload: Buffer;
}

export interface ParsedUdp extends Udp {
  length: number;
  checksum: number;
}

/** A UDP datagram with its checksum over the pseudo-header of src -> dst. */
export function udp(u: Udp, src: string, dst: string): Buffer {
  const b = Buffer.alloc(UDP_HLEN + u.payload.length);
  b.writeUInt16BE(u.srcPort, 0);
  b.writeUInt16BE(u.dstPort, 2);
  b.writeUInt16BE(b.length, 4);
  u.payload.copy(b, UDP_HLEN);
  const c = internetChecksum(b, pseudoHeaderSum(src, dst, IPPROTO_UDP, b.length));
  b.writeUInt16BE(c === 0 ? 0xffff : c, 6);
  return b;
}

export function parseUdp(b: Buffer): ParsedUdp {
  if (b.length < UDP_HLEN) throw new RangeError(`UDP datagram of ${b.length} bytes`);
  return {
    srcPort: b.readUInt16BE(0),
    dstPort: b.readUInt16BE(2),
    length: b.readUInt16BE(4),
    checksum: b.readUInt16BE(6),
    payload: b.subarray(UDP_HLEN),
  };
}

// ---- TCP -------------------------------------------------------------------------------------

export interface Tcp {
  srcPort: number;
  dstPort: number;
  seq: number;
  ack?: number;
  flags: number;
  window?: number;
  payload?: Buffer;
}

export interface ParsedTcp {
  srcPort: number;
  dstPort: number;
  seq: number;
  ack: number;
  dataOffset: number;
  flags: number;
  window: number;
  checksum: number;
  payload: Buffer;
}

/** A TCP segment without options, with its checksum over the pseudo-header of src -> dst. */
export function tcp(t: Tcp, src: string, dst: string): Buffer {
  const payload = t.payload ?? Buffer.alloc(0);
  const b = Buffer.alloc(TCP_HLEN + payload.length);
  b.writeUInt16BE(t.srcPort, 0);
  b.writeUInt16BE(t.dstPort, 2);
  b.writeUInt32BE(t.seq >>> 0, 4);
  b.writeUInt32BE((t.ack ?? 0) >>> 0, 8);
  b.writeUInt8((TCP_HLEN / 4) << 4, 12);
  b.writeUInt8(t.flags, 13);
  b.writeUInt16BE(t.window ?? 65535, 14);
  payload.copy(b, TCP_HLEN);
  b.writeUInt16BE(internetChecksum(b, pseudoHeaderSum(src, dst, IPPROTO_TCP, b.length)), 16);
  return b;
}

export function parseTcp(b: Buffer): ParsedTcp {
  if (b.length < TCP_HLEN) throw new RangeError(`TCP segment of ${b.length} bytes`);
  const dataOffset = (b.readUInt8(12) >> 4) * 4;
  return {
    srcPort: b.readUInt16BE(0),
    dstPort: b.readUInt16BE(2),
    seq: b.readUInt32BE(4),
    ack: b.readUInt32BE(8),
    dataOffset,
    flags: b.readUInt8(13),
    window: b.readUInt16BE(14),
    checksum: b.readUInt16BE(16),
    payload: b.subarray(dataOffset),
  };
}

// ---- VXLAN -----------------------------------------------------------------------------------

export interface Vxlan {
  vni: number;
  frame: Buffer;
  /** Default 0x08 (the I flag alone). */
  flags?: number;
}

export interface ParsedVxlan {
  flags: number;
  /** Bytes 1-3 (reserved). */
  reserved1: Buffer;
  vni: number;
  /** Byte 7 (reserved). */
  reserved2: number;
  frame: Buffer;
}

export function vxlan(v: Vxlan): Buffer {
  const h = Buffer.alloc(VXLAN_HLEN);
  h.writeUInt8(v.flags ?? VXLAN_FLAG_I, 0);
  h.writeUIntBE(v.vni, 4, 3);
  return Buffer.concat([h, v.frame]);
}

export function parseVxlan(b: Buffer): ParsedVxlan {
  if (b.length < VXLAN_HLEN) throw new RangeError(`VXLAN datagram of ${b.length} bytes`);
  return {
    flags: b.readUInt8(0),
    reserved1: Buffer.from(b.subarray(1, 4)),
    vni: b.readUIntBE(4, 3),
    reserved2: b.readUInt8(7),
    frame: b.subarray(VXLAN_HLEN),
  };
}

// ---- whole frames ----------------------------------------------------------------------------

export interface Endpoint {
  mac: string;
  ip: string;
}

/** An Ethernet frame carrying a UDP datagram from `from` to `to`. */
export function udpFrame(
  from: Endpoint,
  to: Endpoint,
  payload: Buffer,
  ports: { src: number; dst: number } = { src: 40000, dst: 7 },
): Buffer {
  return ethernet({
    dst: to.mac,
    src: from.mac,
    type: ETHERTYPE_IPV4,
    payload: ipv4({
      src: from.ip,
      dst: to.ip,
      protocol: IPPROTO_UDP,
      payload: udp({ srcPort: ports.src, dstPort: ports.dst, payload }, from.ip, to.ip),
    }),
  });
}

/** An Ethernet frame carrying a TCP segment from `from` to `to`. */
export function tcpFrame(from: Endpoint, to: Endpoint, t: Tcp): Buffer {
  return ethernet({
    dst: to.mac,
    src: from.mac,
    type: ETHERTYPE_IPV4,
    payload: ipv4({ src: from.ip, dst: to.ip, protocol: IPPROTO_TCP, payload: tcp(t, from.ip, to.ip) }),
  });
}

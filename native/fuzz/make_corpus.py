#!/usr/bin/env python3
"""Writes the seed corpus of the fuzz targets: a few valid inputs each, matching the tables of
harness.h. Usage: make_corpus.py [dir] (default: corpus/ next to this file)."""
import os
import struct
import sys


def mac(m):
    return m.to_bytes(6, "big")


def ip(s):
    return bytes(int(x) for x in s.split("."))


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack(f"!{len(b) // 2}H", b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


POD_A, POD_B, POD_C, HOST = 0x020000000001, 0x020000000002, 0x020000000003, 0x020000000004
REMOTE_A, REMOTE_B, REMOTE_G = 0x020000000101, 0x020000000102, 0x020000000103
BROADCAST = 0xFFFFFFFFFFFF


def eth(dst, src, etype):
    return mac(dst) + mac(src) + struct.pack("!H", etype)


def arp_request(src_mac, spa, tpa):
    body = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + mac(src_mac) + ip(spa) + bytes(6) + ip(tpa)
    return eth(BROADCAST, src_mac, 0x0806) + body


def ipv4(src, dst, proto, l4, ident=1):
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), ident, 0x4000, 64, proto, 0,
                      ip(src), ip(dst))
    hdr = hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:]
    return hdr + l4


def tcp(src, dst, seq, payload, flags=0x10):
    hdr = struct.pack("!HHIIBBHHH", 40000, 5201, seq, 1, 5 << 4, flags, 512, 0, 0)
    pseudo = ip(src) + ip(dst) + struct.pack("!BBH", 0, 6, len(hdr) + len(payload))
    c = csum(pseudo + hdr + payload)
    return hdr[:16] + struct.pack("!H", c) + hdr[18:] + payload


def udp(payload):
    return struct.pack("!HHHH", 5353, 9000, 8 + len(payload), 0) + payload


def vnet(flags=0, gso_type=0, hdr_len=0, gso_size=0, csum_start=0, csum_offset=0):
    return struct.pack("<BBHHHH", flags, gso_type, hdr_len, gso_size, csum_start, csum_offset)


def tcp_frame(dst_mac, src_mac, src, dst, seq, payload, flags=0x10):
    return eth(dst_mac, src_mac, 0x0800) + ipv4(src, dst, 6, tcp(src, dst, seq, payload, flags))


def record(slot, frame):
    return bytes([slot]) + struct.pack("<H", len(frame)) + frame


def vxlan(vni, frame):
    return struct.pack("!B3x", 0x08) + vni.to_bytes(3, "big") + b"\0" + frame


def port_seeds():
    data = bytes(range(256)) * 8
    tso_payload = data[:1800]
    tso = tcp_frame(REMOTE_A, POD_A, "10.0.0.1", "10.0.1.1", 1000, tso_payload, 0x18)
    return {
        "arp_local": record(0, vnet() + arp_request(POD_A, "10.0.0.1", "10.0.0.2")),
        "arp_remote": record(0, vnet() + arp_request(POD_A, "10.0.0.1", "10.0.1.1")),
        "arp_global_from_host": record(3, vnet() + arp_request(HOST, "10.255.0.1", "10.255.1.1")),
        "tcp_local": record(0, vnet() + tcp_frame(POD_B, POD_A, "10.0.0.1", "10.0.0.2", 1,
                                                  data[:100])),
        "tcp_remote_csum": record(0, vnet(1, 0, 0, 0, 34, 16) + tcp_frame(
            REMOTE_A, POD_A, "10.0.0.1", "10.0.1.1", 1, data[:200])),
        "tso_remote": record(0, vnet(1, 1, 54, 500, 34, 16) + tso),
        "udp_host_to_global": record(3, vnet() + eth(REMOTE_G, HOST, 0x0800) + ipv4(
            "10.255.0.1", "10.255.1.1", 17, udp(data[:64]))),
        "limited_pod_two_frames": record(2, vnet() + tcp_frame(
            REMOTE_B, POD_C, "10.1.0.3", "10.1.1.2", 1, data[:300])) + record(
            2, vnet() + tcp_frame(REMOTE_B, POD_C, "10.1.0.3", "10.1.1.2", 301, data[:300])),
    }


def underlay_seeds():
    data = bytes(range(256)) * 8
    segs = [vxlan(100, tcp_frame(POD_A, REMOTE_A, "10.0.1.1", "10.0.0.1", 1 + 400 * i,
                                 data[:400])) for i in range(3)]
    last = vxlan(100, tcp_frame(POD_A, REMOTE_A, "10.0.1.1", "10.0.0.1", 1201, data[:100], 0x18))
    gro = b"".join(segs) + last
    return {
        "decap_tcp": bytes([0]) + struct.pack("<H", 0) + segs[0],
        "decap_arp": bytes([0]) + struct.pack("<H", 0) + vxlan(
            100, arp_request(REMOTE_A, "10.0.1.1", "10.0.0.1")),
        "gro_tcp_run": bytes([1]) + struct.pack("<H", len(segs[0])) + gro,
        "peer_b_udp": bytes([3]) + struct.pack("<H", 0) + vxlan(
            200, eth(POD_C, REMOTE_B, 0x0800) + ipv4("10.1.1.2", "10.1.0.3", 17, udp(data[:80]))),
        "stranger": bytes([5]) + struct.pack("<H", 0) + segs[1],
        "global_to_host": bytes([1]) + struct.pack("<H", 0) + vxlan(
            1, eth(HOST, REMOTE_G, 0x0800) + ipv4("10.255.1.1", "10.255.0.1", 17, udp(data[:40]))),
    }


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus")
    for target, seeds in (("fuzz_port", port_seeds()), ("fuzz_underlay", underlay_seeds())):
        d = os.path.join(root, target)
        os.makedirs(d, exist_ok=True)
        for name, blob in seeds.items():
            with open(os.path.join(d, name), "wb") as f:
                f.write(blob)


if __name__ == "__main__":
    main()

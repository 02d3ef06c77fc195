// Wire formats the switch reads and writes, defined once. Multi-byte fields are in network
// byte order on the wire and in these structs; convert with ntohs/ntohl at the point of use.
// Every struct is followed by a compile-time size check.
#pragma once

#include <arpa/inet.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace overlay {

using Mac = uint64_t;  // 48-bit MAC in the low bits, first octet most significant; 0 = none.

inline Mac LoadMac(const uint8_t* p) {
  return (Mac{p[0]} << 40) | (Mac{p[1]} << 32) | (Mac{p[2]} << 24) | (Mac{p[3]} << 16) |
         (Mac{p[4]} << 8) | Mac{p[5]};
}
inline void StoreMac(uint8_t* p, Mac m) {
  for (int i = 5; i >= 0; --i, m >>= 8) p[i] = static_cast<uint8_t>(m & 0xff);
}
inline bool IsMulticastMac(const uint8_t* p) {
  return (p[0] & 1) != 0;
}  // broadcast included

// Ethernet II (IEEE 802.3 clause 3.1.1), no 802.1Q tag: pods send untagged frames.
//  0                   1                   2                   3
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |                Destination MAC (6)            |  Source MAC   |
// |                 Source MAC (cont.)            |  EtherType    |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
struct EthHdr {
  uint8_t dst[6];
  uint8_t src[6];
  uint16_t type;
} __attribute__((packed));
static_assert(sizeof(EthHdr) == 14);

constexpr uint16_t kEtherTypeIpv4 = 0x0800;
constexpr uint16_t kEtherTypeArp = 0x0806;

// ARP for IPv4 over Ethernet (RFC 826).
struct ArpPkt {
  uint16_t htype;  // 1 = Ethernet
  uint16_t ptype;  // 0x0800 = IPv4
  uint8_t hlen;    // 6
  uint8_t plen;    // 4
  uint16_t oper;   // 1 = request, 2 = reply
  uint8_t sha[6];
  uint8_t spa[4];
  uint8_t tha[6];
  uint8_t tpa[4];
} __attribute__((packed));
static_assert(sizeof(ArpPkt) == 28);

constexpr uint16_t kArpRequest = 1;
constexpr uint16_t kArpReply = 2;

// IPv4 (RFC 791 section 3.1). Addresses are kept in network byte order throughout the switch.
struct Ipv4Hdr {
  uint8_t ver_ihl;  // version 4, header length in 32-bit words
  uint8_t tos;
  uint16_t tot_len;
  uint16_t id;
  uint16_t frag_off;  // flags (3 bits: reserved, DF, MF) and fragment offset (13 bits)
  uint8_t ttl;
  uint8_t protocol;
  uint16_t check;
  uint32_t saddr;
  uint32_t daddr;
} __attribute__((packed));
static_assert(sizeof(Ipv4Hdr) == 20);

constexpr uint8_t kIpProtoTcp = 6;
constexpr uint8_t kIpProtoUdp = 17;
constexpr uint16_t kIpMoreFragments = 0x2000;
constexpr uint16_t kIpOffsetMask = 0x1fff;

// UDP (RFC 768).
struct UdpHdr {
  uint16_t source;
  uint16_t dest;
  uint16_t len;
  uint16_t check;
} __attribute__((packed));
static_assert(sizeof(UdpHdr) == 8);

// TCP (RFC 9293 section 3.1), options follow up to doff * 4 bytes.
struct TcpHdr {
  uint16_t source;
  uint16_t dest;
  uint32_t seq;
  uint32_t ack_seq;
  uint8_t doff_res;  // data offset in the high 4 bits
  uint8_t flags;
  uint16_t window;
  uint16_t check;
  uint16_t urg_ptr;
} __attribute__((packed));
static_assert(sizeof(TcpHdr) == 20);

constexpr uint8_t kTcpFin = 0x01, kTcpSyn = 0x02, kTcpRst = 0x04, kTcpPsh = 0x08, kTcpAck = 0x10,
                  kTcpUrg = 0x20, kTcpEce = 0x40, kTcpCwr = 0x80;

// VXLAN (RFC 7348 section 5).
//  0                   1                   2                   3
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |R|R|R|R|I|R|R|R|            Reserved                           |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |                VXLAN Network Identifier (VNI) |   Reserved    |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// The I flag must be set; the other reserved bits are sent as zero and ignored on receipt.
struct VxlanHdr {
  uint8_t flags;
  uint8_t reserved1[3];
  uint8_t vni[3];
  uint8_t reserved2;
} __attribute__((packed));
static_assert(sizeof(VxlanHdr) == 8);

constexpr uint8_t kVxlanFlagI = 0x08;
constexpr uint16_t kVxlanPort = 4789;
// Outer Ethernet + IPv4 + UDP + VXLAN: what a pod's MTU gives up to the underlay's.
constexpr size_t kVxlanOverhead = 14 + 20 + 8 + 8;

inline uint32_t VxlanVni(const VxlanHdr& h) {
  return (uint32_t{h.vni[0]} << 16) | (uint32_t{h.vni[1]} << 8) | h.vni[2];
}
inline void SetVxlan(VxlanHdr* h, uint32_t vni) {
  std::memset(h, 0, sizeof(*h));
  h->flags = kVxlanFlagI;
  h->vni[0] = static_cast<uint8_t>(vni >> 16);
  h->vni[1] = static_cast<uint8_t>(vni >> 8);
  h->vni[2] = static_cast<uint8_t>(vni);
}

// The header a TAP opened with IFF_VNET_HDR puts before every frame: struct virtio_net_hdr of
// <linux/virtio_net.h> (that header cannot be included from C++: a field is named `class`),
// 10 bytes, in host byte order for a little-endian host.
struct VnetHdr {
  uint8_t flags;
  uint8_t gso_type;
  uint16_t hdr_len;      // Ethernet + IP + TCP header bytes
  uint16_t gso_size;     // payload bytes per segment (the MSS)
  uint16_t csum_start;   // where the checksum sum starts, from the frame's first byte
  uint16_t csum_offset;  // where, from csum_start, to store it
};
static_assert(sizeof(VnetHdr) == 10);

constexpr uint8_t VIRTIO_NET_HDR_F_NEEDS_CSUM = 1;
constexpr uint8_t VIRTIO_NET_HDR_F_DATA_VALID = 2;
constexpr uint8_t VIRTIO_NET_HDR_GSO_NONE = 0;
constexpr uint8_t VIRTIO_NET_HDR_GSO_TCPV4 = 1;
constexpr uint8_t VIRTIO_NET_HDR_GSO_UDP = 3;
constexpr uint8_t VIRTIO_NET_HDR_GSO_TCPV6 = 4;
constexpr uint8_t VIRTIO_NET_HDR_GSO_UDP_L4 = 5;  // USO: UDP super-frames (Linux 4.18+ / 6.2+ TAP)
constexpr uint8_t VIRTIO_NET_HDR_GSO_ECN = 0x80;

// The largest frame a TAP hands over with TSO: 64 KB of IP packet plus its Ethernet header.
constexpr size_t kMaxFrame = 65536 + sizeof(EthHdr);

}  // namespace overlay

#include "coalesce.h"

#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>

#include "checksum.h"

namespace overlay {
namespace {

// A TCP/IPv4 data segment or UDP/IPv4 datagram that may join a merged frame: no IP options or
// fragmentation, a payload, and for TCP no flags beyond ACK and PSH. Returns the header length
// (Ethernet to L4), or 0.
size_t MergeableHeaderLen(const uint8_t* frame, size_t len) {
  if (len < sizeof(EthHdr) + sizeof(Ipv4Hdr) + sizeof(UdpHdr)) return 0;
  const auto* eth = reinterpret_cast<const EthHdr*>(frame);
  if (eth->type != htons(kEtherTypeIpv4)) return 0;
  const auto* ip = reinterpret_cast<const Ipv4Hdr*>(frame + sizeof(EthHdr));
  if (ip->ver_ihl != 0x45) return 0;
  if (ntohs(ip->frag_off) & (kIpMoreFragments | kIpOffsetMask)) return 0;
  if (ntohs(ip->tot_len) != len - sizeof(EthHdr)) return 0;  // padded or truncated
  if (ip->protocol == kIpProtoUdp) {
    const auto* udp = reinterpret_cast<const UdpHdr*>(frame + sizeof(EthHdr) + sizeof(Ipv4Hdr));
    size_t hlen = sizeof(EthHdr) + sizeof(Ipv4Hdr) + sizeof(UdpHdr);
    if (ntohs(udp->len) != len - sizeof(EthHdr) - sizeof(Ipv4Hdr) || hlen >= len) return 0;
    return hlen;
  }
  if (ip->protocol != kIpProtoTcp || len < sizeof(EthHdr) + sizeof(Ipv4Hdr) + sizeof(TcpHdr))
    return 0;
  const auto* tcp = reinterpret_cast<const TcpHdr*>(frame + sizeof(EthHdr) + sizeof(Ipv4Hdr));
  size_t thl = (tcp->doff_res >> 4) * 4u;
  size_t hlen = sizeof(EthHdr) + sizeof(Ipv4Hdr) + thl;
  if (thl < sizeof(TcpHdr) || hlen >= len) return 0;
  if ((tcp->flags & ~(kTcpAck | kTcpPsh)) != 0 || !(tcp->flags & kTcpAck)) return 0;
  return hlen;
}

const UdpHdr* UdpOf(const uint8_t* frame) {
  return reinterpret_cast<const UdpHdr*>(frame + sizeof(EthHdr) + sizeof(Ipv4Hdr));
}
const TcpHdr* TcpOf(const uint8_t* frame) {
  return reinterpret_cast<const TcpHdr*>(frame + sizeof(EthHdr) + sizeof(Ipv4Hdr));
}
const Ipv4Hdr* IpOf(const uint8_t* frame) {
  return reinterpret_cast<const Ipv4Hdr*>(frame + sizeof(EthHdr));
}

}  // namespace

void Coalescer::WriteSingle(int fd, uint16_t slot, const uint8_t* frame, size_t len,
                            bool verified) {
  VnetHdr h{};
  if (verified) h.flags = VIRTIO_NET_HDR_F_DATA_VALID;
  iovec iov[2] = {{&h, sizeof(h)}, {const_cast<uint8_t*>(frame), len}};
  if (writev(fd, iov, 2) < 0) {
    c_.Count(Drop::kTapWrite);
    return;
  }
  Bump(c_.ports[slot].out_packets);
  Bump(c_.ports[slot].out_bytes, len);
}

void Coalescer::Start(int fd, uint16_t slot, const uint8_t* frame, size_t len) {
  size_t hlen = MergeableHeaderLen(frame, len);
  run_.fd = fd;
  run_.slot = slot;
  run_.first = frame;
  run_.hlen = hlen;
  run_.udp = IpOf(frame)->protocol == kIpProtoUdp;
  run_.mss = len - hlen;
  run_.payload = len - hlen;
  run_.next_seq = run_.udp ? 0 : ntohl(TcpOf(frame)->seq) + static_cast<uint32_t>(len - hlen);
  run_.last_flags = run_.udp ? 0 : TcpOf(frame)->flags;
  run_.segs = 1;
  run_.iov[2] = {const_cast<uint8_t*>(frame + hlen), len - hlen};
}

// Joins the open run when the segment continues it exactly: same flow, the next sequence
// number, identical headers otherwise (ACK, window, options, TOS, TTL), and the run's segments
// so far all full-sized. UDP datagrams join the same way, minus sequence and TCP fields: what
// the pod's kernel then gets is what a UDP GSO send would have made, cut again on delivery.
bool Coalescer::Append(int fd, const uint8_t* frame, size_t len) {
  Run& r = run_;
  if (r.fd != fd || r.segs >= kMaxSegs || (r.last_flags & kTcpPsh)) return false;
  if (r.payload != r.mss * r.segs) return false;  // a short segment closed the run
  size_t hlen = MergeableHeaderLen(frame, len);
  if (hlen != r.hlen) return false;
  size_t seg = len - hlen;
  if (seg > r.mss || r.hlen - sizeof(EthHdr) + r.payload + seg > 65535) return false;
  const Ipv4Hdr* a = IpOf(r.first);
  const Ipv4Hdr* b = IpOf(frame);
  if (a->saddr != b->saddr || a->daddr != b->daddr || a->tos != b->tos || a->ttl != b->ttl ||
      a->frag_off != b->frag_off || a->protocol != b->protocol)
    return false;
  if (r.udp) {
    const UdpHdr* ua = UdpOf(r.first);
    const UdpHdr* ub = UdpOf(frame);
    if (ua->source != ub->source || ua->dest != ub->dest) return false;
    r.iov[2 + r.segs] = {const_cast<uint8_t*>(frame + hlen), seg};
    r.segs++;
    r.payload += seg;
    return true;
  }
  const TcpHdr* ta = TcpOf(r.first);
  const TcpHdr* tb = TcpOf(frame);
  if (ntohl(tb->seq) != r.next_seq) return false;
  if (ta->source != tb->source || ta->dest != tb->dest || ta->ack_seq != tb->ack_seq ||
      ta->window != tb->window)
    return false;
  size_t opts = hlen - sizeof(EthHdr) - sizeof(Ipv4Hdr) - sizeof(TcpHdr);
  if (opts && std::memcmp(ta + 1, tb + 1, opts) != 0) return false;
  r.iov[2 + r.segs] = {const_cast<uint8_t*>(frame + hlen), seg};
  r.segs++;
  r.payload += seg;
  r.next_seq += static_cast<uint32_t>(seg);
  r.last_flags = tb->flags;
  return true;
}

void Coalescer::Deliver(int fd, uint16_t slot, const uint8_t* frame, size_t len, bool verified) {
  if (verified && MergeableHeaderLen(frame, len) &&
      (merge_udp_ || IpOf(frame)->protocol == kIpProtoTcp)) {
    if (run_.fd >= 0 && Append(fd, frame, len)) return;
    Flush();
    Start(fd, slot, frame, len);
    return;
  }
  Flush();
  WriteSingle(fd, slot, frame, len, verified);
}

void Coalescer::Flush() {
  Run& r = run_;
  if (r.fd < 0) return;
  int fd = r.fd;
  r.fd = -1;
  if (r.segs == 1) {
    WriteSingle(fd, r.slot, r.first, r.hlen + r.payload, true);
    return;
  }
  // One super-frame: the first segment's headers with the merged length, a partial checksum
  // (pseudo-header only) and a GSO header asking the pod's kernel to treat it as TSO (or USO)
  // output.
  auto* vh = reinterpret_cast<VnetHdr*>(hdr_);
  std::memset(vh, 0, sizeof(*vh));
  vh->flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
  vh->gso_type = r.udp ? VIRTIO_NET_HDR_GSO_UDP_L4 : VIRTIO_NET_HDR_GSO_TCPV4;
  vh->hdr_len = static_cast<uint16_t>(r.hlen);
  vh->gso_size = static_cast<uint16_t>(r.mss);
  vh->csum_start = sizeof(EthHdr) + sizeof(Ipv4Hdr);
  vh->csum_offset = r.udp ? offsetof(UdpHdr, check) : offsetof(TcpHdr, check);
  uint8_t* f = hdr_ + sizeof(VnetHdr);
  std::memcpy(f, r.first, r.hlen);
  auto* ip = reinterpret_cast<Ipv4Hdr*>(f + sizeof(EthHdr));
  uint8_t* l4 = f + sizeof(EthHdr) + sizeof(Ipv4Hdr);
  size_t l4len = r.hlen - sizeof(EthHdr) - sizeof(Ipv4Hdr) + r.payload;
  ip->tot_len = htons(static_cast<uint16_t>(sizeof(Ipv4Hdr) + l4len));
  ip->check = 0;
  ip->check = Checksum(ip, sizeof(Ipv4Hdr));
  uint16_t partial = Fold16(PseudoHeaderSum(ip->saddr, ip->daddr, ip->protocol, l4len));
  if (r.udp) {
    auto* udp = reinterpret_cast<UdpHdr*>(l4);
    udp->len = htons(static_cast<uint16_t>(l4len));  // the whole; the pod's kernel cuts it
    udp->check = partial;
  } else {
    auto* tcp = reinterpret_cast<TcpHdr*>(l4);
    tcp->flags = static_cast<uint8_t>(tcp->flags | (r.last_flags & kTcpPsh));
    tcp->check = partial;
  }
  r.iov[0] = {hdr_, sizeof(VnetHdr)};
  r.iov[1] = {f, r.hlen};
  if (writev(fd, r.iov, static_cast<int>(2 + r.segs)) < 0) {
    c_.Count(Drop::kTapWrite, r.segs);
    return;
  }
  Bump(c_.coalesced_writes);
  Bump(c_.ports[r.slot].out_packets, r.segs);
  Bump(c_.ports[r.slot].out_bytes, r.segs * r.hlen + r.payload);
}

}  // namespace overlay

#include "encap.h"

#include <netinet/udp.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>

#include "checksum.h"

namespace overlay {
namespace {

// The IPv4 datagram limit less the outer IPv4 and UDP headers: a GSO send's whole payload.
constexpr size_t kMaxUdpPayload = 65535 - 20 - 8;

// Finishes a checksum the sender left partial (VIRTIO_NET_HDR_F_NEEDS_CSUM): the field holds
// the pseudo-header sum, and the sum from csum_start to the end completes it.
bool FinishChecksum(const VnetHdr& h, uint8_t* frame, size_t len) {
  size_t start = h.csum_start, field = size_t{h.csum_start} + h.csum_offset;
  if (start >= len || field + 2 > len) return false;
  uint16_t sum = Checksum(frame + start, len - start);
  // UDP sends a computed zero as all ones: zero means "no checksum" (RFC 768).
  if (sum == 0 && h.csum_offset == 6) sum = 0xffff;
  std::memcpy(frame + field, &sum, 2);
  return true;
}

// Copies a frame's headers (54..134 bytes) in 16-byte moves, the last one overlapping: for a
// variable length this short, memcpy's `rep movs` costs more in start-up than in copying.
inline void CopyHeaders(uint8_t* dst, const uint8_t* src, size_t n) {
  size_t i = 0;
  for (; i + 16 <= n; i += 16) std::memcpy(dst + i, src + i, 16);
  if (i < n) std::memcpy(dst + n - 16, src + n - 16, 16);
}

}  // namespace

uint32_t FlowHash(const uint8_t* frame, size_t len) {
  uint64_t h = 0x9e3779b97f4a7c15ULL;
  auto mix = [&](uint64_t v) { h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2); };
  const auto* eth = reinterpret_cast<const EthHdr*>(frame);
  if (len >= sizeof(EthHdr) + sizeof(Ipv4Hdr) && ntohs(eth->type) == kEtherTypeIpv4) {
    const auto* ip = reinterpret_cast<const Ipv4Hdr*>(frame + sizeof(EthHdr));
    mix(ip->saddr);
    mix(ip->daddr);
    mix(ip->protocol);
    size_t l4 = sizeof(EthHdr) + (ip->ver_ihl & 0xf) * 4u;
    bool first_fragment = (ntohs(ip->frag_off) & kIpOffsetMask) == 0;
    if ((ip->protocol == kIpProtoTcp || ip->protocol == kIpProtoUdp) && first_fragment &&
        l4 + 4 <= len) {
      uint32_t ports;
      std::memcpy(&ports, frame + l4, 4);
      mix(ports);
    }
  } else if (len >= sizeof(EthHdr)) {
    mix(LoadMac(eth->dst));
    mix(LoadMac(eth->src));
  }
  h ^= h >> 29;
  h *= 0xbf58476d1ce4e5b9ULL;
  h ^= h >> 32;
  return static_cast<uint32_t>(h);
}

Encapsulator::Encapsulator(const std::vector<int>& sockets, bool gso, uint16_t port,
                           WorkerCounters& counters)
    : sockets_(sockets), gso_(gso), port_(port), c_(counters), arena_(new uint8_t[kArenaSize]) {}

void Encapsulator::EnsureRoom(size_t bytes, size_t iovs, size_t msgs) {
  if (used_ + bytes > kArenaSize || niov_ + iovs > kMaxIov || nmsgs_ + msgs > kMaxMsgs) Flush();
}

uint8_t* Encapsulator::Take(size_t bytes) {
  uint8_t* p = arena_.get() + used_;
  used_ += bytes;
  return p;
}

void Encapsulator::Push(size_t iov_first, size_t len, uint16_t seg_size, uint16_t segs,
                        uint32_t vtep, uint8_t sock) {
  msgs_[nmsgs_++] = Msg{iov_first, niov_ - iov_first, len, seg_size, segs, vtep, sock};
}

void Encapsulator::EncapPlain(const uint8_t* frame, size_t len, uint32_t vni, uint32_t vtep) {
  uint8_t sock = static_cast<uint8_t>(FlowHash(frame, len) % sockets_.size());
  size_t wire = sizeof(VxlanHdr) + len;
  EnsureRoom(wire, 1, 1);
  uint8_t* out = Take(wire);
  SetVxlan(reinterpret_cast<VxlanHdr*>(out), vni);
  std::memcpy(out + sizeof(VxlanHdr), frame, len);
  size_t first = niov_;
  AddIov(out, wire);
  Push(first, wire, 0, 1, vtep, sock);
}

Drop Encapsulator::Encap(const VnetHdr& h, uint8_t* frame, size_t len, uint32_t vni, uint32_t vtep,
                         bool* referenced) {
  *referenced = false;
  uint8_t sock = static_cast<uint8_t>(FlowHash(frame, len) % sockets_.size());
  if (h.gso_type != VIRTIO_NET_HDR_GSO_NONE)
    return Segment(h, frame, len, vni, vtep, sock, referenced);
  if ((h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) && !FinishChecksum(h, frame, len))
    return Drop::kBadVnetHdr;
  EncapPlain(frame, len, vni, vtep);
  return Drop::kCount;
}

// Cuts an IPv4 super-frame into segments of gso_size payload bytes, as the kernel's TSO or USO
// would: every segment gets the headers with its own length, IP ID and full checksums. TCP
// segments also get their sequence number, with FIN and PSH on the last segment only and CWR on
// the first only; UDP segments are datagrams of their own (RFC 768 length and checksum each).
Drop Encapsulator::Segment(const VnetHdr& h, uint8_t* frame, size_t len, uint32_t vni,
                           uint32_t vtep, uint8_t sock, bool* referenced) {
  const uint8_t type = h.gso_type & ~VIRTIO_NET_HDR_GSO_ECN;
  const bool udp = type == VIRTIO_NET_HDR_GSO_UDP_L4;
  if (type != VIRTIO_NET_HDR_GSO_TCPV4 && !udp) return Drop::kBadVnetHdr;
  if (len < sizeof(EthHdr) + sizeof(Ipv4Hdr) + sizeof(UdpHdr)) return Drop::kFrameShort;
  const auto* ip0 = reinterpret_cast<const Ipv4Hdr*>(frame + sizeof(EthHdr));
  size_t ihl = (ip0->ver_ihl & 0xf) * 4u;
  const uint8_t proto = udp ? kIpProtoUdp : kIpProtoTcp;
  if (ip0->protocol != proto || ihl < 20) return Drop::kBadVnetHdr;
  size_t l4 = sizeof(EthHdr) + ihl;
  size_t l4hl = sizeof(UdpHdr);  // L4 header bytes repeated in every segment
  if (!udp) {
    if (l4 + sizeof(TcpHdr) > len) return Drop::kFrameShort;
    l4hl = (reinterpret_cast<const TcpHdr*>(frame + l4)->doff_res >> 4) * 4u;
    if (l4hl < sizeof(TcpHdr)) return Drop::kFrameShort;
  }
  size_t hlen = l4 + l4hl;
  if (hlen > len) return Drop::kFrameShort;
  size_t payload = len - hlen;
  size_t mss = h.gso_size;
  if (mss == 0) return Drop::kBadVnetHdr;
  const uint16_t csum_offset = udp ? offsetof(UdpHdr, check) : offsetof(TcpHdr, check);
  if (payload <= mss) {
    // Nothing to cut: finish the checksum and send it whole (copied, not referenced).
    VnetHdr plain = h;
    plain.gso_type = VIRTIO_NET_HDR_GSO_NONE;
    plain.flags |= VIRTIO_NET_HDR_F_NEEDS_CSUM;
    plain.csum_start = static_cast<uint16_t>(l4);
    plain.csum_offset = csum_offset;
    // The field may hold a partial (pseudo-header) sum or nothing useful: start from the
    // pseudo-header so the result is right either way.
    uint16_t partial = Fold16(PseudoHeaderSum(ip0->saddr, ip0->daddr, proto, l4hl + payload));
    std::memcpy(frame + l4 + csum_offset, &partial, 2);
    if (udp) {
      uint16_t ulen = htons(static_cast<uint16_t>(l4hl + payload));
      std::memcpy(frame + l4 + offsetof(UdpHdr, len), &ulen, 2);
    }
    return Encap(plain, frame, len, vni, vtep, referenced);
  }

  // A real TSO frame has at most 64 KB / 88 (TCP_MIN_MSS) segments; more means a hostile or
  // broken header, and would not fit one flush.
  if ((payload + mss - 1) / mss > kMaxSegsPerFrame) return Drop::kBadVnetHdr;
  const size_t hdr_wire = sizeof(VxlanHdr) + hlen;  // built per segment in the arena
  const size_t seg_wire = hdr_wire + mss;           // UDP payload of a full segment
  const size_t nseg = (payload + mss - 1) / mss;
  size_t per_send = gso_ ? std::min(kMaxSegsPerSend, kMaxUdpPayload / seg_wire) : 1;
  if (per_send == 0) per_send = 1;
  // Room for the whole super-frame now, so no flush happens once the frame is referenced.
  EnsureRoom(nseg * hdr_wire, 2 * nseg, (nseg + per_send - 1) / per_send);

  const uint16_t id0 = ntohs(ip0->id);
  const auto* tcp0 = reinterpret_cast<const TcpHdr*>(frame + l4);
  const uint32_t seq0 = udp ? 0 : ntohl(tcp0->seq);
  const uint8_t flags0 = udp ? 0 : tcp0->flags;

  size_t done = 0;  // payload bytes emitted
  for (size_t first = 0; first < nseg; first += per_send) {
    size_t count = std::min(per_send, nseg - first);
    size_t iov_first = niov_;
    size_t msg_len = 0;
    for (size_t k = 0; k < count; ++k) {
      size_t i = first + k;
      size_t seg = std::min(mss, payload - done);
      const uint8_t* data = frame + hlen + done;
      uint8_t* out = Take(hdr_wire);
      SetVxlan(reinterpret_cast<VxlanHdr*>(out), vni);
      uint8_t* f = out + sizeof(VxlanHdr);
      CopyHeaders(f, frame, hlen);  // hlen >= 42 (Ethernet + IPv4 + UDP)
      auto* ip = reinterpret_cast<Ipv4Hdr*>(f + sizeof(EthHdr));
      ip->tot_len = htons(static_cast<uint16_t>(ihl + l4hl + seg));
      ip->id = htons(static_cast<uint16_t>(id0 + i));
      ip->check = 0;
      ip->check = Checksum(ip, ihl);
      uint8_t* l4h = f + l4;
      if (udp) {
        reinterpret_cast<UdpHdr*>(l4h)->len = htons(static_cast<uint16_t>(l4hl + seg));
      } else {
        auto* tcp = reinterpret_cast<TcpHdr*>(l4h);
        tcp->seq = htonl(seq0 + static_cast<uint32_t>(done));
        uint8_t fl = flags0;
        if (i + 1 < nseg) fl &= static_cast<uint8_t>(~(kTcpFin | kTcpPsh));
        if (i > 0) fl &= static_cast<uint8_t>(~kTcpCwr);
        tcp->flags = fl;
      }
      uint16_t zero = 0;
      std::memcpy(l4h + csum_offset, &zero, 2);
      // The header is an even number of bytes, so its sum and the payload's simply add.
      uint64_t sum = PseudoHeaderSum(ip->saddr, ip->daddr, proto, l4hl + seg);
      sum = SumBytes(data, seg, sum);
      uint16_t check = Checksum(l4h, l4hl, sum);
      if (udp && check == 0) check = 0xffff;  // zero means "no checksum" (RFC 768)
      std::memcpy(l4h + csum_offset, &check, 2);
      AddIov(out, hdr_wire);
      AddIov(data, seg);
      msg_len += hdr_wire + seg;
      done += seg;
    }
    Push(iov_first, msg_len, count > 1 ? static_cast<uint16_t>(seg_wire) : 0,
         static_cast<uint16_t>(count), vtep, sock);
  }
  *referenced = true;
  return Drop::kCount;
}

void Encapsulator::Flush() {
  if (nmsgs_ == 0) return;
  for (size_t s = 0; s < sockets_.size(); ++s) {
    size_t n = 0;
    size_t index[kMaxMsgs];
    for (size_t i = 0; i < nmsgs_; ++i) {
      const Msg& m = msgs_[i];
      if (m.socket != s) continue;
      addr_[n] = sockaddr_in{};
      addr_[n].sin_family = AF_INET;
      addr_[n].sin_addr.s_addr = m.vtep;
      addr_[n].sin_port = htons(port_);
      msghdr& h = mm_[n].msg_hdr;
      h = msghdr{};
      h.msg_name = &addr_[n];
      h.msg_namelen = sizeof(sockaddr_in);
      h.msg_iov = &iovs_[m.iov_first];
      h.msg_iovlen = m.iov_count;
      if (m.seg_size) {
        h.msg_control = cmsg_[n];
        h.msg_controllen = sizeof(cmsg_[n]);
        cmsghdr* cm = CMSG_FIRSTHDR(&h);
        cm->cmsg_level = SOL_UDP;
        cm->cmsg_type = UDP_SEGMENT;
        cm->cmsg_len = CMSG_LEN(sizeof(uint16_t));
        std::memcpy(CMSG_DATA(cm), &m.seg_size, sizeof(uint16_t));
      }
      index[n++] = i;
    }
    size_t sent = 0;
    while (sent < n) {
      int r = sendmmsg(sockets_[s], mm_ + sent, static_cast<unsigned>(n - sent), MSG_DONTWAIT);
      if (r < 0) {
        if (errno == EINTR) continue;
        // The first remaining message failed (EMSGSIZE, ENOBUFS, EAGAIN...): drop it, go on.
        c_.Count(Drop::kUdpSend, msgs_[index[sent]].segs);
        ++sent;
        continue;
      }
      for (int k = 0; k < r; ++k) {
        const Msg& m = msgs_[index[sent + k]];
        Bump(c_.tx_datagrams, m.segs);
        Bump(c_.tx_bytes, m.len);
      }
      Bump(c_.tx_sends, static_cast<uint64_t>(r));
      sent += static_cast<size_t>(r);
    }
  }
  nmsgs_ = 0;
  niov_ = 0;
  used_ = 0;
  ++flushes_;
}

}  // namespace overlay

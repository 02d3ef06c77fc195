#include "simple.h"

#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <cstring>

#include "checksum.h"
#include "frames.h"

namespace overlay::bench {
namespace {

std::string MacKey(const uint8_t* mac) {
  return std::string(reinterpret_cast<const char*>(mac), 6);
}

uint32_t Sum(SumCode code, const void* data, size_t len, uint32_t sum) {
  if (code == SumCode::kTextbook) return TextbookSum(data, len, sum);
  return Fold16(SumBytes(data, len, sum));
}
uint16_t Finish(SumCode code, uint32_t sum) {
  return code == SumCode::kTextbook ? TextbookFinish(sum) : static_cast<uint16_t>(~Fold16(sum));
}

// The pseudo-header of RFC 9293 section 3.1 as a struct, summed like the rest.
struct PseudoHdr {
  uint32_t saddr;
  uint32_t daddr;
  uint8_t zero;
  uint8_t proto;
  uint16_t len;
} __attribute__((packed));
static_assert(sizeof(PseudoHdr) == 12);

void WriteVxlan(uint8_t* b, uint32_t vni) {
  b[0] = kVxlanFlagI;
  b[1] = 0;
  b[2] = 0;
  b[3] = 0;
  b[4] = static_cast<uint8_t>(vni >> 16);
  b[5] = static_cast<uint8_t>(vni >> 8);
  b[6] = static_cast<uint8_t>(vni);
  b[7] = 0;
}

bool SendTo(int sock, const sockaddr_in& to, const std::vector<uint8_t>& buf) {
  return sendto(sock, buf.data(), buf.size(), 0, reinterpret_cast<const sockaddr*>(&to),
                sizeof(to)) == static_cast<ssize_t>(buf.size());
}

}  // namespace

SimpleMacTables::SimpleMacTables(const std::vector<Endpoint>& remotes) {
  for (const Endpoint& e : remotes) {
    uint8_t mac[6];
    StoreMac(mac, e.mac);
    by_string[MacKey(mac)] = e;
    ordered[e.mac] = e;
  }
}

const Endpoint* SimpleMacTables::FindString(const uint8_t* mac) const {
  auto it = by_string.find(MacKey(mac));
  return it == by_string.end() ? nullptr : &it->second;
}

const Endpoint* SimpleMacTables::FindOrdered(const uint8_t* mac) const {
  Mac m = 0;
  for (int i = 0; i < 6; ++i) m = (m << 8) | mac[i];
  auto it = ordered.find(m);
  return it == ordered.end() ? nullptr : &it->second;
}

bool SimpleEncap(int sock, const sockaddr_in& to, const VnetHdr& h, const uint8_t* frame,
                 size_t len, uint32_t vni, SumCode code) {
  std::vector<uint8_t> buf(sizeof(VxlanHdr) + len);
  WriteVxlan(buf.data(), vni);
  uint8_t* f = buf.data() + sizeof(VxlanHdr);
  std::memcpy(f, frame, len);
  if (h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) {
    size_t start = h.csum_start, field = start + h.csum_offset;
    if (start >= len || field + 2 > len) return false;
    // The field holds the pseudo-header sum; summing it with the rest completes the checksum.
    uint16_t sum = Finish(code, Sum(code, f + start, len - start, 0));
    if (sum == 0 && h.csum_offset == 6) sum = 0xffff;  // UDP: zero means "none"
    std::memcpy(f + field, &sum, 2);
  }
  return SendTo(sock, to, buf);
}

size_t SimpleSegment(int sock, const sockaddr_in& to, const VnetHdr& h, const uint8_t* frame,
                     size_t len, uint32_t vni, SumCode code) {
  if ((h.gso_type & ~VIRTIO_NET_HDR_GSO_ECN) != VIRTIO_NET_HDR_GSO_TCPV4 || h.gso_size == 0)
    return 0;
  if (len < sizeof(EthHdr) + sizeof(Ipv4Hdr) + sizeof(TcpHdr)) return 0;
  const auto* ip0 = reinterpret_cast<const Ipv4Hdr*>(frame + sizeof(EthHdr));
  size_t ihl = (ip0->ver_ihl & 0xf) * 4u;
  size_t l4 = sizeof(EthHdr) + ihl;
  if (ip0->protocol != kIpProtoTcp || ihl < 20 || l4 + sizeof(TcpHdr) > len) return 0;
  const auto* tcp0 = reinterpret_cast<const TcpHdr*>(frame + l4);
  size_t thl = (tcp0->doff_res >> 4) * 4u;
  size_t hlen = l4 + thl;
  if (thl < 20 || hlen > len) return 0;
  size_t payload = len - hlen, mss = h.gso_size;
  size_t nseg = (payload + mss - 1) / mss;
  size_t sent = 0;
  for (size_t i = 0, done = 0; i < nseg; ++i) {
    size_t seg = std::min(mss, payload - done);
    std::vector<uint8_t> buf(sizeof(VxlanHdr) + hlen + seg);
    WriteVxlan(buf.data(), vni);
    uint8_t* f = buf.data() + sizeof(VxlanHdr);
    std::memcpy(f, frame, hlen);
    std::memcpy(f + hlen, frame + hlen + done, seg);
    auto* ip = reinterpret_cast<Ipv4Hdr*>(f + sizeof(EthHdr));
    ip->tot_len = htons(static_cast<uint16_t>(ihl + thl + seg));
    ip->id = htons(static_cast<uint16_t>(ntohs(ip0->id) + i));
    ip->check = 0;
    ip->check = Finish(code, Sum(code, ip, ihl, 0));
    auto* tcp = reinterpret_cast<TcpHdr*>(f + l4);
    tcp->seq = htonl(ntohl(tcp0->seq) + static_cast<uint32_t>(done));
    if (i + 1 < nseg) tcp->flags &= static_cast<uint8_t>(~(kTcpFin | kTcpPsh));
    if (i > 0) tcp->flags &= static_cast<uint8_t>(~kTcpCwr);
    tcp->check = 0;
    PseudoHdr ph{ip->saddr, ip->daddr, 0, kIpProtoTcp, htons(static_cast<uint16_t>(thl + seg))};
    uint32_t sum = Sum(code, &ph, sizeof(ph), 0);
    tcp->check = Finish(code, Sum(code, tcp, thl + seg, sum));
    if (SendTo(sock, to, buf)) ++sent;
    done += seg;
  }
  return sent;
}

bool SimpleDeliver(int fd, const uint8_t* frame, size_t len) {
  VnetHdr h{};
  h.flags = VIRTIO_NET_HDR_F_DATA_VALID;
  iovec iov[2] = {{&h, sizeof(h)}, {const_cast<uint8_t*>(frame), len}};
  return writev(fd, iov, 2) == static_cast<ssize_t>(sizeof(h) + len);
}

}  // namespace overlay::bench

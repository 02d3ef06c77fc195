#include "frames.h"

#include <cstring>

#include "checksum.h"

namespace overlay::bench {
namespace {

constexpr size_t kL3 = sizeof(EthHdr);
constexpr size_t kL4 = sizeof(EthHdr) + sizeof(Ipv4Hdr);

void FillEthIp(uint8_t* f, Mac src, Mac dst, uint32_t saddr, uint32_t daddr, uint8_t proto,
               uint16_t id, size_t l4len) {
  auto* eth = reinterpret_cast<EthHdr*>(f);
  StoreMac(eth->dst, dst);
  StoreMac(eth->src, src);
  eth->type = htons(kEtherTypeIpv4);
  auto* ip = reinterpret_cast<Ipv4Hdr*>(f + kL3);
  ip->ver_ihl = 0x45;
  ip->tos = 0;
  ip->tot_len = htons(static_cast<uint16_t>(sizeof(Ipv4Hdr) + l4len));
  ip->id = htons(id);
  ip->frag_off = htons(0x4000);  // DF
  ip->ttl = 64;
  ip->protocol = proto;
  ip->check = 0;
  ip->saddr = saddr;
  ip->daddr = daddr;
  ip->check = Checksum(ip, sizeof(Ipv4Hdr));
}

}  // namespace

void TimestampOption(uint8_t* out, uint32_t tsval, uint32_t tsecr) {
  out[0] = 1;  // NOP
  out[1] = 1;
  out[2] = 8;  // timestamps
  out[3] = 10;
  uint32_t v = htonl(tsval), e = htonl(tsecr);
  std::memcpy(out + 4, &v, 4);
  std::memcpy(out + 8, &e, 4);
}

std::vector<uint8_t> TcpFrame(const TcpSpec& s, const uint8_t* payload, size_t len) {
  size_t thl = sizeof(TcpHdr) + s.options.size();
  std::vector<uint8_t> f(kL4 + thl + len);
  FillEthIp(f.data(), s.src, s.dst, s.saddr, s.daddr, kIpProtoTcp, s.ip_id, thl + len);
  auto* tcp = reinterpret_cast<TcpHdr*>(f.data() + kL4);
  tcp->source = htons(s.sport);
  tcp->dest = htons(s.dport);
  tcp->seq = htonl(s.seq);
  tcp->ack_seq = htonl(s.ack);
  tcp->doff_res = static_cast<uint8_t>((thl / 4) << 4);
  tcp->flags = s.flags;
  tcp->window = htons(s.window);
  tcp->urg_ptr = 0;
  if (!s.options.empty()) std::memcpy(tcp + 1, s.options.data(), s.options.size());
  if (len) std::memcpy(f.data() + kL4 + thl, payload, len);
  uint64_t pseudo = PseudoHeaderSum(s.saddr, s.daddr, kIpProtoTcp, thl + len);
  tcp->check = 0;
  tcp->check = s.sum == L4Sum::kFull ? Checksum(tcp, thl + len, pseudo) : Fold16(pseudo);
  return f;
}

std::vector<uint8_t> UdpFrame(Mac src, Mac dst, uint32_t saddr, uint32_t daddr, uint16_t sport,
                              uint16_t dport, const uint8_t* payload, size_t len, L4Sum sum) {
  size_t l4len = sizeof(UdpHdr) + len;
  std::vector<uint8_t> f(kL4 + l4len);
  FillEthIp(f.data(), src, dst, saddr, daddr, kIpProtoUdp, 0, l4len);
  auto* udp = reinterpret_cast<UdpHdr*>(f.data() + kL4);
  udp->source = htons(sport);
  udp->dest = htons(dport);
  udp->len = htons(static_cast<uint16_t>(l4len));
  if (len) std::memcpy(udp + 1, payload, len);
  uint64_t pseudo = PseudoHeaderSum(saddr, daddr, kIpProtoUdp, l4len);
  udp->check = 0;
  if (sum == L4Sum::kFull) {
    uint16_t c = Checksum(udp, l4len, pseudo);
    udp->check = c == 0 ? 0xffff : c;
  } else {
    udp->check = Fold16(pseudo);
  }
  return f;
}

std::vector<uint8_t> Pattern(size_t len, uint32_t seed) {
  std::vector<uint8_t> p(len);
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < len; ++i) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    p[i] = static_cast<uint8_t>(x);
  }
  return p;
}

uint32_t TextbookSum(const void* data, size_t len, uint32_t sum) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  while (len > 1) {
    uint16_t w;
    std::memcpy(&w, p, 2);
    sum += w;
    p += 2;
    len -= 2;
  }
  if (len > 0) sum += *p;  // little-endian: the odd byte is the low half of its word
  return sum;
}

uint16_t TextbookFinish(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

bool ChecksumsValid(const uint8_t* frame, size_t len) {
  if (len < kL4) return false;
  const auto* ip = reinterpret_cast<const Ipv4Hdr*>(frame + kL3);
  size_t ihl = (ip->ver_ihl & 0xf) * 4u;
  if (kL3 + ihl > len || ntohs(ip->tot_len) != len - kL3) return false;
  if (Checksum(ip, ihl) != 0) return false;
  size_t l4len = len - kL3 - ihl;
  const uint8_t* l4 = frame + kL3 + ihl;
  if (ip->protocol == kIpProtoUdp) {
    uint16_t stored;
    std::memcpy(&stored, l4 + 6, 2);
    if (stored == 0) return true;  // no checksum
  } else if (ip->protocol != kIpProtoTcp) {
    return false;
  }
  return Checksum(l4, l4len, PseudoHeaderSum(ip->saddr, ip->daddr, ip->protocol, l4len)) == 0;
}

}  // namespace overlay::bench

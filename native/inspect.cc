// Inspection of a running switch for operators: the recent drop events of every packet thread
// (droplog.h), and a trace of the forwarding decision (forward.h) on synthetic frames from a
// port. Both run on the calling (JS) thread under the control side's lock, which keeps the
// table version they read from being retired; packet threads never take that lock, so they are
// not slowed.
#include <algorithm>
#include <cstring>

#include "checksum.h"
#include "forward.h"
#include "switch.h"

namespace overlay {
namespace {

constexpr size_t kTracePayload = 32;
constexpr uint8_t kIpProtoIcmp = 1;

// A MAC no port or remote holds (locally administered, unicast): the frame's destination when
// the tables know no owner of the address, so the decision says what an unknown MAC meets.
constexpr Mac kUnknownMac = 0x02ffffffff00ULL;

std::vector<uint8_t> ArpRequest(const Port& p, uint32_t target) {
  std::vector<uint8_t> f(sizeof(EthHdr) + sizeof(ArpPkt), 0);
  auto* eth = reinterpret_cast<EthHdr*>(f.data());
  auto* arp = reinterpret_cast<ArpPkt*>(f.data() + sizeof(EthHdr));
  std::memset(eth->dst, 0xff, 6);
  StoreMac(eth->src, p.mac);
  eth->type = htons(kEtherTypeArp);
  arp->htype = htons(1);
  arp->ptype = htons(kEtherTypeIpv4);
  arp->hlen = 6;
  arp->plen = 4;
  arp->oper = htons(kArpRequest);
  StoreMac(arp->sha, p.mac);
  std::memcpy(arp->spa, &p.ip, 4);
  std::memcpy(arp->tpa, &target, 4);
  return f;
}

// An IPv4 frame from the port: TCP SYN, UDP or ICMP echo request, with valid checksums, so the
// frame may be sent for real.
std::vector<uint8_t> Ipv4Frame(const Port& p, Mac dst_mac, const TraceQuery& q) {
  size_t l4 = q.proto == kIpProtoTcp   ? sizeof(TcpHdr)
              : q.proto == kIpProtoUdp ? sizeof(UdpHdr) + kTracePayload
                                       : 8 + kTracePayload;
  std::vector<uint8_t> f(sizeof(EthHdr) + sizeof(Ipv4Hdr) + l4, 0);
  auto* eth = reinterpret_cast<EthHdr*>(f.data());
  StoreMac(eth->dst, dst_mac);
  StoreMac(eth->src, p.mac);
  eth->type = htons(kEtherTypeIpv4);
  auto* ip = reinterpret_cast<Ipv4Hdr*>(f.data() + sizeof(EthHdr));
  ip->ver_ihl = 0x45;
  ip->tot_len = htons(static_cast<uint16_t>(sizeof(Ipv4Hdr) + l4));
  ip->id = htons(0x7ace);
  ip->frag_off = htons(0x4000);  // DF
  ip->ttl = 64;
  ip->protocol = q.proto;
  ip->saddr = p.ip;
  ip->daddr = q.dst;
  ip->check = Checksum(ip, sizeof(Ipv4Hdr));
  uint8_t* l = f.data() + sizeof(EthHdr) + sizeof(Ipv4Hdr);
  if (q.proto == kIpProtoTcp) {
    auto* tcp = reinterpret_cast<TcpHdr*>(l);
    tcp->source = htons(q.sport);
    tcp->dest = htons(q.dport);
    tcp->seq = htonl(0x7ace0001);
    tcp->doff_res = 5 << 4;
    tcp->flags = kTcpSyn;
    tcp->window = htons(65535);
    tcp->check = Checksum(l, l4, PseudoHeaderSum(ip->saddr, ip->daddr, kIpProtoTcp, l4));
  } else if (q.proto == kIpProtoUdp) {
    auto* udp = reinterpret_cast<UdpHdr*>(l);
    udp->source = htons(q.sport);
    udp->dest = htons(q.dport);
    udp->len = htons(static_cast<uint16_t>(l4));
    std::memcpy(l + sizeof(UdpHdr), "overlay trace", 13);
    udp->check = Checksum(l, l4, PseudoHeaderSum(ip->saddr, ip->daddr, kIpProtoUdp, l4));
    if (udp->check == 0) udp->check = 0xffff;
  } else {
    l[0] = 8;  // echo request
    l[4] = 0x7a;
    l[7] = 1;
    std::memcpy(l + 8, "overlay trace", 13);
    uint16_t sum = Checksum(l, l4);
    std::memcpy(l + 2, &sum, 2);
  }
  return f;
}

}  // namespace

DropEventsResult Switch::DropEvents(uint64_t since_ns, uint64_t arm_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  DropEventsResult r;
  if (closed_) return r;
  uint64_t now = RealtimeNs();
  uint64_t until = now + arm_ms * 1000000ULL;
  for (int w = 0; w < config_.workers; ++w) {
    DropRecorder& rec = counters_[w].recorder;
    uint64_t was = rec.record_until.exchange(until, std::memory_order_relaxed);
    if (was <= now) recording_since_ns_ = now;  // it had stopped (or never ran): starts now
    rec.ring.Read(since_ns, [&](const DropEvent& e) { r.events.push_back(e); });
    r.sampled_out += rec.sampled_out.load(std::memory_order_relaxed);
  }
  std::stable_sort(r.events.begin(), r.events.end(),
                   [](const DropEvent& a, const DropEvent& b) { return a.time_ns < b.time_ns; });
  r.recording_since_ns = recording_since_ns_;
  r.recording_until_ns = until;
  return r;
}

std::string Switch::Trace(const TraceQuery& q, TraceResult* out) {
  std::lock_guard<std::mutex> lock(mu_);
  if (closed_) return "switch is closed";
  const Tables* t = tables_.load();
  if (q.port >= kMaxPorts || !t->ports->ports[q.port].active)
    return "no port " + std::to_string(q.port);
  if (q.proto != kIpProtoTcp && q.proto != kIpProtoUdp && q.proto != kIpProtoIcmp)
    return "protocol must be 6 (tcp), 17 (udp) or 1 (icmp)";
  const Port& p = t->ports->ports[q.port];
  out->port = p;
  out->src_global = t->policy->IsGlobal(p.vni);

  // The pod's kernel first asks for the next hop's MAC; the switch answers (or not) itself.
  out->arp_frame = ArpRequest(p, q.next_hop);
  VnetHdr none{};
  const Endpoint* dst = nullptr;
  bool arp = false;
  Drop d = DecidePortFrame(*t, q.port, p, none, out->arp_frame.data(), out->arp_frame.size(), &dst,
                           &arp);
  const Endpoint* owner = nullptr;
  if (d == Drop::kCount && arp)
    d = DecidePortArp(*t, p, out->arp_frame.data(), out->arp_frame.size(), &owner);
  out->arp_drop = d;
  if (owner != nullptr) out->arp_owner = *owner;

  // Then the frame, to the MAC ARP gave; unanswered, to the MAC the tables hold for the next
  // hop, so the trace still shows what the frame itself would meet.
  Mac mac = kUnknownMac;
  if (owner != nullptr) {
    mac = owner->mac;
  } else if (const Endpoint* e = t->FindIp(q.next_hop)) {
    mac = e->mac;
  }
  out->frame = Ipv4Frame(p, mac, q);
  d = DecidePortFrame(*t, q.port, p, none, out->frame.data(), out->frame.size(), &dst, &arp);
  out->frame_drop = d;
  out->found = dst != nullptr;
  if (dst != nullptr) {
    out->dst = *dst;
    out->dst_global = t->policy->IsGlobal(dst->vni);
    if (dst->vtep == 0) {
      out->dst_port_name = t->ports->ports[dst->port].name;
    } else {
      out->dst_peer_known = t->policy->peers.Find(dst->vtep) != nullptr;
    }
  }
  return "";
}

}  // namespace overlay

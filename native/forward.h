// The forwarding decision on a frame a port sent, the one copy of it: the packet thread
// (Worker::ForwardFrame, Worker::PortArp) acts on it, and Switch::Trace (inspect.cc) runs it on a
// synthetic frame to tell an operator what the switch would do. Pure functions of the tables
// and the frame: no I/O, no counting. Inline, so the packet path pays no call for the split.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "counters.h"
#include "packet.h"
#include "tables.h"

namespace overlay {

// What to do with a frame from port `p` (slot `slot`). Returns the drop reason, or Drop::kCount
// when the frame goes on: with *arp set, it is ARP for DecidePortArp; otherwise *dst is where
// it is delivered (a local port when dst->vtep == 0, else the remote VTEP).
inline Drop DecidePortFrame(const Tables& t, uint32_t slot, const Port& p, const VnetHdr& h,
                            const uint8_t* frame, size_t len, const Endpoint** dst, bool* arp) {
  const auto* eth = reinterpret_cast<const EthHdr*>(frame);
  uint16_t type = ntohs(eth->type);
  *dst = nullptr;
  *arp = false;
  if (LoadMac(eth->src) != p.mac) return Drop::kSpoofedMac;
  if (type == kEtherTypeArp) {
    *arp = true;
    return Drop::kCount;
  }
  if (IsMulticastMac(eth->dst)) return Drop::kFlood;
  if (type != kEtherTypeIpv4) return Drop::kNotIpv4;
  if (len < sizeof(EthHdr) + sizeof(Ipv4Hdr)) return Drop::kBadIpv4;
  const auto* ip = reinterpret_cast<const Ipv4Hdr*>(frame + sizeof(EthHdr));
  size_t ihl = (ip->ver_ihl & 0xf) * 4u;
  if ((ip->ver_ihl >> 4) != 4 || ihl < 20 || sizeof(EthHdr) + ihl > len) return Drop::kBadIpv4;
  if (p.kind == PortKind::kPod && ip->saddr != p.ip) return Drop::kSpoofedIp;
  if (h.gso_type == VIRTIO_NET_HDR_GSO_NONE ? len - sizeof(EthHdr) > p.mtu : h.gso_size > p.mtu)
    return Drop::kOversize;
  const Endpoint* d = t.FindMac(LoadMac(eth->dst));
  if (d == nullptr) return Drop::kUnknownDest;
  *dst = d;
  if (!t.policy->Allowed(p.vni, d->vni)) return Drop::kVniMismatch;
  if (d->vtep == 0 && d->port == slot) return Drop::kHairpin;
  return Drop::kCount;
}

// ARP from port `p`. Every request for an address reachable from the sender's VNI is answered
// by the switch, so ARP never leaves the node; replies and announcements from pods are not
// needed. Returns the drop reason, or Drop::kCount with *owner the endpoint to answer for.
inline Drop DecidePortArp(const Tables& t, const Port& p, const uint8_t* frame, size_t len,
                          const Endpoint** owner) {
  *owner = nullptr;
  if (len < sizeof(EthHdr) + sizeof(ArpPkt)) return Drop::kArpMalformed;
  const auto* arp = reinterpret_cast<const ArpPkt*>(frame + sizeof(EthHdr));
  if (arp->htype != htons(1) || arp->ptype != htons(kEtherTypeIpv4) || arp->hlen != 6 ||
      arp->plen != 4)
    return Drop::kArpMalformed;
  uint32_t spa, tpa;
  std::memcpy(&spa, arp->spa, 4);
  std::memcpy(&tpa, arp->tpa, 4);
  if (LoadMac(arp->sha) != p.mac) return Drop::kArpSpoofed;
  // spa 0 is an address probe (RFC 5227), which is allowed to ask.
  if (p.kind == PortKind::kPod && spa != p.ip && spa != 0) return Drop::kArpSpoofed;
  if (ntohs(arp->oper) != kArpRequest || tpa == spa) return Drop::kArpIgnored;
  const Endpoint* o = t.FindIp(tpa);
  if (o == nullptr || !t.policy->Allowed(p.vni, o->vni) || o->mac == p.mac)
    return Drop::kArpUnanswered;
  *owner = o;
  return Drop::kCount;
}

}  // namespace overlay

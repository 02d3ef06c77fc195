// Drop events: a bounded ring of recent drops per packet thread (time, reason, the port or peer
// the frame came from, its inner IPv4 addresses, protocol and ports), recorded where drops are
// counted (WorkerCounters::Count in counters.h) and read by Switch::DropEvents.
//
// Cost. Unread, a drop costs one relaxed load of `record_until` (the thread's own cache line)
// and a not-taken branch; a frame costs the few stores of its DropSite. Each read arms every
// thread's recorder for a while (kDropArmMs, by default); recording stops by itself when nobody
// has read for that long. Armed, a drop costs a clock read, and at most kDropSamplesPerMs drops
// per millisecond per thread are recorded; the rest are counted as `sampled_out` only, so a
// flood costs the same clock read per frame and no more.
//
// Thread-safety: each ring has one writer (its packet thread) and any number of readers, which
// take no lock and never make the writer wait. An entry is a seqlock: the writer stores an odd
// sequence, the words, then the even sequence (release); a reader takes the words only if it
// saw the same even sequence before and after them. Words are relaxed atomics, so a torn read
// is a discarded read, never undefined behaviour.
#pragma once

#include <time.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "packet.h"

namespace overlay {

constexpr size_t kDropRingSize = 512;  // entries per packet thread, a power of two
constexpr uint32_t kDropSamplesPerMs = 4;
constexpr uint64_t kDropArmMs = 10 * 60 * 1000;

// Where a dropped frame came from.
enum class DropFrom : uint8_t { kNone = 0, kPort = 1, kPeer = 2 };

// One drop, as a reader gets it. Addresses in network order; ports in host order.
struct DropEvent {
  uint64_t time_ns = 0;  // CLOCK_REALTIME
  uint32_t reason = 0;   // a Drop
  DropFrom from = DropFrom::kNone;
  uint32_t id = 0;   // the port's slot, or the peer's underlay IPv4 (network order)
  uint32_t vni = 0;  // the port's VNI, or the VNI the peer sent on
  uint16_t ethertype = 0;
  uint8_t proto = 0;
  uint32_t src = 0, dst = 0;
  uint16_t sport = 0, dport = 0;
  uint32_t count = 1;  // frames this event stands for (a super-frame's segments)
};

inline uint64_t RealtimeNs() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return uint64_t(ts.tv_sec) * 1000000000ULL + uint64_t(ts.tv_nsec);
}

// The frame a packet thread is working on, for the drops it may count meanwhile.
struct DropSiteInfo {
  const uint8_t* frame = nullptr;  // Ethernet header, or nullptr
  uint32_t len = 0;
  DropFrom from = DropFrom::kNone;
  uint32_t id = 0;
  uint32_t vni = 0;
};

class DropRing {
 public:
  // Writer side (the packet thread).
  void Record(uint32_t reason, uint64_t count, const DropSiteInfo& site, uint64_t now_ns) {
    uint64_t i = head_.load(std::memory_order_relaxed);
    Slot& s = slots_[i & (kDropRingSize - 1)];
    s.seq.store(2 * i + 1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    DropEvent e;
    e.time_ns = now_ns;
    e.reason = reason;
    e.from = site.from;
    e.id = site.id;
    e.vni = site.vni;
    e.count = count > 0xffffffffu ? 0xffffffffu : static_cast<uint32_t>(count);
    Parse(site.frame, site.len, &e);
    uint64_t w[kWords];
    Pack(e, w);
    for (size_t k = 0; k < kWords; ++k) s.w[k].store(w[k], std::memory_order_relaxed);
    s.seq.store(2 * i + 2, std::memory_order_release);
    head_.store(i + 1, std::memory_order_release);
  }

  // Reader side: calls f(event) for every intact entry newer than since_ns, oldest first.
  template <typename F>
  void Read(uint64_t since_ns, F&& f) const {
    uint64_t head = head_.load(std::memory_order_acquire);
    uint64_t first = head > kDropRingSize ? head - kDropRingSize : 0;
    for (uint64_t i = first; i < head; ++i) {
      const Slot& s = slots_[i & (kDropRingSize - 1)];
      uint64_t before = s.seq.load(std::memory_order_acquire);
      uint64_t w[kWords];
      for (size_t k = 0; k < kWords; ++k) w[k] = s.w[k].load(std::memory_order_relaxed);
      std::atomic_thread_fence(std::memory_order_acquire);
      uint64_t after = s.seq.load(std::memory_order_relaxed);
      if (before != 2 * i + 2 || after != before) continue;  // overwritten meanwhile
      DropEvent e = Unpack(w);
      if (e.time_ns > since_ns) f(e);
    }
  }

 private:
  static constexpr size_t kWords = 5;
  struct Slot {
    std::atomic<uint64_t> seq{0};
    std::atomic<uint64_t> w[kWords] = {};
  };

  // The inner IPv4 header and, for TCP and UDP of a first fragment, the ports: read only as far
  // as `len` says.
  static void Parse(const uint8_t* f, uint32_t len, DropEvent* e) {
    if (f == nullptr || len < sizeof(EthHdr)) return;
    uint16_t type;
    std::memcpy(&type, f + 12, 2);
    e->ethertype = ntohs(type);
    if (e->ethertype == kEtherTypeArp && len >= sizeof(EthHdr) + sizeof(ArpPkt)) {
      const auto* arp = reinterpret_cast<const ArpPkt*>(f + sizeof(EthHdr));
      std::memcpy(&e->src, arp->spa, 4);
      std::memcpy(&e->dst, arp->tpa, 4);
      return;
    }
    if (e->ethertype != kEtherTypeIpv4 || len < sizeof(EthHdr) + sizeof(Ipv4Hdr)) return;
    Ipv4Hdr ip;
    std::memcpy(&ip, f + sizeof(EthHdr), sizeof(ip));
    e->proto = ip.protocol;
    e->src = ip.saddr;
    e->dst = ip.daddr;
    size_t ihl = (ip.ver_ihl & 0xf) * 4u;
    bool first = (ntohs(ip.frag_off) & kIpOffsetMask) == 0;
    if ((ip.protocol == kIpProtoTcp || ip.protocol == kIpProtoUdp) && first && ihl >= 20 &&
        len >= sizeof(EthHdr) + ihl + 4) {
      uint16_t p[2];
      std::memcpy(p, f + sizeof(EthHdr) + ihl, 4);
      e->sport = ntohs(p[0]);
      e->dport = ntohs(p[1]);
    }
  }

  static void Pack(const DropEvent& e, uint64_t* w) {
    w[0] = e.time_ns;
    w[1] = uint64_t{e.reason & 0xff} | uint64_t{static_cast<uint8_t>(e.from)} << 8 |
           uint64_t{e.proto} << 16 | uint64_t{e.ethertype} << 32;
    w[2] = uint64_t{e.id} | uint64_t{e.vni} << 32;
    w[3] = uint64_t{e.src} | uint64_t{e.dst} << 32;
    w[4] = uint64_t{e.sport} | uint64_t{e.dport} << 16 | uint64_t{e.count} << 32;
  }

  static DropEvent Unpack(const uint64_t* w) {
    DropEvent e;
    e.time_ns = w[0];
    e.reason = static_cast<uint32_t>(w[1] & 0xff);
    e.from = static_cast<DropFrom>((w[1] >> 8) & 0xff);
    e.proto = static_cast<uint8_t>((w[1] >> 16) & 0xff);
    e.ethertype = static_cast<uint16_t>((w[1] >> 32) & 0xffff);
    e.id = static_cast<uint32_t>(w[2]);
    e.vni = static_cast<uint32_t>(w[2] >> 32);
    e.src = static_cast<uint32_t>(w[3]);
    e.dst = static_cast<uint32_t>(w[3] >> 32);
    e.sport = static_cast<uint16_t>(w[4]);
    e.dport = static_cast<uint16_t>(w[4] >> 16);
    e.count = static_cast<uint32_t>(w[4] >> 32);
    return e;
  }

  std::atomic<uint64_t> head_{0};
  Slot slots_[kDropRingSize];
};

// A packet thread's recorder: the ring, when it records, its sampling window, and the frame at
// hand (set by DropSite). Owned by WorkerCounters; written by its thread, except `record_until`,
// which readers set.
struct DropRecorder {
  std::atomic<uint64_t> record_until{0};  // CLOCK_REALTIME ns; 0 = not recording
  std::atomic<uint64_t> sampled_out{0};   // drops not recorded because of the sampling limit
  uint64_t window = 0;                    // the millisecond being sampled
  uint32_t in_window = 0;
  DropSiteInfo site;
  DropRing ring;

  // Called for each counted drop once record_until was seen non-zero.
  void Record(uint32_t reason, uint64_t count) {
    uint64_t until = record_until.load(std::memory_order_relaxed);
    uint64_t now = RealtimeNs();
    if (now >= until) {
      // Nobody has read for a while: stop paying for the clock (unless a reader just re-armed).
      record_until.compare_exchange_strong(until, 0, std::memory_order_relaxed);
      return;
    }
    uint64_t ms = now / 1000000;
    if (ms != window) {
      window = ms;
      in_window = 0;
    }
    if (in_window >= kDropSamplesPerMs) {
      sampled_out.store(sampled_out.load(std::memory_order_relaxed) + count,
                        std::memory_order_relaxed);
      return;
    }
    ++in_window;
    ring.Record(reason, count, site, now);
  }
};

}  // namespace overlay

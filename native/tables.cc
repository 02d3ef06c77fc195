#include "tables.h"

#include <algorithm>

namespace overlay {

std::shared_ptr<const PortTable> BuildPortTable(const PortTable& base) {
  auto t = std::make_shared<PortTable>();
  std::vector<std::pair<Mac, Endpoint>> macs;
  std::vector<std::pair<uint32_t, Endpoint>> ips;
  std::vector<uint32_t> vnis;
  for (uint32_t i = 0; i < kMaxPorts; ++i) {
    t->ports[i] = base.ports[i];
    const Port& p = base.ports[i];
    if (!p.active) continue;
    Endpoint e{p.vni, p.mac, p.ip, 0, static_cast<uint16_t>(i)};
    macs.emplace_back(p.mac, e);
    ips.emplace_back(p.ip, e);
    vnis.push_back(p.vni);
  }
  t->by_mac = FlatMap<Mac, Endpoint>(macs);
  t->by_ip = FlatMap<uint32_t, Endpoint>(ips);
  t->vnis = VniSet(vnis);
  return t;
}

std::shared_ptr<const RemoteTable> BuildRemoteTable(const std::vector<Endpoint>& remotes) {
  auto t = std::make_shared<RemoteTable>();
  std::vector<std::pair<Mac, Endpoint>> macs;
  std::vector<std::pair<uint32_t, Endpoint>> ips;
  macs.reserve(remotes.size());
  ips.reserve(remotes.size());
  for (const Endpoint& e : remotes) {
    macs.emplace_back(e.mac, e);
    ips.emplace_back(e.ip, e);
  }
  t->by_mac = FlatMap<Mac, Endpoint>(macs);
  t->by_ip = FlatMap<uint32_t, Endpoint>(ips);
  return t;
}

void TokenBucket::Configure(uint64_t rate_bits_per_sec) {
  uint64_t bps = rate_bits_per_sec / 8;
  // Burst: 2 ms at the rate, but at least one 64 KB super-frame so TSO still works.
  int64_t b = std::max<int64_t>(static_cast<int64_t>(bps / 500), 65536);
  burst.store(b);
  tokens.store(b);
  last_ns.store(0);
  rate_Bps.store(bps);
}

uint64_t TokenBucket::Wait(uint64_t now_ns) {
  uint64_t rate = rate_Bps.load(std::memory_order_relaxed);
  if (rate == 0) return 0;
  uint64_t last = last_ns.load(std::memory_order_relaxed);
  if (last == 0) {
    last_ns.compare_exchange_strong(last, now_ns);
  } else if (now_ns > last && last_ns.compare_exchange_strong(last, now_ns)) {
    // One thread wins each refill interval; the cap is applied loosely (a race can overshoot
    // the burst by one refill, which only matters at microsecond scale).
    constexpr uint64_t kSecond = 1000000000ULL;
    uint64_t elapsed = std::min<uint64_t>(now_ns - last, kSecond);
    // elapsed * rate / kSecond, split so no product exceeds 64 bits at any rate up to
    // limits::kRateBitsPerSec (elapsed * rate overflows from about 147 Gbit/s).
    int64_t add =
        static_cast<int64_t>(rate / kSecond * elapsed + rate % kSecond * elapsed / kSecond);
    int64_t cur = tokens.fetch_add(add, std::memory_order_relaxed) + add;
    int64_t cap = burst.load(std::memory_order_relaxed);
    if (cur > cap) tokens.store(cap, std::memory_order_relaxed);
  }
  int64_t t = tokens.load(std::memory_order_relaxed);
  if (t > 0) return 0;
  return (static_cast<uint64_t>(-t) + 1) * 1000000000ULL / rate + 1;
}

}  // namespace overlay

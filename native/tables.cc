#include "tables.h"

#include <algorithm>

namespace overlay {
namespace {

template <typename K>
using Shard = FlatMap<K, Endpoint>;
template <typename K>
using Owned = std::unique_ptr<const Shard<K>>;

// Rebuilds each shard of one index that a changed key falls in: its other entries are copied
// from the shard as it was, each changed key is looked up again (`resolve`: its endpoint now,
// or nullptr when it is gone). `owned` (the set's shards) and `views` (the new version's) are
// updated; the replaced shards move to *retired.
template <typename K, typename Resolve>
void RebuildShards(const std::vector<K>& keys, Resolve resolve, std::vector<Owned<K>>* owned,
                   typename Shard<K>::View* views, std::vector<Owned<K>>* retired) {
  std::vector<std::pair<size_t, K>> changed;  // (shard, key), grouped by shard
  changed.reserve(keys.size());
  for (K k : keys) changed.emplace_back(RemoteTable::ShardOf(HashKey(k)), k);
  std::sort(changed.begin(), changed.end());
  changed.erase(std::unique(changed.begin(), changed.end()), changed.end());
  std::vector<std::pair<K, Endpoint>> items;
  for (auto first = changed.begin(); first != changed.end();) {
    size_t shard = first->first;
    auto last = first;
    while (last != changed.end() && last->first == shard) ++last;
    Owned<K>& old = (*owned)[shard];
    items.clear();
    if (old) {
      items.reserve(old->size() + static_cast<size_t>(last - first));
      old->ForEach([&](K k, const Endpoint& e) {
        if (!std::binary_search(first, last, std::pair<size_t, K>{shard, k}))
          items.emplace_back(k, e);
      });
      retired->push_back(std::move(old));
    }
    for (auto it = first; it != last; ++it) {
      if (const Endpoint* e = resolve(it->second)) items.emplace_back(it->second, *e);
    }
    if (!items.empty()) old = std::make_unique<const Shard<K>>(items);
    views[shard] = old ? old->view() : typename Shard<K>::View{};
    first = last;
  }
}

// Builds every shard of one index from scratch, from entries with distinct keys. `owned` and
// `views` start empty.
template <typename K>
void BuildShards(const std::vector<std::pair<K, Endpoint>>& entries, std::vector<Owned<K>>* owned,
                 typename Shard<K>::View* views) {
  // Counting sort by shard, so each shard is built from one contiguous run.
  std::vector<size_t> start(RemoteTable::kShards + 1, 0);
  std::vector<size_t> shard_of(entries.size());
  for (size_t i = 0; i < entries.size(); ++i) {
    shard_of[i] = RemoteTable::ShardOf(HashKey(entries[i].first));
    ++start[shard_of[i] + 1];
  }
  for (size_t s = 0; s < RemoteTable::kShards; ++s) start[s + 1] += start[s];
  std::vector<std::pair<K, Endpoint>> sorted(entries.size());
  std::vector<size_t> fill(start.begin(), start.end() - 1);
  for (size_t i = 0; i < entries.size(); ++i) sorted[fill[shard_of[i]]++] = entries[i];
  for (size_t s = 0; s < RemoteTable::kShards; ++s) {
    size_t n = start[s + 1] - start[s];
    if (n == 0) continue;
    (*owned)[s] = std::make_unique<const Shard<K>>(sorted.data() + start[s], n);
    views[s] = (*owned)[s]->view();
  }
}

}  // namespace

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

RemoteSet::RemoteSet()
    : mac_shards_(RemoteTable::kShards),
      ip_shards_(RemoteTable::kShards),
      current_(std::make_shared<RemoteTable>()) {}

void RemoteSet::Unclaim(uint32_t ip, Mac m) {
  if (ip == 0) return;
  auto [it, end] = claims_.equal_range(ip);
  for (; it != end; ++it) {
    if (it->second.mac == m) {
      claims_.erase(it);
      return;
    }
  }
}

void RemoteSet::Write(const Endpoint& e, std::vector<Mac>* macs, std::vector<uint32_t>* ips) {
  auto [it, added] = remotes_.try_emplace(e.mac, e);
  if (!added) {
    Unclaim(it->second.ip, e.mac);
    if (ips && it->second.ip != 0) ips->push_back(it->second.ip);
    it->second = e;
  }
  if (e.ip != 0) {
    claims_.emplace(e.ip, Claim{e.mac, ++stamp_});
    if (ips) ips->push_back(e.ip);
  }
  if (macs) macs->push_back(e.mac);
}

void RemoteSet::Erase(Mac m, std::vector<Mac>* macs, std::vector<uint32_t>* ips) {
  auto it = remotes_.find(m);
  if (it == remotes_.end()) return;
  if (it->second.ip != 0) {
    Unclaim(it->second.ip, m);
    ips->push_back(it->second.ip);
  }
  macs->push_back(m);
  remotes_.erase(it);
}

const Endpoint* RemoteSet::Owner(uint32_t ip) const {
  auto [it, end] = claims_.equal_range(ip);
  if (it == end) return nullptr;
  const Claim* last = &it->second;
  for (++it; it != end; ++it)
    if (it->second.stamp > last->stamp) last = &it->second;
  return &remotes_.at(last->mac);
}

std::shared_ptr<const RemoteTable> RemoteSet::Update(const std::vector<Endpoint>& add,
                                                     const std::vector<Mac>& remove,
                                                     RetiredShards* retired) {
  std::vector<Mac> macs;
  std::vector<uint32_t> ips;
  for (Mac m : remove) Erase(m, &macs, &ips);
  for (const Endpoint& e : add) Write(e, &macs, &ips);
  if (macs.empty() && ips.empty()) return current_;
  auto next = std::make_shared<RemoteTable>(*current_);
  RebuildShards(
      macs,
      [this](Mac m) -> const Endpoint* {
        auto it = remotes_.find(m);
        return it == remotes_.end() ? nullptr : &it->second;
      },
      &mac_shards_, next->by_mac, &retired->macs);
  RebuildShards(
      ips, [this](uint32_t ip) { return Owner(ip); }, &ip_shards_, next->by_ip, &retired->ips);
  current_ = next;
  return current_;
}

std::shared_ptr<const RemoteTable> RemoteSet::Replace(const std::vector<Endpoint>& all,
                                                      RetiredShards* retired) {
  for (auto& s : mac_shards_)
    if (s) retired->macs.push_back(std::move(s));
  for (auto& s : ip_shards_)
    if (s) retired->ips.push_back(std::move(s));
  remotes_.clear();
  claims_.clear();
  remotes_.reserve(all.size());
  claims_.reserve(all.size());
  for (const Endpoint& e : all) Write(e, nullptr, nullptr);

  std::vector<std::pair<Mac, Endpoint>> macs;
  macs.reserve(remotes_.size());
  for (const auto& [mac, e] : remotes_) macs.emplace_back(mac, e);
  // Equal keys are adjacent in an unordered_multimap: one entry per claimed address.
  std::vector<std::pair<uint32_t, Endpoint>> ips;
  ips.reserve(remotes_.size());
  for (auto it = claims_.begin(); it != claims_.end();) {
    uint32_t ip = it->first;
    const Claim* last = &it->second;
    for (++it; it != claims_.end() && it->first == ip; ++it)
      if (it->second.stamp > last->stamp) last = &it->second;
    ips.emplace_back(ip, remotes_.at(last->mac));
  }
  auto next = std::make_shared<RemoteTable>();
  BuildShards(macs, &mac_shards_, next->by_mac);
  BuildShards(ips, &ip_shards_, next->by_ip);
  current_ = next;
  return current_;
}

std::shared_ptr<const RemoteTable> BuildRemoteTable(const std::vector<Endpoint>& remotes) {
  auto set = std::make_shared<RemoteSet>();
  RetiredShards none;  // a new set has no shard to replace
  set->Replace(remotes, &none);
  // Aliasing: the table keeps the set, which owns its shards, alive.
  return std::shared_ptr<const RemoteTable>(set, set->current().get());
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

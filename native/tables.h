// The switch's tables, as packet threads read them.
//
// Thread-safety contract: a table version is immutable once published. The control side (one
// thread at a time, under Switch's mutex) builds a new version, sharing by pointer every part
// that did not change: the port, remote and policy tables as wholes (Tables), and within the
// remote table each shard an update did not touch (RemoteTable). It publishes the version with
// one atomic store and retires, through Qsbr, the old Tables and exactly the shards the new
// version replaced; a shard the two versions share is never retired with the old one. Packet
// threads read a version without locks, refcounts or allocation (shared_ptr is only ever copied
// or released on the control side), and reload the pointer at every batch.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "counters.h"
#include "packet.h"
#include "qsbr.h"
#include "switch_limits.h"

namespace overlay {

// The 64-bit mix of a key (MurmurHash3's finaliser, first half). FlatMap takes a slot from its
// low bits and RemoteTable a shard from its high bits, so the keys of one shard still spread
// over the shard's slots.
inline uint64_t HashKey(uint64_t k) {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdULL;
  k ^= k >> 33;
  return k;
}

// Open-addressing hash map from a non-zero integer key to a value, built once and then only
// read. Capacity is a power of two at least twice the entries, so probes stay short.
template <typename K, typename V>
class FlatMap {
  struct Slot {
    K key = 0;
    V value{};
  };

 public:
  // What a lookup needs, by value: where the map's slots are, and their mask. Valid while the
  // map lives. A default View is an empty map (one empty slot, so Find needs no emptiness test).
  class View {
   public:
    // `hash` is HashKey(key).
    const V* Find(K key, uint64_t hash) const {
      if (key == 0) return nullptr;
      for (size_t i = hash & mask_;; i = (i + 1) & mask_) {
        const Slot& s = slots_[i];
        if (s.key == key) return &s.value;
        if (s.key == 0) return nullptr;
      }
    }
    template <typename F>
    void ForEach(F&& f) const {
      for (size_t i = 0; i <= mask_; ++i)
        if (slots_[i].key != 0) f(slots_[i].key, slots_[i].value);
    }

   private:
    friend class FlatMap;
    static inline const Slot kNoSlot{};
    const Slot* slots_ = &kNoSlot;
    size_t mask_ = 0;
  };

  FlatMap() = default;
  explicit FlatMap(const std::vector<std::pair<K, V>>& items)
      : FlatMap(items.data(), items.size()) {}
  FlatMap(const std::pair<K, V>* items, size_t n) {
    size_t cap = 16;
    while (cap < n * 2) cap <<= 1;
    mask_ = cap - 1;
    slots_.assign(cap, Slot{});
    for (size_t i = 0; i < n; ++i) Insert(items[i].first, items[i].second);
  }

  const V* Find(K key) const {
    if (slots_.empty() || key == 0) return nullptr;
    for (size_t i = HashKey(key) & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.key == key) return &s.value;
      if (s.key == 0) return nullptr;
    }
  }

  template <typename F>
  void ForEach(F&& f) const {
    for (const Slot& s : slots_)
      if (s.key != 0) f(s.key, s.value);
  }

  size_t size() const { return size_; }

  View view() const {
    View v;
    if (!slots_.empty()) {
      v.slots_ = slots_.data();
      v.mask_ = mask_;
    }
    return v;
  }

 private:
  void Insert(K key, const V& v) {
    if (key == 0) return;
    for (size_t i = HashKey(key) & mask_;; i = (i + 1) & mask_) {
      Slot& s = slots_[i];
      if (s.key == key) {
        s.value = v;  // a later duplicate replaces an earlier one
        return;
      }
      if (s.key == 0) {
        s.key = key;
        s.value = v;
        ++size_;
        return;
      }
    }
  }
  std::vector<Slot> slots_;
  size_t mask_ = 0;
  size_t size_ = 0;
};

// A set of VNIs, built once and then only read. VNI 0 is a valid VNI but FlatMap reserves key 0
// for empty slots, so the set stores each VNI plus one; that shift stays inside this type.
class VniSet {
 public:
  VniSet() = default;
  explicit VniSet(const std::vector<uint32_t>& vnis) {
    std::vector<std::pair<uint32_t, uint8_t>> keys;
    keys.reserve(vnis.size());
    for (uint32_t v : vnis) keys.emplace_back(Key(v), 1);
    map_ = FlatMap<uint32_t, uint8_t>(keys);
  }

  bool Contains(uint32_t vni) const { return map_.Find(Key(vni)) != nullptr; }
  size_t size() const { return map_.size(); }

 private:
  // VNIs are 24 bits (switch_limits.h), so the key never wraps to 0.
  static uint32_t Key(uint32_t vni) { return vni + 1; }
  FlatMap<uint32_t, uint8_t> map_;
};

enum class PortKind : uint8_t { kPod, kHost };

// Per-port token bucket for the perf tier's upper bandwidth limit on what a pod sends. It shapes
// rather than polices: a frame already read always passes and may leave the bucket in debt, and
// while in debt the packet threads stop reading the pod's TAP. The pod's own stack then holds
// back (TCP small queues), so the rate holds without drops and without TCP collapsing. Lives
// outside the table versions (its state changes per packet); shared through atomics.
struct alignas(64) TokenBucket {
  std::atomic<int64_t> tokens{0};     // bytes; negative = debt
  std::atomic<uint64_t> last_ns{0};   // last refill
  std::atomic<uint64_t> rate_Bps{0};  // bytes per second; 0 = unlimited
  std::atomic<int64_t> burst{0};      // bytes

  // Nanoseconds until the port may be read again; 0 = now.
  uint64_t Wait(uint64_t now_ns);
  void Spend(uint64_t bytes) { tokens.fetch_sub(static_cast<int64_t>(bytes)); }
  void Configure(uint64_t rate_bits_per_sec);
};

struct Port {
  bool active = false;
  uint32_t generation = 0;  // bumps when a slot is reused, so stale epoll events are ignored
  uint32_t vni = 0;
  Mac mac = 0;
  uint32_t ip = 0;  // network order
  PortKind kind = PortKind::kPod;
  bool limited = false;  // the bucket has a rate
  uint16_t mtu = 0;
  int fds[kMaxWorkers] = {};  // one queue of the multi-queue TAP per packet thread
  char name[kMaxIfName + 1] = {};
};

// A MAC or IPv4 the switch can deliver to: a local port or a remote endpoint behind a VTEP.
struct Endpoint {
  uint32_t vni = 0;
  Mac mac = 0;
  uint32_t ip = 0;    // network order
  uint32_t vtep = 0;  // network order; 0 for a local port
  uint16_t port = 0;  // local port slot when vtep == 0
};

struct PortTable {
  Port ports[kMaxPorts];
  FlatMap<Mac, Endpoint> by_mac;  // local ports only
  FlatMap<uint32_t, Endpoint> by_ip;
  VniSet vnis;  // VNIs with at least one local port
};

// Remote endpoints by MAC and by IPv4 address (network order), each index split into kShards
// shards by the high bits of HashKey(key). A shard is an immutable FlatMap. A version of the
// table is two arrays of shard views (a view is where a shard's slots are and their mask), so
// an update copies the arrays (32 KB) and builds only the shards its entries fall in; every
// other shard is the previous version's, shared. A lookup costs one array index more than a
// single map, and no more loads: the view holds what the map's own header would. Who owns a
// shard, and when it is freed: RemoteSet below.
struct RemoteTable {
  static constexpr int kShardBits = 10;
  static constexpr size_t kShards = size_t{1} << kShardBits;
  using MacShard = FlatMap<Mac, Endpoint>;
  using IpShard = FlatMap<uint32_t, Endpoint>;

  static size_t ShardOf(uint64_t hash) { return static_cast<size_t>(hash >> (64 - kShardBits)); }

  const Endpoint* FindMac(Mac m) const {
    uint64_t h = HashKey(m);
    return by_mac[ShardOf(h)].Find(m, h);
  }
  const Endpoint* FindIp(uint32_t ip) const {
    uint64_t h = HashKey(ip);
    return by_ip[ShardOf(h)].Find(ip, h);
  }

  MacShard::View by_mac[kShards];  // default: every shard empty
  IpShard::View by_ip[kShards];
};

// The shards a RemoteSet call replaced: freed with this object, which the switch hands to Qsbr
// together with the Tables version the same publish retired.
struct RetiredShards {
  std::vector<std::unique_ptr<const RemoteTable::MacShard>> macs;
  std::vector<std::unique_ptr<const RemoteTable::IpShard>> ips;
  bool empty() const { return macs.empty() && ips.empty(); }
};

// The control side's remote endpoints, and the RemoteTable versions built from them. One writer
// at a time (Switch's mutex); packet threads never touch a RemoteSet, only the versions it
// returns.
//
// Ownership of shards: the set owns the shards of its latest version (current()). A call that
// replaces a shard moves it into the caller's RetiredShards, to be freed once no reader can
// hold a version that points at it; the shards the old and the new version share stay with the
// set. An old version's views may thus point at freed shards once its own grace period is over
// and nobody reads it; nothing follows them (a RemoteTable frees nothing). ~RemoteSet frees the
// latest version's shards, so it must outlive every reader of that version.
//
// The IPv4 index: every remote with a non-zero address claims it. When several claim one
// address, by_ip maps it to the one written last (updateRemotes: removals first, then `add` in
// order; replaceRemotes: later in the array wins); when that one goes or moves, to the one
// written last among those that remain.
class RemoteSet {
 public:
  RemoteSet();
  RemoteSet(const RemoteSet&) = delete;
  RemoteSet& operator=(const RemoteSet&) = delete;

  // Removes `remove` (unknown MACs are ignored), then adds or replaces `add` by MAC; returns the
  // new version (the current one when nothing changed) and moves the shards it replaced into
  // *retired. Costs what the entries' shards hold, not what the table holds.
  std::shared_ptr<const RemoteTable> Update(const std::vector<Endpoint>& add,
                                            const std::vector<Mac>& remove, RetiredShards* retired);
  // Replaces every endpoint with `all` (a later duplicate MAC replaces an earlier one); builds
  // every shard, and moves every shard of the previous version into *retired.
  std::shared_ptr<const RemoteTable> Replace(const std::vector<Endpoint>& all,
                                             RetiredShards* retired);

  const std::shared_ptr<const RemoteTable>& current() const { return current_; }
  size_t size() const { return remotes_.size(); }

 private:
  struct Claim {
    Mac mac;
    uint64_t stamp;  // when that remote was written: the latest claim wins
  };
  void Write(const Endpoint& e, std::vector<Mac>* macs, std::vector<uint32_t>* ips);
  void Erase(Mac m, std::vector<Mac>* macs, std::vector<uint32_t>* ips);
  void Unclaim(uint32_t ip, Mac m);
  const Endpoint* Owner(uint32_t ip) const;  // the remote by_ip maps ip to, or nullptr

  std::unordered_map<Mac, Endpoint> remotes_;
  std::unordered_multimap<uint32_t, Claim> claims_;  // non-zero IPv4 -> the remotes claiming it
  uint64_t stamp_ = 0;
  // The shards current_ views, by shard index; nullptr for an empty shard.
  std::vector<std::unique_ptr<const RemoteTable::MacShard>> mac_shards_;
  std::vector<std::unique_ptr<const RemoteTable::IpShard>> ip_shards_;
  std::shared_ptr<const RemoteTable> current_;
};

struct PeerInfo {
  bool checksummed = true;
};

struct PolicyTable {
  FlatMap<uint32_t, PeerInfo> peers;  // underlay IPv4 (network order) -> peer
  VniSet global_vnis;

  bool IsGlobal(uint32_t vni) const { return global_vnis.Contains(vni); }
  // The reach rule, the only copy of it: frames cross VNIs only to or from a global VNI.
  // Switch::Reaches exposes it to JavaScript.
  bool Allowed(uint32_t from, uint32_t to) const {
    return from == to || IsGlobal(from) || IsGlobal(to);
  }
};

// One published version of everything packet threads read.
struct Tables {
  std::shared_ptr<const PortTable> ports;
  std::shared_ptr<const RemoteTable> remotes;
  std::shared_ptr<const PolicyTable> policy;

  const Endpoint* FindMac(Mac m) const {
    if (const Endpoint* e = ports->by_mac.Find(m)) return e;
    return remotes->FindMac(m);
  }
  const Endpoint* FindIp(uint32_t ip) const {
    if (const Endpoint* e = ports->by_ip.Find(ip)) return e;
    return remotes->FindIp(ip);
  }
};

// Builders used by the control side.
std::shared_ptr<const PortTable> BuildPortTable(const PortTable& base);
// A stand-alone remote table (tests, fuzz targets, benchmarks): it owns its shards, through the
// RemoteSet it was built by, and frees them when the last pointer to it goes.
std::shared_ptr<const RemoteTable> BuildRemoteTable(const std::vector<Endpoint>& remotes);

}  // namespace overlay

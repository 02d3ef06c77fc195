// The switch's tables, as packet threads read them.
//
// Thread-safety contract: a table version is immutable once published. The control side builds
// a new version (copying what did not change by sharing its pointer), publishes it with one
// atomic store, and retires the old one through Qsbr. Packet threads read a version without
// locks, refcounts or allocation, and reload the pointer at every batch.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "counters.h"
#include "packet.h"
#include "qsbr.h"
#include "switch_limits.h"

namespace overlay {

// Open-addressing hash map from a non-zero integer key to a value, built once and then only
// read. Capacity is a power of two at least twice the entries, so probes stay short.
template <typename K, typename V>
class FlatMap {
 public:
  FlatMap() = default;
  explicit FlatMap(const std::vector<std::pair<K, V>>& items) {
    size_t cap = 16;
    while (cap < items.size() * 2) cap <<= 1;
    mask_ = cap - 1;
    slots_.assign(cap, Slot{});
    for (const auto& [k, v] : items) Insert(k, v);
  }

  const V* Find(K key) const {
    if (slots_.empty() || key == 0) return nullptr;
    for (size_t i = Hash(key) & mask_;; i = (i + 1) & mask_) {
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

 private:
  struct Slot {
    K key = 0;
    V value{};
  };
  static size_t Hash(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return static_cast<size_t>(k);
  }
  void Insert(K key, const V& v) {
    if (key == 0) return;
    for (size_t i = Hash(key) & mask_;; i = (i + 1) & mask_) {
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

struct RemoteTable {
  FlatMap<Mac, Endpoint> by_mac;
  FlatMap<uint32_t, Endpoint> by_ip;
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
    return remotes->by_mac.Find(m);
  }
  const Endpoint* FindIp(uint32_t ip) const {
    if (const Endpoint* e = ports->by_ip.Find(ip)) return e;
    return remotes->by_ip.Find(ip);
  }
};

// Builders used by the control side.
std::shared_ptr<const PortTable> BuildPortTable(const PortTable& base);
std::shared_ptr<const RemoteTable> BuildRemoteTable(const std::vector<Endpoint>& remotes);

}  // namespace overlay

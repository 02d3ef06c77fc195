// Counters. Each packet thread owns one WorkerCounters and is its only writer, so a bump is a
// relaxed load and store (no read-modify-write, no shared cache line); readers sum all workers.
#pragma once

#include <atomic>
#include <cstdint>

#include "switch_limits.h"

namespace overlay {

enum class Drop : uint32_t {
#define X(id, name, help) id,
#include "drop_reasons.def"
#undef X
  kCount
};
constexpr size_t kNumDrops = static_cast<size_t>(Drop::kCount);

inline constexpr const char* kDropNames[] = {
#define X(id, name, help) name,
#include "drop_reasons.def"
#undef X
};

using Counter = std::atomic<uint64_t>;

inline void Bump(Counter& c, uint64_t n = 1) {
  c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

struct PortCounters {
  Counter in_packets{0}, in_bytes{0}, out_packets{0}, out_bytes{0};
};

struct alignas(64) WorkerCounters {
  PortCounters ports[kMaxPorts];
  Counter drops[kNumDrops] = {};
  Counter rx_datagrams{0}, rx_bytes{0}, tx_datagrams{0}, tx_bytes{0}, tx_sends{0};
  Counter coalesced_writes{0};
  // Batches of work the thread found while polling after its last one, and after sleeping.
  Counter polled_batches{0}, woken_batches{0};

  void Count(Drop d, uint64_t n = 1) { Bump(drops[static_cast<size_t>(d)], n); }
};

}  // namespace overlay

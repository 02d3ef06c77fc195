// Counters. Each packet thread owns one WorkerCounters and is its only writer, so a bump is a
// relaxed load and store (no read-modify-write, no shared cache line); readers sum all workers.
// Count is the one place a drop is counted, and so the one place it is recorded as an event
// (droplog.h), when someone reads them.
#pragma once

#include <atomic>
#include <cstdint>

#include "droplog.h"
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
  DropRecorder recorder;

  void Count(Drop d, uint64_t n = 1) {
    Bump(drops[static_cast<size_t>(d)], n);
    if (recorder.record_until.load(std::memory_order_relaxed) != 0) [[unlikely]]
      recorder.Record(static_cast<uint32_t>(d), n);
  }
};

// The frame a packet thread is handling, for the drop events Count records meanwhile. Only
// while recording (one load, else nothing is stored); cleared when the scope ends, so drops
// counted later (a failed flush) name no frame rather than a wrong one.
class DropSite {
 public:
  DropSite(WorkerCounters& c, DropFrom from, uint32_t id, uint32_t vni,
           const uint8_t* frame = nullptr, size_t len = 0)
      : site_(c.recorder.site), on_(c.recorder.record_until.load(std::memory_order_relaxed) != 0) {
    if (on_) site_ = DropSiteInfo{frame, static_cast<uint32_t>(len), from, id, vni};
  }
  ~DropSite() {
    if (on_) site_ = DropSiteInfo{};
  }
  DropSite(const DropSite&) = delete;
  DropSite& operator=(const DropSite&) = delete;
  // Once the frame is known (after a header was read).
  void Frame(const uint8_t* frame, size_t len, uint32_t vni) {
    if (!on_) return;
    site_.frame = frame;
    site_.len = static_cast<uint32_t>(len);
    site_.vni = vni;
  }

 private:
  DropSiteInfo& site_;
  const bool on_;  // recording when the frame arrived; a frame that arrived before is not named
};

}  // namespace overlay

// Quiescent-state-based reclamation: how the control thread frees a table version that packet
// threads may still be reading, without readers ever taking a lock or touching a refcount.
//
// Contract: one writer (the control side, serialised by Switch's mutex), many readers (the
// packet threads). A reader calls Online() before it loads a table pointer and Offline()
// before it blocks; between the two it may hold pointers it loaded. The writer publishes a new
// pointer, then Retire()s the old object; the object is freed once every reader has been
// offline or has passed Online() after the retirement (a grace period).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <thread>
#include <vector>

#include "switch_limits.h"

namespace overlay {

class Qsbr {
 public:
  static constexpr uint64_t kOffline = ~uint64_t{0};

  void Online(int reader) { seen_[reader].v.store(epoch_.load()); }
  void Offline(int reader) { seen_[reader].v.store(kOffline); }

  // Writer side.
  void Retire(std::function<void()> free) {
    uint64_t e = epoch_.fetch_add(1) + 1;
    retired_.push_back({e, std::move(free)});
    Reclaim();
  }

  // Frees everything whose grace period has passed; returns how many remain.
  size_t Reclaim() {
    uint64_t min_seen = kOffline;
    for (auto& s : seen_) min_seen = std::min(min_seen, s.v.load());
    size_t kept = 0;
    for (auto& r : retired_) {
      if (r.epoch <= min_seen) {
        r.free();
      } else {
        retired_[kept++] = std::move(r);
      }
    }
    retired_.resize(kept);
    return kept;
  }

  // Waits until everything retired so far is freed (readers go offline at least every 100 ms).
  void Synchronize() {
    while (Reclaim() != 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }

 private:
  struct alignas(64) Seen {
    std::atomic<uint64_t> v{kOffline};
  };
  struct Retired {
    uint64_t epoch;
    std::function<void()> free;
  };
  std::atomic<uint64_t> epoch_{1};
  Seen seen_[kMaxWorkers];
  std::vector<Retired> retired_;
};

}  // namespace overlay

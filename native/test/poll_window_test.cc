// The poll window's rules (native/poll_window.h), case by case. Built and run by
// test/dataplane/poll-window.unit.test.ts; prints one line per case and exits non-zero on the
// first broken rule.
#include "../poll_window.h"

#include <cstdio>
#include <cstdlib>

using overlay::BatchKind;
using overlay::PollWindow;

namespace {

constexpr uint64_t kUs = 1000;
int failures = 0;

void Expect(bool ok, const char* rule, uint64_t got_ns) {
  std::printf("%s %s (window %llu ns)\n", ok ? "ok  " : "FAIL", rule,
              static_cast<unsigned long long>(got_ns));
  if (!ok) ++failures;
}

}  // namespace

int main() {
  {
    PollWindow w(100 * kUs);
    Expect(w.window_ns(BatchKind::kFromPod) == 0 && w.window_ns(BatchKind::kFromPeer) == 0,
           "a thread that has seen no gap does not poll", w.window_ns(BatchKind::kFromPod));
  }
  {
    PollWindow w(0);
    for (int i = 0; i < 50; ++i) w.Observe(BatchKind::kFromPod, 5 * kUs);
    Expect(w.window_ns(BatchKind::kFromPod) == 0, "a bound of 0 turns polling off",
           w.window_ns(BatchKind::kFromPod));
  }
  {
    PollWindow w(100 * kUs);
    for (int i = 0; i < 50; ++i) w.Observe(BatchKind::kFromPeer, 20 * kUs);
    Expect(w.window_ns(BatchKind::kFromPeer) == 42 * kUs,
           "short gaps of 20 us give a window of twice their average plus 2 us",
           w.window_ns(BatchKind::kFromPeer));
    Expect(w.window_ns(BatchKind::kFromPod) == 0,
           "gaps after one kind of batch do not open a window after the other",
           w.window_ns(BatchKind::kFromPod));
  }
  {
    PollWindow w(100 * kUs);
    for (int i = 0; i < 50; ++i) w.Observe(BatchKind::kFromPod, 90 * kUs);
    Expect(w.window_ns(BatchKind::kFromPod) == 100 * kUs, "the window never exceeds the bound",
           w.window_ns(BatchKind::kFromPod));
  }
  {
    // A client at 1,000 requests/s: each request's reply comes 150 us after it is sent, the
    // next request 850 us after the reply is delivered.
    PollWindow w(400 * kUs);
    for (int i = 0; i < 50; ++i) {
      w.Observe(BatchKind::kFromPod, 150 * kUs);
      w.Observe(BatchKind::kFromPeer, 850 * kUs);
    }
    Expect(w.window_ns(BatchKind::kFromPod) == 302 * kUs,
           "a client polls after sending, for its replies", w.window_ns(BatchKind::kFromPod));
    Expect(w.window_ns(BatchKind::kFromPeer) == 0,
           "a client does not poll after a delivered reply (its next request is far off)",
           w.window_ns(BatchKind::kFromPeer));
  }
  {
    PollWindow w(100 * kUs);
    for (int i = 0; i < 50; ++i) w.Observe(BatchKind::kFromPeer, 10 * kUs);
    int gaps = 0;
    while (w.window_ns(BatchKind::kFromPeer) > 0 && gaps < 100) {
      w.Observe(BatchKind::kFromPeer, 1000 * kUs);  // one ping a second, or a quiet pod
      ++gaps;
    }
    Expect(w.window_ns(BatchKind::kFromPeer) == 0 && gaps <= 16,
           "when the gaps grow past the bound it stops polling within 16 of them",
           w.window_ns(BatchKind::kFromPeer));
  }
  {
    PollWindow w(100 * kUs);
    bool open_after_long = false;
    for (int i = 0; i < 7; ++i) {
      w.Observe(BatchKind::kFromPod, 5 * kUs);  // one gap in 16 short
      for (int j = 0; j < 15; ++j) {
        w.Observe(BatchKind::kFromPod, 1000 * kUs);
        open_after_long = open_after_long || w.window_ns(BatchKind::kFromPod) > 0;
      }
    }
    Expect(!open_after_long, "a rare short gap (one in 16) keeps no window open past the next gap",
           w.window_ns(BatchKind::kFromPod));
  }
  std::printf("%d failure(s)\n", failures);
  return failures == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

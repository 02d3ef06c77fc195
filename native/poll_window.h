// Bounded adaptive polling: how long a packet thread keeps looking for work after a batch before
// it sleeps in epoll_wait.
//
// Why. A sleeping packet thread is woken by the kernel: on a VM, an interrupt to a vCPU that has
// usually halted, then a schedule-in, tens of microseconds each. A request/response exchange
// across nodes wakes the switch's threads three times (node 1's for the request, node 2's for
// it, node 1's again for the reply); the kernel's own vxlan path does its work in the sender's
// softirq and wakes only the receiving application. A thread that is still looking when the
// next event arrives skips its wake-up.
//
// Who carries what. A flow crosses one packet thread per node in both directions: the TAP sends
// a pod's frames to the queue the flow's frames were last written on (tun's flow table, by the
// symmetric flow hash), which is the thread whose underlay socket the flow's datagrams reach
// (SO_REUSEPORT hashes the outer tuple, and the outer source port follows the flow). So the
// reply to a request a thread sent comes back to that same thread, which is why a window after
// each batch catches it.
//
// The rule (after KVM's halt polling and the kernel's NAPI busy polling, fitted to
// request/response traffic):
//   - A thread polls only after a batch that did work, never after a wake-up with nothing to do
//     (the idle tick): a switch without traffic sleeps.
//   - A gap is the time from the end of a batch to the next event. Gaps up to `max` are short:
//     a window could have caught them. The thread keeps an average of its short gaps and the
//     share of its gaps that were short, both exponentially weighted (1/8 per gap).
//   - Gaps are kept apart by what the batch before them did (BatchKind), because the two kinds
//     are followed by different waits. After a batch that carried a pod's frames (a client's
//     request leaving for a peer, a server's reply) the next event is the answer, a network
//     round trip away, or nothing for a long while. After a batch that only delivered a peer's
//     datagrams to pods, the next event is the pod's answer (a server's compute time) or the
//     client's think time. A client at 1,000 requests/s has gaps of one round trip after each
//     send and of the rest of the millisecond after each delivered reply: one average of both
//     would poll after every delivered reply and find nothing, or, with a tight bound, catch no
//     reply at all.
//   - The window is twice the kind's short-gap average plus 2 us, at most `max`; none while
//     fewer than one of the kind's gaps in eight is short. So it fits the answers the traffic
//     actually gets, a stream of back-to-back batches polls only for a few microseconds, and
//     traffic whose gaps all exceed `max` (one ping a second) stops polling after a few gaps.
// Cost: at most one window of spinning per batch; nothing per packet. `max` = 0 turns it off.
//
// One PollWindow per packet thread, used only by it; no locks, no atomics.
#pragma once

#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>

namespace overlay {

// What a batch did, which decides what its next event is and how soon (see above).
enum class BatchKind : uint8_t {
  kFromPod,   // it read at least one pod's frame (and sent it on)
  kFromPeer,  // it only received from the underlay (and delivered to pods)
};

class PollWindow {
 public:
  explicit PollWindow(uint64_t max_ns) : max_ns_(max_ns) {}

  // How long to poll after a batch of `kind` that did work, ns; 0 = sleep at once.
  uint64_t window_ns(BatchKind kind) const { return gaps_[Index(kind)].window_ns; }

  // A gap of `gap_ns`, after a batch of `kind`, ended with work to do.
  void Observe(BatchKind kind, uint64_t gap_ns) {
    if (max_ns_ == 0) return;
    Gaps& g = gaps_[Index(kind)];
    if (gap_ns <= max_ns_) {
      g.short_avg_ns = g.seen_short ? g.short_avg_ns - g.short_avg_ns / 8 + gap_ns / 8 : gap_ns;
      g.seen_short = true;
      g.share += (kOne - g.share) / 8;
    } else {
      g.share -= g.share / 8;
    }
    g.window_ns = g.share >= kOne / 8 ? std::min(max_ns_, 2 * g.short_avg_ns + 2000) : 0;
  }

 private:
  static constexpr uint32_t kOne = 1 << 16;  // share is a fraction of kOne
  struct Gaps {
    uint64_t window_ns = 0;
    uint64_t short_avg_ns = 0;
    uint32_t share = 0;
    bool seen_short = false;
  };
  static constexpr int Index(BatchKind kind) { return kind == BatchKind::kFromPod ? 0 : 1; }

  const uint64_t max_ns_;
  Gaps gaps_[2];
};

// The kernel's epoll busy-poll parameters (EPIOCSPARAMS, Linux 6.9; <linux/eventpoll.h>, which
// Debian 12's headers predate). They make epoll_wait spin on a NIC's NAPI queue before it
// sleeps; they do nothing for a veth underlay, whose datagrams reach the socket through the
// backlog with no NAPI id. Probed and reported, not set: the window above covers every underlay,
// and the kernel's spin would run before every sleep, the idle tick's too.
struct EpollParams {
  uint32_t busy_poll_usecs;
  uint16_t busy_poll_budget;
  uint8_t prefer_busy_poll;
  uint8_t pad;
};
static_assert(sizeof(EpollParams) == 8, "struct epoll_params is 8 bytes");
constexpr unsigned long kEpiocGParams = _IOR(0x8A, 0x02, EpollParams);

// Whether this kernel has epoll busy-poll parameters (EPIOCGPARAMS answers on an epoll fd).
inline bool KernelHasEpollBusyPoll() {
  int fd = epoll_create1(EPOLL_CLOEXEC);
  if (fd < 0) return false;
  EpollParams p{};
  bool ok = ioctl(fd, kEpiocGParams, &p) == 0;
  close(fd);
  return ok;
}

}  // namespace overlay

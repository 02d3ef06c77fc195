// A packet thread. It owns one queue of every pod TAP, one receive socket on the underlay and
// a few send sockets, and runs the packet path top to bottom:
//
//   TAP queue readable -> FromPort():  validate (MAC/IP anti-spoofing, rate limit), answer ARP,
//                                      switch to a local port, or Encapsulator -> underlay
//   underlay readable  -> FromUnderlay(): peer check, VXLAN decap, VNI policy, answer ARP,
//                                      Coalescer -> local port
//
// It reads the switch's tables through Qsbr: online while it works, offline while it polls or
// sleeps in epoll_wait. After a batch it keeps looking for more for a short self-tuned window
// before it sleeps (poll_window.h). It never allocates, locks or calls into Node on this path.
#pragma once

#include <sys/epoll.h>
#include <sys/socket.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "coalesce.h"
#include "encap.h"
#include "poll_window.h"
#include "tables.h"

namespace overlay {

class Switch;

class Worker {
 public:
  Worker(Switch& sw, int index, int rx_socket, const std::vector<int>& tx_sockets, bool gso);
  ~Worker();

  std::string Start();
  void Stop();

  // Control side: watch or forget a TAP queue fd; `tag` packs the port slot and generation.
  void Watch(int fd, uint64_t tag);
  void Forget(int fd);

  static uint64_t Tag(uint32_t slot, uint32_t generation) {
    return (uint64_t{generation} << 32) | slot;
  }

 private:
  friend struct WorkerFuzzAccess;  // native/fuzz: drives the packet path with crafted input
  static constexpr uint64_t kWakeTag = ~uint64_t{0};
  static constexpr uint64_t kUnderlayTag = ~uint64_t{0} - 1;
  static constexpr int kTapBurst = 32;
  // TAP read buffers: super-frames bound for the underlay are sent from them in place, so a
  // buffer stays referenced until the encapsulator's next flush.
  static constexpr int kTapBuffers = 8;
  static constexpr size_t kTapBufSize = sizeof(VnetHdr) + kMaxFrame;
  static constexpr int kRxBatch = 16;
  static constexpr size_t kRxBufSize = 65536;

  void Run();
  // Shaping (see TokenBucket): stop reading a port's queue until `until_ns`, then resume.
  void Throttle(uint32_t slot, const Port& p, uint64_t until_ns);
  void Unthrottle(const Tables& t, uint64_t now_ns);
  // epoll timeout: the nearest resume time, or the idle tick.
  int TimeoutMs(uint64_t now_ns) const;
  void FromPort(uint32_t slot, uint32_t generation);
  // Returns true when the encapsulator now references `buf`.
  bool ForwardFrame(const Tables& t, uint32_t slot, const Port& p, uint8_t* buf, size_t n);
  Drop PortArp(const Tables& t, const Port& p, const uint8_t* frame, size_t len);
  // `fixed`: tables to use instead of the published ones (the fuzz harness drives it so).
  void FromUnderlay(const Tables* fixed = nullptr);
  void Decap(const Tables& t, const PeerInfo& peer, uint32_t vtep, const uint8_t* d, size_t len);
  void PeerArp(const Tables& t, uint32_t vni, uint32_t vtep, const uint8_t* frame, size_t len);
  // Builds an ARP reply to `req` on behalf of `owner` into out (42 bytes).
  static void BuildArpReply(const uint8_t* req, const Endpoint& owner, uint8_t* out);

  struct Throttled {
    uint32_t slot;
    uint32_t generation;
    int fd;
    uint64_t until_ns;
  };

  Switch& sw_;
  const int index_;
  Throttled throttled_[kMaxPorts];
  int nthrottled_ = 0;
  bool is_throttled_[kMaxPorts] = {};
  int epfd_ = -1;
  int wakefd_ = -1;
  int rx_ = -1;
  std::thread thread_;
  std::atomic<bool> running_{false};
  WorkerCounters& c_;
  Encapsulator encap_;
  Coalescer coalesce_;
  PollWindow poll_;
  std::unique_ptr<uint8_t[]> tap_mem_;
  uint8_t* tap_bufs_[kTapBuffers];
  int tap_used_ = 0;          // buffers [0, tap_used_) are referenced by queued datagrams
  uint64_t tap_flushes_ = 0;  // encap_.flushes() when tap_used_ was last brought up to date
  std::unique_ptr<uint8_t[]> rx_buf_;  // kRxBatch receive buffers
  mmsghdr rx_msgs_[kRxBatch];
  iovec rx_iov_[kRxBatch];
  sockaddr_in rx_addr_[kRxBatch];
  alignas(cmsghdr) uint8_t rx_cmsg_[kRxBatch][CMSG_SPACE(sizeof(int))];
};

}  // namespace overlay

// Encapsulation (pod -> underlay): VXLAN headers on inner frames, TCP super-frames cut into
// MSS-sized segments with their checksums finished, and the datagrams sent in batches.
//
// A super-frame's segments go to the kernel as one UDP GSO send (UDP_SEGMENT) of a scatter list:
// for each segment, its VXLAN and rewritten Ethernet/IPv4/TCP headers (built in the arena) and
// its payload, read in place from the TAP buffer (never copied here). The kernel builds the outer
// IPv4/UDP headers and checksums per datagram. Everything queued goes out in one sendmmsg per
// socket at Flush(); a referenced TAP buffer must stay unchanged until then (see flushes()).
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "counters.h"
#include "packet.h"

namespace overlay {

class Encapsulator {
 public:
  Encapsulator(const std::vector<int>& sockets, bool gso, uint16_t port, WorkerCounters& counters);

  // Queues one inner Ethernet frame, as read from a TAP (`h` describes its offloads), for the
  // VTEP `vtep` (network order) with `vni`. Returns the drop reason, or Drop::kCount when queued.
  // *referenced is set when the queued datagrams point into `frame` (it must then stay unchanged
  // until the next flush); a flush caused by this call happens before any such reference.
  Drop Encap(const VnetHdr& h, uint8_t* frame, size_t len, uint32_t vni, uint32_t vtep,
             bool* referenced);

  // Queues a frame that needs no offload work (e.g. an ARP reply).
  void EncapPlain(const uint8_t* frame, size_t len, uint32_t vni, uint32_t vtep);

  void Flush();
  // Counts flushes, so a caller can tell when its referenced buffers became free.
  uint64_t flushes() const { return flushes_; }

 private:
  static constexpr size_t kArenaSize = 512 << 10;
  static constexpr size_t kMaxMsgs = 256;
  static constexpr size_t kMaxIov = 4096;
  static constexpr size_t kMaxSegsPerSend = 64;
  static constexpr size_t kMaxSegsPerFrame = 1024;  // 2 iovecs each must fit kMaxIov
  static_assert(2 * kMaxSegsPerFrame <= kMaxIov);

  struct Msg {
    size_t iov_first;
    size_t iov_count;
    size_t len;
    uint16_t seg_size;  // 0 = a single datagram
    uint16_t segs;
    uint32_t vtep;
    uint8_t socket;
  };

  // Flushes first unless `bytes` of arena, `iovs` iovecs and `msgs` messages are free.
  void EnsureRoom(size_t bytes, size_t iovs, size_t msgs);
  uint8_t* Take(size_t bytes);
  void AddIov(const void* base, size_t len) { iovs_[niov_++] = {const_cast<void*>(base), len}; }
  void Push(size_t iov_first, size_t len, uint16_t seg_size, uint16_t segs, uint32_t vtep,
            uint8_t sock);
  Drop Segment(const VnetHdr& h, uint8_t* frame, size_t len, uint32_t vni, uint32_t vtep,
               uint8_t sock, bool* referenced);

  std::vector<int> sockets_;
  bool gso_;
  uint16_t port_;
  WorkerCounters& c_;
  std::unique_ptr<uint8_t[]> arena_;  // VXLAN + inner headers, and small frames, until Flush
  size_t used_ = 0;
  Msg msgs_[kMaxMsgs];
  size_t nmsgs_ = 0;
  iovec iovs_[kMaxIov];
  size_t niov_ = 0;
  uint64_t flushes_ = 0;
  // sendmmsg scratch
  mmsghdr mm_[kMaxMsgs];
  sockaddr_in addr_[kMaxMsgs];
  alignas(cmsghdr) uint8_t cmsg_[kMaxMsgs][CMSG_SPACE(sizeof(uint16_t))];
};

// Hash of the inner flow, for the outer source port (and so the send socket).
uint32_t FlowHash(const uint8_t* frame, size_t len);

}  // namespace overlay

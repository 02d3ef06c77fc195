// Encapsulation (pod -> underlay): VXLAN headers on inner frames, TCP super-frames cut into
// MSS-sized segments with their checksums finished, and the datagrams sent in batches.
//
// A super-frame's segments are laid out back to back, each behind its VXLAN header, and handed
// to the kernel as one UDP GSO send (UDP_SEGMENT): the kernel builds the outer IPv4/UDP headers
// and checksums per datagram. Everything queued goes out in one sendmmsg per socket at Flush().
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
  Drop Encap(const VnetHdr& h, uint8_t* frame, size_t len, uint32_t vni, uint32_t vtep);

  // Queues a frame that needs no offload work (e.g. an ARP reply).
  void EncapPlain(const uint8_t* frame, size_t len, uint32_t vni, uint32_t vtep);

  void Flush();

 private:
  static constexpr size_t kArenaSize = 1 << 20;
  static constexpr size_t kMaxMsgs = 256;
  static constexpr size_t kMaxSegsPerSend = 64;

  struct Msg {
    size_t offset;
    size_t len;
    uint16_t seg_size;  // 0 = a single datagram
    uint16_t segs;
    uint32_t vtep;
    uint8_t socket;
  };

  uint8_t* Reserve(size_t bytes);
  void Push(size_t offset, size_t len, uint16_t seg_size, uint16_t segs, uint32_t vtep,
            uint8_t sock);
  Drop Segment(const VnetHdr& h, uint8_t* frame, size_t len, uint32_t vni, uint32_t vtep,
               uint8_t sock);

  std::vector<int> sockets_;
  bool gso_;
  uint16_t port_;
  WorkerCounters& c_;
  std::unique_ptr<uint8_t[]> arena_;
  size_t used_ = 0;
  Msg msgs_[kMaxMsgs];
  size_t nmsgs_ = 0;
  // sendmmsg scratch
  mmsghdr mm_[kMaxMsgs];
  iovec iov_[kMaxMsgs];
  sockaddr_in addr_[kMaxMsgs];
  alignas(cmsghdr) uint8_t cmsg_[kMaxMsgs][CMSG_SPACE(sizeof(uint16_t))];
};

// Hash of the inner flow, for the outer source port (and so the send socket).
uint32_t FlowHash(const uint8_t* frame, size_t len);

}  // namespace overlay

// The underlay side: UDP sockets for VXLAN.
//
// Receive: one socket per packet thread on the VXLAN port (SO_REUSEPORT, so the kernel spreads
// flows over the threads), with UDP_GRO so a peer's GSO send arrives as one buffer.
// Send: per packet thread, a few sockets on ephemeral ports. The outer UDP source port carries
// the inner flow's entropy (RFC 7348 section 5), so each flow picks its socket by hash; one
// socket per flow also keeps a flow's datagrams in order.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace overlay {

constexpr int kSendSocketsPerWorker = 8;

struct UnderlaySpec {
  uint32_t ip = 0;  // network order
  uint16_t port = 4789;
  std::string netns;
  int workers = 1;
};

struct UnderlaySockets {
  std::vector<int> rx;               // one per worker
  std::vector<std::vector<int>> tx;  // [worker][kSendSocketsPerWorker]
  bool gso = false;                  // UDP_SEGMENT accepted
  bool gro = false;                  // UDP_GRO accepted
};

std::string OpenUnderlay(const UnderlaySpec& spec, UnderlaySockets* out);
void CloseUnderlay(UnderlaySockets* s);

}  // namespace overlay

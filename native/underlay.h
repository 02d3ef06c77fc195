// The underlay side: UDP sockets for VXLAN.
//
// Receive: one socket per packet thread on the VXLAN port (SO_REUSEPORT, so the kernel spreads
// flows over the threads), with UDP_GRO so a peer's GSO send arrives as one buffer.
// Send: a few sockets on ephemeral ports, shared by the packet threads. The outer UDP source
// port carries the inner flow's entropy (RFC 7348 section 5), so each flow picks its socket by
// hash; the choice depends on the flow alone (not on the thread, which follows the TAP queue the
// pod's kernel picked), so a flow keeps one outer 5-tuple and its order on the underlay.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace overlay {

constexpr int kSendSockets = 8;

struct UnderlaySpec {
  uint32_t ip = 0;  // network order
  uint16_t port = 4789;
  std::string netns;
  int workers = 1;
};

struct UnderlaySockets {
  std::vector<int> rx;  // one per worker
  std::vector<int> tx;  // kSendSockets, shared by every worker
  bool gso = false;     // UDP_SEGMENT accepted
  bool gro = false;     // UDP_GRO accepted
};

std::string OpenUnderlay(const UnderlaySpec& spec, UnderlaySockets* out);
void CloseUnderlay(UnderlaySockets* s);

}  // namespace overlay

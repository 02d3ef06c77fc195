// Probes: sockets for tests and diagnostics that put crafted bytes where a pod or a peer VTEP
// would, and read what the switch sends. A frame probe is an AF_PACKET socket bound to an
// interface (e.g. a pod's eth0: what it sends, the switch reads from the TAP); a datagram probe
// is a UDP socket on an address (e.g. a fake peer VTEP on the underlay). Not used by the
// packet path.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace overlay {

class Probe {
 public:
  // Frame probe on `ifname` in namespace `netns` ("" = the caller's).
  static std::string OpenFrames(const std::string& netns, const std::string& ifname, Probe* out);
  // Datagram probe bound to ip:port (network order ip, host order port) in `netns`.
  static std::string OpenDatagrams(const std::string& netns, uint32_t ip, uint16_t port,
                                   Probe* out);
  ~Probe();

  // Sends one frame (frame probe) or one datagram to ip:port (datagram probe).
  std::string Send(const uint8_t* data, size_t len, uint32_t ip = 0, uint16_t port = 0);
  // Waits up to timeout_ms for one frame or datagram; false on timeout. For datagrams,
  // *from_ip receives the sender's address.
  bool Receive(int timeout_ms, std::vector<uint8_t>* out, uint32_t* from_ip);
  void Close();

 private:
  int fd_ = -1;
  int ifindex_ = 0;
};

}  // namespace overlay

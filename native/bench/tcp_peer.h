// The far end of a TCP connection into a network namespace, through a real TAP (the switch's
// own OpenTap: IFF_VNET_HDR, offloads on). The benchmark writes the peer's data segments into
// the TAP the way the switch delivers decapsulated frames to a pod, and a real TCP socket in
// the namespace receives them; its ACKs come back out of the TAP and are read and counted.
//
// Addresses (the namespace side is configured by the caller, see bench/micro/datapath.mjs):
// the TAP is 10.77.0.1/24 with MAC 02:00:00:77:00:01 and listens on TCP port 5201; the peer is
// 10.77.0.2, MAC 02:00:00:77:00:02, which the namespace must know as a permanent neighbour.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "packet.h"
#include "tap.h"

namespace overlay::bench {

class TcpPeer {
 public:
  static constexpr Mac kDevMac = 0x020000770001, kPeerMac = 0x020000770002;
  static constexpr const char* kDevIp = "10.77.0.1";
  static constexpr const char* kPeerIp = "10.77.0.2";
  static constexpr uint16_t kDevPort = 5201, kPeerPort = 40000;
  static constexpr uint16_t kMss = 1398;  // MTU 1450 less IPv4, TCP and timestamps

  TcpPeer() = default;
  TcpPeer(const TcpPeer&) = delete;
  TcpPeer& operator=(const TcpPeer&) = delete;
  ~TcpPeer() { Close(); }

  // Creates the TAP `dev` in the namespace at `netns_path` and a listening socket there.
  std::string Open(const std::string& netns_path, const std::string& dev);
  // Handshake through the TAP (MSS, window scale, timestamps), then accept(). The namespace
  // must have its address and the peer's neighbour entry by now.
  std::string Connect();
  void Close();

  int tap_fd() const { return tap_.fds.empty() ? -1 : tap_.fds[0]; }

  // The data segments of one burst: `count` full segments of one flow, ACK set, PSH on the last,
  // correct checksums. Built once; Prepare() moves them to the next sequence numbers.
  void BuildBurst(size_t count);
  void Prepare();
  const std::vector<std::vector<uint8_t>>& burst() const { return burst_; }
  // The payload bytes of one burst, in order.
  const std::vector<uint8_t>& burst_payload() const { return payload_; }

  // After a burst was written: reads what the socket received (appended to *out when given)
  // and every frame the namespace sent back out of the TAP. Returns the bytes received.
  size_t Collect(std::vector<uint8_t>* out);

  uint64_t acks() const { return acks_; }                  // TCP segments read back
  uint64_t short_bursts() const { return short_bursts_; }  // bursts not received whole

 private:
  bool WriteFrame(const std::vector<uint8_t>& frame);
  std::vector<uint8_t> Segment(uint32_t seq, uint8_t flags, const uint8_t* data, size_t len,
                               const std::vector<uint8_t>& options);

  TapDevice tap_;
  int listener_ = -1;
  int conn_ = -1;
  uint32_t dev_ip_ = 0, peer_ip_ = 0;
  uint32_t isn_ = 0x11223344;  // ours
  uint32_t ack_ = 0;           // the namespace's ISN + 1
  uint32_t tsval_ = 1000, tsecr_ = 0;
  uint64_t delivered_ = 0;  // payload bytes the socket has received in order
  uint16_t ip_id_ = 1;
  std::vector<std::vector<uint8_t>> burst_;
  std::vector<uint8_t> payload_;
  std::vector<uint8_t> rx_;
  uint64_t acks_ = 0, short_bursts_ = 0, bursts_ = 0;
};

}  // namespace overlay::bench

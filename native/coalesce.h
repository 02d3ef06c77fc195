// Decapsulated frames into pod TAPs. A TAP write costs per call, not per byte (it runs the
// pod's whole receive path), so consecutive segments of one TCP flow are merged into one
// super-frame written with a GSO header, the way the kernel's GRO would merge them; so are
// consecutive equal-sized datagrams of one UDP flow (a USO super-frame, which the pod's kernel
// cuts again for a plain socket and hands whole to one with UDP_GRO). Frames
// stay in the receive buffers; a merged write is a writev over their payloads.
//
// Only frames whose checksums the kernel already verified (outer UDP checksum on) are merged
// or marked DATA_VALID; others go one by one with no checksum claim, so the pod verifies them.
#pragma once

#include <sys/uio.h>

#include <cstdint>

#include "counters.h"
#include "packet.h"

namespace overlay {

class Coalescer {
 public:
  // `merge_udp`: the kernel's TAP takes UDP GSO frames (Linux 6.2+, features().uso).
  explicit Coalescer(WorkerCounters& counters, bool merge_udp = false)
      : c_(counters), merge_udp_(merge_udp) {}

  // Delivers an inner Ethernet frame to the TAP `fd` of port `slot`. The frame must stay valid
  // until Flush().
  void Deliver(int fd, uint16_t slot, const uint8_t* frame, size_t len, bool verified);

  // Writes the pending merged frame, if any.
  void Flush();

 private:
  static constexpr size_t kMaxSegs = 64;

  struct Run {
    int fd = -1;
    uint16_t slot = 0;
    const uint8_t* first = nullptr;  // first segment's frame: headers are taken from it
    size_t hlen = 0;
    bool udp = false;  // UDP datagrams of one flow (written as USO), else TCP segments (TSO)
    size_t mss = 0;
    size_t payload = 0;
    uint32_t next_seq = 0;
    uint8_t last_flags = 0;
    size_t segs = 0;
    iovec iov[kMaxSegs + 2];
  };

  bool Append(int fd, const uint8_t* frame, size_t len);
  void Start(int fd, uint16_t slot, const uint8_t* frame, size_t len);
  void WriteSingle(int fd, uint16_t slot, const uint8_t* frame, size_t len, bool verified);

  WorkerCounters& c_;
  bool merge_udp_;
  Run run_;
  uint8_t hdr_[sizeof(VnetHdr) + 128];  // vnet header + Ethernet/IPv4/TCP headers (max 14+20+60)
};

}  // namespace overlay

// Fuzz target: bytes a VXLAN datagram brings from the underlay, into the switch's decapsulation:
// VXLAN and VNI checks, ARP from peers, delivery and TCP coalescing into pod TAPs.
//
// Input: [mode: 1][segment size: 2, little endian][payload].
//   mode bit 0 clear: the payload is one datagram from peer A, given to Worker::Decap in a
//     buffer of exactly its length (reads past the datagram are caught).
//   mode bit 0 set: the payload is sent over loopback to the worker's underlay socket (UDP_GRO
//     on) from peer A, peer B (unchecksummed) or a non-peer (bits 1-2), as a UDP GSO send of
//     the given segment size when that is non-zero and the kernel accepts it, so it arrives as
//     one GRO buffer; Worker::FromUnderlay then receives and splits it.
#include <netinet/udp.h>
#include <poll.h>
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>

#include "harness.h"

namespace {

using overlay::fuzz::Env;

// Sends `len` bytes from `fd` to the worker's socket, as one GSO send of `seg`-byte datagrams
// when seg is set; falls back to one plain datagram when the kernel refuses the segmentation.
bool SendDatagram(const Env& env, int fd, const uint8_t* d, size_t len, uint16_t seg) {
  iovec iov{const_cast<uint8_t*>(d), len};
  msghdr h{};
  h.msg_name = const_cast<sockaddr_in*>(&env.rx_addr);
  h.msg_namelen = sizeof(env.rx_addr);
  h.msg_iov = &iov;
  h.msg_iovlen = 1;
  alignas(cmsghdr) uint8_t control[CMSG_SPACE(sizeof(uint16_t))] = {};
  if (seg != 0 && seg < len) {
    h.msg_control = control;
    h.msg_controllen = sizeof(control);
    cmsghdr* cm = CMSG_FIRSTHDR(&h);
    cm->cmsg_level = SOL_UDP;
    cm->cmsg_type = UDP_SEGMENT;
    cm->cmsg_len = CMSG_LEN(sizeof(uint16_t));
    std::memcpy(CMSG_DATA(cm), &seg, sizeof(seg));
    if (sendmsg(fd, &h, 0) >= 0) return true;
    h.msg_control = nullptr;
    h.msg_controllen = 0;
  }
  return sendmsg(fd, &h, 0) >= 0;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace overlay;
  Env& env = fuzz::GetEnv();
  if (size < 3) return 0;
  uint8_t mode = data[0];
  uint16_t seg = static_cast<uint16_t>(data[1] | (data[2] << 8));
  const uint8_t* payload = data + 3;
  size_t len = size - 3;
  if (!(mode & 1)) {
    std::unique_ptr<uint8_t[]> buf(new uint8_t[len ? len : 1]);
    std::memcpy(buf.get(), payload, len);
    const PeerInfo* peer = env.tables.policy->peers.Find(env.peer_a);
    WorkerFuzzAccess::Decap(*env.worker, env.tables, *peer, env.peer_a, buf.get(), len);
    WorkerFuzzAccess::Flush(*env.worker);
    fuzz::Trace(env, "decap");
    return 0;
  }
  static const int* const kSenders[4] = {&env.from_peer_a, &env.from_peer_b, &env.from_stranger,
                                         &env.from_peer_a};
  int fd = *kSenders[(mode >> 1) & 3];
  if (SendDatagram(env, fd, payload, len, seg)) {
    pollfd p{env.rx, POLLIN, 0};
    poll(&p, 1, 100);
  }
  WorkerFuzzAccess::FromUnderlay(*env.worker, env.tables);
  fuzz::Trace(env, "underlay");
  return 0;
}

// The obvious simple versions the microbenchmarks hold the switch's data path against: what a
// first implementation of each job would write, correct (the benchmarks check that each
// produces the same bytes as the switch) but with no batching, offload or table tuning.
#pragma once

#include <netinet/in.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "packet.h"
#include "tables.h"

namespace overlay::bench {

// Remote endpoints keyed by the 6 MAC bytes as they are on the wire (a std::string of 6 bytes:
// short-string storage, no allocation per lookup), or by the MAC as a number in a std::map.
struct SimpleMacTables {
  explicit SimpleMacTables(const std::vector<Endpoint>& remotes);
  const Endpoint* FindString(const uint8_t* mac) const;
  const Endpoint* FindOrdered(const uint8_t* mac) const;

  std::unordered_map<std::string, Endpoint> by_string;
  std::map<Mac, Endpoint> ordered;
};

// Which checksum code the simple versions use: the RFC 1071 textbook loop, or the switch's
// own (checksum.h), to tell the cost of the checksum from the cost of the structure.
enum class SumCode { kTextbook, kProject };

// One inner frame to one VXLAN datagram: a fresh buffer, the VXLAN header written field by
// field, the frame copied behind it, a checksum the sender left to offload finished, one
// sendto(). Returns false when the frame is unusable or the send failed.
bool SimpleEncap(int sock, const sockaddr_in& to, const VnetHdr& h, const uint8_t* frame,
                 size_t len, uint32_t vni, SumCode code = SumCode::kTextbook);

// A TCP/IPv4 super-frame cut the simple way: for each segment a fresh buffer, VXLAN header,
// the headers and the segment's payload copied, IPv4 length, ID and checksum, TCP sequence
// number, flags (FIN and PSH on the last only, CWR on the first only) and checksum fixed, one
// sendto(). Returns the datagrams sent, or 0 when the frame is not a TCP/IPv4 super-frame.
size_t SimpleSegment(int sock, const sockaddr_in& to, const VnetHdr& h, const uint8_t* frame,
                     size_t len, uint32_t vni, SumCode code);

// One frame into a TAP with IFF_VNET_HDR: a virtio-net header claiming DATA_VALID (what the
// switch writes for a single verified frame) and the frame, one writev().
bool SimpleDeliver(int fd, const uint8_t* frame, size_t len);

}  // namespace overlay::bench

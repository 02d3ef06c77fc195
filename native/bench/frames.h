// Frames the microbenchmarks feed the data path: valid Ethernet/IPv4/TCP or UDP, built once
// from a description, with the checksums a pod's kernel would leave (full, or the pseudo-header
// sum only when it hands the rest to the TAP's checksum offload).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "packet.h"

namespace overlay::bench {

// TCP options of a Linux data segment: NOP, NOP, timestamps (12 bytes, so a 32-byte header).
constexpr size_t kTsOptLen = 12;
void TimestampOption(uint8_t* out, uint32_t tsval, uint32_t tsecr);

enum class L4Sum { kFull, kPseudoOnly };

struct TcpSpec {
  Mac src = 0, dst = 0;
  uint32_t saddr = 0, daddr = 0;  // network order
  uint16_t sport = 0, dport = 0;  // host order
  uint32_t seq = 0, ack = 0;      // host order
  uint8_t flags = kTcpAck;
  uint16_t window = 502;
  uint16_t ip_id = 0;
  std::vector<uint8_t> options;  // a multiple of 4 bytes
  L4Sum sum = L4Sum::kFull;
};

// Ethernet + IPv4 (DF, TTL 64) + TCP + payload.
std::vector<uint8_t> TcpFrame(const TcpSpec& s, const uint8_t* payload, size_t len);

// Ethernet + IPv4 + UDP + payload.
std::vector<uint8_t> UdpFrame(Mac src, Mac dst, uint32_t saddr, uint32_t daddr, uint16_t sport,
                              uint16_t dport, const uint8_t* payload, size_t len, L4Sum sum);

// Deterministic bytes that are not all alike (checksums and copies see varied data).
std::vector<uint8_t> Pattern(size_t len, uint32_t seed);

// RFC 1071 section 4.1, as printed there: 16-bit words into a 32-bit sum, folded at the end.
// What a simple implementation writes; the switch uses overlay::Checksum (checksum.h).
uint32_t TextbookSum(const void* data, size_t len, uint32_t sum = 0);
uint16_t TextbookFinish(uint32_t sum);  // fold and complement

// True when the IPv4 header checksum and the TCP or UDP checksum of `frame` are right.
bool ChecksumsValid(const uint8_t* frame, size_t len);

}  // namespace overlay::bench

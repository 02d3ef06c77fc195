// Internet checksum (RFC 1071) and the TCP/UDP pseudo-header (RFC 9293 section 3.1).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace overlay {

// Adds bytes to a 64-bit running one's-complement sum; fold it with Fold16 when done.
// The byte order of the sum is the wire's, so the folded result is stored as is.
inline uint64_t SumBytes(const void* data, size_t len, uint64_t sum = 0) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  // A 128-bit accumulator keeps every carry of 64-bit adds (add + adc), folded once at the end.
  unsigned __int128 acc = sum;
  while (len >= 32) {
    uint64_t a, b, c, d;
    std::memcpy(&a, p, 8);
    std::memcpy(&b, p + 8, 8);
    std::memcpy(&c, p + 16, 8);
    std::memcpy(&d, p + 24, 8);
    acc += a;
    acc += b;
    acc += c;
    acc += d;
    p += 32;
    len -= 32;
  }
  while (len >= 8) {
    uint64_t a;
    std::memcpy(&a, p, 8);
    acc += a;
    p += 8;
    len -= 8;
  }
  uint64_t tail = 0;
  std::memcpy(&tail, p, len);  // little-endian: the bytes keep their wire positions
  acc += tail;
  uint64_t lo = static_cast<uint64_t>(acc), hi = static_cast<uint64_t>(acc >> 64);
  uint64_t r = lo + hi;
  r += (r < lo);  // end-around carry
  return r;
}

inline uint16_t Fold16(uint64_t sum) {
  sum = (sum & 0xffffffff) + (sum >> 32);
  sum = (sum & 0xffffffff) + (sum >> 32);
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(sum);
}

// The finished checksum to store in a header field.
inline uint16_t Checksum(const void* data, size_t len, uint64_t sum = 0) {
  return static_cast<uint16_t>(~Fold16(SumBytes(data, len, sum)));
}

// Pseudo-header sum for IPv4 TCP/UDP: addresses in network order, length in host order.
inline uint64_t PseudoHeaderSum(uint32_t saddr, uint32_t daddr, uint8_t proto, uint32_t l4len) {
  uint16_t words[2] = {htons(proto), htons(static_cast<uint16_t>(l4len))};
  uint32_t w;
  std::memcpy(&w, words, 4);
  return uint64_t{saddr} + daddr + w;
}

}  // namespace overlay

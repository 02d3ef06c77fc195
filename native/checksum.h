// Internet checksum (RFC 1071) and the TCP/UDP pseudo-header (RFC 9293 section 3.1).
#pragma once

#include <arpa/inet.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace overlay {

// Adds bytes to a 64-bit running one's-complement sum; fold it with Fold16 when done.
// The byte order of the sum is the wire's, so the folded result is stored as is.
// Portable version, also the reference the vector version is fuzzed against.
inline uint64_t SumBytesScalar(const void* data, size_t len, uint64_t sum = 0) {
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

#if defined(__x86_64__)
// The same sum with AVX2: 32-bit words widened into 64-bit lanes, which cannot overflow before
// 2^32 adds, so no carry is tracked per word. The add/adc chain above retires about 8 bytes a
// cycle; this about four times that, and the sum of a 64 KB super-frame's segments is the one
// pass over the payload the send path makes itself.
__attribute__((target("avx2"))) inline uint64_t SumBytesAvx2(const void* data, size_t len,
                                                             uint64_t sum) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  const __m256i zero = _mm256_setzero_si256();
  __m256i acc0 = zero, acc1 = zero, acc2 = zero, acc3 = zero;
  while (len >= 64) {
    __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 32));
    acc0 = _mm256_add_epi64(acc0, _mm256_unpacklo_epi32(a, zero));
    acc1 = _mm256_add_epi64(acc1, _mm256_unpackhi_epi32(a, zero));
    acc2 = _mm256_add_epi64(acc2, _mm256_unpacklo_epi32(b, zero));
    acc3 = _mm256_add_epi64(acc3, _mm256_unpackhi_epi32(b, zero));
    p += 64;
    len -= 64;
  }
  __m256i acc = _mm256_add_epi64(_mm256_add_epi64(acc0, acc1), _mm256_add_epi64(acc2, acc3));
  alignas(32) uint64_t lanes[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), acc);
  unsigned __int128 total = sum;
  for (uint64_t l : lanes) total += l;
  uint64_t lo = static_cast<uint64_t>(total), hi = static_cast<uint64_t>(total >> 64);
  uint64_t r = lo + hi;
  r += (r < lo);
  return SumBytesScalar(p, len, r);
}

inline const bool kHaveAvx2 = __builtin_cpu_supports("avx2");
#endif

inline uint64_t SumBytes(const void* data, size_t len, uint64_t sum = 0) {
#if defined(__x86_64__)
  if (len >= 128 && kHaveAvx2) return SumBytesAvx2(data, len, sum);
#endif
  return SumBytesScalar(data, len, sum);
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

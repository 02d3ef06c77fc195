// The addon's absolute limits, in one place. The C++ code sizes its arrays and asserts its
// arguments with these; the addon exports them as limits() (see native.d.ts), and the
// TypeScript Switch validates every argument against that export before calling in. Relational
// rules (a port's MTU at most the underlay MTU - 50) are TypeScript policy and are not here.
#pragma once

#include <cstddef>
#include <cstdint>

namespace overlay {

// Packet threads per switch: Port keeps one TAP queue fd per thread and Qsbr one reader slot
// per thread, both in fixed arrays.
constexpr int kMaxWorkers = 16;
// Ports per switch at once (port ids 0..kMaxPorts-1): per-thread counters, token buckets and
// the port table are arrays of this size.
constexpr uint32_t kMaxPorts = 1024;
// A VXLAN network identifier is 24 bits (RFC 7348 section 5).
constexpr uint32_t kMaxVni = 0xffffff;
// Interface names: IFNAMSIZ (16) less the terminating NUL. A literal, because <net/if.h> and
// <linux/if.h> do not mix; tap.cc asserts it against IFNAMSIZ.
constexpr size_t kMaxIfName = 15;

// An inclusive range of numbers as JavaScript passes them. `name` is the key under which
// limits() exports it (null: a range private to one caller, e.g. the bench addon's); `integer`
// says whether fractions are refused.
struct Range {
  double min;
  double max;
  const char* name = nullptr;
  bool integer = true;

  bool Contains(double d) const { return d >= min && d <= max; }  // false for NaN
};

namespace limits {

inline constexpr Range kWorkers{1, kMaxWorkers, "workers"};
// The switch's VXLAN port, and a probe's (a probe has no use for an ephemeral port either).
inline constexpr Range kUdpPort{1, 65535, "udpPort"};
// Underlay and port MTUs: 576 is the datagram every IPv4 host must accept (RFC 791); 65535 is
// IPv4's total length field, and Port::mtu is 16 bits.
inline constexpr Range kMtu{576, 65535, "mtu"};
inline constexpr Range kVni{0, kMaxVni, "vni"};
inline constexpr Range kPortId{0, kMaxPorts - 1, "portId"};
// In bytes, as the kernel counts them.
inline constexpr Range kNameLength{1, kMaxIfName, "nameLength"};
// 1 Pbit/s: far above any link, exact as a double (< 2^53) and small enough that the token
// bucket's byte arithmetic stays within 64 bits. Fractions are truncated, not refused.
inline constexpr Range kRateBitsPerSec{0, 1e15, "rateBitsPerSec", false};

// A packet thread's adaptive poll window bound, microseconds (poll_window.h); 0 = off. 10 ms: far
// above any round trip worth spinning for.
inline constexpr Range kPollUs{0, 10000, "pollUs"};

// Everything limits() exports, in the order native.d.ts declares it.
inline constexpr const Range* kExported[] = {
    &kWorkers, &kUdpPort, &kMtu, &kVni, &kPortId, &kNameLength, &kRateBitsPerSec, &kPollUs};

}  // namespace limits
}  // namespace overlay

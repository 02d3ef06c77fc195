// Pod plumbing over rtnetlink (<linux/rtnetlink.h>, RFC 3549), without starting a process: what
// `ip link set lo up`, `ip addr replace`, `ip route replace default via`, `ip -j addr show` and
// `ip link add/del ... type ifb` did inside a pod's network namespace.
//
// Namespaces: a NETLINK_ROUTE socket belongs to the network namespace of the thread that opens
// it, and every request on it acts there. So each call opens its socket on a short-lived thread
// that joins the namespace (netns.h) and ends at once; the calling thread never changes
// namespace, and the requests run on it afterwards. Nothing here touches the caller's own
// namespace: an empty path is refused.
//
// Thread-safety: no shared state; every call opens and closes its own socket, so calls may run
// concurrently on any threads (the addon runs them on libuv's pool, off the JS thread). Each
// request waits at most kReplyTimeoutMs for the kernel's answer.
//
// Errors: "" on success, otherwise what was being done, in which namespace, and why (the errno's
// text and name, and the kernel's own extended-ack message where it gives one).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "packet.h"

namespace overlay::netlink {

constexpr int kReplyTimeoutMs = 5000;

// A pod's interface as CNI ADD leaves it. Addresses are in network byte order.
struct PodConfig {
  std::string netns;  // path, e.g. /run/netns/x or /proc/PID/ns/net
  std::string ifname;
  uint32_t ip = 0;
  uint8_t prefix_length = 0;  // 0..32
  uint32_t gateway = 0;       // the default route's next hop, on the interface's subnet
  uint32_t mtu = 0;           // 0: leave the interface's MTU as it is
};

// In `netns`: lo up; `ifname` up (with `mtu` when given); its address replaced (added, or its
// flags and lifetimes refreshed when present); the default route replaced by one via `gateway`
// on `ifname`. Idempotent: a repeated call changes nothing.
std::string ConfigurePod(const PodConfig& c);

struct Ipv4Prefix {
  uint32_t ip = 0;  // network order
  uint8_t length = 0;
};

struct LinkState {
  bool found = false;  // false: no interface of that name (not an error)
  Mac mac = 0;
  uint32_t mtu = 0;
  bool up = false;  // IFF_UP, administratively up (as `ip` shows "UP" among the flags)
  std::vector<Ipv4Prefix> ipv4;
};

// The interface `ifname` in `netns`: MAC, MTU, whether it is up, its IPv4 addresses.
std::string InspectLink(const std::string& netns, const std::string& ifname, LinkState* out);

// Creates a device of `kind` (e.g. "ifb") named `name` in `netns` unless one of that name exists,
// and brings it up.
std::string AddLink(const std::string& netns, const std::string& name, const std::string& kind);

// Deletes the device `name` in `netns`; *existed says whether there was one (absent is no error).
std::string DeleteLink(const std::string& netns, const std::string& name, bool* existed);

}  // namespace overlay::netlink

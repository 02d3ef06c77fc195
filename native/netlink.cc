// Pod plumbing over rtnetlink (see netlink.h): each call builds its messages, sends them on a
// NETLINK_ROUTE socket opened inside the pod's namespace, and turns the kernel's answer into an
// error message that says where, what and why. Past 400 lines on purpose: one file holds the
// message building, the request/answer loop and the namespace entry they all share; split, each
// part would re-declare the same socket and attribute helpers.
#include "netlink.h"

#include <arpa/inet.h>
#include <linux/if.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "netns.h"

namespace overlay::netlink {
namespace {

// "No such device (ENODEV)".
std::string ErrnoText(int err) {
  const char* name = strerrorname_np(err);
  return std::string(std::strerror(err)) + " (" + (name ? name : std::to_string(err)) + ")";
}

std::string Ipv4Text(uint32_t ip) {
  char buf[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &ip, buf, sizeof(buf));
  return buf;
}

// One request: the netlink header, a fixed body (ifinfomsg, ifaddrmsg or rtmsg), then
// attributes, each padded to 4 bytes (NLMSG_ALIGN, RTA_ALIGN). A request asks for an ack, so it
// ends in the kernel's verdict; a dump ends in NLMSG_DONE instead. (`dump` is a flag of its own:
// NLM_F_DUMP's bits are NLM_F_REPLACE's and NLM_F_EXCL's, so flags cannot tell.)
class Request {
 public:
  enum Kind { kRequest, kDump };

  Request(uint16_t type, uint16_t flags, Kind kind = kRequest) : buf_(NLMSG_HDRLEN, 0) {
    nlmsghdr h{};
    h.nlmsg_type = type;
    h.nlmsg_flags = NLM_F_REQUEST | flags | (kind == kDump ? NLM_F_DUMP : NLM_F_ACK);
    std::memcpy(buf_.data(), &h, sizeof(h));
  }

  template <typename T>
  void Body(const T& body) {
    Append(&body, sizeof(body), NLMSG_ALIGN(sizeof(body)));
  }

  void Attr(uint16_t type, const void* data, size_t len) {
    rtattr a{};
    a.rta_len = static_cast<uint16_t>(RTA_LENGTH(len));
    a.rta_type = type;
    Append(&a, sizeof(a), sizeof(a));
    Append(data, len, RTA_ALIGN(len));
  }
  void AttrU32(uint16_t type, uint32_t v) { Attr(type, &v, sizeof(v)); }
  void AttrString(uint16_t type, const std::string& s) { Attr(type, s.c_str(), s.size() + 1); }

  // A nested attribute: its members are the attributes added until EndNest(the returned mark).
  size_t BeginNest(uint16_t type) {
    size_t at = buf_.size();
    rtattr a{};
    a.rta_type = type;
    Append(&a, sizeof(a), sizeof(a));
    return at;
  }
  void EndNest(size_t at) {
    uint16_t len = static_cast<uint16_t>(buf_.size() - at);
    std::memcpy(buf_.data() + at + offsetof(rtattr, rta_len), &len, sizeof(len));
  }

  // The finished message, numbered `seq`.
  const std::vector<uint8_t>& Finish(uint32_t seq) {
    nlmsghdr* h = reinterpret_cast<nlmsghdr*>(buf_.data());
    h->nlmsg_len = static_cast<uint32_t>(buf_.size());
    h->nlmsg_seq = seq;
    return buf_;
  }

 private:
  void Append(const void* data, size_t len, size_t padded) {
    size_t at = buf_.size();
    buf_.resize(at + padded, 0);
    std::memcpy(buf_.data() + at, data, len);
  }

  std::vector<uint8_t> buf_;
};

// The kernel's answer to one request.
struct Answer {
  int error = 0;       // 0, or the errno of the failure (the kernel's verdict, or a syscall's)
  std::string detail;  // the kernel's extended-ack message, or what failed on this side
  std::vector<std::vector<uint8_t>> messages;  // every reply but the ack: one per message
};

// "what: No such device (ENODEV): <the kernel's own message>".
std::string Describe(const std::string& what, const Answer& a) {
  return what + ": " + ErrnoText(a.error) + (a.detail.empty() ? "" : ": " + a.detail);
}

// The NLMSGERR_ATTR_MSG text of an extended ack (NETLINK_EXT_ACK), or "".
std::string ExtAckMessage(const nlmsghdr* h) {
  if (!(h->nlmsg_flags & NLM_F_ACK_TLVS)) return "";
  const auto* e = static_cast<const nlmsgerr*>(NLMSG_DATA(h));
  // With NETLINK_CAP_ACK (NLM_F_CAPPED) the ack quotes only our header, else our whole request.
  size_t off = NLMSG_HDRLEN + sizeof(nlmsgerr);
  if (!(h->nlmsg_flags & NLM_F_CAPPED)) off += e->msg.nlmsg_len - NLMSG_HDRLEN;
  off = NLMSG_ALIGN(off);
  const auto* base = reinterpret_cast<const uint8_t*>(h);
  while (off + sizeof(nlattr) <= h->nlmsg_len) {
    const auto* a = reinterpret_cast<const nlattr*>(base + off);
    if (a->nla_len < sizeof(nlattr) || off + a->nla_len > h->nlmsg_len) break;
    if ((a->nla_type & NLA_TYPE_MASK) == NLMSGERR_ATTR_MSG && a->nla_len > sizeof(nlattr)) {
      const char* s = reinterpret_cast<const char*>(a) + NLA_HDRLEN;
      return std::string(s, strnlen(s, a->nla_len - NLA_HDRLEN));
    }
    off += NLA_ALIGN(a->nla_len);
  }
  return "";
}

// A NETLINK_ROUTE socket opened inside a network namespace, and so bound to it.
class Socket {
 public:
  Socket() = default;
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  ~Socket() {
    if (fd_ >= 0) close(fd_);
  }

  std::string Open(const std::string& netns) {
    if (netns.empty()) return "no network namespace given (the agent's own is never plumbed here)";
    std::string err = InNetns(netns, [this]() -> std::string {
      fd_ = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
      return fd_ < 0 ? "cannot open an rtnetlink socket: " + ErrnoText(errno) : "";
    });
    if (!err.empty()) return err;
    int one = 1;
    // Both are hints (Linux 4.12+ and 4.3+): without them errors carry only the errno.
    setsockopt(fd_, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));
    setsockopt(fd_, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
    timeval tv{kReplyTimeoutMs / 1000, (kReplyTimeoutMs % 1000) * 1000};
    if (setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0)
      return "cannot set the rtnetlink socket's timeout: " + ErrnoText(errno);
    return "";
  }

  // Sends `r` and gathers its answer: replies until the ack (or NLMSG_DONE, for a dump).
  Answer Call(Request& r) {
    Answer a;
    uint32_t seq = ++seq_;
    const std::vector<uint8_t>& msg = r.Finish(seq);
    sockaddr_nl kernel{};
    kernel.nl_family = AF_NETLINK;
    ssize_t sent;
    do {
      sent = sendto(fd_, msg.data(), msg.size(), 0, reinterpret_cast<sockaddr*>(&kernel),
                    sizeof(kernel));
    } while (sent < 0 && errno == EINTR);
    if (sent < 0) {
      a.error = errno;
      a.detail = "sending the request failed";
      return a;
    }
    std::vector<uint8_t> buf(64 * 1024);
    for (;;) {
      ssize_t n = recv(fd_, buf.data(), buf.size(), 0);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        a.error = errno == EAGAIN ? ETIMEDOUT : errno;
        a.detail = errno == EAGAIN ? "no answer from the kernel within " +
                                         std::to_string(kReplyTimeoutMs) + " ms"
                                   : "reading the answer failed";
        return a;
      }
      size_t left = static_cast<size_t>(n);
      for (auto* h = reinterpret_cast<nlmsghdr*>(buf.data()); NLMSG_OK(h, left);
           h = NLMSG_NEXT(h, left)) {
        if (h->nlmsg_seq != seq) continue;  // a late answer to an earlier request
        if (h->nlmsg_type == NLMSG_ERROR) {
          const auto* e = static_cast<const nlmsgerr*>(NLMSG_DATA(h));
          a.error = -e->error;
          if (a.error != 0) a.detail = ExtAckMessage(h);
          return a;
        }
        if (h->nlmsg_type == NLMSG_DONE) {
          int status = 0;
          if (h->nlmsg_len >= NLMSG_LENGTH(sizeof(int)))
            std::memcpy(&status, NLMSG_DATA(h), sizeof(status));
          a.error = -status;
          return a;
        }
        const auto* p = reinterpret_cast<const uint8_t*>(h);
        a.messages.emplace_back(p, p + h->nlmsg_len);
      }
    }
  }

 private:
  int fd_ = -1;
  uint32_t seq_ = 0;
};

// Walks the attributes of a reply whose fixed body is a T (ifinfomsg, ifaddrmsg).
template <typename T, typename Fn>
void ForEachAttr(const std::vector<uint8_t>& m, Fn fn) {
  size_t off = NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(T));
  while (off + sizeof(rtattr) <= m.size()) {
    const auto* a = reinterpret_cast<const rtattr*>(m.data() + off);
    if (a->rta_len < sizeof(rtattr) || off + a->rta_len > m.size()) return;
    fn(a->rta_type, static_cast<const uint8_t*>(RTA_DATA(a)), a->rta_len - RTA_LENGTH(0));
    off += RTA_ALIGN(a->rta_len);
  }
}

// RTM_GETLINK by name: index, flags, MTU and MAC of `name`. ENODEV when there is none.
Answer GetLink(Socket& s, const std::string& name, int* index, LinkState* out) {
  Request r(RTM_GETLINK, 0);
  ifinfomsg ifi{};
  ifi.ifi_family = AF_UNSPEC;
  r.Body(ifi);
  r.AttrString(IFLA_IFNAME, name);
  r.AttrU32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
  Answer a = s.Call(r);
  if (a.error != 0) return a;
  for (const auto& m : a.messages) {
    const auto* h = reinterpret_cast<const nlmsghdr*>(m.data());
    if (h->nlmsg_type != RTM_NEWLINK || m.size() < NLMSG_LENGTH(sizeof(ifinfomsg))) continue;
    const auto* info = static_cast<const ifinfomsg*>(NLMSG_DATA(h));
    *index = info->ifi_index;
    out->found = true;
    out->up = (info->ifi_flags & IFF_UP) != 0;
    ForEachAttr<ifinfomsg>(m, [&](uint16_t type, const uint8_t* data, size_t len) {
      if (type == IFLA_MTU && len >= 4) std::memcpy(&out->mtu, data, 4);
      if (type == IFLA_ADDRESS && len == 6) out->mac = LoadMac(data);
    });
    return a;
  }
  a.error = ENODEV;
  a.detail = "the kernel answered without the interface";
  return a;
}

// RTM_NEWLINK on an existing device, by index (or by name when index is 0): up, and the MTU
// when one is given.
Answer SetLinkUp(Socket& s, int index, const std::string& name, uint32_t mtu) {
  Request r(RTM_NEWLINK, 0);
  ifinfomsg ifi{};
  ifi.ifi_family = AF_UNSPEC;
  ifi.ifi_index = index;
  ifi.ifi_flags = IFF_UP;
  ifi.ifi_change = IFF_UP;
  r.Body(ifi);
  if (index == 0) r.AttrString(IFLA_IFNAME, name);
  if (mtu != 0) r.AttrU32(IFLA_MTU, mtu);
  return s.Call(r);
}

// `ip addr replace IP/LEN dev INDEX`.
Answer ReplaceAddress(Socket& s, int index, uint32_t ip, uint8_t prefix_length) {
  Request r(RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE);
  ifaddrmsg ifa{};
  ifa.ifa_family = AF_INET;
  ifa.ifa_prefixlen = prefix_length;
  ifa.ifa_scope = RT_SCOPE_UNIVERSE;
  ifa.ifa_index = static_cast<uint32_t>(index);
  r.Body(ifa);
  r.Attr(IFA_LOCAL, &ip, sizeof(ip));
  r.Attr(IFA_ADDRESS, &ip, sizeof(ip));
  return s.Call(r);
}

// `ip route replace default via GATEWAY dev INDEX`: main table, protocol boot, as `ip` does.
Answer ReplaceDefaultRoute(Socket& s, int index, uint32_t gateway) {
  Request r(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE);
  rtmsg rt{};
  rt.rtm_family = AF_INET;
  rt.rtm_dst_len = 0;
  rt.rtm_table = RT_TABLE_MAIN;
  rt.rtm_protocol = RTPROT_BOOT;
  rt.rtm_scope = RT_SCOPE_UNIVERSE;
  rt.rtm_type = RTN_UNICAST;
  r.Body(rt);
  r.Attr(RTA_GATEWAY, &gateway, sizeof(gateway));
  r.AttrU32(RTA_OIF, static_cast<uint32_t>(index));
  return s.Call(r);
}

// "network namespace X: " before every message: the caller may hold many pods.
std::string In(const std::string& netns, const std::string& msg) {
  return "network namespace " + netns + ": " + msg;
}

}  // namespace

std::string ConfigurePod(const PodConfig& c) {
  Socket s;
  std::string err = s.Open(c.netns);
  if (!err.empty()) return err;
  Answer a = SetLinkUp(s, 0, "lo", 0);
  if (a.error != 0) return In(c.netns, Describe("bring up lo", a));
  int index = 0;
  LinkState link;
  a = GetLink(s, c.ifname, &index, &link);
  if (a.error == ENODEV) return In(c.netns, "no interface " + c.ifname);
  if (a.error != 0) return In(c.netns, Describe("find interface " + c.ifname, a));
  if (!link.up || (c.mtu != 0 && link.mtu != c.mtu)) {
    a = SetLinkUp(s, index, c.ifname, c.mtu);
    std::string mtu = c.mtu != 0 ? " with MTU " + std::to_string(c.mtu) : "";
    if (a.error != 0) return In(c.netns, Describe("bring up " + c.ifname + mtu, a));
  }
  std::string addr = Ipv4Text(c.ip) + "/" + std::to_string(c.prefix_length);
  a = ReplaceAddress(s, index, c.ip, c.prefix_length);
  if (a.error != 0) return In(c.netns, Describe("set address " + addr + " on " + c.ifname, a));
  a = ReplaceDefaultRoute(s, index, c.gateway);
  if (a.error != 0) {
    return In(c.netns,
              Describe("set the default route via " + Ipv4Text(c.gateway) + " on " + c.ifname, a));
  }
  return "";
}

std::string InspectLink(const std::string& netns, const std::string& ifname, LinkState* out) {
  *out = LinkState{};
  Socket s;
  std::string err = s.Open(netns);
  if (!err.empty()) return err;
  int index = 0;
  Answer a = GetLink(s, ifname, &index, out);
  if (a.error == ENODEV) {
    *out = LinkState{};
    return "";
  }
  if (a.error != 0) return In(netns, Describe("read interface " + ifname, a));
  Request r(RTM_GETADDR, 0, Request::kDump);
  ifaddrmsg ifa{};
  ifa.ifa_family = AF_INET;
  r.Body(ifa);
  a = s.Call(r);
  if (a.error != 0) return In(netns, Describe("read the addresses of " + ifname, a));
  for (const auto& m : a.messages) {
    const auto* h = reinterpret_cast<const nlmsghdr*>(m.data());
    if (h->nlmsg_type != RTM_NEWADDR || m.size() < NLMSG_LENGTH(sizeof(ifaddrmsg))) continue;
    const auto* info = static_cast<const ifaddrmsg*>(NLMSG_DATA(h));
    if (info->ifa_family != AF_INET || static_cast<int>(info->ifa_index) != index) continue;
    // IFA_LOCAL is the interface's own address; IFA_ADDRESS differs from it only on
    // point-to-point links (the peer's), and is the one there is when IFA_LOCAL is absent.
    uint32_t local = 0, address = 0;
    bool has_local = false, has_address = false;
    ForEachAttr<ifaddrmsg>(m, [&](uint16_t type, const uint8_t* data, size_t len) {
      if (type == IFA_LOCAL && len == 4) std::memcpy(&local, data, 4), has_local = true;
      if (type == IFA_ADDRESS && len == 4) std::memcpy(&address, data, 4), has_address = true;
    });
    if (has_local || has_address)
      out->ipv4.push_back({has_local ? local : address, info->ifa_prefixlen});
  }
  return "";
}

std::string AddLink(const std::string& netns, const std::string& name, const std::string& kind) {
  Socket s;
  std::string err = s.Open(netns);
  if (!err.empty()) return err;
  Request r(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
  ifinfomsg ifi{};
  ifi.ifi_family = AF_UNSPEC;
  r.Body(ifi);
  r.AttrString(IFLA_IFNAME, name);
  size_t info = r.BeginNest(IFLA_LINKINFO);
  r.AttrString(IFLA_INFO_KIND, kind);
  r.EndNest(info);
  Answer a = s.Call(r);
  if (a.error != 0 && a.error != EEXIST)
    return In(netns, Describe("create " + kind + " device " + name, a));
  a = SetLinkUp(s, 0, name, 0);
  if (a.error != 0) return In(netns, Describe("bring up " + name, a));
  return "";
}

std::string DeleteLink(const std::string& netns, const std::string& name, bool* existed) {
  *existed = false;
  Socket s;
  std::string err = s.Open(netns);
  if (!err.empty()) return err;
  Request r(RTM_DELLINK, 0);
  ifinfomsg ifi{};
  ifi.ifi_family = AF_UNSPEC;
  r.Body(ifi);
  r.AttrString(IFLA_IFNAME, name);
  Answer a = s.Call(r);
  if (a.error == ENODEV) return "";
  if (a.error != 0) return In(netns, Describe("delete " + name, a));
  *existed = true;
  return "";
}

}  // namespace overlay::netlink

#include "probe.h"

#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "netns.h"

namespace overlay {

std::string Probe::OpenFrames(const std::string& netns, const std::string& ifname, Probe* out) {
  return InNetns(netns, [&]() -> std::string {
    unsigned idx = if_nametoindex(ifname.c_str());
    if (idx == 0) return "no interface " + ifname + ": " + std::strerror(errno);
    int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
    if (fd < 0) return std::string("AF_PACKET socket: ") + std::strerror(errno);
    sockaddr_ll a{};
    a.sll_family = AF_PACKET;
    a.sll_protocol = htons(ETH_P_ALL);
    a.sll_ifindex = static_cast<int>(idx);
    if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
      std::string err = std::string("bind AF_PACKET: ") + std::strerror(errno);
      close(fd);
      return err;
    }
    out->fd_ = fd;
    out->ifindex_ = static_cast<int>(idx);
    return "";
  });
}

std::string Probe::OpenDatagrams(const std::string& netns, uint32_t ip, uint16_t port, Probe* out) {
  return InNetns(netns, [&]() -> std::string {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return std::string("socket: ") + std::strerror(errno);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = ip;
    a.sin_port = htons(port);
    if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
      std::string err = std::string("bind: ") + std::strerror(errno);
      close(fd);
      return err;
    }
    out->fd_ = fd;
    return "";
  });
}

Probe::~Probe() {
  Close();
}

void Probe::Close() {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}

std::string Probe::Send(const uint8_t* data, size_t len, uint32_t ip, uint16_t port) {
  if (fd_ < 0) return "probe is closed";
  ssize_t r;
  if (ifindex_) {
    r = send(fd_, data, len, 0);
  } else {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = ip;
    a.sin_port = htons(port);
    r = sendto(fd_, data, len, 0, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  }
  if (r < 0) return std::string("send: ") + std::strerror(errno);
  return "";
}

bool Probe::Receive(int timeout_ms, std::vector<uint8_t>* out, uint32_t* from_ip) {
  if (fd_ < 0) return false;
  pollfd p{fd_, POLLIN, 0};
  while (true) {
    int r = poll(&p, 1, timeout_ms);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    out->resize(65536 + 64);
    sockaddr_storage from{};
    socklen_t fl = sizeof(from);
    ssize_t n = recvfrom(fd_, out->data(), out->size(), MSG_DONTWAIT,
                         reinterpret_cast<sockaddr*>(&from), &fl);
    if (n < 0) return false;
    if (ifindex_) {
      // Frames the probe itself sent come back as PACKET_OUTGOING: skip them.
      const auto* ll = reinterpret_cast<const sockaddr_ll*>(&from);
      if (ll->sll_pkttype == PACKET_OUTGOING) continue;
    } else if (from_ip) {
      *from_ip = reinterpret_cast<const sockaddr_in*>(&from)->sin_addr.s_addr;
    }
    out->resize(static_cast<size_t>(n));
    return true;
  }
}

}  // namespace overlay

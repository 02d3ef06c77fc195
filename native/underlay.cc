#include "underlay.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "netns.h"

namespace overlay {
namespace {

constexpr int kSocketBuffer = 8 << 20;

int UdpSocket(uint32_t ip, uint16_t port, bool reuseport, std::string* err) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *err = std::string("socket: ") + std::strerror(errno);
    return -1;
  }
  int one = 1;
  if (reuseport) setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
  // FORCE variants lift the sysctl caps for a privileged agent; fall back quietly otherwise.
  int size = kSocketBuffer;
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) != 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
  if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof(size)) != 0)
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = ip;
  a.sin_port = htons(port);
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    char buf[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &ip, buf, sizeof(buf));
    *err = std::string("bind ") + buf + ":" + std::to_string(port) + ": " + std::strerror(errno);
    close(fd);
    return -1;
  }
  return fd;
}

std::string OpenHere(const UnderlaySpec& spec, UnderlaySockets* out) {
  std::string err;
  out->gso = true;
  out->gro = true;
  for (int w = 0; w < spec.workers; ++w) {
    int fd = UdpSocket(spec.ip, spec.port, true, &err);
    if (fd < 0) return err;
    out->rx.push_back(fd);
    int one = 1;
    if (setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof(one)) != 0) out->gro = false;
  }
  for (int k = 0; k < kSendSockets; ++k) {
    int s = UdpSocket(spec.ip, 0, false, &err);
    if (s < 0) return err;
    out->tx.push_back(s);
  }
  // Probe UDP GSO: a segment size of 0 is accepted where the kernel knows UDP_SEGMENT, and
  // leaves sends unsegmented unless a cmsg asks.
  int zero = 0;
  if (setsockopt(out->tx[0], SOL_UDP, UDP_SEGMENT, &zero, sizeof(zero)) != 0) out->gso = false;
  return "";
}

}  // namespace

std::string OpenUnderlay(const UnderlaySpec& spec, UnderlaySockets* out) {
  std::string err = InNetns(spec.netns, [&] { return OpenHere(spec, out); });
  if (!err.empty()) CloseUnderlay(out);
  return err;
}

void CloseUnderlay(UnderlaySockets* s) {
  for (int fd : s->rx) close(fd);
  for (int fd : s->tx) close(fd);
  s->rx.clear();
  s->tx.clear();
}

}  // namespace overlay

#include "tap.h"

#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "netns.h"
#include "switch_limits.h"

namespace overlay {
namespace {

static_assert(kMaxIfName == IFNAMSIZ - 1, "switch_limits.h disagrees with the kernel's IFNAMSIZ");

// TUN_F_USO4/6 (Linux 6.2): missing from older <linux/if_tun.h>; the kernel takes them only
// together.
constexpr unsigned kTunUso4 = 0x20;
constexpr unsigned kTunUso6 = 0x40;

std::string Errno(const std::string& what) {
  return what + ": " + std::strerror(errno);
}

void CloseAll(std::vector<int>& fds) {
  for (int fd : fds) close(fd);
  fds.clear();
}

// Sets MAC, MTU and IFF_UP through an ioctl socket of the current namespace.
std::string ConfigureLink(const TapSpec& spec) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return Errno("socket");
  struct ifreq ifr;
  std::memset(&ifr, 0, sizeof(ifr));
  std::strncpy(ifr.ifr_name, spec.name.c_str(), IFNAMSIZ - 1);
  std::string err;
  ifr.ifr_hwaddr.sa_family = 1;  // ARPHRD_ETHER
  StoreMac(reinterpret_cast<uint8_t*>(ifr.ifr_hwaddr.sa_data), spec.mac);
  if (ioctl(s, SIOCSIFHWADDR, &ifr) != 0) err = Errno("set MAC of " + spec.name);
  ifr.ifr_mtu = spec.mtu;
  if (err.empty() && ioctl(s, SIOCSIFMTU, &ifr) != 0) err = Errno("set MTU of " + spec.name);
  if (err.empty() && ioctl(s, SIOCGIFFLAGS, &ifr) != 0) err = Errno("get flags of " + spec.name);
  ifr.ifr_flags |= IFF_UP;
  if (err.empty() && ioctl(s, SIOCSIFFLAGS, &ifr) != 0) err = Errno("bring up " + spec.name);
  close(s);
  return err;
}

std::string OpenHere(const TapSpec& spec, TapDevice* out) {
  if (spec.name.empty() || spec.name.size() > kMaxIfName) return "bad interface name";
  for (int q = 0; q < spec.queues; ++q) {
    int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
      CloseAll(out->fds);
      return Errno("open /dev/net/tun");
    }
    struct ifreq ifr;
    std::memset(&ifr, 0, sizeof(ifr));
    std::strncpy(ifr.ifr_name, spec.name.c_str(), IFNAMSIZ - 1);
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | IFF_MULTI_QUEUE;
    if (ioctl(fd, TUNSETIFF, &ifr) != 0) {
      std::string err = Errno("TUNSETIFF " + spec.name);
      close(fd);
      CloseAll(out->fds);
      return err;
    }
    out->fds.push_back(fd);
  }
  out->multi_queue = true;
  int first = out->fds[0];
  int hdr = sizeof(VnetHdr);
  if (ioctl(first, TUNSETVNETHDRSZ, &hdr) != 0) {
    std::string err = Errno("TUNSETVNETHDRSZ");
    CloseAll(out->fds);
    return err;
  }
  unsigned offloads = spec.offloads ? (TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO_ECN) : 0;
  if (spec.offloads && spec.uso) offloads |= kTunUso4 | kTunUso6;
  if (ioctl(first, TUNSETOFFLOAD, offloads) == 0) {
    out->tso = spec.offloads;
  } else if (ioctl(first, TUNSETOFFLOAD, 0) != 0) {
    std::string err = Errno("TUNSETOFFLOAD");
    CloseAll(out->fds);
    return err;
  }
  if (!SetTapPersistent(first, spec.persistent)) {
    std::string err = Errno("TUNSETPERSIST");
    CloseAll(out->fds);
    return err;
  }
  std::string err = ConfigureLink(spec);
  if (!err.empty()) {
    SetTapPersistent(first, false);  // a device we could not configure must not linger
    CloseAll(out->fds);
    return err;
  }
  return "";
}

}  // namespace

bool TapSupportsUso() {
  int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
  if (fd < 0) return false;
  struct ifreq ifr;
  std::memset(&ifr, 0, sizeof(ifr));
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;  // no name: the kernel picks tapN
  bool ok = ioctl(fd, TUNSETIFF, &ifr) == 0 &&
            ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | kTunUso4 | kTunUso6) == 0;
  close(fd);  // not persistent: the device goes with its only fd
  return ok;
}

bool SetTapPersistent(int fd, bool persistent) {
  return ioctl(fd, TUNSETPERSIST, persistent ? 1 : 0) == 0;
}

std::string OpenTap(const TapSpec& spec, TapDevice* out) {
  out->fds.clear();
  return InNetns(spec.netns, [&] { return OpenHere(spec, out); });
}

}  // namespace overlay

#include "tcp_peer.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "frames.h"
#include "netns.h"

namespace overlay::bench {
namespace {

constexpr size_t kL4 = sizeof(EthHdr) + sizeof(Ipv4Hdr);

std::string Errno(const std::string& what) {
  return what + ": " + std::strerror(errno);
}

uint32_t Ip(const char* s) {
  in_addr a{};
  inet_pton(AF_INET, s, &a);
  return a.s_addr;
}

uint64_t NowMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1000 + uint64_t(ts.tv_nsec) / 1000000;
}

// RFC 1624 eqn. 3: the checksum after a 32-bit field changed from `old` to `now` (both as
// stored, network order).
uint16_t Adjust(uint16_t check, uint32_t old, uint32_t now) {
  uint32_t sum = static_cast<uint16_t>(~check);
  sum += static_cast<uint16_t>(~old) + static_cast<uint16_t>(~(old >> 16));
  sum += (now & 0xffff) + (now >> 16);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

}  // namespace

std::string TcpPeer::Open(const std::string& netns_path, const std::string& dev) {
  dev_ip_ = Ip(kDevIp);
  peer_ip_ = Ip(kPeerIp);
  TapSpec spec;
  spec.name = dev;
  spec.netns = netns_path;
  spec.mac = kDevMac;
  spec.mtu = 1450;
  spec.queues = 1;
  spec.offloads = true;
  std::string err = OpenTap(spec, &tap_);
  if (!err.empty()) return "OpenTap: " + err;
  return InNetns(netns_path, [&]() -> std::string {
    listener_ = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (listener_ < 0) return Errno("socket");
    int one = 1;
    setsockopt(listener_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    // A receive buffer that holds several bursts, so the window never closes between them.
    int size = 8 << 20;
    if (setsockopt(listener_, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) != 0)
      setsockopt(listener_, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(kDevPort);
    if (bind(listener_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) return Errno("bind");
    if (listen(listener_, 4) != 0) return Errno("listen");
    return "";
  });
}

void TcpPeer::Close() {
  if (conn_ >= 0) close(conn_);
  if (listener_ >= 0) close(listener_);
  for (int fd : tap_.fds) close(fd);
  tap_.fds.clear();
  conn_ = listener_ = -1;
}

bool TcpPeer::WriteFrame(const std::vector<uint8_t>& frame) {
  VnetHdr h{};
  iovec iov[2] = {{&h, sizeof(h)}, {const_cast<uint8_t*>(frame.data()), frame.size()}};
  return writev(tap_fd(), iov, 2) == static_cast<ssize_t>(sizeof(h) + frame.size());
}

std::vector<uint8_t> TcpPeer::Segment(uint32_t seq, uint8_t flags, const uint8_t* data, size_t len,
                                      const std::vector<uint8_t>& options) {
  TcpSpec s;
  s.src = kPeerMac;
  s.dst = kDevMac;
  s.saddr = peer_ip_;
  s.daddr = dev_ip_;
  s.sport = kPeerPort;
  s.dport = kDevPort;
  s.seq = seq;
  s.ack = ack_;
  s.flags = flags;
  s.window = 0xffff;  // scaled by 128: the namespace may send all it wants (only ACKs)
  s.ip_id = ip_id_++;
  s.options = options;
  return TcpFrame(s, data, len);
}

std::string TcpPeer::Connect() {
  // SYN: MSS, NOP + window scale 7, NOP NOP + timestamps.
  std::vector<uint8_t> syn_opts = {2, 4, kMss >> 8, kMss & 0xff, 1, 3, 3, 7};
  syn_opts.resize(syn_opts.size() + kTsOptLen);
  TimestampOption(syn_opts.data() + 8, tsval_, 0);
  if (!WriteFrame(Segment(isn_, kTcpSyn, nullptr, 0, syn_opts))) return Errno("write SYN");

  // SYN-ACK, among whatever else the namespace sends (IPv6 router solicitations...).
  rx_.resize(sizeof(VnetHdr) + kMaxFrame);
  bool got = false;
  for (uint64_t deadline = NowMs() + 3000; !got && NowMs() < deadline;) {
    pollfd p{tap_fd(), POLLIN, 0};
    poll(&p, 1, 100);
    ssize_t n;
    while (!got && (n = read(tap_fd(), rx_.data(), rx_.size())) > 0) {
      const uint8_t* f = rx_.data() + sizeof(VnetHdr);
      size_t len = static_cast<size_t>(n) - sizeof(VnetHdr);
      if (len < kL4 + sizeof(TcpHdr)) continue;
      const auto* ip = reinterpret_cast<const Ipv4Hdr*>(f + sizeof(EthHdr));
      const auto* tcp = reinterpret_cast<const TcpHdr*>(f + kL4);
      if (reinterpret_cast<const EthHdr*>(f)->type != htons(kEtherTypeIpv4) ||
          ip->protocol != kIpProtoTcp || tcp->dest != htons(kPeerPort) ||
          tcp->flags != (kTcpSyn | kTcpAck))
        continue;
      ack_ = ntohl(tcp->seq) + 1;
      // The namespace's timestamp, to echo.
      size_t thl = (tcp->doff_res >> 4) * 4u;
      const uint8_t* o = f + kL4 + sizeof(TcpHdr);
      for (size_t i = 0; i + 1 < thl - sizeof(TcpHdr);) {
        if (o[i] == 0) break;
        if (o[i] == 1) {
          ++i;
          continue;
        }
        if (o[i] == 8 && o[i + 1] == 10 && i + 10 <= thl - sizeof(TcpHdr)) {
          uint32_t v;
          std::memcpy(&v, o + i + 2, 4);
          tsecr_ = ntohl(v);
        }
        if (o[i + 1] < 2) break;
        i += o[i + 1];
      }
      got = true;
    }
  }
  if (!got) return "no SYN-ACK from the namespace within 3 s";

  std::vector<uint8_t> ts(kTsOptLen);
  TimestampOption(ts.data(), tsval_, tsecr_);
  if (!WriteFrame(Segment(isn_ + 1, kTcpAck, nullptr, 0, ts))) return Errno("write ACK");
  pollfd p{listener_, POLLIN, 0};
  poll(&p, 1, 3000);
  conn_ = accept4(listener_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (conn_ < 0) return Errno("accept (handshake through the TAP)");
  return "";
}

void TcpPeer::BuildBurst(size_t count) {
  payload_ = Pattern(count * kMss, 44);
  std::vector<uint8_t> ts(kTsOptLen);
  TimestampOption(ts.data(), tsval_, tsecr_);
  burst_.clear();
  uint32_t seq = isn_ + 1 + static_cast<uint32_t>(delivered_);
  for (size_t i = 0; i < count; ++i) {
    uint8_t flags = i + 1 == count ? (kTcpAck | kTcpPsh) : kTcpAck;
    burst_.push_back(Segment(seq + static_cast<uint32_t>(i * kMss), flags,
                             payload_.data() + i * kMss, kMss, ts));
  }
}

void TcpPeer::Prepare() {
  uint32_t seq = isn_ + 1 + static_cast<uint32_t>(delivered_);
  for (size_t i = 0; i < burst_.size(); ++i) {
    auto* tcp = reinterpret_cast<TcpHdr*>(burst_[i].data() + kL4);
    uint32_t now = htonl(seq + static_cast<uint32_t>(i * kMss));
    tcp->check = Adjust(tcp->check, tcp->seq, now);
    tcp->seq = now;
  }
}

size_t TcpPeer::Collect(std::vector<uint8_t>* out) {
  const size_t want = burst_.size() * kMss;
  size_t got = 0;
  // The TAP write ran the namespace's receive path to the end, so the data is there already;
  // a short wait covers a burst that went the slow way (e.g. through the backlog).
  for (int tries = 0; tries < 3; ++tries) {
    ssize_t n;
    while ((n = recv(conn_, rx_.data(), rx_.size(), MSG_DONTWAIT)) > 0) {
      if (out) out->insert(out->end(), rx_.data(), rx_.data() + n);
      got += static_cast<size_t>(n);
    }
    if (got >= want) break;
    pollfd p{conn_, POLLIN, 0};
    poll(&p, 1, 2);
  }
  delivered_ += got;
  ++bursts_;
  if (got < want) ++short_bursts_;
  ssize_t n;
  while ((n = read(tap_fd(), rx_.data(), rx_.size())) > 0) {
    const uint8_t* f = rx_.data() + sizeof(VnetHdr);
    if (static_cast<size_t>(n) >= sizeof(VnetHdr) + kL4 + sizeof(TcpHdr) &&
        f[sizeof(EthHdr) + 9] == kIpProtoTcp)
      ++acks_;
  }
  return got;
}

}  // namespace overlay::bench

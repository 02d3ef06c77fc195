// The packet thread, top to bottom: FromPort (a pod's frame: anti-spoofing, ARP, rate limit,
// local delivery or encapsulation) and FromUnderlay (a peer's datagram: peer check, decapsulation,
// VNI policy, delivery). Past 400 lines on purpose: both directions share the thread's batch
// state and its quiescent points, and the packet path reads best in one file.
#include "worker.h"

#include <netinet/udp.h>
#include <pthread.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "forward.h"
#include "switch.h"

namespace overlay {
namespace {

uint64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1000000000ULL + uint64_t(ts.tv_nsec);
}

uint32_t LoadU32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

constexpr size_t kArpFrameLen = sizeof(EthHdr) + sizeof(ArpPkt);

}  // namespace

Worker::Worker(Switch& sw, int index, int rx_socket, const std::vector<int>& tx_sockets, bool gso)
    : sw_(sw),
      index_(index),
      rx_(rx_socket),
      c_(sw.counters(index)),
      encap_(tx_sockets, gso, sw.vxlan_port(), sw.counters(index)),
      coalesce_(sw.counters(index), sw.GetFeatures().uso),
      poll_(uint64_t{sw.poll_us()} * 1000),
      tap_mem_(new uint8_t[kTapBuffers * kTapBufSize]),
      rx_buf_(new uint8_t[kRxBatch * kRxBufSize]) {
  for (int i = 0; i < kTapBuffers; ++i) tap_bufs_[i] = tap_mem_.get() + size_t(i) * kTapBufSize;
}

Worker::~Worker() {
  Stop();
  if (epfd_ >= 0) close(epfd_);
  if (wakefd_ >= 0) close(wakefd_);
}

std::string Worker::Start() {
  epfd_ = epoll_create1(EPOLL_CLOEXEC);
  wakefd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (epfd_ < 0 || wakefd_ < 0) return std::string("epoll/eventfd: ") + std::strerror(errno);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kWakeTag;
  epoll_ctl(epfd_, EPOLL_CTL_ADD, wakefd_, &ev);
  ev.data.u64 = kUnderlayTag;
  if (epoll_ctl(epfd_, EPOLL_CTL_ADD, rx_, &ev) != 0)
    return std::string("epoll_ctl: ") + std::strerror(errno);
  running_ = true;
  thread_ = std::thread([this] { Run(); });
  return "";
}

void Worker::Stop() {
  if (!running_.exchange(false)) return;
  uint64_t one = 1;
  if (write(wakefd_, &one, sizeof(one)) < 0) {
    // The thread still wakes within its epoll timeout.
  }
  if (thread_.joinable()) thread_.join();
}

void Worker::Watch(int fd, uint64_t tag) {
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = tag;
  epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev);
}

void Worker::Forget(int fd) {
  epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr);
}

void Worker::Run() {
  // Named so that tests and the benchmark can find the packet threads' CPU time in
  // /proc/<pid>/task/*/comm (at most 15 characters).
  char name[16];
  std::snprintf(name, sizeof(name), "overlay-pkt%d", index_);
  pthread_setname_np(pthread_self(), name);
  epoll_event events[64];
  const bool polling = sw_.poll_us() > 0;
  uint64_t idle_since = 0;  // when the last batch that did work ended; 0: none since a sleep
  BatchKind last = BatchKind::kFromPeer;  // what that batch did
  while (running_.load(std::memory_order_relaxed)) {
    sw_.Leave(index_);
    // Polls (offline, so control calls never wait for it) for the window after work, then sleeps.
    int n = 0;
    uint64_t window = idle_since ? poll_.window_ns(last) : 0;
    if (window > 0) {
      uint64_t until = idle_since + window;
      // Each empty look yields the CPU: a thread that polls must never keep the one that would
      // produce its next event (the pod, the peer switch's thread) waiting for a time slice.
      while ((n = epoll_wait(epfd_, events, 64, 0)) <= 0 && NowNs() < until) sched_yield();
      if (n > 0) Bump(c_.polled_batches);
    }
    if (n <= 0) {
      n = epoll_wait(epfd_, events, 64, TimeoutMs(NowNs()));
      if (n > 0) Bump(c_.woken_batches);
    }
    if (n > 0 && idle_since) poll_.Observe(last, NowNs() - idle_since);
    const Tables* t = sw_.Enter(index_);
    if (nthrottled_) Unthrottle(*t, NowNs());
    BatchKind kind = BatchKind::kFromPeer;
    for (int i = 0; i < n; ++i) {
      uint64_t tag = events[i].data.u64;
      if (tag == kWakeTag) {
        uint64_t v;
        while (read(wakefd_, &v, sizeof(v)) > 0) {
        }
      } else if (tag == kUnderlayTag) {
        FromUnderlay();
      } else {
        uint32_t slot = static_cast<uint32_t>(tag & 0xffffffff);
        uint32_t gen = static_cast<uint32_t>(tag >> 32);
        if (slot < kMaxPorts) FromPort(slot, gen);
        kind = BatchKind::kFromPod;
      }
    }
    encap_.Flush();
    coalesce_.Flush();
    idle_since = polling && n > 0 ? NowNs() : 0;
    last = kind;
  }
  sw_.Leave(index_);
}

// ---- From a pod (TAP) ----------------------------------------------------------------------

void Worker::Throttle(uint32_t slot, const Port& p, uint64_t until_ns) {
  if (is_throttled_[slot]) return;
  epoll_event ev{};
  ev.events = 0;  // stays registered, reports nothing
  ev.data.u64 = Tag(slot, p.generation);
  epoll_ctl(epfd_, EPOLL_CTL_MOD, p.fds[index_], &ev);
  throttled_[nthrottled_++] = Throttled{slot, p.generation, p.fds[index_], until_ns};
  is_throttled_[slot] = true;
}

void Worker::Unthrottle(const Tables& t, uint64_t now_ns) {
  int kept = 0;
  for (int i = 0; i < nthrottled_; ++i) {
    Throttled& th = throttled_[i];
    const Port& p = t.ports->ports[th.slot];
    bool same = p.active && p.generation == th.generation;
    // Waits again on the bucket: a rate raised or lifted meanwhile resumes the port early.
    if (same && th.until_ns > now_ns && sw_.bucket(th.slot).Wait(now_ns) > 0) {
      throttled_[kept++] = th;
      continue;
    }
    is_throttled_[th.slot] = false;
    if (!same) continue;  // removed (or the slot reused) meanwhile: its fd is not ours to touch
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = Tag(th.slot, th.generation);
    epoll_ctl(epfd_, EPOLL_CTL_MOD, th.fd, &ev);
  }
  nthrottled_ = kept;
}

int Worker::TimeoutMs(uint64_t now_ns) const {
  int ms = 100;  // idle tick: packet threads go quiescent at least this often
  for (int i = 0; i < nthrottled_; ++i) {
    uint64_t until = throttled_[i].until_ns;
    int wait = until <= now_ns ? 0 : static_cast<int>((until - now_ns + 999999) / 1000000);
    ms = std::min(ms, wait);
  }
  return ms;
}

// Tables are looked up again after every read: a frame the pod sent after a control call
// returned is switched under that call's tables (a VNI change isolates from the next frame on).
// Passing Enter() is safe here: nothing held across it points into a table version.
void Worker::FromPort(uint32_t slot, uint32_t gen) {
  for (int i = 0; i < kTapBurst; ++i) {
    const Tables* t = sw_.Enter(index_);
    const Port* p = &t->ports->ports[slot];
    if (!p->active || p->generation != gen) return;  // removed since the event was queued
    int fd = p->fds[index_];
    if (p->limited) {
      uint64_t now = NowNs();
      uint64_t wait = sw_.bucket(slot).Wait(now);
      if (wait > 0) {
        Throttle(slot, *p, now + wait);
        return;
      }
    }
    if (encap_.flushes() != tap_flushes_) {
      tap_used_ = 0;
      tap_flushes_ = encap_.flushes();
    }
    if (tap_used_ == kTapBuffers) {
      encap_.Flush();
      tap_used_ = 0;
      tap_flushes_ = encap_.flushes();
    }
    int cur = tap_used_;
    uint8_t* buf = tap_bufs_[cur];
    ssize_t r = read(fd, buf, kTapBufSize);
    if (r < 0) {
      if (errno == EAGAIN || errno == EINTR) return;
      // The device is gone (its namespace was deleted): stop watching it here; the control
      // side removes the port.
      Forget(fd);
      DropSite site(c_, DropFrom::kPort, slot, p->vni);
      c_.Count(Drop::kTapWrite);
      return;
    }
    t = sw_.Enter(index_);
    p = &t->ports->ports[slot];
    if (!p->active || p->generation != gen) return;
    bool referenced = ForwardFrame(*t, slot, *p, buf, static_cast<size_t>(r));
    if (encap_.flushes() != tap_flushes_) {
      // A flush ran before this frame was referenced: only this buffer is in use now.
      tap_flushes_ = encap_.flushes();
      tap_used_ = 0;
      if (referenced) {
        std::swap(tap_bufs_[0], tap_bufs_[cur]);
        tap_used_ = 1;
      }
    } else if (referenced) {
      ++tap_used_;
    }
  }
}

bool Worker::ForwardFrame(const Tables& t, uint32_t slot, const Port& p, uint8_t* buf, size_t n) {
  PortCounters& pc = c_.ports[slot];
  DropSite site(c_, DropFrom::kPort, slot, p.vni);
  if (n < sizeof(VnetHdr) + sizeof(EthHdr)) {
    Bump(pc.in_packets);
    c_.Count(Drop::kFrameShort);
    return false;
  }
  VnetHdr h;
  std::memcpy(&h, buf, sizeof(h));
  uint8_t* frame = buf + sizeof(VnetHdr);
  size_t len = n - sizeof(VnetHdr);
  site.Frame(frame, len, p.vni);

  // Wire accounting: a super-frame counts as the segments it becomes.
  uint64_t segs = 1, wire_bytes = len;
  if (h.gso_type != VIRTIO_NET_HDR_GSO_NONE && h.gso_size && h.hdr_len && h.hdr_len < len) {
    segs = (len - h.hdr_len + h.gso_size - 1) / h.gso_size;
    wire_bytes = len + (segs - 1) * h.hdr_len;
  }
  Bump(pc.in_packets, segs);
  Bump(pc.in_bytes, wire_bytes);
  if (p.limited) sw_.bucket(slot).Spend(wire_bytes);

  const Endpoint* dst = nullptr;
  bool arp = false;
  Drop drop = DecidePortFrame(t, slot, p, h, frame, len, &dst, &arp);
  if (arp) drop = PortArp(t, p, frame, len);
  if (drop != Drop::kCount) {
    c_.Count(drop, segs);
    return false;
  }
  if (dst == nullptr) return false;  // ARP, answered

  if (dst->vtep == 0) {
    // Same node: hand the frame and its offload header to the other TAP as they are.
    const Port& out = t.ports->ports[dst->port];
    if (h.gso_type == VIRTIO_NET_HDR_GSO_NONE && len - sizeof(EthHdr) > out.mtu) {
      c_.Count(Drop::kOversize);
      return false;
    }
    if (write(out.fds[index_], buf, n) < 0) {
      c_.Count(Drop::kTapWrite, segs);
      return false;
    }
    Bump(c_.ports[dst->port].out_packets, segs);
    Bump(c_.ports[dst->port].out_bytes, wire_bytes);
    return false;
  }
  // The frame carries its sender's VNI; the receiving switch checks it against the receiver's.
  bool referenced = false;
  drop = encap_.Encap(h, frame, len, p.vni, dst->vtep, &referenced);
  if (drop != Drop::kCount) c_.Count(drop, segs);
  return referenced;
}

// ARP from a port, decided by DecidePortArp (forward.h) and answered here.
Drop Worker::PortArp(const Tables& t, const Port& p, const uint8_t* frame, size_t len) {
  const Endpoint* owner = nullptr;
  Drop drop = DecidePortArp(t, p, frame, len, &owner);
  if (drop != Drop::kCount) return drop;
  uint8_t reply[sizeof(VnetHdr) + kArpFrameLen] = {};
  BuildArpReply(frame, *owner, reply + sizeof(VnetHdr));
  if (write(p.fds[index_], reply, sizeof(reply)) < 0) return Drop::kTapWrite;
  return Drop::kCount;
}

void Worker::BuildArpReply(const uint8_t* req, const Endpoint& owner, uint8_t* out) {
  const auto* rq = reinterpret_cast<const ArpPkt*>(req + sizeof(EthHdr));
  auto* eth = reinterpret_cast<EthHdr*>(out);
  auto* arp = reinterpret_cast<ArpPkt*>(out + sizeof(EthHdr));
  std::memcpy(eth->dst, rq->sha, 6);
  StoreMac(eth->src, owner.mac);
  eth->type = htons(kEtherTypeArp);
  arp->htype = htons(1);
  arp->ptype = htons(kEtherTypeIpv4);
  arp->hlen = 6;
  arp->plen = 4;
  arp->oper = htons(kArpReply);
  StoreMac(arp->sha, owner.mac);
  std::memcpy(arp->spa, rq->tpa, 4);
  std::memcpy(arp->tha, rq->sha, 6);
  std::memcpy(arp->tpa, rq->spa, 4);
}

// ---- From the underlay (VXLAN) ------------------------------------------------------------

void Worker::FromUnderlay(const Tables* fixed) {
  uint8_t* base = rx_buf_.get();
  for (int round = 0; round < 4; ++round) {
    for (int i = 0; i < kRxBatch; ++i) {
      rx_iov_[i] = {base + size_t(i) * kRxBufSize, kRxBufSize};
      msghdr& h = rx_msgs_[i].msg_hdr;
      h = msghdr{};
      h.msg_name = &rx_addr_[i];
      h.msg_namelen = sizeof(sockaddr_in);
      h.msg_iov = &rx_iov_[i];
      h.msg_iovlen = 1;
      h.msg_control = rx_cmsg_[i];
      h.msg_controllen = sizeof(rx_cmsg_[i]);
    }
    int n = recvmmsg(rx_, rx_msgs_, kRxBatch, MSG_DONTWAIT, nullptr);
    if (n <= 0) return;
    // Looked up after the receive, as for TAP reads; the coalescer was flushed last round, so
    // nothing held points into an older version.
    const Tables& t = fixed ? *fixed : *sw_.Enter(index_);
    for (int i = 0; i < n; ++i) {
      size_t len = rx_msgs_[i].msg_len;
      const uint8_t* d = static_cast<const uint8_t*>(rx_iov_[i].iov_base);
      // With UDP_GRO one buffer may hold several datagrams of seg bytes (the last shorter).
      size_t seg = len;
      msghdr& h = rx_msgs_[i].msg_hdr;
      for (cmsghdr* cm = CMSG_FIRSTHDR(&h); cm; cm = CMSG_NXTHDR(&h, cm)) {
        if (cm->cmsg_level == SOL_UDP && cm->cmsg_type == UDP_GRO) {
          int v;
          std::memcpy(&v, CMSG_DATA(cm), sizeof(v));
          if (v > 0) seg = static_cast<size_t>(v);
        }
      }
      if (seg == 0) seg = 1;
      uint64_t count = len == 0 ? 1 : (len + seg - 1) / seg;
      Bump(c_.rx_datagrams, count);
      Bump(c_.rx_bytes, len);
      uint32_t vtep = rx_addr_[i].sin_addr.s_addr;
      const PeerInfo* peer = t.policy->peers.Find(vtep);
      if (peer == nullptr) {
        // The first datagram stands for the buffer in the drop's event.
        size_t first = std::min(seg, len);
        bool eth = first >= sizeof(VxlanHdr) + sizeof(EthHdr);
        DropSite site(c_, DropFrom::kPeer, vtep,
                      eth ? VxlanVni(*reinterpret_cast<const VxlanHdr*>(d)) : 0,
                      eth ? d + sizeof(VxlanHdr) : nullptr, eth ? first - sizeof(VxlanHdr) : 0);
        c_.Count(Drop::kVxlanUnknownPeer, count);
        continue;
      }
      if (len == 0) {
        c_.Count(Drop::kVxlanShort);
        continue;
      }
      for (size_t off = 0; off < len; off += seg)
        Decap(t, *peer, vtep, d + off, std::min(seg, len - off));
    }
    // Receive buffers are reused by the next recvmmsg: merged frames must be written first.
    coalesce_.Flush();
    encap_.Flush();
    if (n < kRxBatch) return;
  }
}

void Worker::Decap(const Tables& t, const PeerInfo& peer, uint32_t vtep, const uint8_t* d,
                   size_t len) {
  DropSite site(c_, DropFrom::kPeer, vtep, 0);
  if (len < sizeof(VxlanHdr) + sizeof(EthHdr)) {
    c_.Count(Drop::kVxlanShort);
    return;
  }
  const auto* vx = reinterpret_cast<const VxlanHdr*>(d);
  if (!(vx->flags & kVxlanFlagI)) {
    c_.Count(Drop::kVxlanBadFlags);
    return;
  }
  uint32_t vni = VxlanVni(*vx);
  const uint8_t* frame = d + sizeof(VxlanHdr);
  size_t flen = len - sizeof(VxlanHdr);
  site.Frame(frame, flen, vni);
  const auto* eth = reinterpret_cast<const EthHdr*>(frame);
  if (!t.ports->vnis.Contains(vni) && !t.policy->IsGlobal(vni)) {
    c_.Count(Drop::kVxlanUnknownVni);
    return;
  }
  if (eth->type == htons(kEtherTypeArp)) {
    PeerArp(t, vni, vtep, frame, flen);
    return;
  }
  if (IsMulticastMac(eth->dst)) {
    c_.Count(Drop::kFlood);
    return;
  }
  const Endpoint* dst = t.ports->by_mac.Find(LoadMac(eth->dst));
  if (dst == nullptr) {
    c_.Count(t.remotes->FindMac(LoadMac(eth->dst)) ? Drop::kHairpin : Drop::kUnknownDest);
    return;
  }
  if (!t.policy->Allowed(vni, dst->vni)) {
    c_.Count(Drop::kVniMismatch);
    return;
  }
  if (flen - sizeof(EthHdr) > t.ports->ports[dst->port].mtu) {
    c_.Count(Drop::kOversize);
    return;
  }
  coalesce_.Deliver(t.ports->ports[dst->port].fds[index_], dst->port, frame, flen,
                    peer.checksummed);
}

// ARP from a peer VTEP (a foreign VTEP such as the kernel's vxlan device floods its requests):
// answered for the ports of this node, back to the asking VTEP on the VNI it asked on.
void Worker::PeerArp(const Tables& t, uint32_t vni, uint32_t vtep, const uint8_t* frame,
                     size_t len) {
  if (len < kArpFrameLen) {
    c_.Count(Drop::kArpMalformed);
    return;
  }
  const auto* arp = reinterpret_cast<const ArpPkt*>(frame + sizeof(EthHdr));
  if (arp->htype != htons(1) || arp->ptype != htons(kEtherTypeIpv4) || arp->hlen != 6 ||
      arp->plen != 4) {
    c_.Count(Drop::kArpMalformed);
    return;
  }
  if (ntohs(arp->oper) != kArpRequest) {
    c_.Count(Drop::kArpIgnored);
    return;
  }
  const Endpoint* owner = t.ports->by_ip.Find(LoadU32(arp->tpa));
  if (owner == nullptr || !t.policy->Allowed(vni, owner->vni)) {
    c_.Count(Drop::kArpUnanswered);
    return;
  }
  uint8_t reply[kArpFrameLen];
  BuildArpReply(frame, *owner, reply);
  encap_.EncapPlain(reply, sizeof(reply), vni, vtep);
}

}  // namespace overlay

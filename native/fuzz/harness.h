// Shared set-up of the fuzz targets: a real Switch (one packet thread, underlay on loopback) and
// a second, never-started Worker on it that the targets drive by hand through the packet path.
//
// Tables: four local ports (pods in VNIs 100 and 200, one of them rate limited, and a host
// port in the global VNI 1), remote endpoints behind two peer VTEPs, and the global VNI.
// Every address a datagram can be sent to is on loopback (127.0.0.0/8): remote VTEPs are
// 127.0.0.2 and 127.0.0.3, which nothing listens on. TAP fds are /dev/null (writes succeed and
// go nowhere) or -1 (writes fail and are counted).
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "../switch.h"
#include "../worker.h"

namespace overlay {

struct WorkerFuzzAccess {
  static bool ForwardFrame(Worker& w, const Tables& t, uint32_t slot, uint8_t* buf, size_t n) {
    return w.ForwardFrame(t, slot, t.ports->ports[slot], buf, n);
  }
  static void Decap(Worker& w, const Tables& t, const PeerInfo& peer, uint32_t vtep,
                    const uint8_t* d, size_t len) {
    w.Decap(t, peer, vtep, d, len);
  }
  static void FromUnderlay(Worker& w, const Tables& t) { w.FromUnderlay(&t); }
  static void Flush(Worker& w) {
    w.coalesce_.Flush();
    w.encap_.Flush();
  }
};

namespace fuzz {

inline uint32_t Ip(const char* s) {
  in_addr a{};
  inet_pton(AF_INET, s, &a);
  return a.s_addr;
}

[[noreturn]] inline void Die(const std::string& what) {
  std::fprintf(stderr, "fuzz harness: %s\n", what.c_str());
  std::abort();
}

// A UDP socket bound to ip:port on loopback (port 0 = ephemeral).
inline int LoopbackSocket(uint32_t ip, uint16_t port) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) Die("socket failed");
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = ip;
  a.sin_port = htons(port);
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) Die("bind failed");
  return fd;
}

inline uint16_t LocalPort(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  return ntohs(a.sin_port);
}

constexpr Mac kPodA = 0x020000000001, kPodB = 0x020000000002, kPodC = 0x020000000003,
              kHost = 0x020000000004;
constexpr Mac kRemoteA = 0x020000000101, kRemoteB = 0x020000000102, kRemoteG = 0x020000000103;
constexpr uint32_t kVniA = 100, kVniB = 200, kVniGlobal = 1;
constexpr uint32_t kPorts = 4;

struct Env {
  std::unique_ptr<Switch> sw;
  std::unique_ptr<Worker> worker;
  Tables tables;
  int devnull = -1;
  int rx = -1;          // the driven worker's underlay socket (UDP_GRO on)
  std::vector<int> tx;  // its send sockets
  uint32_t peer_a = 0, peer_b = 0, stranger = 0;
  int from_peer_a = -1, from_peer_b = -1, from_stranger = -1;  // senders towards rx
  sockaddr_in rx_addr{};
};

// With OVERLAY_FUZZ_TRACE set, prints the counters an input moved (for reproducing a finding).
inline void Trace(Env& env, const char* what) {
  static const bool on = std::getenv("OVERLAY_FUZZ_TRACE") != nullptr;
  if (!on) return;
  CounterSnapshot s = env.sw->Counters();
  std::fprintf(stderr, "%s:", what);
  for (size_t d = 0; d < kNumDrops; ++d)
    if (s.drops[d]) std::fprintf(stderr, " %s=%llu", kDropNames[d], (unsigned long long)s.drops[d]);
  std::fprintf(stderr, " rx=%llu tx=%llu sends=%llu coalesced=%llu",
               (unsigned long long)s.rx_datagrams, (unsigned long long)s.tx_datagrams,
               (unsigned long long)s.tx_sends, (unsigned long long)s.coalesced_writes);
  for (uint32_t slot = 0; slot < kPorts; ++slot) {
    const PortCounters& c = env.sw->counters(0).ports[slot];
    std::fprintf(stderr, " port%u:in=%llu,out=%llu", slot, (unsigned long long)c.in_packets.load(),
                 (unsigned long long)c.out_packets.load());
  }
  std::fprintf(stderr, "\n");
}

inline Env& GetEnv() {
  static Env* env = [] {
    auto* e = new Env();
    uint32_t lo = Ip("127.0.0.1");
    // The switch's own packet thread listens on a free loopback port; nothing is sent to it.
    int probe = LoopbackSocket(lo, 0);
    uint16_t vxlan_port = LocalPort(probe);
    close(probe);
    SwitchConfig cfg;
    cfg.underlay_ip = lo;
    cfg.port = vxlan_port;
    cfg.workers = 1;
    std::string err;
    e->sw = Switch::Create(cfg, &err);
    if (!e->sw) Die("Switch::Create: " + err);

    e->devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (e->devnull < 0) Die("cannot open /dev/null");
    e->rx = LoopbackSocket(lo, 0);
    int one = 1;
    setsockopt(e->rx, SOL_UDP, UDP_GRO, &one, sizeof(one));
    int big = 4 << 20;
    setsockopt(e->rx, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
    e->rx_addr.sin_family = AF_INET;
    e->rx_addr.sin_addr.s_addr = lo;
    e->rx_addr.sin_port = htons(LocalPort(e->rx));
    for (int k = 0; k < 2; ++k) e->tx.push_back(LoopbackSocket(lo, 0));
    int zero = 0;
    bool gso = setsockopt(e->tx[0], SOL_UDP, UDP_SEGMENT, &zero, sizeof(zero)) == 0;
    e->worker = std::make_unique<Worker>(*e->sw, 0, e->rx, e->tx, gso);
    // Drop events recorded for every drop (as while an operator reads them), so the recorder's
    // parsing of each dropped frame is fuzzed too. The switch's own packet thread 0 shares these
    // counters but gets no traffic here, so the ring keeps its single writer.
    e->sw->counters(0).recorder.record_until.store(~uint64_t{0});

    e->peer_a = Ip("127.0.0.2");
    e->peer_b = Ip("127.0.0.3");
    e->stranger = Ip("127.0.0.4");
    e->from_peer_a = LoopbackSocket(e->peer_a, 0);
    e->from_peer_b = LoopbackSocket(e->peer_b, 0);
    e->from_stranger = LoopbackSocket(e->stranger, 0);

    PortTable base;
    auto port = [&](uint32_t slot, PortKind kind, uint32_t vni, Mac mac, const char* ip,
                    uint16_t mtu, int fd, bool limited) {
      Port& p = base.ports[slot];
      p.active = true;
      p.generation = slot + 1;
      p.vni = vni;
      p.mac = mac;
      p.ip = Ip(ip);
      p.kind = kind;
      p.limited = limited;
      p.mtu = mtu;
      p.fds[0] = fd;
      std::snprintf(p.name, sizeof(p.name), "fuzz%u", slot);
    };
    port(0, PortKind::kPod, kVniA, kPodA, "10.0.0.1", 1450, e->devnull, false);
    port(1, PortKind::kPod, kVniA, kPodB, "10.0.0.2", 1450, -1, false);
    port(2, PortKind::kPod, kVniB, kPodC, "10.1.0.3", 1450, e->devnull, true);
    port(3, PortKind::kHost, kVniGlobal, kHost, "10.255.0.1", 9000, e->devnull, false);
    e->sw->bucket(2).Configure(100000000);
    e->tables.ports = BuildPortTable(base);
    e->tables.remotes = BuildRemoteTable({
        {kVniA, kRemoteA, Ip("10.0.1.1"), e->peer_a, 0},
        {kVniB, kRemoteB, Ip("10.1.1.2"), e->peer_b, 0},
        {kVniGlobal, kRemoteG, Ip("10.255.1.1"), e->peer_a, 0},
    });
    auto policy = std::make_shared<PolicyTable>();
    policy->peers =
        FlatMap<uint32_t, PeerInfo>({{e->peer_a, PeerInfo{true}}, {e->peer_b, PeerInfo{false}}});
    policy->global_vnis = VniSet({kVniGlobal});
    e->tables.policy = policy;
    return e;
  }();
  return *env;
}

}  // namespace fuzz
}  // namespace overlay

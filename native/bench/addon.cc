// The microbenchmarks' native side (bench/micro/datapath.mjs): each class sets up one job of the
// data path and exposes it twice, through the switch's real code (native/*.cc, linked as is) and
// through its obvious simple version (simple.cc), plus a verify() that runs both on the same
// input and returns what each produced, so the driver and the smoke test can compare bytes.
// Past 400 lines on purpose: four small benchmark classes that share one binding and its setup.
//
//   LookupBench    FlatMap of a real RemoteTable vs std::unordered_map<std::string> / std::map
//   EncapBench     Encapsulator::Encap + Flush vs SimpleEncap (fresh buffer, sendto per frame)
//   SegmentBench   Encapsulator on a TSO super-frame (UDP GSO, or sendmmsg without it) vs
//                  SimpleSegment (fresh buffer, fixed headers and checksums, sendto per segment)
//   CoalesceBench  Coalescer (one GSO super-frame per burst) vs one TAP write per segment, into
//                  a real TAP whose namespace has a TCP socket receiving the stream
//
// Every datagram goes to a sink socket on 127.0.0.1 with the smallest receive buffer (the
// kernel drops what does not fit, after the whole send path ran); verify() uses a second sink
// with a large buffer and reads everything back.
#include <arpa/inet.h>
#include <napi.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "args.h"
#include "coalesce.h"
#include "encap.h"
#include "frames.h"
#include "simple.h"
#include "tables.h"
#include "tcp_peer.h"
#include "underlay.h"

namespace overlay::bench {
namespace {

using args::ArgNumber;
using args::ArgString;

constexpr uint32_t kVni = 100;

void Throw(Napi::Env env, const std::string& msg) {
  Napi::Error::New(env, msg).ThrowAsJavaScriptException();
}

// The benchmarks' own argument ranges (not the switch's limits, so limits() does not export
// them); read with the addon's readers (args.h).
constexpr Range kLookupEntries{1, 65536};
constexpr Range kLookupsPerCall{1, 1 << 20};
constexpr Range kEncapFrames{1, 200};
constexpr Range kSegmentPayload{1, 65483};
constexpr Range kGsoSize{88, 9000};
constexpr Range kBurstSegments{2, 64};

uint32_t Ip(const char* s) {
  in_addr a{};
  inet_pton(AF_INET, s, &a);
  return a.s_addr;
}

// A UDP socket bound to 127.0.0.1 on a free port.
struct Sink {
  int fd = -1;
  sockaddr_in addr{};

  std::string Open(int rcvbuf) {
    fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return "socket failed";
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf)) != 0)
      setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = Ip("127.0.0.1");
    if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) return "bind failed";
    socklen_t len = sizeof(addr);
    getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    return "";
  }
  uint16_t port() const { return ntohs(addr.sin_port); }
  void Drain() {
    uint8_t b[2048];
    while (recv(fd, b, sizeof(b), MSG_DONTWAIT | MSG_TRUNC) >= 0) {
    }
  }
  // Reads datagrams until `count` arrived or nothing came for 500 ms.
  std::vector<std::vector<uint8_t>> Read(size_t count) {
    std::vector<std::vector<uint8_t>> out;
    std::vector<uint8_t> b(65536);
    while (out.size() < count) {
      ssize_t n = recv(fd, b.data(), b.size(), MSG_DONTWAIT);
      if (n >= 0) {
        out.emplace_back(b.begin(), b.begin() + n);
        continue;
      }
      pollfd p{fd, POLLIN, 0};
      if (poll(&p, 1, 500) <= 0) break;
    }
    return out;
  }
  ~Sink() {
    if (fd >= 0) close(fd);
  }
};

// What the switch's packet thread sends with: the real underlay sockets (8 send sockets, their
// buffer sizes, the UDP GSO probe), a sink for timed runs and one for verify().
struct Underlay {
  UnderlaySockets sockets;
  Sink timed, check;
  int plain = -1;  // the simple versions' socket: socket() and nothing else
  std::unique_ptr<WorkerCounters> counters = std::make_unique<WorkerCounters>();

  std::string Open() {
    UnderlaySpec spec;
    spec.ip = Ip("127.0.0.1");
    spec.port = 0;
    spec.workers = 0;  // send sockets only
    std::string err = OpenUnderlay(spec, &sockets);
    if (err.empty()) err = timed.Open(1);  // the kernel's minimum
    if (err.empty()) err = check.Open(8 << 20);
    if (err.empty()) {
      plain = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
      if (plain < 0) err = "socket failed";
    }
    return err;
  }
  std::unique_ptr<Encapsulator> Encap(bool gso, const Sink& to) {
    return std::make_unique<Encapsulator>(sockets.tx, gso, to.port(), *counters);
  }
  Napi::Object Stats(Napi::Env env) const {
    Napi::Object o = Napi::Object::New(env);
    o.Set("gso", sockets.gso);
    o.Set("udpSendDrops", static_cast<double>(counters->drops[size_t(Drop::kUdpSend)].load()));
    o.Set("txDatagrams", static_cast<double>(counters->tx_datagrams.load()));
    o.Set("txSends", static_cast<double>(counters->tx_sends.load()));
    return o;
  }
  ~Underlay() {
    CloseUnderlay(&sockets);
    if (plain >= 0) close(plain);
  }
};

Napi::Array Buffers(Napi::Env env, const std::vector<std::vector<uint8_t>>& list) {
  Napi::Array a = Napi::Array::New(env, list.size());
  for (size_t i = 0; i < list.size(); ++i)
    a.Set(i, Napi::Buffer<uint8_t>::Copy(env, list[i].data(), list[i].size()));
  return a;
}

// ---- Table lookups -------------------------------------------------------------------------

class LookupBench : public Napi::ObjectWrap<LookupBench> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "LookupBench",
                       {
                           InstanceMethod<&LookupBench::Project>("project"),
                           InstanceMethod<&LookupBench::UnorderedMap>("unorderedMap"),
                           InstanceMethod<&LookupBench::OrderedMap>("orderedMap"),
                       });
  }

  // new LookupBench(entries, lookupsPerCall)
  explicit LookupBench(const Napi::CallbackInfo& info) : Napi::ObjectWrap<LookupBench>(info) {
    uint32_t entries, lookups;
    if (!ArgNumber(info, 0, "entries", kLookupEntries, &entries) ||
        !ArgNumber(info, 1, "lookups", kLookupsPerCall, &lookups))
      return;
    std::vector<Endpoint> remotes;
    for (uint32_t i = 0; i < entries; ++i) {
      Endpoint e;
      e.vni = 100 + i % 4;
      e.mac = 0x0a58ac100000 + i;
      e.ip = htonl(0xac100000 + i);
      e.vtep = htonl(0x0a000001 + ((i % 250 + 1) << 8));
      remotes.push_back(e);
    }
    real_ = BuildRemoteTable(remotes);
    simple_ = std::make_unique<SimpleMacTables>(remotes);
    // Destination MACs as they sit in frames, picked uniformly among the entries.
    uint32_t x = 12345;
    queries_.resize(size_t{lookups} * 6);
    for (size_t q = 0; q < lookups; ++q) {
      x ^= x << 13;
      x ^= x >> 17;
      x ^= x << 5;
      StoreMac(&queries_[q * 6], remotes[x % remotes.size()].mac);
    }
  }

 private:
  // Each returns a sum over the endpoints found, equal for the three when they agree.
  template <typename Find>
  Napi::Value Run(Napi::Env env, Find find) {
    uint32_t acc = 0;
    for (size_t off = 0; off < queries_.size(); off += 6) {
      const Endpoint* e = find(&queries_[off]);
      acc += e ? (e->vtep ^ e->vni) : 1;
    }
    return Napi::Number::New(env, acc);
  }
  Napi::Value Project(const Napi::CallbackInfo& info) {
    const RemoteTable& t = *real_;
    return Run(info.Env(), [&](const uint8_t* m) { return t.FindMac(LoadMac(m)); });
  }
  Napi::Value UnorderedMap(const Napi::CallbackInfo& info) {
    return Run(info.Env(), [&](const uint8_t* m) { return simple_->FindString(m); });
  }
  Napi::Value OrderedMap(const Napi::CallbackInfo& info) {
    return Run(info.Env(), [&](const uint8_t* m) { return simple_->FindOrdered(m); });
  }

  std::shared_ptr<const RemoteTable> real_;
  std::unique_ptr<SimpleMacTables> simple_;
  std::vector<uint8_t> queries_;
};

// ---- Encapsulation of plain frames ----------------------------------------------------------

class EncapBench : public Napi::ObjectWrap<EncapBench> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "EncapBench",
                       {
                           InstanceMethod<&EncapBench::Project>("project"),
                           InstanceMethod<&EncapBench::Simple>("simple"),
                           InstanceMethod<&EncapBench::Verify>("verify"),
                           InstanceMethod<&EncapBench::Stats>("stats"),
                       });
  }

  // new EncapBench(kind: "udp" | "tcp", framesPerCall): UDP frames with 64 payload bytes, or
  // TCP frames of a full 1398-byte segment, each with its checksum left to offload (as a pod
  // hands them to a TAP with TUN_F_CSUM), no GSO.
  explicit EncapBench(const Napi::CallbackInfo& info) : Napi::ObjectWrap<EncapBench>(info) {
    Napi::Env env = info.Env();
    std::string kind;
    size_t count;
    if (!ArgString(info, 0, "kind", &kind) || !ArgNumber(info, 1, "frames", kEncapFrames, &count))
      return;
    std::string err = net_.Open();
    if (!err.empty()) {
      Throw(env, "underlay: " + err);
      return;
    }
    std::vector<uint8_t> frame;
    uint32_t saddr = Ip("10.0.0.1"), daddr = Ip("10.0.1.1");
    h_.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
    h_.csum_start = sizeof(EthHdr) + sizeof(Ipv4Hdr);
    if (kind == "udp") {
      std::vector<uint8_t> p = Pattern(64, 1);
      frame = UdpFrame(0x0a58ac100001, 0x0a58ac100101, saddr, daddr, 40000, 5201, p.data(),
                       p.size(), L4Sum::kPseudoOnly);
      h_.csum_offset = 6;
    } else if (kind == "tcp") {
      std::vector<uint8_t> p = Pattern(TcpPeer::kMss, 2);
      TcpSpec s;
      s.src = 0x0a58ac100001;
      s.dst = 0x0a58ac100101;
      s.saddr = saddr;
      s.daddr = daddr;
      s.sport = 40000;
      s.dport = 5201;
      s.seq = 0x10000000;
      s.ack = 0x20000000;
      s.options.resize(kTsOptLen);
      TimestampOption(s.options.data(), 1000, 2000);
      s.sum = L4Sum::kPseudoOnly;
      frame = TcpFrame(s, p.data(), p.size());
      h_.csum_offset = 16;
    } else {
      Throw(env, "kind must be \"udp\" or \"tcp\"");
      return;
    }
    field_ = h_.csum_start + h_.csum_offset;
    std::memcpy(&pseudo_, frame.data() + field_, 2);
    frames_.assign(count, frame);
    timed_ = net_.Encap(net_.sockets.gso, net_.timed);
    check_ = net_.Encap(net_.sockets.gso, net_.check);
  }

 private:
  // The switch finishes checksums in place: every run starts from the frames as a TAP gave them.
  void Reset() {
    for (auto& f : frames_) std::memcpy(f.data() + field_, &pseudo_, 2);
  }
  void RunProject(Encapsulator& e) {
    Reset();
    bool referenced;
    for (auto& f : frames_)
      e.Encap(h_, f.data(), f.size(), kVni, net_.timed.addr.sin_addr.s_addr, &referenced);
    e.Flush();
  }
  void RunSimple(const Sink& to) {
    Reset();
    for (auto& f : frames_) SimpleEncap(net_.plain, to.addr, h_, f.data(), f.size(), kVni);
  }
  Napi::Value Project(const Napi::CallbackInfo& info) {
    RunProject(*timed_);
    return info.Env().Undefined();
  }
  Napi::Value Simple(const Napi::CallbackInfo& info) {
    RunSimple(net_.timed);
    return info.Env().Undefined();
  }
  // { project: Buffer[], simple: Buffer[] }: the datagrams each sent for one call.
  Napi::Value Verify(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    net_.check.Drain();
    RunProject(*check_);
    o.Set("project", Buffers(env, net_.check.Read(frames_.size())));
    RunSimple(net_.check);
    o.Set("simple", Buffers(env, net_.check.Read(frames_.size())));
    return o;
  }
  Napi::Value Stats(const Napi::CallbackInfo& info) { return net_.Stats(info.Env()); }

  Underlay net_;
  VnetHdr h_{};
  size_t field_ = 0;
  uint16_t pseudo_ = 0;
  std::vector<std::vector<uint8_t>> frames_;
  std::unique_ptr<Encapsulator> timed_, check_;
};

// ---- Segmentation of a TSO super-frame ------------------------------------------------------

class SegmentBench : public Napi::ObjectWrap<SegmentBench> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "SegmentBench",
                       {
                           InstanceMethod<&SegmentBench::Project>("project"),
                           InstanceMethod<&SegmentBench::ProjectNoGso>("projectNoGso"),
                           InstanceMethod<&SegmentBench::Simple>("simple"),
                           InstanceMethod<&SegmentBench::SimpleProjectSum>("simpleProjectSum"),
                           InstanceMethod<&SegmentBench::Verify>("verify"),
                           InstanceMethod<&SegmentBench::Stats>("stats"),
                           InstanceAccessor<&SegmentBench::Segments>("segments"),
                           InstanceAccessor<&SegmentBench::FrameLength>("frameLength"),
                       });
  }

  // new SegmentBench(payloadBytes, gsoSize): one TCP/IPv4 super-frame (timestamps, so 66 header
  // bytes) with a virtio-net header asking for TSO, as a pod's kernel writes it into its TAP.
  explicit SegmentBench(const Napi::CallbackInfo& info) : Napi::ObjectWrap<SegmentBench>(info) {
    Napi::Env env = info.Env();
    size_t payload;
    uint16_t mss;
    if (!ArgNumber(info, 0, "payload", kSegmentPayload, &payload) ||
        !ArgNumber(info, 1, "gsoSize", kGsoSize, &mss))
      return;
    std::string err = net_.Open();
    if (!err.empty()) {
      Throw(env, "underlay: " + err);
      return;
    }
    std::vector<uint8_t> p = Pattern(payload, 3);
    TcpSpec s;
    s.src = 0x0a58ac100001;
    s.dst = 0x0a58ac100101;
    s.saddr = Ip("10.0.0.1");
    s.daddr = Ip("10.0.1.1");
    s.sport = 40000;
    s.dport = 5201;
    s.seq = 0x10000000;
    s.ack = 0x20000000;
    s.flags = kTcpAck | kTcpPsh;
    s.ip_id = 0x1234;
    s.options.resize(kTsOptLen);
    TimestampOption(s.options.data(), 1000, 2000);
    s.sum = L4Sum::kPseudoOnly;
    frame_ = TcpFrame(s, p.data(), p.size());
    h_.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
    h_.gso_type = VIRTIO_NET_HDR_GSO_TCPV4;
    h_.hdr_len = static_cast<uint16_t>(frame_.size() - p.size());
    h_.gso_size = mss;
    h_.csum_start = sizeof(EthHdr) + sizeof(Ipv4Hdr);
    h_.csum_offset = 16;
    segments_ = (p.size() + h_.gso_size - 1) / h_.gso_size;
    gso_ = net_.Encap(net_.sockets.gso, net_.timed);
    nogso_ = net_.Encap(false, net_.timed);
    check_gso_ = net_.Encap(net_.sockets.gso, net_.check);
    check_nogso_ = net_.Encap(false, net_.check);
  }

 private:
  void RunProject(Encapsulator& e) {
    bool referenced;
    e.Encap(h_, frame_.data(), frame_.size(), kVni, net_.timed.addr.sin_addr.s_addr, &referenced);
    e.Flush();
  }
  void RunSimple(const Sink& to, SumCode code) {
    SimpleSegment(net_.plain, to.addr, h_, frame_.data(), frame_.size(), kVni, code);
  }
  Napi::Value Project(const Napi::CallbackInfo& info) {
    RunProject(*gso_);
    return info.Env().Undefined();
  }
  Napi::Value ProjectNoGso(const Napi::CallbackInfo& info) {
    RunProject(*nogso_);
    return info.Env().Undefined();
  }
  Napi::Value Simple(const Napi::CallbackInfo& info) {
    RunSimple(net_.timed, SumCode::kTextbook);
    return info.Env().Undefined();
  }
  Napi::Value SimpleProjectSum(const Napi::CallbackInfo& info) {
    RunSimple(net_.timed, SumCode::kProject);
    return info.Env().Undefined();
  }
  // { project, projectNoGso, simple, simpleProjectSum }: Buffer[] each, the datagrams sent.
  Napi::Value Verify(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    net_.check.Drain();
    RunProject(*check_gso_);
    o.Set("project", Buffers(env, net_.check.Read(segments_)));
    RunProject(*check_nogso_);
    o.Set("projectNoGso", Buffers(env, net_.check.Read(segments_)));
    RunSimple(net_.check, SumCode::kTextbook);
    o.Set("simple", Buffers(env, net_.check.Read(segments_)));
    RunSimple(net_.check, SumCode::kProject);
    o.Set("simpleProjectSum", Buffers(env, net_.check.Read(segments_)));
    return o;
  }
  Napi::Value Stats(const Napi::CallbackInfo& info) { return net_.Stats(info.Env()); }
  Napi::Value Segments(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(segments_));
  }
  Napi::Value FrameLength(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(frame_.size()));
  }

  Underlay net_;
  VnetHdr h_{};
  std::vector<uint8_t> frame_;
  size_t segments_ = 0;
  std::unique_ptr<Encapsulator> gso_, nogso_, check_gso_, check_nogso_;
};

// ---- Coalescing into a TAP ------------------------------------------------------------------

class CoalesceBench : public Napi::ObjectWrap<CoalesceBench> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "CoalesceBench",
                       {
                           InstanceMethod<&CoalesceBench::Connect>("connect"),
                           InstanceMethod<&CoalesceBench::Project>("project"),
                           InstanceMethod<&CoalesceBench::Simple>("simple"),
                           InstanceMethod<&CoalesceBench::Verify>("verify"),
                           InstanceMethod<&CoalesceBench::Stats>("stats"),
                           InstanceMethod<&CoalesceBench::Close>("close"),
                           StaticValue("devMac", Napi::String::New(env, "02:00:00:77:00:01")),
                           StaticValue("devIp", Napi::String::New(env, TcpPeer::kDevIp)),
                           StaticValue("peerMac", Napi::String::New(env, "02:00:00:77:00:02")),
                           StaticValue("peerIp", Napi::String::New(env, TcpPeer::kPeerIp)),
                       });
  }

  // new CoalesceBench(netnsPath, device, segmentsPerBurst): the TAP and a listening socket in
  // the namespace. Then the caller gives the device its address and the peer's neighbour
  // entry, and calls connect().
  explicit CoalesceBench(const Napi::CallbackInfo& info) : Napi::ObjectWrap<CoalesceBench>(info) {
    Napi::Env env = info.Env();
    std::string netns, device;
    if (!ArgString(info, 0, "netnsPath", &netns) || !ArgString(info, 1, "device", &device) ||
        !ArgNumber(info, 2, "segments", kBurstSegments, &segs_))
      return;
    std::string err = peer_.Open(netns, device);
    if (!err.empty()) Throw(env, err);
  }

 private:
  size_t RunProject(std::vector<uint8_t>* out) {
    peer_.Prepare();
    int fd = peer_.tap_fd();
    for (const auto& f : peer_.burst()) coalescer_.Deliver(fd, 0, f.data(), f.size(), true);
    coalescer_.Flush();
    uint64_t before = peer_.acks();
    size_t got = peer_.Collect(out);
    acks_project_ += peer_.acks() - before;
    ++bursts_project_;
    return got;
  }
  size_t RunSimple(std::vector<uint8_t>* out) {
    peer_.Prepare();
    int fd = peer_.tap_fd();
    for (const auto& f : peer_.burst())
      if (!SimpleDeliver(fd, f.data(), f.size())) ++simple_write_errors_;
    uint64_t before = peer_.acks();
    size_t got = peer_.Collect(out);
    acks_simple_ += peer_.acks() - before;
    ++bursts_simple_;
    return got;
  }

  Napi::Value Connect(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::string err = peer_.Connect();
    if (!err.empty()) {
      Throw(env, err);
      return env.Undefined();
    }
    peer_.BuildBurst(segs_);
    // Warm-up: the receiver's window opens and its buffers grow to their working size.
    for (int i = 0; i < 16; ++i) {
      RunProject(nullptr);
      RunSimple(nullptr);
    }
    return env.Undefined();
  }
  Napi::Value Project(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(RunProject(nullptr)));
  }
  Napi::Value Simple(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(RunSimple(nullptr)));
  }
  // { project, simple, expected: Buffer (the bytes the socket received for one burst each, and
  //   the burst's payload), projectWrites, simpleWrites: TAP writes per burst }
  Napi::Value Verify(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    std::vector<uint8_t> a, b;
    uint64_t w0 = counters_->ports[0].out_packets.load(), c0 = counters_->coalesced_writes.load();
    RunProject(&a);
    uint64_t singles = counters_->ports[0].out_packets.load() - w0;
    uint64_t merged = counters_->coalesced_writes.load() - c0;
    RunSimple(&b);
    const auto& p = peer_.burst_payload();
    o.Set("project", Napi::Buffer<uint8_t>::Copy(env, a.data(), a.size()));
    o.Set("simple", Napi::Buffer<uint8_t>::Copy(env, b.data(), b.size()));
    o.Set("expected", Napi::Buffer<uint8_t>::Copy(env, p.data(), p.size()));
    // A merged write counts its segments as out_packets: the writes were the merged ones plus
    // any segment written alone.
    o.Set("projectWrites", static_cast<double>(merged ? merged : singles));
    o.Set("simpleWrites", static_cast<double>(segs_));
    return o;
  }
  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    o.Set("burstsProject", static_cast<double>(bursts_project_));
    o.Set("burstsSimple", static_cast<double>(bursts_simple_));
    o.Set("acksProject", static_cast<double>(acks_project_));
    o.Set("acksSimple", static_cast<double>(acks_simple_));
    o.Set("shortBursts", static_cast<double>(peer_.short_bursts()));
    o.Set("tapWriteDrops", static_cast<double>(counters_->drops[size_t(Drop::kTapWrite)].load() +
                                               simple_write_errors_));
    o.Set("coalescedWrites", static_cast<double>(counters_->coalesced_writes.load()));
    return o;
  }
  Napi::Value Close(const Napi::CallbackInfo& info) {
    peer_.Close();
    return info.Env().Undefined();
  }

  TcpPeer peer_;
  size_t segs_ = 44;
  std::unique_ptr<WorkerCounters> counters_ = std::make_unique<WorkerCounters>();
  Coalescer coalescer_{*counters_};
  uint64_t acks_project_ = 0, acks_simple_ = 0, bursts_project_ = 0, bursts_simple_ = 0;
  uint64_t simple_write_errors_ = 0;
};

// checksumsValid(frame: Buffer): the IPv4 and TCP/UDP checksums of an Ethernet frame are right.
Napi::Value ChecksumsValidJs(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsBuffer()) {
    Napi::TypeError::New(info.Env(), "checksumsValid(frame: Buffer)").ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  auto b = info[0].As<Napi::Buffer<uint8_t>>();
  return Napi::Boolean::New(info.Env(), ChecksumsValid(b.Data(), b.Length()));
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("LookupBench", LookupBench::Define(env));
  exports.Set("EncapBench", EncapBench::Define(env));
  exports.Set("SegmentBench", SegmentBench::Define(env));
  exports.Set("CoalesceBench", CoalesceBench::Define(env));
  exports.Set("checksumsValid", Napi::Function::New(env, ChecksumsValidJs));
  return exports;
}

}  // namespace
}  // namespace overlay::bench

static Napi::Object InitMicroBench(Napi::Env env, Napi::Object exports) {
  return overlay::bench::Init(env, exports);
}
NODE_API_MODULE(micro_bench, InitMicroBench)

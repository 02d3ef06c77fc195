// The Node binding: one JS class wrapping one native Switch, the test probe, and the pod plumbing
// functions of netlink.h. Arguments arrive validated by src/dataplane/ (switch.ts, netlink.ts)
// against limits(); the readers of args.h assert them again, so a broken promise is a thrown
// TypeError or RangeError, never a crash. Errors from the switch itself carry code
// "ERR_OVERLAY_SWITCH"; the plumbing functions return promises, rejected with code
// "ERR_OVERLAY_NETLINK". Past 400 lines on purpose: it is the whole boundary, one method per
// Switch/Probe/netlink call, each a few lines of reading arguments and building results.
#include <arpa/inet.h>
#include <napi.h>
#include <unistd.h>

#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "args.h"
#include "inspect_js.h"
#include "netlink.h"
#include "probe.h"
#include "switch.h"
#include "switch_limits.h"

namespace overlay {
namespace {

using namespace args;  // NOLINT: the readers are this file's vocabulary

constexpr const char* kErrorCode = "ERR_OVERLAY_SWITCH";

void ThrowError(Napi::Env env, const std::string& msg) {
  Napi::Error e = Napi::Error::New(env, msg);
  e.Set("code", Napi::String::New(env, kErrorCode));
  e.ThrowAsJavaScriptException();
}

bool ParseEndpoint(Napi::Env env, Napi::Value v, const std::string& what, Endpoint* e) {
  Napi::Object o;
  if (!Object(env, v, what, &o)) return false;
  e->port = 0;
  return GetNumber(o, "vni", limits::kVni, &e->vni) && GetMac(o, "mac", &e->mac) &&
         GetIpv4(o, "ipv4", &e->ip) && GetIpv4(o, "vtep", &e->vtep);
}
// An endpoint as JavaScript sees it (NativeRemote): the inverse of ParseEndpoint.
std::string MacString(Mac m) {
  char buf[18];
  std::snprintf(buf, sizeof(buf), "%02x:%02x:%02x:%02x:%02x:%02x", unsigned(m >> 40 & 0xff),
                unsigned(m >> 32 & 0xff), unsigned(m >> 24 & 0xff), unsigned(m >> 16 & 0xff),
                unsigned(m >> 8 & 0xff), unsigned(m & 0xff));
  return buf;
}
std::string Ipv4String(uint32_t ip) {
  char buf[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &ip, buf, sizeof(buf));
  return buf;
}
Napi::Object EndpointObject(Napi::Env env, const Endpoint& e) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("vni", e.vni);
  o.Set("mac", MacString(e.mac));
  o.Set("ipv4", Ipv4String(e.ip));
  o.Set("vtep", Ipv4String(e.vtep));
  return o;
}
Napi::Array EndpointArray(Napi::Env env, const std::vector<Endpoint>& v) {
  Napi::Array a = Napi::Array::New(env, v.size());
  for (size_t i = 0; i < v.size(); ++i) a.Set(static_cast<uint32_t>(i), EndpointObject(env, v[i]));
  return a;
}

// Grows the vector per element rather than by the array's length up front: a sparse array's
// length says nothing about its elements (new Array(2 ** 32 - 1) costs JS nothing).
bool ParseEndpoints(Napi::Env env, Napi::Value v, const char* what, std::vector<Endpoint>* out) {
  Napi::Array a;
  if (!Array(env, v, what, &a)) return false;
  for (uint32_t i = 0; i < a.Length(); ++i) {
    Endpoint e;
    if (!ParseEndpoint(env, a.Get(i), std::string(what) + "[" + std::to_string(i) + "]", &e))
      return false;
    out->push_back(e);
  }
  return true;
}

// Closes a removed port's fds on libuv's pool, where the kernel's teardown of the device (10-20
// ms in close()) holds up no JS; the promise resolves once they are closed (the device gone).
class CloseFdsJob : public Napi::AsyncWorker {
 public:
  static Napi::Value Start(Napi::Env env, std::vector<int> fds) {
    auto* job = new CloseFdsJob(env, std::move(fds));
    Napi::Promise promise = job->deferred_.Promise();
    job->Queue();  // deleted by node-addon-api once settled
    return promise;
  }

 private:
  CloseFdsJob(Napi::Env env, std::vector<int> fds)
      : Napi::AsyncWorker(env, "overlay:removePort"),
        deferred_(Napi::Promise::Deferred::New(env)),
        fds_(std::move(fds)) {}

  void Execute() override {
    for (int fd : fds_) close(fd);
  }
  void OnOK() override { deferred_.Resolve(Env().Undefined()); }

  Napi::Promise::Deferred deferred_;
  std::vector<int> fds_;
};

class SwitchWrap : public Napi::ObjectWrap<SwitchWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Switch",
                       {
                           InstanceMethod<&SwitchWrap::AddPort>("addPort"),
                           InstanceMethod<&SwitchWrap::RemovePort>("removePort"),
                           InstanceMethod<&SwitchWrap::SetPortVni>("setPortVni"),
                           InstanceMethod<&SwitchWrap::SetPortRate>("setPortRate"),
                           InstanceMethod<&SwitchWrap::SetGlobalVnis>("setGlobalVnis"),
                           InstanceMethod<&SwitchWrap::SetPeers>("setPeers"),
                           InstanceMethod<&SwitchWrap::UpdateRemotes>("updateRemotes"),
                           InstanceMethod<&SwitchWrap::ReplaceRemotes>("replaceRemotes"),
                           InstanceMethod<&SwitchWrap::Reaches>("reaches"),
                           InstanceMethod<&SwitchWrap::LookupRemote>("lookupRemote"),
                           InstanceMethod<&SwitchWrap::LookupRemoteByIpv4>("lookupRemoteByIpv4"),
                           InstanceMethod<&SwitchWrap::RemoteEntries>("remoteEntries"),
                           InstanceMethod<&SwitchWrap::Counters>("counters"),
                           InstanceMethod<&SwitchWrap::DropEvents>("dropEvents"),
                           InstanceMethod<&SwitchWrap::Trace>("trace"),
                           InstanceMethod<&SwitchWrap::GetFeatures>("features"),
                           InstanceMethod<&SwitchWrap::Close>("close"),
                       });
  }

  explicit SwitchWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<SwitchWrap>(info) {
    Napi::Env env = info.Env();
    Napi::Object o;
    SwitchConfig c;
    if (!ArgObject(info, 0, "Switch options", &o) || !GetIpv4(o, "underlayIp", &c.underlay_ip) ||
        !GetNumber(o, "port", limits::kUdpPort, &c.port) || !GetString(o, "netns", &c.netns) ||
        !GetNumber(o, "workers", limits::kWorkers, &c.workers) ||
        !GetBool(o, "offloads", &c.offloads) ||
        !GetNumber(o, "underlayMtu", limits::kMtu, &c.underlay_mtu) ||
        !GetNumber(o, "pollUs", limits::kPollUs, &c.poll_us))
      return;
    std::string err;
    sw_ = Switch::Create(c, &err);
    if (!sw_) ThrowError(env, "cannot start switch: " + err);
  }

 private:
  bool Ready(Napi::Env env) {
    if (!sw_) ThrowError(env, "switch is closed");
    return sw_ != nullptr;
  }

  Napi::Value AddPort(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!Ready(env)) return env.Undefined();
    Napi::Object o;
    PortConfig c;
    std::string kind;
    if (!ArgObject(info, 0, "port spec", &o) ||
        !GetString(o, "name", &c.name, &limits::kNameLength) || !GetString(o, "netns", &c.netns) ||
        !GetNumber(o, "vni", limits::kVni, &c.vni) || !GetMac(o, "mac", &c.mac) ||
        !GetIpv4(o, "ipv4", &c.ip) || !GetString(o, "kind", &kind) ||
        !GetBool(o, "persistent", &c.persistent) || !GetNumber(o, "mtu", limits::kMtu, &c.mtu) ||
        !GetNumber(o, "rateBitsPerSec", limits::kRateBitsPerSec, &c.rate_bits_per_sec))
      return env.Undefined();
    if (kind != "pod" && kind != "host") {
      ThrowType(env, "kind must be \"pod\" or \"host\", got " + kind);
      return env.Undefined();
    }
    c.kind = kind == "pod" ? PortKind::kPod : PortKind::kHost;
    uint32_t id = 0;
    std::string err = sw_->AddPort(c, &id);
    if (!err.empty()) {
      ThrowError(env, "cannot add port " + c.name + ": " + err);
      return env.Undefined();
    }
    return Napi::Number::New(env, id);
  }

  bool PortId(const Napi::CallbackInfo& info, uint32_t* id) {
    return ArgNumber(info, 0, "port id", limits::kPortId, id);
  }

  Napi::Value Result(Napi::Env env, const std::string& err) {
    if (!err.empty()) ThrowError(env, err);
    return env.Undefined();
  }

  // Detaches at once; the promise settles once the device's fds are closed, on libuv's pool.
  Napi::Value RemovePort(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint32_t id;
    bool destroy;
    if (!Ready(env) || !PortId(info, &id) || !ArgBool(info, 1, "destroy", &destroy))
      return env.Undefined();
    std::vector<int> fds;
    std::string err = sw_->RemovePort(id, destroy, &fds);
    if (!err.empty()) return Result(env, err);
    return CloseFdsJob::Start(env, std::move(fds));
  }

  Napi::Value SetPortVni(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint32_t id, vni;
    if (!Ready(env) || !PortId(info, &id) || !ArgNumber(info, 1, "vni", limits::kVni, &vni))
      return env.Undefined();
    return Result(env, sw_->SetPortVni(id, vni));
  }

  Napi::Value SetPortRate(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint32_t id;
    uint64_t rate;
    if (!Ready(env) || !PortId(info, &id) ||
        !ArgNumber(info, 1, "rateBitsPerSec", limits::kRateBitsPerSec, &rate))
      return env.Undefined();
    return Result(env, sw_->SetPortRate(id, rate));
  }

  Napi::Value SetGlobalVnis(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Array a;
    if (!Ready(env) || !ArgArray(info, 0, "vnis", &a)) return env.Undefined();
    std::vector<uint32_t> vnis;
    for (uint32_t i = 0; i < a.Length(); ++i) {
      uint32_t v;
      if (!Number(env, a.Get(i), "vnis[" + std::to_string(i) + "]", limits::kVni, &v))
        return env.Undefined();
      vnis.push_back(v);
    }
    sw_->SetGlobalVnis(vnis);
    return env.Undefined();
  }

  Napi::Value Reaches(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint32_t from, to;
    if (!Ready(env) || !ArgNumber(info, 0, "fromVni", limits::kVni, &from) ||
        !ArgNumber(info, 1, "toVni", limits::kVni, &to))
      return env.Undefined();
    return Napi::Boolean::New(env, sw_->Reaches(from, to));
  }

  Napi::Value SetPeers(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Array a;
    if (!Ready(env) || !ArgArray(info, 0, "peers", &a)) return env.Undefined();
    std::vector<std::pair<uint32_t, PeerInfo>> peers;
    for (uint32_t i = 0; i < a.Length(); ++i) {
      Napi::Object o;
      uint32_t addr;
      PeerInfo p;
      if (!Object(env, a.Get(i), "peers[" + std::to_string(i) + "]", &o) ||
          !GetIpv4(o, "ip", &addr) || !GetBool(o, "checksummed", &p.checksummed))
        return env.Undefined();
      peers.emplace_back(addr, p);
    }
    sw_->SetPeers(peers);
    return env.Undefined();
  }

  Napi::Value UpdateRemotes(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::vector<Endpoint> add;
    Napi::Array a;
    if (!Ready(env) || !ParseEndpoints(env, info[0], "add", &add) ||
        !ArgArray(info, 1, "remove", &a))
      return env.Undefined();
    std::vector<Mac> remove;
    for (uint32_t i = 0; i < a.Length(); ++i) {
      Mac m;
      if (!UnicastMac(env, a.Get(i), "remove[" + std::to_string(i) + "]", &m))
        return env.Undefined();
      remove.push_back(m);
    }
    sw_->UpdateRemotes(add, remove);
    return env.Undefined();
  }

  Napi::Value ReplaceRemotes(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::vector<Endpoint> all;
    if (!Ready(env) || !ParseEndpoints(env, info[0], "all", &all)) return env.Undefined();
    sw_->ReplaceRemotes(all);
    return env.Undefined();
  }

  // Inspection of the remote table (tests, diagnostics): see Switch::FindRemote.
  Napi::Value LookupRemote(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Mac mac;
    if (!Ready(env) || !UnicastMac(env, info[0], "mac", &mac)) return env.Undefined();
    Endpoint e;
    return sw_->FindRemote(mac, &e) ? Napi::Value(EndpointObject(env, e)) : env.Null();
  }

  Napi::Value LookupRemoteByIpv4(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint32_t ip;
    if (!Ready(env) || !Ipv4(env, info[0], "ipv4", &ip)) return env.Undefined();
    Endpoint e;
    return sw_->FindRemoteByIp(ip, &e) ? Napi::Value(EndpointObject(env, e)) : env.Null();
  }

  Napi::Value RemoteEntries(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!Ready(env)) return env.Undefined();
    std::vector<Endpoint> by_mac, by_ip;
    sw_->RemoteEntries(&by_mac, &by_ip);
    Napi::Object o = Napi::Object::New(env);
    o.Set("byMac", EndpointArray(env, by_mac));
    o.Set("byIpv4", EndpointArray(env, by_ip));
    return o;
  }

  Napi::Value Counters(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!Ready(env)) return env.Undefined();
    CounterSnapshot s = sw_->Counters();
    Napi::Object out = Napi::Object::New(env);
    Napi::Array ports = Napi::Array::New(env, s.ports.size());
    for (size_t i = 0; i < s.ports.size(); ++i) {
      const PortCounterSnapshot& p = s.ports[i];
      Napi::Object o = Napi::Object::New(env);
      o.Set("id", p.id);
      o.Set("name", p.name);
      o.Set("vni", p.vni);
      o.Set("inPackets", static_cast<double>(p.in_packets));
      o.Set("inBytes", static_cast<double>(p.in_bytes));
      o.Set("outPackets", static_cast<double>(p.out_packets));
      o.Set("outBytes", static_cast<double>(p.out_bytes));
      ports.Set(static_cast<uint32_t>(i), o);
    }
    out.Set("ports", ports);
    Napi::Object drops = Napi::Object::New(env);
    for (size_t d = 0; d < kNumDrops; ++d)
      drops.Set(kDropNames[d], static_cast<double>(s.drops[d]));
    out.Set("drops", drops);
    Napi::Object u = Napi::Object::New(env);
    u.Set("rxDatagrams", static_cast<double>(s.rx_datagrams));
    u.Set("rxBytes", static_cast<double>(s.rx_bytes));
    u.Set("txDatagrams", static_cast<double>(s.tx_datagrams));
    u.Set("txBytes", static_cast<double>(s.tx_bytes));
    u.Set("txSends", static_cast<double>(s.tx_sends));
    u.Set("coalescedWrites", static_cast<double>(s.coalesced_writes));
    out.Set("underlay", u);
    Napi::Object th = Napi::Object::New(env);
    th.Set("polledBatches", static_cast<double>(s.polled_batches));
    th.Set("wokenBatches", static_cast<double>(s.woken_batches));
    out.Set("threads", th);
    return out;
  }

  // Inspection for operators (inspect.cc): recent drop events, and a trace of the decision.
  Napi::Value DropEvents(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    double since, arm;
    if (!Ready(env) || !ArgNumber(info, 0, "sinceMs", kSinceMs, &since) ||
        !ArgNumber(info, 1, "armMs", kArmMs, &arm))
      return env.Undefined();
    return inspect::DropEventsObject(
        env, sw_->DropEvents(static_cast<uint64_t>(since * 1e6), static_cast<uint64_t>(arm)));
  }

  Napi::Value Trace(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object o;
    TraceQuery q;
    if (!Ready(env) || !ArgObject(info, 0, "trace", &o) ||
        !GetNumber(o, "port", limits::kPortId, &q.port) || !GetIpv4(o, "dst", &q.dst) ||
        !GetIpv4(o, "nextHop", &q.next_hop) || !GetNumber(o, "protocol", kProto, &q.proto) ||
        !GetNumber(o, "srcPort", limits::kUdpPort, &q.sport) ||
        !GetNumber(o, "dstPort", kL4Port, &q.dport))
      return env.Undefined();
    TraceResult r;
    std::string err = sw_->Trace(q, &r);
    if (!err.empty()) {
      ThrowError(env, err);
      return env.Undefined();
    }
    return inspect::TraceObject(env, r);
  }
  static constexpr Range kSinceMs{0, 1e15, nullptr, false};
  static constexpr Range kArmMs{0, 24 * 3600 * 1000};
  static constexpr Range kProto{0, 255};
  static constexpr Range kL4Port{0, 65535};

  Napi::Value GetFeatures(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!Ready(env)) return env.Undefined();
    Features f = sw_->GetFeatures();
    Napi::Object o = Napi::Object::New(env);
    o.Set("vnetHdr", f.vnet_hdr);
    o.Set("tso", f.tso);
    o.Set("uso", f.uso);
    o.Set("udpGso", f.udp_gso);
    o.Set("udpGro", f.udp_gro);
    o.Set("multiQueue", f.multi_queue);
    o.Set("workers", f.workers);
    o.Set("pollUs", f.poll_us);
    o.Set("kernelBusyPoll", f.kernel_busy_poll);
    return o;
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (sw_) sw_->Close();
    sw_.reset();
    return info.Env().Undefined();
  }

  std::unique_ptr<Switch> sw_;
};

// Test and diagnostic probe (see probe.h). Calls are synchronous: receive() blocks the caller
// up to its timeout, which is fine for tests since the switch forwards on its own threads.
class ProbeWrap : public Napi::ObjectWrap<ProbeWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Probe",
                       {
                           InstanceMethod<&ProbeWrap::Send>("send"),
                           InstanceMethod<&ProbeWrap::Receive>("receive"),
                           InstanceMethod<&ProbeWrap::Close>("close"),
                       });
  }

  explicit ProbeWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ProbeWrap>(info) {
    Napi::Env env = info.Env();
    Napi::Object o;
    std::string netns, err;
    if (!ArgObject(info, 0, "probe options", &o) || !GetString(o, "netns", &netns)) return;
    bool frames = o.Has("ifname");
    if (env.IsExceptionPending()) return;
    if (frames) {
      std::string ifname;
      if (!GetString(o, "ifname", &ifname, &limits::kNameLength)) return;
      err = Probe::OpenFrames(netns, ifname, &probe_);
    } else {
      uint32_t addr;
      uint16_t port;
      if (!GetIpv4(o, "ip", &addr) || !GetNumber(o, "port", limits::kUdpPort, &port)) return;
      err = Probe::OpenDatagrams(netns, addr, port, &probe_);
    }
    if (!err.empty()) ThrowError(env, "cannot open probe: " + err);
  }

 private:
  Napi::Value Send(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsBuffer()) {
      ThrowType(env, "data must be a Buffer");
      return env.Undefined();
    }
    auto buf = info[0].As<Napi::Buffer<uint8_t>>();
    uint32_t ip = 0;
    uint16_t port = 0;
    if (info.Length() >= 3 &&
        (!Ipv4(env, info[1], "ip", &ip) || !ArgNumber(info, 2, "port", limits::kUdpPort, &port)))
      return env.Undefined();
    std::string err = probe_.Send(buf.Data(), buf.Length(), ip, port);
    if (!err.empty()) ThrowError(env, err);
    return env.Undefined();
  }

  Napi::Value Receive(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int timeout = 1000;
    if (info.Length() >= 1 && info[0].IsNumber()) timeout = info[0].As<Napi::Number>().Int32Value();
    std::vector<uint8_t> data;
    uint32_t from = 0;
    if (!probe_.Receive(timeout, &data, &from)) return env.Null();
    Napi::Object o = Napi::Object::New(env);
    o.Set("data", Napi::Buffer<uint8_t>::Copy(env, data.data(), data.size()));
    if (from) {
      char buf[INET_ADDRSTRLEN];
      inet_ntop(AF_INET, &from, buf, sizeof(buf));
      o.Set("from", std::string(buf));
    }
    return o;
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    probe_.Close();
    return info.Env().Undefined();
  }

  Probe probe_;
};

// Pod plumbing (netlink.h), off the JS thread: each call copies its arguments into plain C++
// values on the JS thread, runs on libuv's pool (netlink.h opens its socket on a thread of its
// own inside the pod's namespace, so no pool thread ever changes namespace) and settles a
// promise. A failure rejects it with an Error of code "ERR_OVERLAY_NETLINK" saying what was being
// done, where, and why; it is never thrown.
constexpr const char* kNetlinkErrorCode = "ERR_OVERLAY_NETLINK";
constexpr Range kNetnsPath{1, 4095};  // PATH_MAX less its NUL
constexpr Range kPrefixLength{0, 32};
constexpr Range kPodMtu{0, limits::kMtu.max};  // 0: leave the MTU as it is

class NetlinkJob : public Napi::AsyncWorker {
 public:
  using Work = std::function<std::string()>;             // on the pool: "" or an error
  using Result = std::function<Napi::Value(Napi::Env)>;  // on the JS thread, after success

  static Napi::Value Start(Napi::Env env, const char* name, Work work, Result result = nullptr) {
    auto* job = new NetlinkJob(env, name, std::move(work), std::move(result));
    Napi::Promise promise = job->deferred_.Promise();
    job->Queue();  // deleted by node-addon-api once settled
    return promise;
  }

 private:
  NetlinkJob(Napi::Env env, const char* name, Work work, Result result)
      : Napi::AsyncWorker(env, name),
        deferred_(Napi::Promise::Deferred::New(env)),
        work_(std::move(work)),
        result_(std::move(result)) {}

  void Execute() override {
    std::string err = work_();
    if (!err.empty()) SetError(err);
  }
  void OnOK() override { deferred_.Resolve(result_ ? result_(Env()) : Env().Undefined()); }
  void OnError(const Napi::Error& e) override {
    Napi::Object o = e.Value();
    o.Set("code", Napi::String::New(Env(), kNetlinkErrorCode));
    deferred_.Reject(o);
  }

  Napi::Promise::Deferred deferred_;
  Work work_;
  Result result_;
};

// netlink.configurePod({ netns, ifname, ipv4, prefixLength, gateway, mtu }): Promise<void>.
Napi::Value NetlinkConfigurePod(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o;
  netlink::PodConfig c;
  if (!ArgObject(info, 0, "pod interface", &o) || !GetString(o, "netns", &c.netns, &kNetnsPath) ||
      !GetString(o, "ifname", &c.ifname, &limits::kNameLength) || !GetIpv4(o, "ipv4", &c.ip) ||
      !GetNumber(o, "prefixLength", kPrefixLength, &c.prefix_length) ||
      !GetIpv4(o, "gateway", &c.gateway) || !GetNumber(o, "mtu", kPodMtu, &c.mtu))
    return env.Undefined();
  return NetlinkJob::Start(env, "overlay:netlink.configurePod",
                           [c] { return netlink::ConfigurePod(c); });
}

// The (netns, interface name) arguments every other netlink call starts with.
bool NetnsAndName(const Napi::CallbackInfo& info, std::string* netns, std::string* name) {
  Napi::Env env = info.Env();
  return String(env, info[0], "netns", netns, &kNetnsPath) &&
         String(env, info[1], "ifname", name, &limits::kNameLength);
}

// netlink.inspectLink(netns, ifname): Promise<NativeLinkState | null>.
Napi::Value NetlinkInspectLink(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string netns, name;
  if (!NetnsAndName(info, &netns, &name)) return env.Undefined();
  auto state = std::make_shared<netlink::LinkState>();
  return NetlinkJob::Start(
      env, "overlay:netlink.inspectLink",
      [netns, name, state] { return netlink::InspectLink(netns, name, state.get()); },
      [state](Napi::Env env) -> Napi::Value {
        if (!state->found) return env.Null();
        Napi::Object o = Napi::Object::New(env);
        o.Set("mac", MacString(state->mac));
        o.Set("mtu", state->mtu);
        o.Set("up", state->up);
        Napi::Array a = Napi::Array::New(env, state->ipv4.size());
        for (size_t i = 0; i < state->ipv4.size(); ++i) {
          const netlink::Ipv4Prefix& p = state->ipv4[i];
          a.Set(static_cast<uint32_t>(i), Ipv4String(p.ip) + "/" + std::to_string(p.length));
        }
        o.Set("ipv4", a);
        return o;
      });
}

// netlink.addLink(netns, name, "ifb"): Promise<void>.
Napi::Value NetlinkAddLink(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string netns, name, kind;
  if (!NetnsAndName(info, &netns, &name) || !ArgString(info, 2, "kind", &kind))
    return env.Undefined();
  if (kind != "ifb") {
    ThrowType(env, "kind must be \"ifb\", got " + kind);
    return env.Undefined();
  }
  return NetlinkJob::Start(env, "overlay:netlink.addLink",
                           [netns, name, kind] { return netlink::AddLink(netns, name, kind); });
}

// netlink.deleteLink(netns, name): Promise<boolean>, whether there was one.
Napi::Value NetlinkDeleteLink(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string netns, name;
  if (!NetnsAndName(info, &netns, &name)) return env.Undefined();
  auto existed = std::make_shared<bool>(false);
  return NetlinkJob::Start(
      env, "overlay:netlink.deleteLink",
      [netns, name, existed] { return netlink::DeleteLink(netns, name, existed.get()); },
      [existed](Napi::Env env) -> Napi::Value { return Napi::Boolean::New(env, *existed); });
}

Napi::Object NetlinkObject(Napi::Env env) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("configurePod", Napi::Function::New(env, NetlinkConfigurePod, "configurePod"));
  o.Set("inspectLink", Napi::Function::New(env, NetlinkInspectLink, "inspectLink"));
  o.Set("addLink", Napi::Function::New(env, NetlinkAddLink, "addLink"));
  o.Set("deleteLink", Napi::Function::New(env, NetlinkDeleteLink, "deleteLink"));
  return o;
}

Napi::Value Limits(const Napi::CallbackInfo& info) {
  return LimitsObject(info.Env());
}

Napi::Value DropReasons(const Napi::CallbackInfo& info) {
  Napi::Array a = Napi::Array::New(info.Env(), kNumDrops);
  for (size_t d = 0; d < kNumDrops; ++d) a.Set(static_cast<uint32_t>(d), kDropNames[d]);
  return a;
}

}  // namespace
}  // namespace overlay

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) {
  exports.Set("Switch", overlay::SwitchWrap::Define(env));
  exports.Set("Probe", overlay::ProbeWrap::Define(env));
  exports.Set("dropReasons", Napi::Function::New(env, overlay::DropReasons));
  exports.Set("limits", Napi::Function::New(env, overlay::Limits));
  exports.Set("netlink", overlay::NetlinkObject(env));
  return exports;
}

NODE_API_MODULE(overlay_switch, InitAddon)

// The Node binding: one JS class wrapping one native Switch. Arguments arrive validated by
// src/dataplane/switch.ts; this file still checks every type, so a bad call is a thrown
// TypeError, never a crash. Errors from the switch carry code "ERR_OVERLAY_SWITCH".
#include <arpa/inet.h>
#include <napi.h>

#include <memory>
#include <string>

#include "probe.h"
#include "switch.h"

namespace overlay {
namespace {

constexpr const char* kErrorCode = "ERR_OVERLAY_SWITCH";

void ThrowError(Napi::Env env, const std::string& msg) {
  Napi::Error e = Napi::Error::New(env, msg);
  e.Set("code", Napi::String::New(env, kErrorCode));
  e.ThrowAsJavaScriptException();
}
void ThrowType(Napi::Env env, const std::string& msg) {
  Napi::TypeError::New(env, msg).ThrowAsJavaScriptException();
}

// Field readers: each returns false (with a pending TypeError) when the field is missing or of
// the wrong type.
bool GetString(Napi::Object o, const char* key, std::string* out) {
  Napi::Value v = o.Get(key);
  if (!v.IsString()) {
    ThrowType(o.Env(), std::string(key) + " must be a string");
    return false;
  }
  *out = v.As<Napi::String>().Utf8Value();
  return true;
}
bool GetNumber(Napi::Object o, const char* key, double min, double max, double* out) {
  Napi::Value v = o.Get(key);
  if (!v.IsNumber()) {
    ThrowType(o.Env(), std::string(key) + " must be a number");
    return false;
  }
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= min && d <= max)) {
    Napi::RangeError::New(o.Env(), std::string(key) + " out of range").ThrowAsJavaScriptException();
    return false;
  }
  *out = d;
  return true;
}
bool GetBool(Napi::Object o, const char* key, bool* out) {
  Napi::Value v = o.Get(key);
  if (!v.IsBoolean()) {
    ThrowType(o.Env(), std::string(key) + " must be a boolean");
    return false;
  }
  *out = v.As<Napi::Boolean>().Value();
  return true;
}
bool ParseIpv4(Napi::Env env, const std::string& s, uint32_t* out) {
  in_addr a;
  if (inet_pton(AF_INET, s.c_str(), &a) != 1) {
    ThrowType(env, "not an IPv4 address: " + s);
    return false;
  }
  *out = a.s_addr;
  return true;
}
bool ParseMac(Napi::Env env, const std::string& s, Mac* out) {
  unsigned b[6];
  char tail;
  if (s.size() != 17 || sscanf(s.c_str(), "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3],
                               &b[4], &b[5], &tail) != 6) {
    ThrowType(env, "not a MAC address: " + s);
    return false;
  }
  Mac m = 0;
  for (unsigned x : b) m = (m << 8) | x;
  if (m == 0 || (b[0] & 1)) {
    ThrowType(env, "not a unicast MAC address: " + s);
    return false;
  }
  *out = m;
  return true;
}
bool ParseEndpoint(Napi::Env env, Napi::Value v, Endpoint* e) {
  if (!v.IsObject()) {
    ThrowType(env, "remote endpoint must be an object");
    return false;
  }
  Napi::Object o = v.As<Napi::Object>();
  double vni;
  std::string mac, ip, vtep;
  if (!GetNumber(o, "vni", 0, 0xffffff, &vni) || !GetString(o, "mac", &mac) ||
      !GetString(o, "ipv4", &ip) || !GetString(o, "vtep", &vtep))
    return false;
  e->vni = static_cast<uint32_t>(vni);
  e->port = 0;
  return ParseMac(env, mac, &e->mac) && ParseIpv4(env, ip, &e->ip) &&
         ParseIpv4(env, vtep, &e->vtep);
}
bool ParseEndpoints(Napi::Env env, Napi::Value v, std::vector<Endpoint>* out) {
  if (!v.IsArray()) {
    ThrowType(env, "expected an array of remote endpoints");
    return false;
  }
  Napi::Array a = v.As<Napi::Array>();
  out->resize(a.Length());
  for (uint32_t i = 0; i < a.Length(); ++i)
    if (!ParseEndpoint(env, a.Get(i), &(*out)[i])) return false;
  return true;
}

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
                           InstanceMethod<&SwitchWrap::Counters>("counters"),
                           InstanceMethod<&SwitchWrap::GetFeatures>("features"),
                           InstanceMethod<&SwitchWrap::Close>("close"),
                       });
  }

  explicit SwitchWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<SwitchWrap>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsObject()) {
      ThrowType(env, "Switch options must be an object");
      return;
    }
    Napi::Object o = info[0].As<Napi::Object>();
    SwitchConfig c;
    std::string ip;
    double port, workers, mtu;
    if (!GetString(o, "underlayIp", &ip) || !ParseIpv4(env, ip, &c.underlay_ip) ||
        !GetNumber(o, "port", 1, 65535, &port) || !GetString(o, "netns", &c.netns) ||
        !GetNumber(o, "workers", 1, kMaxWorkers, &workers) ||
        !GetBool(o, "offloads", &c.offloads) || !GetNumber(o, "underlayMtu", 576, 65535, &mtu))
      return;
    c.port = static_cast<uint16_t>(port);
    c.workers = static_cast<int>(workers);
    c.underlay_mtu = static_cast<int>(mtu);
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
    if (info.Length() < 1 || !info[0].IsObject()) {
      ThrowType(env, "port spec must be an object");
      return env.Undefined();
    }
    Napi::Object o = info[0].As<Napi::Object>();
    PortConfig c;
    std::string mac, ip, kind;
    double vni, mtu, rate;
    if (!GetString(o, "name", &c.name) || !GetString(o, "netns", &c.netns) ||
        !GetNumber(o, "vni", 0, 0xffffff, &vni) || !GetString(o, "mac", &mac) ||
        !ParseMac(env, mac, &c.mac) || !GetString(o, "ipv4", &ip) || !ParseIpv4(env, ip, &c.ip) ||
        !GetString(o, "kind", &kind) || !GetBool(o, "persistent", &c.persistent) ||
        !GetNumber(o, "mtu", 576, 65535, &mtu) || !GetNumber(o, "rateBitsPerSec", 0, 1e15, &rate))
      return env.Undefined();
    if (kind != "pod" && kind != "host") {
      ThrowType(env, "kind must be \"pod\" or \"host\"");
      return env.Undefined();
    }
    c.kind = kind == "pod" ? PortKind::kPod : PortKind::kHost;
    c.vni = static_cast<uint32_t>(vni);
    c.mtu = static_cast<int>(mtu);
    c.rate_bits_per_sec = static_cast<uint64_t>(rate);
    uint32_t id = 0;
    std::string err = sw_->AddPort(c, &id);
    if (!err.empty()) {
      ThrowError(env, "cannot add port " + c.name + ": " + err);
      return env.Undefined();
    }
    return Napi::Number::New(env, id);
  }

  bool PortId(const Napi::CallbackInfo& info, uint32_t* id) {
    if (info.Length() < 1 || !info[0].IsNumber()) {
      ThrowType(info.Env(), "port id must be a number");
      return false;
    }
    double d = info[0].As<Napi::Number>().DoubleValue();
    if (!(d >= 0 && d < kMaxPorts)) {
      ThrowError(info.Env(), "no port " + std::to_string(d));
      return false;
    }
    *id = static_cast<uint32_t>(d);
    return true;
  }

  Napi::Value Result(Napi::Env env, const std::string& err) {
    if (!err.empty()) ThrowError(env, err);
    return env.Undefined();
  }

  Napi::Value RemovePort(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint32_t id;
    if (!Ready(env) || !PortId(info, &id)) return env.Undefined();
    bool destroy = info.Length() > 1 && info[1].ToBoolean().Value();
    return Result(env, sw_->RemovePort(id, destroy));
  }

  Napi::Value SetPortVni(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint32_t id;
    if (!Ready(env) || !PortId(info, &id)) return env.Undefined();
    if (info.Length() < 2 || !info[1].IsNumber()) {
      ThrowType(env, "vni must be a number");
      return env.Undefined();
    }
    double vni = info[1].As<Napi::Number>().DoubleValue();
    if (!(vni >= 0 && vni <= 0xffffff)) {
      Napi::RangeError::New(env, "vni out of range").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    return Result(env, sw_->SetPortVni(id, static_cast<uint32_t>(vni)));
  }

  Napi::Value SetPortRate(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint32_t id;
    if (!Ready(env) || !PortId(info, &id)) return env.Undefined();
    if (info.Length() < 2 || !info[1].IsNumber() ||
        !(info[1].As<Napi::Number>().DoubleValue() >= 0)) {
      ThrowType(env, "rate must be a non-negative number");
      return env.Undefined();
    }
    return Result(
        env, sw_->SetPortRate(id, static_cast<uint64_t>(info[1].As<Napi::Number>().DoubleValue())));
  }

  Napi::Value SetGlobalVnis(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!Ready(env)) return env.Undefined();
    if (info.Length() < 1 || !info[0].IsArray()) {
      ThrowType(env, "expected an array of VNIs");
      return env.Undefined();
    }
    Napi::Array a = info[0].As<Napi::Array>();
    std::vector<uint32_t> vnis;
    for (uint32_t i = 0; i < a.Length(); ++i) {
      Napi::Value v = a.Get(i);
      double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
      if (!(d >= 0 && d <= 0xffffff)) {
        ThrowType(env, "VNIs must be numbers from 0 to 16777215");
        return env.Undefined();
      }
      vnis.push_back(static_cast<uint32_t>(d));
    }
    sw_->SetGlobalVnis(vnis);
    return env.Undefined();
  }

  Napi::Value SetPeers(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!Ready(env)) return env.Undefined();
    if (info.Length() < 1 || !info[0].IsArray()) {
      ThrowType(env, "expected an array of peers");
      return env.Undefined();
    }
    Napi::Array a = info[0].As<Napi::Array>();
    std::vector<std::pair<uint32_t, PeerInfo>> peers;
    for (uint32_t i = 0; i < a.Length(); ++i) {
      Napi::Value v = a.Get(i);
      if (!v.IsObject()) {
        ThrowType(env, "peer must be an object");
        return env.Undefined();
      }
      std::string ip;
      uint32_t addr;
      PeerInfo p;
      if (!GetString(v.As<Napi::Object>(), "ip", &ip) || !ParseIpv4(env, ip, &addr) ||
          !GetBool(v.As<Napi::Object>(), "checksummed", &p.checksummed))
        return env.Undefined();
      peers.emplace_back(addr, p);
    }
    sw_->SetPeers(peers);
    return env.Undefined();
  }

  Napi::Value UpdateRemotes(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!Ready(env)) return env.Undefined();
    std::vector<Endpoint> add;
    if (info.Length() < 2 || !ParseEndpoints(env, info[0], &add)) {
      if (!env.IsExceptionPending()) ThrowType(env, "updateRemotes(add, remove)");
      return env.Undefined();
    }
    if (!info[1].IsArray()) {
      ThrowType(env, "remove must be an array of MACs");
      return env.Undefined();
    }
    Napi::Array a = info[1].As<Napi::Array>();
    std::vector<Mac> remove;
    for (uint32_t i = 0; i < a.Length(); ++i) {
      Napi::Value v = a.Get(i);
      Mac m;
      if (!v.IsString()) {
        ThrowType(env, "remove must be an array of MACs");
        return env.Undefined();
      }
      if (!ParseMac(env, v.As<Napi::String>().Utf8Value(), &m)) return env.Undefined();
      remove.push_back(m);
    }
    sw_->UpdateRemotes(add, remove);
    return env.Undefined();
  }

  Napi::Value ReplaceRemotes(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!Ready(env)) return env.Undefined();
    std::vector<Endpoint> all;
    if (info.Length() < 1 || !ParseEndpoints(env, info[0], &all)) {
      if (!env.IsExceptionPending()) ThrowType(env, "replaceRemotes(all)");
      return env.Undefined();
    }
    sw_->ReplaceRemotes(all);
    return env.Undefined();
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
    return out;
  }

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
    if (info.Length() < 1 || !info[0].IsObject()) {
      ThrowType(env, "probe options must be an object");
      return;
    }
    Napi::Object o = info[0].As<Napi::Object>();
    std::string netns, err;
    if (!GetString(o, "netns", &netns)) return;
    if (o.Has("ifname")) {
      std::string ifname;
      if (!GetString(o, "ifname", &ifname)) return;
      err = Probe::OpenFrames(netns, ifname, &probe_);
    } else {
      std::string ip;
      uint32_t addr;
      double port;
      if (!GetString(o, "ip", &ip) || !ParseIpv4(env, ip, &addr) ||
          !GetNumber(o, "port", 0, 65535, &port))
        return;
      err = Probe::OpenDatagrams(netns, addr, static_cast<uint16_t>(port), &probe_);
    }
    if (!err.empty()) ThrowError(env, "cannot open probe: " + err);
  }

 private:
  Napi::Value Send(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsBuffer()) {
      ThrowType(env, "send(data: Buffer, ip?, port?)");
      return env.Undefined();
    }
    auto buf = info[0].As<Napi::Buffer<uint8_t>>();
    uint32_t ip = 0;
    uint16_t port = 0;
    if (info.Length() >= 3) {
      if (!info[1].IsString() || !info[2].IsNumber()) {
        ThrowType(env, "send(data: Buffer, ip: string, port: number)");
        return env.Undefined();
      }
      if (!ParseIpv4(env, info[1].As<Napi::String>().Utf8Value(), &ip)) return env.Undefined();
      port = static_cast<uint16_t>(info[2].As<Napi::Number>().Uint32Value());
    }
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
  return exports;
}

NODE_API_MODULE(overlay_switch, InitAddon)

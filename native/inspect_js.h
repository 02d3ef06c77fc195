// The inspection results of inspect.cc as JavaScript objects (NativeDropEvents, NativeTrace in
// src/dataplane/native.d.ts). JS thread only; included by addon.cc alone.
#pragma once

#include <arpa/inet.h>
#include <napi.h>

#include <cstdio>
#include <string>

#include "switch.h"

namespace overlay::inspect {

inline std::string Mac(overlay::Mac m) {
  char buf[18];
  std::snprintf(buf, sizeof(buf), "%02x:%02x:%02x:%02x:%02x:%02x", unsigned(m >> 40 & 0xff),
                unsigned(m >> 32 & 0xff), unsigned(m >> 24 & 0xff), unsigned(m >> 16 & 0xff),
                unsigned(m >> 8 & 0xff), unsigned(m & 0xff));
  return buf;
}

inline std::string Ip(uint32_t ip) {
  char buf[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &ip, buf, sizeof(buf));
  return buf;
}

// Nanoseconds since the epoch as milliseconds, to the microsecond (exact in a double).
inline double Ms(uint64_t ns) {
  return static_cast<double>(ns / 1000) / 1000.0;
}

inline const char* DropName(Drop d) {
  return d == Drop::kCount ? nullptr : kDropNames[static_cast<size_t>(d)];
}

inline Napi::Value DropValue(Napi::Env env, Drop d) {
  const char* name = DropName(d);
  return name ? Napi::Value(Napi::String::New(env, name)) : env.Null();
}

inline Napi::Object DropEventsObject(Napi::Env env, const DropEventsResult& r) {
  Napi::Object o = Napi::Object::New(env);
  Napi::Array a = Napi::Array::New(env, r.events.size());
  for (size_t i = 0; i < r.events.size(); ++i) {
    const DropEvent& e = r.events[i];
    Napi::Object x = Napi::Object::New(env);
    x.Set("timeMs", Ms(e.time_ns));
    x.Set("reason", e.reason < kNumDrops ? kDropNames[e.reason] : "unknown");
    x.Set("from", e.from == DropFrom::kPort ? "port" : e.from == DropFrom::kPeer ? "peer" : "none");
    if (e.from == DropFrom::kPort) x.Set("port", e.id);
    if (e.from == DropFrom::kPeer) x.Set("peer", Ip(e.id));
    x.Set("vni", e.vni);
    x.Set("ethertype", e.ethertype);
    x.Set("protocol", e.proto);
    x.Set("src", e.src ? Napi::Value(Napi::String::New(env, Ip(e.src))) : env.Null());
    x.Set("dst", e.dst ? Napi::Value(Napi::String::New(env, Ip(e.dst))) : env.Null());
    x.Set("srcPort", e.sport);
    x.Set("dstPort", e.dport);
    x.Set("count", e.count);
    a.Set(static_cast<uint32_t>(i), x);
  }
  o.Set("events", a);
  o.Set("recordingSinceMs", Ms(r.recording_since_ns));
  o.Set("recordingUntilMs", Ms(r.recording_until_ns));
  o.Set("sampledOut", static_cast<double>(r.sampled_out));
  return o;
}

inline Napi::Object EndpointOf(Napi::Env env, const Endpoint& e) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("vni", e.vni);
  o.Set("mac", Mac(e.mac));
  o.Set("ipv4", Ip(e.ip));
  if (e.vtep == 0) {
    o.Set("port", e.port);
  } else {
    o.Set("vtep", Ip(e.vtep));
  }
  return o;
}

inline Napi::Object TraceObject(Napi::Env env, const TraceResult& r) {
  Napi::Object o = Napi::Object::New(env);
  Napi::Object src = Napi::Object::New(env);
  src.Set("name", r.port.name);
  src.Set("vni", r.port.vni);
  src.Set("mac", Mac(r.port.mac));
  src.Set("ipv4", Ip(r.port.ip));
  src.Set("kind", r.port.kind == PortKind::kPod ? "pod" : "host");
  src.Set("global", r.src_global);
  o.Set("source", src);
  Napi::Object arp = Napi::Object::New(env);
  arp.Set("frame", Napi::Buffer<uint8_t>::Copy(env, r.arp_frame.data(), r.arp_frame.size()));
  arp.Set("drop", DropValue(env, r.arp_drop));
  arp.Set("answer",
          r.arp_drop == Drop::kCount ? Napi::Value(EndpointOf(env, r.arp_owner)) : env.Null());
  o.Set("arp", arp);
  Napi::Object frame = Napi::Object::New(env);
  frame.Set("frame", Napi::Buffer<uint8_t>::Copy(env, r.frame.data(), r.frame.size()));
  frame.Set("drop", DropValue(env, r.frame_drop));
  if (r.found) {
    Napi::Object d = EndpointOf(env, r.dst);
    d.Set("global", r.dst_global);
    if (r.dst.vtep == 0)
      d.Set("portName", r.dst_port_name);
    else
      d.Set("peerProgrammed", r.dst_peer_known);
    frame.Set("destination", d);
  } else {
    frame.Set("destination", env.Null());
  }
  o.Set("frame", frame);
  return o;
}

}  // namespace overlay::inspect

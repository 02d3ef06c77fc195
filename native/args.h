// Argument readers of the addons (addon.cc, and bench/addon.cc for its own arguments).
//
// JS validates, C++ asserts: src/dataplane/switch.ts checks every argument against limits()
// before it calls in, so a failure here means that promise was broken. Each reader asserts what
// it reads and, when the assertion fails, leaves a pending JS TypeError (wrong type) or
// RangeError (outside its Range, named as limits() exports it) and returns false; the caller
// returns at once. Never a crash, and never a C++ exception: the addons build with
// -fno-exceptions and NAPI_DISABLE_CPP_EXCEPTIONS.
//
// Thread-safety: JS thread only, like every napi call. Every reader first gives up when an
// exception is already pending (a getter or a Proxy trap threw while the value was read): a second
// napi_throw would fail, and node-addon-api aborts the process when a throw fails.
#pragma once

#include <arpa/inet.h>
#include <napi.h>

#include <cmath>
#include <cstdio>
#include <string>

#include "packet.h"
#include "switch_limits.h"

namespace overlay::args {

// A number as JavaScript would print it (integers without a fraction).
inline std::string Num(double d) {
  if (std::isnan(d)) return "NaN";
  if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
  if (d == std::trunc(d) && std::fabs(d) < 9007199254740992.0)
    return std::to_string(static_cast<long long>(d));
  char b[32];
  std::snprintf(b, sizeof(b), "%.15g", d);
  return b;
}

inline void ThrowType(Napi::Env env, const std::string& msg) {
  if (!env.IsExceptionPending()) Napi::TypeError::New(env, msg).ThrowAsJavaScriptException();
}
inline void ThrowRange(Napi::Env env, const std::string& msg) {
  if (!env.IsExceptionPending()) Napi::RangeError::New(env, msg).ThrowAsJavaScriptException();
}

// " (limits().workers)", naming the limit a range is exported as; "" for a private range.
inline std::string LimitName(const Range& r) {
  return r.name != nullptr ? std::string(" (limits().") + r.name + ")" : "";
}

// The core check: `v` is a number inside `r` (and whole, when r.integer). `what` names the
// argument in the message.
inline bool Number(Napi::Env env, Napi::Value v, const std::string& what, const Range& r,
                   double* out) {
  if (env.IsExceptionPending()) return false;
  if (!v.IsNumber()) {
    ThrowType(env, what + " must be a number");
    return false;
  }
  double d = v.As<Napi::Number>().DoubleValue();
  if (!r.Contains(d) || (r.integer && d != std::trunc(d))) {
    ThrowRange(env, what + " must be " + (r.integer ? "an integer" : "a number") + " from " +
                        Num(r.min) + " to " + Num(r.max) + LimitName(r) + ", got " + Num(d));
    return false;
  }
  *out = d;
  return true;
}
// The same, converted: the range guarantees the value fits T.
template <typename T>
bool Number(Napi::Env env, Napi::Value v, const std::string& what, const Range& r, T* out) {
  double d;
  if (!Number(env, v, what, r, &d)) return false;
  *out = static_cast<T>(d);
  return true;
}

// A string; with `length`, its UTF-8 byte count must lie in that range.
inline bool String(Napi::Env env, Napi::Value v, const std::string& what, std::string* out,
                   const Range* length = nullptr) {
  if (env.IsExceptionPending()) return false;
  if (!v.IsString()) {
    ThrowType(env, what + " must be a string");
    return false;
  }
  std::string s = v.As<Napi::String>().Utf8Value();
  if (length != nullptr && !length->Contains(static_cast<double>(s.size()))) {
    ThrowRange(env, what + " must be " + Num(length->min) + " to " + Num(length->max) +
                        " bytes long" + LimitName(*length) + ", got " + std::to_string(s.size()));
    return false;
  }
  *out = std::move(s);
  return true;
}

inline bool Bool(Napi::Env env, Napi::Value v, const std::string& what, bool* out) {
  if (env.IsExceptionPending()) return false;
  if (!v.IsBoolean()) {
    ThrowType(env, what + " must be a boolean");
    return false;
  }
  *out = v.As<Napi::Boolean>().Value();
  return true;
}

inline bool Object(Napi::Env env, Napi::Value v, const std::string& what, Napi::Object* out) {
  if (env.IsExceptionPending()) return false;
  if (!v.IsObject()) {
    ThrowType(env, what + " must be an object");
    return false;
  }
  *out = v.As<Napi::Object>();
  return true;
}

inline bool Array(Napi::Env env, Napi::Value v, const std::string& what, Napi::Array* out) {
  if (env.IsExceptionPending()) return false;
  if (!v.IsArray()) {
    ThrowType(env, what + " must be an array");
    return false;
  }
  *out = v.As<Napi::Array>();
  return true;
}

// Dotted-quad IPv4, to network order.
inline bool Ipv4(Napi::Env env, Napi::Value v, const std::string& what, uint32_t* out) {
  std::string s;
  if (!String(env, v, what, &s)) return false;
  in_addr a;
  if (inet_pton(AF_INET, s.c_str(), &a) != 1) {
    ThrowType(env, what + " must be an IPv4 address, got " + s);
    return false;
  }
  *out = a.s_addr;
  return true;
}

// aa:bb:cc:dd:ee:ff, unicast and not all zeros.
inline bool UnicastMac(Napi::Env env, Napi::Value v, const std::string& what, Mac* out) {
  std::string s;
  if (!String(env, v, what, &s)) return false;
  unsigned b[6];
  char tail;
  if (s.size() != 17 || std::sscanf(s.c_str(), "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2],
                                    &b[3], &b[4], &b[5], &tail) != 6) {
    ThrowType(env, what + " must be a MAC address, got " + s);
    return false;
  }
  Mac m = 0;
  for (unsigned x : b) m = (m << 8) | x;
  if (m == 0 || (b[0] & 1)) {
    ThrowType(env, what + " must be a unicast MAC address, got " + s);
    return false;
  }
  *out = m;
  return true;
}

// Field readers: o[key], named by its key.
template <typename T>
bool GetNumber(Napi::Object o, const char* key, const Range& r, T* out) {
  return Number(o.Env(), o.Get(key), key, r, out);
}
inline bool GetString(Napi::Object o, const char* key, std::string* out,
                      const Range* length = nullptr) {
  return String(o.Env(), o.Get(key), key, out, length);
}
inline bool GetBool(Napi::Object o, const char* key, bool* out) {
  return Bool(o.Env(), o.Get(key), key, out);
}
inline bool GetIpv4(Napi::Object o, const char* key, uint32_t* out) {
  return Ipv4(o.Env(), o.Get(key), key, out);
}
inline bool GetMac(Napi::Object o, const char* key, Mac* out) {
  return UnicastMac(o.Env(), o.Get(key), key, out);
}

// Positional readers: info[i], named by `what`; a missing argument reads as undefined.
template <typename T>
bool ArgNumber(const Napi::CallbackInfo& info, size_t i, const char* what, const Range& r, T* out) {
  return Number(info.Env(), info[i], what, r, out);
}
inline bool ArgString(const Napi::CallbackInfo& info, size_t i, const char* what,
                      std::string* out) {
  return String(info.Env(), info[i], what, out);
}
inline bool ArgBool(const Napi::CallbackInfo& info, size_t i, const char* what, bool* out) {
  return Bool(info.Env(), info[i], what, out);
}
inline bool ArgObject(const Napi::CallbackInfo& info, size_t i, const char* what,
                      Napi::Object* out) {
  return Object(info.Env(), info[i], what, out);
}
inline bool ArgArray(const Napi::CallbackInfo& info, size_t i, const char* what, Napi::Array* out) {
  return Array(info.Env(), info[i], what, out);
}

// What the addon's limits() returns: { [name]: { min, max, integer } } for every exported Range.
inline Napi::Object LimitsObject(Napi::Env env) {
  Napi::Object o = Napi::Object::New(env);
  for (const Range* r : limits::kExported) {
    Napi::Object e = Napi::Object::New(env);
    e.Set("min", r->min);
    e.Set("max", r->max);
    e.Set("integer", r->integer);
    o.Set(r->name, e);
  }
  return o;
}

}  // namespace overlay::args

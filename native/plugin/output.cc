#include "output.h"

#include <cstdint>
#include <cstdio>

namespace overlay::cni {

namespace {

// Length of the valid UTF-8 sequence at s[i], or 0 when there is none.
size_t Utf8Sequence(std::string_view s, size_t i) {
  auto at = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  auto cont = [&](size_t k) { return k < s.size() && (at(k) & 0xC0) == 0x80; };
  unsigned char c = at(i);
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) return cont(i + 1) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    if (!cont(i + 1) || !cont(i + 2)) return 0;
    unsigned char c1 = at(i + 1);
    if (c == 0xE0 && c1 < 0xA0) return 0;  // overlong
    if (c == 0xED && c1 > 0x9F) return 0;  // surrogate
    return 3;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (!cont(i + 1) || !cont(i + 2) || !cont(i + 3)) return 0;
    unsigned char c1 = at(i + 1);
    if (c == 0xF0 && c1 < 0x90) return 0;  // overlong
    if (c == 0xF4 && c1 > 0x8F) return 0;  // past U+10FFFF
    return 4;
  }
  return 0;
}

// `s` as a JSON string literal; bytes that are not UTF-8 (a socket path may hold any) become
// U+FFFD, so the output is always valid JSON.
void AppendJsonString(std::string_view s, std::string* out) {
  out->push_back('"');
  for (size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\') {
      out->push_back('\\');
      out->push_back(static_cast<char>(c));
      ++i;
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out->append(buf);
      ++i;
    } else {
      size_t n = Utf8Sequence(s, i);
      if (n == 0) {
        out->append("\\ufffd");
        ++i;
      } else {
        out->append(s.substr(i, n));
        i += n;
      }
    }
  }
  out->push_back('"');
}

}  // namespace

bool IsSupportedVersion(std::string_view v) {
  for (std::string_view s : kSupportedVersions) {
    if (s == v) return true;
  }
  return false;
}

std::string VersionJson() {
  std::string out = "{\"cniVersion\":";
  AppendJsonString(kCurrentVersion, &out);
  out.append(",\"supportedVersions\":[");
  bool first = true;
  for (std::string_view s : kSupportedVersions) {
    if (!first) out.push_back(',');
    first = false;
    AppendJsonString(s, &out);
  }
  out.append("]}\n");
  return out;
}

std::string ErrorJson(std::string_view cni_version, int code, std::string_view msg,
                      std::string_view details) {
  std::string out = "{\"cniVersion\":";
  AppendJsonString(cni_version, &out);
  out.append(",\"code\":").append(std::to_string(code)).append(",\"msg\":");
  AppendJsonString(msg, &out);
  if (!details.empty()) {
    out.append(",\"details\":");
    AppendJsonString(details, &out);
  }
  out.append("}\n");
  return out;
}

int ExitCodeFor(int code) {
  return code >= 1 && code <= 255 ? code : 1;
}

}  // namespace overlay::cni

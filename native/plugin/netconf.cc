#include "netconf.h"

#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdlib>

namespace overlay::cni {

namespace {

class Scanner {
 public:
  explicit Scanner(std::string_view s) : p_(s.data()), end_(s.data() + s.size()) {}

  bool AtEnd() const { return p_ >= end_; }

  void SkipBom() {
    if (end_ - p_ >= 3 && p_[0] == '\xEF' && p_[1] == '\xBB' && p_[2] == '\xBF') p_ += 3;
  }

  void SkipSpace() {
    while (p_ < end_ && (*p_ == ' ' || *p_ == '\t' || *p_ == '\n' || *p_ == '\r')) ++p_;
  }

  // Consumes `c` (after white space) when it is next.
  bool Eat(char c) {
    SkipSpace();
    if (p_ < end_ && *p_ == c) {
      ++p_;
      return true;
    }
    return false;
  }

  char Peek() {
    SkipSpace();
    return p_ < end_ ? *p_ : '\0';
  }

  // A string at the cursor, decoded into *out (or skipped when out is null).
  bool String(std::string* out) {
    if (!Eat('"')) return false;
    while (p_ < end_) {
      char c = *p_++;
      if (c == '"') return true;
      if (static_cast<unsigned char>(c) < 0x20) return false;
      if (c != '\\') {
        if (out) out->push_back(c);
        continue;
      }
      if (p_ >= end_) return false;
      char e = *p_++;
      char plain = 0;
      switch (e) {
        case '"':
        case '\\':
        case '/':
          plain = e;
          break;
        case 'b':
          plain = '\b';
          break;
        case 'f':
          plain = '\f';
          break;
        case 'n':
          plain = '\n';
          break;
        case 'r':
          plain = '\r';
          break;
        case 't':
          plain = '\t';
          break;
        case 'u': {
          uint32_t cp = 0;
          if (!Hex4(&cp)) return false;
          // A high surrogate followed by a low one is one code point; a lone one is U+FFFD, as
          // in the agent's JSON.parse + UTF-8 encoding of the path.
          if (cp >= 0xD800 && cp <= 0xDBFF && end_ - p_ >= 6 && p_[0] == '\\' && p_[1] == 'u') {
            const char* save = p_;
            p_ += 2;
            uint32_t low = 0;
            if (Hex4(&low) && low >= 0xDC00 && low <= 0xDFFF) {
              cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
            } else {
              p_ = save;
            }
          }
          if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0xFFFD;
          if (out) AppendUtf8(cp, out);
          continue;
        }
        default:
          return false;
      }
      if (out) out->push_back(plain);
    }
    return false;
  }

  // A number at the cursor; JSON's grammar is left to the agent, strtod reads the token.
  bool Number(double* out) {
    SkipSpace();
    const char* start = p_;
    while (p_ < end_ && (std::isdigit(static_cast<unsigned char>(*p_)) || *p_ == '-' ||
                         *p_ == '+' || *p_ == '.' || *p_ == 'e' || *p_ == 'E')) {
      ++p_;
    }
    if (p_ == start) return false;
    std::string token(start, p_);
    char* parsed_end = nullptr;
    double v = std::strtod(token.c_str(), &parsed_end);
    if (parsed_end != token.c_str() + token.size()) return false;
    *out = v;
    return true;
  }

  // Any value at the cursor, skipped: strings honour escapes, brackets are counted.
  bool SkipValue() {
    char c = Peek();
    if (c == '"') return String(nullptr);
    if (c != '{' && c != '[') {
      // true, false, null or a number: up to the next delimiter.
      const char* start = p_;
      while (p_ < end_ && *p_ != ',' && *p_ != '}' && *p_ != ']' && *p_ != ' ' && *p_ != '\t' &&
             *p_ != '\n' && *p_ != '\r') {
        ++p_;
      }
      return p_ > start;
    }
    size_t depth = 0;
    while (p_ < end_) {
      char d = *p_;
      if (d == '"') {
        if (!String(nullptr)) return false;
        continue;
      }
      ++p_;
      if (d == '{' || d == '[') {
        ++depth;
      } else if (d == '}' || d == ']') {
        if (--depth == 0) return true;
      }
    }
    return false;
  }

 private:
  bool Hex4(uint32_t* out) {
    if (end_ - p_ < 4) return false;
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      char h = *p_++;
      v <<= 4;
      if (h >= '0' && h <= '9') {
        v |= static_cast<uint32_t>(h - '0');
      } else if (h >= 'a' && h <= 'f') {
        v |= static_cast<uint32_t>(h - 'a' + 10);
      } else if (h >= 'A' && h <= 'F') {
        v |= static_cast<uint32_t>(h - 'A' + 10);
      } else {
        return false;
      }
    }
    *out = v;
    return true;
  }

  static void AppendUtf8(uint32_t cp, std::string* out) {
    if (cp < 0x80) {
      out->push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  }

  const char* p_;
  const char* end_;
};

}  // namespace

NetConfKeys ScanNetConf(std::string_view json) {
  NetConfKeys keys;
  Scanner s(json);
  s.SkipBom();
  if (!s.Eat('{')) return keys;
  if (s.Eat('}')) return keys;
  for (;;) {
    std::string key;
    if (!s.String(&key) || !s.Eat(':')) return keys;
    if (key == "socket") {
      if (s.Peek() == '"') {
        std::string value;
        if (!s.String(&value)) return keys;
        keys.socket = std::move(value);
        keys.socket_not_string = false;
      } else {
        if (!s.SkipValue()) return keys;
        keys.socket.reset();
        keys.socket_not_string = true;
      }
    } else if (key == "timeoutMs") {
      keys.timeout_ms.reset();
      char c = s.Peek();
      if (c == '-' || std::isdigit(static_cast<unsigned char>(c))) {
        double v = 0;
        if (!s.Number(&v)) return keys;
        if (std::isfinite(v)) keys.timeout_ms = v;
      } else if (!s.SkipValue()) {
        return keys;
      }
    } else if (key == "cniVersion" && s.Peek() == '"') {
      std::string value;
      if (!s.String(&value)) return keys;
      keys.cni_version = std::move(value);
    } else {
      if (key == "cniVersion") keys.cni_version.reset();
      if (!s.SkipValue()) return keys;
    }
    if (s.Eat(',')) continue;
    return keys;  // '}' or a syntax error: either way, done
  }
}

}  // namespace overlay::cni

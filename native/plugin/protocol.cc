#include "protocol.h"

#include <charconv>

namespace overlay::cni {

std::string EncodeRequest(const std::vector<std::string_view>& env, std::string_view stdin_bytes) {
  size_t env_bytes = 0;
  for (std::string_view e : env) env_bytes += e.size() + 1;
  std::string frame;
  frame.reserve(kMaxHeaderBytes + env_bytes + stdin_bytes.size());
  frame.append(kMagic);
  frame.append(" ").append(std::to_string(env_bytes));
  frame.append(" ").append(std::to_string(stdin_bytes.size())).append("\n");
  for (std::string_view e : env) frame.append(e).push_back('\0');
  frame.append(stdin_bytes);
  return frame;
}

namespace {

// A decimal number of at most `max`, no sign, no leading zeros but "0" itself.
bool ParseDecimal(std::string_view s, size_t max, size_t* out) {
  if (s.empty() || (s.size() > 1 && s[0] == '0')) return false;
  size_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || v > max) return false;
  *out = v;
  return true;
}

}  // namespace

std::optional<ReplyHeader> ParseReplyHeader(std::string_view line) {
  if (line.substr(0, kMagic.size()) != kMagic) return std::nullopt;
  line.remove_prefix(kMagic.size());
  if (line.empty() || line[0] != ' ') return std::nullopt;
  line.remove_prefix(1);
  size_t space = line.find(' ');
  if (space == std::string_view::npos) return std::nullopt;
  size_t code = 0;
  size_t bytes = 0;
  if (!ParseDecimal(line.substr(0, space), 255, &code)) return std::nullopt;
  if (!ParseDecimal(line.substr(space + 1), kMaxStdoutBytes, &bytes)) return std::nullopt;
  return ReplyHeader{static_cast<int>(code), bytes};
}

}  // namespace overlay::cni

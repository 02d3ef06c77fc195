// The few keys of the network configuration the plugin itself needs, read from stdin without a
// JSON library: where the agent is ("socket"), how long to wait for it ("timeoutMs"), and the
// version its own errors should speak ("cniVersion"). The agent parses and validates the whole
// configuration; this scanner only has to agree with it on these top-level keys:
//   - only keys of the top-level object count (a "socket" inside "prevResult" or "args" does not);
//   - a key given twice counts with its last value, as with JSON.parse;
//   - string escapes are decoded (\/, \uXXXX with surrogate pairs);
//   - a leading UTF-8 byte order mark is skipped, as the agent's UTF-8 decoder does;
//   - at a syntax error it stops with what it has read so far (the agent reports the error).
// Nested values are skipped by counting brackets, never by recursion, so no input is too deep.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace overlay::cni {

struct NetConfKeys {
  // "socket": absent, a string (decoded), or present but not a string.
  std::optional<std::string> socket;
  bool socket_not_string = false;
  // "timeoutMs" when it is a number (maybe not an integer, maybe out of range).
  std::optional<double> timeout_ms;
  // "cniVersion" when it is a string.
  std::optional<std::string> cni_version;
};

NetConfKeys ScanNetConf(std::string_view json);

}  // namespace overlay::cni

// The overlay-cni wire protocol, the plugin's side; the agent's side and the same description are
// in src/agent/protocol.ts, and both must change together.
//
// One request and one reply per connection on the agent's unix socket:
//
//   request (plugin -> agent)
//     "OVCNI/1 <env bytes> <stdin bytes>\n"      header, decimal lengths, at most 64 bytes
//     <env>                                      every CNI_* variable as "NAME=value\0"
//     <stdin>                                    stdin as the runtime wrote it, unchanged
//
//   reply (agent -> plugin)
//     "OVCNI/1 <exit code> <stdout bytes>\n"     header; exit code 0..255
//     <stdout>                                   what the plugin prints, unchanged
//
// The agent does all the CNI work (configuration, version, annotations, result and error JSON);
// the plugin only moves bytes, answers VERSION, and speaks for an agent it cannot reach.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace overlay::cni {

inline constexpr std::string_view kMagic = "OVCNI/1";
inline constexpr size_t kMaxHeaderBytes = 64;
inline constexpr size_t kMaxEnvBytes = 64 * 1024;
// A network configuration is a few kilobytes; a GC list of every pod on a node stays far below.
inline constexpr size_t kMaxStdinBytes = 1024 * 1024;
inline constexpr size_t kMaxStdoutBytes = 1024 * 1024;

// The agent's socket when the configuration has no "socket" key (overlayd --socket's default).
inline constexpr std::string_view kDefaultSocket = "/run/overlay/agent.sock";
// sun_path holds 108 bytes including the terminating NUL.
inline constexpr size_t kMaxSocketPathBytes = 107;
// The bound on one call to the agent, connecting included, when "timeoutMs" does not set it.
inline constexpr int kDefaultTimeoutMs = 30'000;
inline constexpr int kMaxTimeoutMs = 300'000;

// The request frame for `env` ("NAME=value" entries) and `stdin_bytes`.
std::string EncodeRequest(const std::vector<std::string_view>& env, std::string_view stdin_bytes);

struct ReplyHeader {
  int exit_code;
  size_t stdout_bytes;
};

// Parses a reply header line (without its '\n'); nullopt when it is not the protocol.
std::optional<ReplyHeader> ParseReplyHeader(std::string_view line);

}  // namespace overlay::cni

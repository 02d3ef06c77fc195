// overlay-cni: the CNI plugin of the overlay network, as container runtimes exec it from
// /opt/cni/bin. It is a shim (as Multus's and Cilium's are): it hands the runtime's CNI_*
// environment and its stdin, unchanged, to the node agent over the agent's unix socket in one
// round trip (protocol.h), prints the agent's answer and exits with the agent's exit code. All
// CNI logic lives in the agent (src/cni, served by src/agent/server.ts).
//
// The plugin itself only answers VERSION, an oversized stdin, a "socket" key it cannot use, and
// an agent it cannot reach or that does not answer within the bound (agent_call.h). It needs
// nothing but the kernel: statically linked, no PATH, no Node.js on the host.
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "agent_call.h"
#include "io.h"
#include "netconf.h"
#include "output.h"
#include "protocol.h"
#include "unreachable.h"

extern char** environ;

namespace {

using namespace overlay::cni;

int Answer(std::string_view text, int exit_code) {
  WriteAll(STDOUT_FILENO, text);
  return exit_code;
}

int Fail(std::string_view version, int code, std::string_view msg, std::string_view details) {
  return Answer(ErrorJson(version, code, msg, details), ExitCodeFor(code));
}

// Every CNI_* variable, as the runtime set it.
std::vector<std::string_view> CniEnvironment() {
  std::vector<std::string_view> env;
  for (char** e = environ; *e != nullptr; ++e) {
    if (std::strncmp(*e, "CNI_", 4) == 0) env.emplace_back(*e);
  }
  return env;
}

int TimeoutOf(const NetConfKeys& keys) {
  // Out of range or not an integer: the agent refuses the configuration; until it has said so,
  // the default bounds the wait.
  if (!keys.timeout_ms) return kDefaultTimeoutMs;
  double t = *keys.timeout_ms;
  if (t < 1 || t > kMaxTimeoutMs || std::floor(t) != t) return kDefaultTimeoutMs;
  return static_cast<int>(t);
}

int Run() {
  const char* command_env = std::getenv("CNI_COMMAND");
  std::string_view command = command_env ? command_env : "";
  StdinRead in = ReadStdin(kMaxStdinBytes);
  // VERSION answers whatever stdin holds: runtimes call it to learn what to send.
  if (command == "VERSION") return Answer(VersionJson(), 0);

  NetConfKeys keys = ScanNetConf(in.bytes);
  std::string_view version = keys.cni_version && IsSupportedVersion(*keys.cni_version)
                                 ? *keys.cni_version
                                 : kCurrentVersion;
  if (in.error != 0) {
    return Fail(version, kErrDecode,
                std::string("network configuration: cannot read stdin: ") + std::strerror(in.error),
                "");
  }
  if (in.too_long) {
    return Fail(
        version, kErrDecode,
        "network configuration: stdin is longer than " + std::to_string(kMaxStdinBytes) + " bytes",
        "a network configuration is a few kilobytes; is the runtime passing the right file?");
  }

  std::string socket_path(kDefaultSocket);
  if (keys.socket_not_string) {
    return Fail(version, kErrInvalidConfig,
                "network configuration: socket must be an absolute path, got a value that is not a "
                "string",
                "");
  }
  if (keys.socket) {
    const std::string& s = *keys.socket;
    if (s.empty() || s[0] != '/' || s.find('\0') != std::string::npos) {
      return Fail(version, kErrInvalidConfig,
                  "network configuration: socket must be an absolute path, got \"" + s + "\"", "");
    }
    if (s.size() > kMaxSocketPathBytes) {
      return Fail(version, kErrInvalidConfig,
                  "network configuration: socket path " + s + " is longer than " +
                      std::to_string(kMaxSocketPathBytes) + " bytes",
                  "unix socket paths are limited by sun_path");
    }
    socket_path = s;
  }

  int timeout_ms = TimeoutOf(keys);
  CallResult r = CallAgent(socket_path, EncodeRequest(CniEnvironment(), in.bytes), timeout_ms);
  if (r.failure == CallFailure::kNone) return Answer(r.stdout_bytes, r.exit_code);
  Unanswered u = ExplainFailure(r, socket_path, command, timeout_ms);
  return Fail(version, u.code, u.msg, u.details);
}

}  // namespace

int main() {
  // A runtime that stops reading our stdout must not kill us silently; writes just fail.
  signal(SIGPIPE, SIG_IGN);
  return Run();
}

// One call to the agent: connect to its unix socket, send the request frame, read the reply
// frame (protocol.h). Every step is bounded by one deadline, so a stuck or overloaded agent holds
// the runtime up for at most the timeout: connecting (a full listen backlog is retried, never
// waited on in a blocking connect), writing and reading alike.
#pragma once

#include <string>
#include <string_view>

namespace overlay::cni {

enum class CallFailure {
  kNone,
  kConnect,   // connect() failed: `error` holds its errno
  kTimeout,   // no whole reply before the deadline
  kClosed,    // the agent closed the connection (or reset it) without answering
  kBadReply,  // the reply is not the protocol: `why` says how
};

struct CallResult {
  CallFailure failure = CallFailure::kNone;
  int error = 0;
  std::string why;
  // The reply, when failure is kNone.
  int exit_code = 0;
  std::string stdout_bytes;
};

CallResult CallAgent(const std::string& socket_path, std::string_view request, int timeout_ms);

}  // namespace overlay::cni

// What the plugin answers when the agent does not: the CNI error for a failed call, its message
// naming the socket and saying what a person can do about it.
#pragma once

#include <string>
#include <string_view>

#include "agent_call.h"

namespace overlay::cni {

struct Unanswered {
  int code;
  std::string msg;
  std::string details;
};

// `command` is CNI_COMMAND as given (maybe empty). STATUS answers code 50 (the plugin is not
// available), every other command 11 (try again later): the runtime retries, and a retried ADD
// or DEL is safe because the agent's are idempotent.
Unanswered ExplainFailure(const CallResult& r, std::string_view socket_path,
                          std::string_view command, int timeout_ms);

}  // namespace overlay::cni

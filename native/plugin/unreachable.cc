#include "unreachable.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include "output.h"

namespace overlay::cni {

namespace {

// What connect()'s errno means here. A path that exists but is no socket (a file, a directory)
// gives ECONNREFUSED like a socket nobody listens on, so the path's type tells them apart.
void ExplainConnect(int error, std::string_view socket_path, Unanswered* u) {
  struct stat st {};
  bool exists = stat(std::string(socket_path).c_str(), &st) == 0;
  if (error == ECONNREFUSED && exists && S_ISDIR(st.st_mode)) {
    u->msg += "is unreachable: the path is a directory, not a socket";
    u->details = "\"socket\" in the network configuration must name the agent's socket file";
    return;
  }
  if ((error == ECONNREFUSED || error == ENOTSOCK) && exists && !S_ISSOCK(st.st_mode)) {
    u->msg += "is unreachable: the path is not a socket";
    u->details = "\"socket\" in the network configuration must name the agent's socket file";
    return;
  }
  switch (error) {
    case ENOENT:
      u->msg += "is unreachable: the socket does not exist";
      u->details = "is overlayd running on this node?";
      return;
    case ECONNREFUSED:
      u->msg += "is unreachable: connection refused";
      u->details =
          "the socket file exists but nothing listens on it (overlayd stopped or is restarting)";
      return;
    case EACCES:
    case EPERM:
      u->msg += "is unreachable: permission denied";
      u->details = "the agent's socket is for root only";
      return;
    case ENOTDIR:
      u->msg += "is unreachable: a folder on its path is not a folder";
      return;
    default:
      u->msg += std::string("is unreachable: ") + std::strerror(error);
      return;
  }
}

}  // namespace

Unanswered ExplainFailure(const CallResult& r, std::string_view socket_path,
                          std::string_view command, int timeout_ms) {
  Unanswered u;
  u.code = command == "STATUS" ? kErrNotAvailable : kErrTryAgainLater;
  u.msg = "overlay agent at " + std::string(socket_path) + " ";
  std::string what = command.empty() ? std::string("the request") : std::string(command);
  switch (r.failure) {
    case CallFailure::kConnect:
      ExplainConnect(r.error, socket_path, &u);
      break;
    case CallFailure::kTimeout:
      u.msg += "did not answer " + what + " within " + std::to_string(timeout_ms) + " ms";
      u.details =
          "the agent may be overloaded or waiting for the cluster store; timeoutMs in the network "
          "configuration sets this bound";
      break;
    case CallFailure::kClosed:
      u.msg += "closed the connection without answering " + what;
      u.details = "overlayd may have stopped or restarted; try again";
      break;
    case CallFailure::kBadReply:
      // Not the protocol: a different program on the socket, or a plugin and agent of different
      // builds. Retrying would not help, and STATUS still speaks only 50.
      if (command != "STATUS") u.code = kErrDecode;
      u.msg += "sent an invalid reply: " + r.why;
      u.details = "is the plugin from the same build as overlayd?";
      break;
    case CallFailure::kNone:
      break;
  }
  return u;
}

}  // namespace overlay::cni

#include "agent_call.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

#include "protocol.h"

namespace overlay::cni {

namespace {

int64_t NowMs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1'000'000;
}

// Waits for `events` on fd until the deadline: > 0 ready, 0 deadline passed, < 0 error.
int WaitFor(int fd, short events, int64_t deadline) {
  for (;;) {
    int64_t left = deadline - NowMs();
    if (left <= 0) return 0;
    pollfd p{fd, events, 0};
    int n = poll(&p, 1, static_cast<int>(left));
    if (n < 0 && errno == EINTR) continue;
    return n;
  }
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

CallResult Failed(CallFailure f, int error = 0, std::string why = "") {
  CallResult r;
  r.failure = f;
  r.error = error;
  r.why = std::move(why);
  return r;
}

// Connects before the deadline; CallFailure::kNone on success.
CallResult Connect(int fd, const std::string& path, int64_t deadline) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());  // the caller checked the length
  auto* sa = reinterpret_cast<sockaddr*>(&addr);
  for (;;) {
    if (connect(fd, sa, sizeof addr) == 0) return {};
    if (errno == EINTR) continue;
    if (errno == EAGAIN) {
      // The agent's listen backlog is full: it is alive but behind. Try again shortly.
      if (NowMs() >= deadline) return Failed(CallFailure::kTimeout);
      usleep(2000);
      continue;
    }
    if (errno != EINPROGRESS) return Failed(CallFailure::kConnect, errno);
    int ready = WaitFor(fd, POLLOUT, deadline);
    if (ready == 0) return Failed(CallFailure::kTimeout);
    if (ready < 0) return Failed(CallFailure::kConnect, errno);
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    return err == 0 ? CallResult{} : Failed(CallFailure::kConnect, err);
  }
}

// Sends the whole request; a peer that goes away early is not an error here (it may have
// answered already: the reply decides).
CallResult Send(int fd, std::string_view data, int64_t deadline) {
  while (!data.empty()) {
    ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n >= 0) {
      data.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (errno == EINTR) continue;
    if (errno == EPIPE || errno == ECONNRESET) return {};
    if (errno != EAGAIN) return Failed(CallFailure::kClosed, errno);
    int ready = WaitFor(fd, POLLOUT, deadline);
    if (ready == 0) return Failed(CallFailure::kTimeout);
    if (ready < 0) return Failed(CallFailure::kClosed, errno);
  }
  return {};
}

CallResult Receive(int fd, int64_t deadline) {
  std::string buf;
  size_t header_end = std::string::npos;
  ReplyHeader header{};
  char chunk[16 * 1024];
  for (;;) {
    if (header_end != std::string::npos && buf.size() - header_end - 1 >= header.stdout_bytes) {
      CallResult r;
      r.exit_code = header.exit_code;
      r.stdout_bytes = buf.substr(header_end + 1, header.stdout_bytes);
      return r;
    }
    ssize_t n = recv(fd, chunk, sizeof chunk, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == ECONNRESET) return Failed(CallFailure::kClosed, errno);
      if (errno != EAGAIN) return Failed(CallFailure::kClosed, errno);
      int ready = WaitFor(fd, POLLIN, deadline);
      if (ready == 0) return Failed(CallFailure::kTimeout);
      if (ready < 0) return Failed(CallFailure::kClosed, errno);
      continue;
    }
    if (n == 0) {
      if (buf.empty()) return Failed(CallFailure::kClosed);
      return Failed(CallFailure::kBadReply, 0,
                    header_end == std::string::npos ? "the reply ends inside its header"
                                                    : "the reply is shorter than its header says");
    }
    buf.append(chunk, static_cast<size_t>(n));
    if (header_end == std::string::npos) {
      header_end = buf.find('\n');
      if (header_end == std::string::npos) {
        if (buf.size() > kMaxHeaderBytes) {
          return Failed(CallFailure::kBadReply, 0, "no reply header in its first bytes");
        }
        continue;
      }
      auto parsed = ParseReplyHeader(std::string_view(buf).substr(0, header_end));
      if (!parsed) {
        return Failed(CallFailure::kBadReply, 0, "the reply header is not OVCNI/1 <exit> <length>");
      }
      header = *parsed;
    }
  }
}

}  // namespace

CallResult CallAgent(const std::string& socket_path, std::string_view request, int timeout_ms) {
  int64_t deadline = NowMs() + timeout_ms;
  Fd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) return Failed(CallFailure::kConnect, errno);
  CallResult r = Connect(fd.get(), socket_path, deadline);
  if (r.failure != CallFailure::kNone) return r;
  r = Send(fd.get(), request, deadline);
  if (r.failure != CallFailure::kNone) return r;
  return Receive(fd.get(), deadline);
}

}  // namespace overlay::cni

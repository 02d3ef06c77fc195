#include "io.h"

#include <unistd.h>

#include <cerrno>

namespace overlay::cni {

StdinRead ReadStdin(size_t limit) {
  StdinRead r;
  if (isatty(STDIN_FILENO)) return r;
  char buf[64 * 1024];
  for (;;) {
    ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EBADF) r.error = errno;
      return r;
    }
    if (n == 0) return r;
    size_t room = limit + 1 - r.bytes.size();
    r.bytes.append(buf, static_cast<size_t>(n) < room ? static_cast<size_t>(n) : room);
    if (r.bytes.size() > limit) {
      r.too_long = true;
      return r;
    }
  }
}

bool WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

}  // namespace overlay::cni

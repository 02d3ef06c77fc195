// Running a piece of setup inside another network namespace. Sockets and TAP devices belong to
// the namespace of the thread that creates them and keep working from any thread afterwards, so
// setup runs on a short-lived thread that joins the namespace, and the caller's stays put.
#pragma once

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <string>
#include <thread>

namespace overlay {

// Runs fn() in the namespace at `path` ("" = the caller's). Returns "" or an error message.
inline std::string InNetns(const std::string& path, const std::function<std::string()>& fn) {
  if (path.empty()) return fn();
  std::string result;
  std::thread t([&] {
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      result = "cannot open network namespace " + path + ": " + std::strerror(errno);
      return;
    }
    if (setns(fd, CLONE_NEWNET) != 0) {
      result = "cannot enter network namespace " + path + ": " + std::strerror(errno);
      close(fd);
      return;
    }
    close(fd);
    result = fn();
  });
  t.join();
  return result;
}

}  // namespace overlay

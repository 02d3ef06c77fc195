// The plugin's own I/O: stdin read whole (bounded), stdout written whole.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace overlay::cni {

struct StdinRead {
  std::string bytes;
  // More than the limit was offered: `bytes` holds only the first limit + 1.
  bool too_long = false;
  // errno of a failed read, 0 when none.
  int error = 0;
};

// Reads stdin to its end, but never more than limit + 1 bytes. A terminal (someone trying the
// plugin by hand) or a closed stdin reads as empty.
StdinRead ReadStdin(size_t limit);

// Writes all of `data` to `fd`; false on an error (EPIPE when the reader went away).
bool WriteAll(int fd, std::string_view data);

}  // namespace overlay::cni

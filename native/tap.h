// TAP devices for pod ports: multi-queue (one queue per packet thread), with a virtio-net
// header before every frame so the kernel can hand over and accept TCP super-frames.
#pragma once

#include <string>
#include <vector>

#include "packet.h"

namespace overlay {

struct TapSpec {
  std::string name;
  std::string netns;  // "" = the caller's namespace
  Mac mac = 0;
  int mtu = 1450;
  bool persistent = false;
  int queues = 1;
  bool offloads = true;  // TUNSETOFFLOAD CSUM|TSO4|TSO_ECN: super-frames from the pod
  bool uso = false;      // and USO4|USO6: UDP super-frames too (see TapSupportsUso)
};

struct TapDevice {
  std::vector<int> fds;  // one per queue, non-blocking
  bool tso = false;
  bool multi_queue = false;
};

// Creates the device (or attaches to an existing persistent one of that name), sets its MAC and
// MTU and brings it up. Returns "" or an error message; on error no fd is left open.
std::string OpenTap(const TapSpec& spec, TapDevice* out);

// Whether this kernel's TAP takes UDP segmentation offload (Linux 6.2+), found by setting it on
// a throwaway device in the caller's namespace.
bool TapSupportsUso();

// Marks a device persistent or not through one of its fds; a non-persistent device is deleted
// when its last fd closes.
bool SetTapPersistent(int fd, bool persistent);

}  // namespace overlay

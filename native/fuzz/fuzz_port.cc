// Fuzz target: bytes a pod's TAP hands the switch (virtio-net header + Ethernet frame), through
// Worker::ForwardFrame: anti-spoofing, ARP answers, local delivery, encapsulation and TSO
// segmentation towards a peer VTEP on loopback.
//
// Input: one or more records [port selector: 1][length: 2, little endian][vnet header + frame],
// the last one cut short by the end of the input. Each frame lives in a buffer of exactly its
// length, kept until the encapsulator has flushed, as the worker's TAP buffers are.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "../checksum.h"
#include "harness.h"

namespace {

constexpr size_t kMaxRecords = 8;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace overlay;
  fuzz::Env& env = fuzz::GetEnv();
#if defined(__x86_64__)
  // The vector checksum agrees with the portable one, at every alignment and length.
  if (kHaveAvx2) {
    for (size_t skip = 0; skip < 4 && skip <= size; ++skip) {
      uint64_t seed = size > skip ? data[skip] * 0x10001ull : 0;
      if (Fold16(SumBytesAvx2(data + skip, size - skip, seed)) !=
          Fold16(SumBytesScalar(data + skip, size - skip, seed)))
        __builtin_trap();
    }
  }
#endif
  std::vector<std::unique_ptr<uint8_t[]>> frames;
  size_t off = 0;
  while (off + 3 <= size && frames.size() < kMaxRecords) {
    uint32_t slot = data[off] % fuzz::kPorts;
    size_t len = data[off + 1] | (size_t{data[off + 2]} << 8);
    off += 3;
    len = std::min(len, size - off);
    std::unique_ptr<uint8_t[]> buf(new uint8_t[len ? len : 1]);
    std::memcpy(buf.get(), data + off, len);
    off += len;
    WorkerFuzzAccess::ForwardFrame(*env.worker, env.tables, slot, buf.get(), len);
    frames.push_back(std::move(buf));
  }
  WorkerFuzzAccess::Flush(*env.worker);
  fuzz::Trace(env, "port");
  return 0;
}

# Bench-only addon (bench/micro/datapath.mjs): links the data path's real sources and exposes
# each one next to its obvious simple version. Built in native/bench/build/, never in build/:
#   npx node-gyp rebuild --directory native/bench
# Compiler flags are those of the main binding.gyp.
{
  "targets": [
    {
      "target_name": "micro_bench",
      "sources": [
        "addon.cc",
        "frames.cc",
        "simple.cc",
        "tcp_peer.cc",
        "../encap.cc",
        "../coalesce.cc",
        "../tables.cc",
        "../tap.cc",
        "../underlay.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")", ".."],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
      "cflags_cc": ["-std=c++20", "-O2", "-Wall", "-Wextra", "-Wno-missing-field-initializers", "-fno-exceptions"]
    }
  ]
}

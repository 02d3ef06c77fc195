{
  "targets": [
    {
      "target_name": "overlay_switch",
      "sources": [
        "native/addon.cc",
        "native/switch.cc",
        "native/worker.cc",
        "native/encap.cc",
        "native/tap.cc",
        "native/underlay.cc",
        "native/coalesce.cc",
        "native/tables.cc",
        "native/probe.cc",
        "native/netlink.cc",
        "native/inspect.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
      "cflags_cc": ["-std=c++20", "-O2", "-Wall", "-Wextra", "-Wno-missing-field-initializers", "-fno-exceptions"],
      "conditions": [
        ["OS!='linux'", { "sources!": ["native/tap.cc"] }]
      ]
    },
    {
      "target_name": "overlay-cni",
      "type": "executable",
      "variables": { "overlay_cni_link%": "static" },
      "sources": [
        "native/plugin/main.cc",
        "native/plugin/protocol.cc",
        "native/plugin/netconf.cc",
        "native/plugin/io.cc",
        "native/plugin/agent_call.cc",
        "native/plugin/unreachable.cc",
        "native/plugin/output.cc"
      ],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
      "cflags_cc": ["-std=c++20", "-O2", "-Wall", "-Wextra", "-Wpedantic", "-Wshadow", "-fno-exceptions", "-fno-rtti"],
      "ldflags!": ["-rdynamic"],
      "conditions": [
        ["overlay_cni_link=='static'", { "ldflags": ["-static"] }]
      ]
    }
  ]
}

#!/usr/bin/env bash
# Builds the libFuzzer targets (ASan + UBSan) into native/fuzz/out/: fuzz_port, fuzz_underlay.
# Needs Debian's clang and libclang-rt-<version>-dev (libFuzzer and the sanitizer runtimes).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
native="$(dirname "$here")"
out="$here/out"
CXX="${CXX:-clang++}"
if ! command -v "$CXX" >/dev/null; then
  echo "$CXX not found: apt-get install clang libclang-rt-14-dev" >&2
  exit 1
fi
flags=(-std=c++20 -g -O1 -fno-omit-frame-pointer -Wall -Wextra -Wno-missing-field-initializers
  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -pthread)
# The packet path and what it links against; addon.cc (Node) and probe.cc (tests) stay out.
sources=(switch worker encap coalesce tables tap underlay)
mkdir -p "$out/obj"
objs=()
for s in "${sources[@]}"; do
  obj="$out/obj/$s.o"
  if [[ ! -f "$obj" || "$native/$s.cc" -nt "$obj" || -n "$(find "$native" -maxdepth 1 -name '*.h' -newer "$obj")" ]]; then
    echo "compile $s.cc"
    "$CXX" "${flags[@]}" -c "$native/$s.cc" -o "$obj"
  fi
  objs+=("$obj")
done
for t in fuzz_port fuzz_underlay; do
  echo "link $t"
  "$CXX" "${flags[@]}" "$here/$t.cc" "${objs[@]}" -o "$out/$t"
done

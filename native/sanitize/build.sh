#!/usr/bin/env bash
# Builds the addon with AddressSanitizer and UndefinedBehaviorSanitizer (clang, shared ASan
# runtime) into native/sanitize/out/build/Release/overlay_switch.node. build/ is left alone:
# node-gyp runs in native/sanitize/out/ on a copy of binding.gyp, next to a link to native/.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="$here/out"
if ! command -v clang++ >/dev/null; then
  echo "clang++ not found: apt-get install clang libclang-rt-14-dev" >&2
  exit 1
fi
mkdir -p "$out"
# Reconfigure when binding.gyp changed; otherwise make rebuilds only what changed.
action=build
if [[ ! -f "$out/build/Makefile" ]] || ! cmp -s "$root/binding.gyp" "$out/binding.gyp"; then
  action=rebuild
fi
cp "$root/binding.gyp" "$out/binding.gyp"
ln -sfn "$root/native" "$out/native"
san=(-fsanitize=address,undefined -fno-sanitize-recover=undefined -shared-libasan
  -fno-omit-frame-pointer -g)
# Node's headers: where npm's configuration says (as for npm run build), else node-gyp's cache.
nodedir="${npm_config_nodedir:-$(cd "$root" && npm config get nodedir 2>/dev/null || true)}"
# The CNI plugin links statically by default, which the shared ASan runtime cannot.
gyp_args=("$action" --release -j 1 --overlay-cni-link=dynamic)
if [[ -n "$nodedir" && "$nodedir" != undefined && "$nodedir" != null ]]; then
  gyp_args+=(--nodedir="$nodedir")
fi
cd "$out"
CC=clang CXX=clang++ CXXFLAGS="${san[*]}" CFLAGS="${san[*]}" LDFLAGS="${san[*]}" \
  "$root/node_modules/.bin/node-gyp" "${gyp_args[@]}" >"$out/node-gyp.log" 2>&1 || {
  tail -40 "$out/node-gyp.log" >&2
  exit 1
}
echo "$out/build/Release/overlay_switch.node"

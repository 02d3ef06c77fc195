#!/usr/bin/env bash
# Runs the data-plane tests (test/dataplane) against the ASan + UBSan build of the addon.
#   native/sanitize/run-tests.sh [test files or vitest args; default test/dataplane]
# Builds it first (build.sh), loads it through OVERLAY_ADDON, and preloads clang's shared ASan
# runtime into the Node processes of the run (node-only.cjs keeps it out of the tools the tests
# start). Node itself is not instrumented, so leak detection is off: Node's own allocations
# would drown the report. Sanitizer reports are written to
# native/sanitize/out/reports/; the script fails when vitest fails, when any report was
# written, or when the tests skipped instead of running.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
addon="$("$here/build.sh")" || exit 1
runtime="$(clang -print-file-name=libclang_rt.asan-x86_64.so)"
if [[ ! -f "$runtime" ]]; then
  echo "ASan runtime not found ($runtime): apt-get install libclang-rt-14-dev" >&2
  exit 1
fi
reports="$here/out/reports"
rm -rf "$reports"
mkdir -p "$reports"
export OVERLAY_ADDON="$addon"
# This run proves memory safety and defined behaviour; an instrumented build is several times
# slower, so the tests' timing bounds are off (test/helpers/timing.ts) and their timeouts longer.
export OVERLAY_TEST_TIMING=off
export LD_PRELOAD="$runtime"
export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:log_path=$reports/asan"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$reports/ubsan"
export NODE_OPTIONS="${NODE_OPTIONS:+$NODE_OPTIONS }--require=$here/node-only.cjs"
cd "$root"
log="$here/out/vitest.log"
start=$(date +%s)
# vitest is started by node directly (npx would start it through a shell, without the runtime).
node "$root/node_modules/vitest/vitest.mjs" run --testTimeout=240000 --hookTimeout=240000 \
  "${@:-test/dataplane}" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
echo "data-plane tests under ASan + UBSan: exit $rc in $(($(date +%s) - start)) s"
status=$rc
if compgen -G "$reports/*" >/dev/null; then
  echo "sanitizer reports:" >&2
  for f in "$reports"/*; do
    echo "== $f" >&2
    head -60 "$f" >&2
  done
  status=1
fi
if grep -q ': skipped, ' "$log"; then
  echo "tests were skipped, so the sanitized addon was not exercised" >&2
  status=1
fi
exit $status

#!/usr/bin/env bash
# Runs each fuzz target for the given number of seconds (default 30), one after the other.
#   native/fuzz/run.sh [seconds]
# Builds first (build.sh). Each target starts from the committed seeds (corpus/<target>) plus
# what earlier runs kept (out/corpus/<target>). A crashing input is written to
# $FUZZ_CRASH_DIR (default native/fuzz/crashes) as <target>-crash-<sha1>, and the script exits
# non-zero. Inputs saved under crashes/<target>-* are run first, and any that still crashes
# fails the run too. The log of each run is out/<target>.log; its last lines are the final stats.
# Environment: FUZZ_CRASH_DIR, FUZZ_MAX_LEN (default 8192), FUZZ_TARGETS (default both).
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
seconds="${1:-30}"
crash_dir="${FUZZ_CRASH_DIR:-$here/crashes}"
max_len="${FUZZ_MAX_LEN:-8192}"
targets=(${FUZZ_TARGETS:-fuzz_port fuzz_underlay})
"$here/build.sh" || exit 1
mkdir -p "$crash_dir"
status=0
for t in "${targets[@]}"; do
  work="$here/out/corpus/$t"
  mkdir -p "$work"
  log="$here/out/$t.log"
  # Inputs that crashed before, kept under crashes/: each must run cleanly now.
  known=("$here/crashes/$t"-*)
  if [[ -e "${known[0]}" ]]; then
    echo "== $t: ${#known[@]} saved crash inputs"
    if ! "$here/out/$t" "${known[@]}" >"$here/out/$t.regress.log" 2>&1; then
      echo "$t still crashes on a saved input:" >&2
      grep -E -A12 '^Running: |^==[0-9]+==ERROR|runtime error' "$here/out/$t.regress.log" | head -40 >&2
      status=1
    fi
  fi
  echo "== $t: ${seconds}s"
  "$here/out/$t" "$work" "$here/corpus/$t" \
    -max_total_time="$seconds" -max_len="$max_len" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$crash_dir/$t-" >"$log" 2>&1
  rc=$?
  grep -E '^(#[0-9]+[[:space:]]+DONE|stat::number_of_executed_units|stat::average_exec_per_sec|stat::new_units_added|stat::peak_rss_mb)' "$log" || true
  if ((rc != 0)); then
    echo "$t exited with $rc; the report:" >&2
    grep -E -A40 '^==[0-9]+==ERROR|runtime error' "$log" | head -60 >&2
    ls -1 "$crash_dir"/"$t"-* 2>/dev/null >&2
    status=1
  fi
done
exit $status

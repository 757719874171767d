#!/usr/bin/env bash
# The fuzz job: runs each libFuzzer target of tests/fuzz for a fixed time, starting from its
# seed corpus in tests/fuzz/corpus/<target>/, under ASan and UBSan (built by scripts/sanitize.sh
# into the same build directory).
#
#   scripts/fuzz.sh [--seconds N] [TARGET...]     (default: 25 s per target, every target)
#
# New inputs the fuzzer finds go to <build>/fuzz/<target>/ (not into the repository). A crash,
# a leak, a hang (>10 s per input), an input over 2 GB of memory or a UBSan report stops the
# target: the job fails and prints the reproducer's path (<build>/fuzz/<target>/crash-*).
# Add the reproducer to tests/fuzz/corpus/<target>/ with the fix, so CI replays it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${SNAKEPIT_ASAN_BUILD_DIR:-$root/build-asan}
seconds=25
targets=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --seconds) seconds=$2; shift 2 ;;
    --seconds=*) seconds=${1#--seconds=}; shift ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) targets+=("$1"); shift ;;
  esac
done
if [[ ${#targets[@]} -eq 0 ]]; then
  for src in "$root"/tests/fuzz/*.cpp; do
    targets+=("$(basename "$src" .cpp)")
  done
fi

SNAKEPIT_ASAN_BUILD_DIR=$build bash "$root/scripts/sanitize.sh" --build-only >/dev/null
cmake --build "$build" --target fuzz_targets >/dev/null
export ASAN_OPTIONS="halt_on_error=1:detect_leaks=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:suppressions=$root/tests/sanitizers/ubsan.supp"

status=0
for t in "${targets[@]}"; do
  work=$build/fuzz/$t
  mkdir -p "$work/corpus"
  log=$work/log.txt
  rc=0
  "$build/tests/fuzz/fuzz_$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -max_len=65536 -print_final_stats=1 -artifact_prefix="$work/" \
    "$work/corpus" "$root/tests/fuzz/corpus/$t" >"$log" 2>&1 || rc=$?
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 | grep -o '[0-9]*' || echo "?")
  corpus=$(find "$work/corpus" -type f | wc -l)
  if [[ $rc -ne 0 ]]; then
    status=1
    echo "fuzz: $t FAILED after $runs runs (exit $rc); reproducer:" $(ls "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-* 2>/dev/null) >&2
    grep -E -A 30 "ERROR|runtime error|deadly signal" "$log" | head -n 60 >&2 || tail -n 40 "$log" >&2
  else
    echo "fuzz: $t ok: $runs runs in ${seconds} s, coverage $cov edges, $corpus new inputs kept"
  fi
done
exit $status

#!/usr/bin/env bash
# The sanitizer job: builds everything with clang, AddressSanitizer and UndefinedBehaviorSanitizer
# (and libFuzzer's coverage, so scripts/fuzz.sh reuses this build), then runs the C++ unit,
# integration and client tests and the command-line tests under them.
#
#   scripts/sanitize.sh [--build-only] [CTEST ARGS...]
#
# Build directory: $SNAKEPIT_ASAN_BUILD_DIR (default build-asan). Sanitizer reports go to
# <build>/sanitizer-logs/; the job fails on any test failure, any ASan report, and any UBSan
# report not named in tests/sanitizers/ubsan.supp (which names only CAF 0.17's own header code,
# see docs/reliability.md, "Sanitizers"). Not run: python.bridge (Python only, no C++ code),
# consumer.find_package (links an uninstrumented consumer against the instrumented library), and
# two supervisor tests whose point is a 300 ms bound on a start off the supervisor's thread,
# which the sanitizers' slowdown breaks (the same code runs in the other supervisor tests).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${SNAKEPIT_ASAN_BUILD_DIR:-$root/build-asan}
build_only=0
if [[ ${1:-} == --build-only ]]; then
  build_only=1
  shift
fi

bash "$root/scripts/install-deps.sh"
logs=$build/sanitizer-logs
# Reports of the build's own runs (doctest's test discovery) land in the logs too.
mkdir -p "$logs"
[[ $build_only == 1 ]] || rm -f "$logs"/*
export ASAN_OPTIONS="halt_on_error=1:detect_leaks=1:detect_stack_use_after_return=0:log_path=$logs/asan:log_exe_name=1"
export UBSAN_OPTIONS="halt_on_error=0:print_stacktrace=1:suppressions=$root/tests/sanitizers/ubsan.supp:log_path=$logs/ubsan:log_exe_name=1"
export LSAN_OPTIONS="suppressions=$root/tests/sanitizers/lsan.supp:print_suppressions=0"
# Tests that measure memory skip themselves under it (ASan's quarantine holds freed memory).
export SNAKEPIT_SANITIZER=address,undefined

if [[ ! -f $build/build.ninja ]]; then
  CC=clang-14 CXX=clang++-14 cmake -S "$root" -B "$build" -G Ninja \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSNAKEPIT_SANITIZE=address,undefined -DSNAKEPIT_FUZZ=ON \
    -DSNAKEPIT_BUILD_BENCH=OFF >/dev/null
fi
start=$(date +%s)
cmake --build "$build"
echo "sanitize: build took $(( $(date +%s) - start )) s"
[[ $build_only == 1 ]] && exit 0

start=$(date +%s)
cd "$build"
status=0
skip='^(python\.bridge|consumer\.find_package'
skip+='|a slow start runs off the supervisor.s thread and does not hold the scheduler'
skip+='|start_child and restart_child with a start_timeout start off the supervisor.s thread)$'
ctest --output-on-failure -j "$(nproc)" -E "$skip" "$@" || status=$?
echo "sanitize: tests took $(( $(date +%s) - start )) s"

# Every report not suppressed is a failure, even in a test that passed (UBSan recovers; a
# report in a worker's host process may not fail its test).
reports=0
shopt -s nullglob
for f in "$logs"/asan* "$logs"/ubsan*; do
  if grep -q -E "runtime error|ERROR: (Address|Leak)Sanitizer" "$f"; then
    reports=$((reports + 1))
    echo "sanitize: report in $f:" >&2
    head -n 60 "$f" >&2
  fi
done
echo "sanitize: $reports report file(s) outside the suppressions"
if [[ $reports -gt 0 ]]; then
  status=1
fi
exit $status

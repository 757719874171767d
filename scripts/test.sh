#!/usr/bin/env bash
# Install, build, and run every test suite (C++ unit and integration tests with
# real Python workers, the Python package's pytest suite, the command line,
# and an installed-package consumer).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/scripts/build.sh"
cd "${SNAKEPIT_BUILD_DIR:-$root/build}"
ctest --output-on-failure -j "$(nproc)" "$@"

#!/usr/bin/env bash
# The main job: install, build, then start a pool of the showcase adapter,
# call a few tools and print results and timings.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/scripts/build.sh"
exec "${SNAKEPIT_BUILD_DIR:-$root/build}/snakepit" demo "$@"

#!/usr/bin/env bash
# Installs every Debian 12 package snakepit needs to build, run and test.
# Idempotent: prints nothing and changes nothing when all are present.
set -euo pipefail

packages=(
  # build
  g++ cmake make ninja-build pkg-config git
  # C++ libraries
  libcaf-dev libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libfmt-dev libtomlplusplus-dev libcli11-dev nlohmann-json3-dev doctest-dev
  libcpp-httplib-dev libssl-dev
  # Python worker side (Debian's packages: there is no PyPI here)
  python3 python3-grpcio python3-protobuf python3-pytest python3-psutil
  # tests: the Prometheus text-format parser checks the metrics endpoint
  python3-prometheus-client
  # examples and benchmarks
  python3-numpy
  # process tools used by tests (ps, kill); network namespaces for partition tests (ip, tc)
  procps iproute2 util-linux
  # sanitizer and fuzz jobs (scripts/sanitize.sh, fuzz.sh, tsan.sh): clang with its runtimes
  clang-14 libclang-rt-14-dev
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

sudo=()
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "install-deps: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  sudo=(sudo)
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

#!/usr/bin/env bash
# Regenerates the Python wire modules of snakepit_bridge from messages/bridge.proto and gateway.proto.
#
#   scripts/gen-python-stubs.sh [OUT_DIR]
#
# OUT_DIR defaults to the repository's python/ folder; the modules land in
# OUT_DIR/snakepit_bridge/_wire/ (bridge_pb2.py, bridge_pb2.pyi, bridge_pb2_grpc.py).
# The generated files are committed; tests/python/test_stubs.py fails when they are stale.
#
# Uses Debian's protoc (3.21, matches python3-protobuf) and grpc_python_plugin
# (protobuf-compiler-grpc), not grpc_tools, whose embedded protoc is too old.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$root/python}"
plugin="${GRPC_PYTHON_PLUGIN:-/usr/bin/grpc_python_plugin}"

command -v protoc >/dev/null || { echo "gen-python-stubs: protoc not found (apt-get install protobuf-compiler)" >&2; exit 1; }
[[ -x "$plugin" ]] || { echo "gen-python-stubs: $plugin not found (apt-get install protobuf-compiler-grpc)" >&2; exit 1; }

# Stage the proto under the package path so the generated grpc module imports
# `from snakepit_bridge._wire import bridge_pb2`.
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/snakepit_bridge/_wire" "$out/snakepit_bridge/_wire"
cp "$root/messages/bridge.proto" "$stage/snakepit_bridge/_wire/bridge.proto"
# gateway.proto imports "bridge.proto" (the C++ build's include root is messages/).
sed 's|^import "bridge.proto";|import "snakepit_bridge/_wire/bridge.proto";|' \
  "$root/messages/gateway.proto" > "$stage/snakepit_bridge/_wire/gateway.proto"

protoc -I "$stage" \
  --python_out="$out" --pyi_out="$out" --grpc_out="$out" \
  --plugin=protoc-gen-grpc="$plugin" \
  "$stage/snakepit_bridge/_wire/bridge.proto" "$stage/snakepit_bridge/_wire/gateway.proto"

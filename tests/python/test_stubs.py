"""The committed wire modules are what scripts/gen-python-stubs.sh makes of messages/bridge.proto."""

from __future__ import annotations

import subprocess

from bridge_helpers import PYTHON_DIR, ROOT

GENERATED = ("bridge_pb2.py", "bridge_pb2.pyi", "bridge_pb2_grpc.py",
             "gateway_pb2.py", "gateway_pb2.pyi", "gateway_pb2_grpc.py")


def test_committed_stubs_are_up_to_date(tmp_path):
    subprocess.run(["bash", str(ROOT / "scripts" / "gen-python-stubs.sh"), str(tmp_path)], check=True, timeout=60)
    stale = [name for name in GENERATED
             if (tmp_path / "snakepit_bridge" / "_wire" / name).read_bytes()
             != (PYTHON_DIR / "snakepit_bridge" / "_wire" / name).read_bytes()]
    assert not stale, f"stale wire modules {stale}: run scripts/gen-python-stubs.sh"


def test_the_grpc_module_imports_the_messages_from_the_package():
    text = (PYTHON_DIR / "snakepit_bridge" / "_wire" / "bridge_pb2_grpc.py").read_text()
    assert "from snakepit_bridge._wire import bridge_pb2" in text

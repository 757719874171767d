"""The worker's --shm-dir, --shm-threshold and --shm-bytes-max: checked at the command line, and
a worker started with them sends large results in segments (the test plays the host: the same
directory, argument segments it removes, result segments it takes)."""

from __future__ import annotations

import os
import subprocess
from typing import List

import pytest

from bridge_helpers import PYTHON, PYTHON_DIR, SHM_THRESHOLD, SHOWCASE, call, result_of, shm_files
from snakepit_bridge import shm
from snakepit_bridge._wire import bridge_pb2 as pb
from snakepit_bridge.values import decode, encode_map


def worker_command(*extra: str) -> List[str]:
    return [PYTHON, "-m", "snakepit_bridge.worker", "--adapter", SHOWCASE, "--socket", "/tmp/unused.sock", *extra]


def run_worker(*extra: str, env_dir: str = "") -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(PYTHON_DIR))
    env.pop("SNAKEPIT_SHM_DIR", None)
    if env_dir:
        env["SNAKEPIT_SHM_DIR"] = env_dir
    return subprocess.run(worker_command(*extra), env=env, capture_output=True, text=True, timeout=30)


def test_the_worker_refuses_an_shm_dir_that_is_not_private(tmp_path):
    loose = tmp_path / "loose"
    loose.mkdir()
    loose.chmod(0o750)
    done = run_worker("--shm-dir", str(loose))
    assert done.returncode == 2 and f"--shm-dir: '{loose}' has mode 0750, not 0700" in done.stderr
    done = run_worker(env_dir=str(loose))  # SNAKEPIT_SHM_DIR when --shm-dir is not given
    assert done.returncode == 2 and "has mode 0750, not 0700" in done.stderr
    a_file = tmp_path / "file"
    a_file.write_text("")
    done = run_worker("--shm-dir", str(a_file))
    assert done.returncode == 2 and "as a directory" in done.stderr
    loose.chmod(0o700)
    done = run_worker("--shm-dir", str(loose), "--shm-threshold", "-1")
    assert done.returncode == 2 and "--shm-threshold must be 0 or more" in done.stderr
    done = run_worker("--shm-dir", str(loose), "--shm-bytes-max", "0")
    assert done.returncode == 2 and "--shm-bytes-max must be positive" in done.stderr


def test_an_empty_shm_dir_turns_shared_memory_off_even_with_the_environment_variable(workers, tmp_path):
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o755)
    stub = workers.start(extra_args=("--shm-dir", ""), extra_env={"SNAKEPIT_SHM_DIR": str(loose)}).stub()
    assert call(stub, "make_bytes", size=200_000).result.WhichOneof("kind") == "bytes_value"


@pytest.mark.skipif(os.geteuid() != 0, reason="making a directory owned by another user needs root")
def test_the_worker_refuses_an_shm_dir_owned_by_another_user(tmp_path):
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o700)
    os.chown(theirs, 65534, 65534)
    done = run_worker("--shm-dir", str(theirs))
    assert done.returncode == 2 and "is owned by uid 65534, not by this user" in done.stderr


def test_a_worker_sends_large_results_in_segments_and_leaves_argument_segments(workers, shm_dir):
    stub = workers.start(extra_args=("--shm-dir", str(shm_dir), "--shm-threshold", str(SHM_THRESHOLD))).stub()
    response = call(stub, "make_bytes", size=1000)
    assert response.result.WhichOneof("kind") == "shared_bytes"
    assert shm_files(shm_dir) == [response.result.shared_bytes.name]
    assert decode(response.result, take=True) == bytes(1000)
    assert shm_files(shm_dir) == []
    created: List[str] = []
    request = pb.ExecuteRequest(tool="bytes_length", arguments=encode_map({"data": b"q" * 3000}, created=created))
    assert result_of(stub.Execute(request, timeout=20)) == 3000
    assert shm_files(shm_dir) == created  # the worker did not take the host's argument
    shm.unlink(created)
    assert shm_files(shm_dir) == []


def test_a_worker_echoes_an_array_through_segments(workers, shm_dir):
    np = pytest.importorskip("numpy")
    stub = workers.start(extra_args=("--shm-dir", str(shm_dir), "--shm-threshold", str(SHM_THRESHOLD))).stub()
    sent = np.arange(100, dtype=np.int16).reshape(10, 10)[:, ::2]
    created: List[str] = []
    request = pb.ExecuteRequest(tool="echo", arguments=encode_map({"value": sent}, created=created))
    response = stub.Execute(request, timeout=20)
    assert response.result.ndarray_value.WhichOneof("storage") == "segment"
    shm.unlink(created)
    back = decode(response.result, take=True)
    assert np.array_equal(back, sent) and shm_files(shm_dir) == []

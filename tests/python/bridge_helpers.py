"""Helpers for the snakepit_bridge tests: the package on sys.path, and real worker processes.

(A module of its own, not conftest.py, so test modules can import it by a unique name.)
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

ROOT = Path(__file__).resolve().parents[2]
PYTHON_DIR = ROOT / "python"
if str(PYTHON_DIR) not in sys.path:
    sys.path.insert(0, str(PYTHON_DIR))

import grpc  # noqa: E402

from snakepit_bridge._wire import bridge_pb2 as pb  # noqa: E402
from snakepit_bridge._wire import bridge_pb2_grpc as pb_grpc  # noqa: E402
from snakepit_bridge.values import decode, encode_map  # noqa: E402

#: The interpreter workers run with: the host's choice in CI, else the one running pytest.
PYTHON = os.environ.get("SNAKEPIT_PYTHON") or sys.executable
SHOWCASE = "snakepit_bridge.showcase.ShowcaseAdapter"
THREADED_SHOWCASE = "snakepit_bridge.showcase.ThreadedShowcaseAdapter"
READY_TIMEOUT_S = 30.0
#: Shared memory settings of the ``shm_dir`` fixture (conftest.py): small, to test both sides.
SHM_THRESHOLD = 16
SHM_BYTES_MAX = 4096


def shm_files(directory: Path) -> List[str]:
    """The public segment names in a shared memory directory, sorted: payloads nobody has taken
    or withdrawn yet (files kept for reuse have only their private ``p...`` name)."""
    return sorted(name for name in os.listdir(directory) if not name.startswith("p"))


def shm_private_files(directory: Path) -> List[str]:
    """The files a writer keeps for reuse (private names), sorted."""
    return sorted(name for name in os.listdir(directory) if name.startswith("p"))


def short_tmpdir() -> str:
    """A private directory with a short path (unix socket paths are limited to 107 bytes)."""
    return tempfile.mkdtemp(prefix="sp-", dir="/tmp")


def read_all(fd: int, timeout_s: float) -> bytes:
    """Reads a pipe until end-of-file, failing the test after ``timeout_s``."""
    data = b""
    end = time.monotonic() + timeout_s
    while True:
        left = end - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no end-of-file on the ready pipe within {timeout_s} s; got {data!r}")
        readable, _, _ = select.select([fd], [], [], left)
        if readable:
            chunk = os.read(fd, 65536)
            if not chunk:
                return data
            data += chunk


@dataclass
class Worker:
    """A worker process started the way the host starts one."""

    process: subprocess.Popen
    socket: str
    report: Dict[str, Any]
    lifeline: Optional[int]  # our (write) end; closing it tells the worker the host is gone
    max_message_bytes: int
    channels: List[grpc.Channel] = field(default_factory=list)

    def stub(self) -> pb_grpc.WorkerStub:
        limit = self.max_message_bytes + 65536
        channel = grpc.insecure_channel(f"unix:{self.socket}", options=[
            ("grpc.max_send_message_length", 2 * limit), ("grpc.max_receive_message_length", 2 * limit)])
        self.channels.append(channel)
        return pb_grpc.WorkerStub(channel)

    def close_lifeline(self) -> None:
        if self.lifeline is not None:
            os.close(self.lifeline)
            self.lifeline = None

    def wait(self, timeout_s: float = 20.0) -> int:
        return self.process.wait(timeout_s)


def call(stub: pb_grpc.WorkerStub, tool: str, timeout_s: float = 20.0, **arguments: Any) -> pb.ExecuteResponse:
    """One Execute over gRPC with keyword arguments."""
    return stub.Execute(pb.ExecuteRequest(request_id="t", tool=tool, arguments=encode_map(arguments)), timeout=timeout_s)


def result_of(response: pb.ExecuteResponse) -> Any:
    assert response.WhichOneof("outcome") == "result", response.error
    return decode(response.result)


class WorkerFactory:
    """Starts workers for one test and cleans every one of them up afterwards."""

    def __init__(self) -> None:
        self._workers: List[Worker] = []
        self._dirs: List[str] = []

    def start(
        self,
        adapter: str = SHOWCASE,
        *,
        concurrency: int = 1,
        max_message_bytes: int = 16 * 1024 * 1024,
        parent_pid: Optional[int] = None,
        python_path: tuple = (),
        extra_env: Optional[Dict[str, str]] = None,
        stdout: Any = subprocess.DEVNULL,
        stderr: Any = subprocess.DEVNULL,
        expect: str = "ready",
        extra_args: tuple = (),
    ) -> Worker:
        directory = short_tmpdir()
        self._dirs.append(directory)
        socket = os.path.join(directory, "w-1.sock")
        ready_r, ready_w = os.pipe()
        lifeline_r, lifeline_w = os.pipe()
        command = [
            PYTHON, "-m", "snakepit_bridge.worker",
            "--adapter", adapter,
            "--socket", socket,
            "--concurrency", str(concurrency),
            "--max-message-bytes", str(max_message_bytes),
            "--ready-fd", str(ready_w),
            "--lifeline-fd", str(lifeline_r),
            "--parent-pid", str(os.getpid() if parent_pid is None else parent_pid),
            "--worker-id", "pool-1",
        ]
        for path in python_path:
            command += ["--python-path", str(path)]
        command += list(extra_args)
        env = dict(os.environ)
        env.pop("SNAKEPIT_SHM_DIR", None)  # workers use shared memory only when a test says so
        env.update({"PYTHONPATH": str(PYTHON_DIR), "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1",
                    "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
        env.update(extra_env or {})
        process = subprocess.Popen(command, pass_fds=(ready_w, lifeline_r), env=env, stdout=stdout, stderr=stderr,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
        os.close(ready_w)
        os.close(lifeline_r)
        try:
            raw = read_all(ready_r, READY_TIMEOUT_S)
        finally:
            os.close(ready_r)
        report = json.loads(raw) if raw else {}
        if raw:
            assert raw.endswith(b"\n") and raw.count(b"\n") == 1, raw
        worker = Worker(process, socket, report, lifeline_w, max_message_bytes)
        self._workers.append(worker)
        if expect:
            assert report.get("status") == expect, report
        return worker

    def cleanup(self) -> None:
        for worker in self._workers:
            for channel in worker.channels:
                channel.close()
            if worker.process.poll() is None:
                os.killpg(worker.process.pid, signal.SIGKILL)
                worker.process.wait(10)
            worker.close_lifeline()
        for directory in self._dirs:
            shutil.rmtree(directory, ignore_errors=True)

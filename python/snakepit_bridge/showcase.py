"""``ShowcaseAdapter``: one tool per behaviour the host must handle, for tests, demos and benchmarks.

Start a pool of it with the adapter path ``snakepit_bridge.showcase.ShowcaseAdapter``.
"""

from __future__ import annotations

import asyncio
import builtins
import os
import platform
import sys
import threading
import time
from typing import Any, Dict, Optional

from snakepit_bridge.adapter import BaseAdapter
from snakepit_bridge.context import CallContext
from snakepit_bridge.tools import tool

_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


class ShowcaseAdapter(BaseAdapter):
    """Tools that exercise every path of the bridge: values, errors, timing, crashes, output."""

    def __init__(self) -> None:
        self.setup_unix_s: Optional[float] = None

    def setup(self) -> None:
        """Records when the worker set up (reported by ``worker_info``)."""
        self.setup_unix_s = time.time()

    @tool
    def noop(self) -> None:
        """Does nothing: measures the bare round trip."""

    @tool
    def echo(self, value: Any) -> Any:
        """Returns its argument unchanged."""
        return value

    @tool
    def add(self, a: float, b: float) -> float:
        """Returns a + b (two ints give an exact int).

        Args:
            a: the first addend.
            b: the second addend.
        """
        return a + b

    @tool
    def sleep(self, seconds: float) -> float:
        """Sleeps in a pool thread (the GIL is released) and returns the seconds slept."""
        start = time.perf_counter()
        time.sleep(seconds)
        return time.perf_counter() - start

    @tool
    async def async_sleep(self, seconds: float) -> float:
        """Sleeps on the event loop (an ``async def`` tool) and returns the seconds slept."""
        start = time.perf_counter()
        await asyncio.sleep(seconds)
        return time.perf_counter() - start

    @tool
    def cpu_burn(self, milliseconds: int) -> int:
        """Spins a pure-Python loop (holding the GIL) for that long; returns the iterations."""
        end = time.perf_counter() + milliseconds / 1000.0
        iterations = 0
        while time.perf_counter() < end:
            iterations += 1
        return iterations

    @tool
    def fail(self, message: str = "boom", exception: str = "ValueError") -> None:
        """Raises the builtin exception named ``exception`` with ``message``."""
        kind = getattr(builtins, exception, None)
        if not (isinstance(kind, type) and issubclass(kind, Exception)):
            raise ValueError(f"{exception!r} is not a builtin exception type")
        raise kind(message)

    @tool
    def make_bytes(self, size: int) -> bytes:
        """Returns ``size`` zero bytes."""
        return bytes(size)

    @tool
    def bytes_length(self, data: bytes) -> int:
        """Returns the length of ``data``."""
        return len(data)

    @tool
    def worker_info(self, ctx: CallContext) -> Dict[str, Any]:
        """Facts about this worker process: ids, interpreter, thread settings, setup time."""
        is_gil_enabled = getattr(sys, "_is_gil_enabled", None)
        return {
            "pid": os.getpid(),
            "ppid": os.getppid(),
            "worker_id": ctx.worker_id,
            "python_version": platform.python_version(),
            "implementation": sys.implementation.name,
            "gil_enabled": bool(is_gil_enabled()) if is_gil_enabled is not None else True,
            "executable": sys.executable,
            "thread_env": {name: os.environ.get(name) for name in _THREAD_VARIABLES},
            "threads": threading.active_count(),
            "setup_unix_s": self.setup_unix_s,
        }

    @tool
    def unencodable(self) -> Any:
        """Returns a value with no wire form (a set inside a dict): fails with encode_failed."""
        return {"a": [1, 2, {3}]}

    @tool
    def crash(self, exit_code: int = 13) -> None:
        """Ends the worker process at once with ``exit_code`` (``os._exit``)."""
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(exit_code)

    @tool
    def noisy(self, lines: int = 1000) -> int:
        """Prints ``lines`` lines to stdout and to stderr; returns ``lines``."""
        for index in range(lines):
            print(f"noisy stdout line {index}")
            print(f"noisy stderr line {index}", file=sys.stderr)
        sys.stdout.flush()
        return lines

"""Showcase adapters, for tests, demos and benchmarks.

- ``snakepit_bridge.showcase.ShowcaseAdapter``: one tool per behaviour the host must handle
  (process profile).
- ``snakepit_bridge.showcase.ThreadedShowcaseAdapter``: a ``ThreadSafeAdapter`` with tools for
  comparing the profiles (sleeping, pure-Python CPU work, GIL-releasing hashing and matrix
  products) and for the thread-safety checker (a correct counter and a deliberately racy one).

Both have ``emit_events``, which emits telemetry events (for checking that they reach the host,
and that drops are counted), and the session tools ``session_put``, ``session_get``,
``session_info`` and ``closed_sessions`` (``docs/sessions.md``), and the streaming tools
(generators: ``count``, ``blobs``, ``fail_after``, ``async_count``, ``tracked``,
``async_tracked``, ``count_tracked``) with their probes ``stream_closed_log`` and ``pulled``
(``docs/streaming.md``), and the host tool callers ``host_call``, ``async_host_call``,
``host_tool_names`` and ``host_call_or_error`` (``docs/host-tools.md``), and the array tools
``array_info``, ``array_sum`` and ``make_array`` (``docs/arrays.md``; they need numpy).
"""

from __future__ import annotations

import asyncio
import builtins
import hashlib
import os
import sys
import threading
import time
from typing import Any, AsyncIterator, Dict, Iterator, List, Optional, Tuple

from snakepit_bridge import runtime
from snakepit_bridge import thread_check
from snakepit_bridge.adapter import BaseAdapter
from snakepit_bridge.context import CallContext
from snakepit_bridge.errors import HostToolError
from snakepit_bridge.sessions import SessionState
from snakepit_bridge.telemetry import emit
from snakepit_bridge.thread_safe import ThreadSafeAdapter
from snakepit_bridge.tools import tool

_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


class TelemetryShowcase:
    """The telemetry tool both showcase adapters have (a mixin: tools are found across the MRO)."""

    @tool
    def emit_events(self, count: int, ctx: CallContext, name: str = "showcase.tick") -> int:
        """Emits ``count`` events named ``name``, with measurement ``i`` (0, 1, ...) and metadata
        ``source="showcase"`` (plus ``tool`` and ``request_id``); returns how many were queued
        (the others were dropped, the buffer being full, or events are disabled).

        Args:
            count: how many events to emit (0 or more).
            name: the event name; the host publishes ``python.<name>``.
        """
        if count < 0:
            raise ValueError("count must be at least 0")
        source = {"source": "showcase"}
        return sum(ctx.emit(name, {"i": index}, source) for index in range(count))

    @tool
    def emit_later(self, count: int, delay_ms: int, name: str = "showcase.later") -> int:
        """Emits ``count`` events from a background thread ``delay_ms`` after returning, outside
        any call: they reach the host with the next health ping (or reply). Returns ``count``.

        Args:
            count: how many events to emit (0 or more).
            delay_ms: how long the thread waits first.
            name: the event name; the host publishes ``python.<name>``.
        """
        if count < 0 or delay_ms < 0:
            raise ValueError("count and delay_ms must be at least 0")

        def later() -> None:
            time.sleep(delay_ms / 1000)
            for index in range(count):
                emit(name, {"i": index}, {"source": "background"})

        threading.Thread(target=later, name="emit_later", daemon=True).start()
        return count


def _numpy() -> Any:
    try:
        import numpy
    except ImportError as exc:
        raise RuntimeError(f"this tool needs numpy, which this interpreter cannot import ({exc}); "
                           "on Debian: apt-get install python3-numpy") from None
    return numpy


def _maps_shared_memory(array: Any) -> bool:
    """Whether ``array`` is a view of a shared-memory mapping (its base chain reaches an mmap)."""
    import mmap

    base = array
    while base is not None:
        if isinstance(base, mmap.mmap):
            return True
        if isinstance(base, memoryview):
            base = base.obj
            continue
        base = getattr(base, "base", None)
    return False


class ArrayShowcase:
    """Tools that show how arrays arrive and leave (a mixin for both showcase adapters)."""

    @tool
    def array_info(self, value: Any) -> Dict[str, Any]:
        """What an argument arrived as: Python type, dtype, shape, whether it is writeable and
        whether it is a zero-copy view of shared memory."""
        info: Dict[str, Any] = {"type": type(value).__name__}
        if hasattr(value, "dtype"):
            info.update(dtype=str(value.dtype), shape=list(value.shape),
                        writeable=bool(value.flags.writeable),
                        c_contiguous=bool(value.flags.c_contiguous),
                        shared=_maps_shared_memory(value))
        elif isinstance(value, memoryview):
            info.update(format=value.format, shape=list(value.shape), writeable=not value.readonly,
                        shared=_maps_shared_memory(value))
        return info

    @tool
    def array_sum(self, value: Any, delay_s: float = 0.0) -> float:
        """The sum of an array's elements (numpy's ``sum``, in the array's own precision) as a
        float, the real part for complex, after sleeping ``delay_s`` (so a caller can give up
        while this still reads the data)."""
        np = _numpy()
        if delay_s > 0:
            time.sleep(delay_s)
        return float(np.sum(value).real)

    @tool
    def make_array(self, dtype: str, shape: List[int], order: str = "C", step: int = 1) -> Any:
        """``arange`` in ``dtype`` (modulo 2 for bool) of the given shape; ``order="F"`` returns
        a Fortran-order array and ``step > 1`` a strided view of a larger one, which both travel
        as C-contiguous arrays."""
        np = _numpy()
        count = 1
        for extent in shape:
            count *= extent
        base = np.arange(count * step)
        if dtype == "bool":
            base = base % 2 == 0
        data = base.astype(dtype)[::step].reshape(shape)
        return np.asfortranarray(data) if order == "F" else data


class ShowcaseAdapter(ArrayShowcase, TelemetryShowcase, BaseAdapter):
    """Tools that exercise every path of the bridge: values, errors, timing, crashes, output,
    telemetry events."""

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
        return _burn(milliseconds)

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
        return {
            "pid": os.getpid(),
            "ppid": os.getppid(),
            "worker_id": ctx.worker_id,
            **runtime.runtime_info(),
            "executable": sys.executable,
            "thread_env": {name: os.environ.get(name) for name in _THREAD_VARIABLES},
            "threads": threading.active_count(),
            "setup_unix_s": self.setup_unix_s,
            "cpu_affinity": sorted(os.sched_getaffinity(0)),
        }

    @tool
    def spawn_sleeper(self, seconds: float = 600.0) -> int:
        """Starts a child process (in this worker's process group) that sleeps ``seconds``;
        returns its pid. Shows what happens to an adapter's subprocesses when the host dies."""
        import subprocess

        child = subprocess.Popen([sys.executable, "-c", f"import time; time.sleep({float(seconds)})"])
        return child.pid

    @tool
    def getenv(self, name: str) -> Optional[str]:
        """The worker's environment variable ``name`` (None when unset)."""
        return os.environ.get(name)

    @tool
    def numpy_scalars(self) -> Dict[str, Any]:
        """Returns numpy scalars (needs numpy): they arrive as plain int, float and bool."""
        import numpy as np  # only this tool needs it; the package does not

        return {"int64": np.int64(-42), "uint8": np.uint8(200), "float32": np.float32(0.5),
                "bool": np.bool_(True)}

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

    @tool
    def hold_memory(self, megabytes: int) -> int:
        """Allocates and keeps ``megabytes`` MiB (touched, so it is resident); returns the
        MiB held so far. For testing memory-based recycling."""
        held = getattr(self, "_held", [])
        held.append(b"\x01" * (megabytes * _MIB))
        self._held = held
        return sum(len(block) for block in held) // _MIB

    # --- sessions (docs/sessions.md) -------------------------------------------------------

    @tool
    def session_put(self, key: str, value: Any, ctx: CallContext) -> int:
        """Stores ``value`` under ``key`` in this call's session state; returns how many keys
        the state holds. Fails without a session."""
        state = ctx.session
        with state.lock:  # two steps: exact also when calls of the session run at once
            state[key] = value
            return len(state)

    @tool
    def session_get(self, key: str, ctx: CallContext) -> Any:
        """The value stored under ``key`` in this call's session state, or None."""
        return ctx.session.get(key)

    @tool
    def session_info(self, ctx: CallContext) -> Dict[str, Any]:
        """This worker's view of the call's session: ``session_id``, ``moved`` (the call was
        flagged ``session_moved``), ``pid``, ``calls`` (of the session on this worker, this one
        included) and ``keys`` (sorted)."""
        state = ctx.session
        return {"session_id": ctx.session_id, "moved": ctx.session_moved, "pid": os.getpid(),
                "calls": state.calls, "keys": sorted(state)}

    @tool
    def closed_sessions(self, ctx: CallContext) -> List[List[str]]:
        """``[session_id, reason]`` of every session state closed in this process so far, in
        order (recorded by ``on_session_closed``)."""
        with _CLOSED_LOCK:
            return [list(entry) for entry in _CLOSED]

    def on_session_closed(self, session_id: str, reason: str, state: Optional[SessionState]) -> None:
        """Records the close for ``closed_sessions`` and says so on stderr."""
        with _CLOSED_LOCK:
            _CLOSED.append((session_id, reason))
        print(f"showcase: session {session_id} closed ({reason})", file=sys.stderr, flush=True)

    # --- streaming (docs/streaming.md) ------------------------------------------------------

    @tool
    def count(self, n: int, delay_ms: int = 0) -> Iterator[int]:
        """Streams 0, 1, ..., n-1, sleeping ``delay_ms`` before each item after the first.

        Args:
            n: how many items.
            delay_ms: the pause between items.
        """
        for index in range(n):
            if index and delay_ms > 0:
                time.sleep(delay_ms / 1000)
            yield index

    @tool
    def blobs(self, n: int, size: int) -> Iterator[bytes]:
        """Streams ``n`` byte strings of ``size`` bytes each (byte ``i % 256`` for item ``i``)."""
        for index in range(n):
            yield bytes([index % 256]) * size

    @tool
    def fail_after(self, n: int) -> Iterator[int]:
        """Streams 0..n-1, then raises ``ValueError("failed after N items")``."""
        yield from range(n)
        raise ValueError(f"failed after {n} items")

    @tool
    async def async_count(self, n: int, delay_ms: int = 0) -> AsyncIterator[int]:
        """Streams 0..n-1 from an async generator, awaiting ``delay_ms`` before each item after
        the first."""
        for index in range(n):
            if index and delay_ms > 0:
                await asyncio.sleep(delay_ms / 1000)
            yield index

    @tool
    def tracked(self, n: int, ctx: CallContext, delay_ms: int = 20) -> Iterator[int]:
        """Streams 0..n-1 slowly (``delay_ms`` before each item after the first) and records how
        the generator ended in ``stream_closed_log``: ``"finished"``, ``"closed"`` (cancelled,
        deadline, ...: its ``finally`` ran on ``close()``) or ``"failed"``."""
        yielded, how = 0, "failed"
        try:
            for index in range(n):
                if index and delay_ms > 0:
                    time.sleep(delay_ms / 1000)
                yielded += 1
                yield index
            how = "finished"
        except GeneratorExit:
            how = "closed"
            raise
        finally:
            _log_stream_exit(ctx, yielded, how)

    @tool
    async def async_tracked(self, n: int, ctx: CallContext, delay_ms: int = 20) -> AsyncIterator[int]:
        """``tracked`` as an async generator; ``"cancelled"`` in the log when cancelled at its
        ``await`` (the deadline passed, or the stream was cancelled during a step)."""
        yielded, how = 0, "failed"
        try:
            for index in range(n):
                if index and delay_ms > 0:
                    await asyncio.sleep(delay_ms / 1000)
                yielded += 1
                yield index
            how = "finished"
        except GeneratorExit:
            how = "closed"
            raise
        except asyncio.CancelledError:
            how = "cancelled"
            raise
        finally:
            _log_stream_exit(ctx, yielded, how)

    @tool
    def stream_closed_log(self) -> List[Dict[str, Any]]:
        """How the ``tracked`` and ``async_tracked`` generators of this process ended, in order:
        ``{"tool", "request_id", "correlation_id", "yielded", "how"}`` (``yielded``: the items
        the generator produced)."""
        with _STREAMS_LOCK:
            return [dict(entry) for entry in _STREAM_LOG]

    @tool
    def count_tracked(self, n: int, key: str) -> Iterator[int]:
        """Streams 0..n-1, counting under ``key`` each item the worker pulled from the generator
        (read with ``pulled``): shows that the generator is not run ahead of the credits."""
        for index in range(n):
            with _STREAMS_LOCK:
                _PULLED[key] = _PULLED.get(key, 0) + 1
            yield index

    @tool
    def pulled(self, key: str) -> int:
        """How many items ``count_tracked`` produced under ``key`` so far."""
        with _STREAMS_LOCK:
            return _PULLED.get(key, 0)

    # --- host tools (docs/host-tools.md) ---

    @tool
    def host_call(self, name: str, args: Dict[str, Any], ctx: CallContext) -> Any:
        """Calls host tool ``name`` with ``args`` and returns its result. A failure propagates
        as ``HostToolError`` (the caller sees ``python_exception`` with the host's message)."""
        return ctx.call_host_with(name, args)

    @tool
    async def async_host_call(self, name: str, args: Dict[str, Any], ctx: CallContext) -> Any:
        """``host_call`` from an ``async def`` tool (``await ctx.acall_host_with``)."""
        return await ctx.acall_host_with(name, args)

    @tool
    def host_tool_names(self, ctx: CallContext) -> List[str]:
        """The names of the host tools this pool registered, sorted."""
        return sorted(spec.name for spec in ctx.host_tools())

    @tool
    def host_call_or_error(self, name: str, args: Dict[str, Any], ctx: CallContext) -> Dict[str, Any]:
        """Calls host tool ``name``: ``{"ok": result}``, or ``{"error_kind": kind, "error":
        message}`` when it fails (the host's kind and message, without an exception)."""
        try:
            return {"ok": ctx.call_host_with(name, args)}
        except HostToolError as exc:
            return {"error_kind": exc.kind, "error": exc.message}


_MIB = 1024 * 1024
_CLOSED: List[Tuple[str, str]] = []  # (session id, reason) of the session states closed in this process
_CLOSED_LOCK = threading.Lock()
_STREAM_LOG: List[Dict[str, Any]] = []  # how tracked generators ended (stream_closed_log)
_PULLED: Dict[str, int] = {}  # items count_tracked produced, by key
_STREAMS_LOCK = threading.Lock()


def _log_stream_exit(ctx: CallContext, yielded: int, how: str) -> None:
    with _STREAMS_LOCK:
        _STREAM_LOG.append({"tool": ctx.tool, "request_id": ctx.request_id, "correlation_id": ctx.correlation_id,
                            "yielded": yielded, "how": how})


def _burn(milliseconds: int) -> int:
    end = time.perf_counter() + milliseconds / 1000.0
    iterations = 0
    while time.perf_counter() < end:
        iterations += 1
    return iterations


class ThreadedShowcaseAdapter(ArrayShowcase, TelemetryShowcase, ThreadSafeAdapter):
    """A thread-safe showcase for thread-profile pools: the workloads that compare the profiles,
    and a correct and a racy counter for the thread-safety checker.

    Start a pool of it with ``snakepit_bridge.showcase.ThreadedShowcaseAdapter``.
    """

    def __init__(self) -> None:
        self.setup_unix_s: Optional[float] = None
        self.counter = 0
        self.racy = 0

    def setup(self) -> None:
        self.setup_unix_s = time.time()
        self.zeros = bytes(_MIB)  # read-only, shared by every thread: bytes cannot change

    @tool
    def noop(self) -> None:
        """Does nothing: measures the bare round trip."""

    @tool
    def echo(self, value: Any) -> Any:
        """Returns its argument unchanged."""
        return value

    @tool
    def sleep(self, seconds: float) -> float:
        """Sleeps (the GIL is released, as in I/O) and returns the seconds slept."""
        start = time.perf_counter()
        time.sleep(seconds)
        return time.perf_counter() - start

    @tool
    def cpu_burn(self, milliseconds: int) -> int:
        """Spins a pure-Python loop (holding the GIL) for that long; returns the iterations.
        Threads do not run this in parallel on a Python with the GIL."""
        return _burn(milliseconds)

    @tool
    def sha256(self, megabytes: int) -> str:
        """SHA-256 of ``megabytes`` MiB of zeros, hex. hashlib releases the GIL for large inputs,
        so threads hash in parallel."""
        if megabytes < 0:
            raise ValueError("megabytes must be at least 0")
        digest = hashlib.sha256()
        for _ in range(megabytes):
            digest.update(self.zeros)
        return digest.hexdigest()

    @tool
    def matmul(self, n: int) -> float:
        """Multiplies two n x n float64 matrices with numpy (BLAS releases the GIL); returns the sum
        of the product as a checksum. The matrices are built once per thread (``self.local``)."""
        if n < 1:
            raise ValueError("n must be at least 1")
        try:
            import numpy
        except ImportError as exc:
            raise RuntimeError(f"tool 'matmul' needs numpy, which this interpreter cannot import ({exc}); "
                               "on Debian: apt-get install python3-numpy") from None
        cached = getattr(self.local, "matrices", None)
        if cached is None or cached[0] != n:
            a = numpy.arange(n * n, dtype=numpy.float64).reshape(n, n) / float(n * n)
            cached = (n, a, numpy.ascontiguousarray(a.T))
            self.local.matrices = cached  # per thread: no lock needed
        _, a, b = cached
        return float((a @ b).sum())

    @tool
    def counter_increment(self) -> int:
        """Adds one to a shared counter under ``self.lock``; returns the new value (correct)."""
        with self.locked():
            self.counter += 1
            return self.counter

    @tool
    def racy_increment(self, pause_s: float = 0.01) -> int:
        """Adds one to ``self.racy`` WITHOUT the lock, pausing between the read and the write: a
        deliberate data race (increments get lost) for the thread-safety checker to find."""
        value = self.racy
        time.sleep(pause_s)
        self.racy = value + 1
        return value + 1

    @tool
    def counters(self) -> Dict[str, int]:
        """The two counters: ``counter`` (exact) and ``racy`` (may have lost increments)."""
        with self.locked():
            return {"counter": self.counter, "racy": self.racy}

    @tool
    def worker_info(self, ctx: CallContext) -> Dict[str, Any]:
        """Facts about this worker: ids, interpreter, thread settings, the thread serving this
        call, the calls running now, and the thread-safety checker's findings."""
        return {
            "pid": os.getpid(),
            "ppid": os.getppid(),
            "worker_id": ctx.worker_id,
            **runtime.runtime_info(),
            "executable": sys.executable,
            "thread_env": {name: os.environ.get(name) for name in _THREAD_VARIABLES},
            "threads": threading.active_count(),
            "thread": threading.current_thread().name,
            "active_requests": self.active_requests(),
            "thread_check": thread_check.mode(),
            "thread_check_findings": len(thread_check.findings()),
            "setup_unix_s": self.setup_unix_s,
        }

    # The session tools of ShowcaseAdapter: they keep nothing on self, so they are thread-safe.
    session_put = ShowcaseAdapter.session_put
    session_get = ShowcaseAdapter.session_get
    session_info = ShowcaseAdapter.session_info
    closed_sessions = ShowcaseAdapter.closed_sessions
    on_session_closed = ShowcaseAdapter.on_session_closed

    # The streaming tools of ShowcaseAdapter: they keep nothing on self, so they are thread-safe.
    count = ShowcaseAdapter.count
    blobs = ShowcaseAdapter.blobs
    fail_after = ShowcaseAdapter.fail_after
    async_count = ShowcaseAdapter.async_count
    tracked = ShowcaseAdapter.tracked
    async_tracked = ShowcaseAdapter.async_tracked
    stream_closed_log = ShowcaseAdapter.stream_closed_log
    count_tracked = ShowcaseAdapter.count_tracked
    pulled = ShowcaseAdapter.pulled

    # The host tool callers of ShowcaseAdapter: they keep nothing on self, so they are thread-safe.
    host_call = ShowcaseAdapter.host_call
    async_host_call = ShowcaseAdapter.async_host_call
    host_tool_names = ShowcaseAdapter.host_tool_names
    host_call_or_error = ShowcaseAdapter.host_call_or_error

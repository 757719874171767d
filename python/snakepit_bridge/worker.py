"""Entry point of a worker process: ``python -m snakepit_bridge.worker``.

The start contract with the host (the C++ side implements the other half)::

    PYTHON -m snakepit_bridge.worker --adapter pkg.module.Class --socket /tmp/sp-XXXX/w-3.sock
        --concurrency 1 --max-message-bytes N --ready-fd 3 --lifeline-fd 4
        --parent-pid PID --worker-id pool-3 [--profile process|thread]
        [--thread-check off|warn|strict] [--event-buffer N] [--max-sessions N] [--host-socket PATH]
        [--shm-dir DIR [--shm-threshold N] [--shm-bytes-max N] [--shm-cache-bytes N]] [--python-path DIR]...
    PYTHON -m snakepit_bridge.worker --check

1. Before any heavy import: on Linux ``prctl(PR_SET_PDEATHSIG, SIGKILL)``; exit 70 at once if
   ``getppid()`` is not ``--parent-pid``; a daemon thread reads the lifeline fd and calls
   ``os._exit(70)`` on end-of-file or error (the host is gone). The telemetry event buffer gets
   its capacity (``--event-buffer``; 0 disables events). With ``--shm-dir`` (default:
   ``$SNAKEPIT_SHM_DIR`` when set; a directory owned by us with mode 0700, else exit 2),
   payloads over ``--shm-threshold`` bytes travel in shared memory files there, up to
   ``--shm-bytes-max`` bytes each (:mod:`snakepit_bridge.shm`; turned on once the adapter is
   set up, before serving); without it (or with ``--shm-dir ""``) everything is inline.
2. Prepend each ``--python-path`` to ``sys.path``, import the adapter, check it subclasses
   ``BaseAdapter`` (in the thread profile: ``ThreadSafeAdapter``) and its tools can be served,
   instantiate it, run ``setup()``.
3. On failure: one JSON line ``{"status": "error", "kind": "startup_failed", "message": ...,
   "python_type": ..., "traceback": ...}`` on the ready fd, close it, exit 3.
4. Serve service ``Worker`` on ``unix:<socket>`` (gRPC limits: max-message-bytes + 65536), with
   the thread-safety checker on when ``--thread-check`` is ``warn`` or ``strict``. With
   ``--host-socket``, tools can call the host's service ``Host`` on ``unix:<host-socket>``
   (``ctx.call_host``; the channel opens on first use, ``docs/host-tools.md``).
5. Then one JSON line ``{"status": "ready", "pid", "worker_id", "python_version",
   "implementation", "gil_enabled", "free_threaded", "profile", "concurrency", "thread_safe",
   "thread_check", "adapter", "tools", "idempotent_tools", "warnings"}`` on the ready fd, and
   close it. In the thread profile, ``warnings`` names the imported libraries listed as not
   thread-safe (also on stderr).
6. Stop RPC (its grace_ms) or SIGTERM/SIGINT (5000 ms): stop accepting, let calls in flight
   finish within the grace, ``on_session_closed(id, "stopping", state)`` for each session still
   held, ``teardown()``, exit 0.

Exit codes: 0 graceful stop, 2 bad command line, 3 startup failed, 70 host gone or not our
parent. ``--check`` exits 0 after importing grpc and the wire modules, printing versions as
JSON on stdout (1 and a JSON error otherwise).

Only the standard library's light modules are imported at module level, on purpose.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from typing import Any, Dict, List, Optional

from snakepit_bridge import shm, telemetry  # standard library only: light

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_STARTUP_FAILED = 3
EXIT_HOST_GONE = 70

DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024
PROFILES = ("process", "thread")
THREAD_CHECK_MODES = ("off", "warn", "strict")  # as snakepit_bridge.thread_check.MODES (not imported: heavy)
SIGTERM_GRACE_S = 5.0
PROCESS_SWITCH_INTERVAL_S = 0.0001
DEFAULT_MAX_SESSIONS = 10000  # as snakepit_bridge.sessions.DEFAULT_MAX_SESSIONS (not imported here: kept light)
_PR_SET_PDEATHSIG = 1
SOCKET_PATH_BYTES_MAX = 107  # as snakepit_bridge.server.SOCKET_PATH_BYTES_MAX (not imported here: heavy)
SHM_DIR_ENV = "SNAKEPIT_SHM_DIR"  # bridge.proto names it; --shm-dir wins


def _parse(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m snakepit_bridge.worker",
                                     description="A snakepit worker: serves one adapter's tools over gRPC.")
    parser.add_argument("--check", action="store_true",
                        help="import grpc and the wire modules, print versions as JSON, exit 0")
    parser.add_argument("--adapter", help="dotted path of the adapter class, e.g. pkg.module.Class")
    parser.add_argument("--socket", help="unix socket path to serve on (at most 107 bytes)")
    parser.add_argument("--concurrency", type=int, default=1, help="tool calls that run at once (default 1)")
    parser.add_argument("--profile", choices=PROFILES, default="process",
                        help="process (the default) or thread: serve --concurrency calls at once from a "
                             "thread pool; the adapter must derive from snakepit_bridge.ThreadSafeAdapter")
    parser.add_argument("--thread-check", choices=THREAD_CHECK_MODES, default="off",
                        help="off (the default), warn or strict: check tool calls for adapter state written, "
                             "or libraries that are not thread-safe used, from two threads without self.lock")
    parser.add_argument("--max-message-bytes", type=int, default=DEFAULT_MAX_MESSAGE_BYTES,
                        help="payload limit for arguments and results (default 16 MiB)")
    parser.add_argument("--ready-fd", type=int, help="fd to write the one-line JSON ready/error report to")
    parser.add_argument("--lifeline-fd", type=int, help="fd whose end-of-file means the host is gone")
    parser.add_argument("--parent-pid", type=int, help="exit 70 unless this is our parent's pid")
    parser.add_argument("--worker-id", default="", help="the host's id for this worker")
    parser.add_argument("--event-buffer", type=int, default=telemetry.DEFAULT_EVENT_BUFFER, metavar="N",
                        help="telemetry events held until a reply or ping carries them; more are dropped and "
                             f"counted (default {telemetry.DEFAULT_EVENT_BUFFER}; 0 disables events)")
    parser.add_argument("--max-sessions", type=int, default=DEFAULT_MAX_SESSIONS, metavar="N",
                        help="session states kept at most; past it the least recently used idle one is "
                             f"evicted (default {DEFAULT_MAX_SESSIONS})")
    parser.add_argument("--host-socket", default="", metavar="PATH",
                        help="unix socket of the host's service Host: tools can call the host tools registered "
                             "with the pool (ctx.call_host); without it they have none")
    parser.add_argument("--shm-dir", default=os.environ.get(SHM_DIR_ENV) or None, metavar="DIR",
                        help="directory (owned by us, mode 0700) for payloads passed in shared memory files; "
                             f"default ${SHM_DIR_ENV}; without either, every payload travels inline")
    parser.add_argument("--shm-threshold", type=int, default=shm.DEFAULT_THRESHOLD, metavar="N",
                        help="payloads over N bytes go to shared memory when --shm-dir is set "
                             f"(default {shm.DEFAULT_THRESHOLD})")
    parser.add_argument("--shm-cache-bytes", type=int, default=shm.DEFAULT_CACHE_BYTES, metavar="N",
                        help="bytes of idle segment files kept for reuse (default "
                             f"{shm.DEFAULT_CACHE_BYTES}, 256 MiB)")
    parser.add_argument("--shm-bytes-max", type=int, default=shm.DEFAULT_BYTES_MAX, metavar="N",
                        help="largest payload in shared memory, in bytes; a larger one is payload_too_large "
                             f"(default {shm.DEFAULT_BYTES_MAX}, 1 GiB)")
    parser.add_argument("--cpu-affinity", default="", metavar="CPUS",
                        help="comma-separated CPUs to run on, set before anything starts a thread "
                             "(threads started later inherit it)")
    parser.add_argument("--preload", action="store_true",
                        help="run the adapter class's preload() before creating it (a preloaded pool's "
                             "worker started without its fork server)")
    parser.add_argument("--forked", action="store_true",
                        help=argparse.SUPPRESS)  # set by snakepit_bridge.fork_server in the forked child
    parser.add_argument("--python-path", action="append", default=[], metavar="DIR",
                        help="prepend DIR to sys.path (repeatable, kept in order)")
    args = parser.parse_args(argv)
    if not args.check:
        if not args.adapter or not args.socket:
            parser.error("--adapter and --socket are required")
        if args.concurrency < 1:
            parser.error("--concurrency must be at least 1")
        if args.max_message_bytes < 1:
            parser.error("--max-message-bytes must be positive")
        if args.event_buffer < 0:
            parser.error("--event-buffer must be 0 (disabled) or more")
        if args.max_sessions < 1:
            parser.error("--max-sessions must be at least 1")
        if len(os.fsencode(args.host_socket)) > SOCKET_PATH_BYTES_MAX:
            parser.error(f"--host-socket is longer than {SOCKET_PATH_BYTES_MAX} bytes (the unix socket path limit)")
        if args.shm_threshold < 0:
            parser.error("--shm-threshold must be 0 or more")
        if args.shm_bytes_max < 1:
            parser.error("--shm-bytes-max must be positive")
        if args.shm_cache_bytes < 0:
            parser.error("--shm-cache-bytes must be 0 or more")
        if args.shm_dir:  # "" turns it off (overrides $SNAKEPIT_SHM_DIR)
            reason = shm.check_directory(args.shm_dir)
            if reason is not None:
                parser.error(f"--shm-dir: {reason}")
        for name in ("ready_fd", "lifeline_fd"):
            fd = getattr(args, name)
            if fd is not None:
                try:
                    os.fstat(fd)
                except OSError:
                    parser.error(f"--{name.replace('_', '-')} {fd} is not an open file descriptor")
    return args


def _say(text: str) -> None:
    """A line on stderr, for people reading the host's log of this worker."""
    try:
        os.write(2, f"snakepit worker: {text}\n".encode("utf-8", "replace"))
    except OSError:
        pass


def _guard_parent(args: argparse.Namespace) -> None:
    """Step 1: die with the host, and never outlive it.

    A worker forked by a fork server skips the parent-death signal and the parent check: its
    parent is the fork server, whose loss must not take running workers along. The lifeline
    (its write end lives in the host only) still ends it when the host dies.
    """
    if sys.platform.startswith("linux") and not args.forked:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            _say(f"prctl(PR_SET_PDEATHSIG) failed: errno {ctypes.get_errno()}")
    if args.parent_pid is not None and not args.forked and os.getppid() != args.parent_pid:
        _say(f"parent is pid {os.getppid()}, not --parent-pid {args.parent_pid}: the host is gone")
        os._exit(EXIT_HOST_GONE)
    for fd in (args.ready_fd, args.lifeline_fd):
        if fd is not None:
            os.set_inheritable(fd, False)  # children the adapter starts must not hold them open
    if args.lifeline_fd is not None:
        threading.Thread(target=_watch_lifeline, args=(args.lifeline_fd,), name="snakepit-lifeline",
                         daemon=True).start()


def _watch_lifeline(fd: int) -> None:
    while True:
        try:
            if not os.read(fd, 4096):
                break
        except OSError:
            break
    _say("lifeline closed: the host is gone, exiting")
    os._exit(EXIT_HOST_GONE)


def _report(fd: Optional[int], line: Dict[str, Any]) -> None:
    """Writes the one JSON line to the ready fd and closes it."""
    if fd is None:
        return
    data = (json.dumps(line) + "\n").encode("utf-8")
    try:
        while data:
            data = data[os.write(fd, data):]
    except OSError as exc:
        _say(f"cannot write to --ready-fd {fd}: {exc}")
    finally:
        try:
            os.close(fd)
        except OSError:
            pass


class _StartupFailure(Exception):
    def __init__(self, message: str, cause: Optional[BaseException]) -> None:
        super().__init__(message)
        self.message = message
        self.cause = cause

    def line(self) -> Dict[str, Any]:
        import traceback

        from snakepit_bridge.errors import type_name

        cause = self.cause
        return {
            "status": "error",
            "kind": "startup_failed",
            "message": self.message,
            "python_type": type_name(type(cause)) if cause is not None else "",
            "traceback": "".join(traceback.format_exception(cause)) if cause is not None else "",
        }


def _describe(exc: BaseException) -> str:
    from snakepit_bridge.errors import type_name

    return f"{type_name(type(exc))}: {exc}"


def import_adapter_class(path: str, profile: str = "process", threads: int = 1) -> Any:
    """Imports the adapter class and checks it can be served; raises _StartupFailure."""
    import importlib

    from snakepit_bridge.adapter import BaseAdapter, tool_table

    module_name, _, qualname = path.partition(":") if ":" in path else path.rpartition(".")
    if not module_name or not qualname:
        raise _StartupFailure(f"adapter '{path}' is not a dotted path like 'package.module.Class'",
                              ValueError(path))
    try:
        target: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            target = getattr(target, part)
    except BaseException as exc:  # SystemExit at import time too
        raise _StartupFailure(f"cannot import adapter '{path}': {_describe(exc)}", exc) from None
    if not (isinstance(target, type) and issubclass(target, BaseAdapter)):
        exc = TypeError(f"{path} is {target!r}")
        raise _StartupFailure(f"adapter '{path}' is not a subclass of snakepit_bridge.BaseAdapter", exc)
    if profile == "thread":
        from snakepit_bridge.errors import ThreadSafetyError
        from snakepit_bridge.thread_safe import is_thread_safe, refusal

        if not is_thread_safe(target):
            message = refusal(path, threads)
            raise _StartupFailure(message, ThreadSafetyError(message))
    try:
        tool_table(target)
    except BaseException as exc:  # SystemExit and KeyboardInterrupt too
        raise _StartupFailure(f"adapter '{path}' has a tool that cannot be served: {exc}", exc) from None
    return target


def run_preload(path: str, cls: Any) -> None:
    """Runs the class-level ``preload()`` hook; raises _StartupFailure."""
    try:
        cls.preload()
    except BaseException as exc:  # SystemExit and KeyboardInterrupt too
        raise _StartupFailure(f"preload() of adapter '{path}' failed: {_describe(exc)}", exc) from None


def _load_adapter(path: str, profile: str = "process", threads: int = 1, preload: bool = False) -> Any:
    """Step 2: import, check, instantiate and set up the adapter; raises _StartupFailure."""
    target = import_adapter_class(path, profile, threads)
    if preload:
        run_preload(path, target)
    try:
        adapter = target()
    except BaseException as exc:  # SystemExit and KeyboardInterrupt too
        raise _StartupFailure(f"cannot create adapter '{path}': {_describe(exc)}", exc) from None
    try:
        adapter.setup()
    except BaseException as exc:  # SystemExit and KeyboardInterrupt too
        raise _StartupFailure(f"setup() of adapter '{path}' failed: {_describe(exc)}", exc) from None
    return adapter


async def _serve(args: argparse.Namespace, adapter: Any) -> int:
    """Steps 4-6."""
    import asyncio

    from snakepit_bridge.host import HostClient
    from snakepit_bridge.server import WorkerServer, runtime_info
    from snakepit_bridge.thread_safe import is_thread_safe

    host = None
    try:
        if args.host_socket:
            host = HostClient(args.host_socket, max_message_bytes=args.max_message_bytes, worker_id=args.worker_id)
        server = WorkerServer(adapter, adapter_path=args.adapter, socket_path=args.socket,
                              concurrency=args.concurrency, max_message_bytes=args.max_message_bytes,
                              worker_id=args.worker_id, thread_check=args.thread_check,
                              max_sessions=args.max_sessions, host=host)
    except Exception as exc:
        return _fail_serving(args, adapter, f"cannot serve adapter '{args.adapter}'", exc)
    try:
        await server.start()
    except Exception as exc:
        return _fail_serving(args, adapter, f"cannot serve on unix:{args.socket}", exc)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, server.request_stop, SIGTERM_GRACE_S)
    warnings = _profile_warnings(args.profile)
    for warning in warnings:
        _say(f"warning: {warning}")
    _report(args.ready_fd, {
        "status": "ready",
        "pid": os.getpid(),
        "worker_id": args.worker_id,
        **runtime_info(),
        "profile": args.profile,
        "concurrency": args.concurrency,
        "thread_safe": is_thread_safe(type(adapter)),
        "thread_check": args.thread_check,
        "adapter": args.adapter,
        "tools": sorted(server.dispatcher.tools),
        "idempotent_tools": sorted(name for name, definition in server.dispatcher.tools.items()
                                   if definition.spec.idempotent),
        "warnings": warnings,
    })
    await server.serve_until_stopped()
    await server.dispatcher.sessions.close_all()  # on_session_closed(..., "stopping"), before teardown
    _teardown(adapter)
    if host is not None:
        host.close()
    if server.dispatcher.threads_busy:
        _say(f"{server.dispatcher.threads_busy} tool call(s) still running after the grace period; exiting anyway")
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(EXIT_OK)  # pool threads cannot be interrupted, and the interpreter would join them
    return EXIT_OK


def _profile_warnings(profile: str) -> List[str]:
    """Thread profile: one warning per imported library that the compat table lists as not
    thread-safe (imported by the adapter's module or its ``setup()``)."""
    if profile != "thread":
        return []
    from snakepit_bridge import compat

    return [compat.warning_for(info) for info in compat.unsafe_imported()]


def _fail_serving(args: argparse.Namespace, adapter: Any, what: str, exc: BaseException) -> int:
    """The adapter is set up but cannot be served: says why (stderr and the ready fd), tears the
    adapter down, and gives the exit code."""
    failure = _StartupFailure(f"{what}: {_describe(exc)}", exc)
    _say(failure.message)
    _report(args.ready_fd, failure.line())
    _teardown(adapter)
    return EXIT_STARTUP_FAILED


def _teardown(adapter: Any) -> None:
    try:
        adapter.teardown()
    except Exception:
        import traceback

        _say("teardown() failed:\n" + traceback.format_exc())


_CHECK_HINT = ("snakepit workers need Python 3.10+ with grpcio and protobuf: on Debian, /usr/bin/python3 with "
               "python3-grpcio and python3-protobuf, or a venv made with --system-site-packages")


def platform_version() -> str:
    return ".".join(str(part) for part in sys.version_info[:3])


def _check() -> int:
    """``--check``: can this interpreter run workers?"""
    try:
        import importlib

        import google.protobuf
        import grpc

        import snakepit_bridge
        from snakepit_bridge._wire import bridge_pb2
        from snakepit_bridge.server import runtime_info

        importlib.import_module("snakepit_bridge._wire.bridge_pb2_grpc")
    except Exception as exc:
        print(json.dumps({"status": "error", "executable": sys.executable,
                          "message": f"{type(exc).__name__}: {exc}", "hint": _CHECK_HINT}))
        return 1
    if sys.version_info < (3, 10):
        print(json.dumps({"status": "error", "executable": sys.executable,
                          "message": f"Python {platform_version()} is too old: snakepit_bridge needs 3.10 or newer",
                          "hint": _CHECK_HINT}))
        return 1
    print(json.dumps({
        "status": "ok",
        "executable": sys.executable,
        **runtime_info(),
        "grpc_version": grpc.__version__,
        "protobuf_version": google.protobuf.__version__,
        "snakepit_bridge_version": snakepit_bridge.__version__,
        "wire": bridge_pb2.DESCRIPTOR.package,
    }))
    return EXIT_OK


def main(argv: Optional[List[str]] = None) -> int:
    """Runs a worker; returns its exit code."""
    args = _parse(argv)
    if args.check:
        return _check()
    _guard_parent(args)
    if args.cpu_affinity:
        # First: every thread started later (gRPC's, BLAS's) inherits the mask.
        try:
            cpus = {int(cpu) for cpu in args.cpu_affinity.split(",")}
            os.sched_setaffinity(0, cpus)
        except (ValueError, OSError) as exc:
            failure = _StartupFailure(
                f"cannot pin the worker to CPUs {args.cpu_affinity}: {exc}", exc)
            _say(failure.message)
            _report(args.ready_fd, failure.line())
            return EXIT_STARTUP_FAILED
    if args.profile == "process":
        # Tools run in a thread of their own while the event loop reads the next calls and
        # writes replies; a waiting thread gets the GIL only after the switch interval. 5 ms by
        # default, that holds the loop (and so the host's next call) back for most of a short
        # call. Costs nothing while the loop is idle: no switch is forced without a waiter.
        sys.setswitchinterval(PROCESS_SWITCH_INTERVAL_S)
    telemetry.configure(args.event_buffer)  # before the adapter is imported: its setup() may emit
    sys.path[:0] = args.python_path
    try:
        adapter = _load_adapter(args.adapter, args.profile, args.concurrency, preload=args.preload)
    except _StartupFailure as failure:
        _say(failure.message)
        _report(args.ready_fd, failure.line())
        return EXIT_STARTUP_FAILED
    if args.shm_dir:
        # After the adapter is loaded (checking a tool's default encodes it: no segment for
        # that), before serving. _parse checked the directory; configure checks what it opens.
        try:
            shm.configure(args.shm_dir, args.shm_threshold, args.shm_bytes_max, args.shm_cache_bytes)
        except ValueError as exc:
            return _fail_serving(args, adapter, "cannot use --shm-dir", exc)
    import asyncio

    return asyncio.run(_serve(args, adapter))


if __name__ == "__main__":
    sys.exit(main())

"""The fork server of a preloaded pool: ``python -m snakepit_bridge.fork_server``.

Started by the host once per pool with ``preload = true``::

    PYTHON -m snakepit_bridge.fork_server --adapter pkg.module.Class --ready-fd 3 --lifeline-fd 4
        --control-fd 5 --parent-pid PID [--python-path DIR]...

1. Dies with the host (``PR_SET_PDEATHSIG``, the parent check, the lifeline), like a worker.
2. Imports what every worker imports (grpc, protobuf, the wire and server modules), then the
   adapter's module, checks the adapter, and runs its class-level ``preload()`` once.
3. Refuses to serve (exit 3, a ``startup_failed`` line on the ready fd) when the process has
   more than one thread at that point: ``fork()`` copies only the calling thread, so a lock
   another thread held (the GIL's helpers, a BLAS pool, grpc's core) would stay locked forever
   in every worker. That is also why no gRPC object is created here: grpc's core starts its
   threads when the first channel or server is made, and each forked worker makes its own.
4. Reports ``{"status": "ready", "fork_server": true, ...}`` on the ready fd, then serves the
   host on the control socket (``SOCK_SEQPACKET``, fields separated by NUL bytes):

   - host: ``fork, REQ, CWD, N, ARG*N, M, (KEY, VALUE)*M`` with 4 descriptors (the worker's
     stdout, stderr, ready fd and lifeline): forks; the child takes them as fds 1-4, moves to
     a process group of its own, applies the environment and runs
     ``snakepit_bridge.worker.main(ARGS + ["--forked"])``. Answer ``forked, REQ, PID`` with
     a pidfd of the child, or ``failed, REQ, TEXT``.
   - host: ``reap, PID``: the host has finished with that child; reap it.
   - server: ``exit, PID, SIGNALED, CODE`` when a child ends. The child is left a zombie until
     the host's ``reap`` (so its pid, and the process group the host signals, cannot be
     reused while the host still refers to it).

   The lifeline's end (the host is gone) ends the server; the control socket's end too. Its
   children live on: each has the host's lifeline of its own.

Exit codes: 0 control socket closed, 2 bad command line, 3 start failed, 70 host gone.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import select
import signal
import socket
import sys
import time
from typing import Dict, List, Optional, Set

from snakepit_bridge import worker as _worker

CONTROL_MESSAGE_BYTES_MAX = 64 * 1024  # as fork_request_bytes_max on the host
CHILD_FDS = 4  # stdout, stderr, ready, lifeline
EXIT_CHILD_BROKEN = 71  # the forked child failed before the worker's own main ran


def _parse(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m snakepit_bridge.fork_server",
                                     description="Fork server of a preloaded snakepit pool.")
    parser.add_argument("--adapter", required=True, help="dotted path of the adapter class")
    parser.add_argument("--ready-fd", type=int, required=True)
    parser.add_argument("--lifeline-fd", type=int, required=True)
    parser.add_argument("--control-fd", type=int, required=True)
    parser.add_argument("--parent-pid", type=int)
    parser.add_argument("--python-path", action="append", default=[], metavar="DIR")
    return parser.parse_args(argv)


def thread_count() -> int:
    """Threads of this process, native ones included (``threading`` sees only Python's)."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        import threading

        return threading.active_count()


def _preload(args: argparse.Namespace) -> Dict[str, object]:
    """Step 2-3; raises the worker's startup failure."""
    started = time.monotonic()
    # The modules every worker needs: imported once here, shared by every fork.
    import google.protobuf  # noqa: F401
    import grpc  # noqa: F401

    import snakepit_bridge.host  # noqa: F401
    import snakepit_bridge.server  # noqa: F401

    cls = _worker.import_adapter_class(args.adapter)
    _worker.run_preload(args.adapter, cls)
    threads = thread_count()
    if threads > 1:
        import threading

        names = ", ".join(t.name for t in threading.enumerate() if t is not threading.main_thread())
        detail = f" (Python threads: {names})" if names else " (native threads, e.g. a BLAS or OpenMP pool)"
        message = (f"the fork server of adapter '{args.adapter}' has {threads} threads after importing "
                   f"the adapter and running preload(){detail}; a forked worker would get only one "
                   "of them and could deadlock on a lock another held. Start threads in setup(), "
                   "not in preload() or at import time (for BLAS: keep OMP_NUM_THREADS/"
                   "OPENBLAS_NUM_THREADS at 1), or set preload = false")
        raise _worker._StartupFailure(message, RuntimeError(message))
    return {"preload_ms": round((time.monotonic() - started) * 1000.0, 3)}


class _Server:
    def __init__(self, control_fd: int, lifeline_fd: int) -> None:
        self.control = socket.socket(fileno=control_fd)
        self.control.setblocking(True)
        self.lifeline_fd = lifeline_fd
        self.children: Set[int] = set()
        self.reported: Set[int] = set()
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(self.wake_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # wakes poll() through the wakeup fd

    def serve(self) -> int:
        poller = select.poll()
        for fd in (self.control.fileno(), self.lifeline_fd, self.wake_r):
            poller.register(fd, select.POLLIN)
        while True:
            try:
                events = poller.poll()
            except InterruptedError:
                continue
            for fd, _ in events:
                if fd == self.wake_r:
                    self._drain_wakeups()
                    self._report_exits()
                elif fd == self.lifeline_fd:
                    try:
                        data = os.read(fd, 4096)
                    except OSError:
                        data = b""
                    if not data:
                        _worker._say("fork server: lifeline closed: the host is gone, exiting")
                        return _worker.EXIT_HOST_GONE
                elif not self._on_control():
                    return _worker.EXIT_OK
            self._report_exits()  # a SIGCHLD may land between poll() and the wakeup drain

    def _drain_wakeups(self) -> None:
        try:
            while os.read(self.wake_r, 4096):
                pass
        except BlockingIOError:
            pass

    def _on_control(self) -> bool:
        try:
            data, fds, _, _ = socket.recv_fds(self.control, CONTROL_MESSAGE_BYTES_MAX, CHILD_FDS)
        except InterruptedError:
            return True
        except OSError as exc:
            _worker._say(f"fork server: control socket: {exc}")
            return False
        if not data:
            for fd in fds:
                os.close(fd)
            return False
        fields = data.split(b"\0")
        verb = fields[0]
        if verb == b"fork":
            self._fork(fields, fds)
        else:
            for fd in fds:
                os.close(fd)
            if verb == b"reap" and len(fields) == 2:
                self._reap(int(fields[1]))
            else:
                _worker._say(f"fork server: unknown control message {verb[:32]!r}")
        return True

    def _send(self, fields: List[bytes], fds: Optional[List[int]] = None) -> None:
        socket.send_fds(self.control, [b"\0".join(fields)], fds or [])

    def _fork(self, fields: List[bytes], fds: List[int]) -> None:
        req = fields[1] if len(fields) > 1 else b"0"
        try:
            if len(fds) != CHILD_FDS:
                raise ValueError(f"fork request with {len(fds)} descriptors, expected {CHILD_FDS}")
            cwd = fields[2].decode()
            nargs = int(fields[3])
            argv = [f.decode() for f in fields[4:4 + nargs]]
            nenv = int(fields[4 + nargs])
            pairs = fields[5 + nargs:5 + nargs + 2 * nenv]
            if len(argv) != nargs or len(pairs) != 2 * nenv:
                raise ValueError("truncated fork request")
            env = {pairs[i].decode(): pairs[i + 1].decode() for i in range(0, len(pairs), 2)}
        except (ValueError, IndexError, UnicodeDecodeError) as exc:
            for fd in fds:
                os.close(fd)
            self._send([b"failed", req, f"bad fork request: {exc}".encode()])
            return
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            pid = os.fork()
        except OSError as exc:
            for fd in fds:
                os.close(fd)
            self._send([b"failed", req, f"fork(): {exc}".encode()])
            return
        if pid == 0:
            self._become_worker(argv, env, cwd, fds)  # never returns
        for fd in fds:
            os.close(fd)
        try:
            os.setpgid(pid, pid)  # also done by the child: whichever runs first
        except OSError:
            pass
        self.children.add(pid)
        # Taken before the child can be reaped (only a 'reap' does that), so it names the child.
        pidfd = os.pidfd_open(pid)
        try:
            self._send([b"forked", req, str(pid).encode()], [pidfd])
        finally:
            os.close(pidfd)

    def _become_worker(self, argv: List[str], env: Dict[str, str], cwd: str, fds: List[int]) -> None:
        code = EXIT_CHILD_BROKEN
        try:
            os.setpgid(0, 0)
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            # Out of the way first: a received descriptor may sit on a number (3, say) that
            # another one is about to be moved to.
            high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 64) for fd in fds]
            for target, fd in enumerate(high, start=1):
                os.dup2(fd, target)
            self.control.detach()
            os.closerange(CHILD_FDS + 1, os.sysconf("SC_OPEN_MAX"))
            os.environ.update(env)
            if cwd:
                os.chdir(cwd)
            sys.argv = ["snakepit_bridge.worker", *argv]
            code = _worker.main([*argv, "--forked"])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else EXIT_CHILD_BROKEN
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)

    def _report_exits(self) -> None:
        for pid in sorted(self.children - self.reported):
            try:
                # WNOWAIT: look, don't reap (see the module docstring).
                info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                self.children.discard(pid)
                continue
            if info is None:
                continue
            signaled = info.si_code in (os.CLD_KILLED, os.CLD_DUMPED)
            self.reported.add(pid)
            self._send([b"exit", str(pid).encode(), b"1" if signaled else b"0", str(info.si_status).encode()])

    def _reap(self, pid: int) -> None:
        if pid not in self.children:
            return
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        self.children.discard(pid)
        self.reported.discard(pid)


def main(argv: Optional[List[str]] = None) -> int:
    args = _parse(argv)
    # The parent-death signal and the parent check as in a worker, but no lifeline thread:
    # the loop watches the lifeline itself, so the server stays single-threaded.
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_worker._PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if args.parent_pid is not None and os.getppid() != args.parent_pid:
        _worker._say(f"fork server: parent is pid {os.getppid()}, not {args.parent_pid}: the host is gone")
        return _worker.EXIT_HOST_GONE
    for fd in (args.ready_fd, args.lifeline_fd, args.control_fd):
        os.set_inheritable(fd, False)
    sys.path[:0] = args.python_path
    try:
        info = _preload(args)
    except _worker._StartupFailure as failure:
        _worker._say(failure.message)
        _worker._report(args.ready_fd, failure.line())
        return _worker.EXIT_STARTUP_FAILED
    server = _Server(args.control_fd, args.lifeline_fd)
    _worker._report(args.ready_fd, {"status": "ready", "fork_server": True, "pid": os.getpid(),
                                    "adapter": args.adapter, **info})
    return server.serve()


if __name__ == "__main__":
    sys.exit(main())

"""One tool call from request to response: the path shared by the server and the test client.

Look the tool up, check the payload size, decode and check the arguments, wait for a slot, run
the tool (sync tools in the thread pool, ``async def`` tools on the event loop), time it, encode
the result, check its size, and map every failure to a wire ``Error``. Every response carries
the telemetry events emitted since the previous response or ping.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Callable, Dict, Generator, List, Optional, Set, Tuple

from snakepit_bridge import arguments as _arguments
from snakepit_bridge import telemetry, values
from snakepit_bridge._wire import bridge_pb2 as pb
from snakepit_bridge.adapter import BaseAdapter, tool_table
from snakepit_bridge.context import CallContext
from snakepit_bridge.errors import (
    BAD_ARGUMENTS,
    INTERNAL,
    PAYLOAD_TOO_LARGE,
    PYTHON_EXCEPTION,
    TIMEOUT,
    UNKNOWN_TOOL,
    BridgeError,
    type_name,
)
from snakepit_bridge.sessions import DEFAULT_MAX_SESSIONS, SessionManager, SessionState
from snakepit_bridge.thread_check import MODES as THREAD_CHECK_MODES
from snakepit_bridge.thread_check import ThreadChecker
from snakepit_bridge.thread_safe import ThreadSafeAdapter, begin_request, end_request
from snakepit_bridge.tools import ToolDef

if TYPE_CHECKING:
    from snakepit_bridge.host import HostClient

_THIS_FILE = os.path.normcase(os.path.abspath(__file__))


class Dispatcher:
    """Serves tool calls of one adapter instance.

    Args:
        adapter: the adapter, already set up.
        concurrency: how many tool calls run at once; more wait for a slot, in order.
        max_payload_bytes: the largest encoded arguments and result (``Value`` bytes) allowed.
        worker_id: reported to tools through :class:`CallContext`.
        thread_check: ``"off"``, ``"warn"`` or ``"strict"``: the thread-safety checker
            (:mod:`snakepit_bridge.thread_check`); it watches the adapter from here on.
        thread_check_report: where the checker's lines go (default stderr).
        max_sessions: session states kept at most (``--max-sessions``, :mod:`snakepit_bridge.sessions`).
        host: the channel to the host's tools (``--host-socket``), reached by tools through
            ``ctx.call_host``; None when the pool has none.

    For a :class:`ThreadSafeAdapter`, the calls running now are kept up to date for its
    ``active_requests()``. Each call carrying a session id is held in its session by
    :attr:`sessions`, which also runs the adapter's session hooks.
    """

    def __init__(self, adapter: BaseAdapter, *, concurrency: int, max_payload_bytes: int, worker_id: str = "",
                 thread_check: str = "off", thread_check_report: Optional[Callable[[str], None]] = None,
                 max_sessions: int = DEFAULT_MAX_SESSIONS, host: Optional["HostClient"] = None) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if thread_check not in THREAD_CHECK_MODES:
            raise ValueError(f"thread_check must be one of {', '.join(THREAD_CHECK_MODES)}, not {thread_check!r}")
        self.adapter = adapter
        self.tools: Dict[str, ToolDef] = tool_table(type(adapter))
        self._tracked = isinstance(adapter, ThreadSafeAdapter)
        self.checker: Optional[ThreadChecker] = None
        if thread_check != "off":
            self.checker = ThreadChecker(adapter, thread_check, report=thread_check_report)
        self.max_payload_bytes = max_payload_bytes
        self.worker_id = worker_id
        self.host = host
        self.in_flight = 0  # calls accepted and not answered yet (running or waiting for a slot)
        self.served = 0  # calls answered since start
        self._slots = asyncio.Semaphore(concurrency)
        self._executor = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="snakepit-tool")
        self._threads_lock = threading.Lock()
        self._threads_busy = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._closed = False
        self.sessions = SessionManager(adapter, self._run_hook, max_sessions=max_sessions)

    @property
    def threads_busy(self) -> int:
        """Sync tools running in the pool right now (they cannot be interrupted)."""
        with self._threads_lock:
            return self._threads_busy

    async def wait_idle(self, timeout_s: float) -> bool:
        """Waits until no call is in flight, for at most ``timeout_s``; True when idle."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        except asyncio.TimeoutError:
            return False
        return True

    def close(self) -> None:
        """Stops the thread pool without waiting for tools still running in it, and the checker."""
        self._closed = True
        self._executor.shutdown(wait=False, cancel_futures=True)
        if self.checker is not None:
            self.checker.close()

    async def close_session(self, session_id: str, reason: str) -> bool:
        """The host ended a session here (``CloseSession``): see :meth:`SessionManager.close`."""
        return await self.sessions.close(session_id, reason)

    async def _run_hook(self, hook: Callable[[], None]) -> None:
        """Runs a session hook like a sync tool: in a slot, in the thread pool."""
        async with self._slots:
            if self._closed:
                return  # stopping: the hook runs in close_all instead
            await asyncio.get_running_loop().run_in_executor(self._executor, hook)

    def begin_calls(self, count: int) -> None:
        """``count`` calls were accepted (``ExecuteBatches``): they count as in flight until
        :meth:`end_calls`."""
        self.in_flight += count
        self._idle.clear()

    def end_calls(self, count: int) -> None:
        """``count`` calls accepted by :meth:`begin_calls` were answered."""
        self.in_flight -= count
        self.served += count
        if self.in_flight == 0:
            self._idle.set()

    def runs_inline(self, request: pb.ExecuteRequest) -> bool:
        """True when the call can run in a batch's one hand-off to the thread pool
        (:meth:`run_batch`): a known sync tool that is not a generator, outside sessions (their
        hooks and locks are async). Others go through :meth:`execute`, one at a time."""
        definition = self.tools.get(request.tool)
        return (definition is not None and not definition.is_async and not definition.spec.streaming
                and not request.session_id)

    async def hold_slot(self) -> "_SlotHold":
        """Waits for a slot and holds it until the returned object's ``release()``: a batch's
        calls run one after another in it."""
        await self._slots.acquire()
        return _SlotHold(self._slots)

    def run_batch(self, calls: "List[Tuple[int, pb.ExecuteRequest, float]]",
                  dropped: "Set[int]") -> "List[pb.BatchResult]":
        """Runs in a pool thread, holding one slot: the calls one after another, each with its
        own timing and typed errors, exactly as :meth:`execute` would answer it. A call whose seq
        is in ``dropped`` (cancelled by the host) or whose deadline passed before it started does
        not run."""
        results: List[pb.BatchResult] = []
        for seq, request, received in calls:
            if seq in dropped:
                dropped.discard(seq)
                results.append(pb.BatchResult(seq=seq, skipped=pb.CANCELLED))
                continue
            try:
                definition = self.lookup(request.tool)
                if len(request.items) > 0:
                    results.append(pb.BatchResult(seq=seq, response=self.run_map(definition, request, received)))
                    continue
                function, arguments, deadline = self.prepare(definition, request, received)
                if deadline is not None and time.monotonic() >= deadline:
                    waited_ms = int((time.monotonic() - received) * 1000)
                    raise BridgeError(TIMEOUT, f"tool '{definition.spec.name}' did not start before its deadline "
                                               f"(timeout_ms={request.timeout_ms}, waited {waited_ms} ms behind "
                                               "other calls)")
                response = self._run_sync_and_respond(definition.spec.name, request.request_id, function, arguments)
            except BridgeError as exc:
                response = _error(exc.kind, exc.message)
            except Exception as exc:  # a bug of ours: report it typed, keep serving
                response = _error(INTERNAL, f"snakepit_bridge failed serving tool '{request.tool}': {exc!r}",
                                  type_name(type(exc)), "".join(traceback.format_exception(exc)))
            results.append(pb.BatchResult(seq=seq, response=response))
        return results

    def executor_run(self, function: Callable[..., Any], *args: Any) -> "asyncio.Future[Any]":
        """``function(*args)`` in the tool thread pool."""
        return asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    async def execute(self, request: pb.ExecuteRequest) -> pb.ExecuteResponse:
        """Serves one call; never raises except when the call itself is cancelled. The response
        carries the telemetry events pending by then (:func:`telemetry.attach`)."""
        received = time.monotonic()
        self.begin_calls(1)
        try:
            response = await self._answer(request, received)
        finally:
            self.end_calls(1)
        telemetry.attach(response)
        return response

    async def execute_counted(self, request: pb.ExecuteRequest, received: float,
                              offload: Optional["Offload"] = None) -> pb.ExecuteResponse:
        """Serves one call already counted by :meth:`begin_calls` (a batch's call that cannot run
        inline), without telemetry: the batch's reply carries it. The caller ends the count.
        ``offload(function, *args)`` runs a sync tool (default: the thread pool)."""
        return await self._answer(request, received, offload)

    async def _answer(self, request: pb.ExecuteRequest, received: float,
                      offload: Optional["Offload"] = None) -> pb.ExecuteResponse:
        try:
            async with self.sessions.scope(request.session_id, request.session_moved) as session:
                return await self._execute(request, received, session, offload)
        except BridgeError as exc:
            return _error(exc.kind, exc.message)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug of ours: report it typed, keep serving
            return _error(INTERNAL, f"snakepit_bridge failed serving tool '{request.tool}': {exc!r}",
                          type_name(type(exc)), "".join(traceback.format_exception(exc)))

    async def _execute(self, request: pb.ExecuteRequest, received: float,
                       session: Optional[SessionState] = None,
                       offload: Optional["Offload"] = None) -> pb.ExecuteResponse:
        definition = self.lookup(request.tool)
        name = definition.spec.name
        if definition.spec.streaming:
            raise BridgeError(BAD_ARGUMENTS, f"tool '{name}' streams items; call it with execute_stream (C++) "
                                             "or --stream (command line)")
        if len(request.items) > 0:
            return await self._execute_map(definition, request, received, session)
        function, arguments, deadline = self.prepare(definition, request, received, session)
        async with self._slots:
            if deadline is not None and time.monotonic() >= deadline:
                waited_ms = int((time.monotonic() - received) * 1000)
                raise BridgeError(TIMEOUT, f"tool '{name}' did not start before its deadline "
                                           f"(timeout_ms={request.timeout_ms}, waited {waited_ms} ms for a slot)")
            if definition.is_async:
                ran = await self._run_async(name, request.request_id, function, arguments, deadline)
                return self._respond(name, request.timeout_ms, ran)
            # The result is encoded in the tool's thread too, keeping the event loop free for pings.
            if offload is not None:
                return await offload(self._run_sync_and_respond, name, request.request_id, function, arguments)
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor, self._run_sync_and_respond, name, request.request_id,
                                              function, arguments)

    async def _execute_map(self, definition: ToolDef, request: pb.ExecuteRequest, received: float,
                           session: Optional[SessionState]) -> pb.ExecuteResponse:
        """A map request outside a batch: in one slot, a sync tool's items in one hand-off to the
        thread pool, an async tool's one after another on the loop."""
        async with self._slots:
            if not definition.is_async:
                loop = asyncio.get_running_loop()
                return await loop.run_in_executor(self._executor, self.run_map, definition, request, received,
                                                  session)
            response = pb.ExecuteResponse()
            deadline = received + request.timeout_ms / 1000.0 if request.timeout_ms > 0 else None
            size = [0]
            for item in request.items:
                if self._map_item_late(definition, request, received, deadline, response, size):
                    continue
                try:
                    function, arguments, _ = self.prepare(definition, request, received, session, item)
                    ran = await self._run_async(definition.spec.name, request.request_id, function, arguments,
                                                deadline)
                except BridgeError as exc:
                    ran = (None, exc, 0, 0)
                self._map_item_done(definition.spec.name, request.timeout_ms, ran, response, size)
            return response

    def run_map(self, definition: ToolDef, request: pb.ExecuteRequest, received: float,
                session: Optional[SessionState] = None) -> pb.ExecuteResponse:
        """A map request of a sync tool, in the calling (tool) thread: the tool once per argument
        set, in order, each with its own typed error. Items whose turn comes after the deadline
        do not run (``timeout``); an item whose result would take the whole reply over the
        payload limit gets ``payload_too_large`` instead, and once the limit is reached the rest
        do not run."""
        response = pb.ExecuteResponse()
        name = definition.spec.name
        deadline = received + request.timeout_ms / 1000.0 if request.timeout_ms > 0 else None
        size = [0]  # bytes of the outcomes so far
        for item in request.items:
            if self._map_item_late(definition, request, received, deadline, response, size):
                continue
            try:
                function, arguments, _ = self.prepare(definition, request, received, session, item)
                ran = self._run_sync(name, request.request_id, function, arguments)
            except BridgeError as exc:
                ran = (None, exc, 0, 0)
            self._map_item_done(name, request.timeout_ms, ran, response, size)
        return response

    def _map_item_late(self, definition: ToolDef, request: pb.ExecuteRequest, received: float,
                       deadline: Optional[float], response: pb.ExecuteResponse, size: List[int]) -> bool:
        """Answers the next item of a map without running it when the deadline has passed or the
        results so far fill the payload limit; True then."""
        if deadline is not None and time.monotonic() >= deadline:
            waited_ms = int((time.monotonic() - received) * 1000)
            error = pb.Error(kind=pb.TIMEOUT, message=f"tool '{definition.spec.name}' did not start this item "
                                                      f"before the map's deadline (timeout_ms={request.timeout_ms}, "
                                                      f"{waited_ms} ms after it arrived)")
        elif size[0] >= self.max_payload_bytes:
            error = pb.Error(kind=pb.PAYLOAD_TOO_LARGE, message=f"the results of the map of tool "
                                                                f"'{definition.spec.name}' before this item are "
                                                                f"{self._over()}; send fewer items per map")
        else:
            return False
        response.items.add(error=error)
        return True

    def _map_item_done(self, name: str, timeout_ms: int, ran: "_Ran", response: pb.ExecuteResponse,
                       size: List[int]) -> None:
        result, failure, wall_ns, cpu_ns = ran
        if isinstance(failure, BridgeError):
            one = _error(failure.kind, failure.message)
        else:
            one = self._outcome(name, timeout_ms, result, failure)
        item = response.items.add(wall_ns=wall_ns)
        if one.HasField("error"):
            item.error.CopyFrom(one.error)
        else:
            item.result.CopyFrom(one.result)
        bytes_ = item.ByteSize() + 8  # and its tag and length
        if size[0] + bytes_ > self.max_payload_bytes:  # the whole reply stays within the limit
            item.Clear()
            item.wall_ns = wall_ns
            item.error.kind = pb.PAYLOAD_TOO_LARGE
            item.error.message = (f"the results of the map of tool '{name}' up to this item are "
                                  f"{self._over()}; send fewer items per map")
            bytes_ = item.ByteSize() + 8
        response.wall_ns += wall_ns
        response.cpu_ns += cpu_ns
        size[0] += bytes_

    def lookup(self, tool: str) -> ToolDef:
        """The tool named ``tool`` (``Execute`` and ``ExecuteStream`` alike).

        Raises:
            BridgeError: ``unknown_tool``, the message listing the known tools.
        """
        definition = self.tools.get(tool)
        if definition is None:
            known = ", ".join(sorted(self.tools)) or "(none)"
            raise BridgeError(UNKNOWN_TOOL, f"unknown tool '{tool}'; known tools: {known}")
        return definition

    def prepare(self, definition: ToolDef, request: pb.ExecuteRequest, received: float,
                session: Optional[SessionState] = None,
                item: Optional[pb.MapValue] = None) -> Tuple[Callable[..., Any], Dict[str, Any], Optional[float]]:
        """Checks a call before it waits for a slot (``Execute`` and ``ExecuteStream`` alike): the
        payload size, the arguments decoded and checked, its :class:`CallContext` added when the
        tool asks for one (with ``session``, the state :meth:`SessionManager.scope` yielded for
        the call, as ``ctx.session``). Returns the bound tool, its keyword arguments and the
        deadline (``time.monotonic()``; None without ``timeout_ms``).

        With ``item``, the arguments are that argument set of a map request.

        Raises:
            BridgeError: ``payload_too_large``, ``bad_arguments``...
        """
        name = definition.spec.name
        given = request.arguments if item is None else item
        size = given.ByteSize()
        if size > self.max_payload_bytes:
            raise BridgeError(PAYLOAD_TOO_LARGE, f"arguments of tool '{name}' are {size} bytes, {self._over()}")
        arguments = values.decode_arguments(given)
        _arguments.check(definition, arguments)
        deadline = received + request.timeout_ms / 1000.0 if request.timeout_ms > 0 else None
        if definition.context_parameter is not None:
            arguments[definition.context_parameter] = CallContext(
                request_id=request.request_id,
                tool=name,
                correlation_id=request.correlation_id,
                session_id=request.session_id,
                metadata=MappingProxyType(dict(request.metadata)),
                deadline=deadline,
                worker_id=self.worker_id,
                session_moved=request.session_moved,
                _session=session,
                _host=self.host,
            )
        return getattr(self.adapter, definition.attribute), arguments, deadline

    def _run_sync_and_respond(self, name: str, request_id: str, function: Callable[..., Any],
                              arguments: Dict[str, Any]) -> pb.ExecuteResponse:
        return self._respond(name, 0, self._run_sync(name, request_id, function, arguments))

    def _respond(self, name: str, timeout_ms: int, ran: _Ran) -> pb.ExecuteResponse:
        """The response for a tool that ran: its result encoded, or its failure; with timings."""
        result, failure, wall_ns, cpu_ns = ran
        response = self._outcome(name, timeout_ms, result, failure)
        response.wall_ns = wall_ns
        response.cpu_ns = cpu_ns
        return response

    def _outcome(self, name: str, timeout_ms: int, result: Any, failure: Optional[BaseException]) -> pb.ExecuteResponse:
        if isinstance(failure, _DeadlinePassed):
            return _error(TIMEOUT, f"tool '{name}' did not finish within its deadline (timeout_ms={timeout_ms}); it was cancelled")
        if failure is not None:
            return _error(PYTHON_EXCEPTION, _message(failure), type_name(type(failure)), _format_traceback(failure))
        try:
            value = values.encode(result, what=f"result of tool '{name}'", where="result")
        except BridgeError as exc:
            return _error(exc.kind, exc.message)
        size = value.ByteSize()
        if size > self.max_payload_bytes:
            return _error(PAYLOAD_TOO_LARGE, f"result of tool '{name}' is {size} bytes, {self._over()}")
        return pb.ExecuteResponse(result=value)

    def _over(self) -> str:
        return f"over the payload limit of {self.max_payload_bytes} bytes (max_payload_bytes)"

    def _run_sync(self, name: str, request_id: str, function: Callable[..., Any], arguments: Dict[str, Any]) -> _Ran:
        """Runs in a pool thread: the tool's own wall and CPU time are measured here."""
        with self._threads_lock:
            self._threads_busy += 1
        tracked = begin_request(self.adapter, request_id, name) if self._tracked else None  # type: ignore[arg-type]
        checker = self.checker
        scope = checker.enter(name, request_id) if checker is not None else None
        wall_start = time.perf_counter_ns()
        cpu_start = time.thread_time_ns()
        try:
            result, failure = function(**arguments), None
        except BaseException as exc:  # SystemExit too: a tool cannot end the worker this way
            result, failure = None, exc
        cpu_ns = time.thread_time_ns() - cpu_start
        wall_ns = time.perf_counter_ns() - wall_start
        if scope is not None:
            violation = checker.leave(scope)  # type: ignore[union-attr]
            if violation is not None:  # strict: fails even when the tool caught the error
                result, failure = None, violation
        if tracked is not None:
            end_request(self.adapter, tracked)  # type: ignore[arg-type]
        with self._threads_lock:
            self._threads_busy -= 1
        return result, failure, wall_ns, cpu_ns

    async def _run_async(self, name: str, request_id: str, function: Callable[..., Any], arguments: Dict[str, Any],
                         deadline: Optional[float]) -> _Ran:
        """Runs on the event loop; CPU time counts only the tool's own steps, and the tool is
        cancelled when the deadline passes."""
        tracked = begin_request(self.adapter, request_id, name) if self._tracked else None  # type: ignore[arg-type]
        try:
            return await self._run_async_tracked(name, request_id, function, arguments, deadline)
        finally:
            if tracked is not None:
                end_request(self.adapter, tracked)  # type: ignore[arg-type]

    async def _run_async_tracked(self, name: str, request_id: str, function: Callable[..., Any],
                                 arguments: Dict[str, Any], deadline: Optional[float]) -> _Ran:
        wall_start = time.perf_counter_ns()
        checker = self.checker
        timed = _Timed(function(**arguments), checker)
        if checker is None:
            call = None
            task = asyncio.ensure_future(timed)
        else:
            call, token = checker.enter_task(name, request_id)
            try:
                task = asyncio.ensure_future(timed)  # the task copies the context marked above
            finally:
                checker.leave_task(token)
        try:
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            done, _ = await asyncio.wait({task}, timeout=timeout)
        except asyncio.CancelledError:
            task.cancel()
            raise
        result: Any = None
        failure: Optional[BaseException] = None
        if not done:
            task.cancel()
            try:
                await task
            except BaseException:
                pass
            failure = _DeadlinePassed()
        elif task.cancelled():
            failure = asyncio.CancelledError("the tool was cancelled")
        elif task.exception() is not None:
            failure = task.exception()
        else:
            result = task.result()
        if call is not None and call.violation is not None:  # strict: fails even when the tool caught it
            result, failure = None, call.violation
        return result, failure, time.perf_counter_ns() - wall_start, timed.cpu_ns


_Ran = Tuple[Any, Optional[BaseException], int, int]

#: Runs ``function(*args)`` in some tool thread; the future has its return value.
Offload = Callable[..., "asyncio.Future[Any]"]


class _SlotHold:
    """A slot taken by :meth:`Dispatcher.hold_slot`."""

    def __init__(self, slots: asyncio.Semaphore) -> None:
        self._slots = slots

    def release(self) -> None:
        self._slots.release()


class _DeadlinePassed(Exception):
    """Internal marker: an async tool was cancelled at its deadline."""


class _Timed:
    """Wraps a coroutine and adds up the CPU time of its own steps (not of other tasks); with a
    thread checker, each step runs under the checker's profile function when it needs one."""

    def __init__(self, coroutine: Any, checker: Optional[ThreadChecker] = None) -> None:
        self._coroutine = coroutine
        self._checker = checker
        self.cpu_ns = 0

    def __await__(self) -> Generator[Any, Any, Any]:
        coroutine = self._coroutine
        checker = self._checker
        to_send: Any = None
        to_throw: Optional[BaseException] = None
        while True:
            profile = checker.step_profile() if checker is not None else None
            if profile is not None:
                previous = sys.getprofile()
                sys.setprofile(profile)
            start = time.thread_time_ns()
            try:
                if to_throw is None:
                    yielded = coroutine.send(to_send)
                else:
                    yielded = coroutine.throw(to_throw)
            except StopIteration as stop:
                return stop.value
            finally:
                self.cpu_ns += time.thread_time_ns() - start
                if profile is not None:
                    sys.setprofile(previous)
            to_send, to_throw = None, None
            try:
                to_send = yield yielded
            except GeneratorExit:
                coroutine.close()
                raise
            except BaseException as exc:
                to_throw = exc


def _message(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:
        return f"<{type_name(type(exc))} whose str() failed>"


def _format_traceback(exc: BaseException) -> str:
    """The traceback of a tool's exception, without the dispatcher's own frames."""
    tb = exc.__traceback__
    while tb is not None and os.path.normcase(os.path.abspath(tb.tb_frame.f_code.co_filename)) == _THIS_FILE:
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb))


def _error(kind: str, message: str, python_type: str = "", trace: str = "") -> pb.ExecuteResponse:
    return pb.ExecuteResponse(
        error=pb.Error(kind=pb.ErrorKind.Value(kind.upper()), message=message, python_type=python_type, traceback=trace)
    )

"""Streaming tools: a generator's items to the caller one message each (``ExecuteStream``),
with credit-based flow control.

The protocol, as the worker serves it (:func:`serve`):

1. The caller's first ``StreamRequest`` is ``start`` (an ``ExecuteRequest``). Anything else
   gets one ``error`` (``internal``) and the stream ends. The tool is looked up and its
   arguments checked exactly as for ``Execute`` (``unknown_tool``, ``bad_arguments``,
   ``payload_too_large``); then the stream waits for a slot, like a unary call, and holds it
   until the generator is closed.
2. ``start.stream_credit`` items may be sent (0 counts as 1); each ``credit`` message adds its
   count. The generator is advanced only while there is credit: with none left, the worker
   waits and the generator stays suspended at its ``yield`` (so a slow caller holds the
   producer back, and the worker holds at most one item the caller has not asked for).
3. Replies: ``item`` messages in order, then exactly one ``end`` (item count, the generator's
   wall and CPU time) or ``error`` (``python_exception`` raised by the generator,
   ``encode_failed`` or ``payload_too_large`` for an item, ``timeout`` at the deadline). An
   ``end`` or ``error`` needs no credit, but the worker learns that a generator is finished
   only by advancing it, which takes one: a caller that grants nothing more sees no ``end``.
4. ``cancel``, the caller cancelling the RPC, or the caller closing its side with no credit
   left: the generator is closed (``close()``/``aclose()``, so its ``finally:`` blocks run) and
   no further message is sent; the RPC ends with status OK (or as cancelled).
5. ``start.timeout_ms`` covers the whole stream, waiting for credit included: at the deadline
   the last message is a ``timeout`` error and the generator is closed (an ``async`` one is
   cancelled at its ``await``; a sync one is closed once its current step returns, since a
   thread cannot be interrupted).

A sync generator lives in one thread of the worker's pool for its whole life: every step and
its ``close()`` run there. An async generator is driven on the event loop. A tool that is not a
generator can be called this way too: its result is the one item.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import os
import queue
import sys
import time
import traceback
from typing import Any, AsyncIterator, Callable, Dict, Iterator, NamedTuple, Optional, Set, Union

from snakepit_bridge import telemetry, values
from snakepit_bridge._wire import bridge_pb2 as pb
from snakepit_bridge.dispatch import Dispatcher, _message, _Timed
from snakepit_bridge.errors import INTERNAL, TIMEOUT, BridgeError, type_name
from snakepit_bridge.thread_safe import begin_request, end_request
from snakepit_bridge.tools import ToolDef

__all__ = ["serve"]

_OWN_FILES = frozenset(os.path.normcase(os.path.abspath(path)) for path in (
    __file__, sys.modules[Dispatcher.__module__].__file__ or ""))

#: Closings that outlived the stream's RPC (a sync step still running, or the RPC cancelled).
_CLOSING: Set["asyncio.Future[None]"] = set()


class _Pull(NamedTuple):
    """What advancing the generator once gave: an item (encoded), a failure, or neither (the
    generator is finished)."""

    item: Optional[pb.Value] = None
    error: Optional[pb.Error] = None


_END = _Pull()


async def serve(dispatcher: Dispatcher, requests: AsyncIterator[pb.StreamRequest], *,
                closed: Optional["asyncio.Future[None]"] = None) -> AsyncIterator[pb.StreamReply]:
    """Serves one ``ExecuteStream`` call: reads ``requests`` (``start``, then ``credit`` and
    ``cancel``) and yields the replies, each carrying the telemetry events pending by then.

    Close the returned generator when the RPC ends early (``contextlib.aclosing``): the tool's
    generator is then closed too. Never raises except when cancelled. ``closed``, when given,
    gets its result once the tool's generator is closed and the slot given back (which may be
    after the last reply: a sync step cannot be interrupted).
    """
    async with contextlib.aclosing(_Stream(dispatcher, closed).run(requests)) as replies:
        async for reply in replies:
            telemetry.attach(reply)
            yield reply


class _Stream:
    """One stream's state: credit, cancellation, the pump that owns the generator, the slot."""

    def __init__(self, dispatcher: Dispatcher, closed: Optional["asyncio.Future[None]"] = None) -> None:
        self.dispatcher = dispatcher
        self._closed = closed
        self.name = ""
        self.request_id = ""
        self.credit = 0
        self.items = 0
        loop = asyncio.get_running_loop()
        self._woken: Optional[asyncio.Future[None]] = None  # credit added, or the caller's side closed
        self._stop_signal: asyncio.Future[None] = loop.create_future()  # cancel, the RPC broken, a protocol error
        self._requests_closed = False
        self._protocol_error: Optional[str] = None
        self._pump: Optional[Union[_SyncPump, _AsyncPump]] = None
        self._slot_held = False
        self._scopes = contextlib.AsyncExitStack()  # the session the stream belongs to

    async def run(self, requests: AsyncIterator[pb.StreamRequest]) -> AsyncIterator[pb.StreamReply]:
        dispatcher = self.dispatcher
        received = time.monotonic()
        dispatcher.in_flight += 1
        dispatcher._idle.clear()
        reader: Optional[asyncio.Future[None]] = None
        finished = False  # the stream ended on its own (not cancelled, not closed early)
        try:
            try:
                first = await requests.__anext__()
            except StopAsyncIteration:
                first = None
            if first is None or first.WhichOneof("kind") != "start":
                got = "nothing" if first is None else (first.WhichOneof("kind") or "an empty message")
                yield _error_reply(INTERNAL, f"the first message of ExecuteStream must be 'start', got {got}")
                finished = True
                return
            request = first.start
            self.request_id = request.request_id
            self.credit = max(1, request.stream_credit)
            reader = asyncio.ensure_future(self._read(requests))
            try:
                session = await self._scopes.enter_async_context(
                    dispatcher.sessions.scope(request.session_id, request.session_moved))
                definition = dispatcher.lookup(request.tool)
                self.name = definition.spec.name
                function, arguments, deadline = dispatcher.prepare(definition, request, received, session)
            except BridgeError as exc:
                yield _error_reply(exc.kind, exc.message)
                finished = True
                return
            if not await self._take_slot(deadline):
                if not self._stopped:
                    waited_ms = int((time.monotonic() - received) * 1000)
                    yield _error_reply(TIMEOUT, f"tool '{self.name}' did not start before its deadline "
                                                f"(timeout_ms={request.timeout_ms}, waited {waited_ms} ms for a slot)")
                elif self._protocol_error is not None:
                    yield _error_reply(INTERNAL, self._protocol_error)
                finished = True
                return
            pump_type = _AsyncPump if definition.is_async else _SyncPump
            self._pump = pump_type(self, definition, function, arguments)
            last: Optional[str] = None
            async with contextlib.aclosing(self._items(deadline, request.timeout_ms)) as replies:
                async for reply in replies:
                    last = reply.WhichOneof("kind")
                    yield reply
            if last in (None, "item") and self._protocol_error is not None:
                yield _error_reply(INTERNAL, self._protocol_error)
            finished = True
        except Exception as exc:  # a bug of ours: report it typed, as Execute does
            yield _error_reply(INTERNAL, f"snakepit_bridge failed streaming tool '{self.name}': {exc!r}",
                               type_name(type(exc)), "".join(traceback.format_exception(exc)))
            finished = True
        finally:
            if reader is not None:
                reader.cancel()
            if self._pump is not None:
                self._pump.stop()  # at once: the task below may never run if the worker is exiting
            closing = asyncio.ensure_future(self._close())
            _CLOSING.add(closing)
            closing.add_done_callback(_CLOSING.discard)
            if finished and not (self._pump is not None and self._pump.stepping):
                await asyncio.shield(closing)  # quick: the RPC ends once the generator is closed

    async def _items(self, deadline: Optional[float], timeout_ms: int) -> AsyncIterator[pb.StreamReply]:
        """The replies from the slot taken to the last one; returns without a last message when
        the stream is cancelled."""
        pump = self._pump
        assert pump is not None
        timed_out = pb.StreamReply(error=pb.Error(
            kind=pb.TIMEOUT, message=f"tool '{self.name}' did not finish streaming within its deadline "
                                     f"(timeout_ms={timeout_ms}); the generator was closed"))
        while True:
            while self.credit <= 0:
                if self._stopped or self._requests_closed:
                    return
                self._woken = asyncio.get_running_loop().create_future()
                if not await self._until(self._woken, deadline):
                    if not self._stopped:
                        yield timed_out
                    return
            if self._stopped:
                return
            step = pump.pull()
            if not await self._until(step, deadline):
                if not self._stopped:
                    yield timed_out
                return
            pulled = step.result()
            if pulled.error is not None:
                yield pb.StreamReply(error=pulled.error)
                return
            if pulled.item is None:
                yield pb.StreamReply(end=pb.StreamEnd(items=self.items, wall_ns=pump.wall_ns, cpu_ns=pump.cpu_ns))
                return
            self.credit -= 1
            self.items += 1
            yield pb.StreamReply(item=pulled.item)

    async def _until(self, future: "asyncio.Future[Any]", deadline: Optional[float]) -> bool:
        """Waits for ``future``, the stream's cancellation or its deadline; True when ``future``
        is done (and the stream not stopped). A protocol error stops the stream with an error."""
        if not future.done():
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            await asyncio.wait({future, self._stop_signal}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        return future.done() and not self._stopped

    async def _take_slot(self, deadline: Optional[float]) -> bool:
        """Waits for a slot of the worker's capacity; False when the stream was cancelled first,
        or its deadline passed."""
        acquire = asyncio.ensure_future(self.dispatcher._slots.acquire())
        try:
            await self._until(acquire, deadline)
        finally:
            if not acquire.done():
                acquire.cancel()  # the semaphore passes a wake-up it did not use on
        if acquire.done() and not acquire.cancelled():
            self._slot_held = True
        return self._slot_held and not self._stopped and (deadline is None or time.monotonic() < deadline)

    async def _read(self, requests: AsyncIterator[pb.StreamRequest]) -> None:
        """Reads the caller's messages after ``start`` for the stream's life."""
        try:
            async for message in requests:
                kind = message.WhichOneof("kind")
                if kind == "credit":
                    self.credit += message.credit
                    self._wake()
                elif kind == "cancel":
                    self._stop()
                elif kind == "start":
                    self._protocol_error = "a second 'start' on one ExecuteStream call"
                    self._stop()
        except asyncio.CancelledError:
            raise
        except Exception:  # the RPC broke: the caller is gone
            self._stop()
        else:
            self._requests_closed = True
            self._wake()

    @property
    def _stopped(self) -> bool:
        return self._stop_signal.done()

    def _stop(self) -> None:
        if not self._stop_signal.done():
            self._stop_signal.set_result(None)

    def _wake(self) -> None:
        if self._woken is not None and not self._woken.done():
            self._woken.set_result(None)

    async def _close(self) -> None:
        """Closes the generator (waiting for a sync step that is still running), then gives the
        slot back, leaves the session and counts the call as served."""
        dispatcher = self.dispatcher
        try:
            try:
                if self._pump is not None:
                    await self._pump.close()
            finally:
                if self._slot_held:
                    dispatcher._slots.release()
                await self._scopes.aclose()
        finally:
            dispatcher.in_flight -= 1
            dispatcher.served += 1
            if dispatcher.in_flight == 0:
                dispatcher._idle.set()
            if self._closed is not None and not self._closed.done():
                self._closed.set_result(None)

    def encode(self, item: Any) -> _Pull:
        """An item as the wire carries it, or why it cannot be sent (as a unary result)."""
        what = f"item {self.items} of tool '{self.name}'"
        try:
            value = values.encode(item, what=what, where="item")
        except BridgeError as exc:
            return _Pull(error=pb.Error(kind=pb.ErrorKind.Value(exc.kind.upper()), message=exc.message))
        size = value.ByteSize()
        limit = self.dispatcher.max_payload_bytes
        if size > limit:
            return _Pull(error=pb.Error(kind=pb.PAYLOAD_TOO_LARGE, message=(
                f"{what} is {size} bytes, over the payload limit of {limit} bytes (max_payload_bytes)")))
        return _Pull(item=value)

    def failed(self, exc: BaseException) -> _Pull:
        """The generator raised ``exc``: a ``python_exception`` error."""
        return _Pull(error=pb.Error(kind=pb.PYTHON_EXCEPTION, message=_message(exc), python_type=type_name(type(exc)),
                                    traceback=_format_traceback(exc)))


class _SyncPump:
    """Owns a sync generator in one thread of the dispatcher's pool, for the stream's life.

    The event loop sends commands (advance, close) through a queue; the thread answers each
    advance through a future. Steps count as busy pool threads (they cannot be interrupted).
    """

    def __init__(self, stream: _Stream, definition: ToolDef, function: Callable[..., Any],
                 arguments: Dict[str, Any]) -> None:
        self._stream = stream
        self._function = function if definition.streaming else _single(function)
        self._arguments = arguments
        self._loop = asyncio.get_running_loop()
        self._commands: "queue.SimpleQueue[Optional[asyncio.Future[_Pull]]]" = queue.SimpleQueue()
        self._generator: Optional[Iterator[Any]] = None
        self._pending: Optional[asyncio.Future[_Pull]] = None
        self._stopped = False
        self.wall_ns = 0
        self.cpu_ns = 0
        self._thread: "asyncio.Future[None]" = self._loop.run_in_executor(stream.dispatcher._executor, self._run)

    @property
    def stepping(self) -> bool:
        """A step was asked for and has not answered yet."""
        return self._pending is not None and not self._pending.done()

    def pull(self) -> "asyncio.Future[_Pull]":
        self._pending = self._loop.create_future()
        self._commands.put(self._pending)
        return self._pending

    def stop(self) -> None:
        """Tells the thread to close the generator once the step running (if any) returns."""
        if not self._stopped:
            self._stopped = True
            self._commands.put(None)

    async def close(self) -> None:
        """Closes the generator in its thread and waits for that thread to be done with it."""
        self.stop()
        try:
            await asyncio.shield(self._thread)
        except asyncio.CancelledError:
            if not self._thread.cancelled():  # we were cancelled, not the pool's job
                raise

    def _run(self) -> None:
        stream = self._stream
        dispatcher = stream.dispatcher
        tracked = None
        if dispatcher._tracked:
            tracked = begin_request(dispatcher.adapter, stream.request_id, stream.name)  # type: ignore[arg-type]
        checker = dispatcher.checker
        scope = checker.enter(stream.name, stream.request_id) if checker is not None else None
        try:
            while True:
                future = self._commands.get()
                if future is None:
                    if self._generator is not None:
                        self._close_generator()
                    return
                pulled = self._step()
                if scope is not None and scope[0].violation is not None:  # strict thread check
                    pulled = stream.failed(scope[0].violation)
                try:
                    self._loop.call_soon_threadsafe(_settle, future, pulled)
                except RuntimeError:  # the event loop is closed: the worker is exiting
                    self._close_generator()
                    return
        finally:
            if scope is not None:
                checker.leave(scope)  # type: ignore[union-attr]
            if tracked is not None:
                end_request(dispatcher.adapter, tracked)  # type: ignore[arg-type]

    def _step(self) -> _Pull:
        dispatcher = self._stream.dispatcher
        with dispatcher._threads_lock:
            dispatcher._threads_busy += 1
        wall_start = time.perf_counter_ns()
        cpu_start = time.thread_time_ns()
        try:
            if self._generator is None:
                self._generator = iter(self._function(**self._arguments))
            item = next(self._generator)
        except StopIteration:
            return _END
        except BaseException as exc:  # SystemExit too: a tool cannot end the worker this way
            return self._stream.failed(exc)
        finally:
            self.cpu_ns += time.thread_time_ns() - cpu_start
            self.wall_ns += time.perf_counter_ns() - wall_start
            with dispatcher._threads_lock:
                dispatcher._threads_busy -= 1
        return self._stream.encode(item)  # encoded here too, keeping the event loop free

    def _close_generator(self) -> None:
        close = getattr(self._generator, "close", None)
        if close is None:
            return
        try:
            close()
        except BaseException as exc:
            _report_close_failure(self._stream.name, exc)


class _AsyncPump:
    """Drives an async generator on the event loop: each step is a task (so the deadline or a
    cancel can cancel it at its ``await``), run in the context the thread checker marked."""

    def __init__(self, stream: _Stream, definition: ToolDef, function: Callable[..., Any],
                 arguments: Dict[str, Any]) -> None:
        self._stream = stream
        self._function = function if definition.streaming else _single_async(function)
        self._arguments = arguments
        self._generator: Any = None
        self._step_task: Optional[asyncio.Future[_Pull]] = None
        self.wall_ns = 0
        self.cpu_ns = 0
        dispatcher = stream.dispatcher
        self._tracked = (begin_request(dispatcher.adapter, stream.request_id, stream.name)  # type: ignore[arg-type]
                         if dispatcher._tracked else None)
        self._call = None
        checker = dispatcher.checker
        if checker is None:
            self._context = contextvars.copy_context()
        else:
            self._call, token = checker.enter_task(stream.name, stream.request_id)
            try:
                self._context = contextvars.copy_context()  # tasks started in it are watched
            finally:
                checker.leave_task(token)

    @property
    def stepping(self) -> bool:
        return False  # a step can always be cancelled

    def stop(self) -> None:
        """Cancels the step running (if any): its ``await`` raises ``CancelledError``."""
        if self._step_task is not None:
            self._step_task.cancel()

    def pull(self) -> "asyncio.Future[_Pull]":
        self._step_task = self._context.run(asyncio.ensure_future, self._step())
        return self._step_task

    async def _step(self) -> _Pull:
        stream = self._stream
        if self._generator is None:
            self._generator = self._function(**self._arguments)
        timed = _Timed(self._generator.__anext__(), stream.dispatcher.checker)
        wall_start = time.perf_counter_ns()
        try:
            item = await timed
        except StopAsyncIteration:
            return _END
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            return stream.failed(exc)
        finally:
            self.wall_ns += time.perf_counter_ns() - wall_start
            self.cpu_ns += timed.cpu_ns
        if self._call is not None and self._call.violation is not None:  # strict thread check
            return stream.failed(self._call.violation)
        return stream.encode(item)

    async def close(self) -> None:
        try:
            task = self._step_task
            if task is not None and not task.done():
                task.cancel()  # CancelledError at the generator's await
                try:
                    await task
                except BaseException:
                    pass
            if self._generator is not None:
                try:
                    await self._context.run(asyncio.ensure_future, self._generator.aclose())
                except asyncio.CancelledError:
                    raise
                except BaseException as exc:
                    _report_close_failure(self._stream.name, exc)
        finally:
            if self._tracked is not None:
                end_request(self._stream.dispatcher.adapter, self._tracked)  # type: ignore[arg-type]
                self._tracked = None


def _single(function: Callable[..., Any]) -> Callable[..., Iterator[Any]]:
    """A tool that is not a generator, as a generator of its one result."""

    def one(**arguments: Any) -> Iterator[Any]:
        yield function(**arguments)

    return one


def _single_async(function: Callable[..., Any]) -> Callable[..., AsyncIterator[Any]]:
    """An ``async def`` tool that is not a generator, as an async generator of its one result."""

    async def one(**arguments: Any) -> AsyncIterator[Any]:
        yield await function(**arguments)

    return one


def _settle(future: "asyncio.Future[_Pull]", pulled: _Pull) -> None:
    if not future.done():  # the stream may have stopped waiting for it
        future.set_result(pulled)


def _report_close_failure(name: str, exc: BaseException) -> None:
    """Closing a generator raised: the stream is over, so it goes to the worker's stderr."""
    print(f"snakepit_bridge: closing the generator of tool '{name}' raised "
          f"{type_name(type(exc))}: {_message(exc)}", file=sys.stderr, flush=True)


def _format_traceback(exc: BaseException) -> str:
    """The traceback of a generator's exception, without the bridge's own frames."""
    tb = exc.__traceback__
    while tb is not None and os.path.normcase(os.path.abspath(tb.tb_frame.f_code.co_filename)) in _OWN_FILES:
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb))


def _error_reply(kind: str, message: str, python_type: str = "", trace: str = "") -> pb.StreamReply:
    return pb.StreamReply(error=pb.Error(kind=pb.ErrorKind.Value(kind.upper()), message=message,
                                         python_type=python_type, traceback=trace))

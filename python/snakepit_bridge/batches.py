"""``ExecuteBatches``: many tool calls over one long-lived stream (the fast path).

The host keeps one such stream open per worker and writes whatever calls are queued for the
worker as one ``BatchRequest``; this side answers each call with a ``BatchResult`` named by the
host's ``seq``. What makes it cheap is what it does not do per call:

* no gRPC message per call: calls arrive in batches, and the results that are ready together
  go back as one ``BatchReply`` (the reply is written while the next calls run, so under load
  replies coalesce by themselves; under light load a reply is one result, sent at once);
* no thread hand-off per call: with one slot (the process profile) sync calls run in the
  stream's own tool thread, which takes the next calls from the queue itself, one run after
  another (:meth:`Dispatcher.run_batch`), while the event loop only reads and writes.

Everything else is as for ``Execute``: ``async def`` tools run on the event loop, calls with a
session go through :meth:`Dispatcher.execute` (its hooks and order), the thread profile runs up
to ``concurrency`` calls at once, one hand-off each. Calls start in the order they arrived, so
the host knows which of its unanswered calls may have started when a worker dies: the first
``concurrency`` of them; the others never ran and are sent elsewhere.

A ``cancel`` seq drops a call that has not started: its result says ``CANCELLED`` and the tool
never runs. Calls that arrive while the worker is stopping are answered ``STOPPING`` without
running. Telemetry events ride once per reply. The first reply is empty: it tells the host that
this worker serves the stream (an older one answers ``UNIMPLEMENTED`` and gets unary calls).
"""

from __future__ import annotations

import asyncio
import collections
import queue
import threading
import time
from typing import TYPE_CHECKING, Any, AsyncIterator, Deque, List, Optional, Set, Tuple

from snakepit_bridge import telemetry
from snakepit_bridge._wire import bridge_pb2 as pb

if TYPE_CHECKING:
    from snakepit_bridge.server import WorkerServer

__all__ = ["BatchStream"]

_Call = Tuple[int, pb.ExecuteRequest, float]

#: How long the tool thread keeps the slot while calls keep coming, before it lets a unary call,
#: a stream or a session hook waiting for the slot have a turn.
THREAD_TURN_S = 0.005


class BatchStream:
    """One ``ExecuteBatches`` RPC: reads batches, runs their calls, yields replies."""

    def __init__(self, owner: "WorkerServer", concurrency: int) -> None:
        self._owner = owner
        self._dispatcher = owner.dispatcher
        self._concurrency = concurrency
        self._pending: Deque[_Call] = collections.deque()
        self._dropped: Set[int] = set()  # cancelled while in a run: never more than _open
        self._open: Set[int] = set()  # seqs accepted and not answered yet
        self._outbox: List[pb.BatchResult] = []
        self._work = asyncio.Event()
        self._ready = asyncio.Event()
        self._reading = True
        self._running = 0
        self._thread: Optional[threading.Thread] = None
        self._thread_active = False
        self._inbox: "queue.SimpleQueue[Any]" = queue.SimpleQueue()

    async def serve(self, requests: AsyncIterator[pb.BatchRequest]) -> AsyncIterator[pb.BatchReply]:
        """Replies until the host has closed its side and every call it sent is answered."""
        reader = asyncio.ensure_future(self._read(requests))
        runners = [asyncio.ensure_future(self._run()) for _ in range(self._concurrency)]
        try:
            yield pb.BatchReply()  # hello: the host sends calls in batches from now on
            while True:
                await self._ready.wait()
                self._ready.clear()
                if self._outbox:
                    reply = pb.BatchReply(results=self._outbox)
                    self._outbox = []
                    telemetry.attach(reply)
                    yield reply
                if not self._reading and not self._pending and self._running == 0 and not self._outbox:
                    return
        finally:
            reader.cancel()
            for runner in runners:
                runner.cancel()
            if self._thread is not None:
                self._inbox.put(None)  # the thread ends after the run it is in, if any
            unanswered = len(self._pending)
            self._pending.clear()
            if unanswered:
                self._dispatcher.end_calls(unanswered)

    def _start_thread(self) -> "asyncio.Future[None]":
        """Lets this stream's tool thread run the sync calls at the head of the queue, one run
        after another, until none is left or :data:`THREAD_TURN_S` has passed; the future is
        done when it stops. With one slot, this is where sync tools run: the thread takes the
        next run itself, so a steady flow of calls costs no hand-off per run, only one wake-up
        of the event loop per run's results."""
        self._ensure_thread()
        loop = asyncio.get_running_loop()
        done: "asyncio.Future[None]" = loop.create_future()
        self._thread_active = True
        self._inbox.put((done, loop))
        return done

    def _offload(self, function: Any, *args: Any) -> "asyncio.Future[Any]":
        """``function(*args)`` in the tool thread (idle then: the runner waits for this call)."""
        self._ensure_thread()
        loop = asyncio.get_running_loop()
        future: "asyncio.Future[Any]" = loop.create_future()
        self._inbox.put(((function, args), future, loop))
        return future

    def _ensure_thread(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._thread_main, name="snakepit-batch", daemon=True)
            self._thread.start()

    def _thread_main(self) -> None:
        dispatcher = self._dispatcher
        pending = self._pending
        while True:
            item = self._inbox.get()
            if item is None:
                return
            if len(item) == 3:  # one function call (_offload)
                (function, args), future, loop = item
                try:
                    _post(loop, _settle, future, function(*args))
                except BaseException as exc:  # handed to the awaiting coroutine
                    _post(loop, _fail, future, exc)
                continue
            done, loop = item
            turn_ends = time.monotonic() + THREAD_TURN_S
            try:
                while True:
                    # Only this thread takes calls from the queue while it is active.
                    run: List[_Call] = []
                    while pending and dispatcher.runs_inline(pending[0][1]):
                        run.append(pending.popleft())
                    if not run:
                        break
                    results = dispatcher.run_batch(run, self._dropped)
                    _post(loop, self._answer, results)
                    if time.monotonic() >= turn_ends:
                        break  # let a unary call or a stream waiting for the slot have it
            finally:
                _post(loop, _settle, done, None)

    async def _read(self, requests: AsyncIterator[pb.BatchRequest]) -> None:
        try:
            async for batch in requests:
                received = time.monotonic()
                for seq in batch.cancel:
                    self._drop(seq)
                if not batch.calls:
                    continue
                if self._owner.stopping:
                    self._answer([pb.BatchResult(seq=call.seq, skipped=pb.STOPPING) for call in batch.calls],
                                 counted=False)
                    continue
                self._dispatcher.begin_calls(len(batch.calls))
                self._open.update(call.seq for call in batch.calls)
                self._pending.extend((call.seq, call.request, received) for call in batch.calls)
                self._work.set()
        finally:
            self._reading = False
            self._ready.set()

    def _drop(self, seq: int) -> None:
        if seq not in self._open:
            return  # answered already (the cancel crossed its result), or never sent
        if self._thread_active:  # the thread takes calls from the queue: run_batch skips it
            self._dropped.add(seq)
            return
        for index, call in enumerate(self._pending):
            if call[0] == seq:
                del self._pending[index]
                self._answer([pb.BatchResult(seq=seq, skipped=pb.CANCELLED)])
                return
        # Maybe in a run handed to the thread pool and not started yet: run_batch skips it.
        self._dropped.add(seq)

    def _answer(self, results: List[pb.BatchResult], counted: bool = True) -> None:
        self._outbox.extend(results)
        if counted:
            for result in results:
                self._open.discard(result.seq)
                self._dropped.discard(result.seq)
            self._dispatcher.end_calls(len(results))
        self._ready.set()

    async def _run(self) -> None:
        dispatcher = self._dispatcher
        while True:
            while not self._pending:
                self._work.clear()
                await self._work.wait()
            seq, request, received = self._pending[0]
            if not dispatcher.runs_inline(request):
                self._pending.popleft()
                self._running += 1
                try:
                    # With one slot, a session call's sync tool runs in the tool thread too.
                    offload = self._offload if self._concurrency == 1 else None
                    response = await dispatcher.execute_counted(request, received, offload)
                except asyncio.CancelledError:
                    dispatcher.end_calls(1)  # the RPC is gone: nobody waits for it
                    raise
                finally:
                    self._running -= 1
                self._answer([pb.BatchResult(seq=seq, response=response)])
                continue
            if self._concurrency == 1:
                # Sync calls with the one slot: the tool thread runs them (see _start_thread).
                self._running += 1
                try:
                    hold = await dispatcher.hold_slot()
                    try:
                        await self._start_thread()
                    finally:
                        self._thread_active = False
                        hold.release()
                finally:
                    self._running -= 1
                    self._ready.set()  # serve() checks whether the stream is done
                continue
            # The thread profile: one call per hand-off, up to `concurrency` at once.
            run = [self._pending.popleft()]
            self._running += 1
            try:
                hold = await dispatcher.hold_slot()
                try:
                    results = await dispatcher.executor_run(dispatcher.run_batch, run, self._dropped)
                finally:
                    hold.release()
            except asyncio.CancelledError:
                dispatcher.end_calls(len(run))  # the RPC is gone: nobody waits for them
                raise
            finally:
                self._running -= 1
            self._answer(results)


def _settle(future: "asyncio.Future[Any]", results: Any) -> None:
    if not future.done():  # the RPC may have been cancelled meanwhile
        future.set_result(results)


def _post(loop: asyncio.AbstractEventLoop, callback: Any, *args: Any) -> None:
    """``callback(*args)`` on the event loop, from the tool thread; nothing once the loop is
    closed (the worker is exiting and nobody waits)."""
    try:
        loop.call_soon_threadsafe(callback, *args)
    except RuntimeError:
        pass


def _fail(future: "asyncio.Future[Any]", exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)

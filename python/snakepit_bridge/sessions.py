"""Per-session state in a worker process: ``ctx.session``, and the store that keeps it.

The host opens a session and sends its id with each of its calls (``ExecuteRequest.session_id``);
it routes them to one worker while it can. That worker keeps a :class:`SessionState` per session
id in its :class:`SessionStore`: a dict-like object a tool reaches as ``ctx.session``. The state
lives only in that process: when the host moves the session to another worker (the first worker
died, was recycled, or was busy in ``hint`` mode), the call arriving there carries
``session_moved`` and starts from an empty state. See ``docs/sessions.md``.

The store is bounded (``--max-sessions``, default :data:`DEFAULT_MAX_SESSIONS`): past it the
least recently used session without a call in flight is evicted. Every state that leaves the
store goes through the adapter's ``on_session_closed`` hook exactly once, with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
import time
import traceback
from collections import OrderedDict
from typing import (Any, AsyncIterator, Awaitable, Callable, Dict, Iterator, List, MutableMapping, NamedTuple,
                    Optional, Set, Tuple)

#: Sessions one worker keeps state for, at most (``--max-sessions``).
DEFAULT_MAX_SESSIONS = 10000

#: The reasons ``on_session_closed`` is called with. The first four come from the host
#: (``CloseSession``); ``"evicted"`` is the worker's own bound. A reason the host sends that is
#: not listed here is passed on unchanged.
CLOSED = "closed"  # the caller closed the session
EXPIRED = "expired"  # unused for the pool's session TTL
MOVED = "moved"  # the host routes the session to another worker (or a call flagged moved arrived)
STOPPING = "stopping"  # the worker stops
EVICTED = "evicted"  # more than --max-sessions sessions on this worker
REASONS = (CLOSED, EXPIRED, MOVED, STOPPING, EVICTED)

NO_SESSION_MESSAGE = "this call has no session; open one on the host (see docs/sessions.md)"

_MISSING: Any = object()


class SessionState(MutableMapping[str, Any]):
    """The state one worker keeps for one session: a mutable mapping of your own keys to any
    Python objects (they never travel over the wire), plus what the worker knows about it.

    One object per session and worker, shared by every call of the session on this worker. In
    the thread profile several calls of one session may run at once: each single operation
    (``state[k] = v``, ``state.get(k)``, ``state.setdefault(k, v)``, ``state.pop(k)``) is atomic,
    and a read-modify-write must hold :attr:`lock`::

        with ctx.session.lock:
            ctx.session["total"] = ctx.session.get("total", 0) + n

    Attributes:
        id: the session id.
        lock: a ``threading.RLock`` for compound updates (the mapping's own methods take it too).
        created_unix: when this worker created the state (``time.time()``).
        last_used_unix: when the last call of the session was accepted (``time.time()``).
        calls: the calls of the session this worker accepted since creating the state,
            the running one included.
        moved: the call that created the state was flagged ``session_moved``: the session
            was served by another worker before, and its state there is not here.
    """

    def __init__(self, session_id: str, *, moved: bool = False) -> None:
        self.id = session_id
        self.lock = threading.RLock()
        self.created_unix = time.time()
        self.last_used_unix = self.created_unix
        self.calls = 0
        self.moved = moved
        self._active = 0  # calls accepted and not answered yet (kept by the store)
        self._data: Dict[str, Any] = {}

    def __getitem__(self, key: str) -> Any:
        with self.lock:
            return self._data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        with self.lock:
            self._data[key] = value

    def __delitem__(self, key: str) -> None:
        with self.lock:
            del self._data[key]

    def __contains__(self, key: object) -> bool:
        with self.lock:
            return key in self._data

    def __iter__(self) -> Iterator[str]:
        with self.lock:
            return iter(list(self._data))  # a snapshot: other threads may change the state meanwhile

    def __len__(self) -> int:
        with self.lock:
            return len(self._data)

    def get(self, key: str, default: Any = None) -> Any:
        with self.lock:
            return self._data.get(key, default)

    def setdefault(self, key: str, default: Any = None) -> Any:
        with self.lock:
            return self._data.setdefault(key, default)

    def pop(self, key: str, default: Any = _MISSING) -> Any:
        with self.lock:
            if default is _MISSING:
                return self._data.pop(key)
            return self._data.pop(key, default)

    def clear(self) -> None:
        with self.lock:
            self._data.clear()

    def snapshot(self) -> Dict[str, Any]:
        """A shallow copy of the keys and values, taken under the lock."""
        with self.lock:
            return dict(self._data)

    def __repr__(self) -> str:
        return (f"SessionState(id={self.id!r}, calls={self.calls}, moved={self.moved}, "
                f"keys={sorted(map(str, self))!r})")


class Entered(NamedTuple):
    """What :meth:`SessionStore.enter` did: the call's state, whether it was just created, and
    the states that left the store to make room or because they were stale (each with its
    reason), whose ``on_session_closed`` is due."""

    state: SessionState
    created: bool
    closed: List[Tuple[SessionState, str]]


class SessionStore:
    """The session states of one worker process, least recently used first, at most
    ``max_sessions`` of them (more only while every one has a call in flight).

    A state leaves the store by :meth:`detach` (the host closed it), by eviction or replacement
    in :meth:`enter`, or by :meth:`drain` (the worker stops). It is then *closing* until
    :meth:`claim` hands it out, exactly once, for its ``on_session_closed``. Thread-safe.
    """

    def __init__(self, max_sessions: int = DEFAULT_MAX_SESSIONS) -> None:
        if max_sessions < 1:
            raise ValueError("max_sessions must be at least 1")
        self.max_sessions = max_sessions
        self._lock = threading.Lock()
        self._open: "OrderedDict[str, SessionState]" = OrderedDict()
        self._closing: Dict[int, Tuple[SessionState, str]] = {}

    def __len__(self) -> int:
        with self._lock:
            return len(self._open)

    def get(self, session_id: str) -> Optional[SessionState]:
        """The open state of a session, or None (does not count as a use)."""
        with self._lock:
            return self._open.get(session_id)

    def ids(self) -> List[str]:
        """The open sessions, least recently used first."""
        with self._lock:
            return list(self._open)

    def enter(self, session_id: str, moved: bool = False) -> Entered:
        """A call of ``session_id`` was accepted: its state (created when there is none, or when
        ``moved`` says the one here is stale), counted as used and as having a call in flight
        until :meth:`leave`."""
        closed: List[Tuple[SessionState, str]] = []
        with self._lock:
            state = self._open.get(session_id)
            if state is not None and moved:
                # The session was served elsewhere since: what is here is an older state.
                del self._open[session_id]
                closed.append(self._close_locked(state, MOVED))
                state = None
            created = state is None
            if state is None:
                state = SessionState(session_id, moved=moved)
                self._open[session_id] = state
            else:
                self._open.move_to_end(session_id)
            state.calls += 1
            state._active += 1
            state.last_used_unix = time.time()
            if created:
                closed.extend(self._evict_locked())
        return Entered(state, created, closed)

    def leave(self, state: SessionState) -> bool:
        """A call of ``state`` was answered; True when it has no call in flight left."""
        with self._lock:
            state._active -= 1
            return state._active == 0

    def in_flight(self, state: SessionState) -> int:
        """Calls of ``state`` accepted and not answered yet."""
        with self._lock:
            return state._active

    def detach(self, session_id: str, reason: str) -> Optional[SessionState]:
        """Takes a session's state out of the store, closing with ``reason``; None when this
        worker has no state for it."""
        with self._lock:
            state = self._open.pop(session_id, None)
            if state is not None:
                self._close_locked(state, reason)
            return state

    def claim(self, state: SessionState) -> Optional[str]:
        """The reason a closing state was closed with, handed out once (None afterwards, or for
        a state that is not closing): whoever gets it runs ``on_session_closed``."""
        with self._lock:
            entry = self._closing.pop(id(state), None)
            return entry[1] if entry is not None else None

    def drain(self, reason: str = STOPPING) -> List[Tuple[SessionState, str]]:
        """Every state not yet handed out by :meth:`claim`, each with its reason (``reason`` for
        the open ones), oldest first; the store is empty afterwards."""
        with self._lock:
            for state in list(self._open.values()):
                self._close_locked(state, reason)
            self._open.clear()
            closing = list(self._closing.values())
            self._closing.clear()
        return closing

    def _close_locked(self, state: SessionState, reason: str) -> Tuple[SessionState, str]:
        self._closing[id(state)] = (state, reason)
        return state, reason

    def _evict_locked(self) -> List[Tuple[SessionState, str]]:
        excess = len(self._open) - self.max_sessions
        if excess <= 0:
            return []
        victims: List[SessionState] = []
        for state in self._open.values():  # least recently used first; busy ones are few
            if state._active == 0:
                victims.append(state)
                if len(victims) == excess:
                    break
        for state in victims:
            del self._open[state.id]
        return [self._close_locked(state, EVICTED) for state in victims]


HookRunner = Callable[[Callable[[], None]], Awaitable[None]]


class SessionManager:
    """The worker's side of sessions, for the dispatcher: enters each call into its session,
    runs the adapter's hooks, and closes sessions when the host says so or the worker stops.

    Every hook runs as a task of its own through ``run_hook`` (the dispatcher's: it takes a
    slot, like a call, and runs the hook in a tool thread), so a cancelled call or RPC never
    leaves a hook half done, and hooks and tools together never run more at once than the
    worker's concurrency (with 1, a hook never runs beside a tool). ``on_session_opened`` runs
    before any call of the new state;
    ``on_session_closed`` after the calls of the state in flight have finished, exactly once per
    state. Hook exceptions are reported (with their traceback) and swallowed.

    Args:
        adapter: the adapter, whose ``on_session_opened`` / ``on_session_closed`` are called.
        run_hook: runs a blocking function off the event loop and waits for it.
        max_sessions: the store's bound (``--max-sessions``).
        report: where warnings and hook failures go (default: stderr, prefixed like the worker's
            own lines).
    """

    def __init__(self, adapter: Any, run_hook: HookRunner, *, max_sessions: int = DEFAULT_MAX_SESSIONS,
                 report: Optional[Callable[[str], None]] = None) -> None:
        self.store = SessionStore(max_sessions)
        self._adapter = adapter
        self._run_hook = run_hook
        self._report = report or _say
        self._opening: Dict[int, "asyncio.Task[None]"] = {}  # by id(state): its on_session_opened
        self._drained: Dict[int, "asyncio.Future[None]"] = {}  # by id(state): its last call answered
        self._tasks: Set["asyncio.Task[None]"] = set()

    @contextlib.asynccontextmanager
    async def scope(self, session_id: str, moved: bool = False) -> AsyncIterator[Optional[SessionState]]:
        """Holds one call in its session: yields the session's state (None without a session
        id) once its ``on_session_opened`` has run; the call counts as in flight until exit."""
        if not session_id:
            yield None
            return
        entered = self.store.enter(session_id, moved)
        state = entered.state
        try:
            for closed, reason in entered.closed:
                if reason == EVICTED:
                    self._report(f"session {closed.id!r} evicted: this worker holds more than {self.store.max_sessions} "
                                 f"sessions (--max-sessions); its state is gone (on_session_closed reason 'evicted')")
                self._spawn(self._close(closed))
            if entered.created:
                key = id(state)
                self._opening[key] = self._spawn(self._run_hook(lambda: self._opened(state)))
                self._opening[key].add_done_callback(lambda _: self._opening.pop(key, None))
            opening = self._opening.get(id(state))
            if opening is not None:
                await asyncio.shield(opening)
            yield state
        finally:
            if self.store.leave(state):
                drained = self._drained.pop(id(state), None)
                if drained is not None and not drained.done():
                    drained.set_result(None)

    async def close(self, session_id: str, reason: str) -> bool:
        """The host closed a session here (``CloseSession``): its state leaves the store at once
        (a later call of the id starts a new one) and ``on_session_closed`` runs once the
        session's calls in flight are answered. Returns whether this worker had state for it."""
        state = self.store.detach(session_id, reason or CLOSED)
        if state is None:
            return False
        await asyncio.shield(self._spawn(self._close(state)))
        return True

    async def close_all(self, reason: str = STOPPING) -> None:
        """The worker stops: cancels the hooks not started yet, then calls ``on_session_closed``
        for every state not handed to it yet (``reason`` for the open ones), in this thread.
        Hooks already running in a tool thread are not waited for."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for state, why in self.store.drain(reason):
            self._closed(state, why)

    def _spawn(self, coroutine: Awaitable[None]) -> "asyncio.Task[None]":
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._forget)
        return task

    def _forget(self, task: "asyncio.Task[None]") -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:  # a bug of ours: say so, keep serving
            failure = task.exception()
            self._report("session hook task failed:\n" + "".join(traceback.format_exception(failure)))

    async def _close(self, state: SessionState) -> None:
        if self.store.in_flight(state) > 0:
            drained = self._drained.get(id(state))
            if drained is None:
                drained = self._drained[id(state)] = asyncio.get_running_loop().create_future()
            await drained
        opening = self._opening.get(id(state))
        if opening is not None:
            await asyncio.shield(opening)  # opened before closed, even for a state evicted at once
        await self._run_hook(lambda: self._claim_and_close(state))

    def _claim_and_close(self, state: SessionState) -> None:
        reason = self.store.claim(state)
        if reason is not None:  # else: handed out already (the worker is stopping)
            self._closed(state, reason)

    def _opened(self, state: SessionState) -> None:
        try:
            self._adapter.on_session_opened(state.id, state)
        except BaseException:  # SystemExit too: a hook cannot end the worker
            self._report(f"on_session_opened({state.id!r}) failed; the call goes on:\n{traceback.format_exc()}")

    def _closed(self, state: SessionState, reason: str) -> None:
        try:
            self._adapter.on_session_closed(state.id, reason, state)
        except BaseException:  # SystemExit too: a hook cannot end the worker
            self._report(f"on_session_closed({state.id!r}, {reason!r}) failed:\n{traceback.format_exc()}")


def _say(text: str) -> None:
    try:
        sys.stderr.write(f"snakepit worker: {text.rstrip()}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass

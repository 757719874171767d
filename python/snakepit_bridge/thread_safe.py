"""``ThreadSafeAdapter``: the base class of adapters that may serve several calls at once.

A thread-profile worker runs one adapter instance in one process and serves N calls at the same
time from a thread pool. Deriving from :class:`ThreadSafeAdapter` declares that the adapter is
written for that; a thread-profile worker refuses any other adapter at start.
:func:`declare_thread_safe` makes the same declaration for an adapter class that already exists,
without rewriting it.
"""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any, ClassVar, Dict, FrozenSet, List, Type, TypeVar

from snakepit_bridge.adapter import BaseAdapter
from snakepit_bridge.errors import ThreadSafetyError


class ThreadSafeAdapter(BaseAdapter):
    """An adapter declared safe to serve several calls at once (the thread profile).

    The contract, which you keep and the class helps with:

    - **Shared state only under the lock.** Anything on ``self`` that a tool changes (counters,
      caches, models that are not read-only) is read and written inside ``with self.locked():``
      (or ``with self.lock:``). ``self.lock`` is an ``RLock``: a tool holding it may call a
      helper that takes it again.
    - **Per-thread state in** ``self.local``, a ``threading.local()``: each pool thread sees its
      own attributes there (scratch buffers, a database connection per thread).
    - Read-only state set up in ``setup()`` (a loaded model used only for inference, a lookup
      table) may be read without the lock, provided the library it belongs to allows concurrent
      reads (see ``snakepit_bridge.compat``).
    - Keep the lock for short sections; a tool that holds it during slow work serializes the
      pool.

    The worker's dispatcher tracks the calls running now: :meth:`active_requests`.

    ``lock``, ``local``, ``locked`` and ``active_requests`` exist from the moment the instance
    is created (also when a subclass's ``__init__`` does not call ``super().__init__()``); they
    cannot be tools.

    Attributes:
        lock: the adapter's ``threading.RLock`` for shared state.
        local: a ``threading.local()`` for per-thread state.
        thread_check_exempt: attribute names the thread-safety checker ignores (for state
            guarded by a lock of your own, or written racily on purpose, e.g. a "last seen"
            timestamp). A class attribute.
    """

    lock: threading.RLock
    local: threading.local
    thread_check_exempt: ClassVar[FrozenSet[str]] = frozenset()

    #: Names of this class that subclasses cannot use as tools.
    _snakepit_reserved_: ClassVar[FrozenSet[str]] = frozenset({"lock", "local", "locked", "active_requests"})

    def __new__(cls, *args: Any, **kwargs: Any) -> "ThreadSafeAdapter":
        self = super().__new__(cls)
        init = object.__setattr__  # not the adapter's own __setattr__, nor the checker's
        init(self, "lock", threading.RLock())
        init(self, "local", threading.local())
        init(self, "_snakepit_requests", {})
        init(self, "_snakepit_requests_lock", threading.Lock())
        init(self, "_snakepit_request_keys", itertools.count())
        return self

    def locked(self) -> "threading.RLock":
        """``with self.locked():`` holds the adapter's lock for a block (same as ``with self.lock:``)."""
        return self.lock

    def active_requests(self) -> List[Dict[str, Any]]:
        """The tool calls running now, oldest first.

        Each is ``{"request_id": str, "tool": str, "thread": str, "started_s": float}``:
        the host's request id, the tool, the name of the thread running it (a pool thread
        ``snakepit-tool_K`` for plain tools, the event loop's thread for ``async def`` tools),
        and when it started (``time.time()``). A call waiting for a free thread is not listed.
        Maintained by the worker's dispatcher (and by ``AdapterTestClient``).
        """
        with self._snakepit_requests_lock:  # type: ignore[attr-defined]
            running = [dict(entry) for entry in self._snakepit_requests.values()]  # type: ignore[attr-defined]
        running.sort(key=lambda entry: entry["started_s"])
        return running


AdapterClass = TypeVar("AdapterClass", bound=type)


def declare_thread_safe(cls: AdapterClass) -> AdapterClass:
    """Declares an existing adapter class thread-safe: a class decorator, or a call.

    ::

        @declare_thread_safe
        class Classifier(BaseAdapter): ...

        FastClassifier = declare_thread_safe(Classifier)   # in a module of your own

    The declaration stays explicit, and its meaning is the same as deriving from
    :class:`ThreadSafeAdapter` (whose contract you then keep: shared state changed only under
    ``self.lock``): it returns a subclass of ``cls`` and :class:`ThreadSafeAdapter` with the same
    name, module and docstring, so ``self.lock``, ``self.local``, ``active_requests()`` and the
    thread-safety checker (``thread_check``) work as for a derived class. Applied to a class that
    already derives from :class:`ThreadSafeAdapter`, it returns it unchanged.

    Raises:
        TypeError: ``cls`` is not a ``BaseAdapter`` subclass, or it defines one of the names
            :class:`ThreadSafeAdapter` adds (``lock``, ``local``, ``locked``,
            ``active_requests``), which would change what they mean.
    """
    if not isinstance(cls, type) or not issubclass(cls, BaseAdapter):
        raise TypeError(f"declare_thread_safe: {cls!r} is not a BaseAdapter subclass")
    if issubclass(cls, ThreadSafeAdapter):
        return cls
    clashes = sorted(name for name in ThreadSafeAdapter._snakepit_reserved_
                     if any(name in vars(klass) for klass in cls.__mro__ if klass is not object))
    if clashes:
        raise TypeError(f"declare_thread_safe: {cls.__module__}.{cls.__qualname__} defines "
                        f"{', '.join(clashes)}, which ThreadSafeAdapter provides; rename them")
    namespace = {"__module__": cls.__module__, "__qualname__": cls.__qualname__, "__doc__": cls.__doc__}
    return type(cls.__name__, (cls, ThreadSafeAdapter), namespace)  # type: ignore[return-value]


def begin_request(adapter: ThreadSafeAdapter, request_id: str, tool: str) -> int:
    """Dispatcher side: a call starts running in this thread; returns its key for :func:`end_request`."""
    key = next(adapter._snakepit_request_keys)  # type: ignore[attr-defined]
    entry = {"request_id": request_id, "tool": tool, "thread": threading.current_thread().name,
             "started_s": time.time()}
    with adapter._snakepit_requests_lock:  # type: ignore[attr-defined]
        adapter._snakepit_requests[key] = entry  # type: ignore[attr-defined]
    return key


def end_request(adapter: ThreadSafeAdapter, key: int) -> None:
    """Dispatcher side: the call of ``key`` has finished."""
    with adapter._snakepit_requests_lock:  # type: ignore[attr-defined]
        adapter._snakepit_requests.pop(key, None)  # type: ignore[attr-defined]


def is_thread_safe(cls: type) -> bool:
    """Whether an adapter class is declared thread-safe (derives from :class:`ThreadSafeAdapter`,
    perhaps through :func:`declare_thread_safe`)."""
    return isinstance(cls, type) and issubclass(cls, ThreadSafeAdapter)


def refusal(adapter_path: str, threads: int) -> str:
    """The message a thread-profile worker gives for an adapter not declared thread-safe."""
    return (f"adapter '{adapter_path}' is not declared thread-safe: derive it from "
            f"snakepit_bridge.ThreadSafeAdapter (or decorate it with "
            f"@snakepit_bridge.declare_thread_safe) to run it in a thread-profile pool "
            f"(threads_per_worker={threads}), or use the process profile")


def require_thread_safe(cls: type, adapter_path: str, threads: int) -> None:
    """Raises :class:`ThreadSafetyError` unless ``cls`` derives from :class:`ThreadSafeAdapter`."""
    if not is_thread_safe(cls):
        raise ThreadSafetyError(refusal(adapter_path, threads))

"""The thread-safety checker: ``--thread-check warn|strict`` (off by default, and then free).

While it is on, it watches the tool calls of one adapter instance for two kinds of unsafe
sharing between threads:

1. **Shared adapter state written without the lock.** The adapter instance's class is swapped
   for a subclass of it (same name) whose ``__setattr__`` / ``__delattr__`` record each write
   with the writing thread and whether it holds ``self.lock``. Plain containers stored as
   attributes (``dict``, ``list``, ``set``, ``OrderedDict``, ``defaultdict``, ``Counter``) are
   replaced by watched subclasses of the same type whose mutating methods record too, so
   ``self.counts[k] += 1`` and ``self.items.append(x)`` count as writes of ``counts`` and
   ``items``. A container is replaced only when nothing else references it (its reference count
   says so), so no one can observe the swap; others are left unwatched.
2. **Libraries listed as not thread-safe** (``snakepit_bridge.compat``, rating ``"no"``) used
   from two threads. While a call runs, and only once such a library is imported, a profile
   function (``sys.setprofile``, this thread only) notes each entry into the library from
   outside it.

An attribute (or library) written (used) from two or more threads, at least once without holding
``self.lock``, is a **finding**. Each distinct finding is reported once: a line
``snakepit thread-check: ...`` on stderr (the host logs it, tagged with the worker), and an entry
in :func:`findings`. In ``strict`` mode, every unlocked write (use) of something already shared
between threads fails the call doing it, with :class:`~snakepit_bridge.errors.ThreadSafetyError`
naming the attribute (library) and the tool; the call fails even if the tool catches the error.

Only what happens during tool calls counts (``setup()``, ``teardown()`` and threads a tool
starts itself are not watched). Limits and costs are in ``docs/worker-profiles.md``.
"""

from __future__ import annotations

import collections
import contextvars
import sys
import threading
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from snakepit_bridge import compat
from snakepit_bridge import runtime
from snakepit_bridge.errors import ThreadSafetyError

MODES = ("off", "warn", "strict")

#: Bounds: attributes and libraries tracked, threads remembered for each, findings kept, module
#: names cached. Past a bound, new subjects (threads, findings) are no longer tracked.
SUBJECTS_MAX = 10000
THREADS_PER_SUBJECT_MAX = 64
FINDINGS_MAX = 1000
MODULE_CACHE_MAX = 20000

PREFIX = "snakepit thread-check: "


@dataclass(frozen=True)
class Finding:
    """One instance of unsafe sharing, reported once.

    Attributes:
        kind: ``"attribute"`` (adapter state) or ``"library"``.
        subject: the attribute's or the library's name.
        owner: the adapter class's name.
        threads: the two threads involved (names).
        tools: the tools involved, sorted.
        message: the text reported on stderr (after ``snakepit thread-check: ``).
    """

    kind: str
    subject: str
    owner: str
    threads: Tuple[str, str]
    tools: Tuple[str, ...]
    message: str

    def as_dict(self) -> Dict[str, Any]:
        return {"kind": self.kind, "subject": self.subject, "owner": self.owner, "threads": list(self.threads),
                "tools": list(self.tools), "message": self.message}


class _Call:
    """The tool call running in this context; set by the dispatcher while the checker is on."""

    __slots__ = ("tool", "request_id", "violation")

    def __init__(self, tool: str, request_id: str) -> None:
        self.tool = tool
        self.request_id = request_id
        self.violation: Optional[ThreadSafetyError] = None


_current_call: "contextvars.ContextVar[Optional[_Call]]" = contextvars.ContextVar("snakepit_call", default=None)
_active: Optional["ThreadChecker"] = None
_UNSET = object()


def findings() -> List[Finding]:
    """The findings of this process's checker so far (empty when the checker is off)."""
    checker = _active
    return checker.findings() if checker is not None else []


def mode() -> str:
    """``"off"``, ``"warn"`` or ``"strict"``: the mode of this process's checker."""
    checker = _active
    return checker.mode if checker is not None else "off"


def _to_stderr(line: str) -> None:
    try:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
    except Exception:
        pass


class ThreadChecker:
    """Watches one adapter instance; the dispatcher brackets each tool call with
    :meth:`enter` / :meth:`leave` (sync tools) or :meth:`enter_task` plus :meth:`step_profile`
    (``async def`` tools).

    Args:
        adapter: the adapter instance (its class is swapped for a watching subclass).
        mode: ``"warn"`` or ``"strict"``.
        libraries: import names of the libraries to watch; default: those rated ``"no"`` in
            ``snakepit_bridge.compat``.
        report: where finding lines go; default: stderr.
    """

    def __init__(self, adapter: Any, mode: str, *, libraries: Optional[Sequence[str]] = None,
                 report: Optional[Callable[[str], None]] = None) -> None:
        if mode not in ("warn", "strict"):
            raise ValueError(f"thread-check mode must be 'warn' or 'strict', not {mode!r}")
        global _active
        self.adapter = adapter
        self.mode = mode
        self.owner = type(adapter).__name__
        self._original_class = type(adapter)
        self._libraries = tuple(compat.unsafe_module_names() if libraries is None else libraries)
        self._module_library: Dict[str, Optional[str]] = {}
        self._exempt = frozenset(getattr(type(adapter), "thread_check_exempt", ()))
        self._report = report or _to_stderr
        self._mutex = threading.Lock()
        self._uses: Dict[Tuple[str, str], Dict[int, List[Any]]] = {}  # -> thread id -> [name, unlocked, tool]
        self._findings: List[Finding] = []
        self._reported: set = set()
        self._watches: List["_Watch"] = []
        self._wrap_containers = not runtime.free_threaded()  # reference counts are not exact there
        self._install()
        _active = self

    # -- public -----------------------------------------------------------------------------

    def findings(self) -> List[Finding]:
        with self._mutex:
            return list(self._findings)

    def enter(self, tool: str, request_id: str) -> Tuple[_Call, Any, Any, bool]:
        """A sync tool call starts in this thread; pass the result to :meth:`leave`."""
        call = _Call(tool, request_id)
        token = _current_call.set(call)
        previous = sys.getprofile()
        profiling = self._libraries_loaded()
        if profiling:
            sys.setprofile(self._profile)
        return call, token, previous, profiling

    def leave(self, scope: Tuple[_Call, Any, Any, bool]) -> Optional[ThreadSafetyError]:
        """The call of ``scope`` ended; returns the error it must fail with (strict), or None."""
        call, token, previous, profiling = scope
        if profiling:
            sys.setprofile(previous)
        _current_call.reset(token)
        return call.violation

    def enter_task(self, tool: str, request_id: str) -> Tuple[_Call, Any]:
        """An ``async def`` tool call: marks the current context so the task created next (which
        copies it) is watched; call :meth:`leave_task` right after creating the task."""
        call = _Call(tool, request_id)
        return call, _current_call.set(call)

    def leave_task(self, token: Any) -> None:
        _current_call.reset(token)

    def step_profile(self) -> Optional[Callable[..., Any]]:
        """The profile function to set around one step of an ``async def`` tool, or None."""
        return self._profile if self._libraries_loaded() else None

    def close(self) -> None:
        """Stops watching: restores the adapter's class and detaches watched containers."""
        global _active
        try:
            if type(self.adapter) is not self._original_class:
                self.adapter.__class__ = self._original_class
        except TypeError:
            pass
        for watch in self._watches:
            watch.checker = None
        if _active is self:
            _active = None

    # -- attribute writes --------------------------------------------------------------------

    def _install(self) -> None:
        cls = type(self.adapter)
        try:
            self.adapter.__class__ = _checked_class(cls, self)
        except TypeError as exc:
            self._report(f"{PREFIX}cannot watch attribute writes of {self.owner}: {exc}")
            return
        state = getattr(self.adapter, "__dict__", None)
        if state is None or not self._wrap_containers:
            return
        for name in list(state):
            if (not name.startswith("_snakepit") and name not in self._exempt and type(state[name]) in _CHECKED
                    and _refs_in(state, name) <= _FRESH_IN_DICT_REFS):
                state[name] = self._watched(state[name], name)

    def _on_setattr(self, adapter: Any, name: str, value: Any, refs: int) -> Any:
        """Called by the watching ``__setattr__`` before each write; returns the value to store."""
        if name.startswith("_snakepit") or name in self._exempt:
            return value
        call = _current_call.get()
        if call is not None:
            self._use("attribute", name, "written", call)  # raises in strict mode
        old = getattr(adapter, "__dict__", {}).get(name)
        if isinstance(old, _Watched) and old is not value:
            _detach(old)
        if self._wrap_containers and type(value) in _CHECKED and refs <= _FRESH_SETATTR_REFS:
            value = self._watched(value, name)
        return value

    def _on_delattr(self, adapter: Any, name: str) -> None:
        if name.startswith("_snakepit") or name in self._exempt:
            return
        call = _current_call.get()
        if call is not None:
            self._use("attribute", name, "deleted", call)

    def _watched(self, value: Any, name: str) -> Any:
        checked, copy = _CHECKED[type(value)]
        wrapped = copy(checked, value)
        watch = _Watch(self, name, type(value).__name__)
        wrapped._snakepit_watch = watch
        with self._mutex:
            if len(self._watches) < FINDINGS_MAX:  # only for close(); a bound on memory
                self._watches.append(watch)
        return wrapped

    # -- libraries ---------------------------------------------------------------------------

    def _libraries_loaded(self) -> bool:
        modules = sys.modules
        return any(name in modules for name in self._libraries)

    def _library_of(self, module: Any) -> Optional[str]:
        if not isinstance(module, str):
            return None
        found = self._module_library.get(module, _UNSET)
        if found is _UNSET:
            found = next((name for name in self._libraries
                          if module == name or module.startswith(name + ".")), None)
            if len(self._module_library) < MODULE_CACHE_MAX:
                self._module_library[module] = found
        return found  # type: ignore[return-value]

    def _profile(self, frame: Any, event: str, arg: Any) -> None:
        if event == "call":
            library = self._library_of(frame.f_globals.get("__name__"))
            if library is None:
                return
            caller = frame.f_back
            if caller is not None and self._library_of(caller.f_globals.get("__name__")) == library:
                return  # inside the library
        elif event == "c_call":
            module = getattr(arg, "__module__", None)
            if module is None:
                bound = getattr(arg, "__self__", None)
                module = type(bound).__module__ if bound is not None else None
            library = self._library_of(module)
            if library is None or self._library_of(frame.f_globals.get("__name__")) == library:
                return
        else:
            return
        call = _current_call.get()
        if call is not None:
            self._use("library", library, "used", call)  # raises in strict mode

    # -- the core ----------------------------------------------------------------------------

    def _holds_lock(self) -> bool:
        lock = getattr(self.adapter, "__dict__", {}).get("lock")
        if lock is None:
            return False
        owned = getattr(lock, "_is_owned", None)  # RLock; a plain Lock only says it is taken
        if owned is not None:
            return bool(owned())
        taken = getattr(lock, "locked", None)
        return bool(taken()) if taken is not None else False

    def _use(self, kind: str, subject: str, how: str, call: _Call) -> None:
        """Records one write (use) by this thread; reports and, in strict mode, raises."""
        key = (kind, subject)
        if self.mode == "warn" and key in self._reported:
            return  # nothing more to learn about it
        locked = self._holds_lock()
        ident = threading.get_ident()
        with self._mutex:
            uses = self._uses.get(key)
            if uses is None:
                if len(self._uses) >= SUBJECTS_MAX:
                    return
                uses = self._uses[key] = {}
            mine = uses.get(ident)
            if mine is None and len(uses) < THREADS_PER_SUBJECT_MAX:
                mine = uses[ident] = [threading.current_thread().name, False, call.tool]
            if mine is not None and not locked and not mine[1]:
                mine[1], mine[2] = True, call.tool
            if len(uses) < 2 and (mine is not None or not uses):
                return  # one thread so far
            other = None
            for other_ident, use in uses.items():
                if other_ident != ident and (other is None or (use[1] and not other[1])):
                    other = use
            if other is None or (locked and not other[1]):
                return
            name = mine[0] if mine is not None else threading.current_thread().name
            message = self._message(kind, subject, how, other, name, locked, call.tool)
            fresh = key not in self._reported and len(self._findings) < FINDINGS_MAX
            if fresh:
                self._reported.add(key)
                self._findings.append(Finding(kind, subject, self.owner, (other[0], name),
                                              tuple(sorted({other[2], call.tool})), message))
        if fresh:
            self._report(PREFIX + message)
        if self.mode == "strict" and not locked:
            error = ThreadSafetyError(message)
            if call.violation is None:
                call.violation = error
            raise error

    def _message(self, kind: str, subject: str, how: str, other: List[Any], thread: str, locked: bool,
                 tool: str) -> str:
        lock = "self.lock" if "lock" in getattr(self.adapter, "__dict__", {}) else "a lock"
        if kind == "library":
            what = f"library '{subject}' (not thread-safe) used"
        elif how in ("written", "deleted"):
            what = f"attribute '{subject}' of {self.owner} {how}"
        else:
            what = f"attribute '{subject}' of {self.owner} changed in place ({how})"
        if not locked and other[1]:
            threads = f"from threads {other[0]} and {thread} without {lock}"
        elif not locked:
            threads = f"from threads {thread} without {lock} and {other[0]} with it"
        else:
            threads = f"from threads {other[0]} without {lock} and {thread} with it"
        tools = sorted({other[2], tool})
        named = f"tool '{tools[0]}'" if len(tools) == 1 else f"tools '{tools[0]}' and '{tools[1]}'"
        return f"{what} {threads} ({named})"


# -- the watching adapter class ----------------------------------------------------------------

def _checked_class(cls: type, checker: Any) -> type:
    """A subclass of ``cls`` (same name, same layout) whose attribute writes go to ``checker``."""
    base_setattr = cls.__setattr__
    base_delattr = cls.__delattr__
    on_setattr = checker._on_setattr
    on_delattr = checker._on_delattr
    count = sys.getrefcount

    def __setattr__(self: Any, name: str, value: Any) -> None:
        refs = count(value)  # must stay the first statement: calibrated below
        base_setattr(self, name, on_setattr(self, name, value, refs))

    def __delattr__(self: Any, name: str) -> None:
        on_delattr(self, name)
        base_delattr(self, name)

    namespace = {"__setattr__": __setattr__, "__delattr__": __delattr__, "__slots__": (),
                 "__module__": cls.__module__, "__qualname__": cls.__qualname__, "__doc__": cls.__doc__}
    return type(cls)(cls.__name__, (cls,), namespace)


def _refs_in(state: Dict[str, Any], name: str) -> int:
    value = state[name]
    return sys.getrefcount(value)


class _Calibration:
    """Measures what "referenced by nothing else" looks like on this interpreter."""

    def __init__(self) -> None:
        self.refs = 0

    def _on_setattr(self, adapter: Any, name: str, value: Any, refs: int) -> Any:
        self.refs = refs
        return value

    def _on_delattr(self, adapter: Any, name: str) -> None:
        pass


_CALIBRATION_GLOBAL: Dict[str, Any] = {}


def _calibrate() -> Tuple[int, int]:
    """The reference counts of a value nothing else holds: as seen by the watching ``__setattr__``
    (-1 when this interpreter does not show the difference between a fresh value and one held by a
    local or a global, e.g. with borrowed references on the stack: then assignments never swap
    containers), and as seen by the scan of ``vars(adapter)``."""

    class Probe:
        pass

    calibration = _Calibration()
    probe = _checked_class(Probe, calibration)()
    probe.value = {}
    fresh = calibration.refs
    held = {}
    probe.value = held
    by_local = calibration.refs
    probe.value = _CALIBRATION_GLOBAL
    by_global = calibration.refs
    del held
    setattr_refs = fresh if fresh < min(by_local, by_global) else -1
    return setattr_refs, _refs_in({"value": {}}, "value")


_FRESH_SETATTR_REFS, _FRESH_IN_DICT_REFS = _calibrate()


# -- watched containers ------------------------------------------------------------------------

class _Watch:
    """Ties a watched container to the attribute it is stored in."""

    __slots__ = ("checker", "name", "type_name")

    def __init__(self, checker: ThreadChecker, name: str, type_name: str) -> None:
        self.checker: Optional[ThreadChecker] = checker
        self.name = name
        self.type_name = type_name

    def changed(self, method: str) -> None:
        checker = self.checker
        if checker is None:
            return
        call = _current_call.get()
        if call is not None:
            checker._use("attribute", self.name, f"{self.type_name}.{method}", call)


class _Watched:
    """Marker base of the watched container types."""

    __slots__ = ()


def _detach(container: Any) -> None:
    watch = getattr(container, "_snakepit_watch", None)
    if watch is not None:
        watch.checker = None


def _mutator(original: Callable[..., Any], method: str) -> Callable[..., Any]:
    def mutate(self: Any, *args: Any, **kwargs: Any) -> Any:
        watch = getattr(self, "_snakepit_watch", None)
        if watch is not None:
            watch.changed(method)
        return original(self, *args, **kwargs)

    mutate.__name__ = method
    return mutate


def _watched_type(base: type, methods: Sequence[str], plain: Callable[[Any], Tuple[Any, tuple]]) -> type:
    namespace: Dict[str, Any] = {"__slots__": ("_snakepit_watch",), "__module__": __name__}
    for method in methods:
        namespace[method] = _mutator(getattr(base, method), method)
    # Copies and pickles are of the plain type: the watch never leaves the adapter.
    namespace["__reduce_ex__"] = lambda self, protocol: plain(self)
    namespace["__reduce__"] = lambda self: plain(self)
    namespace["copy"] = namespace["__copy__"] = lambda self: _rebuild(plain(self))
    return type(f"Watched{base.__name__[0].upper()}{base.__name__[1:]}", (_Watched, base), namespace)


_DICT = ("__setitem__", "__delitem__", "update", "pop", "popitem", "setdefault", "clear", "__ior__")
_LIST = ("__setitem__", "__delitem__", "append", "extend", "insert", "pop", "remove", "clear", "sort", "reverse",
         "__iadd__", "__imul__")
_SET = ("add", "discard", "remove", "pop", "clear", "update", "difference_update", "intersection_update",
        "symmetric_difference_update", "__ior__", "__iand__", "__isub__", "__ixor__")
_COUNTER = _DICT + ("subtract", "__iadd__", "__isub__", "__iand__")


def _rebuild(reduced: Tuple[Any, tuple]) -> Any:
    make, arguments = reduced
    return make(*arguments)


def _copy_counter(checked: type, value: Any) -> Any:
    copy = checked()
    dict.update(copy, value)
    return copy


#: plain type -> (watched type, how to make a watched copy)
_CHECKED: Dict[type, Tuple[type, Callable[[type, Any], Any]]] = {
    dict: (_watched_type(dict, _DICT, lambda self: (dict, (dict(self),))),
           lambda checked, value: checked(value)),
    list: (_watched_type(list, _LIST, lambda self: (list, (list(self),))),
           lambda checked, value: checked(value)),
    set: (_watched_type(set, _SET, lambda self: (set, (list(self),))),
          lambda checked, value: checked(value)),
    collections.OrderedDict: (
        _watched_type(collections.OrderedDict, _DICT + ("move_to_end",),
                      lambda self: (collections.OrderedDict, (list(self.items()),))),
        lambda checked, value: checked(value)),
    collections.defaultdict: (
        _watched_type(collections.defaultdict, _DICT,
                      lambda self: (collections.defaultdict, (self.default_factory, dict(self)))),
        lambda checked, value: checked(value.default_factory, value)),
    collections.Counter: (
        _watched_type(collections.Counter, _COUNTER, lambda self: (collections.Counter, (dict(self),))),
        _copy_counter),
}

"""ThreadSafeAdapter and the thread-safety checker, in-process through AdapterTestClient (the
worker's own dispatch). Concurrency is forced with barriers, so no test depends on timing."""

from __future__ import annotations

import asyncio
import collections
import copy
import pickle
import sys
import threading
import types
from typing import Any, Dict, List

import pytest

import snakepit_bridge
from snakepit_bridge import (AdapterTestClient, BaseAdapter, CallContext, ThreadSafeAdapter, ThreadSafetyError,
                             ToolCallError, thread_check, tool)
from snakepit_bridge.showcase import ThreadedShowcaseAdapter

BARRIER_TIMEOUT_S = 10


def run_together(client: AdapterTestClient, calls: List[tuple]) -> List[Any]:
    """Runs ``(tool, arguments)`` calls at once from threads; results or ToolCallErrors, in order."""
    results: List[Any] = [None] * len(calls)

    def one(index: int, name: str, arguments: Dict[str, Any]) -> None:
        try:
            results[index] = client.call_with(name, arguments)
        except ToolCallError as error:
            results[index] = error

    threads = [threading.Thread(target=one, args=(index, name, arguments))
               for index, (name, arguments) in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


REGISTRY: Dict[str, int] = {}


class Shared(ThreadSafeAdapter):
    """Tools that write shared state with and without the lock; a barrier makes the calls overlap."""

    thread_check_exempt = frozenset({"last_tool"})

    def setup(self) -> None:
        self.parties = 2
        self.barrier = threading.Barrier(self.parties, timeout=BARRIER_TIMEOUT_S)
        self.total = 0
        self.guarded = 0
        self.counts = collections.defaultdict(int)
        self.items: list = []
        self.tags: set = set()
        self.last_tool = ""
        self.registry = REGISTRY  # referenced from elsewhere too: the checker must leave it alone
        local = {}
        self.outside = local  # still referenced by the local variable while it is assigned
        self.fresh = {}
        self.alias = self.fresh  # the same (watched) object under two names

    @tool
    def unlocked_write(self) -> int:
        self.barrier.wait()
        self.total = self.total + 1
        return self.total

    @tool
    def locked_write(self) -> int:
        self.barrier.wait()
        with self.locked():
            self.guarded += 1
            self.counts["locked"] += 1
            self.items.append("locked")
            return self.guarded

    @tool
    def count_item(self, key: str) -> int:
        self.barrier.wait()
        self.counts[key] += 1
        return self.counts[key]

    @tool
    def append_item(self) -> int:
        self.barrier.wait()
        self.items.append(threading.current_thread().name)
        return len(self.items)

    @tool
    def add_tag(self) -> int:
        self.barrier.wait()
        self.tags.add(threading.current_thread().name)
        return len(self.tags)

    @tool
    def exempt_write(self) -> None:
        self.barrier.wait()
        self.last_tool = "exempt_write"

    @tool
    def swallow(self) -> str:
        self.barrier.wait()
        try:
            self.total = self.total + 1
        except ThreadSafetyError:
            return "swallowed"
        return "wrote"

    @tool
    async def async_write(self) -> int:
        await asyncio.get_running_loop().run_in_executor(None, self.barrier.wait)
        self.total = self.total + 1
        return self.total


class Plain(BaseAdapter):
    @tool
    def noop(self) -> None:
        pass


# -- ThreadSafeAdapter ---------------------------------------------------------------------------

def test_thread_safe_adapter_is_exported_beside_base_adapter():
    assert snakepit_bridge.ThreadSafeAdapter is ThreadSafeAdapter
    assert issubclass(ThreadSafeAdapter, snakepit_bridge.BaseAdapter)
    assert {"ThreadSafeAdapter", "ThreadSafetyError"} <= set(snakepit_bridge.__all__)


def test_lock_local_and_locked_exist_without_super_init():
    class NoSuper(ThreadSafeAdapter):
        def __init__(self) -> None:  # does not call super().__init__()
            self.value = 1

    adapter = NoSuper()
    with adapter.locked():
        with adapter.lock:  # an RLock: the same thread may take it again
            assert adapter.lock._is_owned()
    assert not adapter.lock._is_owned()
    adapter.local.x = "main"
    seen = []
    worker = threading.Thread(target=lambda: seen.append(getattr(adapter.local, "x", None)))
    worker.start()
    worker.join()
    assert seen == [None] and adapter.local.x == "main"
    assert adapter.active_requests() == []
    assert NoSuper().lock is not adapter.lock


def test_thread_safe_adapter_names_cannot_be_tools():
    class Clash(ThreadSafeAdapter):
        @tool
        def active_requests(self) -> list:
            return []

    with pytest.raises(TypeError, match="'active_requests' belongs to ThreadSafeAdapter and cannot be a tool"):
        Clash.describe()

    class Fine(BaseAdapter):  # a plain adapter may have such a tool
        @tool
        def locked(self) -> bool:
            return True

    assert [spec.name for spec in Fine.describe()] == ["locked"]


def test_active_requests_lists_the_calls_running_now():
    class Tracked(ThreadSafeAdapter):
        def setup(self) -> None:
            self.started = threading.Barrier(3, timeout=BARRIER_TIMEOUT_S)
            self.seen = threading.Barrier(3, timeout=BARRIER_TIMEOUT_S)

        @tool
        def report(self, ctx: CallContext) -> list:
            self.started.wait()
            running = self.active_requests()
            self.seen.wait()  # nobody leaves before all have looked
            return running

        @tool
        async def report_async(self) -> list:
            return self.active_requests()

    with AdapterTestClient(Tracked, concurrency=3, profile="thread") as client:
        results = run_together(client, [("report", {})] * 3)
        for running in results:
            assert [entry["tool"] for entry in running] == ["report"] * 3
            assert len({entry["thread"] for entry in running}) == 3
            assert all(entry["thread"].startswith("snakepit-tool") for entry in running)
            assert all(len(entry["request_id"]) == 32 for entry in running)
            assert [entry["started_s"] for entry in running] == sorted(entry["started_s"] for entry in running)
        (only,) = client.call("report_async")
        assert only["tool"] == "report_async" and only["thread"] == "snakepit-test-loop"
        assert client.adapter.active_requests() == []


def test_the_thread_profile_refuses_an_adapter_not_declared_thread_safe():
    with pytest.raises(ThreadSafetyError) as refused:
        AdapterTestClient(Plain, concurrency=4, profile="thread")
    assert str(refused.value) == (
        f"adapter '{__name__}.Plain' is not declared thread-safe: derive it from snakepit_bridge.ThreadSafeAdapter "
        "(or decorate it with @snakepit_bridge.declare_thread_safe) to run it in a thread-profile pool (threads_per_worker=4), or use the process profile")
    with AdapterTestClient(Plain, concurrency=4) as client:  # the process profile takes it
        assert client.call("noop") is None


def test_declare_thread_safe_declares_an_existing_class_and_keeps_its_identity():
    declared = snakepit_bridge.declare_thread_safe(Plain)
    assert issubclass(declared, ThreadSafeAdapter) and issubclass(declared, Plain)
    assert (declared.__name__, declared.__module__, declared.__qualname__) == ("Plain", __name__, "Plain")
    assert snakepit_bridge.declare_thread_safe(declared) is declared
    assert snakepit_bridge.declare_thread_safe(Shared) is Shared  # derived already: unchanged
    with AdapterTestClient(declared, concurrency=4, profile="thread") as client:
        assert client.call("noop") is None
        assert isinstance(client.adapter.lock, type(threading.RLock()))


def test_declare_thread_safe_refuses_what_it_cannot_declare():
    with pytest.raises(TypeError, match="is not a BaseAdapter subclass"):
        snakepit_bridge.declare_thread_safe(object)

    class OwnLock(BaseAdapter):
        lock = None

        @tool
        def noop(self) -> None:
            pass

    with pytest.raises(TypeError, match=r"OwnLock defines lock, which ThreadSafeAdapter provides; rename them"):
        snakepit_bridge.declare_thread_safe(OwnLock)


# -- the checker: attribute writes ----------------------------------------------------------------

def checked(adapter: Any = Shared, mode: str = "warn", **options: Any) -> AdapterTestClient:
    return AdapterTestClient(adapter, concurrency=4, thread_check=mode, **options)


def test_an_unlocked_write_from_two_threads_is_reported_once(capsys):
    with checked() as client:
        assert sorted(run_together(client, [("unlocked_write", {})] * 2)) in ([1, 2], [1, 1], [2, 2])
        run_together(client, [("unlocked_write", {})] * 2)
        (finding,) = client.thread_findings()
    assert finding.kind == "attribute" and finding.subject == "total" and finding.owner == "Shared"
    assert finding.tools == ("unlocked_write",)
    assert len(set(finding.threads)) == 2
    assert finding.message == (f"attribute 'total' of Shared written from threads {finding.threads[0]} and "
                               f"{finding.threads[1]} without self.lock (tool 'unlocked_write')")
    err = capsys.readouterr().err
    assert err.count("snakepit thread-check: ") == 1
    assert f"snakepit thread-check: {finding.message}\n" in err


def test_writes_under_the_lock_are_not_reported():
    with checked() as client:
        assert sorted(run_together(client, [("locked_write", {})] * 2)) == [1, 2]
        run_together(client, [("locked_write", {})] * 2)
        assert client.thread_findings() == []
        assert client.adapter.counts["locked"] == 4 and client.adapter.items == ["locked"] * 4


@pytest.mark.parametrize("tool_name, arguments, subject, method", [
    ("count_item", {"key": "k"}, "counts", "defaultdict.__setitem__"),
    ("append_item", {}, "items", "list.append"),
    ("add_tag", {}, "tags", "set.add"),
])
def test_in_place_changes_of_containers_count_as_writes(tool_name, arguments, subject, method):
    with checked() as client:
        run_together(client, [(tool_name, arguments)] * 2)
        (finding,) = client.thread_findings()
        assert finding.subject == subject
        assert f"attribute '{subject}' of Shared changed in place ({method}) from threads " in finding.message


def test_containers_referenced_elsewhere_are_left_alone_and_watched_ones_copy_as_plain():
    with checked() as client:
        adapter = client.adapter
        assert type(adapter.registry) is dict and adapter.registry is REGISTRY
        assert type(adapter.outside) is dict
        assert type(adapter.fresh) is not dict and isinstance(adapter.fresh, dict) and adapter.alias is adapter.fresh
        assert isinstance(adapter.counts, collections.defaultdict) and type(adapter.counts) is not collections.defaultdict
        adapter.counts["x"] += 2
        assert type(copy.copy(adapter.counts)) is collections.defaultdict
        assert type(copy.deepcopy(adapter.items)) is list
        clone = pickle.loads(pickle.dumps(adapter.counts))
        assert type(clone) is collections.defaultdict and clone == {"x": 2} and clone.default_factory is int
    assert type(client.adapter) is Shared  # the class is restored when the checker stops


def test_exempt_attributes_and_setup_writes_are_not_reported():
    with checked() as client:
        run_together(client, [("exempt_write", {})] * 2)
        assert client.thread_findings() == []


def test_strict_fails_the_offending_call_with_thread_safety_error():
    with checked(mode="strict") as client:
        results = run_together(client, [("unlocked_write", {})] * 2)
        failures = [result for result in results if isinstance(result, ToolCallError)]
        assert len(failures) == 1 and results.count(1) == 1
        (failure,) = failures
        assert (failure.kind, failure.python_type) == ("python_exception", "ThreadSafetyError")
        assert failure.message.startswith("attribute 'total' of Shared written from threads ")
        assert failure.message.endswith("without self.lock (tool 'unlocked_write')")
        assert "ThreadSafetyError" in failure.traceback
        assert client.adapter.total == 1  # the refused write did not happen
        assert sorted(run_together(client, [("locked_write", {})] * 2)) == [1, 2]  # locked writes still pass


def test_strict_fails_the_call_even_when_the_tool_catches_the_error():
    with checked(mode="strict") as client:
        results = run_together(client, [("swallow", {})] * 2)
        assert results.count("wrote") == 1
        (failure,) = [result for result in results if isinstance(result, ToolCallError)]
        assert failure.python_type == "ThreadSafetyError"


def test_async_tools_race_with_sync_tools_across_threads():
    with checked() as client:
        run_together(client, [("async_write", {}), ("unlocked_write", {})])
        (finding,) = client.thread_findings()
        assert finding.subject == "total" and finding.tools == ("async_write", "unlocked_write")
        assert "snakepit-test-loop" in finding.threads


def test_the_checker_is_off_by_default_and_then_changes_nothing():
    with AdapterTestClient(Shared, concurrency=4) as client:
        assert type(client.adapter) is Shared and type(client.adapter.counts) is collections.defaultdict
        run_together(client, [("unlocked_write", {})] * 2)
        assert client.thread_findings() == []


def test_a_plain_adapter_can_be_checked_and_has_no_lock():
    class Counter(BaseAdapter):
        def setup(self) -> None:
            self.barrier = threading.Barrier(2, timeout=BARRIER_TIMEOUT_S)
            self.n = 0

        @tool
        def bump(self) -> None:
            self.barrier.wait()
            self.n += 1

    with checked(Counter) as client:
        run_together(client, [("bump", {})] * 2)
        (finding,) = client.thread_findings()
        assert "without a lock (tool 'bump')" in finding.message


# -- the checker: libraries ----------------------------------------------------------------------

@pytest.fixture
def fake_unsafe_library(monkeypatch) -> types.ModuleType:
    """A stand-in for matplotlib (rated "no" in the compat table), in sys.modules for one test."""
    module = types.ModuleType("matplotlib")
    exec("def plot(x):\n    return helper(x) + 1\n\ndef helper(x):\n    return x\n", module.__dict__)
    monkeypatch.setitem(sys.modules, "matplotlib", module)
    return module


class Plotter(ThreadSafeAdapter):
    def setup(self) -> None:
        self.barrier = threading.Barrier(2, timeout=BARRIER_TIMEOUT_S)

    @tool
    def plot(self) -> int:
        import matplotlib

        self.barrier.wait()
        return matplotlib.plot(1)

    @tool
    def plot_locked(self) -> int:
        import matplotlib

        self.barrier.wait()
        with self.lock:
            return matplotlib.plot(1)


def test_an_unsafe_library_used_from_two_threads_is_reported(fake_unsafe_library, capsys):
    with checked(Plotter) as client:
        assert run_together(client, [("plot_locked", {})] * 2) == [2, 2]
        assert client.thread_findings() == []
    with checked(Plotter) as client:
        assert run_together(client, [("plot", {})] * 2) == [2, 2]
        assert run_together(client, [("plot", {})] * 2) == [2, 2]
        (finding,) = client.thread_findings()
    assert (finding.kind, finding.subject, finding.tools) == ("library", "matplotlib", ("plot",))
    assert finding.message == (f"library 'matplotlib' (not thread-safe) used from threads {finding.threads[0]} and "
                               f"{finding.threads[1]} without self.lock (tool 'plot')")
    assert capsys.readouterr().err.count("snakepit thread-check: library 'matplotlib'") == 1


def test_strict_fails_a_call_that_uses_an_unsafe_library_from_a_second_thread(fake_unsafe_library):
    with checked(Plotter, mode="strict") as client:
        results = run_together(client, [("plot", {})] * 2)
        assert results.count(2) == 1
        (failure,) = [result for result in results if isinstance(result, ToolCallError)]
        assert failure.python_type == "ThreadSafetyError"
        assert "library 'matplotlib'" in failure.message and "(tool 'plot')" in failure.message
        assert sys.getprofile() is None


def test_module_functions_report_this_process_checker():
    with checked() as client:
        assert thread_check.mode() == "warn"
        run_together(client, [("unlocked_write", {})] * 2)
        assert [finding.subject for finding in thread_check.findings()] == ["total"]
    assert thread_check.mode() == "off" and thread_check.findings() == []


def test_threaded_showcase_counters_under_the_checker():
    with AdapterTestClient(ThreadedShowcaseAdapter, concurrency=4, thread_check="warn", profile="thread") as client:
        run_together(client, [("counter_increment", {})] * 8)
        assert client.thread_findings() == []
        assert client.call("counters")["counter"] == 8
        info = client.call("worker_info")
        assert info["thread_check"] == "warn" and info["thread_check_findings"] == 0
        assert info["thread"].startswith("snakepit-tool")
        assert [entry["tool"] for entry in info["active_requests"]] == ["worker_info"]

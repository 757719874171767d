"""The thread profile with real worker processes: N calls at once in one process, the refusal of
adapters not declared thread-safe, start-up warnings, and the thread-safety checker."""

from __future__ import annotations

import hashlib
import textwrap
import threading
import time
from pathlib import Path
from typing import Any, List

import pytest

from bridge_helpers import SHOWCASE, THREADED_SHOWCASE, call, result_of
from snakepit_bridge._wire import bridge_pb2 as pb

SLEEP_S = 0.3
THREADS = 4


def thread_worker(workers, *, threads: int = THREADS, check: str = "off", adapter: str = THREADED_SHOWCASE,
                  **options: Any):
    extra = ("--profile", "thread") + (("--thread-check", check) if check != "off" else ())
    return workers.start(adapter, concurrency=threads, extra_args=extra, **options)


def at_once(stub, count: int, tool: str, **arguments: Any) -> List[pb.ExecuteResponse]:
    """``count`` Execute calls at the same moment, each from its own Python thread."""
    responses: List[Any] = [None] * count
    go = threading.Barrier(count)

    def one(index: int) -> None:
        go.wait()
        responses[index] = call(stub, tool, **arguments)

    threads = [threading.Thread(target=one, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return responses


def test_worker_options_match_the_checker_modes():
    from snakepit_bridge import thread_check, worker

    assert worker.THREAD_CHECK_MODES == thread_check.MODES
    assert worker.PROFILES == ("process", "thread")


def test_ready_line_reports_the_profile(workers):
    report = thread_worker(workers).report
    assert report["profile"] == "thread" and report["concurrency"] == THREADS
    assert report["thread_safe"] is True and report["thread_check"] == "off"
    assert report["gil_enabled"] is True and report["free_threaded"] is False  # this machine's 3.11
    assert report["warnings"] == []
    assert {"noop", "sleep", "cpu_burn", "sha256", "matmul", "worker_info", "counter_increment",
            "racy_increment"} <= set(report["tools"])
    process = workers.start().report  # no new options: the process profile, as before
    assert (process["profile"], process["concurrency"], process["thread_safe"]) == ("process", 1, False)
    assert process["warnings"] == [] and process["free_threaded"] is False


def test_a_thread_worker_runs_n_calls_at_once_and_never_more(workers):
    stub = thread_worker(workers).stub()
    result_of(call(stub, "noop"))  # connected and warm
    start = time.monotonic()
    responses = at_once(stub, THREADS, "sleep", seconds=SLEEP_S)
    took = time.monotonic() - start
    assert all(result_of(response) >= SLEEP_S for response in responses)
    # all at once: close to one sleep; two at a time would take 2 x, one at a time 4 x
    assert SLEEP_S <= took < 1.9 * SLEEP_S, f"{THREADS} sleeps of {SLEEP_S} s took {took:.3f} s"
    start = time.monotonic()
    responses = at_once(stub, THREADS + 2, "sleep", seconds=SLEEP_S)
    took = time.monotonic() - start
    assert all(result_of(response) >= SLEEP_S for response in responses)
    assert took >= 2 * SLEEP_S, f"{THREADS + 2} sleeps took {took:.3f} s: more than {THREADS} ran at once"
    assert took < 4 * SLEEP_S, f"{THREADS + 2} sleeps took {took:.3f} s"


def test_the_threaded_showcase_tools(workers):
    stub = thread_worker(workers).stub()
    assert result_of(call(stub, "sha256", megabytes=3)) == hashlib.sha256(bytes(3 * 1024 * 1024)).hexdigest()
    numpy = pytest.importorskip("numpy")
    n = 64
    a = numpy.arange(n * n, dtype=numpy.float64).reshape(n, n) / float(n * n)
    assert result_of(call(stub, "matmul", n=n)) == pytest.approx(float((a @ a.T).sum()))
    assert result_of(call(stub, "cpu_burn", milliseconds=20)) > 0
    info = result_of(call(stub, "worker_info"))
    assert info["thread"].startswith("snakepit-tool")
    assert [entry["tool"] for entry in info["active_requests"]] == ["worker_info"]
    assert info["gil_enabled"] is True and info["free_threaded"] is False
    assert info["thread_check"] == "off" and info["thread_check_findings"] == 0


def test_an_adapter_not_declared_thread_safe_is_refused_by_the_thread_profile(workers):
    worker = thread_worker(workers, adapter=SHOWCASE, expect="error")
    assert worker.wait() == 3
    report = worker.report
    assert (report["status"], report["kind"], report["python_type"]) == ("error", "startup_failed", "ThreadSafetyError")
    assert report["message"] == (
        f"adapter '{SHOWCASE}' is not declared thread-safe: derive it from snakepit_bridge.ThreadSafeAdapter (or "
        f"decorate it with @snakepit_bridge.declare_thread_safe) to run it in a thread-profile pool "
        f"(threads_per_worker={THREADS}), or use the process profile")
    accepted = workers.start(SHOWCASE, concurrency=THREADS, extra_args=("--profile", "process"))
    assert accepted.report["profile"] == "process" and accepted.report["thread_safe"] is False


DECLARED = textwrap.dedent('''
    import time
    from snakepit_bridge import BaseAdapter, declare_thread_safe, tool

    @declare_thread_safe
    class Waiter(BaseAdapter):
        def setup(self) -> None:
            self.calls = 0

        @tool
        def wait(self, seconds: float) -> int:
            time.sleep(seconds)
            with self.lock:
                self.calls += 1
                return self.calls

        @tool
        def racy(self, seconds: float) -> int:
            seen = self.calls
            time.sleep(seconds)
            self.calls = seen + 1
            return self.calls
''')


def test_an_existing_adapter_declared_with_the_decorator_runs_in_a_thread_worker(workers, tmp_path):
    (tmp_path / "declared.py").write_text(DECLARED)
    worker = thread_worker(workers, adapter="declared.Waiter", check="strict", python_path=(tmp_path,))
    assert worker.report["profile"] == "thread" and worker.report["thread_safe"] is True
    stub = worker.stub()
    start = time.monotonic()
    waited = at_once(stub, THREADS, "wait", seconds=SLEEP_S)
    assert sorted(result_of(response) for response in waited) == list(range(1, THREADS + 1))
    assert time.monotonic() - start < SLEEP_S * THREADS * 0.75  # side by side, not one after another
    raced = at_once(stub, THREADS, "racy", seconds=0.05)  # the checker watches the declared class too
    failed = [response.error for response in raced if response.WhichOneof("outcome") == "error"]
    assert failed and all(error.python_type == "ThreadSafetyError" for error in failed)


def finding_lines(path: Path) -> List[str]:
    return [line for line in path.read_text().splitlines() if line.startswith("snakepit thread-check: ")]


RACE = "snakepit thread-check: attribute 'racy' of ThreadedShowcaseAdapter written from threads "


def test_warn_mode_reports_the_deliberate_race_once_and_lets_calls_succeed(workers, tmp_path):
    with open(tmp_path / "err", "wb") as err:
        stub = thread_worker(workers, check="warn", stderr=err).stub()
        counted = at_once(stub, 2 * THREADS, "counter_increment")
        assert sorted(result_of(response) for response in counted) == list(range(1, 2 * THREADS + 1))
        assert result_of(call(stub, "worker_info"))["thread_check_findings"] == 0
        for _ in range(2):
            raced = at_once(stub, THREADS, "racy_increment", pause_s=0.05)
            assert all(result_of(response) >= 1 for response in raced)
        info = result_of(call(stub, "worker_info"))
    assert (info["thread_check"], info["thread_check_findings"]) == ("warn", 1)
    lines = finding_lines(tmp_path / "err")
    assert len(lines) == 1, lines
    assert lines[0].startswith(RACE) and lines[0].endswith(" without self.lock (tool 'racy_increment')")


def test_strict_mode_fails_the_racing_call_with_thread_safety_error(workers, tmp_path):
    with open(tmp_path / "err", "wb") as err:
        stub = thread_worker(workers, check="strict", stderr=err).stub()
        counted = at_once(stub, 2 * THREADS, "counter_increment")
        assert sorted(result_of(response) for response in counted) == list(range(1, 2 * THREADS + 1))
        raced = at_once(stub, THREADS, "racy_increment", pause_s=0.05)
        failed = [response.error for response in raced if response.WhichOneof("outcome") == "error"]
        assert 1 <= len(failed) <= THREADS - 1
        for error in failed:
            assert (error.kind, error.python_type) == (pb.PYTHON_EXCEPTION, "ThreadSafetyError")
            assert error.message.startswith("attribute 'racy' of ThreadedShowcaseAdapter written from threads ")
            assert error.message.endswith(" without self.lock (tool 'racy_increment')")
        assert result_of(call(stub, "counters")) == {"counter": 2 * THREADS, "racy": 1}
        assert result_of(call(stub, "worker_info"))["thread_check_findings"] == 1
    assert len(finding_lines(tmp_path / "err")) == 1


PLOTTING = textwrap.dedent('''
    import matplotlib.pyplot as plt
    from snakepit_bridge import ThreadSafeAdapter, tool


    class Plots(ThreadSafeAdapter):
        @tool
        def plot(self) -> int:
            return plt.plot([1, 2, 3])

        @tool
        def plot_locked(self) -> int:
            with self.locked():
                return plt.plot([1, 2, 3])
''')
FAKE_PYPLOT = textwrap.dedent('''
    import time

    def plot(points):
        time.sleep(0.05)   # long enough for the calls to overlap
        return _count(points)

    def _count(points):
        return len(points)
''')


@pytest.fixture
def plotting_dir(tmp_path) -> Path:
    """An adapter that uses "matplotlib" (a stand-in package: the real one is rated not thread-safe)."""
    (tmp_path / "matplotlib").mkdir()
    (tmp_path / "matplotlib" / "__init__.py").write_text("")
    (tmp_path / "matplotlib" / "pyplot.py").write_text(FAKE_PYPLOT)
    (tmp_path / "plotting_adapter.py").write_text(PLOTTING)
    return tmp_path


def test_a_library_not_thread_safe_is_a_start_warning_and_a_finding(workers, plotting_dir, tmp_path):
    with open(tmp_path / "err", "wb") as err:
        worker = thread_worker(workers, check="warn", adapter="plotting_adapter.Plots",
                               python_path=(plotting_dir,), stderr=err)
        (warning,) = worker.report["warnings"]
        assert warning.startswith("library 'matplotlib' is imported and is not thread-safe: ")
        stub = worker.stub()
        assert all(result_of(response) == 3 for response in at_once(stub, THREADS, "plot_locked"))
        assert all(result_of(response) == 3 for response in at_once(stub, THREADS, "plot"))
    text = (tmp_path / "err").read_text()
    assert f"snakepit worker: warning: {warning}" in text
    (line,) = finding_lines(tmp_path / "err")
    assert line.startswith("snakepit thread-check: library 'matplotlib' (not thread-safe) used from threads ")
    assert "without self.lock" in line and "'plot'" in line

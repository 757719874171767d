"""Sessions on the Python side: ``ctx.session`` state, the adapter's session hooks, CloseSession,
the per-worker bound, the stop, and the thread profile; over gRPC and with AdapterTestClient."""

from __future__ import annotations

import os
import subprocess
import textwrap
import threading
import time
from types import MappingProxyType
from typing import Any, Dict, List

import pytest

from bridge_helpers import PYTHON, PYTHON_DIR, SHOWCASE, THREADED_SHOWCASE, result_of
from snakepit_bridge import AdapterTestClient, BaseAdapter, CallContext, ThreadSafeAdapter, ToolCallError, tool
from snakepit_bridge._wire import bridge_pb2 as pb
from snakepit_bridge.sessions import DEFAULT_MAX_SESSIONS, NO_SESSION_MESSAGE, SessionState, SessionStore
from snakepit_bridge.values import encode_map


def execute(stub, tool: str, session: str = "", *, moved: bool = False, metadata: Dict[str, str] | None = None,
            **arguments: Any) -> Any:
    """One Execute in a session over gRPC; the decoded result."""
    request = pb.ExecuteRequest(request_id="t", tool=tool, arguments=encode_map(arguments), session_id=session,
                                session_moved=moved, metadata=metadata or {})
    return result_of(stub.Execute(request, timeout=20))


def close(stub, session: str, reason: str = "closed") -> bool:
    return stub.CloseSession(pb.CloseSessionRequest(session_id=session, reason=reason), timeout=20).known


def closed_sessions(stub, wait_for: int = 0) -> List[List[str]]:
    """The showcase's record of closed sessions, waiting (a little) for at least ``wait_for``."""
    end = time.monotonic() + 10
    while True:
        closed = execute(stub, "closed_sessions")
        if len(closed) >= wait_for or time.monotonic() > end:
            return closed
        time.sleep(0.01)


# --- over gRPC, with the showcase -------------------------------------------------------------


def test_state_is_kept_across_the_calls_of_a_session_and_isolated_between_sessions(workers):
    worker = workers.start()
    stub = worker.stub()
    assert execute(stub, "session_put", "s1", key="a", value={"nested": [1, 2]}) == 1
    assert execute(stub, "session_put", "s1", key="b", value=b"\x00\x01") == 2
    assert execute(stub, "session_put", "s2", key="a", value="other") == 1
    assert execute(stub, "session_get", "s1", key="a") == {"nested": [1, 2]}
    assert execute(stub, "session_get", "s1", key="b") == b"\x00\x01"
    assert execute(stub, "session_get", "s2", key="a") == "other"
    assert execute(stub, "session_get", "s2", key="b") is None
    info = execute(stub, "session_info", "s1")
    assert info == {"session_id": "s1", "moved": False, "pid": worker.process.pid, "calls": 5,
                    "keys": ["a", "b"]}
    assert execute(stub, "session_info", "s2")["calls"] == 4
    assert execute(stub, "closed_sessions") == []


def test_a_call_without_a_session_gets_a_clear_error(workers):
    stub = workers.start().stub()
    error = stub.Execute(pb.ExecuteRequest(tool="session_get", arguments=encode_map({"key": "a"})), timeout=20).error
    assert error.kind == pb.PYTHON_EXCEPTION and error.python_type == "RuntimeError"
    assert error.message == NO_SESSION_MESSAGE == (
        "this call has no session; open one on the host (see docs/sessions.md)")


def test_the_moved_flag_is_visible_and_replaces_a_stale_state(workers):
    stub = workers.start().stub()
    first = execute(stub, "session_info", "fresh", moved=True)
    assert (first["moved"], first["calls"], first["keys"]) == (True, 1, [])
    assert execute(stub, "session_info", "fresh")["moved"] is False  # only the flagged call says so
    execute(stub, "session_put", "back", key="old", value=1)
    # "back" was served elsewhere meanwhile, and comes back: what is here is older than that.
    again = execute(stub, "session_info", "back", moved=True)
    assert (again["moved"], again["calls"], again["keys"]) == (True, 1, [])
    assert closed_sessions(stub, 1) == [["back", "moved"]]


def test_close_session_runs_the_hook_and_frees_the_state(workers):
    stub = workers.start().stub()
    execute(stub, "session_put", "s1", key="a", value=1)
    assert close(stub, "s1", "expired") is True
    assert execute(stub, "closed_sessions") == [["s1", "expired"]]
    assert execute(stub, "session_get", "s1", key="a") is None  # a new state
    assert execute(stub, "session_info", "s1")["calls"] == 2
    assert close(stub, "s1", "") is True  # no reason: "closed"
    assert close(stub, "s1") is False  # gone already
    assert close(stub, "never-seen", "moved") is False
    assert close(stub, "", "closed") is False
    assert execute(stub, "closed_sessions") == [["s1", "expired"], ["s1", "closed"]]


def test_the_bound_evicts_the_least_recently_used_session(workers, tmp_path):
    with open(tmp_path / "err", "wb") as err:
        stub = workers.start(extra_args=("--max-sessions", "2"), stderr=err).stub()
        execute(stub, "session_put", "s1", key="k", value=1)
        execute(stub, "session_put", "s2", key="k", value=2)
        execute(stub, "session_get", "s1", key="k")  # s2 is now the least recently used
        execute(stub, "session_put", "s3", key="k", value=3)
        assert closed_sessions(stub, 1) == [["s2", "evicted"]]
        assert execute(stub, "session_get", "s1", key="k") == 1
        assert execute(stub, "session_get", "s3", key="k") == 3
        assert execute(stub, "session_get", "s2", key="k") is None  # evicts s1 in turn
        assert closed_sessions(stub, 2) == [["s2", "evicted"], ["s1", "evicted"]]
    text = (tmp_path / "err").read_text()
    assert ("snakepit worker: session 's2' evicted: this worker holds more than 2 sessions (--max-sessions); "
            "its state is gone (on_session_closed reason 'evicted')") in text


def test_a_stop_closes_the_sessions_left_with_reason_stopping(workers, tmp_path):
    with open(tmp_path / "err", "wb") as err:
        worker = workers.start(stderr=err)
        stub = worker.stub()
        execute(stub, "session_put", "s1", key="k", value=1)
        execute(stub, "session_put", "s2", key="k", value=1)
        close(stub, "s1")
        stub.Stop(pb.StopRequest(grace_ms=1000), timeout=10)
        assert worker.wait() == 0
    lines = [line for line in (tmp_path / "err").read_text().splitlines() if line.startswith("showcase:")]
    assert lines == ["showcase: session s1 closed (closed)", "showcase: session s2 closed (stopping)"]


def test_bad_max_sessions_is_a_bad_command_line():
    from snakepit_bridge import worker

    assert worker.DEFAULT_MAX_SESSIONS == DEFAULT_MAX_SESSIONS  # the worker keeps its own copy (light imports)
    env = dict(os.environ, PYTHONPATH=str(PYTHON_DIR))
    done = subprocess.run([PYTHON, "-m", "snakepit_bridge.worker", "--adapter", SHOWCASE, "--socket", "/tmp/x.sock",
                           "--max-sessions", "0"], env=env, capture_output=True, timeout=30)
    assert done.returncode == 2
    assert b"--max-sessions must be at least 1" in done.stderr


def test_calls_of_sessions_run_in_parallel_in_the_thread_profile(workers):
    stub = workers.start(THREADED_SHOWCASE, concurrency=8, extra_args=("--profile", "thread")).stub()
    sessions, per_session = 4, 40
    results: Dict[str, List[int]] = {f"t{index}": [] for index in range(sessions)}
    errors: List[BaseException] = []
    go = threading.Barrier(sessions * 4)

    def client(session: str, part: int) -> None:
        try:
            go.wait()
            for index in range(part, per_session, 4):
                results[session].append(execute(stub, "session_put", session, key=f"k{index}", value=index))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(session, part)) for session in results for part in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    for session, counts in results.items():
        assert sorted(counts) == list(range(1, per_session + 1))  # each put saw an exact count
        info = execute(stub, "session_info", session)
        assert info["calls"] == per_session + 1 and len(info["keys"]) == per_session


# --- hooks, with an adapter of the test's own ----------------------------------------------------

HOOKED_MODULE = textwrap.dedent('''
    import os
    from snakepit_bridge import BaseAdapter, CallContext, tool

    class Hooked(BaseAdapter):
        def setup(self):
            self.entries = []

        def on_session_opened(self, session_id, state):
            self.entries.append(["opened", session_id, state.moved])
            if session_id.startswith("bad"):
                raise RuntimeError("opened hook fails")
            state["opened"] = True

        def on_session_closed(self, session_id, reason, state):
            self.entries.append(["closed", session_id, reason, sorted(state)])
            with open(os.environ["MARKER"], "a") as out:
                out.write(f"closed {session_id} {reason}\\n")
            if session_id.startswith("bad"):
                raise SystemExit("closed hook fails")

        def teardown(self):
            with open(os.environ["MARKER"], "a") as out:
                out.write("torn down\\n")

        @tool
        def keys(self, ctx: CallContext) -> list:
            return sorted(ctx.session)

        @tool
        def log(self) -> list:
            return self.entries
''')


@pytest.fixture
def hooked(workers, tmp_path):
    (tmp_path / "hooked_adapter.py").write_text(HOOKED_MODULE)
    err = open(tmp_path / "err", "wb")
    worker = workers.start("hooked_adapter.Hooked", python_path=(tmp_path,), stderr=err,
                           extra_env={"MARKER": str(tmp_path / "marker")})
    yield worker, tmp_path
    err.close()


def test_hooks_see_the_session_open_first_and_close_with_its_state(hooked):
    worker, tmp_path = hooked
    stub = worker.stub()
    assert execute(stub, "keys", "s1") == ["opened"]  # on_session_opened ran before the first tool
    assert execute(stub, "keys", "s1") == ["opened"]
    assert execute(stub, "keys", "s2", moved=True) == ["opened"]
    assert close(stub, "s1", "expired") is True
    assert execute(stub, "log") == [["opened", "s1", False], ["opened", "s2", True],
                                    ["closed", "s1", "expired", ["opened"]]]
    stub.Stop(pb.StopRequest(grace_ms=1000), timeout=10)
    assert worker.wait() == 0
    assert (tmp_path / "marker").read_text().splitlines() == ["closed s1 expired", "closed s2 stopping", "torn down"]


def test_hook_exceptions_are_logged_and_never_break_the_worker(hooked):
    worker, tmp_path = hooked
    stub = worker.stub()
    assert execute(stub, "keys", "bad1") == []  # the opened hook failed: the call still ran
    assert close(stub, "bad1", "closed") is True  # the closed hook raised SystemExit
    assert execute(stub, "keys", "fine") == ["opened"]
    stub.Stop(pb.StopRequest(grace_ms=1000), timeout=10)
    assert worker.wait() == 0
    err = (tmp_path / "err").read_text()
    assert "snakepit worker: on_session_opened('bad1') failed; the call goes on:\nTraceback" in err
    assert "RuntimeError: opened hook fails" in err
    assert "snakepit worker: on_session_closed('bad1', 'closed') failed:\nTraceback" in err
    assert "SystemExit: closed hook fails" in err
    assert (tmp_path / "marker").read_text().splitlines() == ["closed bad1 closed", "closed fine stopping", "torn down"]


# --- AdapterTestClient -------------------------------------------------------------------------


class Notes(ThreadSafeAdapter):
    """Per-session notes, the hooks recorded, and a tool that waits to be released."""

    def __init__(self) -> None:
        self.events: List[Any] = []
        self.release = threading.Event()
        self.running = threading.Event()

    def on_session_opened(self, session_id: str, state: SessionState) -> None:
        with self.lock:
            self.events.append(("opened", session_id, state.moved))

    def on_session_closed(self, session_id: str, reason: str, state: SessionState | None) -> None:
        assert state is not None
        with self.lock:
            self.events.append(("closed", session_id, reason, state.snapshot()))

    @tool
    def note(self, text: str, ctx: CallContext) -> int:
        notes = ctx.session.setdefault("notes", [])
        with ctx.session.lock:
            notes.append(text)
            return len(notes)

    @tool
    def context(self, ctx: CallContext) -> Dict[str, Any]:
        return {"session_id": ctx.session_id, "moved": ctx.session_moved, "metadata": dict(ctx.metadata),
                "read_only": isinstance(ctx.metadata, MappingProxyType)}

    @tool
    def slow_note(self, text: str, ctx: CallContext) -> str:
        self.running.set()
        self.release.wait(10)
        ctx.session["late"] = text
        return text


def test_the_test_client_passes_sessions_metadata_and_the_moved_flag():
    with AdapterTestClient(Notes) as client:
        work = client.session("w1", metadata={"user": "ada"})
        assert work.state is None
        assert [work.call("note", text="a"), work.call("note", text="b")] == [1, 2]
        assert work.state is not None and work.state["notes"] == ["a", "b"] and work.state.calls == 2
        assert work.call("context") == {"session_id": "w1", "moved": False, "metadata": {"user": "ada"},
                                        "read_only": True}
        assert client.call_with("context", {}, session_id="w2", session_moved=True, metadata={"k": "v"}) == {
            "session_id": "w2", "moved": True, "metadata": {"k": "v"}, "read_only": True}
        assert client.call_with("note", {"text": "x"}, session_id="w2") == 1
        assert client.session_ids() == ["w1", "w2"]
        assert work.close("expired") is True
        assert work.close() is False
        assert client.session_ids() == ["w2"]
        with pytest.raises(ToolCallError) as error:
            client.call("note", text="no session")
        assert (error.value.kind, error.value.python_type) == ("python_exception", "RuntimeError")
        assert error.value.message == NO_SESSION_MESSAGE
    assert client.adapter.events == [
        ("opened", "w1", False), ("opened", "w2", True), ("closed", "w1", "expired", {"notes": ["a", "b"]}),
        ("closed", "w2", "stopping", {"notes": ["x"]})]


def test_close_waits_for_the_calls_of_the_session_in_flight():
    with AdapterTestClient(Notes, concurrency=2) as client:
        running = threading.Thread(target=client.call_with, args=("slow_note", {"text": "last"}),
                                   kwargs={"session_id": "s"})
        running.start()
        assert client.adapter.running.wait(10)
        closed: List[bool] = []
        closer = threading.Thread(target=lambda: closed.append(client.close_session("s", "moved")))
        closer.start()
        time.sleep(0.2)
        assert closed == [] and client.session_ids() == []  # detached at once, closed after the call
        assert client.call_with("note", {"text": "new"}, session_id="s") == 1  # a new state meanwhile
        client.adapter.release.set()
        running.join(10)
        closer.join(10)
        assert closed == [True]
        assert ("closed", "s", "moved", {"late": "last"}) in client.adapter.events


def test_the_test_client_bounds_sessions():
    with AdapterTestClient(Notes, max_sessions=1) as client:
        client.call_with("note", {"text": "a"}, session_id="s1")
        client.call_with("note", {"text": "b"}, session_id="s2")
        assert client.session_ids() == ["s2"]
    assert [event[:3] for event in client.adapter.events if event[0] == "closed"] == [
        ("closed", "s1", "evicted"), ("closed", "s2", "stopping")]


def test_thread_profile_calls_of_one_session_share_its_state():
    with AdapterTestClient(Notes, profile="thread", concurrency=8) as client:
        counts: List[int] = []
        threads = [threading.Thread(target=lambda i=i: counts.append(
            client.call_with("note", {"text": str(i)}, session_id="shared"))) for i in range(64)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert sorted(counts) == list(range(1, 65))
        assert sorted(client.session_state("shared")["notes"], key=int) == [str(i) for i in range(64)]


def test_a_hand_made_context_says_how_to_get_a_session():
    assert CallContext().session_moved is False
    with pytest.raises(RuntimeError, match="no session; open one on the host"):
        CallContext().session  # noqa: B018
    with pytest.raises(RuntimeError, match="AdapterTestClient.call_with"):
        CallContext(session_id="s").session  # noqa: B018
    context = CallContext(metadata={"a": "1"})
    with pytest.raises(TypeError):
        context.metadata["b"] = "2"  # type: ignore[index]


def test_session_hooks_cannot_be_tools():
    class Wrong(BaseAdapter):
        @tool
        def on_session_closed(self, session_id: str, reason: str) -> None:
            pass

    with pytest.raises(TypeError, match="'on_session_closed' is a BaseAdapter method and cannot be a tool"):
        Wrong.describe()


# --- the store itself --------------------------------------------------------------------------


def test_the_store_never_evicts_a_session_with_a_call_in_flight():
    store = SessionStore(max_sessions=2)
    busy = store.enter("busy").state
    idle = store.enter("idle").state
    store.leave(idle)
    entered = store.enter("new")
    assert [(state.id, reason) for state, reason in entered.closed] == [("idle", "evicted")]
    over = store.enter("over")  # every one busy now: over the bound until they finish
    assert over.closed == [] and store.ids() == ["busy", "new", "over"]
    assert store.claim(idle) == "evicted" and store.claim(idle) is None
    store.leave(busy)
    assert [(state.id, reason) for state, reason in store.drain()] == [("busy", "stopping"), ("new", "stopping"),
                                                                        ("over", "stopping")]
    assert len(store) == 0


def test_the_session_state_is_a_mutable_mapping_with_a_lock():
    import snakepit_bridge

    assert snakepit_bridge.SessionState is SessionState and "SessionState" in snakepit_bridge.__all__
    state = SessionState("s")
    state["a"] = 1
    state.update(b=2)
    assert dict(state) == {"a": 1, "b": 2} and len(state) == 2 and "a" in state
    assert state.pop("a") == 1 and state.pop("a", None) is None
    with pytest.raises(KeyError):
        state.pop("a")
    with state.lock, state.lock:  # re-entrant
        state.setdefault("c", []).append(1)
    assert state.snapshot() == {"b": 2, "c": [1]}
    del state["b"]
    state.clear()
    assert len(state) == 0 and state.id == "s" and state.calls == 0 and state.moved is False
    assert state.created_unix <= state.last_used_unix <= time.time()
    assert repr(state) == "SessionState(id='s', calls=0, moved=False, keys=[])"


def test_session_tools_of_the_showcase_exist_in_both_profiles():
    from snakepit_bridge.showcase import ShowcaseAdapter, ThreadedShowcaseAdapter

    wanted = {"session_put", "session_get", "session_info", "closed_sessions"}
    for adapter in (ShowcaseAdapter, ThreadedShowcaseAdapter):
        assert wanted <= {spec.name for spec in adapter.describe()}
    with AdapterTestClient(ThreadedShowcaseAdapter, profile="thread", concurrency=2) as client:
        session = client.session("showcase")
        assert session.call("session_put", key="k", value=[1]) == 1
        assert session.call("session_get", key="k") == [1]
        assert session.call("session_info")["keys"] == ["k"]
        assert session.close() is True
        assert ["showcase", "closed"] in client.call("closed_sessions")

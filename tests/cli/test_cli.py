"""The `snakepit` command line, driven as a user would: real processes, real workers."""

import json
import re
import shutil
import signal
import tempfile
import time
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

SNAKEPIT = os.environ.get("SNAKEPIT_BIN", "snakepit")


def run(*args: str, timeout: float = 120, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    return subprocess.run([SNAKEPIT, *args], capture_output=True, text=True, timeout=timeout,
                          env=full_env)


def error_of(proc: subprocess.CompletedProcess) -> dict:
    last = [line for line in proc.stderr.splitlines() if line.startswith("{")][-1]
    return json.loads(last)["error"]


def test_call_prints_the_result_as_json():
    proc = run("call", "--tool", "add", "--args", '{"a": 2, "b": 40}')
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == 42


def test_call_keeps_big_integers_and_bytes():
    proc = run("call", "--tool", "echo", "--args",
               '{"value": {"n": 9007199254740993, "b": {"$bytes": "AAH/"}}}')
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"b": {"$bytes": "AAH/"}, "n": 9007199254740993}


def test_invalid_json_is_a_usage_error():
    proc = run("call", "--tool", "add", "--args", '{"a": 2,')
    assert proc.returncode == 2
    err = error_of(proc)
    assert err["kind"] == "bad_arguments"
    assert "not valid JSON" in err["message"]


def test_args_must_be_an_object():
    proc = run("call", "--tool", "add", "--args", "[1, 2]")
    assert proc.returncode == 2
    assert "JSON object" in error_of(proc)["message"]


def test_unknown_tool_is_a_typed_error_listing_tools():
    proc = run("call", "--tool", "nope")
    assert proc.returncode == 1
    err = error_of(proc)
    assert err["kind"] == "unknown_tool"
    assert "echo" in err["message"]


def test_python_exception_carries_type_and_traceback():
    proc = run("call", "--tool", "fail", "--args", '{"message": "bad day", "exception": "KeyError"}')
    assert proc.returncode == 1
    err = error_of(proc)
    assert err["kind"] == "python_exception"
    assert err["python_type"] == "KeyError"
    assert "Traceback" in err["traceback"]


def test_stream_prints_one_line_per_item():
    proc = run("call", "--tool", "count", "--args", '{"n": 5}', "--stream", "--timings")
    assert proc.returncode == 0, proc.stderr
    assert [json.loads(line) for line in proc.stdout.splitlines()] == [0, 1, 2, 3, 4]
    assert "5 items" in proc.stderr


def test_stream_error_comes_after_the_items():
    proc = run("call", "--tool", "fail_after", "--args", '{"n": 2}', "--stream")
    assert proc.returncode == 1
    assert [json.loads(line) for line in proc.stdout.splitlines()] == [0, 1]
    err = error_of(proc)
    assert (err["kind"], err["python_type"]) == ("python_exception", "ValueError")


def test_a_streaming_tool_without_stream_says_to_use_it():
    proc = run("call", "--tool", "count", "--args", '{"n": 2}')
    assert proc.returncode == 1
    err = error_of(proc)
    assert err["kind"] == "bad_arguments"
    assert "--stream" in err["message"]


def test_timeout(tmp_path: Path):
    proc = run("call", "--tool", "sleep", "--args", '{"seconds": 20}', "--timeout-ms", "300")
    assert proc.returncode == 1
    assert error_of(proc)["kind"] == "timeout"


def test_adapter_import_failure_reports_the_traceback():
    proc = run("call", "--adapter", "missing_pkg.Adapter", "--tool", "x")
    assert proc.returncode == 1
    err = error_of(proc)
    assert err["kind"] == "startup_failed"
    assert err["python_type"] == "ModuleNotFoundError"
    assert "missing_pkg" in err["message"]


def test_user_adapter_from_python_path(tmp_path: Path):
    (tmp_path / "tiny.py").write_text(
        "from snakepit_bridge import BaseAdapter, tool\n"
        "class Tiny(BaseAdapter):\n"
        "    @tool\n"
        "    def twice(self, x: int) -> int:\n"
        "        return 2 * x\n")
    proc = run("call", "--adapter", "tiny.Tiny", "--python-path", str(tmp_path),
               "--tool", "twice", "--args", '{"x": 21}')
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == 42


def test_python_without_grpc_says_how_to_fix_it(tmp_path: Path):
    wrapper = tmp_path / "python-without-grpc"
    wrapper.write_text('#!/bin/sh\nexec /usr/bin/python3 -S "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    for args, env in ((["--python", str(wrapper)], None),
                      ([], {"SNAKEPIT_PYTHON": str(wrapper)})):
        proc = run("call", *args, "--tool", "noop", env=env)
        assert proc.returncode == 1
        err = error_of(proc)
        assert err["kind"] == "startup_failed"
        assert "grpc" in err["message"]
        assert "apt-get install python3-grpcio" in err["message"]


def test_demo_runs_and_prints_timings():
    proc = run("demo")
    assert proc.returncode == 0, proc.stderr
    assert "pool ready in" in proc.stdout
    assert "calls/s" in proc.stdout
    assert "python_exception" in proc.stdout
    assert "pool stopped" in proc.stdout


def test_no_worker_outlives_the_command():
    proc = run("call", "--tool", "worker_info", "--workers", "2")
    assert proc.returncode == 0, proc.stderr
    pid = json.loads(proc.stdout)["pid"]
    assert not Path(f"/proc/{pid}").exists() or \
        Path(f"/proc/{pid}/status").read_text().find("State:\tZ") >= 0


EXAMPLES = Path(os.environ.get("SNAKEPIT_SOURCE_DIR", Path(__file__).parents[2])) / "examples"


def test_check_prints_a_valid_tree():
    proc = run("check", str(EXAMPLES / "nested.toml"))
    assert proc.returncode == 0, proc.stderr
    assert "supervisor heavy: rest_for_one" in proc.stdout
    assert "pool batch" in proc.stdout


def test_check_reports_every_problem_with_position(tmp_path: Path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[supervisors.app]\nstrategy = "one_for_some"\nchildren = ["p"]\n'
                   '[pools.p]\nadapter = "a.B"\nsise = 2\n')
    proc = run("check", str(bad))
    assert proc.returncode == 1
    assert "2 problems" in proc.stderr
    assert f"{bad}:2:" in proc.stderr and "one_for_some" in proc.stderr
    assert "did you mean 'size'" in proc.stderr


def is_running(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False


def python_workers_of(pid: int) -> list:
    out = subprocess.run(["ps", "-eo", "pid,ppid,args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines()[1:]
            if "snakepit_bridge.worker" in line and line.split()[1] == str(pid)]


def runtime_dirs_in(parent: Path) -> list:
    """The hosts' private runtime directories (snakepit-XXXXXX) under a runtime parent."""
    return [p for p in parent.glob("snakepit-??????") if not p.name.startswith("snakepit-runs")]


def wait_running(proc: subprocess.Popen) -> str:
    """Reads `snakepit run`'s stderr until it reports the tree running; returns what it read."""
    started = ""
    deadline = time.monotonic() + 60
    while "running" not in started and time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        started += line
    assert "running" in started, started
    return started


def test_run_serves_until_sigterm_and_leaves_no_worker():
    proc = subprocess.Popen([SNAKEPIT, "run", str(EXAMPLES / "nested.toml")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    started = wait_running(proc)
    workers = [int(line.split()[0]) for line in python_workers_of(proc.pid)]
    assert len(workers) == 5
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "tree stopped" in err
    # Every worker it started is gone (not merely re-parented).
    assert [pid for pid in workers if Path(f"/proc/{pid}").exists()] == []
    assert "started child fast" in started and "started child batch" in started


def test_run_rejects_an_invalid_tree(tmp_path: Path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[supervisors.app]\nchildren = ["missing"]\n')
    proc = run("run", str(bad))
    assert proc.returncode == 1
    assert "missing" in proc.stderr


def test_workers_die_with_a_sigkilled_host_and_its_run_is_cleaned_later():
    # A short private parent: worker socket paths must stay under 107 bytes.
    tmp_path = Path(tempfile.mkdtemp(prefix="sp", dir="/tmp"))
    env = dict(os.environ, SNAKEPIT_RUNTIME_PARENT=str(tmp_path))
    proc = subprocess.Popen([SNAKEPIT, "run", str(EXAMPLES / "one_pool.toml")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=env)
    started = wait_running(proc)
    workers = [int(line.split()[0]) for line in python_workers_of(proc.pid)]
    assert len(workers) == 2, started
    runs = tmp_path / f"snakepit-runs-{os.geteuid()}"
    assert len(list(runs.glob("*.run"))) == 1  # the run registry of the live host
    (runtime,) = runtime_dirs_in(tmp_path)  # the host's sockets live here
    assert list(runtime.rglob("*.sock"))
    proc.kill()
    proc.wait(timeout=10)
    deadline = time.monotonic() + 2  # within 2 s no worker of it remains
    while time.monotonic() < deadline:
        alive = [pid for pid in workers if is_running(pid)]
        if not alive:
            break
        time.sleep(0.02)
    assert alive == []
    # The dead run's registry file stays until the next host starts a worker.
    assert len(list(runs.glob("*.run"))) == 1
    # ... and so does its runtime directory: a SIGKILLed host cannot remove it.
    assert runtime.exists()
    again = run("call", "--tool", "noop", env={"SNAKEPIT_RUNTIME_PARENT": str(tmp_path)})
    assert again.returncode == 0, again.stderr
    assert list(runs.glob("*.run")) == []
    assert runtime_dirs_in(tmp_path) == []  # the dead run's, and the call's own
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_repeat_with_concurrency_prints_one_line_per_call_and_advice():
    proc = run("call", "--adapter", "snakepit_bridge.showcase.ThreadedShowcaseAdapter",
               "--profile", "thread", "--threads", "4", "--tool", "sleep",
               "--args", '{"seconds": 0.2}', "--repeat", "8", "--concurrency", "4")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    # Each line is the time the call slept: at least the 0.2 s asked; a busy machine adds some.
    assert len(lines) == 8 and all(0.2 <= json.loads(x) < 1.0 for x in lines), lines
    assert "8 calls, 4 in flight, 0 failed" in proc.stderr
    assert "thread profile" in proc.stderr
    assert "profile advice: thread" in proc.stderr


def test_repeat_exits_non_zero_when_a_call_fails():
    proc = run("call", "--tool", "fail", "--repeat", "3", "--concurrency", "2")
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr.count('"kind":"python_exception"') == 3


def test_thread_profile_refuses_an_adapter_not_declared_thread_safe():
    proc = run("call", "--profile", "thread", "--tool", "noop")
    assert proc.returncode == 1
    err = error_of(proc)
    assert err["kind"] == "startup_failed"
    assert err["python_type"] == "ThreadSafetyError"


def test_libraries_lists_thread_safety_and_gil_release():
    proc = run("libraries", "--json")
    assert proc.returncode == 0, proc.stderr
    table = {row["name"]: row for row in json.loads(proc.stdout)["libraries"]}
    assert table["numpy"]["releases_gil"] in ("yes", "partial")
    assert table["matplotlib"]["thread_safe"] == "no"


def test_doctor_reports_a_healthy_environment():
    proc = run("doctor", "--adapter", "snakepit_bridge.showcase.ShowcaseAdapter")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "grpcio" in proc.stdout and "everything looks fine" in proc.stdout


def test_doctor_catches_a_python_without_grpc_and_a_broken_adapter(tmp_path: Path):
    wrapper = tmp_path / "python-without-grpc"
    wrapper.write_text('#!/bin/sh\nexec /usr/bin/python3 -S "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    proc = run("doctor", "--python", str(wrapper))
    assert proc.returncode == 1
    assert "FAIL" in proc.stdout and "apt-get install python3-grpcio" in proc.stdout
    proc = run("doctor", "--adapter", "no_such_pkg_z.Adapter")
    assert proc.returncode == 1
    assert "ModuleNotFoundError" in proc.stdout and "fix:" in proc.stdout


def start_run(tree: Path, env: dict) -> subprocess.Popen:
    """Starts `snakepit run TREE` and returns once it reports the tree running."""
    proc = subprocess.Popen([SNAKEPIT, "run", str(tree)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=env)
    wait_running(proc)
    return proc


def test_inspect_and_diagnose_attach_to_a_running_tree():
    tmp_path = Path(tempfile.mkdtemp(prefix="sp", dir="/tmp"))
    env = dict(os.environ, SNAKEPIT_RUNTIME_PARENT=str(tmp_path))
    try:
        nothing = run("inspect", env=env)
        assert nothing.returncode == 1
        assert "no running `snakepit run`" in error_of(nothing)["message"]
        proc = start_run(EXAMPLES / "one_pool.toml", env)
        controls = list((tmp_path / f"snakepit-runs-{os.geteuid()}").glob("*.control"))
        assert len(controls) == 1
        assert stat.S_IMODE(controls[0].stat().st_mode) == 0o600  # the token stays private
        first = run("inspect", "--json", env=env)
        assert first.returncode == 0, first.stderr
        doc = json.loads(first.stdout)
        assert doc["pid"] == proc.pid and doc["tree"] == "app"
        (pool,) = doc["pools"]
        assert pool["name"] == "showcase" and pool["state"] == "ready"
        assert (pool["size"], pool["ready"], pool["capacity"]) == (2, 2, 2)
        live = sorted(int(line.split()[0]) for line in python_workers_of(proc.pid))
        assert sorted(w["pid"] for w in pool["workers"]) == live
        for worker in pool["workers"]:
            statm = Path(f"/proc/{worker['pid']}/statm").read_text().split()
            rss = int(statm[1]) * os.sysconf("SC_PAGE_SIZE")
            assert 0.5 * rss < worker["rss_bytes"] < 2 * rss
            assert worker["python_version"].count(".") == 2
            assert worker["gil_enabled"] is True and worker["profile"] == "process"
        time.sleep(0.3)
        second = json.loads(run("inspect", "--json", env=env).stdout)
        assert second["pools"][0]["workers"][0]["age_s"] > pool["workers"][0]["age_s"]
        text = run("inspect", "--pid", str(proc.pid), env=env)
        assert text.returncode == 0, text.stderr
        assert "pool showcase  ready  profile process  workers 2/2" in text.stdout
        assert "3." in text.stdout and "cpython" in text.stdout
        diagnosis = run("diagnose", env=env)
        assert diagnosis.returncode == 0, diagnosis.stderr
        assert "machine:" in diagnosis.stdout and "pool showcase" in diagnosis.stdout
        as_json = json.loads(run("diagnose", "--json", env=env).stdout)
        assert as_json["machine"]["cores"] >= 1
        assert [p["pool"] for p in as_json["pools"]] == ["showcase"]
        wrong = run("inspect", "--pid", "1", env=env)
        assert wrong.returncode == 1 and "pid 1" in error_of(wrong)["message"]
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
        assert list((tmp_path / f"snakepit-runs-{os.geteuid()}").glob("*.control")) == []
    finally:
        shutil.rmtree(tmp_path, ignore_errors=True)


def test_inspect_watch_refreshes():
    tmp_path = Path(tempfile.mkdtemp(prefix="sp", dir="/tmp"))
    env = dict(os.environ, SNAKEPIT_RUNTIME_PARENT=str(tmp_path))
    proc = start_run(EXAMPLES / "one_pool.toml", env)
    try:
        watch = subprocess.Popen([SNAKEPIT, "inspect", "--watch", "0.2"], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, env=env)
        time.sleep(1.0)
        watch.send_signal(signal.SIGINT)
        out, _ = watch.communicate(timeout=10)
        assert out.count("pool showcase") >= 3  # redrawn several times
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
        shutil.rmtree(tmp_path, ignore_errors=True)


def test_starting_a_large_pool_shows_progress():
    proc = run("call", "--tool", "noop", "--workers", "8")
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if "workers ready" in line]
    assert lines[-1] == "snakepit: pool call: 8/8 workers ready", proc.stderr
    assert len(lines) >= 2  # not only the end
    small = run("call", "--tool", "noop", "--workers", "2")
    assert "workers ready" not in small.stderr  # a small pool starts in a blink


def test_run_logs_structured_lines_at_the_files_level_unless_a_flag_says_otherwise(tmp_path: Path):
    tree = tmp_path / "tree.toml"
    tree.write_text((EXAMPLES / "one_pool.toml").read_text()
                    + '\n[logging]\nlevel = "warning"\nformat = "json"\n')
    quiet = start_run(tree, dict(os.environ))
    quiet.send_signal(signal.SIGTERM)
    _, err = quiet.communicate(timeout=60)
    records = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert [r for r in records if r.get("level") == "info"] == []  # the file's level
    loud = subprocess.Popen([SNAKEPIT, "run", str(tree), "--log-level", "info"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    started = wait_running(loud)
    loud.send_signal(signal.SIGTERM)
    _, rest = loud.communicate(timeout=60)
    records = [json.loads(line) for line in (started + rest).splitlines() if line.startswith("{")]
    ready = [r for r in records if r.get("msg", "").startswith("ready: 2 of 2 workers")]
    assert ready and ready[0]["pool"] == "showcase" and ready[0]["level"] == "info"
    assert all({"ts", "level", "msg"} <= r.keys() for r in records)
    text = run("run", str(tree), "--log-format", "bogus")
    assert text.returncode == 2 and "--log-format" in error_of(text)["message"]


def test_sigint_cancels_a_streaming_call_and_leaves_no_worker():
    proc = subprocess.Popen([SNAKEPIT, "call", "--tool", "tracked", "--args", '{"n": 100000}',
                             "--stream"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = [json.loads(proc.stdout.readline()) for _ in range(3)]
    assert first == [0, 1, 2]
    workers = [int(line.split()[0]) for line in python_workers_of(proc.pid)]
    assert len(workers) == 1
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert json.loads(err.strip().splitlines()[-1])["error"]["kind"] == "cancelled"
    assert [pid for pid in workers if Path(f"/proc/{pid}").exists()] == []


def test_run_refuses_a_tree_with_user_actors_before_starting_anything(tmp_path: Path):
    tree = tmp_path / "actors.toml"
    tree.write_text('[supervisors.app]\nchildren = ["p", "a"]\n\n'
                    '[pools.p]\nadapter = "snakepit_bridge.showcase.ShowcaseAdapter"\nsize = 1\n\n'
                    '[actors.a]\nkind = "metrics_sink"\n')
    proc = run("run", str(tree), timeout=60)
    assert proc.returncode == 1
    # No plugin registers the kind ([plugins], docs/plugins.md; tests/cli/test_plugins.py).
    assert 'actors.a.kind: unknown actor kind "metrics_sink"' in proc.stderr
    assert "[plugins]" in proc.stderr
    assert "started" not in proc.stderr  # no pool was started first


def test_numpy_scalars_come_back_as_plain_numbers():
    proc = run("call", "--tool", "numpy_scalars")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"bool": True, "float32": 0.5, "int64": -42, "uint8": 200}


def test_args_from_a_file_or_stdin_for_big_arguments(tmp_path: Path):
    big = "x" * 300_000  # too big for one argv string (128 KiB)
    args_file = tmp_path / "args.json"
    args_file.write_text(json.dumps({"value": big}))
    proc = run("call", "--tool", "echo", "--args", f"@{args_file}")
    assert proc.returncode == 0, proc.stderr[-500:]
    assert json.loads(proc.stdout) == big
    piped = subprocess.run([SNAKEPIT, "call", "--tool", "add", "--args", "-"],
                           input='{"a": 2, "b": 3}', capture_output=True, text=True, timeout=120)
    assert piped.returncode == 0, piped.stderr
    assert json.loads(piped.stdout) == 5
    missing = run("call", "--tool", "noop", "--args", f"@{tmp_path / 'nope.json'}")
    assert missing.returncode == 2
    assert "cannot open" in error_of(missing)["message"]


def test_map_writes_one_line_per_input_in_order_with_per_item_errors(tmp_path: Path):
    lines = ['{"a": 1, "b": 2}', '{"a": 5, "b": 5}', 'not json', '', '{"a": "x", "b": 1}', '[1]',
             '{"a": 10, "b": 0.5}']
    proc = subprocess.run([SNAKEPIT, "map", "--tool", "add", "--workers", "2"],
                          input="\n".join(lines) + "\n", capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1  # some items failed
    out = [json.loads(line) for line in proc.stdout.splitlines()]
    assert out[0] == 3 and out[1] == 10 and out[5] == 10.5
    assert out[2]["error"]["kind"] == "bad_arguments" and "line 3" in out[2]["error"]["message"]
    assert out[3]["error"]["kind"] == "bad_arguments" and "'a'" in out[3]["error"]["message"]
    assert "line 6" in out[4]["error"]["message"]
    assert "6 items" in proc.stderr and "3 failed (bad_arguments: 3)" in proc.stderr
    assert "p50" in proc.stderr and "items/s" in proc.stderr
    # --unordered: each line carries its index.
    args_file = tmp_path / "args.jsonl"
    args_file.write_text("".join(json.dumps({"a": i, "b": 1}) + "\n" for i in range(50)))
    proc = run("map", "--tool", "add", "--workers", "2", "--unordered", "--args-file", str(args_file))
    assert proc.returncode == 0, proc.stderr
    got = {d["index"]: d["result"] for d in map(json.loads, proc.stdout.splitlines())}
    assert got == {i: i + 1 for i in range(50)}


@pytest.mark.skipif(bool(os.environ.get("SNAKEPIT_SANITIZER")),
                    reason="under AddressSanitizer freed memory waits in its quarantine: peak RSS "
                           "measures the sanitizer (scripts/sanitize.sh)")
def test_map_memory_stays_bounded_whatever_the_input_size(tmp_path: Path):
    def peak_rss_kib(items: int) -> int:
        feed = tmp_path / f"feed-{items}.jsonl"
        # Written line by line: a child forked from a parent holding the whole feed would
        # count the parent's pages in its peak RSS.
        with feed.open("w") as out:
            for _ in range(items):
                out.write('{"value": "%s"}\n' % ("x" * 400))
        proc = subprocess.Popen([SNAKEPIT, "map", "--tool", "echo", "--workers", "2",
                                 "--args-file", str(feed)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak, nobody else's
        proc.returncode = os.waitstatus_to_exitcode(status)
        assert proc.returncode == 0
        return usage.ru_maxrss

    small = peak_rss_kib(500)
    large = peak_rss_kib(100_000)  # 40 MB of arguments, as much output: none of it kept
    assert large < small + 16 * 1024, (small, large)


def test_ndarray_json_form_goes_in_and_comes_out():
    array = {"$ndarray": {"dtype": "float32", "shape": [2, 2], "data": "AACAPwAAAEAAAEBAAACAQA=="}}
    proc = run("call", "--tool", "echo", "--args", json.dumps({"value": array}))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == array
    proc = run("call", "--tool", "array_info", "--args", json.dumps({"value": array}))
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert (info["type"], info["dtype"], info["shape"]) == ("ndarray", "float32", [2, 2])
    proc = run("call", "--tool", "make_array", "--args", '{"dtype": "int16", "shape": [3]}')
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"$ndarray": {"dtype": "int16", "shape": [3],
                                                    "data": "AAABAAIA"}}
    bad = run("call", "--tool", "echo", "--args",
              '{"value": {"$ndarray": {"dtype": "float32", "shape": [3], "data": "AAAAAA=="}}}')
    assert bad.returncode == 2
    assert "does not fit" in error_of(bad)["message"]


def shm_segments_of(pid: int) -> list:
    """Shared-memory segments the host `pid` wrote: h<pid>-N in its /dev/shm/snakepit-shm-*
    directory, or in <runtime dir>/shm where /dev/shm is no tmpfs (e.g. a chroot)."""
    return (list(Path("/dev/shm").glob(f"snakepit-shm-*/h{pid}-*"))
            + list(Path("/tmp").glob(f"snakepit-??????/shm/h{pid}-*")))


def test_a_sigkilled_hosts_shared_memory_is_removed_by_the_next_start(tmp_path: Path):
    import base64
    data = base64.b64encode(bytes(4 << 20)).decode()  # 4 MiB: over the shared-memory threshold
    args = tmp_path / "args.json"
    args.write_text(json.dumps({"value": {"$ndarray": {"dtype": "float64", "shape": [1 << 19],
                                                       "data": data}},
                                "delay_s": 60}))
    proc = subprocess.Popen([SNAKEPIT, "call", "--tool", "array_sum", "--args", f"@{args}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not shm_segments_of(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    (segment,) = shm_segments_of(proc.pid)
    assert stat.S_IMODE(segment.parent.stat().st_mode) == 0o700
    proc.kill()
    proc.wait(timeout=10)
    assert segment.exists()  # a SIGKILLed host cannot remove it
    again = run("call", "--tool", "noop")
    assert again.returncode == 0, again.stderr
    assert not segment.exists()
    assert not segment.parent.exists()


def test_maps_come_back_sorted_by_key_as_documented():
    # worker_info builds its dict in its own order (pid, ppid, worker_id, ...); the C++ value map
    # is sorted by key, so the host prints it sorted (docs/python-adapters.md, "Maps and order").
    proc = run("call", "--tool", "worker_info")
    assert proc.returncode == 0, proc.stderr
    keys = list(json.loads(proc.stdout, object_pairs_hook=lambda pairs: dict(pairs)).keys())
    assert keys == sorted(keys) and keys[:2] != ["pid", "ppid"]


def test_timeouts_out_of_range_name_the_range():
    for flag_value in ("0", "7400000000000"):
        proc = subprocess.run([SNAKEPIT, "call", "--adapter", "snakepit_bridge.showcase.ShowcaseAdapter",
                               "--tool", "add", "--timeout-ms", flag_value],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode != 0
        assert "not in range 1 to 315360000000" in proc.stderr, proc.stderr
        assert len(proc.stderr) < 300, proc.stderr


def test_check_refuses_hostile_nesting_without_crashing(tmp_path: Path):
    deep = tmp_path / "deep.toml"
    deep.write_text("[" + ".".join(["a"] * 40000) + "]\n")  # toml++ alone overflowed its stack
    for command in ("check", "run"):
        proc = subprocess.run([SNAKEPIT, command, str(deep)], capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode == 1, (command, proc.returncode, proc.stderr)
        assert "more than 64 dotted parts" in proc.stdout + proc.stderr


def test_an_adapters_subprocess_does_not_outlive_a_sigkilled_host():
    tmp_path = Path(tempfile.mkdtemp(prefix="sp", dir="/tmp"))
    env = dict(os.environ, SNAKEPIT_RUNTIME_PARENT=str(tmp_path))
    tree = tmp_path / "tree.toml"
    tree.write_text('[supervisors.app]\nchildren = ["p"]\n[pools.p]\n'
                    'adapter = "snakepit_bridge.showcase.ShowcaseAdapter"\nsize = 1\n')
    proc = subprocess.Popen([SNAKEPIT, "run", "--print-address", str(tree)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    address = proc.stdout.readline().strip()
    assert address
    made = subprocess.run([SNAKEPIT, "call", "--connect", address, "--pool", "p", "--tool",
                           "spawn_sleeper"], capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    sleeper = int(made.stdout)
    assert is_running(sleeper)
    proc.kill()
    proc.wait(timeout=10)
    time.sleep(0.5)
    assert is_running(sleeper)  # its worker died with the host; it did not
    again = run("call", "--tool", "noop", env={"SNAKEPIT_RUNTIME_PARENT": str(tmp_path)})
    assert again.returncode == 0, again.stderr
    deadline = time.monotonic() + 5
    while is_running(sleeper) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not is_running(sleeper), "the next start kills what a dead run's worker left"
    shutil.rmtree(tmp_path, ignore_errors=True)



def test_arguments_nested_past_the_wire_limit_are_bad_arguments(tmp_path: Path):
    # Python's protobuf decoder refuses ~33 levels of maps: the host says so first, by name,
    # and the worker keeps serving.
    for depth, ok in ((24, True), (25, False), (100, False)):
        args = tmp_path / "args.json"
        args.write_text('{"value": ' + '{"a": ' * depth + "1" + "}" * depth + "}")
        proc = run("call", "--tool", "echo", "--args", f"@{args}")
        if ok:
            assert proc.returncode == 0, proc.stderr
        else:
            assert proc.returncode == 1
            error = json.loads(proc.stderr.strip().splitlines()[-1])["error"]
            assert error["kind"] == "bad_arguments", error
            assert "more than 24 levels deep" in error["message"]


def test_version_and_bare_command_are_for_people():
    version = subprocess.run([SNAKEPIT, "--version"], capture_output=True, text=True, timeout=60)
    assert version.returncode == 0
    assert re.fullmatch(r"snakepit \d+\.\d+\.\d+\n", version.stdout), version.stdout
    bare = subprocess.run([SNAKEPIT], capture_output=True, text=True, timeout=60)
    assert bare.returncode == 2
    assert "Usage: snakepit" in bare.stderr and "call" in bare.stderr
    assert not bare.stderr.lstrip().startswith("{")

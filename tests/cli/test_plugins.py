"""User actor kinds from plugin libraries in `snakepit run` and `snakepit check` ([plugins])."""

import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

SNAKEPIT = os.environ.get("SNAKEPIT_BIN", "snakepit")
PLUGIN = os.environ.get("SNAKEPIT_TEST_PLUGIN", "")

pytestmark = pytest.mark.skipif(not PLUGIN or not Path(PLUGIN).exists(),
                                reason="SNAKEPIT_TEST_PLUGIN (set by CTest) names no built plugin")

TREE = """
[plugins]
libraries = ["{library}"]

[supervisors.app]
strategy = "one_for_one"
children = ["marker", "showcase"]

[actors.marker]
kind = "{kind}"
args = {{ path = "{path}", text = "hello" }}

[pools.showcase]
adapter = "snakepit_bridge.showcase.ShowcaseAdapter"
size = 1
"""


def write_tree(tmp_path: Path, library: str = PLUGIN, kind: str = "marker") -> Path:
    tree = tmp_path / "tree.toml"
    tree.write_text(TREE.format(library=library, kind=kind, path=tmp_path / "marker.txt"))
    return tree


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([SNAKEPIT, *args], capture_output=True, text=True, timeout=120)


def test_a_plugin_registers_an_actor_kind_that_snakepit_run_starts(tmp_path):
    tree = write_tree(tmp_path)
    check = run("check", str(tree))
    assert check.returncode == 0, check.stderr
    proc = subprocess.Popen([SNAKEPIT, "run", "--print-address", str(tree)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    address = proc.stdout.readline().strip()
    try:
        assert address, proc.stderr.read()
        assert (tmp_path / "marker.txt").read_text() == "started marker hello\n"
        call = run("call", "--connect", address, "--pool", "showcase", "--tool", "add",
                   "--args", '{"a": 1, "b": 2}')
        assert call.stdout.strip() == "3", call.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err


def test_a_kind_nobody_registers_stops_everything_before_it_starts(tmp_path):
    tree = write_tree(tmp_path, kind="markr")
    proc = run("run", str(tree))
    assert proc.returncode == 1
    assert 'unknown actor kind "markr"' in proc.stderr and "did you mean 'marker'" in proc.stderr
    assert not (tmp_path / "marker.txt").exists()
    no_plugins = tmp_path / "bare.toml"
    no_plugins.write_text("[supervisors.app]" + tree.read_text().split("[supervisors.app]", 1)[1])
    proc = run("run", str(no_plugins))
    assert proc.returncode == 1
    assert "no actor kinds are registered" in proc.stderr and "[plugins]" in proc.stderr


@pytest.mark.parametrize("case", ["missing", "not_a_plugin", "writable_by_others"])
def test_libraries_that_cannot_be_plugins_are_refused_with_the_reason(tmp_path, case):
    if case == "missing":
        library, reason = str(tmp_path / "nope.so"), "cannot load it"
    elif case == "not_a_plugin":
        library = str(Path(PLUGIN).parents[1] / "libsnakepit.so")
        reason = "not a snakepit plugin"
    else:
        shared = tmp_path / "shared"
        shared.mkdir()
        shared.chmod(0o777)  # anyone may swap the library: never load it
        library = str(shared / "plugin.so")
        shutil.copy(PLUGIN, library)
        reason = "refusing to load it"
    proc = run("run", str(write_tree(tmp_path, library=library)))
    assert proc.returncode == 1
    assert reason in proc.stderr, proc.stderr
    assert not (tmp_path / "marker.txt").exists()

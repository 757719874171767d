"""The commands and tree files the docs show, run as a reader would run them.

A block after an `<!-- example: NAME (tests/cli/test_doc_commands.py ...) -->` marker is run
here by NAME; every ```toml block of README.md and docs/*.md passes `snakepit check`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

SNAKEPIT = os.environ.get("SNAKEPIT_BIN", "snakepit")
PYTHON = os.environ.get("SNAKEPIT_PYTHON", "/usr/bin/python3")
ROOT = Path(__file__).resolve().parents[2]
MARKER = "<!-- example: "


def block_after(doc: str, name: str, language: str) -> str:
    """The ```language block after the example marker NAME in ROOT/doc."""
    text = (ROOT / doc).read_text()
    marker = f"{MARKER}{name} "
    assert marker in text, f"no example marker {marker!r} in {doc}"
    found = re.search(rf"```{language}\n(.*?)```", text[text.index(marker):], re.S)
    assert found, f"no {language} block after the example marker {name!r} in {doc}"
    return found.group(1)


def reader_path(tmp_path: Path) -> dict:
    """An environment whose PATH has `snakepit` (this build's) and `python3` (the tests' Python),
    as on a reader's machine after installing; no PYTHONPATH of ours."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "snakepit").symlink_to(Path(SNAKEPIT).resolve())
    (bin_dir / "python3").symlink_to(PYTHON)
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env["PATH"] = f"{bin_dir}:{env.get('PATH', '/usr/bin:/bin')}"
    return env


ADAPTER_TEST = '''
from snakepit_bridge import AdapterTestClient, BaseAdapter, tool


class Greeter(BaseAdapter):
    @tool
    def greet(self, name: str) -> str:
        return "hello " + name


def test_greet():
    with AdapterTestClient(Greeter) as client:
        assert client.call("greet", name="you") == "hello you"
'''


def test_python_path_lets_an_adapter_authors_pytest_import_snakepit_bridge(tmp_path):
    proc = subprocess.run([SNAKEPIT, "python-path"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    package_dir = Path(proc.stdout.strip())
    assert (package_dir / "snakepit_bridge" / "__init__.py").is_file()
    project = tmp_path / "project"
    (project / "tests").mkdir(parents=True)
    (project / "tests" / "test_greeter.py").write_text(ADAPTER_TEST)
    env = reader_path(tmp_path)
    command = block_after("docs/python-adapters.md", "python-path", "sh")
    without = subprocess.run(["bash", "-c", "python3 -m pytest -q -p no:cacheprovider tests/"], cwd=project,
                             env=env, capture_output=True, text=True, timeout=120)
    assert without.returncode != 0 and "No module named 'snakepit_bridge'" in without.stdout
    done = subprocess.run(["bash", "-c", command.replace("-m pytest", "-m pytest -p no:cacheprovider")],
                          cwd=project, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout


# --- every TOML example: `snakepit check`; those marked runnable: `snakepit run` ----------------

PLUGIN = os.environ.get("SNAKEPIT_TEST_PLUGIN", "")
RUNNABLE = "tests/cli/test_doc_commands.py runs this tree"
NODE_SECTION = re.compile(r"^\[(pools|actors|remote_pools|clusters|supervisors)\.([\w\".-]+)\]", re.M)


def toml_examples():
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = path.read_text()
        for found in re.finditer(r"```toml\n(.*?)```", text, re.S):
            before = text[:found.start()].rstrip().splitlines()
            runnable = bool(before) and RUNNABLE in before[-1]
            line = text[:found.start()].count("\n") + 1
            yield pytest.param(found.group(1), runnable, id=f"{path.name}:{line}")


def as_tree(block: str) -> str:
    """A block as a tree file: complete trees as they are; a fragment (no supervisor: a pool,
    a [node] or [metrics] table) under a supervisor that lists what it defines, as a reader
    would paste it into a tree."""
    if "[supervisors." in block:
        return block
    names = [name.strip('"') for _, name in NODE_SECTION.findall(block)]
    # The pools a fragment refers to (a [node]'s export) are in the tree it belongs to.
    exported = re.search(r"^export = \[(.*?)\]", block, re.M)
    wanted = re.findall(r'"([^"]+)"', exported.group(1)) if exported else []
    for pool in [name for name in wanted if name not in names] or ([] if names else ["doc_example_pool"]):
        names.append(pool)
        block += f'\n[pools.{pool}]\nadapter = "snakepit_bridge.showcase.ShowcaseAdapter"\nsize = 1\n'
    children = ", ".join(f'"{name}"' for name in names)
    return f'[supervisors.doc_example]\nchildren = [{children}]\n\n{block}'


def place_plugins(tree: str, directory: Path) -> None:
    """The libraries a [plugins] table names, relative to the tree: the test plugin, which
    registers the kinds the docs' examples use (tests/plugin/test_plugin.cpp)."""
    table = re.search(r"^\[plugins\]\nlibraries = \[(.*?)\]", tree, re.M)
    if not table:
        return
    if not PLUGIN or not Path(PLUGIN).exists():
        pytest.skip("SNAKEPIT_TEST_PLUGIN (set by CTest) names no built plugin")
    for library in re.findall(r'"([^"]+)"', table.group(1)):
        target = directory / library
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(PLUGIN, target)


@pytest.mark.parametrize("block, runnable", toml_examples())
def test_every_toml_example_in_the_docs_checks_and_the_runnable_ones_run(tmp_path, block, runnable):
    tree_file = tmp_path / "app.toml"
    tree = as_tree(block)
    tree_file.write_text(tree)
    place_plugins(tree, tmp_path)
    check = subprocess.run([SNAKEPIT, "check", str(tree_file)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, f"snakepit check of:\n{tree}\n{check.stderr}"
    if not runnable:
        return
    proc = subprocess.Popen([SNAKEPIT, "run", str(tree_file)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        for line in proc.stderr:
            lines.append(line)
            if " running (" in line and "stop with SIGINT" in line:
                break
        else:
            pytest.fail("snakepit run ended before the tree ran:\n" + "".join(lines))
    finally:
        proc.send_signal(signal.SIGTERM)
        _, rest = proc.communicate(timeout=120)
    assert proc.returncode == 0, "".join(lines) + rest


# --- README's profile comparison: one command, like with like ---------------------------------

def test_the_readme_profile_comparison_runs_and_compares_the_same_slots(tmp_path):
    command = block_after("README.md", "compare-profiles", "sh")
    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "snakepit").symlink_to(Path(SNAKEPIT).resolve())
    done = subprocess.run(["bash", "-c", command], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""  # the summaries are the output, not 800 results
    slots = re.search(r"--concurrency (\d+)", command).group(1)
    assert f"process profile, {slots} workers: 400 calls, {slots} in flight, 0 failed" in done.stderr
    assert f"thread profile, 1 worker x {slots} threads: 400 calls, {slots} in flight, 0 failed" in done.stderr
    assert re.search(r"thread vs process: [\d.]+x the calls/s, [\d.]+x the memory \(RSS\)", done.stderr)
    assert "profile advice: " in done.stderr


def test_comparing_needs_a_thread_safe_adapter_and_says_so():
    done = subprocess.run([SNAKEPIT, "call", "--tool", "sleep", "--args", '{"seconds": 0.01}', "--repeat", "4",
                           "--concurrency", "2", "--compare-profiles"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    error = json.loads(done.stderr.strip().splitlines()[-1])["error"]
    assert error["kind"] == "startup_failed" and "declare_thread_safe" in error["message"]


def test_every_example_that_names_this_file_is_run():
    commands = {("docs/python-adapters.md", "python-path"), ("README.md", "compare-profiles")}
    for path in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]:
        text = path.read_text()
        for name, says in re.findall(re.escape(MARKER) + r"([\w-]+) \([^)]*tests/cli/test_doc_commands.py ([^)]*)\)",
                                     text):
            doc = str(path.relative_to(ROOT))
            assert says == "runs this tree" or (doc, name) in commands, f"{doc}: example {name!r} is not run"


def test_run_refuses_the_full_example_up_front_when_no_library_registers_its_actor_kind(tmp_path):
    # docs/configuration.md: a kind none of the [plugins] libraries registers is a problem of the
    # file, reported before anything starts.
    tree = block_after("docs/configuration.md", "tree", "toml")
    tree_file = tmp_path / "app.toml"
    tree_file.write_text(re.sub(r"^libraries = .*$", "libraries = []", tree, flags=re.M))
    done = subprocess.run([SNAKEPIT, "run", str(tree_file)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert 'actors.metrics.kind: unknown actor kind "metrics_sink"' in done.stderr
    assert "running" not in done.stderr and "ready" not in done.stderr

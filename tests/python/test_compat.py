"""The library compatibility table, its command line and its copy in the docs; runtime detection."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import sysconfig

import pytest

from bridge_helpers import PYTHON, PYTHON_DIR, ROOT
from snakepit_bridge import compat, runtime

LISTED = ["numpy", "scipy", "pandas", "torch", "sklearn", "matplotlib", "sqlite3", "requests", "PIL", "tensorflow",
          "lxml", "cv2", "hashlib", "zlib", "json", "re", "urllib3", "psycopg2", "redis"]
DOC_BEGIN = "<!-- compat-table: begin (generated: python -m snakepit_bridge.compat --markdown) -->\n"
DOC_END = "<!-- compat-table: end -->"


def test_the_table_lists_the_common_libraries_with_valid_ratings():
    entries = compat.table()
    assert [info.name for info in entries] == LISTED
    for info in entries:
        assert info.thread_safe in compat.RATINGS and info.releases_gil in compat.RATINGS
        assert info.notes.endswith(".") and len(info.notes) < 400


@pytest.mark.parametrize("name, found", [
    ("numpy", "numpy"), ("NumPy", "numpy"), ("numpy.linalg", "numpy"), ("scikit-learn", "sklearn"),
    ("sklearn.ensemble", "sklearn"), ("Pillow", "PIL"), ("PIL.Image", "PIL"), ("opencv-python", "cv2"),
    ("matplotlib.pyplot", "matplotlib"), ("psycopg2-binary", "psycopg2"), (" re ", "re"),
])
def test_lookup_by_import_name_install_name_alias_or_submodule(name, found):
    assert compat.lookup(name).name == found


def test_lookup_of_an_unlisted_library_is_none():
    assert compat.lookup("leftpad") is None
    assert compat.lookup("numpyx") is None


def test_specific_ratings():
    assert (compat.lookup("matplotlib").thread_safe, compat.lookup("matplotlib").releases_gil) == ("no", "no")
    assert (compat.lookup("hashlib").thread_safe, compat.lookup("hashlib").releases_gil) == ("yes", "yes")
    assert compat.lookup("json").releases_gil == "no"
    assert compat.lookup("numpy").thread_safe == "partial"
    assert "pyplot" in compat.lookup("matplotlib").notes
    assert compat.unsafe_module_names() == ("matplotlib",)


def test_unsafe_imported_finds_loaded_libraries_rated_no():
    fake = object()
    assert compat.unsafe_imported({"json": fake, "numpy": fake}) == []
    assert [info.name for info in compat.unsafe_imported({"matplotlib.pyplot": fake, "numpy": fake})] == ["matplotlib"]
    partial = compat.unsafe_imported({"numpy": fake, "json": fake, "matplotlib": fake}, include_partial=True)
    assert [info.name for info in partial] == ["numpy", "matplotlib"]
    assert compat.unsafe_imported({"matplotlib": None}) == []  # a failed import leaves None behind
    assert [info.name for info in compat.unsafe_imported()] == (["matplotlib"] if "matplotlib" in sys.modules else [])


def test_warning_names_the_library_and_what_to_do():
    text = compat.warning_for(compat.lookup("matplotlib"))
    assert text.startswith("library 'matplotlib' is imported and is not thread-safe: ")
    assert text.endswith("Guard every use with self.lock, or use the process profile.")


def run_compat(*arguments: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(PYTHON_DIR))
    return subprocess.run([PYTHON, "-m", "snakepit_bridge.compat", *arguments], env=env, capture_output=True,
                          text=True, timeout=30)


def test_command_line_prints_the_table_as_text_and_json():
    text = run_compat()
    assert text.returncode == 0
    lines = text.stdout.splitlines()
    assert lines[0].split() == ["library", "thread-safe", "releases", "GIL", "notes"]
    assert len(lines) == 1 + len(LISTED)
    assert lines[1 + LISTED.index("matplotlib")].split()[:3] == ["matplotlib", "no", "no"]
    as_json = run_compat("--json")
    assert as_json.returncode == 0
    libraries = json.loads(as_json.stdout)["libraries"]
    assert [entry["name"] for entry in libraries] == LISTED
    assert libraries[0] == compat.lookup("numpy").as_dict()
    assert set(libraries[0]) == {"name", "package", "thread_safe", "releases_gil", "notes", "aliases"}
    some = json.loads(run_compat("--json", "scikit-learn", "zlib").stdout)["libraries"]
    assert [entry["name"] for entry in some] == ["sklearn", "zlib"]
    unknown = run_compat("leftpad")
    assert unknown.returncode == 1 and "library 'leftpad' is not in the table" in unknown.stderr


def test_the_table_in_the_docs_matches_compat_py():
    doc = (ROOT / "docs" / "worker-profiles.md").read_text()
    assert DOC_BEGIN in doc and DOC_END in doc, "the compat table markers are missing from docs/worker-profiles.md"
    shown = doc[doc.index(DOC_BEGIN) + len(DOC_BEGIN):doc.index(DOC_END)]
    assert shown == compat.markdown_table(), (
        "docs/worker-profiles.md's library table differs from snakepit_bridge/compat.py: paste the output of "
        "`PYTHONPATH=python python3 -m snakepit_bridge.compat --markdown` between the markers")
    assert run_compat("--markdown").stdout == compat.markdown_table()


# -- runtime detection ---------------------------------------------------------------------------

def test_runtime_detection_on_this_python():
    info = runtime.runtime_info()
    assert info["python_version"] == platform.python_version()
    assert info["implementation"] == sys.implementation.name == "cpython"
    assert info["free_threaded"] is bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
    if not hasattr(sys, "_is_gil_enabled"):  # 3.12 and older: always a GIL
        assert info["gil_enabled"] is True
    if sys.version_info[:2] == (3, 11):  # the machine's /usr/bin/python3
        assert (info["gil_enabled"], info["free_threaded"]) == (True, False)


def test_gil_detection_follows_sys_is_gil_enabled_where_it_exists(monkeypatch):
    monkeypatch.setattr(sys, "_is_gil_enabled", lambda: False, raising=False)
    assert runtime.gil_enabled() is False
    monkeypatch.setattr(sys, "_is_gil_enabled", lambda: True, raising=False)
    assert runtime.gil_enabled() is True
    monkeypatch.delattr(sys, "_is_gil_enabled", raising=False)
    assert runtime.gil_enabled() is True


def test_free_threading_detection_reads_py_gil_disabled(monkeypatch):
    monkeypatch.setattr(runtime.sysconfig, "get_config_var", lambda name: 1 if name == "Py_GIL_DISABLED" else None)
    assert runtime.free_threaded() is True
    monkeypatch.setattr(runtime.sysconfig, "get_config_var", lambda name: None)
    assert runtime.free_threaded() is False


def test_check_reports_free_threading():
    env = dict(os.environ, PYTHONPATH=str(PYTHON_DIR))
    done = subprocess.run([PYTHON, "-m", "snakepit_bridge.worker", "--check"], env=env, capture_output=True,
                          timeout=30, check=True)
    report = json.loads(done.stdout)
    assert report["free_threaded"] is runtime.free_threaded()
    assert report["gil_enabled"] is runtime.gil_enabled()

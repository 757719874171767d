"""The runnable examples in the docs run (each python block after an `<!-- example: ... -->` marker)."""

from __future__ import annotations

import re

import pytest

from bridge_helpers import ROOT

MARKER = "<!-- example: "
EXAMPLES = [("python-adapters.md", "test-client"), ("python-adapters.md", "telemetry"),
            ("worker-profiles.md", "thread-safe-adapter"), ("sessions.md", "session-state"),
            ("streaming.md", "streaming-tools"), ("host-tools.md", "host-tools")]


@pytest.mark.parametrize("doc, name", EXAMPLES)
def test_the_examples_in_the_docs_run(doc, name):
    text = (ROOT / "docs" / doc).read_text()
    marker = f"{MARKER}{name} "
    assert marker in text, f"no example marker {marker!r} in docs/{doc}"
    after = text[text.index(marker):]
    block = re.search(r"```python\n(.*?)```", after, re.S)
    assert block, "no python block after the example marker"
    exec(compile(block.group(1), f"docs/{doc}", "exec"), {"__name__": "docs_example"})


def test_every_example_that_names_this_file_is_run():
    for path in (ROOT / "docs").glob("*.md"):
        for found in re.findall(re.escape(MARKER) + r"([\w-]+) \(tests/python/test_docs.py", path.read_text()):
            assert (path.name, found) in EXAMPLES, f"docs/{path.name} has an example {found!r} no test runs"


def test_the_cpp_client_example_in_the_docs_is_the_built_one():
    text = (ROOT / "docs" / "client.md").read_text()
    marker = f"{MARKER}client-example "
    assert marker in text
    block = re.search(r"```cpp\n(.*?)```", text[text.index(marker):], re.S)
    assert block, "no cpp block after the example marker"
    assert block.group(1) == (ROOT / "examples" / "client_example.cpp").read_text()

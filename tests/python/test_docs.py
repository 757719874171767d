"""The runnable example in docs/python-adapters.md runs."""

from __future__ import annotations

import re

from bridge_helpers import ROOT

MARKER = "<!-- example: test-client"


def test_the_test_client_example_in_the_guide_runs():
    guide = (ROOT / "docs" / "python-adapters.md").read_text()
    after = guide[guide.index(MARKER):]
    block = re.search(r"```python\n(.*?)```", after, re.S)
    assert block, "no python block after the example marker"
    exec(compile(block.group(1), "docs/python-adapters.md", "exec"), {"__name__": "docs_example"})

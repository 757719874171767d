"""pytest fixtures for the snakepit_bridge tests."""

from __future__ import annotations

from typing import Iterator

import pytest

from bridge_helpers import WorkerFactory


@pytest.fixture
def workers() -> Iterator[WorkerFactory]:
    """Starts real worker processes for one test; kills and cleans up whatever is left after it."""
    factory = WorkerFactory()
    try:
        yield factory
    finally:
        factory.cleanup()

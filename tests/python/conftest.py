"""pytest fixtures for the snakepit_bridge tests."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest

from bridge_helpers import SHM_BYTES_MAX, SHM_THRESHOLD, WorkerFactory
from snakepit_bridge import shm


@pytest.fixture
def workers() -> Iterator[WorkerFactory]:
    """Starts real worker processes for one test; kills and cleans up whatever is left after it."""
    factory = WorkerFactory()
    try:
        yield factory
    finally:
        factory.cleanup()


@pytest.fixture
def shm_dir(tmp_path: Path) -> Iterator[Path]:
    """A segment directory (mode 0700) that this process's shared memory uses for one test
    (threshold SHM_THRESHOLD, limit SHM_BYTES_MAX); everything is inline again afterwards."""
    directory = tmp_path / "shm"
    directory.mkdir()
    os.chmod(directory, 0o700)
    shm.configure(str(directory), SHM_THRESHOLD, SHM_BYTES_MAX)
    try:
        yield directory
    finally:
        shm.unconfigure()

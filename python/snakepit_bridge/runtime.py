"""Python runtime detection: version, implementation, GIL state and free-threading support.

Light on purpose (standard library only): the worker reports these facts in its ready line,
``Ping`` and ``--check``, and the showcase adapters in ``worker_info``.
"""

from __future__ import annotations

import platform
import sys
import sysconfig
from typing import Any, Dict


def gil_enabled() -> bool:
    """Whether the GIL is on now: ``sys._is_gil_enabled()`` where it exists (3.13+), else True.

    A free-threaded build may still run with the GIL (``PYTHON_GIL=1``, or an extension module
    that does not declare itself free-threading safe re-enables it at import).
    """
    probe = getattr(sys, "_is_gil_enabled", None)
    if probe is None:
        return True
    try:
        return bool(probe())
    except Exception:
        return True


def free_threaded() -> bool:
    """Whether this interpreter is a free-threaded build (``Py_GIL_DISABLED``: the GIL can be off)."""
    return bool(sysconfig.get_config_var("Py_GIL_DISABLED"))


def runtime_info() -> Dict[str, Any]:
    """The interpreter facts a worker reports: ``python_version``, ``implementation``,
    ``gil_enabled``, ``free_threaded``."""
    return {
        "python_version": platform.python_version(),
        "implementation": sys.implementation.name,
        "gil_enabled": gil_enabled(),
        "free_threaded": free_threaded(),
    }

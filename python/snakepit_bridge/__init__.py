"""snakepit_bridge: the Python side of snakepit.

Write an adapter by subclassing :class:`BaseAdapter` (or :class:`ThreadSafeAdapter`, for
thread-profile pools, or declare an existing one with :func:`declare_thread_safe`) and marking
methods with :func:`tool`;
snakepit starts worker processes (``python -m snakepit_bridge.worker``) that serve it over
gRPC. :func:`emit` sends telemetry events to the host (:mod:`snakepit_bridge.telemetry`).
Tools call the C++ functions registered with their pool through their :class:`CallContext`
(``ctx.call_host``); a failed call raises :class:`HostToolError` (:mod:`snakepit_bridge.host`).
:class:`AdapterTestClient` calls an adapter in-process for unit tests.

The names below are imported on first use, so that ``python -m snakepit_bridge.worker`` can
set up its parent-death guard before anything heavy (grpc, protobuf) is imported.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["BaseAdapter", "ThreadSafeAdapter", "tool", "CallContext", "SessionState", "ToolCallError",
           "ThreadSafetyError", "HostToolError", "declare_thread_safe", "AdapterTestClient", "emit", "__version__"]

_EXPORTS = {
    "BaseAdapter": "snakepit_bridge.adapter",
    "ThreadSafeAdapter": "snakepit_bridge.thread_safe",
    "declare_thread_safe": "snakepit_bridge.thread_safe",
    "ThreadSafetyError": "snakepit_bridge.errors",
    "tool": "snakepit_bridge.tools",
    "CallContext": "snakepit_bridge.context",
    "SessionState": "snakepit_bridge.sessions",
    "ToolCallError": "snakepit_bridge.errors",
    "HostToolError": "snakepit_bridge.errors",
    "AdapterTestClient": "snakepit_bridge.testing",
    "emit": "snakepit_bridge.telemetry",
}

if TYPE_CHECKING:
    from snakepit_bridge.adapter import BaseAdapter
    from snakepit_bridge.context import CallContext
    from snakepit_bridge.errors import HostToolError, ThreadSafetyError, ToolCallError
    from snakepit_bridge.sessions import SessionState
    from snakepit_bridge.telemetry import emit
    from snakepit_bridge.testing import AdapterTestClient
    from snakepit_bridge.thread_safe import ThreadSafeAdapter, declare_thread_safe
    from snakepit_bridge.tools import tool


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'snakepit_bridge' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list:
    return sorted(set(globals()) | set(_EXPORTS))

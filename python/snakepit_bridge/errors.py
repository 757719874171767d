"""Errors of the bridge: the kinds a failed call can have, and the exceptions that carry them.

Every failure reaches the caller as data (wire ``Error``: kind, message, Python type,
traceback). Inside the package a failure is a :class:`BridgeError`; on the testing side the
same data arrives as a :class:`ToolCallError`. A failed call from Python to a host tool is a
:class:`HostToolError`.
"""

from __future__ import annotations

import builtins

UNKNOWN_TOOL = "unknown_tool"
BAD_ARGUMENTS = "bad_arguments"
PYTHON_EXCEPTION = "python_exception"
ENCODE_FAILED = "encode_failed"
PAYLOAD_TOO_LARGE = "payload_too_large"
TIMEOUT = "timeout"
INTERNAL = "internal"

#: Every error kind, spelled as the lower-case name of the wire ``ErrorKind`` value.
ERROR_KINDS = (
    UNKNOWN_TOOL,
    BAD_ARGUMENTS,
    PYTHON_EXCEPTION,
    ENCODE_FAILED,
    PAYLOAD_TOO_LARGE,
    TIMEOUT,
    INTERNAL,
)


class BridgeError(Exception):
    """A failure of one call that the bridge itself detected (not raised by the tool).

    ``kind`` is one of :data:`ERROR_KINDS`; ``message`` is the text the caller sees.
    """

    def __init__(self, kind: str, message: str) -> None:
        assert kind in ERROR_KINDS, kind
        super().__init__(message)
        self.kind = kind
        self.message = message


class ToolCallError(Exception):
    """A tool call that failed, as seen by a caller (for example :class:`AdapterTestClient`).

    Attributes:
        kind: the error kind, e.g. ``"bad_arguments"`` or ``"python_exception"``.
        message: the error message.
        python_type: the exception type for ``"python_exception"`` (``"ValueError"``,
            ``"mypkg.errors.Oops"``); empty otherwise.
        traceback: the formatted Python traceback, when there is one; empty otherwise.
    """

    def __init__(self, kind: str, message: str, python_type: str = "", traceback: str = "") -> None:
        super().__init__(f"[{kind}] {message}")
        self.kind = kind
        self.message = message
        self.python_type = python_type
        self.traceback = traceback


#: A :class:`HostToolError` kind that is not a wire kind: the host could not be reached (gone,
#: not serving host tools, or the RPC was cancelled).
HOST_UNAVAILABLE = "unavailable"


class HostToolError(Exception):
    """A call to a host tool (``ctx.call_host``) that failed: the host tool raised, refused the
    arguments, or ran out of time, or the host could not be reached.

    Attributes:
        kind: ``"unknown_tool"``, ``"bad_arguments"``, ``"timeout"``, ``"internal"`` (as the host
            sent it), ``"encode_failed"`` or ``"payload_too_large"`` (the arguments could not be
            sent, or the result was too large), or ``"unavailable"`` (the host is gone or does
            not serve host tools).
        message: the host's message, or ours for failures found on this side.
        tool: the host tool called (empty when listing the tools failed).

    ``str(exc)`` is ``"[kind] message"``: what a C++ caller sees when a tool lets it propagate.
    """

    def __init__(self, kind: str, message: str, *, tool: str = "") -> None:
        super().__init__(f"[{kind}] {message}")
        self.kind = kind
        self.message = message
        self.tool = tool


class ThreadSafetyError(Exception):
    """Thread safety was violated, or cannot be promised.

    Raised when a thread-profile worker is asked to serve an adapter that is not a
    ``ThreadSafeAdapter``, and, with ``--thread-check strict``, by the call that writes shared
    adapter state (or uses a library listed as not thread-safe) from a second thread without
    holding ``self.lock``. Callers see ``python_type`` ``"ThreadSafetyError"``.
    """


#: The bridge's own exception types that callers see by bare name, like builtins.
_BARE_NAMES = frozenset({ThreadSafetyError, HostToolError})


def type_name(tp: type) -> str:
    """The name of a Python type as the bridge reports it.

    Builtins, :class:`ThreadSafetyError` and :class:`HostToolError` by bare name
    (``"ValueError"``, ``"set"``, ``"ThreadSafetyError"``, ``"HostToolError"``), everything
    else as ``"module.Qualname"`` (``"json.decoder.JSONDecodeError"``).
    """
    module = getattr(tp, "__module__", None)
    qualname = getattr(tp, "__qualname__", None) or getattr(tp, "__name__", repr(tp))
    if module in (None, builtins.__name__) or tp in _BARE_NAMES:
        return str(qualname)
    return f"{module}.{qualname}"

"""Checking the arguments of a call against the tool's parameters, before the tool runs."""

from __future__ import annotations

from typing import Any, Dict

from snakepit_bridge.errors import BAD_ARGUMENTS, BridgeError
from snakepit_bridge.tools import ToolDef


def check(definition: ToolDef, arguments: Dict[str, Any]) -> None:
    """Raises ``BridgeError(bad_arguments)`` unless ``arguments`` fit the tool's parameters.

    Checks, in this order: no unexpected names, no missing required parameter, every value of
    its parameter's type (element-wise for ``list[T]``, ``dict[str, T]`` and ``optional[T]``).
    Messages name the parameter and the expectation, e.g. ``missing required argument 'b'
    (float)`` or ``argument 'a' must be int, got str``.
    """
    spec = definition.spec
    types = definition.types
    unexpected = [
        name
        for name in arguments
        if name not in types and (definition.extra is None or name == definition.context_parameter)
    ]
    if unexpected:
        takes = ", ".join(p.name for p in spec.parameters)
        takes_text = f"takes: {takes}" if takes else "takes no arguments"
        raise BridgeError(BAD_ARGUMENTS, f"{_plural('unexpected argument', unexpected)}; tool '{spec.name}' {takes_text}")
    missing = [p for p in spec.parameters if p.required and p.name not in arguments]
    if missing:
        noun = "missing required argument" if len(missing) == 1 else "missing required arguments"
        listed = ", ".join(f"'{p.name}' ({p.type})" for p in missing)
        raise BridgeError(BAD_ARGUMENTS, f"{noun} {listed}")
    for name, value in arguments.items():
        expected = types.get(name, definition.extra)
        assert expected is not None
        mismatch = expected.mismatch(value)
        if mismatch is not None:
            got, path = mismatch
            where = f" at {name}{path}" if path else ""
            raise BridgeError(BAD_ARGUMENTS, f"argument '{name}' must be {expected.name}, got {got}{where}")


def _plural(noun: str, names: list) -> str:
    quoted = ", ".join(f"'{name}'" for name in names)
    return f"{noun} {quoted}" if len(names) == 1 else f"{noun}s {quoted}"

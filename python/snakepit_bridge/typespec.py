"""Types of tool parameters and results: parsed from type hints, spelled, and checked.

A :class:`TypeSpec` is what the wire can carry: ``any``, ``none``, ``bool``, ``int``, ``float``,
``str``, ``bytes``, ``list[T]``, ``dict[str, T]``, ``optional[T]`` and ``union[A, B, ...]``.
Its :attr:`~TypeSpec.name` is the spelling used in ``ParameterSpec.type`` and
``ToolSpec.returns``: ``"int"``, ``"list"``, ``"list[int]"``, ``"dict[str, float]"``,
``"optional[int]"``, ``"union[int, str]"``.
"""

from __future__ import annotations

import inspect
import types
import typing
from dataclasses import dataclass
from typing import Any, Optional, Tuple

_SIMPLE = {bool: "bool", int: "int", float: "float", str: "str", bytes: "bytes", type(None): "none"}


@dataclass(frozen=True)
class TypeSpec:
    """One wire-expressible type. ``args`` holds the element types of list/dict/optional/union."""

    kind: str
    args: Tuple["TypeSpec", ...] = ()

    @property
    def name(self) -> str:
        """The spelling of the type in tool specs, e.g. ``"list[int]"``."""
        if self.kind == "list":
            return "list" if self.args[0].kind == "any" else f"list[{self.args[0].name}]"
        if self.kind == "dict":
            return "dict" if self.args[0].kind == "any" else f"dict[str, {self.args[0].name}]"
        if self.kind in ("optional", "union"):
            return f"{self.kind}[{', '.join(arg.name for arg in self.args)}]"
        return self.kind

    def mismatch(self, value: Any) -> Optional[Tuple[str, str]]:
        """Checks a decoded wire value against this type.

        Returns None when it fits, else ``(got, path)``: the type name of the offending value
        and where it sits below the checked value (``""`` for the value itself, ``"[2]"``,
        ``"['k'][0]"``...).
        """
        kind = self.kind
        if kind == "any":
            return None
        if kind == "optional":
            return None if value is None else self.args[0].mismatch(value)
        if kind == "union":
            if any(arg.mismatch(value) is None for arg in self.args):
                return None
            return (value_type_name(value), "")
        if kind == "list":
            if not isinstance(value, list):
                return (value_type_name(value), "")
            element = self.args[0]
            if element.kind != "any":
                for index, item in enumerate(value):
                    inner = element.mismatch(item)
                    if inner is not None:
                        return (inner[0], f"[{index}]{inner[1]}")
            return None
        if kind == "dict":
            if not isinstance(value, dict):
                return (value_type_name(value), "")
            element = self.args[0]
            if element.kind != "any":
                for key, item in value.items():
                    inner = element.mismatch(item)
                    if inner is not None:
                        return (inner[0], f"[{key!r}]{inner[1]}")
            return None
        if _fits_simple(kind, value):
            return None
        return (value_type_name(value), "")


def _fits_simple(kind: str, value: Any) -> bool:
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "str":
        return isinstance(value, str)
    if kind == "bytes":
        return isinstance(value, bytes)
    if kind == "none":
        return value is None
    raise AssertionError(f"unknown type kind {kind!r}")


def value_type_name(value: Any) -> str:
    """The name used for a value's type in ``got ...`` messages (``"str"``, ``"None"``)."""
    return "None" if value is None else type(value).__name__


ANY = TypeSpec("any")

SUPPORTED = (
    "int, float, str, bool, bytes, None, Any, list, list[T], dict, dict[str, T], "
    "Optional[T] and unions of those"
)


def from_annotation(annotation: Any, *, for_result: bool = False) -> TypeSpec:
    """Parses a (resolved) type hint.

    Args:
        annotation: the hint, or ``inspect.Parameter.empty`` when there is none (``any``).
        for_result: a return annotation: tuples read as lists and unsupported types read as
            ``any`` (the result is checked when it is encoded).

    Raises:
        TypeError: the hint has no wire form (parameters only), e.g. ``set[int]`` or a class.
    """
    try:
        return _parse(annotation, for_result)
    except TypeError:
        if for_result:
            return ANY
        raise


def _parse(annotation: Any, for_result: bool) -> TypeSpec:
    if annotation is inspect.Parameter.empty or annotation is Any or annotation is object:
        return ANY
    if annotation is None:
        return TypeSpec("none")
    if annotation in _SIMPLE:
        return TypeSpec(_SIMPLE[annotation])
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation in (list, typing.List) or (for_result and annotation in (tuple, typing.Tuple)):
        return TypeSpec("list", (ANY,))
    if annotation in (dict, typing.Dict):
        return TypeSpec("dict", (ANY,))
    if origin is list:
        return TypeSpec("list", (_parse(args[0], for_result),))
    if origin is tuple and for_result:
        return TypeSpec("list", (ANY,))
    if origin is dict:
        key, element = args
        if key not in (str, Any):
            raise TypeError(f"dict keys must be str on the wire, not {_show(key)}")
        return TypeSpec("dict", (_parse(element, for_result),))
    if origin is typing.Union or (hasattr(types, "UnionType") and origin is types.UnionType):
        members = [_parse(arg, for_result) for arg in args if arg is not type(None)]
        if any(member.kind == "any" for member in members):
            return ANY
        inner = members[0] if len(members) == 1 else TypeSpec("union", tuple(members))
        return TypeSpec("optional", (inner,)) if len(members) < len(args) else inner
    raise TypeError(f"unsupported type {_show(annotation)}; supported: {SUPPORTED}")


def _show(annotation: Any) -> str:
    if isinstance(annotation, type):
        return annotation.__qualname__ if annotation.__module__ == "builtins" else f"{annotation.__module__}.{annotation.__qualname__}"
    return repr(annotation)

"""Python values <-> wire ``Value`` messages.

=================================  ==========================================
Python                             wire ``Value``
=================================  ==========================================
``None``                           ``null_value``
``bool``                           ``bool_value``
``int`` (int64 range, exact)       ``int_value``
``float``                          ``double_value``
``str``                            ``string_value``
``bytes``/``bytearray``/``memoryview``  ``bytes_value`` (decodes as ``bytes``)
``list``/``tuple``                 ``list_value`` (decodes as ``list``)
``dict`` with ``str`` keys         ``map_value``, insertion order kept
numpy ``bool_``, integer, float    ``bool_value`` / ``int_value`` / ``double_value`` (exact;
scalars                            out of range or inexact is ``encode_failed``)
=================================  ==========================================

Anything else cannot be encoded: :func:`encode` raises a ``BridgeError`` of kind
``encode_failed`` that names the Python type and where it sits, e.g.
``unsupported Python type 'set' at result['a'][2]``. Decoding a map with a duplicate key raises
kind ``bad_arguments``. A ``Value`` with no kind set decodes as ``None``.

Protobuf parsers refuse messages nested deeper than 100 levels (a list costs 2 levels, a dict
3), so encoding refuses values nested deeper than that too, instead of producing a message the
receiver cannot read.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping

from snakepit_bridge._wire import bridge_pb2 as pb
from snakepit_bridge.errors import BAD_ARGUMENTS, ENCODE_FAILED, BridgeError, type_name

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

#: Protobuf's default parse limit for nested messages (C++ and Python alike).
MESSAGE_DEPTH_MAX = 100

#: Depth of the first ``Value`` inside the envelopes that carry values.
RESULT_VALUE_DEPTH = 2  # ExecuteResponse > Value
ARGUMENT_MAP_DEPTH = 2  # ExecuteRequest > MapValue
DEFAULT_VALUE_DEPTH = 4  # ListToolsResponse > ToolSpec > ParameterSpec > Value


class _Unencodable(Exception):
    """Internal: carries the reason and the path (built while unwinding) of a failed encode."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.parts: List[str] = []


def _fill(msg: pb.Value, obj: Any, depth: int) -> None:
    """Writes ``obj`` into the empty ``msg``, which sits at message depth ``depth``."""
    if depth > MESSAGE_DEPTH_MAX:
        raise _Unencodable(f"nested deeper than protobuf's limit of {MESSAGE_DEPTH_MAX} message levels")
    if obj is None:
        msg.null_value = pb.NULL_VALUE
    elif obj is True or obj is False:
        msg.bool_value = obj
    elif isinstance(obj, int):
        if not INT64_MIN <= obj <= INT64_MAX:
            raise _Unencodable(f"int {obj} is outside the 64-bit range")
        msg.int_value = int(obj)
    elif isinstance(obj, float):
        msg.double_value = float(obj)
    elif isinstance(obj, str):
        try:
            msg.string_value = str(obj)
        except (ValueError, UnicodeError):
            raise _Unencodable("str that is not valid UTF-8 (lone surrogate)") from None
    elif isinstance(obj, bytes):
        msg.bytes_value = obj if type(obj) is bytes else bytes(obj)
    elif isinstance(obj, (bytearray, memoryview)):
        msg.bytes_value = bytes(obj)
    elif isinstance(obj, (list, tuple)):
        msg.list_value.SetInParent()  # an empty list is still a list
        items = msg.list_value.items
        for index, item in enumerate(obj):
            try:
                _fill(items.add(), item, depth + 2)
            except _Unencodable as exc:
                exc.parts.append(f"[{index}]")
                raise
    elif isinstance(obj, dict):
        msg.map_value.SetInParent()  # an empty dict is still a dict
        entries = msg.map_value.entries
        for key, item in obj.items():
            if not isinstance(key, str):
                raise _Unencodable(f"dict key {key!r} of type '{type_name(type(key))}' (keys must be str)")
            entry = entries.add()
            try:
                entry.key = key
                _fill(entry.value, item, depth + 3)
            except _Unencodable as exc:
                exc.parts.append(f"[{key!r}]")
                raise
            except (ValueError, UnicodeError):
                raise _Unencodable(f"dict key {key!r} that is not valid UTF-8") from None
    elif _is_numpy_scalar(obj):
        _fill_numpy_scalar(msg, obj)
    else:
        raise _Unencodable(f"unsupported Python type '{type_name(type(obj))}'")


def _is_numpy_scalar(obj: Any) -> bool:
    """A ``numpy.generic`` (``numpy.int64``, ``numpy.bool_``...), recognised without importing numpy."""
    return any(cls.__name__ == "generic" and cls.__module__ == "numpy" for cls in type(obj).__mro__)


def _fill_numpy_scalar(msg: pb.Value, obj: Any) -> None:
    """numpy scalars travel as the matching bool/int/float, exactly, or not at all."""
    kind = obj.dtype.kind
    name = f"numpy.{type(obj).__name__}"
    if kind == "b":
        msg.bool_value = bool(obj)
    elif kind in "iu":
        value = int(obj)
        if not INT64_MIN <= value <= INT64_MAX:
            raise _Unencodable(f"{name} {value} is outside the 64-bit range")
        msg.int_value = value
    elif kind == "f":
        value = float(obj)
        if value != obj and value == value:  # NaN is NaN in every width
            raise _Unencodable(f"{name} {obj!r} has no exact 64-bit float value")
        msg.double_value = value
    else:
        raise _Unencodable(f"unsupported Python type '{name}' (numpy scalars of kind bool, int, "
                           "uint and float are supported)")


def _failure(what: str, where: str, exc: _Unencodable) -> BridgeError:
    path = where + "".join(reversed(exc.parts))
    return BridgeError(ENCODE_FAILED, f"{what} cannot be encoded: {exc.reason} at {path}")


def encode(obj: Any, *, what: str = "value", where: str = "value", depth: int = RESULT_VALUE_DEPTH) -> pb.Value:
    """Encodes one Python value as a wire ``Value``.

    Args:
        obj: the value.
        what: how the failure message names the value, e.g. ``"result of tool 'x'"``.
        where: the root of the path in failure messages, e.g. ``"result"``.
        depth: the message depth at which the ``Value`` will sit (for the nesting limit).

    Raises:
        BridgeError: kind ``encode_failed``, naming the type and its path.
    """
    msg = pb.Value()
    try:
        _fill(msg, obj, depth)
    except _Unencodable as exc:
        raise _failure(what, where, exc) from None
    except RecursionError:
        raise BridgeError(ENCODE_FAILED, f"{what} cannot be encoded: nested too deeply at {where}") from None
    return msg


def encode_map(
    mapping: Mapping[str, Any], *, what: str = "arguments", where: str = "arguments", depth: int = ARGUMENT_MAP_DEPTH
) -> pb.MapValue:
    """Encodes a str-keyed mapping as a wire ``MapValue`` (used for tool arguments).

    Raises:
        BridgeError: kind ``encode_failed``.
    """
    holder = pb.Value()
    try:
        _fill(holder, dict(mapping), depth - 1)
    except _Unencodable as exc:
        raise _failure(what, where, exc) from None
    except RecursionError:
        raise BridgeError(ENCODE_FAILED, f"{what} cannot be encoded: nested too deeply at {where}") from None
    return holder.map_value


def _decode(msg: pb.Value, where: List[str]) -> Any:
    kind = msg.WhichOneof("kind")
    if kind == "int_value":
        return msg.int_value
    if kind == "string_value":
        return msg.string_value
    if kind == "double_value":
        return msg.double_value
    if kind == "bool_value":
        return msg.bool_value
    if kind == "bytes_value":
        return msg.bytes_value
    if kind == "list_value":
        out: List[Any] = []
        for index, item in enumerate(msg.list_value.items):
            where.append(f"[{index}]")
            out.append(_decode(item, where))
            where.pop()
        return out
    if kind == "map_value":
        return _decode_entries(msg.map_value, where)
    return None  # null_value, or no kind set


def _decode_entries(msg: pb.MapValue, where: List[str]) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for entry in msg.entries:
        key = entry.key
        if key in out:
            raise BridgeError(BAD_ARGUMENTS, f"duplicate key {key!r} in map at {''.join(where)}")
        where.append(f"[{key!r}]")
        out[key] = _decode(entry.value, where)
        where.pop()
    return out


def decode(msg: pb.Value, *, where: str = "value") -> Any:
    """Decodes a wire ``Value`` into plain Python data.

    Raises:
        BridgeError: kind ``bad_arguments`` for a map with a duplicate key.
    """
    return _decode(msg, [where])


def decode_arguments(msg: pb.MapValue) -> Dict[str, Any]:
    """Decodes the argument map of a call; a repeated argument name is ``bad_arguments``."""
    out: Dict[str, Any] = {}
    for entry in msg.entries:
        name = entry.key
        if name in out:
            raise BridgeError(BAD_ARGUMENTS, f"duplicate argument {name!r}")
        out[name] = _decode(entry.value, [name])
    return out

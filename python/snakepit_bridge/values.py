"""Python values <-> wire ``Value`` messages.

=================================  ==========================================
Python                             wire ``Value``
=================================  ==========================================
``None``                           ``null_value``
``bool``                           ``bool_value``
``int`` (int64 range, exact)       ``int_value``
``float``                          ``double_value``
``str``                            ``string_value``
``bytes``/``bytearray``/``memoryview``  ``bytes_value``, or ``shared_bytes`` over the shared
                                   memory threshold (decodes as ``bytes`` either way)
``list``/``tuple``                 ``list_value`` (decodes as ``list``)
``dict`` with ``str`` keys         ``map_value``, insertion order kept
``numpy.ndarray`` of bool,         ``ndarray_value``: dtype, shape, C-order little-endian data
int8..int64, uint8..uint64,        (inline, or a segment over the shared memory threshold);
float16/32/64, complex64/128       decodes as a read-only ``numpy.ndarray`` (see below)
numpy ``bool_``, integer, float    ``bool_value`` / ``int_value`` / ``double_value`` (exact;
scalars                            out of range or inexact is ``encode_failed``)
numpy ``complex64``/``complex128``  ``ndarray_value`` of shape ``()`` (a 0-d array)
anything with ``__dlpack__``       ``ndarray_value`` via ``numpy.from_dlpack`` (e.g. CPU tensors)
``pandas.DataFrame``               ``map_value`` of column name -> column array (no index)
=================================  ==========================================

Anything else cannot be encoded: :func:`encode` raises a ``BridgeError`` of kind
``encode_failed`` that names the Python type and where it sits, e.g.
``unsupported Python type 'set' at result['a'][2]``. Arrays of other dtypes (object,
structured, strings, datetimes, float128) and big-endian arrays are ``encode_failed`` naming
the dtype; Fortran-order and strided arrays are sent in C order. Decoding a map with a
duplicate key, or an array whose data does not fit its dtype and shape, raises kind
``bad_arguments``. A ``Value`` with no kind set decodes as ``None``.

Arrays decode without copying: a read-only ``numpy.ndarray`` over the message's bytes or the
mapped segment (numpy is imported on the first array, never by this module itself). Without
numpy they decode as a read-only ``memoryview`` cast to the element format and shape: ``?``
bool, ``b h i q`` / ``B H I Q`` ints, ``f``/``d`` floats; complex64/complex128 as ``f``/``d``
with a trailing dimension of 2 (real, imaginary); float16 (no memoryview format) as its raw
little-endian bytes, ``B`` with a trailing dimension of 2 (``struct`` format ``<e`` reads
them); an empty array (a 0 in its shape), which memoryview cannot shape, as a 1-d empty view.

Shared memory (:mod:`snakepit_bridge.shm`) is off unless the worker configured it. When on,
:func:`encode` writes large payloads to segments: for arguments the encoder is the sender and
must remove them once the call ends (``created=`` collects their names for
:func:`snakepit_bridge.shm.unlink`); results are left for the receiver. :func:`decode` with
``take=True`` (a result or stream item received) removes each segment's name once mapped;
arguments (``take=False``) are left to their sender. A failed encode removes the segments it
wrote; a failed ``take=True`` decode removes every segment the message names.

Protobuf parsers refuse messages nested deeper than 100 levels (a list costs 2 levels, a dict
3), so encoding refuses values nested deeper than that too, instead of producing a message the
receiver cannot read.
"""

from __future__ import annotations

import math
import sys
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Tuple

from snakepit_bridge import shm
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

#: numpy dtype (kind, itemsize) -> wire DType.
_DTYPE_CODES = {
    ("b", 1): pb.DTYPE_BOOL,
    ("i", 1): pb.DTYPE_INT8, ("i", 2): pb.DTYPE_INT16, ("i", 4): pb.DTYPE_INT32, ("i", 8): pb.DTYPE_INT64,
    ("u", 1): pb.DTYPE_UINT8, ("u", 2): pb.DTYPE_UINT16, ("u", 4): pb.DTYPE_UINT32, ("u", 8): pb.DTYPE_UINT64,
    ("f", 2): pb.DTYPE_FLOAT16, ("f", 4): pb.DTYPE_FLOAT32, ("f", 8): pb.DTYPE_FLOAT64,
    ("c", 8): pb.DTYPE_COMPLEX64, ("c", 16): pb.DTYPE_COMPLEX128,
}
_SUPPORTED_DTYPES = "bool, int8..int64, uint8..uint64, float16, float32, float64, complex64, complex128"

#: wire DType -> (itemsize, numpy dtype, memoryview format, trailing dimensions of the memoryview).
_DTYPE_FORMS: Dict[int, Tuple[int, str, str, Tuple[int, ...]]] = {
    pb.DTYPE_BOOL: (1, "?", "?", ()),
    pb.DTYPE_INT8: (1, "i1", "b", ()),
    pb.DTYPE_INT16: (2, "<i2", "h", ()),
    pb.DTYPE_INT32: (4, "<i4", "i", ()),
    pb.DTYPE_INT64: (8, "<i8", "q", ()),
    pb.DTYPE_UINT8: (1, "u1", "B", ()),
    pb.DTYPE_UINT16: (2, "<u2", "H", ()),
    pb.DTYPE_UINT32: (4, "<u4", "I", ()),
    pb.DTYPE_UINT64: (8, "<u8", "Q", ()),
    pb.DTYPE_FLOAT16: (2, "<f2", "B", (2,)),  # memoryview.cast has no 'e': its raw bytes
    pb.DTYPE_FLOAT32: (4, "<f4", "f", ()),
    pb.DTYPE_FLOAT64: (8, "<f8", "d", ()),
    pb.DTYPE_COMPLEX64: (8, "<c8", "f", (2,)),  # no complex memoryview format: (real, imaginary)
    pb.DTYPE_COMPLEX128: (16, "<c16", "d", (2,)),
}


class _Unencodable(Exception):
    """Internal: carries the reason and the path (built while unwinding) of a failed encode."""

    def __init__(self, reason: str, kind: str = ENCODE_FAILED) -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind
        self.parts: List[str] = []


def _fill(msg: pb.Value, obj: Any, depth: int, created: List[str]) -> None:
    """Writes ``obj`` into the empty ``msg``, which sits at message depth ``depth``; appends
    the names of the shared memory segments it writes to ``created``."""
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
    elif isinstance(obj, (bytes, bytearray, memoryview)):
        size = obj.nbytes if isinstance(obj, memoryview) else len(obj)
        if shm.wants(size):
            segment = msg.shared_bytes
            segment.name = _to_segment(created, lambda: shm.write_bytes(obj))
            segment.size = size
        else:
            msg.bytes_value = obj if type(obj) is bytes else bytes(obj)
    elif isinstance(obj, (list, tuple)):
        msg.list_value.SetInParent()  # an empty list is still a list
        items = msg.list_value.items
        for index, item in enumerate(obj):
            try:
                _fill(items.add(), item, depth + 2, created)
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
                _fill(entry.value, item, depth + 3, created)
            except _Unencodable as exc:
                exc.parts.append(f"[{key!r}]")
                raise
            except (ValueError, UnicodeError):
                raise _Unencodable(f"dict key {key!r} that is not valid UTF-8") from None
    elif _is_ndarray(obj):
        _fill_array(msg, obj, created)
    elif _is_numpy_scalar(obj):
        _fill_numpy_scalar(msg, obj, created)
    elif _is_dataframe(obj):
        _fill(msg, _dataframe_columns(obj), depth, created)
    elif hasattr(obj, "__dlpack__") and "numpy" in sys.modules:
        _fill_array(msg, _from_dlpack(obj), created)
    else:
        raise _Unencodable(f"unsupported Python type '{type_name(type(obj))}'")


def _is_dataframe(obj: Any) -> bool:
    """A ``pandas.DataFrame``, recognised without importing pandas."""
    return any(cls.__name__ == "DataFrame" and cls.__module__.startswith("pandas.")
               for cls in type(obj).__mro__)


def _dataframe_columns(frame: Any) -> Dict[str, Any]:
    """A DataFrame as a map of column name to column array (``Series.to_numpy()``); column
    names must be strings. The index is not sent (``frame.reset_index()`` sends it as a column)."""
    columns: Dict[str, Any] = {}
    for name in frame.columns:
        if not isinstance(name, str):
            raise _Unencodable(f"pandas.DataFrame column name {name!r} (column names must be str)")
        columns[name] = frame[name].to_numpy()
    return columns


def _from_dlpack(obj: Any) -> Any:
    """Any array with ``__dlpack__`` (e.g. a CPU torch tensor) as a numpy array, without a copy
    where the producer allows it (``numpy.from_dlpack``, numpy 1.22 and later)."""
    numpy = sys.modules["numpy"]
    from_dlpack = getattr(numpy, "from_dlpack", None)
    if from_dlpack is None:
        raise _Unencodable(f"'{type_name(type(obj))}' (a DLPack array; this numpy has no from_dlpack)")
    try:
        return from_dlpack(obj)
    except (TypeError, ValueError, RuntimeError, BufferError) as exc:
        raise _Unencodable(f"'{type_name(type(obj))}' (a DLPack array numpy cannot read: {exc})") from None


def _to_segment(created: List[str], write: Callable[[], str]) -> str:
    """Runs ``write`` (writes a :mod:`shm` segment), records the new segment's name."""
    try:
        name = write()
    except BridgeError as exc:  # payload_too_large, or encode_failed with the OS's reason
        raise _Unencodable(exc.message, exc.kind) from None
    created.append(name)
    return name


def _is_ndarray(obj: Any) -> bool:
    """A ``numpy.ndarray``; numpy is never imported for this (an array means it already is)."""
    numpy = sys.modules.get("numpy")
    return numpy is not None and isinstance(obj, numpy.ndarray)


def _fill_array(msg: pb.Value, obj: Any, created: List[str]) -> None:
    """An ndarray as ``ndarray_value``: dtype, shape, and C-order little-endian data."""
    numpy = sys.modules["numpy"]
    if any(cls.__name__ == "MaskedArray" for cls in type(obj).__mro__):
        raise _Unencodable("numpy masked array (its mask has no wire form: send arr.filled(...) and the mask)")
    array = numpy.asarray(obj)  # subclasses (memmap, matrix) as plain arrays
    dtype = array.dtype
    code = _DTYPE_CODES.get((dtype.kind, dtype.itemsize))
    if code is None:
        raise _Unencodable(f"numpy array of dtype '{dtype}' (supported: {_SUPPORTED_DTYPES})")
    if dtype.byteorder == ">" or (dtype.byteorder == "=" and sys.byteorder == "big"):
        raise _Unencodable(f"numpy array of dtype '{dtype.str}' is big-endian (arrays travel little-endian: "
                           "send arr.astype(arr.dtype.newbyteorder('<')))")
    wire = msg.ndarray_value
    wire.dtype = code
    wire.shape.extend(array.shape)
    size = array.nbytes
    if shm.wants(size):
        segment = wire.segment
        segment.name = _to_segment(created, lambda: shm.write(size, lambda mapping: _copy_into(mapping, array)))
        segment.size = size
    else:
        wire.data = array.tobytes()  # C order whatever the layout, in one copy


def _copy_into(mapping: Any, array: Any) -> None:
    """Copies ``array`` (any layout) into a segment's mapping in C order, in one pass."""
    numpy = sys.modules["numpy"]
    target = numpy.frombuffer(mapping, dtype=array.dtype, count=array.size).reshape(array.shape)
    try:
        numpy.copyto(target, array, casting="no")
    finally:
        del target  # the mapping cannot be closed while a view of it lives


def _is_numpy_scalar(obj: Any) -> bool:
    """A ``numpy.generic`` (``numpy.int64``, ``numpy.bool_``...), recognised without importing numpy."""
    return any(cls.__name__ == "generic" and cls.__module__ == "numpy" for cls in type(obj).__mro__)


def _fill_numpy_scalar(msg: pb.Value, obj: Any, created: List[str]) -> None:
    """numpy scalars travel as the matching bool/int/float, exactly, or not at all; complex
    ones (no such plain wire kind) as a 0-d array."""
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
    elif kind == "c" and obj.dtype.itemsize in (8, 16):
        _fill_array(msg, sys.modules["numpy"].asarray(obj), created)
    else:
        raise _Unencodable(f"unsupported Python type '{name}' (numpy scalars of kind bool, int, "
                           "uint and float, and complex64/complex128, are supported)")


def _failure(what: str, where: str, exc: _Unencodable) -> BridgeError:
    path = where + "".join(reversed(exc.parts))
    return BridgeError(exc.kind, f"{what} cannot be encoded: {exc.reason} at {path}")


def _encode_into(holder: pb.Value, obj: Any, depth: int, what: str, where: str,
                 created: Optional[List[str]]) -> None:
    """Fills ``holder``; on any failure removes the segments written so far, so none leaks."""
    names: List[str] = []
    try:
        _fill(holder, obj, depth, names)
    except BaseException as exc:
        shm.unlink(names)
        if isinstance(exc, _Unencodable):
            raise _failure(what, where, exc) from None
        if isinstance(exc, RecursionError):
            raise BridgeError(ENCODE_FAILED, f"{what} cannot be encoded: nested too deeply at {where}") from None
        raise
    if created is not None:
        created.extend(names)


def encode(obj: Any, *, what: str = "value", where: str = "value", depth: int = RESULT_VALUE_DEPTH,
           created: Optional[List[str]] = None) -> pb.Value:
    """Encodes one Python value as a wire ``Value``.

    Args:
        obj: the value.
        what: how the failure message names the value, e.g. ``"result of tool 'x'"``.
        where: the root of the path in failure messages, e.g. ``"result"``.
        depth: the message depth at which the ``Value`` will sit (for the nesting limit).
        created: when given, the names of the shared memory segments written are appended
            (a sender of arguments removes them with ``shm.unlink`` once the call ends).
            Without it they are left for the receiver, as results are.

    Raises:
        BridgeError: kind ``encode_failed``, naming the type and its path; ``payload_too_large``
            for a payload over the shared memory limit (``shm_bytes_max``).
    """
    msg = pb.Value()
    _encode_into(msg, obj, depth, what, where, created)
    return msg


def encode_map(
    mapping: Mapping[str, Any], *, what: str = "arguments", where: str = "arguments", depth: int = ARGUMENT_MAP_DEPTH,
    created: Optional[List[str]] = None,
) -> pb.MapValue:
    """Encodes a str-keyed mapping as a wire ``MapValue`` (used for tool arguments).

    ``created`` as for :func:`encode`: arguments are the sender's to remove.

    Raises:
        BridgeError: kind ``encode_failed`` or ``payload_too_large``.
    """
    holder = pb.Value()
    _encode_into(holder, dict(mapping), depth - 1, what, where, created)
    return holder.map_value


def _decode(msg: pb.Value, where: List[str], take: bool) -> Any:
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
            out.append(_decode(item, where, take))
            where.pop()
        return out
    if kind == "map_value":
        return _decode_entries(msg.map_value, where, take)
    if kind == "ndarray_value":
        return _decode_array(msg.ndarray_value, "".join(where), take)
    if kind == "shared_bytes":
        segment = msg.shared_bytes
        return shm.read_bytes(segment.name, segment.size, where="".join(where), take=take)
    return None  # null_value, or no kind set


def _decode_entries(msg: pb.MapValue, where: List[str], take: bool) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for entry in msg.entries:
        key = entry.key
        if key in out:
            raise BridgeError(BAD_ARGUMENTS, f"duplicate key {key!r} in map at {''.join(where)}")
        where.append(f"[{key!r}]")
        out[key] = _decode(entry.value, where, take)
        where.pop()
    return out


def _decode_array(wire: pb.NdArray, path: str, take: bool) -> Any:
    """An ``NdArray`` as a read-only numpy array (or memoryview) over its bytes, after checking
    that they are exactly what its dtype and shape say."""
    form = _DTYPE_FORMS.get(wire.dtype)
    if form is None:
        raise BridgeError(BAD_ARGUMENTS, f"n-d array with unknown dtype {wire.dtype} at {path}")
    itemsize, numpy_dtype, view_format, trailing = form
    shape = list(wire.shape)
    if any(dim < 0 for dim in shape):
        raise BridgeError(BAD_ARGUMENTS, f"n-d array with a negative dimension in shape {shape} at {path}")
    count = math.prod(shape)
    expected = itemsize * count
    buffer: Any
    if wire.WhichOneof("storage") == "segment":
        segment = wire.segment
        if segment.size != expected:
            raise BridgeError(BAD_ARGUMENTS, f"n-d array at {path}: its segment holds {segment.size} bytes, but "
                                             f"dtype {pb.DType.Name(wire.dtype)} and shape {shape} need {expected}")
        buffer = shm.map_segment(segment.name, segment.size, where=path, take=take)
    else:
        buffer = wire.data
        if len(buffer) != expected:
            raise BridgeError(BAD_ARGUMENTS, f"n-d array at {path}: its data is {len(buffer)} bytes, but "
                                             f"dtype {pb.DType.Name(wire.dtype)} and shape {shape} need {expected}")
    try:
        numpy = _numpy()
        if numpy is not None:
            return numpy.frombuffer(buffer, dtype=numpy_dtype, count=count).reshape(shape)
        view = memoryview(buffer).toreadonly()
        if count == 0:
            return view.cast(view_format)  # memoryview cannot have a 0 in its shape
        return view.cast(view_format, shape + list(trailing))
    except (ValueError, TypeError) as exc:  # more dimensions than numpy (32) or memoryview (64) take
        raise BridgeError(BAD_ARGUMENTS, f"n-d array of shape {shape} at {path} cannot be represented: {exc}") from None


_numpy_module: Any = None
_numpy_tried = False


def _numpy() -> Any:
    """numpy, imported on the first array decoded; None when it cannot be imported."""
    global _numpy_module, _numpy_tried
    if not _numpy_tried:
        try:
            import numpy
        except ImportError:
            numpy = None
        _numpy_module, _numpy_tried = numpy, True
    return _numpy_module


def segment_names(msg: Any) -> Iterator[str]:
    """Every shared memory segment name in a ``Value`` or ``MapValue``: what a receiver frees
    (``shm.unlink``) when it drops a result without decoding it."""
    if isinstance(msg, pb.MapValue):
        for entry in msg.entries:
            yield from segment_names(entry.value)
        return
    kind = msg.WhichOneof("kind")
    if kind == "shared_bytes":
        yield msg.shared_bytes.name
    elif kind == "ndarray_value" and msg.ndarray_value.WhichOneof("storage") == "segment":
        yield msg.ndarray_value.segment.name
    elif kind == "list_value":
        for item in msg.list_value.items:
            yield from segment_names(item)
    elif kind == "map_value":
        yield from segment_names(msg.map_value)


def decode(msg: pb.Value, *, where: str = "value", take: bool = False) -> Any:
    """Decodes a wire ``Value`` into plain Python data.

    Args:
        msg: the value.
        where: the root of the path in failure messages.
        take: the value is a result or stream item this process received, so its shared
            memory segments are ours: each name is removed once mapped, and all of them if
            decoding fails. False (arguments) leaves them to their sender.

    Raises:
        BridgeError: kind ``bad_arguments`` for a map with a duplicate key, an array whose data
            does not fit its dtype and shape, or a segment that cannot be used.
    """
    try:
        return _decode(msg, [where], take)
    except BaseException:
        if take:
            shm.unlink(segment_names(msg))
        raise


def decode_arguments(msg: pb.MapValue, *, take: bool = False) -> Dict[str, Any]:
    """Decodes the argument map of a call; a repeated argument name is ``bad_arguments``.

    ``take`` as for :func:`decode` (arguments are normally their sender's: False).
    """
    try:
        out: Dict[str, Any] = {}
        for entry in msg.entries:
            name = entry.key
            if name in out:
                raise BridgeError(BAD_ARGUMENTS, f"duplicate argument {name!r}")
            out[name] = _decode(entry.value, [name], take)
        return out
    except BaseException:
        if take:
            shm.unlink(segment_names(msg))
        raise

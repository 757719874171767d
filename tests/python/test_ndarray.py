"""n-d arrays on the wire: every dtype and shape round trips exactly and read-only, arrays
without a wire form fail naming the dtype and the path, and without numpy arrays arrive as
shaped memoryviews (checked in a subprocess that cannot import numpy)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from bridge_helpers import PYTHON, PYTHON_DIR
from snakepit_bridge._wire import bridge_pb2 as pb
from snakepit_bridge.errors import BridgeError
from snakepit_bridge.values import decode, decode_arguments, encode, encode_map

np = pytest.importorskip("numpy")
if sys.byteorder != "little":  # pragma: no cover
    pytest.skip("the expected bytes are little-endian, as the wire's", allow_module_level=True)

DTYPES = ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
          "float16", "float32", "float64", "complex64", "complex128"]
SHAPES = [(), (0,), (0, 3), (7,), (2, 3, 1, 4)]


def round_trip(obj):
    return decode(pb.Value.FromString(encode(obj).SerializeToString()))


def sample(dtype: str, shape: tuple):
    count = int(np.prod(shape))
    values = np.arange(1, count + 1) * (-1 if dtype.startswith(("int", "float", "complex")) else 1)
    array = values.astype(dtype).reshape(shape)
    if dtype.startswith("complex"):
        array = array + 1j * np.arange(count).reshape(shape).astype(dtype)
    return array


def assert_same(back, sent):
    assert isinstance(back, np.ndarray) and type(back) is np.ndarray
    assert back.dtype == sent.dtype and back.shape == sent.shape
    assert np.array_equal(back, sent)
    assert back.flags.c_contiguous
    assert not back.flags.writeable


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_every_dtype_and_shape_round_trips(dtype, shape):
    sent = sample(dtype, shape)
    assert_same(round_trip(sent), sent)


def test_the_wire_form_is_dtype_shape_and_little_endian_c_order_bytes():
    sent = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.int32)
    wire = encode(sent).ndarray_value
    assert (wire.dtype, list(wire.shape)) == (pb.DTYPE_INT32, [2, 3])
    assert wire.data == b"".join(n.to_bytes(4, "little") for n in range(1, 7))
    scalar = encode(np.array(2.5)).ndarray_value
    assert (scalar.dtype, list(scalar.shape), scalar.data) == (pb.DTYPE_FLOAT64, [], np.float64(2.5).tobytes())


def test_fortran_order_and_strided_arrays_come_back_equal_in_c_order():
    base = np.arange(60, dtype=np.float32).reshape(6, 10)
    for sent in (np.asfortranarray(base), base[::2, 1::3], base.T, base[:, ::-1]):
        assert not sent.flags.c_contiguous
        assert_same(round_trip(sent), sent)


def test_decoded_arrays_are_read_only():
    back = round_trip(np.arange(4))
    with pytest.raises(ValueError):
        back[0] = 9
    with pytest.raises(ValueError):
        back.flags.writeable = True


def test_arrays_nest_in_lists_dicts_and_arguments():
    sent = {"a": [np.eye(2), {"m": np.array([True, False])}], "n": 1}
    back = round_trip(sent)
    assert_same(back["a"][0], np.eye(2))
    assert_same(back["a"][1]["m"], np.array([True, False]))
    arguments = decode_arguments(pb.MapValue.FromString(encode_map({"x": np.arange(3)}).SerializeToString()))
    assert_same(arguments["x"], np.arange(3))


class Sub(np.ndarray):
    pass


def test_subclasses_travel_as_plain_arrays():
    back = round_trip(np.array([[1, 2], [3, 4]]).view(Sub))
    assert type(back) is np.ndarray and back.tolist() == [[1, 2], [3, 4]]


@pytest.mark.parametrize("array, reason", [
    (np.array([1.0, 2.0], dtype=">f8"), "numpy array of dtype '>f8' is big-endian"),
    (np.array([1, "a"], dtype=object), "numpy array of dtype 'object'"),
    (np.zeros(2, dtype=[("a", "<i4"), ("b", "<f8")]), "numpy array of dtype '[('a', '<i4'), ('b', '<f8')]'"),
    (np.array(["ab", "c"]), "numpy array of dtype '<U2'"),
    (np.array([b"ab"]), "numpy array of dtype '|S2'"),
    (np.array(["2024-01-01"], dtype="datetime64[D]"), "numpy array of dtype 'datetime64[D]'"),
    (np.zeros(2, dtype=np.longdouble), "numpy array of dtype 'float128'"),
    (np.ma.masked_array([1, 2], mask=[0, 1]), "numpy masked array"),
])
def test_arrays_without_a_wire_form_fail_naming_the_dtype_and_the_path(array, reason):
    with pytest.raises(BridgeError) as failure:
        encode({"ok": np.arange(2), "x": array}, what="result of tool 't'", where="result")
    assert failure.value.kind == "encode_failed"
    assert failure.value.message.startswith(f"result of tool 't' cannot be encoded: {reason}")
    assert failure.value.message.endswith(" at result['x']")


def test_numpy_scalars_float16_is_a_double_and_complex_is_a_0d_array():
    half = decode(encode(np.float16(0.1)))
    assert type(half) is float and half == float(np.float16(0.1))
    for scalar in (np.complex64(1.5 - 2j), np.complex128(1e300 + 1e-300j)):
        wire = encode(scalar)
        assert wire.WhichOneof("kind") == "ndarray_value" and list(wire.ndarray_value.shape) == []
        back = round_trip(scalar)
        assert back.shape == () and back.dtype == scalar.dtype and back[()] == scalar
    assert decode(encode([np.int16(-3), np.bool_(True), np.float32(0.5)])) == [-3, True, 0.5]


def test_complex_scalars_wider_than_128_bits_still_fail():
    with pytest.raises(BridgeError, match=r"unsupported Python type 'numpy.complex256'.* at value\[0\]"):
        encode([np.clongdouble(1j)])


def wire_array(dtype: int, shape: list, data: bytes) -> pb.Value:
    return pb.Value(list_value=pb.ListValue(items=[pb.Value(ndarray_value=pb.NdArray(dtype=dtype, shape=shape,
                                                                                     data=data))]))


@pytest.mark.parametrize("dtype, shape, data, message", [
    (pb.DTYPE_INT32, [2], b"\0" * 7, "n-d array at arguments['a'][0]: its data is 7 bytes, but dtype DTYPE_INT32 "
                                     "and shape [2] need 8"),
    (pb.DTYPE_FLOAT64, [], b"", "its data is 0 bytes, but dtype DTYPE_FLOAT64 and shape [] need 8"),
    (pb.DTYPE_UINT8, [2, -1], b"", "n-d array with a negative dimension in shape [2, -1] at arguments['a'][0]"),
    (pb.DTYPE_UNSPECIFIED, [1], b"\0", "n-d array with unknown dtype 0 at arguments['a'][0]"),
    (99, [1], b"\0", "n-d array with unknown dtype 99 at arguments['a'][0]"),
    (pb.DTYPE_UINT8, [1] * 40, b"\0", "n-d array of shape [1, 1, 1"),
])
def test_arrays_that_do_not_fit_their_dtype_and_shape_are_bad_arguments(dtype, shape, data, message):
    value = pb.Value.FromString(wire_array(dtype, shape, data).SerializeToString())
    with pytest.raises(BridgeError) as failure:
        decode(value, where="arguments['a']")
    assert failure.value.kind == "bad_arguments"
    assert message in failure.value.message


def test_values_does_not_import_numpy():
    script = textwrap.dedent("""
        import sys
        from snakepit_bridge import values
        from snakepit_bridge._wire import bridge_pb2 as pb
        values.decode(values.encode({"a": [1, 2.5, b"x"]}))
        assert "numpy" not in sys.modules, "imported by values"
        array = pb.Value(ndarray_value=pb.NdArray(dtype=pb.DTYPE_UINT8, shape=[2], data=b"ab"))
        print(type(values.decode(array)).__module__)
    """)
    done = subprocess.run([PYTHON, "-c", script], env=dict(os.environ, PYTHONPATH=str(PYTHON_DIR)),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "numpy"  # imported on the first array decoded


WITHOUT_NUMPY = textwrap.dedent("""
    import json, struct, sys
    sys.modules["numpy"] = None  # `import numpy` now fails
    from snakepit_bridge import values
    from snakepit_bridge._wire import bridge_pb2 as pb

    def arrive(dtype, shape, data):
        view = values.decode(pb.Value(ndarray_value=pb.NdArray(dtype=dtype, shape=shape, data=data)))
        return {"type": type(view).__name__, "format": view.format, "shape": list(view.shape),
                "readonly": view.readonly, "items": view.tolist()}

    print(json.dumps({
        "int32": arrive(pb.DTYPE_INT32, [2, 3], struct.pack("<6i", 1, 2, 3, 4, 5, -6)),
        "uint64": arrive(pb.DTYPE_UINT64, [1], struct.pack("<Q", 2**64 - 1)),
        "bool0d": arrive(pb.DTYPE_BOOL, [], b"\\x01"),
        "float64": arrive(pb.DTYPE_FLOAT64, [2, 1, 1, 1], struct.pack("<2d", 0.5, -1.0)),
        "complex64": arrive(pb.DTYPE_COMPLEX64, [2], struct.pack("<4f", 1, 2, 3, 4)),
        "complex128_0d": arrive(pb.DTYPE_COMPLEX128, [], struct.pack("<2d", 5, 6)),
        "float16": arrive(pb.DTYPE_FLOAT16, [2], struct.pack("<2e", 1.5, -2.0)),
        "empty": arrive(pb.DTYPE_FLOAT32, [0, 3], b""),
        "numpy_imported": sys.modules["numpy"] is not None,
    }))
""")


def test_without_numpy_arrays_arrive_as_shaped_read_only_memoryviews():
    done = subprocess.run([PYTHON, "-c", WITHOUT_NUMPY], env=dict(os.environ, PYTHONPATH=str(PYTHON_DIR)),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    assert got.pop("numpy_imported") is False
    assert all(view["type"] == "memoryview" and view["readonly"] for view in got.values())
    plain = {name: (view["format"], view["shape"], view["items"]) for name, view in got.items()}
    assert plain == {
        "int32": ("i", [2, 3], [[1, 2, 3], [4, 5, -6]]),
        "uint64": ("Q", [1], [2**64 - 1]),
        "bool0d": ("?", [], True),
        "float64": ("d", [2, 1, 1, 1], [[[[0.5]]], [[[-1.0]]]]),
        "complex64": ("f", [2, 2], [[1.0, 2.0], [3.0, 4.0]]),  # (real, imaginary)
        "complex128_0d": ("d", [2], [5.0, 6.0]),
        "float16": ("B", [2, 2], [list(b) for b in (np.float16(1.5).tobytes(), np.float16(-2.0).tobytes())]),
        "empty": ("f", [0], []),  # memoryview cannot have a 0 in its shape: 1-d and empty
    }


def test_plain_values_work_without_numpy():
    script = "import sys; sys.modules['numpy'] = None\nfrom snakepit_bridge import values\n" \
             "print(values.decode(values.encode([1, {'b': b'x'}])))"
    done = subprocess.run([PYTHON, "-c", script], env=dict(os.environ, PYTHONPATH=str(PYTHON_DIR)),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[1, {'b': b'x'}]"



class _DLPackProducer:
    """A foreign array type that only speaks the DLPack protocol (as a CPU tensor of another
    library does): it is not a numpy array and has no buffer interface."""

    def __init__(self, array: "np.ndarray") -> None:
        self._array = array

    def __dlpack__(self, stream: object = None) -> object:
        return self._array.__dlpack__()

    def __dlpack_device__(self) -> tuple:
        return self._array.__dlpack_device__()


def test_dlpack_arrays_travel_as_arrays():
    source = np.arange(12, dtype=np.float32).reshape(3, 4)
    back = decode(encode({"t": _DLPackProducer(source)}))
    assert isinstance(back["t"], np.ndarray)
    np.testing.assert_array_equal(back["t"], source)
    # A decoded array is read-only: numpy 1.24's DLPack export refuses those (DLPack < 1.0
    # cannot say read-only); a copy, which a consumer would make anyway, exports.
    again = np.from_dlpack(back["t"].copy())
    np.testing.assert_array_equal(again, source)


def test_dataframes_travel_as_a_map_of_column_arrays():
    pd = pytest.importorskip("pandas", reason="pandas is not installed (it is optional)")
    frame = pd.DataFrame({"b": [1.5, 2.5], "a": [1, 2]})
    back = decode(encode(frame))
    assert list(back) == ["b", "a"]
    np.testing.assert_array_equal(back["b"], np.array([1.5, 2.5]))
    assert back["a"].dtype == np.int64
    with pytest.raises(BridgeError, match="column names must be str"):
        encode(pd.DataFrame({0: [1]}))

"""Python <-> wire Value: exact round trips, and failures that name the type and the path."""

from __future__ import annotations

import math

import pytest

from snakepit_bridge._wire import bridge_pb2 as pb
from snakepit_bridge.errors import BridgeError
from snakepit_bridge.values import decode, decode_arguments, encode, encode_map


def round_trip(obj):
    return decode(pb.Value.FromString(encode(obj).SerializeToString()))


@pytest.mark.parametrize("obj", [
    None, True, False, 0, -1, 2**63 - 1, -(2**63), 2**53 + 1, 0.1, -0.0, 1e308, "", "héllo wörld ☃ 🐍", "a\x00b",
    b"", b"\x00\xff" * 1000, [], {}, [1, "two", 3.0, None, [b"x"]], {"z": 1, "a": {"nested": [True, {"k": b"v"}]}},
])
def test_round_trips_are_exact(obj):
    back = round_trip(obj)
    assert back == obj and type(back) is type(obj)


def test_ints_stay_ints_and_map_order_is_kept():
    assert round_trip(2**63 - 1) == 9223372036854775807
    assert list(round_trip({"b": 1, "a": 2, "c": 3})) == ["b", "a", "c"]
    assert math.isnan(round_trip(float("nan")))
    assert round_trip(float("inf")) == float("inf")


def test_other_byte_and_sequence_types_decode_as_their_plain_forms():
    assert round_trip(bytearray(b"ab")) == b"ab"
    assert round_trip(memoryview(b"cd")) == b"cd"
    assert round_trip((1, (2, 3))) == [1, [2, 3]]


@pytest.mark.parametrize("obj, message", [
    ({"a": [1, 2, {3}]}, "unsupported Python type 'set' at result['a'][2]"),
    ([object()], "unsupported Python type 'object' at result[0]"),
    (2**63, "int 9223372036854775808 is outside the 64-bit range at result"),
    ({"x": -(2**63) - 1}, "int -9223372036854775809 is outside the 64-bit range at result['x']"),
    ({1: "a"}, "dict key 1 of type 'int' (keys must be str) at result"),
    ([1j], "unsupported Python type 'complex' at result[0]"),
    ({"when": __import__("datetime").date(2024, 1, 1)}, "unsupported Python type 'datetime.date' at result['when']"),
    ("\ud800", "str that is not valid UTF-8 (lone surrogate) at result"),
])
def test_encode_failures_name_the_type_and_where(obj, message):
    with pytest.raises(BridgeError) as failure:
        encode(obj, what="result of tool 't'", where="result")
    assert failure.value.kind == "encode_failed"
    assert failure.value.message == f"result of tool 't' cannot be encoded: {message}"


def test_nesting_deeper_than_protobuf_parses_is_refused():
    deep: list = [1]
    for _ in range(48):
        deep = [deep]
    assert round_trip(deep) == deep  # 49 lists: 100 message levels with the response envelope
    with pytest.raises(BridgeError, match="nested deeper than protobuf's limit of 100 message levels"):
        encode([deep], where="result")


def test_decoding_duplicate_keys_is_bad_arguments():
    value = pb.Value(map_value=pb.MapValue(entries=[
        pb.MapEntry(key="k", value=pb.Value(int_value=1)), pb.MapEntry(key="k", value=pb.Value(int_value=2))]))
    with pytest.raises(BridgeError) as failure:
        decode(value, where="arguments['x']")
    assert (failure.value.kind, failure.value.message) == ("bad_arguments", "duplicate key 'k' in map at arguments['x']")
    arguments = pb.MapValue(entries=[pb.MapEntry(key="a", value=pb.Value()), pb.MapEntry(key="a", value=pb.Value())])
    with pytest.raises(BridgeError, match="duplicate argument 'a'"):
        decode_arguments(arguments)


def test_a_value_without_kind_decodes_as_none():
    assert decode(pb.Value()) is None
    assert decode_arguments(encode_map({"a": 1, "b": [None]})) == {"a": 1, "b": [None]}


def test_numpy_scalars_encode_as_the_matching_int_float_or_bool():
    np = pytest.importorskip("numpy")
    cases = [(np.int64(-5), -5), (np.int8(7), 7), (np.uint64(2**63 - 1), 2**63 - 1),
             (np.uint8(255), 255), (np.float32(0.5), 0.5), (np.float16(1.5), 1.5),
             (np.float64(0.1), 0.1), (np.bool_(True), True), (np.bool_(False), False)]
    for scalar, expected in cases:
        decoded = decode(encode(scalar))
        assert decoded == expected and type(decoded) is type(expected), (scalar, decoded)
    assert math.isnan(decode(encode(np.float32("nan"))))
    # Inside containers too, with exact values.
    assert decode(encode({"n": [np.int32(3), np.float32(0.25)]})) == {"n": [3, 0.25]}


def test_numpy_scalars_out_of_range_or_without_a_wire_form_fail_with_the_path():
    np = pytest.importorskip("numpy")
    with pytest.raises(BridgeError, match=r"numpy.uint64 18446744073709551615 is outside the 64-bit range at value\['big'\]"):
        encode({"big": np.uint64(2**64 - 1)})
    with pytest.raises(BridgeError, match=r"numpy.datetime64.*at value\[0\]"):
        encode([np.datetime64("2024-01-01")])

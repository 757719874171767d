"""Shared memory segments: payloads over the threshold travel as files of the segment directory,
who removes them follows bridge.proto (arguments: the sender; results: the receiver), and
hostile names and files are refused. (The ``shm_dir`` fixture is in conftest.py.)"""

from __future__ import annotations

import errno
import mmap
import os
from pathlib import Path
from typing import Any, List

import pytest

from bridge_helpers import SHM_BYTES_MAX as BYTES_MAX
from bridge_helpers import SHM_THRESHOLD as THRESHOLD
from bridge_helpers import shm_files as files
from snakepit_bridge import shm
from snakepit_bridge._wire import bridge_pb2 as pb
from snakepit_bridge.errors import BridgeError
from snakepit_bridge.values import decode, decode_arguments, encode, encode_map


def wire(value: pb.Value) -> pb.Value:
    return pb.Value.FromString(value.SerializeToString())


def segment_value(name: str, size: int) -> pb.Value:
    return pb.Value(shared_bytes=pb.SharedSegment(name=name, size=size))


def test_exactly_the_threshold_stays_inline_one_byte_more_goes_to_a_segment(shm_dir):
    assert encode(b"x" * THRESHOLD).WhichOneof("kind") == "bytes_value"
    assert files(shm_dir) == []
    value = wire(encode(b"y" * (THRESHOLD + 1)))
    assert value.WhichOneof("kind") == "shared_bytes"
    name = value.shared_bytes.name
    assert value.shared_bytes.size == THRESHOLD + 1
    assert name.startswith(f"w{os.getpid()}-") and "/" not in name
    assert files(shm_dir) == [name]
    info = os.stat(shm_dir / name)
    # Files are sized in steps (FILE_GRANULE) so that later payloads can reuse them.
    assert oct(info.st_mode & 0o777) == oct(0o600) and info.st_size >= THRESHOLD + 1
    assert decode(value) == b"y" * (THRESHOLD + 1)  # an argument: the sender's, left in place
    assert files(shm_dir) == [name]
    back = decode(value, take=True)  # a result: ours, removed once mapped
    assert type(back) is bytes and back == b"y" * (THRESHOLD + 1)
    assert files(shm_dir) == []


def test_names_are_unique_and_bytearray_and_memoryview_go_too(shm_dir):
    payloads = [bytearray(b"a" * 20), memoryview(b"b" * 40)[::2], memoryview(bytes(range(40))).cast("I")]
    values = [wire(encode(payload)) for payload in payloads]
    assert [v.WhichOneof("kind") for v in values] == ["shared_bytes"] * 3
    assert len({v.shared_bytes.name for v in values}) == 3
    assert [decode(v, take=True) for v in values] == [b"a" * 20, b"b" * 20, bytes(range(40))]
    assert files(shm_dir) == []


def test_unconfigured_everything_is_inline_and_a_segment_is_refused():
    assert shm.directory() is None
    assert encode(b"z" * 10_000_000).WhichOneof("kind") == "bytes_value"
    with pytest.raises(BridgeError) as failure:
        decode(pb.Value(list_value=pb.ListValue(items=[segment_value("w1-1", 4)])), where="arguments['d']")
    assert failure.value.kind == "bad_arguments"
    assert failure.value.message == ("a shared memory segment arrived at arguments['d'][0], but shared memory is "
                                     "not configured in this process (--shm-dir)")


def test_arguments_sent_are_collected_for_the_sender_to_remove(shm_dir):
    created: List[str] = []
    arguments = wire_map(encode_map({"small": b"s", "big": b"B" * 100, "more": [b"C" * 50]}, created=created))
    assert len(created) == 2 and files(shm_dir) == sorted(created)
    assert decode_arguments(arguments) == {"small": b"s", "big": b"B" * 100, "more": [b"C" * 50]}
    assert files(shm_dir) == sorted(created)  # the receiver of arguments leaves them
    shm.unlink(created)
    assert files(shm_dir) == []


def wire_map(value: pb.MapValue) -> pb.MapValue:
    return pb.MapValue.FromString(value.SerializeToString())


def test_a_failed_encode_leaves_no_segment_behind(shm_dir):
    created: List[str] = []
    with pytest.raises(BridgeError) as failure:
        encode_map({"big": b"B" * 100, "bad": {1, 2}}, created=created)
    assert failure.value.kind == "encode_failed"
    assert (created, files(shm_dir)) == ([], [])


def test_a_payload_over_the_limit_is_payload_too_large_naming_shm_bytes_max(shm_dir):
    assert encode(b"m" * BYTES_MAX).WhichOneof("kind") == "shared_bytes"  # at the limit: fine
    shm.unlink(files(shm_dir))
    with pytest.raises(BridgeError) as failure:
        encode({"ok": b"o" * 100, "x": [b"m" * (BYTES_MAX + 1)]}, what="result of tool 't'", where="result")
    assert failure.value.kind == "payload_too_large"
    assert failure.value.message == (f"result of tool 't' cannot be encoded: a payload of {BYTES_MAX + 1} bytes is "
                                     f"over the shared memory limit of {BYTES_MAX} bytes (shm_bytes_max, "
                                     "--shm-bytes-max) at result['x'][0]")
    assert files(shm_dir) == []


def test_a_full_file_system_is_payload_too_large_and_leaves_no_file(shm_dir, monkeypatch):
    def full(fd: int, offset: int, length: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "posix_fallocate", full)
    with pytest.raises(BridgeError) as failure:
        encode({"x": b"f" * 100}, where="result")
    assert failure.value.kind == "payload_too_large"
    assert "no room for a shared memory segment of 100 bytes" in failure.value.message
    assert failure.value.message.endswith("(the file system is full) at result['x']")
    assert os.listdir(shm_dir) == []


@pytest.mark.parametrize("name", ["", ".", "..", "../x", "a/b", "/etc/passwd", "a\0b", "a b", "x" * 65, "é",
                                  "pw1-2", "ph1-2"])
def test_names_that_are_not_plain_segment_names_are_bad_arguments(shm_dir, name):
    with pytest.raises(BridgeError) as failure:
        decode(segment_value(name, 1), where="arguments['d']", take=True)
    assert failure.value.kind == "bad_arguments"
    assert failure.value.message == (f"shared memory segment name {name!r} is not a plain segment name "
                                     "(1-64 of A-Z a-z 0-9 _ -, not a private p... name) at arguments['d']")


def test_names_the_host_writes_are_accepted(shm_dir):
    write_file(shm_dir / "h123-7", b"host")
    write_file(shm_dir / ("x" * 64), b"long")
    assert decode(segment_value("h123-7", 4)) == b"host"
    assert decode(segment_value("x" * 64, 4), take=True) == b"long"
    assert files(shm_dir) == ["h123-7"]


def write_file(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    path.chmod(0o600)


def refusal(name: str, size: int = 4, take: bool = False) -> str:
    with pytest.raises(BridgeError) as failure:
        decode(segment_value(name, size), where="arguments['d']", take=take)
    assert failure.value.kind == "bad_arguments"
    return failure.value.message


def test_symlinks_fifos_directories_short_and_missing_files_are_refused(shm_dir, tmp_path):
    outside = tmp_path / "secret"
    write_file(outside, b"secret")
    (shm_dir / "link").symlink_to(outside)
    os.mkfifo(shm_dir / "fifo", 0o600)
    (shm_dir / "dir").mkdir()
    write_file(shm_dir / "short", b"abc")
    assert refusal("link").startswith("cannot open shared memory segment 'link' at arguments['d']: ")
    assert refusal("fifo") == "shared memory segment 'fifo' at arguments['d'] is not a regular file"
    assert refusal("dir") == "shared memory segment 'dir' at arguments['d'] is not a regular file"
    assert refusal("short") == "shared memory segment 'short' at arguments['d'] holds 3 bytes, fewer than its size 4"
    assert refusal("missing") == ("cannot open shared memory segment 'missing' at arguments['d']: "
                                  "No such file or directory")
    assert refusal("short", size=2**64 - 1).endswith(f"fewer than its size {2**64 - 1}")
    assert outside.read_bytes() == b"secret"


@pytest.mark.skipif(os.geteuid() != 0, reason="making a file owned by another user needs root")
def test_a_file_owned_by_another_user_is_refused(shm_dir):
    write_file(shm_dir / "theirs", b"0123")
    os.chown(shm_dir / "theirs", 65534, 65534)
    assert refusal("theirs") == (f"shared memory segment 'theirs' at arguments['d'] is owned by uid 65534, not by "
                                 f"this user (uid {os.geteuid()})")


def test_a_result_that_cannot_be_decoded_still_frees_every_segment_it_names(shm_dir):
    good = wire(encode(b"g" * 100))
    write_file(shm_dir / "short", b"abc")
    result = pb.Value(list_value=pb.ListValue(items=[good, segment_value("short", 4), wire(encode(b"h" * 100))]))
    assert len(files(shm_dir)) == 3
    with pytest.raises(BridgeError, match="holds 3 bytes"):
        decode(result, where="result", take=True)
    assert files(shm_dir) == []


def test_a_zero_sized_segment_is_empty_bytes(shm_dir):
    write_file(shm_dir / "empty", b"")
    assert decode(segment_value("empty", 0), take=True) == b""
    assert files(shm_dir) == []


# --- arrays -----------------------------------------------------------------------------------


def base_chain(obj: Any) -> List[Any]:
    chain = []
    while obj is not None:
        chain.append(obj)
        obj = getattr(obj, "base", None) if not isinstance(obj, memoryview) else obj.obj
    return chain


def test_arrays_over_the_threshold_travel_in_a_segment_and_decode_without_a_copy(shm_dir):
    np = pytest.importorskip("numpy")
    assert encode(np.zeros(THRESHOLD, np.uint8)).ndarray_value.WhichOneof("storage") == "data"
    sent = np.asfortranarray(np.arange(24, dtype=np.float64).reshape(2, 3, 4))
    value = wire(encode(sent))
    array = value.ndarray_value
    assert (array.WhichOneof("storage"), array.dtype, list(array.shape)) == ("segment", pb.DTYPE_FLOAT64, [2, 3, 4])
    assert array.segment.size == 24 * 8 and files(shm_dir) == [array.segment.name]
    data = (shm_dir / array.segment.name).read_bytes()[:array.segment.size]
    assert data == np.ascontiguousarray(sent).tobytes()
    back = decode(value, take=True)
    assert files(shm_dir) == []  # unlinked; the mapping keeps the memory
    assert np.array_equal(back, sent) and back.flags.c_contiguous and not back.flags.writeable
    assert any(isinstance(link, mmap.mmap) for link in base_chain(back))
    assert back.sum() == sum(range(24))  # still readable after the unlink


def test_strided_and_complex_arrays_and_argument_segments(shm_dir):
    np = pytest.importorskip("numpy")
    sent = (np.arange(40, dtype=np.complex64) * (1 + 1j))[::3]
    created: List[str] = []
    arguments = wire_map(encode_map({"a": sent}, created=created))
    assert len(created) == 1
    back = decode_arguments(arguments)["a"]
    assert np.array_equal(back, sent) and back.dtype == np.complex64
    assert files(shm_dir) == created  # an argument stays until its sender removes it
    shm.unlink(created)
    assert back.tolist() == sent.tolist()


def test_an_array_segment_whose_size_does_not_fit_is_bad_arguments(shm_dir):
    write_file(shm_dir / "seg", b"\0" * 16)
    value = pb.Value(ndarray_value=pb.NdArray(dtype=pb.DTYPE_INT32, shape=[3],
                                              segment=pb.SharedSegment(name="seg", size=16)))
    with pytest.raises(BridgeError) as failure:
        decode(value, where="result", take=True)
    assert failure.value.kind == "bad_arguments"
    assert failure.value.message == ("n-d array at result: its segment holds 16 bytes, but dtype DTYPE_INT32 and "
                                     "shape [3] need 12")
    assert files(shm_dir) == []  # a result's segment is ours to free, decoded or not


def test_a_too_large_array_is_payload_too_large_and_leaves_no_file(shm_dir):
    np = pytest.importorskip("numpy")
    with pytest.raises(BridgeError) as failure:
        encode({"a": np.zeros(BYTES_MAX + 1, np.uint8)}, where="result")
    assert failure.value.kind == "payload_too_large" and "shm_bytes_max" in failure.value.message
    assert files(shm_dir) == []


# --- configuration --------------------------------------------------------------------------


def test_configure_refuses_a_directory_that_is_not_private(tmp_path):
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    open_dir.chmod(0o755)
    with pytest.raises(ValueError, match="has mode 0755, not 0700"):
        shm.configure(str(open_dir), THRESHOLD, BYTES_MAX)
    with pytest.raises(ValueError, match="cannot open .* as a directory"):
        shm.configure(str(tmp_path / "missing"), THRESHOLD, BYTES_MAX)
    assert shm.directory() is None


def private_files(directory: Path) -> List[str]:
    return sorted(name for name in os.listdir(directory) if name.startswith("p"))


def test_a_file_is_reused_once_its_reader_has_let_go(shm_dir):
    first = encode(b"a" * 100)
    assert decode(first, take=True) == b"a" * 100  # taken, and the copy leaves no mapping
    (kept,) = private_files(shm_dir)
    second = encode(b"b" * 100)
    assert second.shared_bytes.name != first.shared_bytes.name  # a fresh public name
    assert private_files(shm_dir) == [kept]  # the same file
    assert decode(second, take=True) == b"b" * 100


def test_a_file_a_reader_still_maps_is_never_rewritten(shm_dir):
    np = pytest.importorskip("numpy")
    sent = np.arange(64, dtype=np.float64)
    held = decode(encode(sent), take=True)  # a zero-copy view: the file stays locked
    assert len(private_files(shm_dir)) == 1
    other = encode(np.zeros(64, dtype=np.float64))
    assert len(private_files(shm_dir)) == 2  # a new file, not the one `held` maps
    np.testing.assert_array_equal(held, sent)
    decode(other, take=True)
    del held  # the lock goes with the last view ...
    import gc
    gc.collect()
    encode(np.ones(64, dtype=np.float64))  # ... and a file is reused again
    assert len(private_files(shm_dir)) == 2


def test_a_withdrawn_name_is_never_read_after_its_file_is_reused(shm_dir):
    first = encode(b"old" * 40)
    os.unlink(shm_dir / first.shared_bytes.name)  # its sender withdrew it (the call is over)
    second = encode(b"new" * 40)  # reuses the file
    assert len(private_files(shm_dir)) == 1
    with pytest.raises(BridgeError) as failure:
        decode(first, where="arguments['d']")
    assert failure.value.kind == "bad_arguments"
    assert "cannot open shared memory segment" in failure.value.message
    assert decode(second, take=True) == b"new" * 40


def test_idle_files_are_bounded_by_cache_bytes(tmp_path):
    directory = tmp_path / "small-cache"
    directory.mkdir(mode=0o700)
    shm.configure(str(directory), THRESHOLD, BYTES_MAX, cache_bytes=0)
    try:
        value = encode(b"z" * 100)
        assert private_files(directory) == []  # not kept: the receiver's take frees it
        assert decode(value, take=True) == b"z" * 100
        assert os.listdir(directory) == []
    finally:
        shm.unconfigure()

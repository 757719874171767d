"""Shared-memory segments: large payloads travel in files of a private directory, not in messages.

The host gives each worker a directory (``--shm-dir``; mode 0700, owned by this user, e.g. on
``/dev/shm``). Once :func:`configure` has been called, :mod:`snakepit_bridge.values` writes
every ``bytes`` payload and every n-d array's data over :func:`threshold` bytes into a new
file there and sends only a ``SharedSegment{name, size}``; unconfigured (the default, as in
``AdapterTestClient`` and unit tests) everything stays inline.

Files are named ``w<pid>-<n>`` (this process's pid, a process-wide counter; the host removes a
dead worker's leftovers by that prefix), created ``O_EXCL`` with mode 0600 relative to the
directory's fd. Names received must be 1-64 of ``[A-Za-z0-9_-]`` (the host writes ``h<pid>-<n>``).

Who removes a file (``bridge.proto``): segments in a request (arguments) belong to the
sender, which unlinks them when the call ends; segments in a reply or stream item (results)
belong to the receiver, which unlinks the name right after mapping it. An unlinked file's
memory lives on while a mapping of it does, so arrays decoded from a segment stay valid.

Only the standard library is used.
"""

from __future__ import annotations

import errno
import itertools
import mmap
import os
import re
import stat
from dataclasses import dataclass
from typing import Callable, Iterable, Optional, Tuple, Union

from snakepit_bridge.errors import BAD_ARGUMENTS, ENCODE_FAILED, PAYLOAD_TOO_LARGE, BridgeError

#: Payloads larger than this many bytes go to a segment (``--shm-threshold``).
DEFAULT_THRESHOLD = 64 * 1024
#: The largest payload a segment may hold (``--shm-bytes-max``, host key ``shm_bytes_max``).
DEFAULT_BYTES_MAX = 1024 * 1024 * 1024

_CREATE_FLAGS = os.O_CREAT | os.O_EXCL | os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: a FIFO planted under a segment's name must not block the reader in open().
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
#: Longest segment name accepted (the host's limit too).
NAME_LENGTH_MAX = 64
_NAME = re.compile(r"[A-Za-z0-9_-]{1,%d}" % NAME_LENGTH_MAX)
_NAME_ATTEMPTS = 1000  # O_EXCL collisions (a stale file of an earlier process with our pid) before giving up

_counter = itertools.count()


@dataclass(frozen=True)
class _Settings:
    directory: str
    dir_fd: int  # held open: every segment is opened relative to it, never by path
    threshold: int
    bytes_max: int


_settings: Optional[_Settings] = None


def check_directory(path: str) -> Optional[str]:
    """Why ``path`` cannot be the segment directory, or None when it can.

    It must be a directory owned by this user with mode exactly 0700, so that no other user
    can read payloads or plant files under the names we are sent.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        return f"cannot open {path!r} as a directory: {exc.strerror}"
    try:
        return _refusal(path, os.fstat(fd))
    finally:
        os.close(fd)


def _refusal(path: str, info: os.stat_result) -> Optional[str]:
    if not stat.S_ISDIR(info.st_mode):
        return f"{path!r} is not a directory"
    if info.st_uid != os.geteuid():
        return f"{path!r} is owned by uid {info.st_uid}, not by this user (uid {os.geteuid()})"
    mode = stat.S_IMODE(info.st_mode)
    if mode != 0o700:
        return f"{path!r} has mode {mode:04o}, not 0700"
    return None


def configure(directory: str, threshold: int = DEFAULT_THRESHOLD, bytes_max: int = DEFAULT_BYTES_MAX) -> None:
    """Turns shared memory on for this process (the worker calls it once, before serving).

    Args:
        directory: the segment directory (checked as :func:`check_directory` does).
        threshold: payloads of more than this many bytes go to a segment; at most this many
            stay inline.
        bytes_max: a payload over this many bytes cannot be sent (``payload_too_large``).

    Raises:
        ValueError: the directory or a number is not acceptable (the message says why).
    """
    global _settings
    if threshold < 0:
        raise ValueError(f"shared memory threshold must be 0 or more, not {threshold}")
    if bytes_max < 1:
        raise ValueError(f"shared memory bytes_max must be positive, not {bytes_max}")
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise ValueError(f"cannot open {directory!r} as a directory: {exc.strerror}") from None
    reason = _refusal(directory, os.fstat(fd))
    if reason is not None:
        os.close(fd)
        raise ValueError(reason)
    previous, _settings = _settings, _Settings(directory, fd, threshold, bytes_max)
    if previous is not None:
        os.close(previous.dir_fd)


def unconfigure() -> None:
    """Turns shared memory off again: everything inline (for tests)."""
    global _settings
    previous, _settings = _settings, None
    if previous is not None:
        os.close(previous.dir_fd)


def directory() -> Optional[str]:
    """The configured directory, or None when shared memory is off."""
    settings = _settings
    return settings.directory if settings is not None else None


def wants(size: int) -> bool:
    """Whether a payload of ``size`` bytes goes to a segment (configured, and over the threshold)."""
    settings = _settings
    return settings is not None and size > settings.threshold


def write(size: int, fill: Callable[[mmap.mmap], None]) -> str:
    """Creates a segment of ``size`` bytes, lets ``fill`` copy the payload into its writable
    mapping, and returns the segment's name. The caller owns the file from then on.

    Raises:
        BridgeError: ``payload_too_large`` over ``bytes_max``; ``encode_failed`` when the file
            cannot be created or written (no partial file is left behind).
    """
    settings = _settings
    assert settings is not None, "shared memory is not configured"
    if size > settings.bytes_max:
        raise BridgeError(PAYLOAD_TOO_LARGE, f"a payload of {size} bytes is over the shared memory limit of "
                                             f"{settings.bytes_max} bytes (shm_bytes_max, --shm-bytes-max)")
    name, fd = _create(settings)
    try:
        try:
            _reserve(fd, size)
            mapping = mmap.mmap(fd, size, access=mmap.ACCESS_WRITE)
            try:
                fill(mapping)
            finally:
                mapping.close()
        finally:
            os.close(fd)
    except BaseException as exc:
        _unlink_one(settings, name)
        if isinstance(exc, OSError):
            raise BridgeError(ENCODE_FAILED, f"cannot write a shared memory segment of {size} bytes in "
                                             f"{settings.directory}: {exc.strerror or exc}") from None
        raise
    return name


def _create(settings: _Settings) -> Tuple[str, int]:
    for _ in range(_NAME_ATTEMPTS):
        name = f"w{os.getpid()}-{next(_counter)}"
        try:
            return name, os.open(name, _CREATE_FLAGS, 0o600, dir_fd=settings.dir_fd)
        except FileExistsError:
            continue
        except OSError as exc:
            raise BridgeError(ENCODE_FAILED, f"cannot create a shared memory segment in {settings.directory}: "
                                             f"{exc.strerror or exc}") from None
    raise BridgeError(ENCODE_FAILED, f"cannot create a shared memory segment in {settings.directory}: "
                                     f"{_NAME_ATTEMPTS} names in a row already exist")


def _reserve(fd: int, size: int) -> None:
    """Sizes the file, allocating its pages now: a full tmpfs then fails here with ENOSPC
    instead of killing us with SIGBUS while we write through the mapping."""
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
            raise
        os.ftruncate(fd, size)  # a file system without fallocate: a sparse file it is


def write_bytes(data: Union[bytes, bytearray, memoryview]) -> str:
    """:func:`write` for a bytes-like payload (a non-contiguous memoryview is copied first)."""
    view = memoryview(data)
    if not view.c_contiguous:
        view = memoryview(view.tobytes())
    size = view.nbytes

    def fill(mapping: mmap.mmap) -> None:
        mapping[0:size] = view

    return write(size, fill)


def valid_name(name: str) -> bool:
    """Whether ``name`` can name a segment: 1-64 of ``[A-Za-z0-9_-]``, as the host also checks.
    So never ``/``, NUL, ``.`` or ``..``: a name cannot leave the directory."""
    return _NAME.fullmatch(name) is not None


def _check_name(name: str, where: str) -> None:
    if not valid_name(name):
        raise BridgeError(BAD_ARGUMENTS, f"shared memory segment name {name!r} is not a plain segment name "
                                         f"(1-{NAME_LENGTH_MAX} of A-Z a-z 0-9 _ -) at {where}")


def map_segment(name: str, size: int, *, where: str, take: bool = False) -> Union[mmap.mmap, bytes]:
    """Opens segment ``name`` and maps its first ``size`` bytes read-only.

    Args:
        name: the segment's file name in the directory.
        size: the payload's bytes.
        where: the value's path, for error messages.
        take: the segment is ours (a result or stream item we received): unlink the name once
            it is opened, whatever follows. False for arguments (the sender removes them).

    Returns:
        A read-only ``mmap`` (``b""`` for size 0); the file's memory stays while it is referenced.

    Raises:
        BridgeError: ``bad_arguments``: shared memory is off, the name is not a plain file name,
            the file cannot be opened, is not a regular file owned by this user, or is smaller
            than ``size``.
    """
    settings = _settings
    if settings is None:
        raise BridgeError(BAD_ARGUMENTS, f"a shared memory segment arrived at {where}, but shared memory is not "
                                         "configured in this process (--shm-dir)")
    _check_name(name, where)
    try:
        fd = os.open(name, _OPEN_FLAGS, dir_fd=settings.dir_fd)
    except OSError as exc:
        raise BridgeError(BAD_ARGUMENTS, f"cannot open shared memory segment {name!r} at {where}: "
                                         f"{exc.strerror or exc}") from None
    try:
        if take:
            _unlink_one(settings, name)
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise BridgeError(BAD_ARGUMENTS, f"shared memory segment {name!r} at {where} is not a regular file")
        if info.st_uid != os.geteuid():  # the owner of the files this user creates, as the host checks
            raise BridgeError(BAD_ARGUMENTS, f"shared memory segment {name!r} at {where} is owned by uid "
                                             f"{info.st_uid}, not by this user (uid {os.geteuid()})")
        if info.st_size < size:
            raise BridgeError(BAD_ARGUMENTS, f"shared memory segment {name!r} at {where} holds {info.st_size} "
                                             f"bytes, fewer than its size {size}")
        if size == 0:
            return b""  # mmap cannot map 0 bytes (and length 0 would mean the whole file)
        try:
            return mmap.mmap(fd, size, access=mmap.ACCESS_READ)
        except OSError as exc:
            raise BridgeError(BAD_ARGUMENTS, f"cannot map shared memory segment {name!r} at {where}: "
                                             f"{exc.strerror or exc}") from None
    finally:
        os.close(fd)


def read_bytes(name: str, size: int, *, where: str, take: bool = False) -> bytes:
    """A segment's payload copied into ``bytes`` (see :func:`map_segment`)."""
    mapping = map_segment(name, size, where=where, take=take)
    if isinstance(mapping, bytes):
        return mapping
    try:
        return mapping[:]
    finally:
        mapping.close()


def _unlink_one(settings: _Settings, name: str) -> None:
    try:
        os.unlink(name, dir_fd=settings.dir_fd)
    except OSError:
        pass  # already gone (taken twice, or the sender cleaned up): nothing left to free


def unlink(names: Iterable[str]) -> None:
    """Removes segments by name, ignoring names that are gone or not plain file names.

    For the sender of arguments once the call has ended, and for a receiver that could not
    decode a result (its segments are still its own to free).
    """
    settings = _settings
    if settings is None:
        return
    for name in names:
        if valid_name(name):
            _unlink_one(settings, name)

"""Shared-memory segments: large payloads travel in files of a private directory, not in messages.

The host gives each worker a directory (``--shm-dir``; mode 0700, owned by this user, e.g. on
``/dev/shm``). Once :func:`configure` has been called, :mod:`snakepit_bridge.values` writes
every ``bytes`` payload and every n-d array's data over :func:`threshold` bytes into a new
file there and sends only a ``SharedSegment{name, size}``; unconfigured (the default, as in
``AdapterTestClient`` and unit tests) everything stays inline.

Files are reused, because the kernel's page allocation for a fresh file costs more than the
copy into it. Each file this process writes has a private name it keeps (``pw<pid>-<n>``) and,
per payload, a public name (``w<pid>-<n>``, a process-wide counter; the host removes a dead
worker's leftovers by both prefixes). Names received must be 1-64 of ``[A-Za-z0-9_-]`` and not
private (not starting with ``p``); the host writes ``h<pid>-<n>``.

The protocol (``bridge.proto``, ``SharedSegment``), with no message back:

- A reader opens the public name, takes a shared ``flock`` without waiting, checks that the
  name still names the file it opened, and maps it; the lock lives as long as the mapping (an
  ``mmap`` holds its own descriptor), so arrays decoded from a segment stay valid and intact.
- The public name goes when the payload's call is over: the receiver of a result takes it
  (removes the name once mapped); the sender of arguments withdraws it when the call ends.
- A writer reuses a file once its public name is gone (link count 1) and it gets an exclusive
  lock without waiting (no reader maps it); otherwise it writes a new file. At most
  ``cache_bytes`` of idle files are kept.

Only the standard library is used.
"""

from __future__ import annotations

import errno
import fcntl
import itertools
import mmap
import os
import re
import stat
import threading
from dataclasses import dataclass
from typing import Callable, Iterable, List, Optional, Tuple, Union

from snakepit_bridge.errors import BAD_ARGUMENTS, ENCODE_FAILED, PAYLOAD_TOO_LARGE, BridgeError

#: Payloads larger than this many bytes go to a segment (``--shm-threshold``).
DEFAULT_THRESHOLD = 192 * 1024
#: The largest payload a segment may hold (``--shm-bytes-max``, host key ``shm_bytes_max``).
DEFAULT_BYTES_MAX = 1024 * 1024 * 1024
#: Bytes of idle files kept for reuse (``--shm-cache-bytes``, host key ``shm_cache_bytes``).
DEFAULT_CACHE_BYTES = 256 * 1024 * 1024
#: New files are sized in steps of this many bytes, so that they fit later payloads too.
FILE_GRANULE = 64 * 1024

_CREATE_FLAGS = os.O_CREAT | os.O_EXCL | os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: a FIFO planted under a segment's name must not block the reader in open().
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
#: Longest segment name accepted (the host's limit too).
NAME_LENGTH_MAX = 64
_NAME = re.compile(r"(?!p)[A-Za-z0-9_-]{1,%d}" % NAME_LENGTH_MAX)
_NAME_ATTEMPTS = 1000  # O_EXCL collisions (a stale file of an earlier process with our pid) before giving up

_counter = itertools.count()


@dataclass(frozen=True)
class _Settings:
    directory: str
    dir_fd: int  # held open: every segment is opened relative to it, never by path
    threshold: int
    bytes_max: int
    cache_bytes: int


@dataclass
class _File:
    """A file this process writes payloads into: its private name, a descriptor and a writable
    mapping of its whole capacity."""

    private_name: str
    fd: int
    mapping: mmap.mmap
    capacity: int


_settings: Optional[_Settings] = None
_idle: List[_File] = []  # files kept for reuse, guarded by _idle_lock
_idle_lock = threading.Lock()


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


def configure(directory: str, threshold: int = DEFAULT_THRESHOLD, bytes_max: int = DEFAULT_BYTES_MAX,
              cache_bytes: int = DEFAULT_CACHE_BYTES) -> None:
    """Turns shared memory on for this process (the worker calls it once, before serving).

    Args:
        directory: the segment directory (checked as :func:`check_directory` does).
        threshold: payloads of more than this many bytes go to a segment; at most this many
            stay inline.
        bytes_max: a payload over this many bytes cannot be sent (``payload_too_large``).
        cache_bytes: idle files kept for reuse, in bytes of their capacity.

    Raises:
        ValueError: the directory or a number is not acceptable (the message says why).
    """
    global _settings
    if threshold < 0:
        raise ValueError(f"shared memory threshold must be 0 or more, not {threshold}")
    if bytes_max < 1:
        raise ValueError(f"shared memory bytes_max must be positive, not {bytes_max}")
    if cache_bytes < 0:
        raise ValueError(f"shared memory cache_bytes must be 0 or more, not {cache_bytes}")
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise ValueError(f"cannot open {directory!r} as a directory: {exc.strerror}") from None
    reason = _refusal(directory, os.fstat(fd))
    if reason is not None:
        os.close(fd)
        raise ValueError(reason)
    _drop_idle()
    previous, _settings = _settings, _Settings(directory, fd, threshold, bytes_max, cache_bytes)
    if previous is not None:
        os.close(previous.dir_fd)


def unconfigure() -> None:
    """Turns shared memory off again: everything inline (for tests)."""
    global _settings
    _drop_idle()
    previous, _settings = _settings, None
    if previous is not None:
        os.close(previous.dir_fd)


def _drop_idle() -> None:
    with _idle_lock:
        files, _idle[:] = list(_idle), []
    settings = _settings
    for file in files:
        _destroy(settings, file)


def _destroy(settings: Optional[_Settings], file: _File) -> None:
    try:
        file.mapping.close()
    except BufferError:
        pass  # a view of it lives on in a payload being written: the GC frees it later
    if settings is not None:
        _unlink_one(settings, file.private_name)
    os.close(file.fd)


def directory() -> Optional[str]:
    """The configured directory, or None when shared memory is off."""
    settings = _settings
    return settings.directory if settings is not None else None


def wants(size: int) -> bool:
    """Whether a payload of ``size`` bytes goes to a segment (configured, and over the threshold)."""
    settings = _settings
    return settings is not None and size > settings.threshold


def write(size: int, fill: Callable[[mmap.mmap], None]) -> str:
    """Puts a payload of ``size`` bytes into a segment: ``fill`` copies it into the start of a
    writable mapping (of at least ``size`` bytes). Returns the segment's public name; its
    receiver (a result) or this process once the call is over (arguments) removes it.

    Raises:
        BridgeError: ``payload_too_large`` over ``bytes_max`` or when the file system is full;
            ``encode_failed`` when the file cannot be created or written.
    """
    settings = _settings
    assert settings is not None, "shared memory is not configured"
    if size > settings.bytes_max:
        raise BridgeError(PAYLOAD_TOO_LARGE, f"a payload of {size} bytes is over the shared memory limit of "
                                             f"{settings.bytes_max} bytes (shm_bytes_max, --shm-bytes-max)")
    file = _reuse(size) or _create(settings, size)
    try:
        fill(file.mapping)
        fcntl.flock(file.fd, fcntl.LOCK_UN)
        name = _publish(settings, file)
    except BaseException as exc:
        _destroy(settings, file)
        if isinstance(exc, OSError):
            raise BridgeError(ENCODE_FAILED, f"cannot write a shared memory segment of {size} bytes in "
                                             f"{settings.directory}: {exc.strerror or exc}") from None
        raise
    _keep(settings, file)
    return name


def _reuse(size: int) -> Optional[_File]:
    """An idle file of at least ``size`` bytes whose public name is gone and that no reader
    maps (so it may be rewritten), locked exclusively; None when there is none."""
    with _idle_lock:
        fits = sorted((f for f in _idle if size <= f.capacity <= max(2 * size, _round_up(size))),
                      key=lambda f: f.capacity)
        for file in fits:
            try:
                if os.fstat(file.fd).st_nlink != 1:
                    continue  # its last payload was not taken or withdrawn yet
                fcntl.flock(file.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # a reader still maps it
            _idle.remove(file)
            return file
    return None


def _round_up(size: int) -> int:
    return -(-size // FILE_GRANULE) * FILE_GRANULE


def _create(settings: _Settings, size: int) -> _File:
    capacity = _round_up(max(size, 1))
    for _ in range(_NAME_ATTEMPTS):
        name = f"pw{os.getpid()}-{next(_counter)}"
        try:
            fd = os.open(name, _CREATE_FLAGS, 0o600, dir_fd=settings.dir_fd)
            break
        except FileExistsError:
            continue
        except OSError as exc:
            raise BridgeError(ENCODE_FAILED, f"cannot create a shared memory segment in {settings.directory}: "
                                             f"{exc.strerror or exc}") from None
    else:
        raise BridgeError(ENCODE_FAILED, f"cannot create a shared memory segment in {settings.directory}: "
                                         f"{_NAME_ATTEMPTS} names in a row already exist")
    try:
        _reserve(fd, capacity)
        mapping = mmap.mmap(fd, capacity, access=mmap.ACCESS_WRITE)
    except OSError as exc:
        _unlink_one(settings, name)
        os.close(fd)
        if exc.errno == errno.ENOSPC:
            raise BridgeError(PAYLOAD_TOO_LARGE, f"no room for a shared memory segment of {size} bytes in "
                                                 f"{settings.directory} (the file system is full)") from None
        raise BridgeError(ENCODE_FAILED, f"cannot write a shared memory segment of {size} bytes in "
                                         f"{settings.directory}: {exc.strerror or exc}") from None
    return _File(name, fd, mapping, capacity)


def _reserve(fd: int, size: int) -> None:
    """Sizes the file, allocating its pages now: a full tmpfs then fails here with ENOSPC
    instead of killing us with SIGBUS while we write through the mapping."""
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
            raise
        os.ftruncate(fd, size)  # a file system without fallocate: a sparse file it is


def _publish(settings: _Settings, file: _File) -> str:
    """Gives the file a fresh public name (a hard link to its private one)."""
    for _ in range(_NAME_ATTEMPTS):
        name = f"w{os.getpid()}-{next(_counter)}"
        try:
            os.link(file.private_name, name, src_dir_fd=settings.dir_fd, dst_dir_fd=settings.dir_fd,
                    follow_symlinks=False)
            return name
        except FileExistsError:
            continue
    raise OSError(errno.EEXIST, f"{_NAME_ATTEMPTS} names in a row already exist")


def _keep(settings: _Settings, file: _File) -> None:
    """Keeps a written file for reuse, or lets it go (its reader still frees it) when the idle
    files already hold ``cache_bytes``."""
    with _idle_lock:
        if sum(f.capacity for f in _idle) + file.capacity <= settings.cache_bytes:
            _idle.append(file)
            return
    _destroy(settings, file)


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
                                         f"(1-{NAME_LENGTH_MAX} of A-Z a-z 0-9 _ -, not a private p... name) at {where}")


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
        try:
            # Held for as long as the mapping lives (mmap keeps a duplicate of the descriptor):
            # the writer does not rewrite a file a reader maps.
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            info = os.fstat(fd)
            named = os.stat(name, dir_fd=settings.dir_fd, follow_symlinks=False)
        except OSError:
            raise BridgeError(BAD_ARGUMENTS, f"shared memory segment {name!r} at {where} was withdrawn by its "
                                             "writer (its call is over)") from None
        if (named.st_ino, named.st_dev) != (info.st_ino, info.st_dev):
            raise BridgeError(BAD_ARGUMENTS, f"shared memory segment {name!r} at {where} was withdrawn by its "
                                             "writer (the name names another file)")
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
            # Populated at once: cheaper than a page fault per 4 KiB as the tool reads it.
            return mmap.mmap(fd, size, flags=mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0),
                             prot=mmap.PROT_READ)
        except OSError as exc:
            raise BridgeError(BAD_ARGUMENTS, f"cannot map shared memory segment {name!r} at {where}: "
                                             f"{exc.strerror or exc}") from None
    finally:
        if take:
            _unlink_one(settings, name)
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

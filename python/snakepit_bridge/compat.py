"""Which common libraries are thread-safe, and which release the GIL: the library compatibility table.

A thread-profile worker runs N calls at once in one process. Whether that is safe depends on the
libraries a tool uses, and whether it is faster depends on whether they release the GIL. This
table says both for common libraries, with short notes; it is the data behind

- the warning a thread-profile worker gives at start when its process has imported a library
  listed as not thread-safe (``warnings`` in the ready line),
- the libraries the thread-safety checker watches (``--thread-check``),
- ``python -m snakepit_bridge.compat [--json | --markdown] [NAME...]`` (the host's command line
  shows it), and the table in ``docs/worker-profiles.md``.

Ratings: ``thread_safe`` is ``"yes"`` (the module may be used from several threads, each with
its own objects, and its shared objects are documented as safe), ``"partial"`` (module functions
may be called from several threads, but some objects must not be shared, or changed while shared:
see the notes) or ``"no"`` (keep it to one thread, or serialize every use with ``self.lock``).
``releases_gil`` is ``"yes"`` (its heavy work or its waiting runs without the GIL, so threads
gain throughput), ``"partial"`` (some operations do) or ``"no"`` (its work holds the GIL).
These are general facts about current versions, not guarantees: read the notes.

Standard library only, so the command line runs in any interpreter.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

RATINGS = ("yes", "partial", "no")


@dataclass(frozen=True)
class LibraryInfo:
    """What the table says about one library.

    Attributes:
        name: the import name (``"sklearn"``, ``"PIL"``).
        package: the name it is installed by (``"scikit-learn"``, ``"Pillow"``), or
            ``"standard library"``.
        thread_safe: ``"yes"``, ``"partial"`` or ``"no"``.
        releases_gil: ``"yes"``, ``"partial"`` or ``"no"``.
        notes: what to do about it, in a sentence or three.
        aliases: other names :func:`lookup` accepts.
    """

    name: str
    package: str
    thread_safe: str
    releases_gil: str
    notes: str
    aliases: Tuple[str, ...] = ()

    def as_dict(self) -> Dict[str, object]:
        return {"name": self.name, "package": self.package, "thread_safe": self.thread_safe,
                "releases_gil": self.releases_gil, "notes": self.notes, "aliases": list(self.aliases)}


_STDLIB = "standard library"

_TABLE: Tuple[LibraryInfo, ...] = (
    LibraryInfo(
        "numpy", "numpy", "partial", "partial",
        "Functions may be called from many threads. Releases the GIL in most operations on numeric "
        "arrays and in BLAS/LAPACK (matrix products, linalg), not for object arrays or per-call "
        "overhead on small arrays. Arrays are unlocked: one shared array changed while other "
        "threads use it needs your own locking."),
    LibraryInfo(
        "scipy", "scipy", "partial", "partial",
        "Most functions are re-entrant and release the GIL in BLAS/LAPACK, FFT and many compiled "
        "routines. Some Fortran solvers keep global state and must not run in two threads at once "
        "(scipy.integrate.ode with vode, zvode or lsoda): guard them with self.lock."),
    LibraryInfo(
        "pandas", "pandas", "partial", "partial",
        "Concurrent reads of one DataFrame are generally fine; changing it (assignment, inplace=True, "
        "new columns) while another thread uses it is not. Only some compiled paths release the GIL "
        "(parts of groupby, joins, the C CSV tokenizer); most pandas code holds it."),
    LibraryInfo(
        "torch", "torch", "partial", "yes",
        "Tensor operations release the GIL. A model used for inference only (eval mode, "
        "torch.no_grad()) may be shared; training or changing a shared module or tensor needs a "
        "lock. Each process has its own intra-op thread pool (torch.set_num_threads): keep it small "
        "with many calling threads.",
        ("pytorch",)),
    LibraryInfo(
        "sklearn", "scikit-learn", "partial", "partial",
        "predict and transform on a fitted estimator may run in several threads; fit, partial_fit or "
        "set_params on a shared estimator may not. Releases the GIL in parts of its Cython code and "
        "through numpy and scipy.",
        ("scikit-learn", "scikit_learn")),
    LibraryInfo(
        "matplotlib", "matplotlib", "no", "no",
        "Not thread-safe (its documentation says so): pyplot keeps global state (the current figure "
        "and axes) and artists have known races. Draw under self.lock with one Figure per call and "
        "the object-oriented API, or use the process profile."),
    LibraryInfo(
        "sqlite3", _STDLIB, "partial", "yes",
        "A Connection refuses other threads unless opened with check_same_thread=False, and a shared "
        "connection then needs a lock: open one connection per thread (self.local). Releases the GIL "
        "while SQLite runs a statement."),
    LibraryInfo(
        "requests", "requests", "partial", "yes",
        "Module-level calls (requests.get) are independent. One Session shared by several threads is "
        "not documented as safe (cookies, adapters): use a Session per thread (self.local). Waits on "
        "the network without the GIL."),
    LibraryInfo(
        "PIL", "Pillow", "partial", "partial",
        "Separate Image objects may be processed in separate threads; one Image must not be changed "
        "from two. Many decoders, encoders and resizing operations release the GIL.",
        ("pillow",)),
    LibraryInfo(
        "tensorflow", "tensorflow", "partial", "yes",
        "Ops release the GIL and run in TensorFlow's own thread pools; a loaded SavedModel or "
        "tf.function may be called from several threads. Training, or Keras models with state, "
        "shared between threads need a lock.",
        ("tf",)),
    LibraryInfo(
        "lxml", "lxml", "partial", "partial",
        "Use a parser per thread (the default parser already is) and do not change a tree while "
        "another thread reads it. Frees the GIL while parsing from memory or a file name, not from a "
        "Python file object."),
    LibraryInfo(
        "cv2", "opencv-python", "partial", "yes",
        "Most functions release the GIL and are safe on separate arrays; stateful objects "
        "(VideoCapture, trackers, some detectors) belong to one thread. OpenCV has its own thread "
        "pool (cv2.setNumThreads).",
        ("opencv", "opencv-python", "opencv-python-headless")),
    LibraryInfo(
        "hashlib", _STDLIB, "yes", "yes",
        "Separate hash objects are independent (one shared object is serialized by its own lock). "
        "Releases the GIL while hashing inputs longer than 2047 bytes."),
    LibraryInfo(
        "zlib", _STDLIB, "yes", "yes",
        "compress and decompress release the GIL. A compressor or decompressor object has its own "
        "lock, but one stream fed by two threads interleaves their data."),
    LibraryInfo(
        "json", _STDLIB, "yes", "no",
        "Stateless and safe; the C encoder and decoder hold the GIL, so JSON work in threads does not "
        "run in parallel."),
    LibraryInfo(
        "re", _STDLIB, "yes", "no",
        "Compiled patterns may be shared. Matching holds the GIL: a slow pattern stalls the other "
        "threads' Python code."),
    LibraryInfo(
        "urllib3", "urllib3", "yes", "yes",
        "PoolManager and connection pools are made to be shared between threads; a response belongs "
        "to one thread. Waits on the network without the GIL."),
    LibraryInfo(
        "psycopg2", "psycopg2", "partial", "yes",
        "A connection may be shared (DB-API threadsafety 2) but its queries then run one at a time; "
        "cursors must not be shared. Use a connection per thread or ThreadedConnectionPool. Releases "
        "the GIL while waiting for the server.",
        ("psycopg2-binary",)),
    LibraryInfo(
        "redis", "redis", "partial", "yes",
        "A Redis client (and its connection pool) may be shared between threads; PubSub and Pipeline "
        "objects may not. Waits on the network without the GIL.",
        ("redis-py",)),
)

for _info in _TABLE:
    assert _info.thread_safe in RATINGS and _info.releases_gil in RATINGS, _info

_BY_NAME: Dict[str, LibraryInfo] = {}
for _info in _TABLE:
    for _key in (_info.name, *_info.aliases):
        _BY_NAME[_key.lower()] = _info


def table() -> List[LibraryInfo]:
    """Every library in the table, in its fixed order."""
    return list(_TABLE)


def lookup(name: str) -> Optional[LibraryInfo]:
    """The entry for a library: by import name, install name or alias, any case; a submodule
    (``"numpy.linalg"``, ``"matplotlib.pyplot"``) finds its package. None when it is not listed."""
    key = name.strip().lower()
    found = _BY_NAME.get(key)
    if found is None and "." in key:
        found = _BY_NAME.get(key.partition(".")[0])
    return found


def unsafe_imported(modules: Optional[Mapping[str, object]] = None, *,
                    include_partial: bool = False) -> List[LibraryInfo]:
    """The listed libraries loaded in this process (``modules``, default ``sys.modules``) that are
    not thread-safe (``thread_safe == "no"``; also ``"partial"`` with ``include_partial``), in table
    order. A library counts as loaded when its top-level module, or any submodule, is there."""
    loaded = sys.modules if modules is None else modules
    wanted = ("no", "partial") if include_partial else ("no",)
    tops = {name.partition(".")[0] for name, module in list(loaded.items()) if module is not None}
    return [info for info in _TABLE if info.thread_safe in wanted and info.name in tops]


def unsafe_module_names() -> Tuple[str, ...]:
    """Import names of the libraries rated ``"no"``: those the thread-safety checker watches."""
    return tuple(info.name for info in _TABLE if info.thread_safe == "no")


def warning_for(info: LibraryInfo) -> str:
    """The start-up warning of a thread-profile worker whose process has imported ``info``."""
    return (f"library '{info.name}' is imported and is not thread-safe: {info.notes} "
            f"Guard every use with self.lock, or use the process profile.")


def markdown_table(entries: Iterable[LibraryInfo] = _TABLE) -> str:
    """The table in Markdown, as ``docs/worker-profiles.md`` shows it (a test keeps them equal)."""
    lines = ["| library | installed as | thread-safe | releases the GIL | notes |",
             "|---|---|---|---|---|"]
    for info in entries:
        lines.append(f"| `{info.name}` | {info.package} | {info.thread_safe} | {info.releases_gil} | "
                     f"{info.notes.replace('|', '&#124;')} |")
    return "\n".join(lines) + "\n"


def text_table(entries: Sequence[LibraryInfo]) -> str:
    """The table for a terminal: aligned columns, notes last."""
    rows = [("library", "thread-safe", "releases GIL", "notes")]
    rows += [(info.name, info.thread_safe, info.releases_gil, info.notes) for info in entries]
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths)) + "  " + row[3] for row in rows
    ) + "\n"


def main(argv: Optional[List[str]] = None) -> int:
    """``python -m snakepit_bridge.compat [--json | --markdown] [NAME...]``; exit 1 for an unknown name."""
    parser = argparse.ArgumentParser(prog="python -m snakepit_bridge.compat",
                                     description="Thread safety and GIL release of common Python libraries.")
    form = parser.add_mutually_exclusive_group()
    form.add_argument("--json", action="store_true", help='one JSON object: {"libraries": [...]}')
    form.add_argument("--markdown", action="store_true", help="the table as in docs/worker-profiles.md")
    parser.add_argument("names", nargs="*", metavar="NAME", help="only these libraries (any listed name)")
    args = parser.parse_args(argv)
    entries = table()
    if args.names:
        entries = []
        for name in args.names:
            info = lookup(name)
            if info is None:
                known = ", ".join(entry.name for entry in _TABLE)
                print(f"library '{name}' is not in the table; listed: {known}", file=sys.stderr)
                return 1
            entries.append(info)
    if args.json:
        print(json.dumps({"libraries": [info.as_dict() for info in entries]}))
    elif args.markdown:
        sys.stdout.write(markdown_table(entries))
    else:
        sys.stdout.write(text_table(entries))
    return 0


if __name__ == "__main__":
    sys.exit(main())

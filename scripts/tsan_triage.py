#!/usr/bin/env python3
"""Sorts ThreadSanitizer reports (the log files of scripts/tsan.sh) by where their accesses are.

    tsan_triage.py LOG_DIR

For each report, each stack of a memory access is reduced to its first frame past the
sanitizer's own interceptors (malloc, free, memcpy, ...). Reports fall into three groups:

- "system": every access is in a shared library of the system (CAF, gRPC, absl, protobuf, the C
  and C++ runtimes).
- "through CAF": every access stack runs through CAF (a frame of libcaf_* or of CAF's headers):
  actor code reached from CAF's scheduler, or a message on its way through CAF. CAF is not
  instrumented, so TSan cannot see the synchronisation of its mailboxes and reports every message
  handed from one thread to another; such a report says nothing either way.
- "ours": an access stack without CAF, in our code (the test binaries, libsnakepit,
  libsnakepit_client, the snakepit binary, or system headers compiled into them): our own
  threads (the process launcher, gRPC callbacks, the HTTP endpoint, the telemetry bus). These
  are the reports that mean something: the script exits 1 when there is one.

Prints counts by group and the distinct reports of the third group.
"""

import collections
import os
import re
import sys

FRAME = re.compile(r"^\s+#(\d+) (.*?) (\S+|<null>) \((\S+?)\+0x[0-9a-f]+\)(?: \(BuildId: [0-9a-f]+\))?\s*$")
ACCESS = re.compile(r"^  (Previous )?(Atomic )?(Read|Write|read|write|atomic read|atomic write)|"
                    r"^  Mutex M\d+ acquired|^  Mutex .* (acquired|created)|^  Thread T\d+ .*created")
INTERCEPTED = re.compile(r"^(__interceptor_|__tsan|operator new|operator delete|malloc|calloc|realloc|"
                         r"free|memcpy|memmove|memset|memcmp|strlen|strcmp|pthread_|__sanitizer|"
                         r"posix_memalign|aligned_alloc)")
SYSTEM = re.compile(r"^(lib(caf_|grpc|gpr|absl|protobuf|upb|address_sorting|re2|cares|ssl|crypto|"
                    r"stdc\+\+|c\.so|c-|m\.so|pthread|gcc_s|z\.so|systemd|fmt)|ld-linux)")


def first_frame(frames):
    for function, path, module in frames:
        if INTERCEPTED.match(function) or "sanitizer" in path or "/tsan/" in path:
            continue
        return function, path, module
    return frames[0] if frames else ("?", "?", "?")


def parse(text):
    """Yields (kind, summary, [first frames of the access stacks])."""
    for block in text.split("==================\n"):
        head = re.search(r"WARNING: ThreadSanitizer: (.*?)( \(pid=\d+\))?\n", block)
        if not head:
            continue
        kind = head.group(1)
        summary = re.search(r"SUMMARY: ThreadSanitizer: (.*)", block)
        stacks, current, in_access = [], None, False
        for line in block.splitlines():
            if ACCESS.match(line) and "created by" not in line:
                current = []
                stacks.append(current)
                in_access = True
            elif line.startswith("  Location is") or line.startswith("  Thread T") or line.startswith("SUMMARY"):
                in_access = False
            else:
                m = FRAME.match(line)
                if m and in_access and current is not None:
                    current.append((m.group(2), m.group(3), os.path.basename(m.group(4))))
        yield kind, summary.group(1) if summary else kind, [s for s in stacks if s]


def through_caf(frames):
    return any(module.startswith("libcaf_") or "/caf/" in path for _, path, module in frames)


def short(function):
    """The function's name without template arguments and parameters."""
    out, depth = [], 0
    for ch in function:
        if ch in "<(":
            depth += 1
        elif ch in ">)":
            depth -= 1
        elif depth == 0:
            out.append(ch)
    return "".join(out).strip()


def main():
    logs = sys.argv[1]
    kinds = collections.Counter()
    system = collections.Counter()
    caf = 0
    ours = collections.Counter()
    examples = {}
    for name in sorted(os.listdir(logs)):
        if not name.startswith("tsan"):
            continue
        with open(os.path.join(logs, name), errors="replace") as f:
            for kind, summary, stacks in parse(f.read()):
                kinds[kind] += 1
                tops = [first_frame(frames) for frames in stacks]
                if tops and all(SYSTEM.match(module) for _, _, module in tops):
                    system[" / ".join(sorted({m for _, _, m in tops}))] += 1
                elif stacks and all(through_caf(frames) for frames in stacks):
                    caf += 1
                else:
                    key = (kind, " | ".join(f"{short(fn)} {os.path.basename(path)} ({mod})"
                                            for fn, path, mod in tops))
                    ours[key] += 1
                    examples.setdefault(key, name)
    total = sum(kinds.values())
    print(f"tsan: {total} reports: " + ", ".join(f"{n} {k}" for k, n in kinds.most_common()))
    print(f"tsan: {sum(system.values())} with every access in a system library:")
    for k, n in system.most_common():
        print(f"  {n:6d}  {k}")
    print(f"tsan: {caf} with every access stack through CAF (not instrumented: says nothing)")
    print(f"tsan: {sum(ours.values())} with an access outside CAF in our code ({len(ours)} distinct):")
    for (kind, where), n in ours.most_common():
        print(f"  {n:6d}  {kind}: {where}  [{examples[(kind, where)]}]")
    return 1 if ours else 0


if __name__ == "__main__":
    sys.exit(main())

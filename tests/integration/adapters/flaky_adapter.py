"""Tools that crash their own worker process, for the crash barrier's tests (retries, poison
table, circuit breaker): ``os._exit`` ends the process at once, as a segfault in a C extension
would."""

import os
import sys

from snakepit_bridge import BaseAdapter, tool


def _die(code: int = 13) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


class FlakyAdapter(BaseAdapter):
    @tool(idempotent=True)
    def crash_once(self, marker: str) -> str:
        """Crashes its worker the first time (creating ``marker``), answers after that."""
        if not os.path.exists(marker):
            with open(marker, "w", encoding="utf-8") as out:
                out.write(str(os.getpid()))
            _die()
        return f"ok from {os.getpid()}"

    @tool
    def crash_once_plain(self, marker: str) -> str:
        """As ``crash_once``, not declared idempotent."""
        return self.crash_once(marker)

    @tool(idempotent=True)
    def crash_always(self, n: int = 0) -> None:
        """Crashes its worker, every time."""
        _die()

    @tool
    def crash_plain(self, n: int = 0) -> None:
        """Crashes its worker, every time; not idempotent."""
        _die()

    @tool(idempotent=True)
    def fails(self, message: str = "boom") -> None:
        """Raises ValueError: a Python exception, never retried."""
        raise ValueError(message)

    @tool(idempotent=True)
    def add(self, a: int, b: int) -> int:
        return a + b

"""The showcase's tools plus two ways a worker goes wrong that a kill does not cover: stuck in C
holding the GIL (health pings go unanswered), and its own gRPC sockets shut under it."""

import ctypes
import os
import socket

from snakepit_bridge import tool
from snakepit_bridge.showcase import ShowcaseAdapter


class ChaosAdapter(ShowcaseAdapter):
    @tool
    def hold_gil(self, seconds: int = 30) -> None:
        """sleep(3) through PyDLL: a C call that keeps the GIL (plain ctypes would release it)."""
        ctypes.PyDLL(None).sleep(seconds)

    @tool
    def close_sockets(self) -> int:
        """Shuts every socket of this process (the worker's gRPC listener and connections)."""
        shut = 0
        for name in os.listdir("/proc/self/fd"):
            try:
                if not os.readlink(f"/proc/self/fd/{name}").startswith("socket:"):
                    continue
                sock = socket.socket(fileno=int(name))
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                    shut += 1
                except OSError:
                    pass
                finally:
                    sock.detach()
            except OSError:
                continue
        return shut

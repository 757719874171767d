"""An adapter with a class-level preload(): what a preloaded pool's fork server runs once,
and tools that show where things ran and that a forked worker can use what a fork breaks
when done wrong (threads, BLAS, a gRPC server and channel of its own).

The environment steers preload(): PRELOAD_FAIL raises, PRELOAD_THREAD leaves a thread running,
PRELOAD_BYTES keeps that many bytes (a numpy array) on the class; SETUP_BYTES loads as much
in setup() instead, in every worker."""

import os
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar, Dict, Optional

from snakepit_bridge import tool
from snakepit_bridge.showcase import ShowcaseAdapter


class PreloadAdapter(ShowcaseAdapter):
    preload_pid: ClassVar[int] = 0
    preload_runs: ClassVar[int] = 0
    weights: ClassVar[Any] = None

    @classmethod
    def preload(cls) -> None:
        cls.preload_pid = os.getpid()
        cls.preload_runs += 1
        if os.environ.get("PRELOAD_FAIL"):
            raise RuntimeError("weights file missing: " + os.environ["PRELOAD_FAIL"])
        if os.environ.get("PRELOAD_THREAD"):
            threading.Thread(target=time.sleep, args=(600,), name="model-prefetch", daemon=True).start()
        size = int(os.environ.get("PRELOAD_BYTES", "0"))
        if size:
            import numpy

            cls.weights = numpy.ones(size // 8, dtype=numpy.float64)

    def setup(self) -> None:
        super().setup()
        self.setup_pid = os.getpid()
        size = int(os.environ.get("SETUP_BYTES", "0"))  # the same load per worker, to compare
        if size:
            import numpy

            type(self).weights = numpy.ones(size // 8, dtype=numpy.float64)

    @tool
    def where(self) -> Dict[str, Any]:
        """Where preload() and setup() ran, and this process's place."""
        return {"pid": os.getpid(), "ppid": os.getppid(), "pgid": os.getpgid(0),
                "preload_pid": type(self).preload_pid, "preload_runs": type(self).preload_runs,
                "setup_pid": self.setup_pid,
                "weights": 0 if type(self).weights is None else int(type(self).weights.nbytes)}

    @tool
    def weights_sum(self) -> float:
        return float(type(self).weights.sum()) if type(self).weights is not None else 0.0

    @tool
    def use_threads(self, n: int = 4) -> int:
        with ThreadPoolExecutor(max_workers=n) as pool:
            return sum(pool.map(lambda i: i * i, range(1000)))

    @tool
    def use_blas(self, n: int = 200) -> float:
        import numpy

        a = numpy.ones((n, n))
        return float((a @ a).sum())

    @tool
    def use_grpc(self) -> str:
        """A gRPC server and a channel of this process's own, on a unix socket."""
        from concurrent import futures

        import grpc

        def echo(request: bytes, context: Any) -> bytes:
            return request

        handler = grpc.method_handlers_generic_handler(
            "test.Echo", {"Call": grpc.unary_unary_rpc_method_handler(echo)})
        with tempfile.TemporaryDirectory() as tmp:
            server = grpc.server(futures.ThreadPoolExecutor(max_workers=2), handlers=[handler])
            server.add_insecure_port(f"unix:{tmp}/echo.sock")
            server.start()
            try:
                with grpc.insecure_channel(f"unix:{tmp}/echo.sock") as channel:
                    call = channel.unary_unary("/test.Echo/Call")
                    return call(b"pong", timeout=10).decode()
            finally:
                server.stop(None)

    @tool
    def env(self, name: str, delay_s: float = 0.0) -> Optional[str]:
        time.sleep(delay_s)
        return os.environ.get(name)

"""Holds N idle clients connected to a snakepit gateway, for bench/gateway_bench.cpp.

    python3 bench/idle_gateway_clients.py ADDRESS N READY_FILE

Opens N channels (each its own connection), makes one no-op call on each, writes
"<connected> <failed>" to READY_FILE, then waits until it is killed.
"""

from __future__ import annotations

import os
import signal
import sys
import time

import grpc

from snakepit_bridge._wire import gateway_pb2 as gw
from snakepit_bridge._wire import gateway_pb2_grpc as gw_grpc


def main() -> None:
    address, count, ready = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    channels = []
    failed = 0
    for _ in range(count):
        # A channel option that differs per channel keeps gRPC from sharing one connection.
        channel = grpc.insecure_channel(address, options=[("grpc.channel_id", len(channels))])
        try:
            gw_grpc.GatewayStub(channel).Call(gw.CallRequest(pool="bench", tool="noop"), timeout=30)
        except grpc.RpcError:
            failed += 1
        channels.append(channel)
    with open(ready + ".tmp", "w") as out:
        out.write(f"{len(channels) - failed} {failed}\n")
    os.rename(ready + ".tmp", ready)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        time.sleep(1)


if __name__ == "__main__":
    main()

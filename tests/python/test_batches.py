"""ExecuteBatches: calls in batches over one stream, served by a real worker over gRPC (results by
seq, errors typed per call, order, cancellation of calls not started, deadlines, sessions and async
tools on their own path, the thread profile, telemetry once per reply, stopping)."""

from __future__ import annotations

import queue
import threading
import time
from typing import Any, Dict, Iterator, List, Optional

import grpc

from snakepit_bridge._wire import bridge_pb2 as pb
from snakepit_bridge.values import decode, encode_map

WAIT_S = 20.0


class Batches:
    """One ExecuteBatches stream, written batch by batch as the host does."""

    def __init__(self, stub) -> None:
        self._requests: "queue.Queue[Optional[pb.BatchRequest]]" = queue.Queue()
        self.call = stub.ExecuteBatches(self._iterate(), timeout=60)
        self.results: Dict[int, pb.BatchResult] = {}
        self.order: List[int] = []
        self.replies = 0
        self.telemetry: List[pb.TelemetryBatch] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _iterate(self) -> Iterator[pb.BatchRequest]:
        while True:
            message = self._requests.get()
            if message is None:
                return
            yield message

    def _read(self) -> None:
        try:
            self._read_replies()
        except grpc.RpcError:
            pass  # the worker went away: the test's waits say what is missing

    def _read_replies(self) -> None:
        for reply in self.call:
            with self._cond:
                self.replies += 1
                if reply.HasField("telemetry"):
                    self.telemetry.append(reply.telemetry)
                for result in reply.results:
                    self.results[result.seq] = result
                    self.order.append(result.seq)
                self._cond.notify_all()

    def send(self, *calls: "tuple[int, str, Dict[str, Any]]", cancel: tuple = (), **fields: Any) -> None:
        batch = pb.BatchRequest(cancel=list(cancel))
        for seq, tool, arguments in calls:
            batch.calls.add(seq=seq, request=pb.ExecuteRequest(request_id=f"r{seq}", tool=tool,
                                                               arguments=encode_map(arguments), **fields))
        self._requests.put(batch)

    def wait(self, *seqs: int) -> List[pb.BatchResult]:
        deadline = time.monotonic() + WAIT_S
        with self._cond:
            while not all(seq in self.results for seq in seqs):
                left = deadline - time.monotonic()
                assert left > 0, f"no result for {[s for s in seqs if s not in self.results]}"
                self._cond.wait(left)
            return [self.results[seq] for seq in seqs]

    def close(self) -> None:
        self._requests.put(None)
        self._reader.join(WAIT_S)


def value(result: pb.BatchResult) -> Any:
    assert result.skipped == pb.NOT_SKIPPED
    assert result.response.WhichOneof("outcome") == "result", result.response.error
    return decode(result.response.result)


def test_a_batch_runs_its_calls_in_order_and_answers_each_by_seq(workers):
    stream = Batches(workers.start().stub())
    stream.send(*[(seq, "add", {"a": seq, "b": 1}) for seq in range(1, 51)])
    results = stream.wait(*range(1, 51))
    assert [value(r) for r in results] == [seq + 1 for seq in range(1, 51)]
    assert stream.order == list(range(1, 51))  # one slot: they ran in the order sent
    assert stream.replies < 51  # the first is the empty hello  # results that were ready together went back together
    assert all(r.response.wall_ns > 0 for r in results)
    stream.close()


def test_errors_are_typed_per_call_and_the_others_still_run(workers):
    stream = Batches(workers.start().stub())
    stream.send((1, "add", {"a": 1, "b": 2}), (2, "no_such_tool", {}), (3, "add", {"a": "x"}),
                (4, "fail", {"message": "boom"}), (5, "echo", {"value": "ok"}))
    one, two, three, four, five = stream.wait(1, 2, 3, 4, 5)
    assert value(one) == 3
    assert two.response.error.kind == pb.UNKNOWN_TOOL
    assert three.response.error.kind == pb.BAD_ARGUMENTS
    assert four.response.error.kind == pb.PYTHON_EXCEPTION and four.response.error.python_type == "ValueError"
    assert value(five) == "ok"
    stream.close()


def test_a_cancelled_call_that_has_not_started_never_runs(workers):
    worker = workers.start()
    stream = Batches(worker.stub())
    stream.send((1, "sleep", {"seconds": 0.5}), (2, "emit_events", {"count": 1, "name": "ran.2"}))
    time.sleep(0.1)  # 1 is running, 2 waits behind it
    stream.send(cancel=(2,))
    one, two = stream.wait(1, 2)
    assert value(one) >= 0.5
    assert two.skipped == pb.CANCELLED and not two.response.HasField("result")
    stream.send((3, "noop", {}))
    stream.wait(3)
    stream.close()


def test_a_call_whose_deadline_passes_while_it_waits_does_not_start(workers):
    stream = Batches(workers.start().stub())
    stream.send((1, "sleep", {"seconds": 0.4}))
    stream.send((2, "noop", {}), timeout_ms=100)
    one, two = stream.wait(1, 2)
    assert value(one) >= 0.4
    assert two.response.error.kind == pb.TIMEOUT
    assert "did not start before its deadline" in two.response.error.message
    stream.close()


def test_async_tools_take_their_own_path_in_order(workers):
    stream = Batches(workers.start().stub())
    stream.send((1, "async_sleep", {"seconds": 0.01}), (2, "add", {"a": 1, "b": 1}))
    assert [round(value(r), 1) for r in stream.wait(1, 2)] == [0.0, 2]
    assert stream.order == [1, 2]
    stream.close()


def test_the_thread_profile_runs_calls_of_a_batch_at_once(workers):
    stream = Batches(workers.start("snakepit_bridge.showcase.ThreadedShowcaseAdapter", concurrency=4,
                                   extra_args=("--profile", "thread")).stub())
    started = time.monotonic()
    stream.send(*[(seq, "sleep", {"seconds": 0.3}) for seq in range(1, 5)])
    stream.wait(1, 2, 3, 4)
    assert time.monotonic() - started < 1.0  # not 4 x 0.3 s
    stream.close()


def test_telemetry_rides_on_the_reply(workers):
    stream = Batches(workers.start().stub())
    stream.send((1, "emit_events", {"count": 2, "name": "batch.event"}))
    stream.wait(1)
    stream.close()
    events = [event.name for reply in stream.telemetry for event in reply.events]
    assert events == ["batch.event", "batch.event"]


def test_calls_sent_while_stopping_are_answered_stopping(workers):
    worker = workers.start()
    stub = worker.stub()
    stream = Batches(stub)
    stream.send((1, "sleep", {"seconds": 0.5}))
    time.sleep(0.1)
    stub.Stop(pb.StopRequest(grace_ms=5000), timeout=5)
    time.sleep(0.1)
    stream.send((2, "noop", {}))
    one, two = stream.wait(1, 2)
    assert value(one) >= 0.5
    assert two.skipped == pb.STOPPING
    stream.close()
    assert worker.wait() == 0


def _map_request(tool: str, items: List[Dict[str, Any]], **fields: Any) -> pb.ExecuteRequest:
    request = pb.ExecuteRequest(request_id="map", tool=tool, **fields)
    for item in items:
        request.items.add().CopyFrom(encode_map(item))
    return request


def _outcomes(response: pb.ExecuteResponse) -> List[Any]:
    return [decode(item.result) if item.WhichOneof("outcome") == "result" else pb.ErrorKind.Name(item.error.kind)
            for item in response.items]


def test_a_map_runs_the_tool_once_per_item_in_order_with_per_item_errors(workers):
    worker = workers.start()
    items = [{"a": 1, "b": 2}, {"a": "x"}, {"a": 3, "b": 4}, {"message": "boom"}]
    stream = Batches(worker.stub())
    batch = pb.BatchRequest()
    batch.calls.add(seq=1, request=_map_request("add", items[:3]))
    batch.calls.add(seq=2, request=_map_request("fail", items[3:]))
    stream._requests.put(batch)
    one, two = stream.wait(1, 2)
    assert _outcomes(one.response) == [3, "BAD_ARGUMENTS", 7]
    assert all(item.wall_ns >= 0 for item in one.response.items)
    assert _outcomes(two.response) == ["PYTHON_EXCEPTION"]
    assert "boom" in two.response.items[0].error.message
    stream.close()
    # The same over unary Execute, and for an async tool.
    stub = worker.stub()
    assert _outcomes(stub.Execute(_map_request("add", items[:3]), timeout=WAIT_S)) == [3, "BAD_ARGUMENTS", 7]
    rounded = [round(x, 1) for x in _outcomes(stub.Execute(_map_request("async_sleep", [{"seconds": 0.01}] * 3),
                                                            timeout=WAIT_S))]
    assert rounded == [0.0, 0.0, 0.0]


def test_items_of_a_map_whose_turn_comes_after_its_deadline_do_not_run(workers):
    stub = workers.start().stub()
    response = stub.Execute(_map_request("sleep", [{"seconds": 0.15}] * 6, timeout_ms=400), timeout=WAIT_S)
    outcomes = _outcomes(response)
    assert len(outcomes) == 6
    ran = [o for o in outcomes if o != "TIMEOUT"]
    assert 2 <= len(ran) <= 3 and outcomes[len(ran):] == ["TIMEOUT"] * (6 - len(ran))


def test_map_items_whose_results_would_pass_the_payload_limit_fail_payload_too_large(workers):
    stub = workers.start(max_message_bytes=4096).stub()
    response = stub.Execute(_map_request("echo", [{"value": "x" * 1500}] * 5), timeout=WAIT_S)
    outcomes = _outcomes(response)
    assert outcomes[:2] == ["x" * 1500] * 2
    assert "PAYLOAD_TOO_LARGE" in outcomes
    assert outcomes[outcomes.index("PAYLOAD_TOO_LARGE"):] == ["PAYLOAD_TOO_LARGE"] * (5 - outcomes.index("PAYLOAD_TOO_LARGE"))
    assert "send fewer items per map" in response.items[-1].error.message


def test_cancels_of_answered_or_unknown_calls_are_ignored(workers):
    worker = workers.start()
    stream = Batches(worker.stub())
    stream.send((1, "noop", {}))
    stream.wait(1)
    stream.send((2, "sleep", {"seconds": 0.2}), cancel=(1, 999))  # 1 is answered, 999 never sent
    stream.send((3, "add", {"a": 1, "b": 2}))
    two, three = stream.wait(2, 3)
    assert value(two) >= 0.2 and value(three) == 3
    assert sorted(stream.results) == [1, 2, 3]  # nothing answered for the stray cancels
    stream.close()


def test_a_stream_keeps_no_cancel_of_a_call_it_does_not_hold():
    import asyncio
    from types import SimpleNamespace

    from snakepit_bridge.batches import BatchStream
    from snakepit_bridge.dispatch import Dispatcher
    from snakepit_bridge.showcase import ShowcaseAdapter

    async def scenario() -> BatchStream:
        owner = SimpleNamespace(dispatcher=Dispatcher(ShowcaseAdapter(), concurrency=1, max_payload_bytes=1 << 20),
                                stopping=False)
        stream = BatchStream(owner, 1)
        first_answered = asyncio.Event()

        async def requests():
            batch = pb.BatchRequest()
            batch.calls.add(seq=1, request=pb.ExecuteRequest(tool="noop"))
            yield batch
            await first_answered.wait()
            yield pb.BatchRequest(cancel=[1, 999])

        replies = stream.serve(requests())
        async for reply in replies:
            if any(r.seq == 1 for r in reply.results):
                first_answered.set()
        return stream

    stream = asyncio.run(scenario())
    assert stream._dropped == set() and stream._open == set()

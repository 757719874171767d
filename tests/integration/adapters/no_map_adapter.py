"""A worker that answers a map request with no outcomes, as a snakepit_bridge from before map
requests does (it ignores the unknown `items` field): the host must report that, not hand
callers fewer outcomes than argument sets."""

from snakepit_bridge import dispatch
from snakepit_bridge._wire import bridge_pb2 as pb
from snakepit_bridge.showcase import ShowcaseAdapter


def _ignores_items(self, definition, request, received, session=None):
    return pb.ExecuteResponse()


dispatch.Dispatcher.run_map = _ignores_items


class NoMapAdapter(ShowcaseAdapter):
    """The showcase's tools, served by a worker that does not know map requests."""

"""A worker as releases before ExecuteBatches served it: the RPC answers UNIMPLEMENTED, as a
server without the method does, so the host must fall back to one unary Execute per call."""

import grpc

from snakepit_bridge import server
from snakepit_bridge.showcase import ShowcaseAdapter


async def _not_served(self, request_iterator, context):
    await context.abort(grpc.StatusCode.UNIMPLEMENTED, "Method not found!")


server.WorkerService.ExecuteBatches = _not_served


class UnaryOnlyAdapter(ShowcaseAdapter):
    """The showcase's tools, served by a worker without the batch stream."""

from snakepit_bridge._wire import bridge_pb2 as _bridge_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CallFrame(_message.Message):
    __slots__ = ["calls"]
    CALLS_FIELD_NUMBER: _ClassVar[int]
    calls: _containers.RepeatedCompositeFieldContainer[MuxCall]
    def __init__(self, calls: _Optional[_Iterable[_Union[MuxCall, _Mapping]]] = ...) -> None: ...

class CallReply(_message.Message):
    __slots__ = ["attempts", "failure", "python_wall_ns", "queued_ns", "request_id", "result", "worker_id"]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    PYTHON_WALL_NS_FIELD_NUMBER: _ClassVar[int]
    QUEUED_NS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    attempts: int
    failure: Failure
    python_wall_ns: int
    queued_ns: int
    request_id: str
    result: _bridge_pb2.Value
    worker_id: str
    def __init__(self, result: _Optional[_Union[_bridge_pb2.Value, _Mapping]] = ..., failure: _Optional[_Union[Failure, _Mapping]] = ..., request_id: _Optional[str] = ..., worker_id: _Optional[str] = ..., python_wall_ns: _Optional[int] = ..., queued_ns: _Optional[int] = ..., attempts: _Optional[int] = ...) -> None: ...

class CallRequest(_message.Message):
    __slots__ = ["arguments", "correlation_id", "idempotent", "metadata", "pool", "session_id", "stream_window", "tool"]
    class MetadataEntry(_message.Message):
        __slots__ = ["key", "value"]
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ARGUMENTS_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENT_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    POOL_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    STREAM_WINDOW_FIELD_NUMBER: _ClassVar[int]
    TOOL_FIELD_NUMBER: _ClassVar[int]
    arguments: _bridge_pb2.MapValue
    correlation_id: str
    idempotent: bool
    metadata: _containers.ScalarMap[str, str]
    pool: str
    session_id: str
    stream_window: int
    tool: str
    def __init__(self, pool: _Optional[str] = ..., tool: _Optional[str] = ..., arguments: _Optional[_Union[_bridge_pb2.MapValue, _Mapping]] = ..., session_id: _Optional[str] = ..., correlation_id: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ..., stream_window: _Optional[int] = ..., idempotent: bool = ...) -> None: ...

class Failure(_message.Message):
    __slots__ = ["kind", "message", "python_type", "traceback"]
    KIND_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    PYTHON_TYPE_FIELD_NUMBER: _ClassVar[int]
    TRACEBACK_FIELD_NUMBER: _ClassVar[int]
    kind: str
    message: str
    python_type: str
    traceback: str
    def __init__(self, kind: _Optional[str] = ..., message: _Optional[str] = ..., python_type: _Optional[str] = ..., traceback: _Optional[str] = ...) -> None: ...

class ItemOutcome(_message.Message):
    __slots__ = ["failure", "result"]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    failure: Failure
    result: _bridge_pb2.Value
    def __init__(self, result: _Optional[_Union[_bridge_pb2.Value, _Mapping]] = ..., failure: _Optional[_Union[Failure, _Mapping]] = ...) -> None: ...

class ListPoolsReply(_message.Message):
    __slots__ = ["pools", "tree"]
    POOLS_FIELD_NUMBER: _ClassVar[int]
    TREE_FIELD_NUMBER: _ClassVar[int]
    pools: _containers.RepeatedCompositeFieldContainer[PoolInfo]
    tree: str
    def __init__(self, tree: _Optional[str] = ..., pools: _Optional[_Iterable[_Union[PoolInfo, _Mapping]]] = ...) -> None: ...

class ListPoolsRequest(_message.Message):
    __slots__ = []
    def __init__(self) -> None: ...

class MapReply(_message.Message):
    __slots__ = ["items"]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[ItemOutcome]
    def __init__(self, items: _Optional[_Iterable[_Union[ItemOutcome, _Mapping]]] = ...) -> None: ...

class MapRequest(_message.Message):
    __slots__ = ["chunk", "correlation_id", "items", "pool", "tool"]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    POOL_FIELD_NUMBER: _ClassVar[int]
    TOOL_FIELD_NUMBER: _ClassVar[int]
    chunk: int
    correlation_id: str
    items: _containers.RepeatedCompositeFieldContainer[_bridge_pb2.MapValue]
    pool: str
    tool: str
    def __init__(self, pool: _Optional[str] = ..., tool: _Optional[str] = ..., items: _Optional[_Iterable[_Union[_bridge_pb2.MapValue, _Mapping]]] = ..., chunk: _Optional[int] = ..., correlation_id: _Optional[str] = ...) -> None: ...

class MuxCall(_message.Message):
    __slots__ = ["call", "id", "timeout_us"]
    CALL_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_US_FIELD_NUMBER: _ClassVar[int]
    call: CallRequest
    id: int
    timeout_us: int
    def __init__(self, id: _Optional[int] = ..., call: _Optional[_Union[CallRequest, _Mapping]] = ..., timeout_us: _Optional[int] = ...) -> None: ...

class MuxReply(_message.Message):
    __slots__ = ["id", "reply"]
    ID_FIELD_NUMBER: _ClassVar[int]
    REPLY_FIELD_NUMBER: _ClassVar[int]
    id: int
    reply: CallReply
    def __init__(self, id: _Optional[int] = ..., reply: _Optional[_Union[CallReply, _Mapping]] = ...) -> None: ...

class PoolInfo(_message.Message):
    __slots__ = ["adapter", "busy", "name", "profile", "queued", "ready", "size", "state", "tools"]
    ADAPTER_FIELD_NUMBER: _ClassVar[int]
    BUSY_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    QUEUED_FIELD_NUMBER: _ClassVar[int]
    READY_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    TOOLS_FIELD_NUMBER: _ClassVar[int]
    adapter: str
    busy: int
    name: str
    profile: str
    queued: int
    ready: int
    size: int
    state: str
    tools: _containers.RepeatedCompositeFieldContainer[_bridge_pb2.ToolSpec]
    def __init__(self, name: _Optional[str] = ..., state: _Optional[str] = ..., size: _Optional[int] = ..., ready: _Optional[int] = ..., busy: _Optional[int] = ..., queued: _Optional[int] = ..., profile: _Optional[str] = ..., adapter: _Optional[str] = ..., tools: _Optional[_Iterable[_Union[_bridge_pb2.ToolSpec, _Mapping]]] = ...) -> None: ...

class ReplyFrame(_message.Message):
    __slots__ = ["replies"]
    REPLIES_FIELD_NUMBER: _ClassVar[int]
    replies: _containers.RepeatedCompositeFieldContainer[MuxReply]
    def __init__(self, replies: _Optional[_Iterable[_Union[MuxReply, _Mapping]]] = ...) -> None: ...

class SessionReply(_message.Message):
    __slots__ = ["closed", "failure", "session_id"]
    CLOSED_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    closed: bool
    failure: Failure
    session_id: str
    def __init__(self, session_id: _Optional[str] = ..., closed: bool = ..., failure: _Optional[_Union[Failure, _Mapping]] = ...) -> None: ...

class SessionRequest(_message.Message):
    __slots__ = ["pool", "session_id"]
    POOL_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    pool: str
    session_id: str
    def __init__(self, pool: _Optional[str] = ..., session_id: _Optional[str] = ...) -> None: ...

class StatusReply(_message.Message):
    __slots__ = ["failure", "json"]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    JSON_FIELD_NUMBER: _ClassVar[int]
    failure: Failure
    json: str
    def __init__(self, json: _Optional[str] = ..., failure: _Optional[_Union[Failure, _Mapping]] = ...) -> None: ...

class StatusRequest(_message.Message):
    __slots__ = ["pool"]
    POOL_FIELD_NUMBER: _ClassVar[int]
    pool: str
    def __init__(self, pool: _Optional[str] = ...) -> None: ...

class StreamEnd(_message.Message):
    __slots__ = ["items", "python_wall_ns", "worker_id"]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    PYTHON_WALL_NS_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    items: int
    python_wall_ns: int
    worker_id: str
    def __init__(self, items: _Optional[int] = ..., python_wall_ns: _Optional[int] = ..., worker_id: _Optional[str] = ...) -> None: ...

class StreamReply(_message.Message):
    __slots__ = ["end", "failure", "item"]
    END_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    ITEM_FIELD_NUMBER: _ClassVar[int]
    end: StreamEnd
    failure: Failure
    item: _bridge_pb2.Value
    def __init__(self, item: _Optional[_Union[_bridge_pb2.Value, _Mapping]] = ..., end: _Optional[_Union[StreamEnd, _Mapping]] = ..., failure: _Optional[_Union[Failure, _Mapping]] = ...) -> None: ...

from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

BAD_ARGUMENTS: ErrorKind
CANCELLED: Skipped
DESCRIPTOR: _descriptor.FileDescriptor
DTYPE_BOOL: DType
DTYPE_COMPLEX128: DType
DTYPE_COMPLEX64: DType
DTYPE_FLOAT16: DType
DTYPE_FLOAT32: DType
DTYPE_FLOAT64: DType
DTYPE_INT16: DType
DTYPE_INT32: DType
DTYPE_INT64: DType
DTYPE_INT8: DType
DTYPE_UINT16: DType
DTYPE_UINT32: DType
DTYPE_UINT64: DType
DTYPE_UINT8: DType
DTYPE_UNSPECIFIED: DType
ENCODE_FAILED: ErrorKind
ERROR_KIND_UNSPECIFIED: ErrorKind
INTERNAL: ErrorKind
NOT_SKIPPED: Skipped
NULL_VALUE: NullValue
PAYLOAD_TOO_LARGE: ErrorKind
PYTHON_EXCEPTION: ErrorKind
STOPPING: Skipped
TIMEOUT: ErrorKind
UNKNOWN_TOOL: ErrorKind

class BatchCall(_message.Message):
    __slots__ = ["request", "seq"]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    request: ExecuteRequest
    seq: int
    def __init__(self, seq: _Optional[int] = ..., request: _Optional[_Union[ExecuteRequest, _Mapping]] = ...) -> None: ...

class BatchReply(_message.Message):
    __slots__ = ["results", "telemetry"]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    TELEMETRY_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[BatchResult]
    telemetry: TelemetryBatch
    def __init__(self, results: _Optional[_Iterable[_Union[BatchResult, _Mapping]]] = ..., telemetry: _Optional[_Union[TelemetryBatch, _Mapping]] = ...) -> None: ...

class BatchRequest(_message.Message):
    __slots__ = ["calls", "cancel"]
    CALLS_FIELD_NUMBER: _ClassVar[int]
    CANCEL_FIELD_NUMBER: _ClassVar[int]
    calls: _containers.RepeatedCompositeFieldContainer[BatchCall]
    cancel: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, calls: _Optional[_Iterable[_Union[BatchCall, _Mapping]]] = ..., cancel: _Optional[_Iterable[int]] = ...) -> None: ...

class BatchResult(_message.Message):
    __slots__ = ["response", "seq", "skipped"]
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FIELD_NUMBER: _ClassVar[int]
    response: ExecuteResponse
    seq: int
    skipped: Skipped
    def __init__(self, seq: _Optional[int] = ..., response: _Optional[_Union[ExecuteResponse, _Mapping]] = ..., skipped: _Optional[_Union[Skipped, str]] = ...) -> None: ...

class CloseSessionRequest(_message.Message):
    __slots__ = ["reason", "session_id"]
    REASON_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    reason: str
    session_id: str
    def __init__(self, session_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class CloseSessionResponse(_message.Message):
    __slots__ = ["known"]
    KNOWN_FIELD_NUMBER: _ClassVar[int]
    known: bool
    def __init__(self, known: bool = ...) -> None: ...

class Error(_message.Message):
    __slots__ = ["kind", "message", "python_type", "traceback"]
    KIND_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    PYTHON_TYPE_FIELD_NUMBER: _ClassVar[int]
    TRACEBACK_FIELD_NUMBER: _ClassVar[int]
    kind: ErrorKind
    message: str
    python_type: str
    traceback: str
    def __init__(self, kind: _Optional[_Union[ErrorKind, str]] = ..., message: _Optional[str] = ..., python_type: _Optional[str] = ..., traceback: _Optional[str] = ...) -> None: ...

class ExecuteRequest(_message.Message):
    __slots__ = ["arguments", "correlation_id", "items", "metadata", "request_id", "session_id", "session_moved", "stream_credit", "timeout_ms", "tool"]
    class MetadataEntry(_message.Message):
        __slots__ = ["key", "value"]
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ARGUMENTS_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_MOVED_FIELD_NUMBER: _ClassVar[int]
    STREAM_CREDIT_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    TOOL_FIELD_NUMBER: _ClassVar[int]
    arguments: MapValue
    correlation_id: str
    items: _containers.RepeatedCompositeFieldContainer[MapValue]
    metadata: _containers.ScalarMap[str, str]
    request_id: str
    session_id: str
    session_moved: bool
    stream_credit: int
    timeout_ms: int
    tool: str
    def __init__(self, request_id: _Optional[str] = ..., tool: _Optional[str] = ..., arguments: _Optional[_Union[MapValue, _Mapping]] = ..., timeout_ms: _Optional[int] = ..., correlation_id: _Optional[str] = ..., session_id: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ..., session_moved: bool = ..., stream_credit: _Optional[int] = ..., items: _Optional[_Iterable[_Union[MapValue, _Mapping]]] = ...) -> None: ...

class ExecuteResponse(_message.Message):
    __slots__ = ["cpu_ns", "error", "items", "result", "telemetry", "wall_ns"]
    CPU_NS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    TELEMETRY_FIELD_NUMBER: _ClassVar[int]
    WALL_NS_FIELD_NUMBER: _ClassVar[int]
    cpu_ns: int
    error: Error
    items: _containers.RepeatedCompositeFieldContainer[ItemResult]
    result: Value
    telemetry: TelemetryBatch
    wall_ns: int
    def __init__(self, result: _Optional[_Union[Value, _Mapping]] = ..., error: _Optional[_Union[Error, _Mapping]] = ..., wall_ns: _Optional[int] = ..., cpu_ns: _Optional[int] = ..., telemetry: _Optional[_Union[TelemetryBatch, _Mapping]] = ..., items: _Optional[_Iterable[_Union[ItemResult, _Mapping]]] = ...) -> None: ...

class HostToolRequest(_message.Message):
    __slots__ = ["arguments", "request_id", "session_id", "timeout_ms", "tool", "worker_id"]
    ARGUMENTS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    TOOL_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    arguments: MapValue
    request_id: str
    session_id: str
    timeout_ms: int
    tool: str
    worker_id: str
    def __init__(self, tool: _Optional[str] = ..., arguments: _Optional[_Union[MapValue, _Mapping]] = ..., timeout_ms: _Optional[int] = ..., worker_id: _Optional[str] = ..., request_id: _Optional[str] = ..., session_id: _Optional[str] = ...) -> None: ...

class HostToolResponse(_message.Message):
    __slots__ = ["error", "result"]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    error: Error
    result: Value
    def __init__(self, result: _Optional[_Union[Value, _Mapping]] = ..., error: _Optional[_Union[Error, _Mapping]] = ...) -> None: ...

class ItemResult(_message.Message):
    __slots__ = ["error", "result", "wall_ns"]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    WALL_NS_FIELD_NUMBER: _ClassVar[int]
    error: Error
    result: Value
    wall_ns: int
    def __init__(self, result: _Optional[_Union[Value, _Mapping]] = ..., error: _Optional[_Union[Error, _Mapping]] = ..., wall_ns: _Optional[int] = ...) -> None: ...

class ListHostToolsRequest(_message.Message):
    __slots__ = ["worker_id"]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    def __init__(self, worker_id: _Optional[str] = ...) -> None: ...

class ListHostToolsResponse(_message.Message):
    __slots__ = ["tools"]
    TOOLS_FIELD_NUMBER: _ClassVar[int]
    tools: _containers.RepeatedCompositeFieldContainer[ToolSpec]
    def __init__(self, tools: _Optional[_Iterable[_Union[ToolSpec, _Mapping]]] = ...) -> None: ...

class ListToolsRequest(_message.Message):
    __slots__ = []
    def __init__(self) -> None: ...

class ListToolsResponse(_message.Message):
    __slots__ = ["adapter", "tools"]
    ADAPTER_FIELD_NUMBER: _ClassVar[int]
    TOOLS_FIELD_NUMBER: _ClassVar[int]
    adapter: str
    tools: _containers.RepeatedCompositeFieldContainer[ToolSpec]
    def __init__(self, adapter: _Optional[str] = ..., tools: _Optional[_Iterable[_Union[ToolSpec, _Mapping]]] = ...) -> None: ...

class ListValue(_message.Message):
    __slots__ = ["items"]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[Value]
    def __init__(self, items: _Optional[_Iterable[_Union[Value, _Mapping]]] = ...) -> None: ...

class MapEntry(_message.Message):
    __slots__ = ["key", "value"]
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    key: str
    value: Value
    def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Value, _Mapping]] = ...) -> None: ...

class MapValue(_message.Message):
    __slots__ = ["entries"]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[MapEntry]
    def __init__(self, entries: _Optional[_Iterable[_Union[MapEntry, _Mapping]]] = ...) -> None: ...

class NdArray(_message.Message):
    __slots__ = ["data", "dtype", "segment", "shape"]
    DATA_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    dtype: DType
    segment: SharedSegment
    shape: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, dtype: _Optional[_Union[DType, str]] = ..., shape: _Optional[_Iterable[int]] = ..., data: _Optional[bytes] = ..., segment: _Optional[_Union[SharedSegment, _Mapping]] = ...) -> None: ...

class ParameterSpec(_message.Message):
    __slots__ = ["default_value", "description", "name", "required", "type"]
    DEFAULT_VALUE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    default_value: Value
    description: str
    name: str
    required: bool
    type: str
    def __init__(self, name: _Optional[str] = ..., type: _Optional[str] = ..., required: bool = ..., default_value: _Optional[_Union[Value, _Mapping]] = ..., description: _Optional[str] = ...) -> None: ...

class PingRequest(_message.Message):
    __slots__ = ["sent_unix_ns"]
    SENT_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    sent_unix_ns: int
    def __init__(self, sent_unix_ns: _Optional[int] = ...) -> None: ...

class PingResponse(_message.Message):
    __slots__ = ["gil_enabled", "implementation", "in_flight", "pid", "python_version", "rss_bytes", "served", "telemetry"]
    GIL_ENABLED_FIELD_NUMBER: _ClassVar[int]
    IMPLEMENTATION_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    PYTHON_VERSION_FIELD_NUMBER: _ClassVar[int]
    RSS_BYTES_FIELD_NUMBER: _ClassVar[int]
    SERVED_FIELD_NUMBER: _ClassVar[int]
    TELEMETRY_FIELD_NUMBER: _ClassVar[int]
    gil_enabled: bool
    implementation: str
    in_flight: int
    pid: int
    python_version: str
    rss_bytes: int
    served: int
    telemetry: TelemetryBatch
    def __init__(self, pid: _Optional[int] = ..., in_flight: _Optional[int] = ..., served: _Optional[int] = ..., python_version: _Optional[str] = ..., implementation: _Optional[str] = ..., gil_enabled: bool = ..., rss_bytes: _Optional[int] = ..., telemetry: _Optional[_Union[TelemetryBatch, _Mapping]] = ...) -> None: ...

class SharedSegment(_message.Message):
    __slots__ = ["name", "size"]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    name: str
    size: int
    def __init__(self, name: _Optional[str] = ..., size: _Optional[int] = ...) -> None: ...

class StopRequest(_message.Message):
    __slots__ = ["grace_ms"]
    GRACE_MS_FIELD_NUMBER: _ClassVar[int]
    grace_ms: int
    def __init__(self, grace_ms: _Optional[int] = ...) -> None: ...

class StopResponse(_message.Message):
    __slots__ = []
    def __init__(self) -> None: ...

class StreamEnd(_message.Message):
    __slots__ = ["cpu_ns", "items", "wall_ns"]
    CPU_NS_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    WALL_NS_FIELD_NUMBER: _ClassVar[int]
    cpu_ns: int
    items: int
    wall_ns: int
    def __init__(self, items: _Optional[int] = ..., wall_ns: _Optional[int] = ..., cpu_ns: _Optional[int] = ...) -> None: ...

class StreamReply(_message.Message):
    __slots__ = ["end", "error", "item", "telemetry"]
    END_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ITEM_FIELD_NUMBER: _ClassVar[int]
    TELEMETRY_FIELD_NUMBER: _ClassVar[int]
    end: StreamEnd
    error: Error
    item: Value
    telemetry: TelemetryBatch
    def __init__(self, item: _Optional[_Union[Value, _Mapping]] = ..., end: _Optional[_Union[StreamEnd, _Mapping]] = ..., error: _Optional[_Union[Error, _Mapping]] = ..., telemetry: _Optional[_Union[TelemetryBatch, _Mapping]] = ...) -> None: ...

class StreamRequest(_message.Message):
    __slots__ = ["cancel", "credit", "start"]
    CANCEL_FIELD_NUMBER: _ClassVar[int]
    CREDIT_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    cancel: bool
    credit: int
    start: ExecuteRequest
    def __init__(self, start: _Optional[_Union[ExecuteRequest, _Mapping]] = ..., credit: _Optional[int] = ..., cancel: bool = ...) -> None: ...

class TelemetryBatch(_message.Message):
    __slots__ = ["dropped_total", "events"]
    DROPPED_TOTAL_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    dropped_total: int
    events: _containers.RepeatedCompositeFieldContainer[TelemetryEvent]
    def __init__(self, events: _Optional[_Iterable[_Union[TelemetryEvent, _Mapping]]] = ..., dropped_total: _Optional[int] = ...) -> None: ...

class TelemetryEvent(_message.Message):
    __slots__ = ["measurements", "metadata", "name", "unix_ns"]
    class MeasurementsEntry(_message.Message):
        __slots__ = ["key", "value"]
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class MetadataEntry(_message.Message):
        __slots__ = ["key", "value"]
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    MEASUREMENTS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    measurements: _containers.ScalarMap[str, float]
    metadata: _containers.ScalarMap[str, str]
    name: str
    unix_ns: int
    def __init__(self, name: _Optional[str] = ..., measurements: _Optional[_Mapping[str, float]] = ..., metadata: _Optional[_Mapping[str, str]] = ..., unix_ns: _Optional[int] = ...) -> None: ...

class ToolSpec(_message.Message):
    __slots__ = ["description", "idempotent", "name", "parameters", "returns", "streaming"]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    RETURNS_FIELD_NUMBER: _ClassVar[int]
    STREAMING_FIELD_NUMBER: _ClassVar[int]
    description: str
    idempotent: bool
    name: str
    parameters: _containers.RepeatedCompositeFieldContainer[ParameterSpec]
    returns: str
    streaming: bool
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., parameters: _Optional[_Iterable[_Union[ParameterSpec, _Mapping]]] = ..., returns: _Optional[str] = ..., streaming: bool = ..., idempotent: bool = ...) -> None: ...

class Value(_message.Message):
    __slots__ = ["bool_value", "bytes_value", "double_value", "int_value", "list_value", "map_value", "ndarray_value", "null_value", "shared_bytes", "string_value"]
    BOOL_VALUE_FIELD_NUMBER: _ClassVar[int]
    BYTES_VALUE_FIELD_NUMBER: _ClassVar[int]
    DOUBLE_VALUE_FIELD_NUMBER: _ClassVar[int]
    INT_VALUE_FIELD_NUMBER: _ClassVar[int]
    LIST_VALUE_FIELD_NUMBER: _ClassVar[int]
    MAP_VALUE_FIELD_NUMBER: _ClassVar[int]
    NDARRAY_VALUE_FIELD_NUMBER: _ClassVar[int]
    NULL_VALUE_FIELD_NUMBER: _ClassVar[int]
    SHARED_BYTES_FIELD_NUMBER: _ClassVar[int]
    STRING_VALUE_FIELD_NUMBER: _ClassVar[int]
    bool_value: bool
    bytes_value: bytes
    double_value: float
    int_value: int
    list_value: ListValue
    map_value: MapValue
    ndarray_value: NdArray
    null_value: NullValue
    shared_bytes: SharedSegment
    string_value: str
    def __init__(self, null_value: _Optional[_Union[NullValue, str]] = ..., bool_value: bool = ..., int_value: _Optional[int] = ..., double_value: _Optional[float] = ..., string_value: _Optional[str] = ..., bytes_value: _Optional[bytes] = ..., list_value: _Optional[_Union[ListValue, _Mapping]] = ..., map_value: _Optional[_Union[MapValue, _Mapping]] = ..., ndarray_value: _Optional[_Union[NdArray, _Mapping]] = ..., shared_bytes: _Optional[_Union[SharedSegment, _Mapping]] = ...) -> None: ...

class NullValue(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []

class DType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []

class ErrorKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []

class Skipped(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []

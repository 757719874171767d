"""The ``@tool`` decorator, and the specs of tools and parameters built from their signatures."""

from __future__ import annotations

import collections.abc
import inspect
import re
import typing
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Tuple, TypeVar, overload

from snakepit_bridge import typespec, values
from snakepit_bridge._wire import bridge_pb2 as pb
from snakepit_bridge.context import CallContext
from snakepit_bridge.errors import BridgeError
from snakepit_bridge.typespec import TypeSpec

F = TypeVar("F")

_MARK = "__snakepit_tool__"


@dataclass(frozen=True)
class ToolOptions:
    """What ``@tool(...)`` was given; None means "derive it"."""

    name: Optional[str] = None
    description: Optional[str] = None
    idempotent: bool = False


@dataclass(frozen=True)
class ParameterSpec:
    """One parameter of a tool, as reported by ``describe()`` and ``ListTools``.

    ``default`` is meaningful only when ``has_default`` is true: the parameter has a default
    that the wire can carry. A parameter with a default that cannot be encoded is still not
    required; its default is just not reported.
    """

    name: str
    type: str
    required: bool
    default: Any = None
    has_default: bool = False
    description: str = ""


@dataclass(frozen=True)
class ToolSpec:
    """One tool, as reported by ``describe()`` and ``ListTools``.

    ``streaming`` is true for a generator tool (``def`` or ``async def`` with ``yield``): it is
    called with ``ExecuteStream`` and ``returns`` is the type of each item. ``idempotent`` is
    true when ``@tool(idempotent=True)`` says running it twice is safe: the host retries a call
    whose worker crashed under it.
    """

    name: str
    description: str
    parameters: Tuple[ParameterSpec, ...]
    returns: str
    is_async: bool = False
    streaming: bool = False
    idempotent: bool = False


def wire_spec(spec: ToolSpec) -> pb.ToolSpec:
    """The wire ``ToolSpec`` of a tool (``ListTools``, and ``ListHostTools`` of the test host)."""
    message = pb.ToolSpec(name=spec.name, description=spec.description, returns=spec.returns,
                          streaming=spec.streaming, idempotent=spec.idempotent)
    for parameter in spec.parameters:
        entry = message.parameters.add(name=parameter.name, type=parameter.type, required=parameter.required,
                                       description=parameter.description)
        if parameter.has_default:
            entry.default_value.CopyFrom(values.encode(parameter.default, depth=values.DEFAULT_VALUE_DEPTH))
    return message


@dataclass(frozen=True)
class ToolDef:
    """Everything the dispatcher needs to call one tool (internal)."""

    spec: ToolSpec
    attribute: str
    types: Dict[str, TypeSpec]
    context_parameter: Optional[str]
    extra: Optional[TypeSpec]  # the type of **kwargs values, when the tool takes **kwargs
    is_async: bool  # served on the event loop: an ``async def`` function or async generator
    streaming: bool = False  # a generator function (sync or async): its items are streamed


@overload
def tool(function: F) -> F: ...


@overload
def tool(
    *, name: Optional[str] = None, description: Optional[str] = None, idempotent: bool = False
) -> Callable[[F], F]: ...


def tool(
    function: Any = None,
    *,
    name: Optional[str] = None,
    description: Optional[str] = None,
    idempotent: bool = False,
) -> Any:
    """Marks a method of a :class:`BaseAdapter` subclass as a tool.

    Use it bare (``@tool``) or with options (``@tool(name="sum", description="...")``).
    The name defaults to the method's name, the description to the first paragraph of its
    docstring. ``async def`` methods are served on the event loop, plain ones in the worker's
    thread pool.

    A generator method (sync or ``async def``, with ``yield``) is a streaming tool: its items go
    to the caller one by one (``ExecuteStream``), and its return annotation names the item type
    (``Iterator[int]``, ``Generator[int, None, None]``, ``AsyncIterator[dict]``...).

    ``idempotent=True`` declares that running the tool twice with the same arguments is safe:
    when its worker process crashes under a call, the host retries the call on another worker
    (the pool's ``retry_max_attempts``, with back-off, within the call's deadline). Leave it off
    for tools with effects that must not happen twice.
    """
    if isinstance(function, str):
        raise TypeError("use @tool(name=...) to give a tool a name")
    if name is not None and (not isinstance(name, str) or not name):
        raise TypeError("a tool name must be a non-empty str")
    if not isinstance(idempotent, bool):
        raise TypeError("idempotent must be True or False")

    def mark(target: Any) -> Any:
        inner = target.__func__ if isinstance(target, (staticmethod, classmethod)) else target
        if not inspect.isfunction(inner):
            raise TypeError(f"@tool decorates functions, not {type(target).__name__}")
        setattr(inner, _MARK, ToolOptions(name, description, idempotent))
        return target

    return mark if function is None else mark(function)


def options_of(member: Any) -> Optional[ToolOptions]:
    """The ``@tool`` options of a class attribute, or None when it is not a tool."""
    inner = member.__func__ if isinstance(member, (staticmethod, classmethod)) else member
    options = getattr(inner, _MARK, None)
    return options if isinstance(options, ToolOptions) else None


def build(attribute: str, member: Any, options: ToolOptions, owner: str) -> ToolDef:
    """Builds a tool from a class attribute (a function, staticmethod or classmethod).

    Raises:
        TypeError: the signature cannot be served, with ``owner`` and the tool named.
    """
    function = member.__func__ if isinstance(member, (staticmethod, classmethod)) else member
    name = options.name or attribute
    where = f"tool '{name}' ({owner}.{attribute})"
    streaming = inspect.isasyncgenfunction(function) or inspect.isgeneratorfunction(function)
    try:
        hints = typing.get_type_hints(function)
    except Exception as exc:  # NameError for a name that does not resolve, and friends
        raise TypeError(f"{where}: cannot resolve type hints: {type(exc).__name__}: {exc}") from None
    parameters = list(inspect.signature(function).parameters.values())
    if not isinstance(member, staticmethod):
        parameters = parameters[1:]  # self or cls
    doc = inspect.getdoc(function) or ""
    arg_docs = _argument_docs(doc)
    specs = []
    types: Dict[str, TypeSpec] = {}
    context_parameter = None
    extra = None
    for parameter in parameters:
        hint = hints.get(parameter.name, inspect.Parameter.empty)
        if hint is CallContext or hint == Optional[CallContext]:
            if context_parameter is not None:
                raise TypeError(f"{where}: more than one CallContext parameter")
            context_parameter = parameter.name
            continue
        try:
            spec = typespec.from_annotation(hint)
        except TypeError as exc:
            raise TypeError(f"{where}: parameter '{parameter.name}': {exc}") from None
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            extra = spec
            continue
        if parameter.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.VAR_POSITIONAL):
            raise TypeError(f"{where}: parameter '{parameter.name}' cannot be passed by name")
        types[parameter.name] = spec
        specs.append(_parameter_spec(parameter, spec, arg_docs.get(parameter.name, "")))
    returned = hints.get("return", inspect.Parameter.empty)
    if streaming:
        try:
            returned = item_annotation(returned)
        except TypeError as exc:
            raise TypeError(f"{where}: {exc}") from None
    returns = typespec.from_annotation(returned, for_result=True)
    is_async = inspect.iscoroutinefunction(function) or inspect.isasyncgenfunction(function)
    description = options.description if options.description is not None else _first_paragraph(doc)
    return ToolDef(
        spec=ToolSpec(name, description, tuple(specs), returns.name, is_async, streaming,
                      options.idempotent),
        attribute=attribute,
        types=types,
        context_parameter=context_parameter,
        extra=extra,
        is_async=is_async,
        streaming=streaming,
    )


#: The annotations of a generator whose first argument is the item type.
_ITERATORS = (
    collections.abc.Iterator, collections.abc.Iterable, collections.abc.Generator,
    collections.abc.AsyncIterator, collections.abc.AsyncIterable, collections.abc.AsyncGenerator,
)


def item_annotation(annotation: Any) -> Any:
    """The item type of a generator tool's return annotation: ``T`` of ``Iterator[T]``,
    ``Iterable[T]``, ``Generator[T, S, R]`` and their async forms (``typing`` or
    ``collections.abc`` spelling); ``Any`` for a bare one or no annotation.

    Raises:
        TypeError: the annotation is not one of those (e.g. ``-> int`` on a generator).
    """
    if annotation is inspect.Parameter.empty:
        return Any
    origin = typing.get_origin(annotation) or annotation
    if origin in _ITERATORS:
        args = typing.get_args(annotation)
        return args[0] if args else Any
    raise TypeError(f"a generator tool is annotated with its items' type, e.g. '-> Iterator[int]' or "
                    f"'-> AsyncIterator[dict]', not {annotation!r}")


def _parameter_spec(parameter: inspect.Parameter, spec: TypeSpec, description: str) -> ParameterSpec:
    if parameter.default is inspect.Parameter.empty:
        return ParameterSpec(parameter.name, spec.name, True, description=description)
    try:
        values.encode(parameter.default, depth=values.DEFAULT_VALUE_DEPTH)
        encodable = True
    except BridgeError:
        encodable = False
    return ParameterSpec(
        parameter.name,
        spec.name,
        False,
        default=parameter.default if encodable else None,
        has_default=encodable,
        description=description,
    )


def _first_paragraph(doc: str) -> str:
    paragraph = doc.strip().split("\n\n", 1)[0]
    return " ".join(line.strip() for line in paragraph.splitlines()).strip()


_SECTION = re.compile(r"^(Args|Arguments|Parameters|Params):\s*$")
_ENTRY = re.compile(r"^(\*{0,2}\w+)\s*(\([^)]*\))?\s*:\s*(.*)$")


def _argument_docs(doc: str) -> Dict[str, str]:
    """Parameter descriptions from a Google-style ``Args:`` section of a docstring."""
    out: Dict[str, str] = {}
    lines = doc.splitlines()
    start = next((i for i, line in enumerate(lines) if _SECTION.match(line.strip()) and not line[:1].isspace()), None)
    if start is None:
        return out
    indent: Optional[int] = None
    current: Optional[str] = None
    for line in lines[start + 1 :]:
        if not line.strip():
            continue
        depth = len(line) - len(line.lstrip())
        if depth == 0:
            break
        if indent is None:
            indent = depth
        entry = _ENTRY.match(line.strip()) if depth == indent else None
        if entry:
            current = entry.group(1).lstrip("*")
            out[current] = entry.group(3).strip()
        elif current is not None and depth > indent:
            out[current] = f"{out[current]} {line.strip()}".strip()
    return out


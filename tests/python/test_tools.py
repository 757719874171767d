"""@tool, tool discovery and the parameter schema built from signatures and type hints."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Union

import pytest

from snakepit_bridge import BaseAdapter, CallContext, tool


def specs(adapter: type) -> Dict[str, Any]:
    return {spec.name: spec for spec in adapter.describe()}


def params(adapter: type, name: str) -> Dict[str, tuple]:
    return {p.name: (p.type, p.required) for p in specs(adapter)[name].parameters}


class Forms(BaseAdapter):
    @tool
    def bare(self) -> None:
        """First paragraph
        continues here.

        Second paragraph is not part of it.
        """

    @tool()
    def called(self) -> int:
        return 1

    @tool(name="renamed", description="Given explicitly.")
    def original(self) -> str:
        """Ignored docstring."""
        return ""

    @tool
    async def later(self) -> float:
        return 1.0

    @tool
    @staticmethod
    def static(x: int) -> int:
        return x

    def not_a_tool(self) -> None:
        pass


def test_decorator_forms_names_and_descriptions():
    found = specs(Forms)
    assert list(found) == ["bare", "called", "later", "renamed", "static"]  # sorted by name
    assert found["bare"].description == "First paragraph continues here."
    assert found["called"].description == ""
    assert found["renamed"].description == "Given explicitly."
    assert found["bare"].returns == "none" and found["called"].returns == "int"
    assert found["later"].is_async and not found["bare"].is_async
    assert params(Forms, "static") == {"x": ("int", True)}


class Typed(BaseAdapter):
    @tool
    def everything(
        self,
        i: int,
        f: float,
        s: str,
        b: bool,
        raw: bytes,
        anything: Any,
        untyped,
        items: list,
        ints: List[int],
        ints_new: list[int],
        mapping: dict,
        floats: Dict[str, float],
        nested: dict[str, list[Optional[int]]],
        maybe: Optional[int],
        maybe_new: int | None,
        either: Union[int, str],
        either_or_none: int | str | None,
        ctx: CallContext,
        flag: bool = False,
        ratio: float = 0.5,
        name: str = "x",
        tags: Any = ("a", 1),
        opaque: object = object(),
    ) -> dict[str, int]:
        return {}


def test_types_are_spelled_from_hints():
    assert params(Typed, "everything") == {
        "i": ("int", True),
        "f": ("float", True),
        "s": ("str", True),
        "b": ("bool", True),
        "raw": ("bytes", True),
        "anything": ("any", True),
        "untyped": ("any", True),
        "items": ("list", True),
        "ints": ("list[int]", True),
        "ints_new": ("list[int]", True),
        "mapping": ("dict", True),
        "floats": ("dict[str, float]", True),
        "nested": ("dict[str, list[optional[int]]]", True),
        "maybe": ("optional[int]", True),
        "maybe_new": ("optional[int]", True),
        "either": ("union[int, str]", True),
        "either_or_none": ("optional[union[int, str]]", True),
        "flag": ("bool", False),
        "ratio": ("float", False),
        "name": ("str", False),
        "tags": ("any", False),
        "opaque": ("any", False),
    }
    assert specs(Typed)["everything"].returns == "dict[str, int]"


def test_defaults_are_reported_when_encodable():
    by_name = {p.name: p for p in specs(Typed)["everything"].parameters}
    assert (by_name["flag"].has_default, by_name["flag"].default) == (True, False)
    assert (by_name["ratio"].has_default, by_name["ratio"].default) == (True, 0.5)
    assert (by_name["tags"].has_default, by_name["tags"].default) == (True, ("a", 1))
    assert not by_name["opaque"].has_default and not by_name["opaque"].required
    assert not by_name["i"].has_default


def test_call_context_is_injected_not_described():
    assert "ctx" not in params(Typed, "everything")


def test_argument_descriptions_come_from_the_docstring():
    class Documented(BaseAdapter):
        @tool
        def scale(self, values: list[float], factor: float = 2.0) -> list[float]:
            """Scales values.

            Args:
                values: the numbers to scale,
                    one per sample.
                factor (float): the multiplier.

            Returns:
                the scaled numbers.
            """
            return [v * factor for v in values]

    parameters = {p.name: p.description for p in specs(Documented)["scale"].parameters}
    assert parameters == {"values": "the numbers to scale, one per sample.", "factor": "the multiplier."}


class Base(BaseAdapter):
    @tool
    def inherited(self) -> int:
        return 1

    @tool
    def overridden(self) -> int:
        """Base description."""
        return 1

    @tool
    def hidden(self) -> int:
        return 1


class Derived(Base):
    def overridden(self) -> int:  # no decorator: still a tool
        return 2

    hidden = None  # removes the inherited tool

    @tool
    def own(self) -> int:
        return 3


def test_tools_are_found_across_the_mro():
    found = specs(Derived)
    assert list(found) == ["inherited", "overridden", "own"]
    assert found["overridden"].description == "Base description."  # docstrings are inherited
    assert list(specs(Base)) == ["hidden", "inherited", "overridden"]


def test_two_tools_with_one_name_are_refused():
    class Clash(BaseAdapter):
        @tool(name="same")
        def one(self) -> None: ...

        @tool(name="same")
        def two(self) -> None: ...

    with pytest.raises(TypeError, match="two tools are named 'same'"):
        Clash.describe()


@pytest.mark.parametrize("annotation, complaint", [
    (set, "unsupported type set"),
    (dict[int, str], "dict keys must be str"),
    (complex, "unsupported type complex"),
])
def test_unservable_parameter_types_are_refused(annotation, complaint):
    def function(self, x) -> None: ...

    function.__annotations__ = {"x": annotation}
    adapter = type("Odd", (BaseAdapter,), {"odd": tool(function)})
    with pytest.raises(TypeError, match=f"tool 'odd' .*parameter 'x': {complaint}"):
        adapter.describe()


def test_unservable_signatures_are_refused():
    class Positional(BaseAdapter):
        @tool
        def f(self, x: int, /) -> None: ...

    with pytest.raises(TypeError, match="cannot be passed by name"):
        Positional.describe()

    class Reserved(BaseAdapter):
        @tool
        def setup(self) -> None: ...

    with pytest.raises(TypeError, match="is a BaseAdapter method"):
        Reserved.describe()

    with pytest.raises(TypeError, match="@tool decorates functions"):
        tool(42)


def test_return_hints_that_the_wire_lacks_read_as_any():
    class Results(BaseAdapter):
        @tool
        def pair(self) -> tuple[int, int]:
            return (1, 2)

        @tool
        def odd(self) -> set:
            return set()

    found = specs(Results)
    assert (found["pair"].returns, found["odd"].returns) == ("list", "any")


class Idempotency(BaseAdapter):
    @tool(idempotent=True)
    def lookup(self, key: str) -> str:
        return key

    @tool
    def charge(self, amount: int) -> int:
        return amount


def test_idempotent_is_declared_by_the_decorator_and_travels_on_the_wire():
    from snakepit_bridge.tools import wire_spec

    found = specs(Idempotency)
    assert found["lookup"].idempotent and not found["charge"].idempotent
    assert wire_spec(found["lookup"]).idempotent
    assert not wire_spec(found["charge"]).idempotent
    with pytest.raises(TypeError, match="idempotent"):
        tool(idempotent="yes")  # type: ignore[arg-type]

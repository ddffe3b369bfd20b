"""The HuJSON value tree: plain JSON values, each with the span it came from.

This is what `hujson.parse` returns and what `build` consumes. Lark types
never leave `grammar/` and `hujson.py`; everything downstream sees these.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import FrozenInstanceError, dataclass
from typing import Any, TypeAlias

from policyc.diagnostics.source import Span


@dataclass(frozen=True, slots=True)
class JString:
    value: str
    span: Span


@dataclass(frozen=True, slots=True)
class JNumber:
    value: int | float
    span: Span


@dataclass(frozen=True, slots=True)
class JBool:
    value: bool
    span: Span


@dataclass(frozen=True, slots=True)
class JNull:
    span: Span

    @property
    def value(self) -> None:
        return None


_set = object.__setattr__


class JArray:
    """An array: its items in document order, and its span.

    Immutable like the other nodes. A long array of plain strings (a big
    group's members) may come from the fast path in compact form: the values,
    and a function that finds their spans in the text. `items` makes the
    `JString`s on first use (a diagnostic, the language server);
    `string_values` reads the values without making one object per item.
    """

    __slots__ = ("_items", "_locate", "_values", "span")
    span: Span
    _items: tuple[JValue, ...] | None
    _values: tuple[str, ...] | None
    _locate: Callable[[], tuple[JString, ...]] | None

    def __init__(self, items: tuple[JValue, ...], span: Span) -> None:
        _set(self, "span", span)
        _set(self, "_items", items)
        _set(self, "_values", None)
        _set(self, "_locate", None)

    @classmethod
    def of_strings(cls, values: tuple[str, ...], span: Span,
                   locate: Callable[[], tuple[JString, ...]]) -> JArray:
        """An array of strings whose `JString`s `locate` makes when asked."""
        array = cls.__new__(cls)
        _set(array, "span", span)
        _set(array, "_items", None)
        _set(array, "_values", values)
        _set(array, "_locate", locate)
        return array

    @property
    def items(self) -> tuple[JValue, ...]:
        items = self._items
        if items is None:
            assert self._locate is not None  # the compact form always has one
            items = self._locate()
            _set(self, "_items", items)
        return items

    def string_values(self) -> tuple[str, ...] | None:
        """The items' values when every item is a string, else None."""
        if self._values is not None:
            return self._values
        strings = [item for item in self.items if type(item) is JString]
        if len(strings) != len(self.items):
            return None
        return tuple([item.value for item in strings])

    def __setattr__(self, name: str, value: Any) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}")

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not JArray:
            return NotImplemented
        assert isinstance(other, JArray)
        return (self.items, self.span) == (other.items, other.span)

    def __hash__(self) -> int:
        return hash((self.items, self.span))

    def __repr__(self) -> str:
        return f"JArray(items={self.items!r}, span={self.span!r})"

    def __reduce__(self) -> tuple[type[JArray], tuple[tuple[JValue, ...], Span]]:
        # copy, deepcopy and pickle rebuild it from its items (setattr is refused).
        return JArray, (self.items, self.span)


@dataclass(frozen=True, slots=True)
class JMember:
    key: JString
    value: JValue

    @property
    def span(self) -> Span:
        return Span(self.key.span.source, self.key.span.start, self.value.span.end)


@dataclass(frozen=True, slots=True)
class JObject:
    members: tuple[JMember, ...]
    span: Span

    def get(self, key: str) -> JValue | None:
        for member in self.members:
            if member.key.value == key:
                return member.value
        return None

    def keys(self) -> list[str]:
        return [m.key.value for m in self.members]


JValue: TypeAlias = JString | JNumber | JBool | JNull | JArray | JObject


def type_name(value: JValue) -> str:
    """The JSON type name used in wrong-type messages."""
    return {
        JString: "string", JNumber: "number", JBool: "boolean", JNull: "null",
        JArray: "array", JObject: "object",
    }[type(value)]


def to_python(value: JValue) -> Any:
    """Drop spans: the plain Python value `json.loads` would give."""
    if isinstance(value, JObject):
        return {m.key.value: to_python(m.value) for m in value.members}
    if isinstance(value, JArray):
        return [to_python(v) for v in value.items]
    return value.value

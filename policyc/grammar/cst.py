"""The HuJSON value tree: plain JSON values, each with the span it came from.

This is what `hujson.parse` returns and what `build` consumes. Lark types
never leave `grammar/` and `hujson.py`; everything downstream sees these.
"""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass(frozen=True, slots=True)
class JArray:
    items: tuple[JValue, ...]
    span: Span


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

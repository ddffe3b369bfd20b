"""HuJSON text -> a layout tree that keeps every comment where it was written.

The value tree of `policyc/grammar/hujson.py` drops comments (the grammar
ignores them), which is right for everything that reads a policy's meaning
but not for a formatter. This module re-reads text that `hujson.parse` has
already accepted, with the same token shapes, and attaches each comment to
the nearest thing it belongs to:

* after an opening bracket, on the same line: `after_open` of the container;
* after a value (and its comma), on the same line: `trailing` of that entry;
* on lines of their own: `leading` of the next entry, or `before_close`;
* between a key and its value: `between` of that entry.

Scalars keep their exact source text (escapes and number spelling), so the
layout can only move whitespace and commas, never change a value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_TOKEN = re.compile(
    r"(?P<ws>[ \t\r\n]+)"
    r"|(?P<comment>//[^\n]*|/\*(?s:.*?)\*/)"
    r'|(?P<scalar>"(?:[^"\\\n]|\\[^\n])*"|[-+]?\.?\d(?:[eE][-+]|[\w.])*|true|false|null)'
    r"|(?P<punct>[{}\[\]:,])"
)


@dataclass(frozen=True, slots=True)
class Comment:
    text: str  # `// ...` (trailing spaces dropped) or `/* ... */` verbatim
    blank_before: bool  # a blank line separated it from what came before

    @property
    def is_line(self) -> bool:
        return self.text.startswith("//")


@dataclass(frozen=True, slots=True)
class Scalar:
    text: str  # exact source spelling


@dataclass(slots=True)
class Container:
    open: str  # "{" or "["
    after_open: list[Comment] = field(default_factory=list)
    entries: list[Entry] = field(default_factory=list)
    before_close: list[Comment] = field(default_factory=list)

    @property
    def close(self) -> str:
        return "}" if self.open == "{" else "]"

    def has_comments(self) -> bool:
        return bool(self.after_open or self.before_close) or any(
            e.leading or e.between or e.trailing
            or (isinstance(e.value, Container) and e.value.has_comments())
            for e in self.entries)


Node = Scalar | Container


@dataclass(slots=True)
class Entry:
    """One array item or object member with the comments around it."""

    key: str | None  # exact source spelling of an object key, None in arrays
    value: Node
    leading: list[Comment] = field(default_factory=list)
    blank_before: bool = False
    between: list[Comment] = field(default_factory=list)
    trailing: list[Comment] = field(default_factory=list)


@dataclass(slots=True)
class Document:
    leading: list[Comment]
    value: Node | None  # None: only comments (a blank policy)
    blank_before_value: bool = False
    same_line: list[Comment] = field(default_factory=list)  # after the value, on its line
    trailing: list[Comment] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # "comment", "scalar" or the punctuation character itself
    text: str
    newlines_before: int


def tokenize(text: str) -> list[_Token]:
    """Tokens with the number of newlines before each; text must be valid HuJSON."""
    tokens: list[_Token] = []
    newlines = 0
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise ValueError(f"not HuJSON at offset {pos}")  # callers parse first
        kind = match.lastgroup or ""
        pos = match.end()
        if kind == "ws":
            newlines += match.group().count("\n")
            continue
        body = match.group()
        if kind == "comment" and body.startswith("//"):
            body = body.rstrip(" \t\r")
        tokens.append(_Token(body if kind == "punct" else kind, body, newlines))
        newlines = 0
    return tokens


def read_layout(text: str) -> Document:
    """The layout tree of `text`, which `hujson.parse` has accepted (or is blank)."""
    return _Reader(tokenize(text.removeprefix("\ufeff"))).document()


class _Reader:
    def __init__(self, tokens: list[_Token]) -> None:
        self.tokens = tokens
        self.pos = 0

    def peek(self) -> _Token | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> _Token:
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def comments(self, *, same_line: bool = False) -> list[Comment]:
        """Consecutive comments; with `same_line`, only those on the current line."""
        out = []
        while (token := self.peek()) is not None and token.kind == "comment":
            if same_line and token.newlines_before:
                break
            self.take()
            out.append(Comment(token.text, token.newlines_before >= 2))
        return out

    def document(self) -> Document:
        leading = self.comments()
        if self.peek() is None:
            return Document(leading, None)
        blank = self._blank_before_next()
        value = self.value()
        same_line = self.comments(same_line=True)
        return Document(leading, value, blank, same_line, self.comments())

    def value(self) -> Node:
        first = self.take()
        if first.kind == "scalar":
            return Scalar(first.text)
        container = Container(first.kind)
        container.after_open = self.comments(same_line=True)
        pending = self.comments()
        blank = self._blank_before_next()
        while (ahead := self.peek()) is not None and ahead.kind != container.close:
            entry = self.entry(container.open == "{")
            entry.leading, entry.blank_before = pending, blank
            container.entries.append(entry)
            entry.trailing = self.comments(same_line=True)
            pending = self.comments()  # on lines of their own, maybe before the comma
            if (comma := self.peek()) is not None and comma.kind == ",":
                self.take()
                if pending:
                    pending += self.comments()
                else:
                    entry.trailing += self.comments(same_line=True)
                    pending = self.comments()
            blank = self._blank_before_next()
        self.take()  # the closing bracket
        container.before_close = pending
        return container

    def _blank_before_next(self) -> bool:
        token = self.peek()
        return token is not None and token.newlines_before >= 2

    def entry(self, keyed: bool) -> Entry:
        if not keyed:
            return Entry(None, self.value())
        key = self.take().text
        between = self.comments()
        self.take()  # ":"
        between += self.comments()
        return Entry(key, self.value(), between=between)

"""Source text and spans: where every model object came from.

A `Span` is a half-open character-offset range into one `SourceFile`.
Line and column are computed on demand from a cached table of line starts,
so carrying spans everywhere costs two ints and a reference.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from functools import cached_property


@dataclass(frozen=True, eq=False)
class SourceFile:
    """One input file. Compared by identity: two loads are two sources."""

    name: str
    text: str

    @cached_property
    def line_starts(self) -> tuple[int, ...]:
        """Where each line starts; built on first use (the language server, or
        positions asked all over the file)."""
        # One find per line, not one Python step per character (1 MB: ~10x faster).
        starts = [0]
        find, at = self.text.find, self.text.find("\n")
        while at >= 0:
            starts.append(at + 1)
            at = find("\n", at + 1)
        return tuple(starts)

    def position(self, offset: int) -> tuple[int, int]:
        """1-based (line, column) of a character offset."""
        line = self._line(offset)
        return line, offset - self.line_start(line) + 1

    def line_start(self, line: int) -> int:
        """The offset where 1-based `line` starts."""
        last: tuple[int, int, int, int] | None = self.__dict__.get("_last")
        if "line_starts" not in self.__dict__ and last is not None and last[1] == line:
            return last[2]
        return self.line_starts[line - 1]

    def line_text(self, line: int) -> str:
        """The text of 1-based `line`, without its newline."""
        begin = self.line_start(line)
        end = self.text.find("\n", begin)
        return self.text[begin : end if end >= 0 else len(self.text)].rstrip("\r")

    def _line(self, offset: int) -> int:
        """The 1-based line of `offset`. Without the table, newlines are counted
        (C-level) from the last offset asked about: a command renders its few
        diagnostics in file order, and the table of a 13.5 MB file's 510k lines
        costs more than counting through the file once."""
        text = self.text
        last: tuple[int, int, int, int] = self.__dict__.get("_last", (0, 1, 0, 0))
        at, line, _, counted = last
        if offset < 0 or counted > len(text) or "line_starts" in self.__dict__:
            # Asked all over the file (counted through it once already): the table.
            return bisect.bisect_right(self.line_starts, offset)
        if offset >= at:
            line += text.count("\n", at, offset)
        else:
            line -= text.count("\n", offset, at)
        # Frozen: the cache goes straight into __dict__, as cached_property's does.
        self.__dict__["_last"] = (offset, line, text.rfind("\n", 0, offset) + 1,
                                  counted + abs(offset - at))
        return line

    def span(self, start: int, end: int) -> Span:
        return Span(self, start, end)

    def whole(self) -> Span:
        return Span(self, 0, len(self.text))


@dataclass(frozen=True, slots=True)
class Span:
    """Character range [start, end) in `source`."""

    source: SourceFile = field(compare=False, repr=False)
    start: int
    end: int

    @property
    def file(self) -> str:
        return self.source.name

    @property
    def line(self) -> int:
        return self.source.position(self.start)[0]

    @property
    def column(self) -> int:
        return self.source.position(self.start)[1]

    @property
    def end_position(self) -> tuple[int, int]:
        return self.source.position(self.end)

    @property
    def text(self) -> str:
        return self.source.text[self.start : self.end]

    @property
    def is_known(self) -> bool:
        """False for NO_SPAN: diagnostics about the system, not about a file."""
        return self.source is not UNKNOWN_SOURCE

    def location(self) -> str:
        """`file:line:col`, the form editors and CI annotations understand."""
        line, column = self.source.position(self.start)
        return f"{self.file}:{line}:{column}"

    def __str__(self) -> str:
        return self.location()


UNKNOWN_SOURCE = SourceFile("<unknown>", "")
NO_SPAN = Span(UNKNOWN_SOURCE, 0, 0)

"""Character offsets <-> LSP positions (0-based line, UTF-16 code units).

Spans count Python characters (code points) from the start of the file; LSP
counts lines from 0 and columns in UTF-16 code units. `lsp_position` is the
one place that converts a span offset for the client, and `offset_of` the
one place that reads a client position back; everything else goes through
them (`lsp_range`).
"""

from __future__ import annotations

from lsprotocol import types

from policyc.diagnostics.source import SourceFile, Span


def lsp_position(source: SourceFile, offset: int) -> types.Position:
    """The LSP position of character `offset` in `source`."""
    offset = max(0, min(offset, len(source.text)))
    line, column = source.position(offset)  # 1-based, in code points
    line_start = source.line_starts[line - 1]
    prefix = source.text[line_start:offset]
    if not prefix.isascii():
        # Characters outside the BMP take two UTF-16 units.
        column = len(prefix.encode("utf-16-le")) // 2 + 1
    return types.Position(line=line - 1, character=column - 1)


def lsp_range(span: Span) -> types.Range:
    return types.Range(start=lsp_position(span.source, span.start),
                       end=lsp_position(span.source, span.end))


def offset_of(source: SourceFile, position: types.Position) -> int:
    """The character offset of an LSP position, clamped to the line and the file."""
    starts = source.line_starts
    if position.line >= len(starts):
        return len(source.text)
    start = starts[position.line]
    end = starts[position.line + 1] - 1 if position.line + 1 < len(starts) else len(source.text)
    line = source.text[start:end]
    if line.isascii():
        return start + min(position.character, len(line))
    units = 0
    for index, char in enumerate(line):
        if units >= position.character:
            return start + index
        units += 2 if ord(char) > 0xFFFF else 1
    return end

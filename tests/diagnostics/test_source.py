"""SourceFile positions: counted from the last offset asked about, or read from the
table of line starts; both must give the same (line, column) and line text."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from policyc.diagnostics.source import SourceFile

_TEXT = st.text(st.sampled_from(["a", "é", "\n", "\r", " ", "😀"]), max_size=60)


def _reference(text: str, offset: int) -> tuple[int, int, str]:
    """From first principles: newlines before the offset, the line around it."""
    line = text.count("\n", 0, offset) + 1
    begin = text.rfind("\n", 0, offset) + 1
    end = text.find("\n", begin)
    return line, offset - begin + 1, text[begin : end if end >= 0 else len(text)].rstrip("\r")


@settings(max_examples=300, deadline=None)
@given(_TEXT, st.data())
def test_counted_positions_equal_the_table(text: str, data: st.DataObject) -> None:
    offsets = data.draw(st.lists(st.integers(0, len(text) + 3), max_size=12))
    counted, table = SourceFile("a", text), SourceFile("b", text)
    assert table.line_starts[0] == 0  # built: `table` answers from it
    for offset in offsets:
        expected = _reference(text, offset)
        for source in (counted, table):
            line, column = source.position(offset)
            assert (line, column, source.line_text(line)) == expected
            assert source.line_start(line) == offset - column + 1


def test_counting_gives_way_to_the_table_after_a_pass() -> None:
    """Positions asked back and forth all over a file stop being counted."""
    text = "ab\n" * 1000
    source = SourceFile("a", text)
    for offset in [0, len(text), 0, len(text), 5]:
        assert source.position(offset) == _reference(text, offset)[:2]
    assert "line_starts" in source.__dict__
    fresh = SourceFile("b", text)
    assert fresh.position(1500) == (501, 1)
    assert "line_starts" not in fresh.__dict__

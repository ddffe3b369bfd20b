"""The pieces under the protocol: positions, the symbol index, the completion context."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from lsprotocol import types

from policyc.diagnostics.source import SourceFile
from policyc.grammar.hujson import parse_text
from policyc.lsp.completion import place_at
from policyc.lsp.positions import lsp_position, offset_of
from policyc.lsp.symbols import GROUP, HOST, IPSET, POSTURE, TAG, build_index

ALPHABET = ["a", "é", "😀", "\n", "\r", " ", "\U0001d538"]  # two astral characters


@given(st.text(alphabet=st.sampled_from(ALPHABET), max_size=40), st.data())
def test_positions_round_trip_in_utf16(text: str, data: st.DataObject) -> None:
    source = SourceFile("x", text)
    offset = data.draw(st.integers(0, len(text)))
    position = lsp_position(source, offset)
    line_start = text.rfind("\n", 0, offset) + 1
    assert position.line == text.count("\n", 0, offset)
    assert position.character == len(text[line_start:offset].encode("utf-16-le")) // 2
    assert offset_of(source, position) == offset


def test_offset_of_clamps() -> None:
    source = SourceFile("x", "ab\ncd")
    assert offset_of(source, types.Position(line=0, character=99)) == 2
    assert offset_of(source, types.Position(line=9, character=0)) == 5


TEXT = """{
  "groups": {"group:dev": ["a@example.com"]},
  "tagOwners": {"tag:web": ["group:dev"], "tag:db": ["tag:web"]},
  "hosts": {"db-1": "10.0.0.1"},
  "ipsets": {"ipset:lan": ["add db-1", "remove 10.0.0.1", "ipset:lan"]},
  "postures": {"posture:latest": ["node:tsVersion >= '1.60'"]},
  "defaultSrcPosture": ["posture:latest"],
  "acls": [{"action": "accept", "src": ["group:dev", "\\u0074ag:web"],
            "srcPosture": ["posture:latest"],
            "dst": ["tag:web:80,443", "db-1:22", "10.0.0.0/8:*", "a@example.com:*"]}],
}"""


def test_the_index_finds_names_inside_strings() -> None:
    tree, _ = parse_text(TEXT)
    index = build_index(tree)
    found = {(o.kind, o.name, o.definition, TEXT[o.start:o.end]) for o in index.occurrences}
    assert (TAG, "tag:web", False, "tag:web") in found  # "tag:web:80,443"
    assert (HOST, "db-1", False, "db-1") in found  # "db-1:22" and "add db-1"
    assert len(index.references(HOST, "db-1")) == 3
    assert len(index.references(IPSET, "ipset:lan")) == 2
    # "\u0074ag:web" is tag:web, but its characters are not: never renamed in place.
    assert len(index.references(TAG, "tag:web")) == 3
    assert index.names(GROUP) == ["group:dev"]
    postures = index.references(POSTURE, "posture:latest")
    assert [o.definition for o in postures] == [True, False, False]
    assert not any(o.name in ("10.0.0.0/8", "a@example.com") for o in index.occurrences)
    at = TEXT.index("tag:web:80") + 3
    occurrence = index.at(at)
    assert occurrence is not None and occurrence.name == "tag:web"


def test_place_at() -> None:
    text = '{"acls": [{"action": "accept", "dst": ["ta'
    assert place_at(text, len(text)).path == ("acls", "[]", "dst", "[]")
    text = '{"acls": [{"action": "accept", "'
    place = place_at(text, len(text))
    assert place.at_key and place.path == ("acls", "[]")
    text = '{"acls": [], // "ssh": [\n "'
    place = place_at(text, len(text))
    assert place.at_key and place.path == ()

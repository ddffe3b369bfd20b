"""HuJSON parser: grammar edge cases, spans, diagnostics and json5 as an oracle."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import json5
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from policyc.diagnostics.diagnostics import Diagnostic, Diagnostics
from policyc.diagnostics.source import SourceFile
from policyc.grammar.cst import JArray, JNumber, JObject, JString, JValue, to_python
from policyc.grammar.hujson import MAX_DEPTH, is_blank, parse, parse_text, read_source


def ok(text: str) -> Any:
    value, diags = parse_text(text)
    assert not diags.items, [str(d) for d in diags]
    assert value is not None
    return to_python(value)


def fails(text: str, code: str = "P001") -> Diagnostic:
    value, diags = parse_text(text)
    assert value is None
    assert [d.code for d in diags][-1:] == [code], [str(d) for d in diags]
    return diags.items[-1]


# --- accepted syntax -----------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("{}", {}), ("[]", []), ("{ }", {}), ("[\n]", []),
    ('"x"', "x"), ("1", 1), ("true", True), ("false", False), ("null", None),
    ("[1,]", [1]), ('{"a": 1,}', {"a": 1}), ("[[],{},]", [[], {}]),
    ('{"a": {"b": [1, {"c": null}]}}', {"a": {"b": [1, {"c": None}]}}),
    ("// lead\n[1] // trail", [1]),
    ("[1] // no newline at EOF", [1]),
    ("/* a\n b\n */ [1, /* in */ 2] /* end */", [1, 2]),
    ('{"a" /* between key and colon */ : // here too\n 1}', {"a": 1}),
    ('{/*x*/"a"/*x*/:/*x*/1/*x*/,/*x*/}', {"a": 1}),
    ("[1 // c\n, 2]", [1, 2]),
    ("[1, // trailing comma then comment\n]", [1]),
    ("[/**/]", []), ("[/* ** / */ 1]", [1]),
    ("\ufeff[1]", [1]),
    ("[1]\r\n", [1]), ("\t[ 1 ,\t2 ]", [1, 2]),
    ('["\\u00e9", "\\ud83d\\ude00", "é😀", "\\"\\\\\\/\\b\\f\\n\\r\\t"]',
     ["é", "😀", "é😀", '"\\/\b\f\n\r\t']),
    ('{"":""}', {"": ""}), ('["// not a comment", "/* nor this */"]',
                            ["// not a comment", "/* nor this */"]),
])
def test_accepts(text: str, expected: Any) -> None:
    assert ok(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("0", 0), ("-0", 0), ("12", 12), ("-7", -7), ("1e5", 1e5), ("1.5E-3", 1.5e-3),
    ("2.50", 2.5), ("1E+2", 100.0), ("123456789012345678901234567890",
                                     123456789012345678901234567890),
])
def test_numbers(text: str, expected: float) -> None:
    value = ok(text)
    assert value == expected
    assert type(value) is type(json.loads(text))


def test_negative_zero_float_keeps_sign() -> None:
    assert math.copysign(1, ok("-0.0")) == -1


def test_blank_input_is_no_policy_without_diagnostics() -> None:
    for text in ("", "   \n", "// only a comment", "/* c */\n// d\n", "\ufeff"):
        assert is_blank(text)
        assert parse_text(text) == (None, Diagnostics())
    assert not is_blank("[]")
    assert not is_blank("/* unterminated")


# --- rejected syntax ------------------------------------------------------------


@pytest.mark.parametrize(("text", "code", "start", "fragment"), [
    ("[1,,]", "P001", 3, "trailing comma is not allowed twice"),
    ('{"a": 1,,}', "P001", 8, "trailing comma is not allowed twice"),
    ("[1,,2]", "P001", 3, "between the commas"),
    ("[,1]", "P001", 1, "before the first element"),
    ("{,}", "P001", 1, "before the first element"),
    ('{"a": 1 "b": 2}', "P001", 8, "expected ',' or '}' after object member"),
    ("[1 2]", "P001", 3, "expected ',' or ']' after array element"),
    ('{"a" 1}', "P001", 5, "expected ':' after object key"),
    ('{"a":}', "P001", 5, "expected a value after ':'"),
    ("[1}", "P001", 2, "expected ',' or ']'"),
    ("[1]]", "P001", 3, "after the end of the document"),
    ("[1, 2", "P001", 5, "unexpected end of file: missing ']'"),
    ('{"a": [', "P001", 7, "missing ']' and '}'"),
    ("['x']", "P001", 1, "strings must use double quotes"),
    ("{a: 1}", "P001", 1, "object keys must be double-quoted strings"),
    ("[True]", "P001", 1, "unknown literal"),
    ("[undefined]", "P001", 1, "strings must use double quotes"),
    ("[1] / 2", "P001", 4, "comments start with"),
    ("[@]", "P001", 1, "unexpected character"),
    ("[\u00a0]", "P001", 1, "U+00A0"),
    ('["abc]', "P003", 1, "unterminated string"),
    ('["a\nb"]', "P003", 1, "unterminated string"),
    ('["a\tb"]', "P003", 3, "raw control character"),
    ('["\\q"]', "P003", 2, "invalid escape \\q"),
    ('["\\u12"]', "P003", 2, "invalid escape \\u12"),
    ("[01]", "P004", 1, "leading zeros"),
    ("[.5]", "P004", 1, "before '.'"),
    ("[+1]", "P004", 1, "'+'"),
    ("[1.]", "P004", 1, "after '.'"),
    ("[0x1F]", "P004", 1, "hex"),
    ("[NaN]", "P004", 1, "NaN"),
    ("[-Infinity]", "P004", 1, "-Infinity"),
    ("[-]", "P004", 1, "invalid number"),
    ("[1] /* never closed", "P005", 4, "unterminated /* comment"),
])
def test_rejects_with_located_diagnostic(text: str, code: str, start: int,
                                         fragment: str) -> None:
    diag = fails(text, code)
    assert diag.span.start == start
    assert fragment in diag.message
    assert "Token" not in diag.message and "lark" not in diag.message.lower()


def test_eof_error_notes_the_unclosed_bracket() -> None:
    diag = fails('{\n  "a": [\n    1,\n')
    assert diag.notes and "line 2, column 8" in diag.notes[0]


def test_nesting_depth_is_limited_without_recursion() -> None:
    assert ok("[" * MAX_DEPTH + "]" * MAX_DEPTH) is not None
    assert ok("[{}," * (MAX_DEPTH // 2) + "]" * (MAX_DEPTH // 2)) is not None
    diag = fails("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1))
    assert diag.span.start == MAX_DEPTH and "deeper" in diag.message
    assert fails("[" * 20000).code == "P001"


def test_unexpected_eof_lists_few_closers() -> None:
    assert fails("[" * 50).message.endswith("missing ']', ']', ']' and 47 more")


def test_missing_comma_error_hints_at_the_comma() -> None:
    assert any("missing" in n for n in fails('{"a": 1\n "b": 2}').notes)


def test_bad_literals_get_a_suggestion() -> None:
    assert fails("[True]").suggestion == "true"
    assert fails("[None]").suggestion == "null"
    assert fails("{key: 1}").suggestion == '"key"'
    assert fails("['it']").suggestion == '"it"'


def test_string_and_number_errors_are_all_reported() -> None:
    value, diags = parse_text('["\\q", 01, "\\x"]')
    assert value is None
    assert [d.code for d in diags] == ["P003", "P004", "P003"]


# --- duplicate keys -----------------------------------------------------------------


def test_duplicate_key_points_at_second_and_keeps_first() -> None:
    value, diags = parse_text('{\n  "a": 1,\n  "b": 2,\n  "a": 3\n}')
    assert isinstance(value, JObject)
    assert to_python(value) == {"a": 1, "b": 2}
    (diag,) = diags
    assert diag.code == "P002"
    assert (diag.span.line, diag.span.column, diag.span.text) == (4, 3, '"a"')
    assert "line 2, column 3" in diag.notes[0]


def test_duplicate_keys_in_nested_objects_are_independent() -> None:
    value, diags = parse_text('{"a": {"a": 1}, "b": {"a": 2, "a": 3}}')
    assert value is not None and to_python(value) == {"a": {"a": 1}, "b": {"a": 2}}
    assert [d.code for d in diags] == ["P002"]


def test_keys_equal_after_unescaping_are_duplicates() -> None:
    _, diags = parse_text('{"a": 1, "\\u0061": 2}')
    assert [d.code for d in diags] == ["P002"]


# --- spans ------------------------------------------------------------------------------


def test_spans_of_keys_and_values() -> None:
    text = '{\n  // c\n  "groups": {\n    "group:dev": ["alice@", 10],\n  },\n}\n'
    value, _ = parse_text(text, "p.hujson")
    assert isinstance(value, JObject)
    assert (value.span.start, value.span.end) == (0, len(text.rstrip()))
    groups = value.members[0]
    assert (groups.key.span.line, groups.key.span.column) == (3, 3)
    assert groups.key.span.text == '"groups"'
    assert isinstance(groups.value, JObject)
    dev = groups.value.members[0]
    assert (dev.key.span.line, dev.key.span.column) == (4, 5)
    assert isinstance(dev.value, JArray)
    alice, ten = dev.value.items
    assert isinstance(alice, JString) and alice.span.text == '"alice@"'
    assert (alice.span.line, alice.span.column) == (4, 19)
    assert isinstance(ten, JNumber) and ten.span.text == "10"
    assert dev.value.span.text == '["alice@", 10]'
    assert alice.span.location() == "p.hujson:4:19"


def test_spans_stay_true_with_a_bom() -> None:
    source = SourceFile("b.hujson", '\ufeff{"a": 1}')
    value = parse(source, Diagnostics())
    assert isinstance(value, JObject)
    assert value.members[0].key.span.text == '"a"'


# --- files ------------------------------------------------------------------------------


def test_read_source_strips_bom(tmp_path: Path) -> None:
    path = tmp_path / "p.hujson"
    path.write_bytes(b'\xef\xbb\xbf{"a": 1}')
    source = read_source(path)
    assert isinstance(source, SourceFile)
    assert source.text == '{"a": 1}' and source.name == str(path)


@pytest.mark.parametrize("make", [
    lambda d: d / "missing.hujson",
    lambda d: d,
    lambda d: (d / "latin1.hujson", (d / "latin1.hujson").write_bytes(b'["\xe9"]'))[0],
])
def test_read_source_reports_io_errors(tmp_path: Path, make: Any) -> None:
    result = read_source(make(tmp_path))
    assert isinstance(result, Diagnostic)
    assert result.code == "P006"


# --- properties: json5 as the oracle -------------------------------------------------

_scalars = (st.none() | st.booleans() | st.integers(-10**20, 10**20)
            | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8))
_documents = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)
_gaps = st.lists(st.sampled_from([" ", "\n", "\t", "\r\n", "// c\n", "/* c */", "/*\n*/",
                                  "//\n", "/* // */"]), max_size=2).map("".join)


@st.composite
def _hujson(draw: st.DrawFn, value: Any) -> str:
    """Serialise `value` with random comments, whitespace and trailing commas."""
    gap = draw(_gaps)
    if isinstance(value, list | dict):
        pairs = list(value.items()) if isinstance(value, dict) else [(None, v) for v in value]
        parts = []
        for key, item in pairs:
            head = "" if key is None else f"{json.dumps(key)}{draw(_gaps)}:{draw(_gaps)}"
            parts.append(f"{draw(_gaps)}{head}{draw(_hujson(item))}{draw(_gaps)}")
        body = ",".join(parts)
        if parts and draw(st.booleans()):
            body += "," + draw(_gaps)
        elif not parts:
            body = draw(_gaps)
        open_, close = ("{", "}") if isinstance(value, dict) else ("[", "]")
        return f"{gap}{open_}{body}{close}"
    ascii_only: bool = draw(st.booleans())
    return gap + json.dumps(value, ensure_ascii=ascii_only)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_agrees_with_json5(data: st.DataObject) -> None:
    value = data.draw(_documents)
    text = data.draw(_hujson(value)) + data.draw(_gaps)
    # json5 reads '\u2028'/'\u2029' and some other code points as line breaks.
    assume(not any(ch in text for ch in "\u2028\u2029"))
    parsed, diags = parse_text(text)
    assert not diags.items, [str(d) for d in diags]
    assert parsed is not None
    assert to_python(parsed) == value
    # json5 (unlike json and policyc) leaves escaped surrogate pairs uncombined.
    if not re.search(r"\\u[dD][89abAB]", text):
        assert json5.loads(text) == value
    _assert_spans_slice_back(parsed, text)


def _assert_spans_slice_back(value: JValue, text: str) -> None:
    """Every span covers exactly the text of its value."""
    piece = text[value.span.start : value.span.end]
    if isinstance(value, JObject):
        assert piece[0] + piece[-1] == "{}"
        for member in value.members:
            assert json.loads(member.key.span.text) == member.key.value
            _assert_spans_slice_back(member.value, text)
    elif isinstance(value, JArray):
        assert piece[0] + piece[-1] == "[]"
        for item in value.items:
            _assert_spans_slice_back(item, text)
    else:
        assert json.loads(piece) == value.value


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutations_never_raise(data: st.DataObject) -> None:
    text = data.draw(_hujson(data.draw(_documents)))
    chars = list(text)
    for _ in range(data.draw(st.integers(1, 3))):
        where = data.draw(st.integers(0, len(chars)))
        action = data.draw(st.sampled_from(["insert", "delete", "replace"]))
        char = data.draw(st.sampled_from([*"{}[],:\"'/*\\ \n0-.eExtfn\x00", "\u00e9"]))
        if action == "insert":
            chars.insert(where, char)
        elif chars and where < len(chars):
            if action == "delete":
                del chars[where]
            else:
                chars[where] = char
    mutated = "".join(chars)
    value, diags = parse_text(mutated)
    codes = {d.code for d in diags}
    assert codes <= {"P001", "P002", "P003", "P004", "P005"}
    if value is None and not is_blank(mutated):
        assert diags.has_errors
    for diag in diags:
        assert 0 <= diag.span.start <= diag.span.end <= len(mutated)

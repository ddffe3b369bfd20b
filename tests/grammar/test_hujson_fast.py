"""The fast path (orjson + token spans) against lark's path: same tree, same diagnostics.

`hujson_fast.fast_parse` may only answer when its tree is exactly the one
`hujson_lark.parse_with_lark` builds with no diagnostic; otherwise it must
return None (and `parse` then runs lark). The oracle is lark's path itself,
on random HuJSON texts: values of every JSON type, keys repeated, strings
with every kind of escape, lone surrogates and raw control characters,
numbers in all forms (big, out of range, invalid), comments, trailing
commas, and random edits that break the text.
"""

from __future__ import annotations

import copy
import json
from dataclasses import FrozenInstanceError
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policyc.diagnostics.diagnostics import Diagnostics
from policyc.diagnostics.source import SourceFile
from policyc.grammar.cst import JArray, JMember, JObject, JValue
from policyc.grammar.hujson import BOM, MAX_DEPTH, is_blank, parse
from policyc.grammar.hujson_fast import MIN_RUN, fast_parse, standardize
from policyc.grammar.hujson_lark import parse_with_lark

ROOT = Path(__file__).resolve().parents[2]


def dump(value: JValue | JMember | None) -> Any:
    """Everything a tree says, exactly: classes, value types (1 vs 1.0, -0.0), spans."""
    if value is None:
        return None
    if isinstance(value, JMember):
        return ("member", dump(value.key), dump(value.value))
    span = (value.span.start, value.span.end, value.span.source.name)
    if isinstance(value, JObject):
        return ("object", span, [dump(m) for m in value.members])
    if isinstance(value, JArray):
        return ("array", span, [dump(v) for v in value.items])
    return (type(value).__name__, span, type(value.value).__name__, repr(value.value))


def diag_dump(diags: Diagnostics) -> list[Any]:
    return [(d.code, d.severity, d.message, d.span.start, d.span.end, d.notes) for d in diags]


def lark_result(text: str) -> tuple[Any, list[Any]]:
    source, diags = SourceFile("t.hujson", text), Diagnostics()
    if is_blank(text):
        return None, []
    blanked = " " + text[1:] if text.startswith(BOM) else text
    return dump(parse_with_lark(source, blanked, diags)), diag_dump(diags)


def fast_result(text: str) -> Any:
    blanked = " " + text[1:] if text.startswith(BOM) else text
    return dump(fast_parse(SourceFile("t.hujson", text), blanked, MAX_DEPTH))


def assert_agrees(text: str) -> bool:
    """parse() == lark's path; the fast path answers only with lark's own tree.
    True when the fast path answered."""
    expected, expected_diags = lark_result(text)
    source, diags = SourceFile("t.hujson", text), Diagnostics()
    assert (dump(parse(source, diags)), diag_dump(diags)) == (expected, expected_diags)
    if is_blank(text):
        return False
    fast = fast_result(text)
    if fast is not None:
        assert expected_diags == []
        assert fast == expected
    return fast is not None


# --- generated HuJSON ---------------------------------------------------------------

_ESCAPES = ['\\"', "\\\\", "\\/", "\\b", "\\f", "\\n", "\\r", "\\t", "\\u00e9", "\\u00E9",
            "\\u0000", "\\u001f", "\\ud83d\\ude00", "\\uD83D\\uDE00", "\\u2028", "\\uffff"]
_ODD_ESCAPES = ["\\ud800", "\\udc00", "\\ude00\\ud83d", "\\ud83dx", "\\q", "\\u12", "\\x41",
                "\\", "\t", "\x00", "\x1f", "\x7f", "\n"]
_NO_BRACKETS = st.characters(codec="utf-8", exclude_characters='"\\[]{}',
                             exclude_categories=["Cc"])
_CHARS = st.characters(codec="utf-8", exclude_characters='"\\\n')
_PRINTABLE = st.characters(codec="utf-8", exclude_characters='"\\', exclude_categories=["Cc"])


@st.composite
def _string(draw: st.DrawFn, clean: bool) -> str:
    if clean:
        pieces = st.text(_PRINTABLE, max_size=4) | st.sampled_from(_ESCAPES)
    else:
        pieces = st.text(_CHARS, max_size=4) | st.sampled_from([*_ESCAPES, *_ODD_ESCAPES])
    return '"' + "".join(draw(st.lists(pieces, max_size=4))) + '"'


_CLEAN_NUMBERS = (st.integers(-10**30, 10**30).map(str)
                  | st.floats(allow_nan=False, allow_infinity=False).map(repr)
                  | st.sampled_from(["-0", "0", "-0.0", "0.0e-0", "1E5", "1e+2", "2.50",
                                     "1.7976931348623157e308", "5e-324", "1e-400",
                                     "123456789012345678901234567890.5"]))
_ODD_NUMBERS = st.sampled_from(["1e400", "-1e999", "01", "+1", ".5", "1.", "0x1F", "1.5.3",
                                "NaN", "Infinity", "-", "1e", "9" * 4301, "-" + "9" * 4300,
                                "9" * 4300])
_GAPS = st.lists(st.sampled_from([" ", "\n", "\t", "\r\n", "// c, ] }\n", "/* c */", "/*\n*/",
                                  '/* "x" , ] */', "//\n", "/* // */", "/***/", "/* * / */"]),
                 max_size=2).map("".join)


@st.composite
def _value(draw: st.DrawFn, depth: int, clean: bool) -> str:
    kinds = ["string", "number", "literal"] + (["array", "object"] if depth < 4 else []) \
        + (["strings"] if depth < 2 else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "string":
        return draw(_string(clean))
    if kind == "strings":  # around MIN_RUN strings: compact when none has an escape
        return draw(_strings(clean))
    if kind == "number":
        return draw(_CLEAN_NUMBERS if clean else _CLEAN_NUMBERS | _ODD_NUMBERS)
    if kind == "literal":
        return draw(st.sampled_from(["true", "false", "null"]))
    keys: list[str] = []
    items = []
    for _ in range(draw(st.integers(0, 4))):
        item = draw(_GAPS) + draw(_value(depth + 1, clean))
        if kind == "object":
            key = draw(_string(clean) if clean or not keys else
                       _string(clean) | st.sampled_from(keys))  # a repeated key
            if clean and json.loads(key) in [json.loads(k) for k in keys]:
                continue
            keys.append(key)
            item = draw(_GAPS) + key + draw(_GAPS) + ":" + item
        items.append([item, draw(_GAPS)])
    if items and draw(st.booleans()):
        # A trailing comma; where the fast path must answer, right after the value.
        items[-1][1] = "" if clean else items[-1][1]
        body = ",".join(item + gap for item, gap in items) + "," + draw(_GAPS)
    else:
        body = ",".join(item + gap for item, gap in items) if items else draw(_GAPS)
    return ("{" + body + "}") if kind == "object" else ("[" + body + "]")


@st.composite
def _strings(draw: st.DrawFn, clean: bool) -> str:
    plain = st.text(_PRINTABLE, max_size=6).map(lambda t: f'"{t}"')
    strings = draw(st.lists(plain | _string(clean) if draw(st.booleans()) else plain,
                            min_size=MIN_RUN - 2, max_size=MIN_RUN + 4))
    body = ",".join(draw(_GAPS) + item for item in strings)
    trailing = "," if strings and draw(st.booleans()) else ""  # right after the value
    return "[" + body + trailing + draw(_GAPS) + "]"


def _document(clean: bool) -> st.SearchStrategy[str]:
    return st.tuples(st.sampled_from(["", BOM]), _GAPS, _value(0, clean), _GAPS).map("".join)


@st.composite
def _broken(draw: st.DrawFn) -> str:
    chars = list(draw(_document(clean=False)))
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.integers(0, len(chars)))
        char = draw(st.sampled_from([*"{}[],:\"'/*\\ \n0-.eExtfn\x00", "\u00e9", "\ud800"]))
        action = draw(st.sampled_from(["insert", "delete", "replace"]))
        if action == "insert":
            chars.insert(where, char)
        elif where < len(chars):
            chars[where : where + 1] = [] if action == "delete" else [char]
    return "".join(chars)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_document(clean=False) | _broken())
def test_fast_path_is_lark_or_nothing(text: str) -> None:
    assert_agrees(text)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_document(clean=True))
def test_fast_path_answers_valid_hujson(text: str) -> None:
    """No repeated key, odd string or odd number, trailing commas right after
    their value: the fast path answers (so the property above is not vacuous)."""
    assert assert_agrees(text)


# --- what the fast path gives up on, one by one -------------------------------------


@pytest.mark.parametrize("text", [
    '{"a": 1, "a": 2}', '{"a": [1], "b": {"c": 1, "c": [2, 3]}}',
    '["\\ud800"]', '"\\udc00"', '["\\q"]', '["a\tb"]', "[1e400]", "[01]", "[" + "9" * 4301 + "]",
    "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), "[,]", "{,}", "[1 ,]", "[1 /* c */,]",
    "[1,,]", '["abc]', "[1] / 2", "/* open", '{"a": 1} // end', "[\ud800]",
    # a bad character before a blank run: lark's lexer stops there, located
    '{"a": 1} x' + " " * 300 + "y", "[1, x" + "\n" * 300, '{"a": [1 @' + "// c\n" * 50 + "]}",
    *(f'{{"a": [{", ".join([odd] * MIN_RUN)}], "a": []}}' for odd in ('"]"', '"["', '"{"', "1")),
    '{"a": [' + '"x", ' * MIN_RUN + '["y"]], "a": [' + '"z", ' * (MIN_RUN - 1) + '"z"]}',
])
def test_agrees_on_edge_cases(text: str) -> None:
    assert_agrees(text)


@pytest.mark.parametrize("text", [
    "[" * MAX_DEPTH + "]" * MAX_DEPTH, '{"a": 1,}', "[1,]", "[[],{},]",
    BOM + '{"a": "\\u00e9\\ud83d\\ude00"} // c', '{"a" /* c */ : 1 // d\n}', "[-0, -0.0, 1E5]",
    "[123456789012345678901234567890]", '["// not", "/* a comment */"]',
    # blank tails: the token search stops at the last token (it once retried at each
    # character of the tail), and must not cut a number, literal or string short
    "123 \t\r\n", "-0.5e3\n\n", "true  ", '"a b "\n', '{"a": [1, 2]}' + "\n" * 500,
    '[1,]  // tail\n' + " " * 300, '{"a": 1} /* a\nblock */ \n// and a line\n',
    *(f'{{"a": [{", ".join([odd] * MIN_RUN)}]}}' for odd in ('"]"', '"[["', '"{"', '"\\u00e9"')),
])
def test_fast_path_answers(text: str) -> None:
    assert assert_agrees(text)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.text(_NO_BRACKETS, max_size=6), min_size=MIN_RUN, max_size=MIN_RUN + 8),
       st.lists(_GAPS, min_size=MIN_RUN + 9, max_size=MIN_RUN + 9), st.booleans())
def test_long_string_arrays_are_compact(values: list[str], gaps: list[str], repeat: bool) -> None:
    """MIN_RUN plain strings or more (no bracket in them): kept as values, their
    JStrings (spans) made on demand, equal to lark's; the same key twice still
    goes to lark."""
    items = [gap + json.dumps(value, ensure_ascii=False) for gap, value in zip(gaps, values,
                                                                            strict=False)]
    array = "[" + ",".join(items) + gaps[-1] + "]"
    text = '{"g": ' + array + (', "g": ' + array if repeat else "") + "}"
    tree = fast_parse(SourceFile("t.hujson", text), text, MAX_DEPTH)
    if repeat:
        assert tree is None
        assert_agrees(text)
        return
    assert isinstance(tree, JObject)
    compact = tree.members[0].value
    assert isinstance(compact, JArray)
    assert compact._items is None  # no JString made yet
    assert compact.string_values() == tuple(values)
    assert assert_agrees(text)
    assert copy.deepcopy(compact) == compact == copy.copy(compact)
    with pytest.raises(FrozenInstanceError):
        compact.span = compact.span


def test_standardize_blanks_comments_and_trailing_commas_in_place() -> None:
    text = '{"a": "// /* kept", /* x\n y */ "b": [2,], // c\n "c": {"d": 1,/**/},}'
    standardized = standardize(text)
    assert len(standardized) == len(text)
    assert [i for i, c in enumerate(standardized) if c == "\n"] == \
        [i for i, c in enumerate(text) if c == "\n"]
    assert json.loads(standardized) == {"a": "// /* kept", "b": [2], "c": {"d": 1}}


def _real_files() -> list[Path]:
    corpus = ROOT / "tests" / "corpus"
    return sorted([*corpus.rglob("*.hujson"), *(ROOT / "samples").rglob("*.hujson"),
                   *(ROOT / "samples").rglob("*.json")])


@pytest.mark.parametrize("path", _real_files(), ids=lambda p: p.name)
def test_real_files_agree(path: Path) -> None:
    assert_agrees(path.read_text(encoding="utf-8-sig"))

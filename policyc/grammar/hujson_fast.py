"""The fast path in front of the lark parser: orjson for the values, regexes for the spans.

`hujson.parse` tries `fast_parse` first and runs lark only when it returns
None. lark stays the only authority for syntax and for every diagnostic:
the fast path returns a tree only when it is exactly the tree lark's builder
would return with no diagnostic, and gives up on anything else.

1. Standardize (what tailscale/hujson's `Standardize` does): `//` and `/* */`
   comments and a trailing comma before `]`/`}` become spaces (newlines are
   kept), so every offset stays true to the source. Strings and comments are
   recognised with hujson.lark's own STRING and comment patterns.
2. `orjson.loads` of that JSON gives the structure and the values.
3. One `finditer` over the JSON finds the value and bracket tokens in
   document order; walking orjson's result in document order (dicts keep
   insertion order) hands each value and key its token's span.

Why the result is lark's: the standardized text is valid JSON (orjson says
so), and the source differs from it only by comments, which lark skips as
whitespace, and by commas after a value and before a closer, which lark's
grammar allows. So lark parses the source to the same values in the same
order, with the same tokens, unless an object repeats a key: orjson keeps
one member for it, and then the walk uses fewer tokens than the text holds,
which is checked. Values lark's builder computes itself are taken from it:
numbers (`json_number`: orjson reads a big integer as a float) and strings
with escapes (`decode_string`). Nesting deeper than MAX_DEPTH gives up (lark
reports it).

An array of MIN_RUN or more strings without escapes (a big group's members:
10k dense has 200 groups of 2,500) is delimited by a few C-level searches
(`_string_run`) and kept in compact form (`JArray.of_strings`): orjson's
values, and the spans found again in that array's text only if someone asks
for its items. It is checked to be one whole array of that many strings, so
the walk still uses one text value per orjson value.
"""

from __future__ import annotations

import re
from functools import partial
from itertools import islice
from operator import methodcaller
from typing import Any

import orjson

from policyc.diagnostics.source import SourceFile, Span
from policyc.grammar.cst import JArray, JBool, JMember, JNull, JNumber, JObject, JString, JValue
from policyc.grammar.hujson_tokens import decode_string, json_number

# hujson.lark's STRING (its first alternative is the common case, no backslash,
# matched without per-character alternation) and its comments. Atomic groups:
# a block comment ends at the first `*/`, as in lark's scanning lexer.
_STRING = r'"[^"\\\n]*+"|"(?:[^"\\\n]|\\[^\n])*+"'
_COMMENT = r"//[^\n]*+|(?>/\*(?s:.*?)\*/)"
# A comma right after the end of a value (string, number, literal, bracket) and
# before a closer, with only whitespace and comments between. One written after
# whitespace or a comment is left alone: orjson then refuses the text and lark
# parses it, which is correct, only slower.
_TRAILING_COMMA = rf"(?<=[\w\"\]}}]),(?=(?:[ \t\r\n]++|{_COMMENT})*+[\]}}])"
# Each match: a run of text kept as it is (strings whole, commas that are not
# trailing), then what the run stopped at: a comment, a trailing comma, or a
# `"` or `/` that starts neither a string nor a comment (the fast path gives up).
_STANDARDIZE = re.compile(
    rf"((?:[^\"/,]++|{_STRING}|(?!{_TRAILING_COMMA}),)*+)({_COMMENT}|,|[\"/])?")
# Tokens of a valid JSON text (strings, numbers, literals, brackets), each match
# starting with the gap before it, so the search never retries at each blank.
_TOKEN = re.compile(
    r'[ \t\r\n,:]*+("[^"\\]*+"|"(?:[^"\\]|\\.)*+"|-?\d[\d.eE+-]*+|true|false|null|[\[\]{}])')
_NEWLINES = re.compile(r"[^\n]+")
MIN_RUN = 16
"""Arrays of at least this many plain strings are kept compact; shorter ones
are read item by item (the builders ask for most items' spans anyway)."""
# One string of such an array in the source text (comments and commas between).
_RUN_ITEM = re.compile(rf'(?:[ \t\r\n,]++|{_COMMENT})*+("[^"]*+")')


class _GiveUp(Exception):
    """The fast path cannot vouch for this text: lark parses it."""


def fast_parse(source: SourceFile, text: str, max_depth: int) -> JValue | None:
    """lark's tree for `text` (the source's text, BOM already blanked), or None."""
    try:
        json_text = text
        try:
            value = orjson.loads(text)  # plain JSON (an inventory, a generated policy)
        except orjson.JSONDecodeError:
            json_text = standardize(text)
            value = orjson.loads(json_text)
        return _walk(source, json_text, value, max_depth)
    except (_GiveUp, orjson.JSONDecodeError, StopIteration):
        return None


def standardize(text: str) -> str:
    """`text` with comments and trailing commas blanked; raises _GiveUp on a stray `"`/`/`."""
    return _STANDARDIZE.sub(_blank, text)


def _blank(match: re.Match[str]) -> str:
    kept, stop = match.group(1, 2)
    if stop is None:
        return kept
    if stop in ('"', "/"):
        raise _GiveUp  # an unclosed string or comment, or a stray slash
    if "\n" in stop:  # a block comment over lines keeps its line breaks
        return kept + _NEWLINES.sub(_spaces, stop)
    return kept + " " * len(stop)


def _spaces(match: re.Match[str]) -> str:
    return " " * (match.end() - match.start())


def _walk(source: SourceFile, text: str, value: Any, max_depth: int) -> JValue:
    """orjson's value and the token spans of `text` (the standardized text),
    side by side in document order. Raises _GiveUp unless every token is used.

    Closures rather than methods: free variables are read faster than
    attributes, and this runs once per value of a 13 MB policy.
    """
    # Tokens end where the JSON does: a blank tail (trailing lines, a comment after the
    # last `}`, blanked) would make the search fail, and retry, at each of its characters.
    stop = len(text.rstrip(" \t\r\n"))
    next_span = map(methodcaller("span", 1), _TOKEN.finditer(text, 0, stop)).__next__

    def string(value: str) -> JString:
        start, end = next_span()
        if end - start != len(value) + 2:  # escapes: decoded the way lark's builder does
            value = _escaped(text[start:end])
        return JString(value, Span(source, start, end))

    def child(value: Any, depth: int) -> JValue:
        kind = type(value)
        if kind is str:
            return string(value)
        if kind is dict:
            return members(value, depth)
        if kind is list:
            return items(value, depth)
        start, end = next_span()
        span = Span(source, start, end)
        if value is None:
            return JNull(span)
        if kind is bool:
            return JBool(value, span)
        number = json_number(text[start:end])
        if number is None:
            raise _GiveUp
        return JNumber(number, span)

    def members(value: dict[str, Any], depth: int) -> JObject:
        if depth > max_depth:
            raise _GiveUp
        start = next_span()[0]
        if text[start] != "{":
            raise _GiveUp  # a repeated key shifted the tokens
        inner = depth + 1
        kept = tuple([JMember(string(key), string(item) if type(item) is str
                              else child(item, inner))
                      for key, item in value.items()])
        end = next_span()[1]
        if text[end - 1] != "}":
            raise _GiveUp  # a repeated key shifted the tokens
        return JObject(kept, Span(source, start, end))

    def items(value: list[Any], depth: int) -> JArray:
        nonlocal next_span
        if depth > max_depth:
            raise _GiveUp
        start = next_span()[0]
        if text[start] != "[":
            raise _GiveUp
        if len(value) >= MIN_RUN:
            end = _string_run(text, start, value)
            if end:  # the tokens go on after this array's `]`
                next_span = map(methodcaller("span", 1), _TOKEN.finditer(text, end, stop)).__next__
                values = tuple(value)
                return JArray.of_strings(values, Span(source, start, end),
                                         partial(_run_items, source, start, end, values))
        inner = depth + 1
        kept = tuple([string(item) if type(item) is str else child(item, inner)
                      for item in value])
        end = next_span()[1]
        if text[end - 1] != "]":
            raise _GiveUp
        return JArray(kept, Span(source, start, end))

    tree = child(value, 1)
    try:
        next_span()
    except StopIteration:
        return tree
    raise _GiveUp  # an object repeated a key: lark reports P002


def _string_run(text: str, start: int, value: list[Any]) -> int:
    """The end of the array at `start` (its `[`) when it holds as many strings
    as `value` (all strings) and nothing else, none with an escape; else 0 (it
    is read item by item). Passes of C-level searches, no object per item.

    The first `]` after `start` closes this array when no `[` or `{` comes
    between (none nested); a string holding a bracket or an escape makes the
    array go item by item, which is only slower. An even count of quotes then
    means the `]` is outside strings, and two per value means as many strings.
    """
    end = text.find("]", start) + 1
    if not end or text.count('"', start, end) != 2 * len(value) \
            or text.count("[", start, end) != 1 or text.find("{", start, end) >= 0 \
            or text.find("\\", start, end) >= 0 or set(map(type, value)) != {str}:
        return 0
    return end


def _run_items(source: SourceFile, start: int, end: int,
               values: tuple[str, ...]) -> tuple[JString, ...]:
    """The `JString`s of a compact array: its strings' spans, found again."""
    # One match per value, each right after the last (the run's text is only
    # strings, commas, blanks and comments); what a comment after the last holds is
    # never searched.
    found = islice(_RUN_ITEM.finditer(source.text, start + 1, end), len(values))
    return tuple([JString(value, Span(source, *match.span(1)))
                  for value, match in zip(values, found, strict=True)])


def _escaped(raw: str) -> str:
    if raw[0] != '"':
        raise _GiveUp  # a repeated key shifted the tokens
    try:
        return decode_string(raw)
    except ValueError:  # json.JSONDecodeError
        raise _GiveUp from None

"""Running hujson.lark on lark's LALR parser: the tree builder and the scanning lexer.

The grammar runs with the tree builder below passed as `transformer=`, so no
intermediate lark tree is built and lark types never leave this module.
`hujson.parse` comes here when its fast path (`hujson_fast.py`) gives up:
for every text with a diagnostic, and for what the fast path cannot vouch for.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from functools import cache
from typing import Any, cast

from lark import Lark, Token, Transformer
from lark.common import LexerConf
from lark.exceptions import UnexpectedCharacters, UnexpectedInput
from lark.lexer import Lexer, LexerState

from policyc.diagnostics.diagnostics import Diagnostics
from policyc.diagnostics.source import SourceFile, Span
from policyc.grammar.cst import JArray, JBool, JMember, JNull, JNumber, JObject, JString, JValue
from policyc.grammar.hujson import MAX_DEPTH
from policyc.grammar.hujson_errors import report_syntax_error
from policyc.grammar.hujson_tokens import JSON_NUMBER, decode_string, json_number

_CONTROL = re.compile(r"[\x00-\x1f]")




class _TreeBuilder(Transformer[Token, JValue]):
    """Rule callbacks run inside the LALR parser. Per-parse state lives in
    `source`/`diags`, set under `_LOCK`, because lark binds one transformer
    instance to the parser for its lifetime."""

    # Helper names must not collide with rule names: lark looks callbacks up
    # by rule name, so a method called `_value` would hijack the `_value` rule.
    def __init__(self) -> None:
        super().__init__()
        self.source = SourceFile("<none>", "")
        self.diags = Diagnostics()
        self.failed = False

    def start(self, children: list[Any]) -> JValue:
        return self._convert(children[0])

    # The parser runs with keep_all_tokens=True, so no lark child filter sits
    # between it and these callbacks (a measurable saving); in exchange the
    # callbacks see the ',' and ':' tokens and index around them.

    def object(self, children: list[Any]) -> JObject:
        # [{, }] or [{, members, }] or [{, members, ",", }]
        span = Span(self.source, children[0].start_pos or 0, children[-1].end_pos or 0)
        if len(children) == 2:
            return JObject((), span)
        members: list[JMember] = children[1]
        first_seen: dict[str, JString] = {}
        kept: list[JMember] = []
        for member in members:
            key = member.key
            first = first_seen.setdefault(key.value, key)
            if first is key:
                kept.append(member)
            else:
                self._duplicate(key, first)
        return JObject(tuple(kept), span)

    def members(self, children: list[Any]) -> list[JMember]:
        # [STRING, ":", value] first, then [members, ",", STRING, ":", value].
        member = JMember(self._string(children[-3]), self._convert(children[-1]))
        if len(children) == 3:
            return [member]
        members: list[JMember] = children[0]
        members.append(member)
        return members

    def array(self, children: list[Any]) -> JArray:
        # [[, ]] or [[, items, ]] or [[, items, ",", ]]
        span = Span(self.source, children[0].start_pos or 0, children[-1].end_pos or 0)
        return JArray(tuple(children[1]) if len(children) > 2 else (), span)

    def items(self, children: list[Any]) -> list[JValue]:
        # [value] first, then [items, ",", value].
        if len(children) == 1:
            return [self._convert(children[0])]
        items: list[JValue] = children[0]
        items.append(self._convert(children[2]))
        return items

    def _convert(self, child: Any) -> JValue:
        if not isinstance(child, Token):
            return child  # type: ignore[no-any-return]  # already a JObject/JArray
        kind = child.type
        if kind == "STRING":
            return self._string(child)
        span = Span(self.source, child.start_pos or 0, child.end_pos or 0)
        if kind == "NUMBER":
            return JNumber(self._number(child, span), span)
        if kind == "NULL":
            return JNull(span)
        return JBool(kind == "TRUE", span)

    def _string(self, token: Token) -> JString:
        span = Span(self.source, token.start_pos or 0, token.end_pos or 0)
        raw: str = token
        if "\\" not in raw and not _CONTROL.search(raw):
            return JString(raw[1:-1], span)
        try:
            return JString(decode_string(raw), span)
        except json.JSONDecodeError as err:
            self._bad_string(raw, token.start_pos or 0, err)
            return JString(raw[1:-1], span)

    def _bad_string(self, raw: str, start: int, err: json.JSONDecodeError) -> None:
        at = start + err.pos
        if err.msg.startswith("Invalid control character"):
            code = ord(raw[err.pos])
            name = {9: "tab", 10: "newline", 13: "carriage return"}.get(code, f"U+{code:04X}")
            escape = json.dumps(chr(code))[1:-1]
            message = f"raw control character ({name}) in string; write it as {escape}"
            width = 1
        else:
            if raw[err.pos] != "\\":  # json points \\uXXXX errors at the 'u'
                at -= 1
            escape = raw[at - start : at - start + 6].split('"')[0]
            if not escape.startswith("\\u"):
                escape = escape[:2]
            message = f"invalid escape {escape} in string"
            width = len(escape)
        self.failed = True
        self.diags.error("P003", Span(self.source, at, at + width), message)

    def _number(self, token: Token, span: Span) -> int | float:
        raw: str = token
        number = json_number(raw)
        if number is not None:
            return number
        self.failed = True
        if JSON_NUMBER.fullmatch(raw) is None:
            self.diags.error("P004", span, _number_problem(raw))
        else:
            self.diags.error("P004", span, f"number {_abbreviate(raw)} is out of range")
        return 0

    def _duplicate(self, key: JString, first: JString) -> None:
        line, column = first.span.source.position(first.span.start)
        self.diags.error(
            "P002", key.span, f"duplicate key {json.dumps(key.value)} in object",
            notes=(f"first defined at line {line}, column {column}; "
                   "the first definition is kept",))


def _abbreviate(raw: str) -> str:
    return raw if len(raw) <= 24 else f"{raw[:10]}...{raw[-10:]} ({len(raw)} characters)"


def _number_problem(raw: str) -> str:
    body = raw.lstrip("+-")
    if raw.startswith("+"):
        return f"invalid number {raw}: JSON numbers cannot start with '+'"
    if body[:2].lower() in ("0x", "0o", "0b"):
        return f"invalid number {raw}: hex, octal and binary literals are not JSON"
    if body.startswith("."):
        return f"invalid number {raw}: a digit is required before '.'"
    if re.match(r"0\d", body):
        return f"invalid number {raw}: leading zeros are not allowed"
    if body.endswith(".") or ".e" in body.lower():
        return f"invalid number {raw}: a digit is required after '.'"
    return f"invalid number {raw}"


# --- running lark ------------------------------------------------------------


_DEPTH_STEP = {"LBRACE": 1, "LSQB": 1, "RBRACE": -1, "RSQB": -1}


class _TooDeep(Exception):
    def __init__(self, offset: int) -> None:
        super().__init__(offset)
        self.offset = offset


class _ScanningLexer(Lexer):
    """lark's `basic` lexer, minus per-token line counting, in one regex.

    The terminals come from hujson.lark itself (lexer_conf), so the grammar
    stays the single definition. One anchored match per token consumes the
    ignored whitespace/comments and the next token in a single C-level match;
    that roughly halves lexing time compared to lark's basic lexer, which
    matters for the 1 MB goal (docs/performance.md). Tokens carry offsets
    only; line and column come lazily from `SourceFile.position`.
    """

    __future_interface__ = 1

    def __init__(self, conf: LexerConf) -> None:
        ignored = "|".join(t.pattern.to_regexp() for t in conf.terminals if t.name in conf.ignore)
        kept = "|".join(f"(?P<{t.name}>{t.pattern.to_regexp()})"
                        for t in conf.terminals if t.name not in conf.ignore)
        # Atomic group: whitespace is always taken whole, and backtracking into
        # it on a bad character would be exponential.
        self._skip = re.compile(f"(?>(?:{ignored})*)")
        self._scan = re.compile(f"(?>(?:{ignored})*)(?:{kept})")

    def lex(self, lexer_state: LexerState, parser_state: Any) -> Iterator[Token]:
        text: str = lexer_state.text.text
        pos = depth = 0
        new_token = Token
        scan = self._scan.match
        # Anchored matches, not finditer: at a blank tail (or before a bad character)
        # finditer would fail and retry at each of the characters that follow.
        while (match := scan(text, pos)) is not None:
            kind = match.lastgroup or ""
            pos = match.end()
            if kind in _DEPTH_STEP:
                depth += _DEPTH_STEP[kind]
                if depth > MAX_DEPTH:
                    raise _TooDeep(match.start(kind))
            yield new_token(kind, match.group(kind), match.start(kind), None, None, None, None,
                            pos)
        stop = self._skip.match(text, pos)
        end = stop.end() if stop else pos
        if end != len(text):
            raise UnexpectedCharacters(text, end, 0, 0)  # type: ignore[no-untyped-call]


_LOCK = threading.Lock()


@cache
def _parser() -> tuple[Lark, _TreeBuilder]:
    builder = _TreeBuilder()
    lark = Lark.open_from_package(
        "policyc.grammar", "hujson.lark", ("",),
        parser="lalr", lexer=_ScanningLexer, transformer=builder, maybe_placeholders=False,
        keep_all_tokens=True,
    )
    return lark, builder


def parse_with_lark(source: SourceFile, text: str, diags: Diagnostics) -> JValue | None:
    """`text` is source.text with a BOM blanked."""
    lark, builder = _parser()
    with _LOCK:
        builder.source, builder.diags, builder.failed = source, diags, False
        try:
            value = cast(JValue, lark.parse(text))
        except UnexpectedInput as err:
            report_syntax_error(err, source, text, diags)
            return None
        except _TooDeep as err:
            diags.error("P001", Span(source, err.offset, err.offset + 1),
                        f"nesting is deeper than {MAX_DEPTH} levels")
            return None
        finally:
            failed = builder.failed
            builder.source, builder.diags = SourceFile("<none>", ""), Diagnostics()
    return None if failed else value

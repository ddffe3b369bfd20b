"""HuJSON text -> `cst.py` value tree with a span on every value and key.

HuJSON is JSON plus `//` and `/* */` comments and one trailing comma
(`policyc/grammar/hujson.lark`). The grammar runs on lark's LALR parser with
the tree builder below passed as `transformer=`, so no intermediate lark tree
is built and lark types never leave this module.

Errors are diagnostics, never exceptions:
  P001 syntax error, P002 duplicate key, P003 bad string, P004 bad number,
  P005 unterminated comment, P006 unreadable file.
A file with a syntax error (P001/P003/P004/P005) yields `None`. A duplicate
key (P002) is reported at the second key; the tree is still returned and
keeps the FIRST member, matching `JObject.get`.

A blank file (only whitespace and comments) yields `None` with no
diagnostic: callers treat it as "no policy" (POLICY-FORMAT.md 1).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any, cast

from lark import Lark, Token, Transformer
from lark.common import LexerConf
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken
from lark.lexer import Lexer, LexerState

from policyc.policy.cst import JArray, JBool, JMember, JNull, JNumber, JObject, JString, JValue
from policyc.policy.diagnostics import Diagnostic, Diagnostics, Severity
from policyc.policy.source import SourceFile, Span

BOM = "\ufeff"
_IGNORED = re.compile(r"(?:[ \t\r\n]+|//[^\n]*|/\*(?s:.*?)\*/)+")
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(\.\d+)?([eE][-+]?\d+)?")
_CONTROL = re.compile(r"[\x00-\x1f]")
_WORD = re.compile(r"[A-Za-z_$][\w$]*")
_SINGLE_QUOTED = re.compile(r"'((?:[^'\\\n]|\\.)*)'")
_LITERAL_FIXES = {"true": "true", "false": "false", "null": "null", "none": "null",
                  "nil": "null", "yes": "true", "no": "false"}
_CLOSER = {"LBRACE": "}", "LSQB": "]"}


def is_blank(text: str) -> bool:
    """True when `text` holds no JSON value: only whitespace, comments, a BOM."""
    text = text.removeprefix(BOM)
    if not text:
        return True
    match = _IGNORED.match(text)
    return match is not None and match.end() == len(text)


def parse(source: SourceFile, diags: Diagnostics) -> JValue | None:
    """Parse `source`; append problems to `diags`. None for blank or broken input."""
    text = source.text
    if is_blank(text):
        return None
    if text.startswith(BOM):
        text = " " + text[1:]  # same length, so offsets stay true to source.text
    return _parse_locked(source, text, diags)


def parse_text(text: str, name: str = "<string>") -> tuple[JValue | None, Diagnostics]:
    """Convenience for tests and small callers: parse a string."""
    diags = Diagnostics()
    return parse(SourceFile(name, text), diags), diags


def read_source(path: str | Path) -> SourceFile | Diagnostic:
    """Read a UTF-8 file (BOM dropped) or explain with a P006 why it cannot be."""
    name = str(path)
    try:
        text = Path(path).read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        return _io_error(name, f"file is not UTF-8 (invalid byte at offset {err.start})")
    except IsADirectoryError:
        return _io_error(name, "is a directory, not a file")
    except FileNotFoundError:
        return _io_error(name, "no such file")
    except PermissionError:
        return _io_error(name, "permission denied")
    except OSError as err:
        return _io_error(name, f"cannot read the file: {err.strerror or err}")
    return SourceFile(name, text)


def _io_error(name: str, message: str) -> Diagnostic:
    return Diagnostic("P006", Severity.ERROR, message, Span(SourceFile(name, ""), 0, 0))


# --- the tree builder --------------------------------------------------------


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
            # json's own decoder: escapes and surrogate pairs exactly like json.
            return JString(json.loads(raw), span)
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
        match = _JSON_NUMBER.fullmatch(raw)
        if match is None:
            self.failed = True
            self.diags.error("P004", span, _number_problem(raw))
            return 0
        if match.group(1) is None and match.group(2) is None:
            return int(raw)
        return float(raw)

    def _duplicate(self, key: JString, first: JString) -> None:
        line, column = first.span.source.position(first.span.start)
        self.diags.error(
            "P002", key.span, f"duplicate key {json.dumps(key.value)} in object",
            notes=(f"first defined at line {line}, column {column}; "
                   "the first definition is kept",))


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


MAX_DEPTH = 200
"""Deepest nesting accepted. Policies nest a few levels; the limit keeps
recursive consumers of the tree (to_python, build) clear of RecursionError."""
_DEPTH_STEP = {"LBRACE": 1, "LSQB": 1, "RBRACE": -1, "RSQB": -1}


class _TooDeep(Exception):
    def __init__(self, offset: int) -> None:
        super().__init__(offset)
        self.offset = offset


class _ScanningLexer(Lexer):
    """lark's `basic` lexer, minus per-token line counting, in one regex.

    The terminals come from hujson.lark itself (lexer_conf), so the grammar
    stays the single definition. One `finditer` over the text consumes the
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
        for match in self._scan.finditer(text):
            if match.start() != pos:
                break  # finditer skipped something no terminal matches
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


def _parse_locked(source: SourceFile, text: str, diags: Diagnostics) -> JValue | None:
    lark, builder = _parser()
    with _LOCK:
        builder.source, builder.diags, builder.failed = source, diags, False
        try:
            value = cast(JValue, lark.parse(text))
        except UnexpectedInput as err:
            _report_syntax_error(err, source, text, diags)
            return None
        except _TooDeep as err:
            diags.error("P001", Span(source, err.offset, err.offset + 1),
                        f"nesting is deeper than {MAX_DEPTH} levels")
            return None
        finally:
            failed = builder.failed
            builder.source, builder.diags = SourceFile("<none>", ""), Diagnostics()
    return None if failed else value


# --- syntax errors -------------------------------------------------------------
# lark's exception says where parsing stopped; the parser's value stack says
# what came before (open brackets, the previous token), which is enough to
# word the error the way a person would, without lark's repr ever showing.


def _report_syntax_error(err: UnexpectedInput, source: SourceFile, text: str,
                         diags: Diagnostics) -> None:
    if isinstance(err, UnexpectedToken):
        stack = getattr(err.interactive_parser, "parser_state", None)
        values = list(stack.value_stack) if stack is not None else []
        _unexpected_token(err.token, values, source, text, diags)
    elif isinstance(err, UnexpectedCharacters):
        _unexpected_character(err.pos_in_stream or 0, source, text, diags)
    else:  # pragma: no cover - lark raises only the two above for LALR
        diags.error("P001", Span(source, len(text), len(text)), "syntax error")


def _unexpected_token(token: Token, values: list[Any], source: SourceFile, text: str,
                      diags: Diagnostics) -> None:
    opened = _open_brackets(values)
    if token.type == "$END":
        end = token.end_pos if token.end_pos is not None else len(text)
        missing = _missing_closers([_CLOSER[t.type] for t in reversed(opened)])
        message = "unexpected end of file" + (f": missing {missing}" if missing else "")
        notes = [_opened_note(source, opened[-1])] if opened else []
        diags.error("P001", Span(source, end, end), message, notes=notes)
        return
    span = Span(source, token.start_pos or 0, token.end_pos or 0)
    container = opened[-1].type if opened else None
    previous = _previous_kind(values, container)
    notes = []
    if token.type == "COMMA" and previous in ("COMMA", "LBRACE", "LSQB"):
        message = _stray_comma(previous, text, token.end_pos or 0)
    else:
        expected = _EXPECTED[(container, previous)]
        found = _describe(token)
        if expected is None:
            message = f"unexpected {found} after the end of the document"
        else:
            message = f"expected {expected}, found {found}"
        if previous == "value" and token.type in _VALUE_TOKENS and container is not None:
            notes.append("is a ',' missing before it?")
        if token.type in ("RBRACE", "RSQB") and opened and \
                _CLOSER[opened[-1].type] != str(token):
            notes.append(_opened_note(source, opened[-1]))  # mismatched bracket
    diags.error("P001", span, message, notes=notes)


def _missing_closers(closers: list[str]) -> str:
    """"']'", "']' and '}'", "']', ']' and '}'", or a count for deep nesting."""
    quoted = [repr(c) for c in closers[:3]]
    if len(closers) > 3:
        quoted.append(f"{len(closers) - 3} more")
    return ", ".join(quoted[:-1]) + " and " + quoted[-1] if len(quoted) > 1 else "".join(quoted)


def _open_brackets(values: list[Any]) -> list[Token]:
    """Brackets not yet closed. A closed container is usually reduced to a value
    already, but LALR may stop before reducing it, so closers cancel openers."""
    opened: list[Token] = []
    for value in values:
        if isinstance(value, Token):
            if value.type in _CLOSER:
                opened.append(value)
            elif value.type in ("RBRACE", "RSQB") and opened:
                opened.pop()
    return opened


_VALUE_TOKENS = frozenset({"STRING", "NUMBER", "TRUE", "FALSE", "NULL", "LBRACE", "LSQB"})

# (innermost open bracket, what came last) -> what the parser wanted.
# None as the expectation means the document was already complete.
_EXPECTED: dict[tuple[str | None, str], str | None] = {
    ("LBRACE", "LBRACE"): "a string key or '}'",
    ("LBRACE", "COMMA"): "a string key or '}' after ','",
    ("LBRACE", "key"): "':' after object key",
    ("LBRACE", "COLON"): "a value after ':'",
    ("LBRACE", "value"): "',' or '}' after object member",
    ("LSQB", "LSQB"): "a value or ']'",
    ("LSQB", "COMMA"): "a value or ']' after ','",
    ("LSQB", "value"): "',' or ']' after array element",
    (None, "start"): "a value",
    (None, "value"): None,
}


def _previous_kind(values: list[Any], container: str | None) -> str:
    """Classify what the parser shifted last: a bracket, ',', ':', a key or a value."""
    if not values:
        return "start"
    last = values[-1]
    if not isinstance(last, Token) or last.type not in ("LBRACE", "LSQB", "COMMA", "COLON",
                                                         "STRING"):
        return "value"
    if last.type != "STRING":
        return str(last.type)
    before = values[-2] if len(values) > 1 else None
    if container == "LBRACE" and isinstance(before, Token) and before.type in ("LBRACE",
                                                                               "COMMA"):
        return "key"
    return "value"


def _stray_comma(previous: str, text: str, after: int) -> str:
    if previous != "COMMA":
        return "a comma is not allowed before the first element"
    if text[_skip_ignored(text, after) : _skip_ignored(text, after) + 1] in ("]", "}"):
        return "trailing comma is not allowed twice"
    return "expected a value between the commas, found ','"


def _opened_note(source: SourceFile, token: Token) -> str:
    line, column = source.position(token.start_pos or 0)
    return f"'{token}' opened at line {line}, column {column} is not closed yet"


def _describe(token: Token) -> str:
    text = str(token)
    if token.type == "STRING":
        return "string " + (text if len(text) <= 32 else text[:29] + '..."')
    if token.type == "NUMBER":
        return f"number {text}"
    return f"'{text}'"


def _skip_ignored(text: str, pos: int) -> int:
    match = _IGNORED.match(text, pos)
    return match.end() if match else pos


def _unexpected_character(pos: int, source: SourceFile, text: str,
                          diags: Diagnostics) -> None:
    char = text[pos]
    line_end = text.find("\n", pos)
    line_end = len(text) if line_end < 0 else line_end
    if char == '"':
        diags.error("P003", Span(source, pos, line_end), "unterminated string",
                    notes=("a string must close with '\"' on the same line; "
                           "write line breaks as \\n",))
    elif char == "'":
        quoted = _SINGLE_QUOTED.match(text, pos)
        end = quoted.end() if quoted else pos + 1
        fix = json.dumps(quoted.group(1)) if quoted else None
        diags.error("P001", Span(source, pos, end), "strings must use double quotes",
                    suggestion=fix)
    elif text.startswith("/*", pos):
        diags.error("P005", Span(source, pos, pos + 2), "unterminated /* comment",
                    notes=("the comment runs to the end of the file; close it with */",))
    elif char == "/":
        diags.error("P001", Span(source, pos, pos + 1),
                    "unexpected '/': comments start with // or /*")
    else:
        _unexpected_word(pos, source, text, diags)


def _unexpected_word(pos: int, source: SourceFile, text: str, diags: Diagnostics) -> None:
    special = re.compile(r"[-+]?(NaN|Infinity)\b").match(text, pos)
    if special:
        diags.error("P004", Span(source, pos, special.end()),
                    f"{special.group(0)} is not a valid JSON number")
        return
    word = _WORD.match(text, pos)
    if word is None:
        if text[pos] in "-+.0123456789":
            diags.error("P004", Span(source, pos, pos + 1), "invalid number")
            return
        diags.error("P001", Span(source, pos, pos + 1),
                    f"unexpected character {_char_name(text[pos])}")
        return
    name, span = word.group(0), Span(source, pos, word.end())
    fix = _LITERAL_FIXES.get(name.lower())
    if fix is not None:
        diags.error("P001", span, f"unknown literal {name!r}; JSON literals are lowercase "
                    "true, false and null", suggestion=fix)
    elif text[_skip_ignored(text, word.end()) :].startswith(":"):
        diags.error("P001", span, "object keys must be double-quoted strings",
                    suggestion=json.dumps(name))
    else:
        diags.error("P001", span, f"unexpected word {name!r}: strings must use double quotes",
                    suggestion=json.dumps(name))


def _char_name(char: str) -> str:
    if char.isprintable() and not char.isspace():
        return f"'{char}'"
    return f"U+{ord(char):04X}"

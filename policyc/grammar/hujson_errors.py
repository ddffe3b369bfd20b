"""Worded HuJSON syntax errors.

lark's exception says where parsing stopped; the parser's value stack says
what came before (open brackets, the previous token), which is enough to
word the error the way a person would, without lark's repr ever showing.
"""

from __future__ import annotations

import json
import re
from typing import Any

from lark import Token
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from policyc.diagnostics.diagnostics import Diagnostics
from policyc.diagnostics.source import SourceFile, Span
from policyc.grammar.hujson_tokens import IGNORED

_WORD = re.compile(r"[A-Za-z_$][\w$]*")
_SINGLE_QUOTED = re.compile(r"'((?:[^'\\\n]|\\.)*)'")
_LITERAL_FIXES = {"true": "true", "false": "false", "null": "null", "none": "null",
                  "nil": "null", "yes": "true", "no": "false"}
_CLOSER = {"LBRACE": "}", "LSQB": "]"}




def report_syntax_error(err: UnexpectedInput, source: SourceFile, text: str,
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
    match = IGNORED.match(text, pos)
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

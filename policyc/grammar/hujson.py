"""HuJSON text -> `cst.py` value tree with a span on every value and key.

HuJSON is JSON plus `//` and `/* */` comments and one trailing comma
(`policyc/grammar/hujson.lark`). The grammar runs on lark's LALR parser
(`hujson_lark.py`), the authority for syntax and every diagnostic. In front
of it, `hujson_fast.py` builds the same tree with orjson when it can vouch
that the result is lark's (no diagnostic, nothing lark's builder reads
differently); anything else goes to lark. Lark types never leave grammar/.

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

from pathlib import Path

from policyc.diagnostics.diagnostics import Diagnostic, Diagnostics, Severity
from policyc.diagnostics.source import SourceFile, Span
from policyc.grammar.cst import JValue
from policyc.grammar.hujson_fast import fast_parse
from policyc.grammar.hujson_tokens import IGNORED

BOM = "\ufeff"
MAX_DEPTH = 200
"""Deepest nesting accepted. Policies nest a few levels; the limit keeps
recursive consumers of the tree (to_python, build) clear of RecursionError."""


def is_blank(text: str) -> bool:
    """True when `text` holds no JSON value: only whitespace, comments, a BOM."""
    text = text.removeprefix(BOM)
    if not text:
        return True
    match = IGNORED.match(text)
    return match is not None and match.end() == len(text)


def parse(source: SourceFile, diags: Diagnostics) -> JValue | None:
    """Parse `source`; append problems to `diags`. None for blank or broken input."""
    text = source.text
    if is_blank(text):
        return None
    if text.startswith(BOM):
        text = " " + text[1:]  # same length, so offsets stay true to source.text
    # orjson and two regexes, when they give exactly lark's tree (hujson_fast.py).
    tree = fast_parse(source, text, MAX_DEPTH)
    if tree is not None:
        return tree
    from policyc.grammar.hujson_lark import parse_with_lark  # only when needed: ~40 ms of imports

    return parse_with_lark(source, text, diags)


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



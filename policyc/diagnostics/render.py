"""Views of `Diagnostic`s: one model, many renderers (as in ruff).

- `render_full`: compiler style, with the source line, a caret underline,
  notes and a did-you-mean help line. ANSI colour only when asked.
- `render_concise`: one `file:line:col: severity[CODE]: message` per line.
- `render_json`: a JSON list for tools and tests.
- `render_github`: GitHub Actions workflow commands (annotations).
- `render_sarif`: SARIF 2.1.0 for code-scanning uploads.
- `lsp_range`: the one place that converts a span to LSP's 0-based UTF-16
  positions.

Human and machine formats use 1-based lines and columns counted in Unicode
code points; `end_line`/`end_column` point just past the span (exclusive).
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from policyc.diagnostics.codes import CODES
from policyc.diagnostics.diagnostics import Diagnostic, Severity
from policyc.diagnostics.source import Span

_RESET = "\x1b[0m"
_BOLD = "\x1b[1m"
_BLUE = "\x1b[1;34m"
_SEVERITY_COLOR = {Severity.ERROR: "\x1b[1;31m", Severity.WARNING: "\x1b[1;33m",
                   Severity.NOTE: "\x1b[1;36m"}
_CONTEXT_WIDTH = 100  # longer source lines are cut to a window around the span
_TAB = "    "


# --- full ---------------------------------------------------------------------


def render_full(diags: Iterable[Diagnostic], color: bool = False) -> str:
    """Compiler-style text: header, source excerpt with carets, notes, help."""
    return "\n".join(_full_one(d, _Paint(color)) for d in diags)


class _Paint:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, style: str, text: str) -> str:
        return f"{style}{text}{_RESET}" if self.enabled and text else text


def _full_one(diag: Diagnostic, paint: _Paint) -> str:
    severity = paint(_SEVERITY_COLOR[diag.severity], f"{diag.severity.value}[{diag.code}]")
    where = f"{paint(_BOLD, diag.span.location())}: " if diag.span.is_known else ""
    lines = [f"{where}{severity}: {paint(_BOLD, diag.message)}"]
    snippet = _snippet(diag.span)
    gutter_width = len(str(diag.span.line))
    pad = " " * gutter_width
    if snippet is not None:
        line_text, caret_pad, caret_len = snippet
        bar = paint(_BLUE, "|")
        carets = paint(_SEVERITY_COLOR[diag.severity], "^" * caret_len)
        lines += [f"{pad} {bar}",
                  f"{paint(_BLUE, str(diag.span.line))} {bar} {line_text}".rstrip(),
                  f"{pad} {bar} {' ' * caret_pad}{carets}"]
    for note in diag.notes:
        lines.append(f"{pad} {paint(_BLUE, '=')} {paint(_BOLD, 'note')}: {note}")
    if diag.suggestion is not None:
        lines.append(f"{pad} {paint(_BLUE, '=')} {paint(_BOLD, 'help')}: "
                     f"did you mean {_quote(diag.suggestion)}?")
    return "\n".join(lines) + "\n"


def _snippet(span: Span) -> tuple[str, int, int] | None:
    """The span's first line (tabs expanded, long lines windowed), the display
    width before the caret and the caret length; None when there is no text."""
    source = span.source
    if not source.text or span.start > len(source.text):
        return None
    line, column = source.position(span.start)
    text = source.line_text(line)
    start = column - 1
    end_line, end_column = source.position(max(span.end, span.start))
    end = end_column - 1 if end_line == line else len(text)
    end = max(min(end, len(text)), start)
    text, start, end = _window(text, start, end)
    caret_pad = _width(text[:start])
    caret_len = max(1, _width(text[start:end]))
    return _display(text), caret_pad, caret_len


def _window(text: str, start: int, end: int) -> tuple[str, int, int]:
    """Cut a long line (minified JSON) to about `_CONTEXT_WIDTH` around the span."""
    if len(text) <= _CONTEXT_WIDTH:
        return text, start, end
    left = max(0, start - _CONTEXT_WIDTH // 3)
    right = min(len(text), max(end, left + _CONTEXT_WIDTH))
    right = min(right, left + 2 * _CONTEXT_WIDTH)
    head = "..." if left > 0 else ""
    tail = "..." if right < len(text) else ""
    end = min(end, right)
    return head + text[left:right] + tail, start - left + len(head), end - left + len(head)


def _display(text: str) -> str:
    return text.replace("\t", _TAB)


def _width(text: str) -> int:
    """Terminal columns `text` takes: tabs as 4, wide East Asian as 2, marks as 0."""
    if text.isascii():  # no ASCII character is wide or combining (check 1 MB: 3,500 lines)
        return len(text) + (len(_TAB) - 1) * text.count("\t")
    width = 0
    for char in text:
        if char == "\t":
            width += len(_TAB)
        elif unicodedata.combining(char):
            continue
        else:
            width += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return width


def _quote(suggestion: str) -> str:
    return suggestion if suggestion.startswith('"') else json.dumps(suggestion)


# --- concise ------------------------------------------------------------------


def render_concise(diags: Iterable[Diagnostic]) -> str:
    """One line per diagnostic, the form editors' error matchers understand."""
    lines = []
    for diag in diags:
        line = str(diag)
        if diag.suggestion is not None:
            line += f" (did you mean {_quote(diag.suggestion)}?)"
        lines.append(line)
    return "\n".join(lines) + ("\n" if lines else "")


# --- json ---------------------------------------------------------------------


def to_dict(diag: Diagnostic) -> dict[str, Any]:
    """The machine view shared by the JSON renderer and other tools."""
    line, column = diag.span.source.position(diag.span.start)
    end_line, end_column = diag.span.end_position
    return {
        "code": diag.code, "name": diag.name, "severity": diag.severity.value,
        "message": diag.message, "file": diag.span.file,
        "line": line, "column": column, "end_line": end_line, "end_column": end_column,
        "notes": list(diag.notes), "suggestion": diag.suggestion,
    }


def render_json(diags: Iterable[Diagnostic]) -> str:
    return json.dumps([to_dict(d) for d in diags], indent=2, ensure_ascii=False) + "\n"


# --- github -------------------------------------------------------------------

_GITHUB_COMMAND = {Severity.ERROR: "error", Severity.WARNING: "warning",
                   Severity.NOTE: "notice"}


def render_github(diags: Iterable[Diagnostic]) -> str:
    """`::error file=..,line=..::message` workflow commands, one per line."""
    lines = []
    for diag in diags:
        info = to_dict(diag)
        props = ",".join(f"{key}={_github_escape(str(value), prop=True)}" for key, value in (
            ("file", info["file"]), ("line", info["line"]), ("col", info["column"]),
            ("endLine", info["end_line"]), ("endColumn", info["end_column"]),
            ("title", diag.code)))
        message = diag.message
        if diag.suggestion is not None:
            message += f" (did you mean {_quote(diag.suggestion)}?)"
        message = "\n".join([message, *diag.notes])
        lines.append(f"::{_GITHUB_COMMAND[diag.severity]} {props}::"
                     f"{_github_escape(message, prop=False)}")
    return "\n".join(lines) + ("\n" if lines else "")


def _github_escape(text: str, *, prop: bool) -> str:
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    if prop:
        text = text.replace(":", "%3A").replace(",", "%2C")
    return text


# --- sarif --------------------------------------------------------------------

_SARIF_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.NOTE: "note"}
_SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"


def render_sarif(diags: Iterable[Diagnostic]) -> str:
    """A SARIF 2.1.0 log with one run; every registered code is a rule."""
    codes = list(CODES)
    rules = [{
        "id": code, "name": info.name, "shortDescription": {"text": info.summary},
        "defaultConfiguration": {"level": "warning" if code.startswith("W") else "error"},
    } for code, info in CODES.items()]
    results = [_sarif_result(d, codes.index(d.code)) for d in diags]
    log = {
        "$schema": _SARIF_SCHEMA, "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "policyc", "version": _version(), "rules": rules}},

            "columnKind": "unicodeCodePoints",
            "results": results,
        }],
    }
    return json.dumps(log, indent=2, ensure_ascii=False) + "\n"


def _sarif_result(diag: Diagnostic, rule_index: int) -> dict[str, Any]:
    info = to_dict(diag)
    text = diag.message
    if diag.suggestion is not None:
        text += f" (did you mean {_quote(diag.suggestion)}?)"
    text = "\n".join([text, *diag.notes])
    region = {"startLine": info["line"], "startColumn": info["column"],
              "endLine": info["end_line"], "endColumn": info["end_column"],
              "charOffset": diag.span.start,
              "charLength": max(0, diag.span.end - diag.span.start)}
    return {
        "ruleId": diag.code, "ruleIndex": rule_index, "level": _SARIF_LEVEL[diag.severity],
        "message": {"text": text},
        "locations": [{"physicalLocation": {
            "artifactLocation": {"uri": quote(diag.span.file.replace("\\", "/"))},
            "region": region}}],
    }


def _version() -> str:
    from importlib import metadata  # 50 ms of imports (email.*): only SARIF needs it

    try:
        return metadata.version("policyc")
    except metadata.PackageNotFoundError:
        return "0"


# --- LSP ----------------------------------------------------------------------


def lsp_range(span: Span) -> tuple[tuple[int, int], tuple[int, int]]:
    """((line, character), (line, character)), 0-based, characters in UTF-16
    code units as LSP requires. The only such conversion in policyc."""
    return _lsp_position(span, span.start), _lsp_position(span, max(span.end, span.start))


def _lsp_position(span: Span, offset: int) -> tuple[int, int]:
    source = span.source
    offset = min(offset, len(source.text))
    line, _ = source.position(offset)
    line_start = source.line_start(line)
    prefix = source.text[line_start:offset]
    # Characters outside the BMP take two UTF-16 code units.
    return line - 1, len(prefix) + sum(1 for ch in prefix if ord(ch) > 0xFFFF)

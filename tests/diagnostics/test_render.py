"""Diagnostic renderers: golden files for the text formats, structure for the rest.

Goldens live in tests/golden/diagnostics/<case>.<format>.txt. A mismatch or a
missing golden writes <name>.actual next to it; `POLICYC_UPDATE_GOLDENS=1`
rewrites the goldens instead.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Callable

import pytest
from goldens import GOLDEN_ROOT, check_golden
from hypothesis import given, settings
from hypothesis import strategies as st

from policyc.diagnostics.codes import CODES
from policyc.diagnostics.diagnostics import Diagnostic, Diagnostics
from policyc.diagnostics.render import (
    _width,
    lsp_range,
    render_concise,
    render_full,
    render_github,
    render_json,
    render_sarif,
    to_dict,
)
from policyc.diagnostics.source import SourceFile
from policyc.grammar.hujson import parse, read_source

GOLDEN_DIR = GOLDEN_ROOT / "diagnostics"

POLICY = """{
  "groups": {
    "group:dev": ["alice@example.com", "bob@example.com"],
  },
  "acls": [
\t{"action": "accept", "src": ["group:devz"], "dst": ["tag:web:443"]},
  ],
}
"""


def _parse_errors(name: str, text: str) -> Diagnostics:
    diags = Diagnostics()
    parse(SourceFile(name, text), diags)
    assert diags.items, f"{name} should not parse"
    return diags


def _policy_errors() -> Diagnostics:
    source = SourceFile("policy.hujson", POLICY)
    diags = Diagnostics()
    start = POLICY.index('"group:devz"')
    diags.error("E104", source.span(start, start + len('"group:devz"')),
                'group "group:devz" is not defined',
                notes=("groups are defined in the `groups` section",), suggestion="group:dev")
    start = POLICY.index('"group:dev"')
    diags.warning("W202", source.span(start, start + len('"group:dev"')),
                  'group "group:dev" is never used')
    start = POLICY.index('"acls"')
    end = POLICY.index("],", start) + 1
    diags.error("E102", source.span(start, end), "a multi-line span underlines its first line")
    return diags


def _odd_sources() -> Diagnostics:
    diags = Diagnostics()
    wide = SourceFile("wide.hujson", '{"名前": "tag:ウェブ", "x": "😀", "k": 1}\n')
    start = wide.text.index('"k"')
    diags.error("E101", wide.span(start, start + 3), "carets line up after wide characters")
    long_line = "[" + ", ".join(f'"host-{i}"' for i in range(60)) + "]"
    minified = SourceFile("min.json", long_line)
    start = long_line.index('"host-42"')
    diags.error("E106", minified.span(start, start + 9), "long lines are cut around the span")
    eof = SourceFile("eof.hujson", "[1,\n")
    diags.error("P001", eof.span(4, 4), "an empty span at the end of the file")
    return diags


def _io_error() -> Diagnostics:
    result = read_source("/nonexistent/dir/policy.hujson")
    assert isinstance(result, Diagnostic)
    return Diagnostics([result])


CASES: dict[str, Callable[[], Diagnostics]] = {
    "missing-comma": lambda: _parse_errors(
        "policy.hujson",
        '{\n  "groups": {\n    "group:a": ["x@"]\n    "group:b": ["y@"],\n  }\n}\n'),
    "unclosed-brackets": lambda: _parse_errors(
        "policy.hujson", '{\n  "acls": [\n    {"a": 1},\n'),
    "double-trailing-comma": lambda: _parse_errors(
        "policy.hujson", '{"hosts": {"a": "1.2.3.4",,}}'),
    "string-problems": lambda: _parse_errors(
        "policy.hujson", '{\n\t"a": "tab\there",\n\t"b": "\\q",\n\t\'c\': 1,\n}'),
    "unterminated-comment": lambda: _parse_errors("policy.hujson", '{"a": 1}\n/* note\n'),
    "duplicate-key": lambda: _parse_errors(
        "policy.hujson", '{\n  "hosts": {"db": "10.0.0.1"},\n  "hosts": {"db": "10.0.0.2"},\n}'),
    "bad-literals": lambda: _parse_errors("policy.hujson", '{"a": [True]}'),
    "policy-errors": _policy_errors,
    "odd-sources": _odd_sources,
    "io-error": _io_error,
}

FORMATS: dict[str, Callable[[Diagnostics], str]] = {
    "full": lambda d: render_full(d, color=False),
    "concise": render_concise,
    "json": render_json,
    "github": render_github,
}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("case", CASES)
def test_golden(case: str, fmt: str) -> None:
    check_golden(GOLDEN_DIR / f"{case}.{fmt}.txt", FORMATS[fmt](CASES[case]()))


def test_full_colour_only_on_request() -> None:
    diags = _policy_errors()
    assert "\x1b[" not in render_full(diags, color=False)
    coloured = render_full(diags, color=True)
    assert "\x1b[1;31m" in coloured and "\x1b[1;33m" in coloured


def test_full_caret_sits_under_the_span() -> None:
    source = SourceFile("p.hujson", '{"src": ["group:devz"]}')
    diags = Diagnostics()
    diags.error("E104", source.span(9, 21), "undefined")
    _, _, line, carets = render_full(diags).splitlines()[:4]
    code_line = line.split("| ", 1)[1]
    caret_start = carets.index("^") - carets.index("|") - 2
    assert code_line[caret_start : caret_start + carets.count("^")] == '"group:devz"'


def test_empty_input_renders_nothing() -> None:
    assert render_full([]) == "" and render_concise([]) == "" and render_github([]) == ""
    assert json.loads(render_json([])) == []


def test_json_fields() -> None:
    (first, *_) = json.loads(render_json(_policy_errors()))
    assert first == {
        "code": "E104", "name": "undefined-group", "severity": "error",
        "message": 'group "group:devz" is not defined', "file": "policy.hujson",
        "line": 6, "column": 31, "end_line": 6, "end_column": 43,
        "notes": ["groups are defined in the `groups` section"], "suggestion": "group:dev",
    }


def test_github_escapes_properties_and_message() -> None:
    source = SourceFile("dir,x:y.hujson", "[1]")
    diags = Diagnostics()
    diags.error("P001", source.span(0, 1), "100% wrong\nsecond line")
    line = render_github(diags)
    assert line.startswith("::error file=dir%2Cx%3Ay.hujson,line=1,col=1,endLine=1,endColumn=2")
    assert line.rstrip("\n").endswith("::100%25 wrong%0Asecond line")
    assert line.count("\n") == 1


def test_sarif_shape() -> None:
    diags = _policy_errors()
    log = json.loads(render_sarif(diags))
    assert log["version"] == "2.1.0"
    (run,) = log["runs"]
    rules = run["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == list(CODES)
    levels = [r["level"] for r in run["results"]]
    assert levels == ["error", "warning", "error"]
    for result in run["results"]:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
        region = result["locations"][0]["physicalLocation"]["region"]
        assert region["startLine"] >= 1 and region["startColumn"] >= 1
    first = run["results"][0]
    assert "did you mean" in first["message"]["text"]
    assert first["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "policy.hujson"


@pytest.mark.parametrize(("text", "start", "end", "expected"), [
    ("abc", 1, 2, ((0, 1), (0, 2))),
    ("a\nbc\nd", 3, 6, ((1, 1), (2, 1))),
    ("😀x", 1, 2, ((0, 2), (0, 3))),     # astral char = 2 UTF-16 units
    ("é\n😀😀y", 4, 5, ((1, 4), (1, 5))),
    ("ab\n", 3, 3, ((1, 0), (1, 0))),    # end of file after a newline
    ("a\r\nb", 3, 4, ((1, 0), (1, 1))),
])
def test_lsp_range(text: str, start: int, end: int,
                   expected: tuple[tuple[int, int], tuple[int, int]]) -> None:
    assert lsp_range(SourceFile("f", text).span(start, end)) == expected


def test_to_dict_positions_match_span() -> None:
    for diag in _policy_errors():
        info = to_dict(diag)
        assert (info["line"], info["column"]) == (diag.span.line, diag.span.column)


@settings(deadline=None)
@given(st.text(max_size=40), st.integers(0, 45), st.integers(0, 10), st.booleans())
def test_renderers_never_fail(text: str, start: int, length: int, color: bool) -> None:
    source = SourceFile("f.hujson", text)
    start = min(start, len(text))
    diags = Diagnostics()
    diags.error("P001", source.span(start, min(len(text), start + length)), "m",
                notes=("n",), suggestion="s")
    assert "f.hujson" in render_full(diags, color=color)
    for render in (render_concise, render_github, render_json, render_sarif):
        assert render(diags)
    (line0, char0), (line1, char1) = lsp_range(diags.items[0].span)
    assert (line0, char0) <= (line1, char1)


def test_system_diagnostics_have_no_location() -> None:
    """NO_SPAN diagnostics (nft, interfaces) render without a fake file:1:1."""
    from policyc.diagnostics.diagnostics import Diagnostic, Severity
    from policyc.diagnostics.source import NO_SPAN

    diag = Diagnostic("N502", Severity.ERROR, "table inet policyc has drifted", NO_SPAN)
    assert render_concise([diag]) == "error[N502]: table inet policyc has drifted\n"
    assert render_full([diag]).startswith("error[N502]: table inet policyc has drifted")


@given(st.text(alphabet=st.sampled_from("ab\t ~\x7f\u0301\u4e00\uff21\u00e9"), max_size=30)
       | st.text(max_size=30))
def test_width_is_the_columns_of_each_character(text: str) -> None:
    # The reference: tab 4 columns, combining mark 0, East Asian wide/full 2, else 1
    # (_width takes a shortcut for ASCII text).
    expected = sum(4 if c == "\t" else 0 if unicodedata.combining(c)
                   else 2 if unicodedata.east_asian_width(c) in ("W", "F") else 1
                   for c in text)
    assert _width(text) == expected

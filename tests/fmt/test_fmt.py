"""The formatter: layout rules, comments kept in place, idempotence, meaning unchanged.

Properties run on random policies (tests/strategies.py) with comments sprinkled
between their tokens, on the sample and on every conformance policy.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import policies, tailnets

from policyc.compiler.compiler import compile_policy
from policyc.compiler.nodes import Inventory
from policyc.fmt import format_text
from policyc.grammar.cst import to_python
from policyc.grammar.hujson import parse_text
from policyc.policy.load import load_policy_text

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def fmt(text: str) -> str:
    out, diags = format_text(text)
    assert out is not None, [str(d) for d in diags]
    return out


def meaning(text: str) -> object:
    tree, diags = parse_text(text)
    assert not diags.has_errors, [str(d) for d in diags]
    return None if tree is None else to_python(tree)


def meaning_and_complaints(text: str) -> tuple[object, list[tuple[str, str]]]:
    """The value and the parser's complaints: real files may hold a duplicate key (P002),
    which the formatter keeps as it is, so the same complaints must come out after it."""
    tree, diags = parse_text(text)
    assert tree is not None, [str(d) for d in diags]
    return to_python(tree), [(d.code, d.message) for d in diags]


def compiled(text: str, inventory: Inventory) -> dict[str, object]:
    policy, diags = load_policy_text(text)
    assert not diags.has_errors, [str(d) for d in diags]
    # policy_version hashes the text itself, so it differs by design.
    return {n: {k: v for k, v in m.to_json().items() if k != "policy_version"}
            for n, m in compile_policy(policy, inventory).netmaps.items()}


# --- layout ----------------------------------------------------------------------


def test_canonical_layout() -> None:
    text = ('{"groups":{"group:a":["x@example.com"]},"acls":[{"action":"accept","src":["*"],'
            '"dst":["*:*"]}],"hosts":{}}')
    assert fmt(text) == (
        '{\n'
        '  "groups": {\n'
        '    "group:a": ["x@example.com"],\n'
        '  },\n'
        '  "acls": [\n'
        '    {"action": "accept", "src": ["*"], "dst": ["*:*"]},\n'
        '  ],\n'
        '  "hosts": {},\n'
        '}\n')


def test_long_lists_get_one_entry_per_line() -> None:
    users = [f"user{i}@example.com" for i in range(8)]
    out = fmt(json.dumps({"groups": {"group:many": users}}))
    assert '    "group:many": [\n      "user0@example.com",\n' in out
    assert '      "user7@example.com",\n    ],\n' in out


def test_comments_keep_their_places() -> None:
    text = """// header

{ // after the brace
  // before groups
  "groups": {"group:a": [ // after bracket
      "x@example.com" /* inline */, // trailing
    // before close
  ]},

  "hosts": /* between */ {"h": "10.0.0.1"}, "acls": [] // last
} // after the value
// footer
"""
    assert fmt(text) == """// header

{ // after the brace
  // before groups
  "groups": {
    "group:a": [ // after bracket
      "x@example.com", /* inline */ // trailing
      // before close
    ],
  },

  "hosts": /* between */ {
    "h": "10.0.0.1",
  },
  "acls": [], // last
} // after the value
// footer
"""


def test_line_comment_between_key_and_value() -> None:
    out = fmt('{"acls": // why\n []}')
    assert out == '{\n  "acls": // why\n    [],\n}\n'
    assert fmt(out) == out


def test_scalars_keep_their_spelling() -> None:
    out = fmt('{"a": "\\u0041\\n", "b": 1.50e3, "c": -0, "d": [true, false, null]}')
    assert '"\\u0041\\n"' in out and "1.50e3" in out and "-0" in out


def test_blank_and_comment_only_files() -> None:
    assert fmt("") == ""
    assert fmt("  \n") == ""
    assert fmt("// nothing yet\n\n/* at all */") == "// nothing yet\n\n/* at all */\n"


def test_syntax_errors_are_diagnostics_not_output() -> None:
    out, diags = format_text('{"acls": [}', "p.hujson")
    assert out is None
    assert [d.code for d in diags.errors] == ["P001"]


def test_duplicate_keys_are_kept_as_written() -> None:
    out, diags = format_text('{"hosts": {"a": "10.0.0.1", "a": "10.0.0.2"}}')
    assert out is not None and out.count('"a"') == 2
    assert [d.code for d in diags] == ["P002"]


def test_crlf_and_bom() -> None:
    out = fmt('\ufeff{"acls": [] // x\r\n}\r\n')
    assert out == '{\n  "acls": [], // x\n}\n'


# --- properties ------------------------------------------------------------------

_STRING = re.compile(r'"(?:[^"\\\n]|\\.)*"')


def _gaps(text: str) -> list[int]:
    """Offsets right after a punctuation character, outside strings and comments."""
    out, pos = [], 0
    for match in _STRING.finditer(text):
        out += [i + 1 for i in range(pos, match.start()) if text[i] in "{[,:"]
        pos = match.end()
    out += [i + 1 for i in range(pos, len(text)) if text[i] in "{[,:}]"]
    first_value = min(text.find("{"), text.find("[")) if "[" in text else text.find("{")
    return [g for g in out if g > first_value]


@st.composite
def commented_policies(draw: st.DrawFn) -> str:
    text = draw(policies())
    gaps = _gaps(text)
    chosen = sorted(draw(st.sets(st.sampled_from(gaps), max_size=12)), reverse=True)
    for index, at in enumerate(chosen):
        comment = draw(st.sampled_from([" // c{}\n", " /* c{} */ ", "\n\n  // c{}\n",
                                        "/* c{}\n  spans lines */"])).format(index)
        text = text[:at] + comment + text[at:]
    return text


@SETTINGS
@given(commented_policies())
def test_formatting_is_idempotent_and_keeps_comments(text: str) -> None:
    once = fmt(text)
    assert fmt(once) == once
    assert meaning(once) == meaning(text)
    for name in re.findall(r"c\d+\b", text):
        assert len(re.findall(rf"\b{name}\b", once)) == 1, name


@SETTINGS
@given(policies(), tailnets())
def test_formatting_never_changes_the_compiled_result(text: str, inventory: Inventory) -> None:
    once = fmt(text)
    assert fmt(once) == once
    assert compiled(once, inventory) == compiled(text, inventory)


def _policies_the_tests_have() -> list[tuple[str, str]]:
    # The samples and the real-world corpus ship with the repository; the captured
    # conformance policies join them when ../shared is there.
    shipped = [*sorted((ROOT / "samples").glob("*.hujson")),
               *sorted((ROOT / "tests" / "corpus").glob("realworld*/*"))]
    out = [(p.name, p.read_text()) for p in shipped if p.suffix in (".hujson", ".json")]
    for folder in ("tailscale", "tailscale-more"):
        for parent in ROOT.parents:
            cases = parent / "shared" / "conformance" / folder
            if cases.is_dir():
                out += [(f.name, json.loads(f.read_text())["policy"])
                        for f in sorted(cases.glob("*.json"))]
                break
    return out


def test_every_policy_the_tests_have() -> None:
    policies_seen = _policies_the_tests_have()
    assert len(policies_seen) > 1
    for index, (name, text) in enumerate(policies_seen):
        out, _ = format_text(text, name)
        if out is None:  # not HuJSON: the formatter refuses, exactly like the parser
            assert parse_text(text)[0] is None
            continue
        assert fmt(out) == out, name
        assert meaning_and_complaints(out) == meaning_and_complaints(text), name
        if index % 4:
            continue  # the diagnostics check on a quarter keeps the test quick
        before, after = load_policy_text(text)[1], load_policy_text(out)[1]
        assert [(d.code, d.message) for d in after] == [(d.code, d.message) for d in before]


@pytest.mark.conformance
def test_conformance_policies_compile_the_same_after_formatting() -> None:
    import sys
    sys.path.insert(0, str(ROOT / "tests" / "conformance"))
    from conformance_data import CASE_FILES, case_inventory, load_case

    if not CASE_FILES:
        pytest.skip("../shared/conformance/tailscale not found")
    for path in CASE_FILES[::3]:
        case = load_case(path)
        if "error" in case["expect"]:
            continue
        inventory = case_inventory(case)
        assert compiled(fmt(case["policy"]), inventory) == compiled(case["policy"], inventory)

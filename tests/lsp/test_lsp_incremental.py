"""The incremental analysis (policyc/lsp/incremental.py) equals the full one.

Random policies receive random edits (typing, deleting, pasting policy
pieces) one after another; after each, the engine's result must be exactly
`analyze`'s on the same text: codes, severities, messages, notes, suggestions
and spans. Edits the engine cannot take item by item fall back to the full
analysis, so the property holds for any edit; other tests make sure the
incremental path is the one taken when it should be.
"""

from __future__ import annotations

import sys
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import example_inventory, policies, ssh_policies

from policyc.compiler.nodes import Inventory
from policyc.lsp.document import Analysis, analyze
from policyc.lsp.incremental import Engine

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from bench_parse import generate_policy

RICH = """// every section the engine splits, and some it does not
{
  "groups": {"group:eng": ["alice@example.com"], "group:ops": ["bob@example.com"]},
  "tagOwners": {"tag:web": ["group:eng"], "tag:db": ["autogroup:admin"]},
  "hosts": {"db-1": "10.0.0.5", "net": "10.1.0.0/16"},
  "ipsets": {"ipset:lan": ["add 10.2.0.0/16", "remove 10.2.0.1", "db-1"]},
  "postures": {"posture:latest": ["node:tsVersion >= '1.60'"]},
  "acls": [
    {"action": "accept", "src": ["group:eng"], "dst": ["tag:web:443", "db-1:5432"]},
    /* ops */ {"action": "accept", "src": ["group:ops", "autogroup:member"],
                "dst": ["ipset:lan:22", "net:*"], "proto": "tcp"},
  ],
  "grants": [{"src": ["group:eng"], "dst": ["tag:db"], "ip": ["tcp:5432"]}],
  "ssh": [{"action": "accept", "src": ["group:eng"], "dst": ["tag:web"], "users": ["root"]}],
  "nodeAttrs": [{"target": ["group:ops"], "attr": ["funnel"]}],
  "tests": [{"src": "alice@example.com", "accept": ["tag:web:443"], "deny": ["db-1:22"]}],
  "sshTests": [{"src": "alice@example.com", "dst": ["tag:web"], "accept": ["root"]}],
  "autoApprovers": {"routes": {"10.0.0.0/8": ["group:ops"]}},
}
"""
PIECES = ['"', ",", "{", "}", "[", "]", ":", " ", "\n", "x", "e", "group:", "tag:", "group:eng",
          "tag:web", "autogroup:self", "autogroup:members", "autogroup:member", "db-1", "//",
          "/*", "*/", '"src": ["*"], ', '"dst": ["*:*"]', "10.0.0.1", ":22", "-", "*",
          '"proto": "tcp", ', '"nope": 1, ', "é", "😀"]

NAMES = ["x", "group:", "tag:", "eng", "web", "autogroup:member", "autogroup:self", ":22",
         "db-1", "@example.com", "10.0.0.", "ipset:lan", "posture:latest", "host:", "é", "*"]


def key(analysis: Analysis) -> list[tuple[object, ...]]:
    out = []
    for d in analysis.diagnostics:
        own = d.span.source is analysis.source
        out.append((d.code, d.severity, d.message, d.notes, d.suggestion, own,
                    (d.span.start, d.span.end) if own else d.span.file,
                    d.span.source.position(d.span.start) if own else None))
    return out


def edit(text: str, data: st.DataObject) -> str:
    kind = data.draw(st.sampled_from(("insert", "delete", "replace", "type", "type", "type")))
    if kind == "type":  # inside a string, where typing mostly happens and keeps it parsing
        quotes = [i for i, c in enumerate(text) if c == '"']
        at = data.draw(st.sampled_from(quotes)) + 1 if quotes else 0
        if data.draw(st.booleans()):
            return text[:at] + data.draw(st.sampled_from(NAMES)) + text[at:]
        length = data.draw(st.integers(1, 3))
        return text[:at] + text[at:at + length].strip('"\\') + text[at + length:]
    at = data.draw(st.integers(0, len(text)))
    piece = data.draw(st.sampled_from(PIECES))
    if kind == "insert":
        return text[:at] + piece + text[at:]
    length = data.draw(st.integers(1, 6))
    if kind == "delete":
        return text[:at] + text[at + length:]
    return text[:at] + piece + text[at + length:]


def assert_same(engine: Engine, text: str, version: int, inventory: Inventory | None) -> None:
    got = engine.update(text, version, inventory)
    want = analyze("policy.hujson", text, version, inventory, run_tests=False)
    assert key(got) == key(want), text
    assert got.source.text == want.source.text


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.just(RICH), policies(), ssh_policies()), st.booleans(), st.data())
def test_edit_after_edit_equals_a_full_analysis(text: str, with_inventory: bool,
                                                data: st.DataObject) -> None:
    inventory = example_inventory() if with_inventory else None
    engine = Engine("policy.hujson")
    engine.full(text, 1, inventory, run_tests=False)
    for version in range(2, data.draw(st.integers(2, 8))):
        text = edit(text, data)
        assert_same(engine, text, version, inventory)


def test_typing_inside_rules_and_definitions_is_incremental() -> None:
    engine = Engine("policy.hujson")
    engine.full(RICH, 1, None, run_tests=False)
    steps = [("group:eng\"], \"dst\": [\"tag:web:443", "group:en\"], \"dst\": [\"tag:web:443"),
             ("group:en\"], \"dst\": [\"tag:web:443", "group:engx\"], \"dst\": [\"tag:web:443"),
             ('"db-1": "10.0.0.5"', '"db-1": "10.0.0.55"'),
             ('"group:ops": ["bob', '"group:opz": ["bob'),
             ('"attr": ["funnel"]', '"attr": ["funnel", "x"]'),
             ('"deny": ["db-1:22"]', '"deny": ["db-1:2"]'),
             ('"accept": ["root"]', '"accept": ["root", "ubuntu"]')]
    text = RICH
    for version, (old, new) in enumerate(steps, start=2):
        assert text.count(old) == 1, old
        text = text.replace(old, new)
        assert_same(engine, text, version, None)
    assert engine.incremental_runs == len(steps) and engine.full_runs == 1


def test_what_is_not_inside_one_item_is_analysed_whole() -> None:
    engine = Engine("policy.hujson")
    engine.full(RICH, 1, None, run_tests=False)
    text = RICH.replace('  "grants"', '  "grant": [],\n  "grants"')  # a new top-level key
    assert_same(engine, text, 2, None)
    text = text.replace('"tests": [', '"tests": [{"src": "x"},')  # a new item
    assert_same(engine, text, 3, None)
    text = text.replace('"group:eng": ["alice', '"group:eng": ["alice", "group:eng": ["alice')
    assert_same(engine, text, 4, None)  # a syntax error
    assert engine.incremental_runs == 0 and engine.full_runs == 4


def test_duplicate_keys_and_line_numbers_in_messages() -> None:
    # P002's note names a line: never taken from an older text (and W206 warnings move).
    engine = Engine("policy.hujson")
    text = RICH.replace('"src": ["group:ops", "autogroup:member"]',
                        '"src": ["group:ops", "autogroup:members"]')
    text = text.replace('"tag:web:443", "db-1:5432"', '"autogroup:member:443", "db-1:5432"')
    engine.full(text, 1, None, run_tests=False)
    for version in range(2, 6):
        text = text.replace('"tag:db": [', '"tag:db": [\n', 1)  # lines move
        text = text.replace('{"action": "accept", "src": ["group:eng"]',
                            '{"action": "accept", "src": ["group:eng"], "src": ["x"]', 1) \
            if version == 4 else text
        assert_same(engine, text, version, None)


def test_a_large_policy() -> None:
    text = generate_policy(40 * 1024)
    engine = Engine("policy.hujson")
    engine.full(text, 1, None, run_tests=False)
    at = text.index('"src": [', len(text) // 2) + 9
    for version, piece in enumerate(["x", "y", "", "z"], start=2):
        text = text[:at] + piece + text[at:] if piece else text[:at] + text[at + 2:]
        assert_same(engine, text, version, None)
    assert engine.incremental_runs == 4


def results_of(analysis: Analysis) -> list[tuple[object, ...]]:
    return [(d.code, d.message, d.span.start, d.span.end) for d in analysis.diagnostics
            if d.code.startswith("T")]


def test_policy_test_results_are_kept_and_moved_until_the_tests_run_again() -> None:
    failing = RICH.replace('"deny": ["db-1:22"]', '"deny": ["tag:web:443"]')
    engine = Engine("policy.hujson")
    ran = engine.full(failing, 1, None, run_tests=True)
    assert [t[0] for t in results_of(ran)] == ["T302"]
    # Lines added above the tests, inside a rule (incremental), then in a comment
    # between sections (whole analysis): the result moves along each time.
    text = failing
    for version, (old, new) in enumerate([('"src": ["group:eng"], "dst": ["tag:web:443"',
                                           '"src": ["group:eng",\n], "dst": ["tag:web:443"'),
                                          ("/* ops */", "/* ops\n\n */")], start=2):
        text = text.replace(old, new)
        kept = engine.update(text, version, None)
        fresh = Engine("policy.hujson").full(text, version, None, run_tests=True)
        assert [t[:1] + t[2:] for t in results_of(kept)] == \
            [t[:1] + t[2:] for t in results_of(fresh)]
        assert results_of(fresh)
    assert engine.incremental_runs == 1
    # A syntax error elsewhere: check would show only it; the editor keeps the result.
    broken = text.replace('"net": "10.1.0.0/16"', '"net": "10.1.0.0/16" "x"')
    assert {d.code for d in engine.update(broken, 4, None).diagnostics} == {"P001", "T302"}
    assert [t[0] for t in results_of(engine.update(text, 5, None))] == ["T302"]
    # Editing the test entry itself drops its old result; the next run decides.
    fixed = text.replace('"deny": ["tag:web:443"]', '"deny": ["db-1:80"]')
    assert results_of(engine.update(fixed, 6, None)) == []
    assert engine.incremental_runs == 2
    assert results_of(engine.full(fixed, 7, None, run_tests=True)) == []


SHADOWED = RICH.replace(
    "    /* ops */", '    {"action": "accept", "src": ["group:eng"], "dst": ["tag:web:443"]},\n'
    '    {"action": "accept", "src": ["10.77.0.1"], "dst": ["10.77.0.2:22"]},\n    /* ops */')


def test_lint_with_an_inventory_equals_check_and_names_the_right_line() -> None:
    # W203's message names the shadowing rule by file:line:col: lines moved by an
    # edit inside a rule must not leave it pointing at the old line.
    inventory = example_inventory()
    engine = Engine("policy.hujson")
    first = engine.full(SHADOWED, 1, inventory, run_tests=False)
    assert {"W201", "W203"} <= {d.code for d in first.diagnostics}
    text = SHADOWED.replace('"src": ["group:eng"], "dst": ["tag:web:443", "db-1:5432"]',
                            '"src": ["group:eng",\n\n], "dst": ["tag:web:443", "db-1:5432"]')
    assert_same(engine, text, 2, inventory)
    text = text.replace('"10.77.0.2:22"', '"10.77.0.3:22"')
    assert_same(engine, text, 3, inventory)


def test_expensive_lint_waits_for_the_pause_and_its_last_results_stay() -> None:
    inventory = example_inventory()
    engine = Engine("policy.hujson")
    engine.full(SHADOWED, 1, inventory, run_tests=False)
    engine.lint_seconds = 1.0  # as with a 10k-node inventory
    # An edit that does not change what lint finds: the kept results, moved, are
    # exactly what a whole analysis says.
    text = SHADOWED.replace('"10.0.0.5"', '"10.0.0.55"')
    assert_same(engine, text, 2, inventory)
    # An edit that removes the rule lint warned about (W201): until the pause the
    # warning is gone with its rule; the new warning (none here) comes at the pause.
    fixed = text.replace('"src": ["10.77.0.1"]', '"src": ["group:ops"]')
    kept = engine.update(fixed, 3, inventory)
    assert "W201" not in {d.code for d in kept.diagnostics}
    assert engine.incremental_runs == 2
    # An edit that makes a rule match nothing: not linted until the pause...
    nothing = fixed.replace('"src": ["group:ops"], "dst": ["10.77.0.2:22"]',
                            '"src": ["10.66.0.1"], "dst": ["10.77.0.2:22"]')
    assert "W201" not in {d.code for d in engine.update(nothing, 4, inventory).diagnostics}
    # ...where the whole analysis lints again, exactly as check.
    whole = engine.full(nothing, 5, inventory, run_tests=False)
    assert key(whole) == key(analyze("policy.hujson", nothing, 5, inventory, run_tests=False))
    assert "W201" in {d.code for d in whole.diagnostics}

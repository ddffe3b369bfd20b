"""Conformance: policy `tests` and `sshTests` verdicts exactly as Tailscale gave them.

The cases are the `policytest` (57) and `sshtest` (37) captures in
../shared/conformance/tailscale-more: a policy with tests was pushed to a real
tailnet; Tailscale answered 200 (every test passed), 400 "test(s) failed", or
400 with another message (a malformed sshTests entry, an invalid SSH rule).
Each case is run against its own nodes and users (roles) the way
`policyc check --nodes` runs it:

* `tests_pass: true`: the policy loads without errors and every test entry
  passes (no error diagnostic at all).
* `tests_pass: false`: the policy is rejected, and the rejection is the tests':
  every error lies inside `tests`/`sshTests`, and the policy without those
  sections is accepted. (Tailscale answers "test(s) failed" both for a failing
  entry and for a malformed one, e.g. `webserver:80,443`; we report malformed
  entries as located E125/E1xx errors and failing ones as T30x.)
* `expect.error`: rejected with Tailscale's message verbatim in one error.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from conformance_data import (
    MORE_CASE_FILES,
    MORE_CASES_DIR,
    MORE_MISSING_REASON,
    case_inventory,
    case_params,
    load_case,
)

from policyc.analysis.testrunner import run_policy_tests
from policyc.diagnostics.diagnostics import Diagnostic, Diagnostics
from policyc.diagnostics.source import Span
from policyc.grammar.cst import JObject
from policyc.grammar.hujson import parse_text
from policyc.policy.load import load_policy_text

pytestmark = pytest.mark.conformance

CATEGORIES = ("policytest", "sshtest")
TEST_SECTIONS = ("tests", "sshTests")

# Cases we knowingly get wrong: {test_id: reason}. Strict xfail, so a fixed
# case fails until it is removed from here.
EXPECTED_FAILURES: dict[str, str] = {}

RESULTS: Counter[tuple[str, str, bool]] = Counter()


def verdict_of(case: dict[str, Any]) -> tuple[list[Diagnostic], bool]:
    """Every error `policyc check --nodes` reports for the case, and whether it loaded."""
    policy, diags = load_policy_text(case["policy"], case["test_id"] + ".hujson")
    if diags.has_errors:
        return list(diags.errors), False
    run = Diagnostics()
    run_policy_tests(policy, case_inventory(case), run)
    return list(run.errors), True


def _section_spans(text: str) -> list[Span]:
    tree, _ = parse_text(text)
    assert isinstance(tree, JObject)
    return [value.span for key in TEST_SECTIONS if (value := tree.get(key)) is not None]


def _without_tests(text: str) -> str:
    document = json.loads(text)
    for key in TEST_SECTIONS:
        document.pop(key, None)
    return json.dumps(document)


def _kind(case: dict[str, Any]) -> str:
    expect = case["expect"]
    if "error" in expect:
        return "error"
    return "pass" if expect["tests_pass"] else "fail"


@pytest.mark.skipif(MORE_CASES_DIR is None, reason=MORE_MISSING_REASON)
@pytest.mark.parametrize("path", case_params(
    EXPECTED_FAILURES, lambda case: case["category"] in CATEGORIES, MORE_CASE_FILES))
def test_verdict(path: Path) -> None:
    case = load_case(path)
    kind = _kind(case)
    errors, loaded = verdict_of(case)
    RESULTS[(case["category"], kind, False)] += 1  # corrected below on success
    messages = [str(e) for e in errors]
    if kind == "pass":
        assert loaded and not errors, f"Tailscale's tests passed; we report {messages}"
    elif kind == "fail":
        assert errors, "Tailscale answered 400 test(s) failed; every test passed here"
        sections = _section_spans(case["policy"])
        outside = [str(e) for e in errors
                   if not any(s.start <= e.span.start and e.span.end <= s.end for s in sections)]
        assert not outside, f"rejected outside tests/sshTests: {outside}"
        _, rest = load_policy_text(_without_tests(case["policy"]))
        assert not rest.has_errors, [str(d) for d in rest.errors]
    else:
        expected = case["expect"]["error"]
        assert any(expected in e.message for e in errors), (
            f"Tailscale rejects with {expected!r}; we report {messages}")
    RESULTS[(case["category"], kind, False)] -= 1
    RESULTS[(case["category"], kind, True)] += 1


@pytest.mark.skipif(MORE_CASES_DIR is None, reason=MORE_MISSING_REASON)
def test_zz_summary_table(capsys: pytest.CaptureFixture[str]) -> None:
    """Prints pass counts per category and expectation (runs last in this module)."""
    if not RESULTS:
        pytest.skip("no verdict case ran in this session")
    rows = sorted({(category, kind) for category, kind, _ in RESULTS})
    lines = [f"{'category':<12}{'expect':<8}{'pass':>6}{'fail':>6}"]
    for category, kind in rows:
        lines.append(f"{category:<12}{kind:<8}{RESULTS[(category, kind, True)]:>6}"
                     f"{RESULTS[(category, kind, False)]:>6}")
    with capsys.disabled():
        print("\n" + "\n".join(lines))


def test_case_count_is_what_the_readme_says() -> None:
    """57 policytest and 37 sshtest captures: a lost file must not pass silently."""
    if MORE_CASES_DIR is None:
        pytest.skip(MORE_MISSING_REASON)
    counts = Counter(load_case(p)["category"] for p in MORE_CASE_FILES)
    assert (counts["policytest"], counts["sshtest"]) == (57, 37)

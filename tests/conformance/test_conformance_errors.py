"""Conformance: Tailscale rejects exactly the policies we reject.

Every case in ../shared/conformance/tailscale with `expect.error` must give at
least one error diagnostic; every other case (the 555 captures and the 4
default-policy cases) must give none, or we would refuse valid policies.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from conformance_data import CASES_DIR, MISSING_REASON, case_params, load_case

from policyc.policy.load import load_policy_text

pytestmark = pytest.mark.conformance


# Cases we knowingly get wrong: {test_id: reason}. Strict xfail, so a fixed
# case fails until it is removed from here.
EXPECTED_FAILURES: dict[str, str] = {}

# Tailscale's message (a fragment of it) -> the code we report for it.
EXPECTED_CODES: dict[str, str] = {
    "tag not found": "E105",
    "not found": "E105",
    "not valid on the src side": "E114",
    "cannot use autogroup:danger-all as a dst": "E114",
    "invalid first integer": "E111",
    "first port must be >0": "E111",
    "is not supported": "E115",
    "autogroup:self can only be used with": "E121",
    "capability name": "E128",
    "ip and app can not both be empty": "E119",
    "via can only be a tag": "E119",
    "cannot use app grants with autogroup:internet": "E119",
    "to allow all IP addresses": "E119",
}

RESULTS: Counter[tuple[str, str, bool]] = Counter()


def _expected_code(message: str) -> str | None:
    return next((code for fragment, code in EXPECTED_CODES.items() if fragment in message), None)


@pytest.mark.skipif(CASES_DIR is None, reason=MISSING_REASON)
@pytest.mark.parametrize("path", case_params(EXPECTED_FAILURES))
def test_case_accepted_or_rejected(path: Path) -> None:
    case = load_case(path)
    expected_error = case["expect"].get("error")
    _, diags = load_policy_text(case["policy"], case["test_id"] + ".hujson")
    codes = [d.code for d in diags.errors]
    kind = "error" if expected_error else "valid"
    ok = bool(codes) if expected_error else not codes
    if expected_error:
        code = _expected_code(expected_error)
        ok = ok and (code is None or code in codes)
    RESULTS[(case["category"], kind, ok)] += 1
    if expected_error:
        assert codes, f"Tailscale rejects this policy ({expected_error!r}); we accepted it"
        code = _expected_code(expected_error)
        assert code is None or code in codes, f"expected {code} for {expected_error!r}, got {codes}"
    else:
        assert not codes, [str(d) for d in diags.errors]


@pytest.mark.skipif(CASES_DIR is None, reason=MISSING_REASON)
def test_zz_summary_table(capsys: pytest.CaptureFixture[str]) -> None:
    """Prints pass counts per category (runs last by name within this module)."""
    if not RESULTS:
        pytest.skip("no conformance case ran in this session")
    rows = sorted({(category, kind) for category, kind, _ in RESULTS})
    lines = [f"{'category':<16}{'kind':<8}{'pass':>6}{'fail':>6}"]
    for category, kind in rows:
        passed, failed = RESULTS[(category, kind, True)], RESULTS[(category, kind, False)]
        lines.append(f"{category:<16}{kind:<8}{passed:>6}{failed:>6}")
    with capsys.disabled():
        print("\nconformance accept/reject:\n" + "\n".join(lines))
    unexpected = sum(n for (_, _, ok), n in RESULTS.items() if not ok) - len(EXPECTED_FAILURES)
    assert unexpected <= 0

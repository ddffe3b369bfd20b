"""Tailscale conformance: compile every captured case and compare per node.

The cases live in ../shared/conformance/tailscale (609 JSON files captured
from Tailscale SaaS via headscale's testdata; never copied into this repo).
Filters are compared rule by rule, in order; inside a rule, SrcIPs, DstPorts,
IPProto and CapGrant are compared as sets of what they allow (address text
normalised to interval sets). Peers are compared exactly.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from conformance_data import CASES_DIR, MISSING_REASON, case_inventory, case_params, load_case

from policyc.compiler.addrset import AddressSet, union_all
from policyc.compiler.compiler import compile_policy
from policyc.netmap import DEFAULT_PROTOCOLS
from policyc.policy.load import load_policy_text

pytestmark = pytest.mark.conformance


# Cases we knowingly get wrong: {test_id: reason}. Strict: a fixed case fails
# until it is removed from here.
EXPECTED_FAILURES: dict[str, str] = {}

RESULTS: Counter[tuple[str, bool]] = Counter()


def _addrs(texts: list[str]) -> AddressSet:
    return union_all(AddressSet.parse(t) for t in texts)


def normalise_rule(rule: dict[str, Any]) -> dict[str, Any]:
    """A rule as sets of meaning: sources, (dst, ports) pairs, protocols, caps."""
    dst: dict[tuple[int, int], AddressSet] = {}
    for d in rule.get("DstPorts") or ():
        key = (d["Ports"]["First"], d["Ports"]["Last"])
        dst[key] = dst.get(key, AddressSet()) | AddressSet.parse(d["IP"])
    caps = sorted(
        (json.dumps(c["CapMap"], sort_keys=True), str(_addrs(c["Dsts"])))
        for c in rule.get("CapGrant") or ()
    )
    protos = tuple(sorted(rule.get("IPProto") or DEFAULT_PROTOCOLS))
    return {
        "src": str(_addrs(rule.get("SrcIPs") or [])),
        "dst": sorted((k, str(v)) for k, v in dst.items()),
        "proto": protos,
        "caps": caps,
    }


@pytest.mark.skipif(CASES_DIR is None, reason=MISSING_REASON)
@pytest.mark.parametrize(
    "path", case_params(EXPECTED_FAILURES, lambda case: "error" not in case["expect"]))
def test_case(path: Path) -> None:
    """Rejected policies are test_conformance_errors.py's; here every compiled one."""
    case = load_case(path)
    ok = False
    try:
        _check_case(case)
        ok = True
    finally:
        RESULTS[(case["category"], ok)] += 1


def _check_case(case: dict[str, Any]) -> None:
    policy, diags = load_policy_text(case["policy"], case["test_id"] + ".hujson")
    assert not diags.has_errors, [str(d) for d in diags.errors]
    compiled = compile_policy(policy, case_inventory(case))
    expect = case["expect"]
    for name, want in expect["filters"].items():
        got = [r.to_json() for r in compiled.netmaps[name].packet_filter]
        assert [normalise_rule(r) for r in got] == [normalise_rule(r) for r in want or []], name
    for name, want in (expect.get("peers") or {}).items():
        got = sorted(p.name for p in compiled.netmaps[name].peers)
        assert got == sorted(want), f"peers of {name}"


def test_zz_report() -> None:
    """Print the pass rate per category (runs last: name sorts after test_case)."""
    if not RESULTS:
        pytest.skip("no conformance case ran")
    lines = ["", f"{'category':<16}{'passed':>8}{'total':>8}{'rate':>8}"]
    for category in sorted({c for c, _ in RESULTS}):
        passed = RESULTS[(category, True)]
        total = passed + RESULTS[(category, False)]
        lines.append(f"{category:<16}{passed:>8}{total:>8}{passed / total:>8.1%}")
    print("\n".join(lines))

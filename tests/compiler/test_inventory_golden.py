"""Inventory mistakes as golden diagnostics, one input file per kind of mistake.

Each `tests/golden/inventory/<case>.hujson` is loaded as the CLI loads
`--nodes` (loader, then the cross-check with `policy.hujson`) and its full
rendering is compared with `<case>.txt` (`POLICYC_UPDATE_GOLDENS=1`
rewrites). The table pins the codes, severities and surviving nodes, so a
regenerated golden cannot quietly accept a wrong code.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from goldens import GOLDEN_ROOT, check_golden

from policyc.compiler.crosscheck import check_inventory_against_policy
from policyc.compiler.inventory import load_inventory_text
from policyc.compiler.nodes import Inventory
from policyc.diagnostics.diagnostics import Diagnostics
from policyc.diagnostics.render import render_full
from policyc.policy.load import load_policy_file

CASE_DIR = GOLDEN_ROOT / "inventory"

E, W = "error", "warning"

# case -> ([(code, severity), ...] in file order, names of the nodes that load)
CASES: dict[str, tuple[list[tuple[str, str]], list[str]]] = {
    "clean-nodes": ([], ["alice-laptop", "web.prod", "router"]),
    "clean-devices": ([], ["laptop", "exit"]),
    "missing-ips": ([("I405", E), ("I405", E)], ["ok"]),
    "missing-addresses-device": ([("I405", E)], []),
    "ownerless": ([("I406", E), ("I406", E)], ["server"]),
    "undefined-tags": ([("I407", W), ("I407", W), ("I407", W)], ["typo", "owned", "nobody"]),
    "bad-names": ([("I408", E)] * 7, ["ok.example"]),
    "endpoints": ([("I409", E)] * 5 + [("I401", E)], []),
    "routes": ([("I410", W), ("I410", W), ("I413", W), ("I401", E)], ["exit", "router"]),
    "addresses": ([("I411", W), ("I411", W), ("I401", E), ("I401", E), ("I401", E),
                   ("I401", E), ("I402", W), ("I401", E), ("I401", E)], ["lan", "twice"]),
    "approved-routes": ([("I414", W), ("I414", W)],
                        ["agrees", "only-approved", "not-approved"]),
    "duplicates": ([("I402", E)] * 4, ["web"]),
    "duplicate-keys": ([("P002", E)], ["a"]),
    "keys": ([("I403", E)] * 3, []),
    "bad-device-keys": ([("I403", E)] * 2, []),
    "wrong-types": ([("I401", E)] * 12, []),
    "devices": ([("I408", E), ("I401", E), ("I401", E), ("I401", E), ("I401", E)], []),
    "top-level-both": ([("I401", E)], []),
    "top-level-unknown": ([("I401", E)], ["a"]),
    "top-level-wrong": ([("I401", E)], []),
}


def load_case(case: str) -> tuple[Inventory, Diagnostics]:
    """As `policyc compile --nodes` loads it, with paths relative to the case folder."""
    policy, policy_diags = load_policy_file(CASE_DIR / "policy.hujson")
    assert policy is not None and not policy_diags.items
    text = (CASE_DIR / f"{case}.hujson").read_text(encoding="utf-8")
    inventory, diags = load_inventory_text(text, f"{case}.hujson")
    return check_inventory_against_policy(policy, inventory, diags), diags


def in_file_order(diags: Diagnostics) -> list[tuple[str, str]]:
    return [(d.code, d.severity.value) for d in diags.sorted()]


@pytest.mark.parametrize("case", CASES)
def test_inventory_case(case: str) -> None:
    inventory, diags = load_case(case)
    codes, survivors = CASES[case]
    assert in_file_order(diags) == codes
    assert [node.name for node in inventory] == survivors
    assert all(d.span.is_known and d.span.file == f"{case}.hujson" for d in diags)
    check_golden(CASE_DIR / f"{case}.txt", render_full(Diagnostics(diags.sorted()), color=False))


def test_every_case_file_is_in_the_table() -> None:
    files = {p.stem for p in CASE_DIR.glob("*.hujson")} - {"policy"}
    assert files == set(CASES)


def test_every_inventory_code_is_exercised() -> None:
    """Each I4xx a loader or cross-check can emit appears in some case (I404 is
    the CLI's unknown --node, I412 compile's path check: tests/test_cli.py)."""
    seen = {code for codes, _ in CASES.values() for code, _ in codes}
    from policyc.diagnostics.codes import CODES
    inventory_codes = {c for c in CODES if c.startswith("I")} - {"I404", "I412"}
    assert inventory_codes <= seen, sorted(inventory_codes - seen)


def test_case_files_are_where_the_goldens_say(tmp_path: Path) -> None:
    # The loader gives the same answer for the file on disk as for its text.
    from policyc.compiler.inventory import load_inventory_file
    source = CASE_DIR / "routes.hujson"
    inventory, diags = load_inventory_file(source)
    assert inventory is not None
    assert [d.code for d in diags.sorted()] == [c for c, _ in CASES["routes"][0]]

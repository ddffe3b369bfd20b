"""Golden netmaps and diagnostics of the shipped samples.

Any change to what the sample nodes receive shows up as a reviewable diff in
tests/golden/samples/. POLICYC_UPDATE_GOLDENS=1 accepts a change.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from goldens import GOLDEN_ROOT, check_golden

from policyc.compiler.compiler import compile_policy
from policyc.compiler.inventory import load_inventory_file
from policyc.diagnostics.render import render_concise
from policyc.policy.load import load_policy_text

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
POLICY_TEXT = (SAMPLES / "policy.hujson").read_text()
NODE_NAMES = [n["name"] for n in json.loads((SAMPLES / "nodes.json").read_text())["nodes"]]


@pytest.fixture(scope="module")
def netmaps() -> dict[str, dict[str, object]]:
    # Named relative to the repository so goldens do not depend on the checkout path.
    policy, diags = load_policy_text(POLICY_TEXT, "samples/policy.hujson")
    inventory, inv_diags = load_inventory_file(SAMPLES / "nodes.json")
    assert inventory is not None
    assert not diags.has_errors and not inv_diags.has_errors
    compiled = compile_policy(policy, inventory)
    return {name: nm.to_json() for name, nm in compiled.netmaps.items()}


@pytest.mark.parametrize("node", NODE_NAMES)
def test_sample_netmap_golden(netmaps: dict[str, dict[str, object]], node: str) -> None:
    netmap = dict(netmaps[node])
    netmap.pop("policy_version")  # a hash of the text; comment edits must not churn goldens
    check_golden(GOLDEN_ROOT / "samples" / f"{node}.json",
                 json.dumps(netmap, indent=2, sort_keys=True) + "\n")


BROKEN_EDITS = {
    # name: (text to replace in the sample, replacement)
    "undefined-group": ('"src": ["group:qa"], "dst"', '"src": ["group:qaa"], "dst"'),
    "bad-port": ('"tag:web:443"]}', '"tag:web:443-80"]}'),
    # (not a change of case: Tailscale matches field names in any case)
    "unknown-field": ('"tagOwners": {', '"tagOwnrs": {'),
    "syntax": ('"group:dev":       ["alice@acme.example", "bob@acme.example"],',
               '"group:dev":       ["alice@acme.example" "bob@acme.example"],'),
}


@pytest.mark.parametrize("case", sorted(BROKEN_EDITS))
def test_sample_diagnostics_golden(case: str) -> None:
    old, new = BROKEN_EDITS[case]
    assert old in POLICY_TEXT, f"edit {case!r} no longer applies to the sample"
    _, diags = load_policy_text(POLICY_TEXT.replace(old, new, 1), "samples/policy.hujson")
    assert diags.has_errors
    check_golden(GOLDEN_ROOT / "samples" / "diagnostics" / f"{case}.txt",
                 render_concise(diags.sorted()) + "\n")

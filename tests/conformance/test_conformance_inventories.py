"""Conformance inventories load through the real loader without new errors.

test_conformance.py builds its `Inventory` directly; here every case's node
list goes through `load_inventory_text` and the cross-check with its policy,
as `--nodes` would. Errors: none. Warnings: only I407, and only for a tag
the case's `tagOwners` really lacks (the captures reuse one tailnet across
policies, so nodes keep tags that some policies do not define; Tailscale
would not have let them take those tags, which is what I407 says). Dropping
those tags changes no compiled result (test_conformance.py's filters and
peers were checked against it when I407 was introduced).
"""

from __future__ import annotations

import json
from collections import Counter

import pytest
from conformance_data import CASE_FILES, CASES_DIR, MISSING_REASON, load_case

from policyc.compiler.crosscheck import check_inventory_against_policy
from policyc.compiler.inventory import load_inventory_text
from policyc.policy.load import load_policy_text

pytestmark = pytest.mark.conformance


# The sibling capture folder (tailscale-more) has cases of the same shape.
MORE_FILES = sorted((CASES_DIR.parent / "tailscale-more").glob("*.json")) if CASES_DIR else []


@pytest.mark.skipif(CASES_DIR is None, reason=MISSING_REASON)
def test_every_conformance_inventory_loads_with_only_warranted_warnings() -> None:
    seen: Counter[str] = Counter()
    for path in [*CASE_FILES, *MORE_FILES]:
        case = load_case(path)
        name = f"{case['test_id']}.nodes.json"
        inventory, diags = load_inventory_text(json.dumps({"nodes": case["nodes"]}), name)
        assert not diags.items, [str(d) for d in diags]
        assert [n.name for n in inventory] == [n["name"] for n in case["nodes"]]
        policy, policy_diags = load_policy_text(case["policy"], case["test_id"] + ".hujson")
        if policy_diags.has_errors:
            continue  # a rejected policy is never cross-checked (the CLI stops first)
        check_inventory_against_policy(policy, inventory, diags)
        for diag in diags:
            seen[diag.code] += 1
            assert diag.code == "I407" and diag.severity.value == "warning", str(diag)
            tag = diag.span.text.strip('"')
            assert tag.startswith("tag:") and tag not in policy.tag_owners, str(diag)
    assert set(seen) <= {"I407"}
    print(f"\n{len(CASE_FILES) + len(MORE_FILES)} inventories, warnings: {dict(seen)}")

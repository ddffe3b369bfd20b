"""The editor judges a policy against the inventory as `policyc check` does:
a node's tag that the policy's tagOwners lacks is dropped (I407) in both."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from policyc.cli import main
from policyc.compiler.inventory import load_inventory_text
from policyc.lsp.document import analyze, to_lsp_diagnostics

# srv carries tag:ghost, which tagOwners does not define: compiled without it,
# srv is alice's untagged device, a member, so the test entry holds.
POLICY = """{
  "tagOwners": {"tag:web": ["alice@example.com"]},
  "acls": [{"action": "accept", "src": ["*"], "dst": ["autogroup:member:22", "tag:web:80"]}],
  "tests": [{"src": "100.64.0.1", "accept": ["100.64.0.2:22"]}],
}
"""
NODES = {"nodes": [
    {"name": "laptop", "user": "alice@example.com", "ips": ["100.64.0.1"]},
    {"name": "srv", "user": "alice@example.com", "tags": ["tag:ghost"], "ips": ["100.64.0.2"]},
]}


def test_editor_and_check_agree_on_a_node_with_an_undefined_tag(tmp_path: Path) -> None:
    inventory, diags = load_inventory_text(json.dumps(NODES), "nodes.json")
    assert not diags.items
    analysis = analyze("policy.hujson", POLICY, 1, inventory, run_tests=True)
    assert [d.code for d in analysis.diagnostics] == ["I407"]  # the inventory's, not shown
    assert to_lsp_diagnostics(analysis) == []
    assert analysis.inventory is not None and analysis.inventory.nodes[1].tags == ()

    (tmp_path / "policy.hujson").write_text(POLICY)
    (tmp_path / "nodes.json").write_text(json.dumps(NODES))
    result = CliRunner().invoke(main, ["check", str(tmp_path / "policy.hujson"),
                                       "--nodes", str(tmp_path / "nodes.json")])
    assert result.exit_code == 0, result.output
    assert "warning[I407]" in result.output and "T30" not in result.output


def test_the_cross_checks_errors_about_the_policy_reach_the_editor() -> None:
    # E109 (a domain wildcard that is not the tailnet's) comes from the
    # cross-check but points into the policy: the editor shows it, as check does.
    nodes = {**NODES, "users": [{"login": "alice@example.com", "role": "owner"}]}
    inventory, _ = load_inventory_text(json.dumps(nodes), "nodes.json")
    policy = POLICY.replace('"tests"', '"ssh": [{"action": "accept", "src": '
                            '["user:*@example.org"], "dst": ["autogroup:self"], '
                            '"users": ["root"]}],\n  "tests"')
    analysis = analyze("policy.hujson", policy, 1, inventory, run_tests=True)
    assert [d.code for d in to_lsp_diagnostics(analysis)] == ["E109"]

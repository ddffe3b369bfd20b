"""Realistic policies (tests/policy/realistic/) that use what Tailscale accepts
beyond the captures: they load, their tests pass (offline: some are
undecidable, never failed), and with an inventory of users and roles every
outcome is decided."""

from __future__ import annotations

import ipaddress
import json
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from policyc.analysis.reference import ReferenceEvaluator
from policyc.analysis.testrunner import run_policy_tests
from policyc.cli import main
from policyc.compiler.compiler import compile_policy
from policyc.compiler.inventory import load_inventory_file
from policyc.compiler.nodes import Inventory
from policyc.diagnostics.diagnostics import Diagnostics
from policyc.policy.load import load_policy_file
from policyc.policy.model import Policy

HERE = Path(__file__).parent / "realistic"


def policy(name: str) -> tuple[Policy, Counter[str]]:
    loaded, diags = load_policy_file(HERE / name)
    assert loaded is not None and not diags.has_errors, [str(d) for d in diags.errors]
    return loaded, Counter(d.code for d in diags)


def inventory(name: str) -> Inventory:
    loaded, diags = load_inventory_file(HERE / name)
    assert loaded is not None and not diags.items, [str(d) for d in diags]
    return loaded


@pytest.mark.parametrize(("name", "warnings", "undecided"), [
    ("homelab.hujson", {"W204": 1, "W206": 3, "W207": 1}, 0),
    ("company.hujson", {"W206": 1}, 5),
])
def test_loads_and_tests_hold_offline(name: str, warnings: dict[str, int],
                                      undecided: int) -> None:
    loaded, codes = policy(name)
    assert codes == Counter(warnings)
    diags = Diagnostics()
    report = run_policy_tests(loaded, None, diags)
    assert report.ok and report.failed == 0 and report.undecided == undecided
    assert [d.code for d in diags] == ["T305"] * undecided


def test_company_with_users_decides_everything() -> None:
    loaded, _ = policy("company.hujson")
    diags = Diagnostics()
    report = run_policy_tests(loaded, inventory("company-nodes.json"), diags)
    assert report.ok and report.undecided == 0 and report.passed == 11, [str(d) for d in diags]


def test_company_admins_by_role_reach_prod() -> None:
    loaded, _ = policy("company.hujson")
    nodes = inventory("company-nodes.json")
    rules = compile_policy(loaded, nodes).netmaps["prod-db"].packet_filter
    sources = {src for rule in rules for src in rule.to_json()["SrcIPs"]}
    admins = {str(ip) for n in nodes if n.name in ("ana-laptop", "owner-laptop") for ip in n.ips}
    assert sources == admins  # bo (member) and cy (contractor) are not admins


def test_company_role_outcome_flips_with_the_role() -> None:
    """The same test fails once ana is no longer an admin: roles really decide it."""
    loaded, _ = policy("company.hujson")
    nodes = inventory("company-nodes.json")
    assert nodes.users is not None
    demoted = Inventory.of(nodes.nodes, [u if u.login != "ana@corp.example" else
                                         type(u)(u.login, "member") for u in nodes.users])
    diags = Diagnostics()
    report = run_policy_tests(loaded, demoted, diags)
    assert not report.ok
    assert any(d.code == "T301" and d.span.text == '"tag:prod:22"' for d in diags.errors)


def test_homelab_ipset_excludes_the_router() -> None:
    loaded, _ = policy("homelab.hujson")
    ev = ReferenceEvaluator(loaded, Inventory.of([]))
    lan = [str(n) for n in ev.ipset_networks("ipset:lan")]
    assert ipaddress.ip_network("192.168.1.1/32") not in [ipaddress.ip_network(n) for n in lan]
    assert "192.168.20.0/24" in lan


def test_check_cli_exit_codes_follow_decidability(tmp_path: Path) -> None:
    """`policyc check`: undecidable outcomes are warnings (exit 0); with the users'
    roles the same policy is decided, and a role that no longer holds fails (exit 1)."""

    def check(*args: str) -> tuple[int, str]:
        result = CliRunner().invoke(main, ["check", str(HERE / "company.hujson"), *args])
        return result.exit_code, result.output

    code, out = check()
    assert code == 0 and "5 undecidable" in out and "T305" in out
    code, out = check("--nodes", str(HERE / "company-nodes.json"))
    assert code == 0 and "11 test entries passed, 0 failed" in out and "T305" not in out
    demoted = json.loads((HERE / "company-nodes.json").read_text())
    for user in demoted["users"]:
        if user["login"] == "ana@corp.example":
            user["role"] = "member"
    nodes = tmp_path / "nodes.json"
    nodes.write_text(json.dumps(demoted))
    code, out = check("--nodes", str(nodes), "--format", "json")
    assert code == 1
    failed = [d for d in json.loads(out) if d["severity"] == "error"]
    assert failed and {d["code"] for d in failed} <= {"T301", "T304"}

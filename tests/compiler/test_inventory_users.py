"""The inventory's optional `users` list and role autogroups resolved from it.

Role autogroups (autogroup:admin, owner, it-admin, network-admin,
billing-admin, auditor) name the untagged nodes of the users holding the
role, in the compiler, the reference evaluator and the test runner alike.
"""

from __future__ import annotations

import ipaddress
import json

import pytest

from policyc.analysis.reference import ReferenceEvaluator
from policyc.analysis.testrunner import run_policy_tests
from policyc.compiler.compiler import compile_policy
from policyc.compiler.inventory import load_inventory_text
from policyc.compiler.nodes import ROLE_AUTOGROUPS, Inventory, Node, User
from policyc.diagnostics.diagnostics import Diagnostics
from policyc.policy.load import load_policy_text
from policyc.policy.model import Policy

NODES = [
    {"name": "owner-laptop", "user": "olga@example.com", "ips": ["100.64.0.1"]},
    {"name": "admin-laptop", "user": "adam@example.com", "ips": ["100.64.0.2"]},
    {"name": "member-laptop", "user": "mia@example.com", "ips": ["100.64.0.3"]},
    {"name": "auditor-laptop", "user": "aud@example.com", "ips": ["100.64.0.4"]},
    {"name": "tagged-by-admin", "user": "adam@example.com", "tags": ["tag:srv"],
     "ips": ["100.64.0.10"]},
]
USERS = [
    {"login": "olga@example.com", "role": "owner"},
    {"login": "adam@example.com", "role": "admin"},
    {"login": "mia@example.com", "role": "member"},
    {"login": "aud@example.com", "role": "auditor"},
]


def inventory(users: list[dict[str, str]] | None = USERS) -> Inventory:
    doc: dict[str, object] = {"nodes": NODES}
    if users is not None:
        doc["users"] = users
    inv, diags = load_inventory_text(json.dumps(doc))
    assert not diags.items, [str(d) for d in diags]
    return inv


def test_users_list_loads_with_roles() -> None:
    inv = inventory()
    assert inv.knows_roles
    assert inv.users is not None and [(u.login, u.role) for u in inv.users] == [
        (u["login"], u["role"]) for u in USERS]
    assert inv.logins_with_role("autogroup:admin") == {"olga@example.com", "adam@example.com"}
    assert inv.logins_with_role("autogroup:owner") == {"olga@example.com"}
    assert inv.logins_with_role("autogroup:auditor") == {"aud@example.com"}
    assert inv.logins_with_role("autogroup:it-admin") == frozenset()


def test_without_users_roles_are_unknown() -> None:
    inv = inventory(None)
    assert not inv.knows_roles and inv.logins_with_role("autogroup:owner") == frozenset()
    assert inventory([]).knows_roles  # an empty list is a statement: nobody has a role


def test_tailscale_api_users_shape() -> None:
    api = {"devices": [], "users": [
        {"id": "u1", "displayName": "Olga", "loginName": "olga@example.com", "role": "owner",
         "status": "active", "type": "member"}]}
    inv, diags = load_inventory_text(json.dumps(api))
    assert not diags.items and inv.users == (User("olga@example.com", "owner", inv.users[0].span),)


def test_users_only_inventory_is_valid() -> None:
    inv, diags = load_inventory_text(json.dumps({"users": USERS}))
    assert not diags.items and len(inv) == 0 and inv.users is not None


@pytest.mark.parametrize(("entry", "code", "fragment"), [
    ({"login": "olga@example.com", "role": "superuser"}, "I401", 'unknown role "superuser"'),
    ({"login": "olga", "role": "owner"}, "I401", "must contain @"),
    ({"role": "owner"}, "I401", 'missing required field "login"'),
    ({"login": 7, "role": "owner"}, "I401", "expected a string"),
])
def test_bad_user_entries_are_located_errors(entry: dict[str, object], code: str,
                                             fragment: str) -> None:
    text = json.dumps({"nodes": [], "users": [entry]}, indent=1)
    inv, diags = load_inventory_text(text, "inv.json")
    assert [d.code for d in diags.errors] == [code]
    assert fragment in diags.errors[0].message and diags.errors[0].span.line > 1
    assert inv.users == ()


def test_duplicate_user_is_an_error() -> None:
    _, diags = load_inventory_text(json.dumps({"users": USERS[:1] * 2}))
    assert [d.code for d in diags.errors] == ["I402"]


def test_role_with_no_role_key_is_member() -> None:
    inv, diags = load_inventory_text(json.dumps({"users": [{"login": "x@example.com"}]}))
    assert not diags.items and inv.users is not None and inv.users[0].role == "member"


POLICY = {
    "tagOwners": {"tag:srv": ["autogroup:admin"]},
    "acls": [{"action": "accept", "src": ["autogroup:admin"], "dst": ["tag:srv:22"]},
             {"action": "accept", "src": ["autogroup:auditor"], "dst": ["tag:srv:443"]}],
}


def _policy(extra: dict[str, object] | None = None) -> Policy:
    policy, diags = load_policy_text(json.dumps({**POLICY, **(extra or {})}), "p.hujson")
    assert policy is not None and not diags.has_errors, [str(d) for d in diags]
    return policy


def test_compiler_resolves_role_autogroups_from_users() -> None:
    netmap = compile_policy(_policy(), inventory()).netmaps["tagged-by-admin"]
    by_port = {rule.to_json()["DstPorts"][0]["Ports"]["First"]: sorted(rule.to_json()["SrcIPs"])
               for rule in netmap.packet_filter}
    # The owner counts as an admin; the admin's tagged node is not the admin's.
    assert by_port == {22: ["100.64.0.1", "100.64.0.2"], 443: ["100.64.0.4"]}


def test_compiler_without_users_role_autogroups_are_empty() -> None:
    netmap = compile_policy(_policy(), inventory(None)).netmaps["tagged-by-admin"]
    assert not netmap.packet_filter


@pytest.mark.parametrize("autogroup", sorted(ROLE_AUTOGROUPS))
def test_reference_matches_compiler_for_every_role_autogroup(autogroup: str) -> None:
    policy = _policy({"acls": [{"action": "accept", "src": [autogroup], "dst": ["tag:srv:22"]}]})
    inv = Inventory.of(
        [Node(f"n{i}", f"u{i}@example.com", (), (ipaddress.ip_address(f"100.64.1.{i}"),))
         for i in range(7)]
        + [Node("srv", None, ("tag:srv",), (ipaddress.ip_address("100.64.2.1"),))],
        [User(f"u{i}@example.com", role) for i, role in enumerate(
            ["owner", "admin", "member", "it-admin", "network-admin", "billing-admin", "auditor"])])
    ev = ReferenceEvaluator(policy, inv)
    srv = ipaddress.ip_address("100.64.2.1")
    by_reference = {str(ip) for n in inv for ip in n.ips if ev.allowed(ip, srv, 6, 22)}
    rules = compile_policy(policy, inv).netmaps["srv"].packet_filter
    by_compiler = {src for rule in rules for src in rule.to_json()["SrcIPs"]}
    expected = {f"100.64.1.{i}" for i, role in enumerate(
        ["owner", "admin", "member", "it-admin", "network-admin", "billing-admin", "auditor"])
        if role in ROLE_AUTOGROUPS[autogroup]}
    assert by_reference == by_compiler == expected


def test_test_runner_resolves_role_sources() -> None:
    # A test src is never an autogroup (Tailscale refuses it); a role holder
    # stands for the role.
    policy = _policy({"tests": [{"src": "adam@example.com", "accept": ["tag:srv:22"],
                                 "deny": ["tag:srv:443"]}]})
    diags = Diagnostics()
    report = run_policy_tests(policy, inventory(), diags)
    assert report.ok and report.passed == 2, [str(d) for d in diags]


@pytest.mark.parametrize("autogroup", sorted(ROLE_AUTOGROUPS))
@pytest.mark.parametrize("form", ["acl", "grant"])
def test_role_autogroup_as_destination_names_the_role_holders_devices(
        autogroup: str, form: str) -> None:
    """Public policies applied to Tailscale keep `"dst": ["autogroup:owner"]` (a
    grant and an ACL): the destination is the untagged nodes of the role's users,
    the same set as the role as a source; compiler and reference agree."""
    rule: dict[str, object] = (
        {"action": "accept", "src": ["tag:srv"], "dst": [f"{autogroup}:22"]} if form == "acl"
        else {"src": ["tag:srv"], "dst": [autogroup], "ip": ["tcp:22"]})
    policy = _policy({"acls" if form == "acl" else "grants": [rule]})
    inv = inventory()
    expected = {n["name"] for n in NODES if "tags" not in n
                and n["user"] in inv.logins_with_role(autogroup)}
    netmaps = compile_policy(policy, inv).netmaps
    reached = {name for name, m in netmaps.items()
               if any("100.64.0.10" in r.to_json()["SrcIPs"] for r in m.packet_filter)}
    ev = ReferenceEvaluator(policy, inv)
    srv = ipaddress.ip_address("100.64.0.10")
    by_reference = {n.name for n in inv if n.ips and ev.allowed(srv, n.ips[0], 6, 22)}
    assert reached == by_reference == expected

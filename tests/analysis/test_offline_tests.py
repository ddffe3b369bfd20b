"""Policy tests without the tailnet (`policyc check` without --nodes): table tests.

Each row: rules, one test, and the outcome offline: "pass", "fail" (an error),
or "undecidable" (a T305 warning, not a failure). The rules are the ones
issue 8 lists; docs/conformance.md says which are captured, documented or
inferred.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import pytest

from policyc.analysis.offline import synthetic_inventory, with_representatives
from policyc.analysis.testrunner import TestReport, run_policy_tests
from policyc.compiler.nodes import Inventory, Node, User
from policyc.diagnostics.diagnostics import Diagnostics
from policyc.policy.load import load_policy_text

HEADER: dict[str, Any] = {
    "groups": {"group:dev": ["alice@example.com", "bob@example.com"]},
    "tagOwners": {"tag:server": ["alice@example.com"], "tag:client": ["alice@example.com"]},
    "hosts": {"prodbox": "100.103.8.15", "webserver": "100.64.0.16", "lan": "10.0.0.0/8"},
}


def acl(src: str, dst: str) -> dict[str, Any]:
    return {"action": "accept", "src": [src], "dst": [dst]}


def outcome(report: TestReport) -> str:
    assert len(report.outcomes) == 1
    only = report.outcomes[0]
    return "undecidable" if not only.decided else "pass" if only.passed else "fail"


def run(rules: list[dict[str, Any]], test: dict[str, Any], *, section: str = "tests",
        ssh: list[dict[str, Any]] | None = None,
        inventory: Inventory | None = None) -> tuple[TestReport, Diagnostics]:
    document = {**HEADER, "acls": rules, section: [test]}
    if ssh is not None:
        document["ssh"] = ssh
    policy, load_diags = load_policy_text(json.dumps(document, indent=1), "p.hujson")
    assert not load_diags.has_errors, [str(d) for d in load_diags.errors]
    diags = Diagnostics()
    return run_policy_tests(policy, inventory, diags), diags


ACL_TABLE = [
    # A destination IP a rule names directly is decided by the rules (captured:
    # prodbox, an address no node holds, passes).
    ("host-rule-ip-dst", [acl("group:dev", "prodbox:22")],
     {"src": "alice@example.com", "accept": ["100.103.8.15:22"]}, "pass"),
    ("prefix-rule-ip-dst", [acl("group:dev", "lan:22")],
     {"src": "alice@example.com", "accept": ["10.1.2.3:22"]}, "pass"),
    ("star-rule-ip-dst", [acl("group:dev", "*:22")],
     {"src": "alice@example.com", "accept": ["100.64.0.99:22"]}, "pass"),
    ("host-rule-deny-fails", [acl("group:dev", "prodbox:22")],
     {"src": "alice@example.com", "deny": ["prodbox:22"]}, "fail"),
    ("no-rule-at-all", [acl("group:dev", "prodbox:80")],
     {"src": "alice@example.com", "accept": ["100.103.8.15:22"]}, "fail"),
    # Only a rule naming identities could allow the IP: who owns it is unknown.
    ("identity-rule-ip-dst", [acl("group:dev", "tag:server:22")],
     {"src": "alice@example.com", "accept": ["webserver:22"]}, "undecidable"),
    ("identity-rule-ip-dst-deny", [acl("group:dev", "tag:server:22")],
     {"src": "alice@example.com", "deny": ["100.64.0.16:22"]}, "undecidable"),
    ("identity-rule-other-port", [acl("group:dev", "tag:server:22")],
     {"src": "alice@example.com", "accept": ["webserver:80"]}, "fail"),
    ("ip-src-identity-rule", [acl("tag:client", "webserver:80")],
     {"src": "100.64.0.14", "accept": ["webserver:80"]}, "undecidable"),
    ("ip-src-address-rule", [acl("100.64.0.14", "webserver:80")],
     {"src": "100.64.0.14", "accept": ["webserver:80"]}, "pass"),
    # ... but only an address inside Tailscale's ranges can be a node's: a LAN
    # address is never a tag's or user's (rajsinghtech/kubernetes-manifests).
    ("identity-rule-lan-ip-dst", [acl("group:dev", "tag:server:22")],
     {"src": "alice@example.com", "accept": ["10.1.2.3:22"]}, "fail"),
    ("identity-rule-lan-ip-dst-deny", [acl("group:dev", "tag:server:22")],
     {"src": "alice@example.com", "deny": ["10.1.2.3:22"]}, "pass"),
    ("lan-ip-src-identity-rule", [acl("tag:client", "webserver:80")],
     {"src": "10.1.2.3", "deny": ["webserver:80"]}, "pass"),
    # Both ends literal: a rule between two identities could hold both
    # (abl030/nixosconfig tests host aliases of tagged nodes this way).
    ("ip-src-ip-dst-identity-rule", [acl("tag:client", "tag:server:22")],
     {"src": "100.64.0.14", "accept": ["webserver:22"]}, "undecidable"),
    ("ip-src-ip-dst-other-port", [acl("tag:client", "tag:server:22")],
     {"src": "100.64.0.14", "accept": ["webserver:80"]}, "fail"),
    # Roles: unknown without the inventory's users. (A role is never a test
    # src: Tailscale refuses autogroups there, policyc too, E114.)
    ("role-rule-user-src", [acl("autogroup:admin", "tag:server:22")],
     {"src": "alice@example.com", "accept": ["tag:server:22"]}, "undecidable"),
    ("role-rule-irrelevant-port", [acl("autogroup:admin", "tag:server:22")],
     {"src": "alice@example.com", "accept": ["tag:server:80"]}, "fail"),
    # A tagged device holds no role, so a role rule cannot decide a tag source
    # (carlthome/dotfiles: autogroup:admin -> *, tests from tags); a literal
    # source may be any device, a user's included.
    ("role-rule-tag-src-deny", [acl("autogroup:admin", "tag:server:22")],
     {"src": "tag:client", "deny": ["tag:server:22"]}, "pass"),
    ("role-rule-tag-src-accept", [acl("autogroup:admin", "tag:server:22")],
     {"src": "tag:client", "accept": ["tag:server:22"]}, "fail"),
    ("role-rule-ip-src", [acl("autogroup:admin", "tag:server:22")],
     {"src": "100.64.0.14", "deny": ["tag:server:22"]}, "undecidable"),
    # A role as the destination (jonpulsifer/infra: owner -> owner).
    ("role-dst-role-src", [acl("autogroup:owner", "autogroup:owner:22")],
     {"src": "alice@example.com", "accept": ["alice@example.com:22"]}, "undecidable"),
    ("role-dst-tag-src", [acl("tag:client", "autogroup:admin:22")],
     {"src": "tag:client", "accept": ["bob@example.com:22"]}, "undecidable"),
    ("role-dst-other-src", [acl("tag:client", "autogroup:admin:22")],
     {"src": "tag:server", "accept": ["bob@example.com:22"]}, "fail"),
    ("role-dst-tag-dst", [acl("tag:client", "autogroup:admin:22")],
     {"src": "tag:client", "deny": ["tag:server:22"]}, "pass"),
    ("role-dst-role-src-tag-dst", [acl("autogroup:owner", "autogroup:owner:22")],
     {"src": "alice@example.com", "deny": ["tag:server:22"]}, "pass"),
    # A group source is a representative member: user-specific rules do not apply.
    ("group-src-group-rule", [acl("group:dev", "tag:server:22")],
     {"src": "group:dev", "accept": ["tag:server:22"]}, "pass"),
    ("group-src-member-rule", [acl("alice@example.com", "tag:server:22")],
     {"src": "group:dev", "accept": ["tag:server:22"]}, "fail"),
    ("group-src-autogroup-member-rule", [acl("autogroup:member", "tag:server:22")],
     {"src": "group:dev", "accept": ["tag:server:22"]}, "pass"),
    # A user only the tests name may not be in the tailnet (then: no access).
    # Public policies test both their owner and outsiders this way.
    ("test-only-user-allowed", [acl("autogroup:member", "tag:server:22")],
     {"src": "owner@example.com", "accept": ["tag:server:22"]}, "undecidable"),
    ("test-only-user-deny", [acl("autogroup:member", "tag:server:22")],
     {"src": "torvalds@example.com", "deny": ["tag:server:22"]}, "undecidable"),
    ("test-only-user-not-allowed", [acl("group:dev", "tag:server:22")],
     {"src": "owner@example.com", "accept": ["tag:server:22"]}, "fail"),
    ("test-only-user-denied", [acl("group:dev", "tag:server:22")],
     {"src": "torvalds@example.com", "deny": ["tag:server:22"]}, "pass"),
    ("known-user", [acl("autogroup:member", "tag:server:22")],
     {"src": "bob@example.com", "accept": ["tag:server:22"]}, "pass"),
    # Tailscale Services are not modelled.
    ("service-dst", [acl("group:dev", "tag:server:22")],
     {"src": "alice@example.com", "accept": ["svc:web:443"]}, "undecidable"),
]


@pytest.mark.parametrize(("rules", "test", "expected"),
                         [pytest.param(r, t, e, id=i) for i, r, t, e in ACL_TABLE])
def test_offline_acl_tests(rules: list[dict[str, Any]], test: dict[str, Any],
                           expected: str) -> None:
    report, diags = run(rules, test)
    assert report.synthetic and outcome(report) == expected, [str(d) for d in diags]
    if expected == "undecidable":
        assert [d.code for d in diags] == ["T305"] and diags.items[0].notes
        assert report.ok  # a warning, not a failure
    elif expected == "fail":
        assert diags.has_errors and not report.ok
    else:
        assert not diags.items


SSH_RULE = {"action": "accept", "src": ["group:dev"], "dst": ["tag:server"],
            "users": ["autogroup:nonroot"]}
SSH_TABLE = [
    ("nonroot-expected-user", [SSH_RULE],
     {"src": "alice@example.com", "dst": ["tag:server"], "accept": ["autogroup:nonroot"]},
     "pass"),
    ("nonroot-rule-admits-alice", [SSH_RULE],
     {"src": "alice@example.com", "dst": ["tag:server"], "accept": ["alice"]}, "pass"),
    ("nonroot-rule-blocks-root", [SSH_RULE],
     {"src": "alice@example.com", "dst": ["tag:server"], "accept": ["root"]}, "fail"),
    ("check-against-check-rule", [{**SSH_RULE, "action": "check", "users": ["root"]}],
     {"src": "alice@example.com", "dst": ["tag:server"], "check": ["root"]}, "pass"),
    ("check-against-accept-rule", [{**SSH_RULE, "users": ["root"]}],
     {"src": "alice@example.com", "dst": ["tag:server"], "check": ["root"]}, "fail"),
    ("ip-src-offline", [{**SSH_RULE, "users": ["root"]}],
     {"src": "100.64.0.17", "dst": ["tag:server"], "accept": ["root"]}, "undecidable"),
    ("ip-dst-offline", [{**SSH_RULE, "users": ["root"]}],
     {"src": "alice@example.com", "dst": ["100.64.0.16"], "accept": ["root"]}, "undecidable"),
    ("role-rule-offline", [{**SSH_RULE, "src": ["autogroup:admin"], "users": ["root"]}],
     {"src": "alice@example.com", "dst": ["tag:server"], "accept": ["root"]}, "undecidable"),
    ("role-rule-deny-offline", [{**SSH_RULE, "src": ["autogroup:admin"], "users": ["root"]}],
     {"src": "alice@example.com", "dst": ["tag:server"], "deny": ["root"]}, "undecidable"),
    ("role-rule-other-user", [{**SSH_RULE, "src": ["autogroup:admin"], "users": ["root"]}],
     {"src": "alice@example.com", "dst": ["tag:server"], "deny": ["bob"]}, "pass"),
    ("role-rule-tag-src", [{**SSH_RULE, "src": ["autogroup:admin"], "users": ["root"]}],
     {"src": "tag:client", "dst": ["tag:server"], "deny": ["root"]}, "pass"),
    ("role-rule-tag-src-accept", [{**SSH_RULE, "src": ["autogroup:admin"], "users": ["root"]}],
     {"src": "tag:client", "dst": ["tag:server"], "accept": ["root"]}, "fail"),
    ("test-only-user-ssh", [{**SSH_RULE, "src": ["autogroup:member"], "users": ["root"]}],
     {"src": "owner@example.com", "dst": ["tag:server"], "accept": ["root"]}, "undecidable"),
]


@pytest.mark.parametrize(("ssh", "test", "expected"),
                         [pytest.param(r, t, e, id=i) for i, r, t, e in SSH_TABLE])
def test_offline_ssh_tests(ssh: list[dict[str, Any]], test: dict[str, Any],
                           expected: str) -> None:
    report, diags = run([], test, section="sshTests", ssh=ssh)
    assert outcome(report) == expected, [str(d) for d in diags]
    assert report.ok is (expected != "fail")


# --- with an inventory (and users), everything is decided ------------------------------


def tailnet(alice_role: str | None) -> Inventory:
    nodes = [Node("laptop", "alice@example.com", (), (ipaddress.ip_address("100.64.0.1"),)),
             Node("web", None, ("tag:server",), (ipaddress.ip_address("100.64.0.16"),)),
             Node("client", None, ("tag:client",), (ipaddress.ip_address("100.64.0.14"),))]
    users = None if alice_role is None else [User("alice@example.com", alice_role)]
    return Inventory.of(nodes, users)


@pytest.mark.parametrize(("rules", "test", "role", "expected"), [
    ([acl("group:dev", "tag:server:22")],
     {"src": "alice@example.com", "accept": ["webserver:22"]}, "member", "pass"),
    ([acl("tag:client", "webserver:80")],
     {"src": "100.64.0.14", "accept": ["webserver:80"]}, "member", "pass"),
    ([acl("autogroup:admin", "tag:server:22")],
     {"src": "alice@example.com", "accept": ["tag:server:22"]}, "member", "fail"),
    ([acl("autogroup:admin", "tag:server:22")],
     {"src": "alice@example.com", "accept": ["tag:server:22"]}, "admin", "pass"),
    ([acl("autogroup:admin", "tag:server:22")],
     {"src": "alice@example.com", "accept": ["tag:server:22"]}, "owner", "pass"),
    # With the tailnet, a user who owns no node has no access (captured for accept).
    ([acl("*", "tag:server:22")],
     {"src": "ghost@example.com", "accept": ["tag:server:22"]}, "member", "fail"),
    ([acl("*", "tag:server:22")],
     {"src": "ghost@example.com", "deny": ["tag:server:22"]}, "member", "pass"),
    # An inventory without users still cannot tell roles.
    ([acl("autogroup:admin", "tag:server:22")],
     {"src": "alice@example.com", "accept": ["tag:server:22"]}, None, "undecidable"),
    # ... but a tagged device holds none.
    ([acl("autogroup:admin", "tag:server:22")],
     {"src": "tag:client", "deny": ["tag:server:22"]}, None, "pass"),
    ([acl("autogroup:admin", "tag:server:22")],
     {"src": "100.64.0.14", "deny": ["tag:server:22"]}, None, "pass"),
])
def test_with_inventory_outcomes_are_decided(rules: list[dict[str, Any]],
                                             test: dict[str, Any], role: str | None,
                                             expected: str) -> None:
    report, diags = run(rules, test, inventory=tailnet(role))
    assert not report.synthetic and outcome(report) == expected, [str(d) for d in diags]


def test_made_up_addresses_avoid_the_policys_literal_blocks() -> None:
    document = {**HEADER, "acls": [acl("group:dev", "100.64.0.0/29:22")],
                "tests": [{"src": "group:dev", "accept": ["100.64.0.3:22"]}]}
    policy, diags = load_policy_text(json.dumps(document))
    assert not diags.has_errors
    nodes = synthetic_inventory(with_representatives(policy))
    taken = [ipaddress.ip_network(n) for n in ("100.64.0.0/29", "100.64.0.16/32",
                                                "100.103.8.15/32")]
    addresses = [ip for node in nodes for ip in node.ips if ip.version == 4]
    assert addresses and not any(ip in block for ip in addresses for block in taken)
    assert len(set(addresses)) == len(addresses)
    # The group source got one representative member, who is in the group only.
    reps = [n for n in nodes if n.owner and n.owner.endswith("@representative.invalid")]
    assert [n.owner for n in reps] == ["dev.member@representative.invalid"]


VIA_GRANT = {"src": ["tag:client"], "dst": ["autogroup:internet"], "ip": ["*"],
             "via": ["tag:server"]}


def via_run(test: dict[str, Any], inventory: Inventory | None) -> tuple[TestReport, Diagnostics]:
    document = {**HEADER, "grants": [VIA_GRANT], "tests": [test]}
    policy, load_diags = load_policy_text(json.dumps(document, indent=1), "p.hujson")
    assert not load_diags.has_errors, [str(d) for d in load_diags.errors]
    diags = Diagnostics()
    return run_policy_tests(policy, inventory, diags), diags


def exit_tailnet(exit_node: bool) -> Inventory:
    return Inventory.of([
        Node("web", None, ("tag:server",), (ipaddress.ip_address("100.64.0.16"),),
             exit_node=exit_node),
        Node("client", None, ("tag:client",), (ipaddress.ip_address("100.64.0.14"),))])


@pytest.mark.parametrize(("kind", "inventory", "expected"), [
    # Offline nothing routes: which node carries the via tag and routes the
    # destination is the tailnet's (nlopez/tailnet: tag:work -> 1.1.1.1 via tag:exit).
    ("accept", None, "undecidable"),
    ("deny", None, "undecidable"),
    ("accept", exit_tailnet(exit_node=True), "pass"),
    ("deny", exit_tailnet(exit_node=True), "fail"),
    ("accept", exit_tailnet(exit_node=False), "fail"),
    ("deny", exit_tailnet(exit_node=False), "pass"),
])
def test_via_grant_needs_the_tailnets_routers(kind: str, inventory: Inventory | None,
                                              expected: str) -> None:
    report, diags = via_run({"src": "tag:client", kind: ["1.1.1.1:53"]}, inventory)
    assert outcome(report) == expected, [str(d) for d in diags]
    assert ("T305" in [d.code for d in diags]) is (expected == "undecidable")

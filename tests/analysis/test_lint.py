"""Lint warnings that need the inventory: W201, W203, W205."""

from __future__ import annotations

import ipaddress
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from policyc.analysis.lint import lint_policy
from policyc.compiler.nodes import Inventory, Node
from policyc.diagnostics.diagnostics import Diagnostics
from policyc.diagnostics.source import SourceFile
from policyc.grammar.hujson import parse
from policyc.policy.build import build_policy

INVENTORY = Inventory.of([
    Node("a", "alice@example.com", (), (ipaddress.ip_address("100.64.0.1"),)),
    Node("web", None, ("tag:web",), (ipaddress.ip_address("100.64.0.10"),)),
    Node("db", None, ("tag:db",), (ipaddress.ip_address("100.64.0.11"),)),
])

TAGS = {t: ["alice@example.com"] for t in ("tag:web", "tag:db", "tag:spare", "tag:ghost")}


def lint(**sections: object) -> list[tuple[str, int]]:
    text = json.dumps({"tagOwners": TAGS, **sections}, indent=1)
    diags = Diagnostics()
    source = SourceFile("policy.hujson", text)
    policy = build_policy(parse(source, diags), source, diags)
    assert not diags.has_errors
    lint_policy(policy, INVENTORY, diags)
    return [(d.code, d.span.line) for d in diags.warnings if d.code in ("W201", "W203", "W205")]


def codes(**sections: object) -> list[str]:
    return [c for c, _ in lint(**sections)]


def test_rule_matching_no_node_is_w201() -> None:
    found = codes(acls=[{"action": "accept", "src": ["tag:ghost"], "dst": ["tag:db:22"]},
                        {"action": "accept", "src": ["tag:web"], "dst": ["tag:db:22"]}],
                  ssh=[{"action": "accept", "src": ["tag:spare"], "dst": ["tag:spare"],
                        "users": ["root"]}])
    assert found.count("W201") == 1


def test_fully_shadowed_rule_is_w203() -> None:
    found = codes(acls=[{"action": "accept", "src": ["tag:web"], "dst": ["tag:db:*"]},
                        {"action": "accept", "src": ["tag:web"], "dst": ["tag:db:22"]}],
                  ssh=[{"action": "accept", "src": ["tag:spare", "tag:ghost"],
                        "dst": ["tag:spare"], "users": ["root"]}])
    assert found.count("W203") == 1


def test_duplicate_rules_report_only_the_later_one() -> None:
    rule = {"action": "accept", "src": ["tag:web"], "dst": ["tag:db:22"]}
    found = lint(acls=[rule, rule], ssh=[{"action": "accept", "src": ["tag:spare", "tag:ghost"],
                                          "dst": ["tag:spare"], "users": ["root"]}])
    w203 = [line for code, line in found if code == "W203"]
    assert len(w203) == 1


def test_narrower_protocol_is_not_shadowed_by_wider_port_on_other_protocol() -> None:
    found = codes(acls=[{"action": "accept", "src": ["tag:web"], "proto": "udp",
                         "dst": ["tag:db:*"]},
                        {"action": "accept", "src": ["tag:web"], "dst": ["tag:db:22"]}],
                  ssh=[{"action": "accept", "src": ["tag:spare", "tag:ghost"],
                        "dst": ["tag:spare"], "users": ["root"]}])
    assert "W203" not in found


def test_unused_tag_is_w205() -> None:
    found = codes(acls=[{"action": "accept", "src": ["tag:web"], "dst": ["tag:db:22"]}])
    assert found.count("W205") == 2  # tag:spare and tag:ghost: no rule, no node


def test_grant_ip_star_does_not_shadow_a_rule_for_another_protocol() -> None:
    # A grant's "ip": ["*"] compiles without IPProto: the default set (TCP, UDP,
    # ICMP, ICMPv6), so a GRE rule is not redundant next to it.
    found = lint(grants=[{"src": ["*"], "dst": ["tag:web"], "ip": ["*"]}],
                 acls=[{"action": "accept", "src": ["alice@example.com"],
                        "dst": ["tag:web:*"], "proto": "gre"}])
    assert "W203" not in [c for c, _ in found]


def test_grant_ip_star_still_shadows_a_default_protocol_rule() -> None:
    found = codes(grants=[{"src": ["*"], "dst": ["tag:web"], "ip": ["*"]}],
                  acls=[{"action": "accept", "src": ["alice@example.com"],
                         "dst": ["tag:web:22"]}])
    assert [c for c in found if c != "W205"] == ["W203"]


def test_rule_whose_destinations_match_nothing_is_w201_not_shadowed() -> None:
    # "Everything this rule allows is already allowed" is vacuous when it allows
    # nothing; W201 already says why.
    found = codes(acls=[{"action": "accept", "src": ["*"], "dst": ["tag:web:*"]},
                        {"action": "accept", "src": ["alice@example.com"],
                         "dst": ["tag:spare:22"]}])
    assert [c for c in found if c != "W205"] == ["W201"]


def test_shadow_check_on_a_large_tailnet_finds_nothing_shadowed() -> None:
    # W203 compares every pair of rules; AddressSet.issubset built the whole
    # difference of two 2,000-address sets per pair (100 rules: ~10 s).
    from dataclasses import replace

    from strategies import acl, policy

    from policyc.policy.model import TagOwners

    users = [f"u{k}@example.com" for k in range(1000)]
    nodes = [Node(f"n{i}", users[i % 1000] if i % 3 else None,
                  () if i % 3 else (f"tag:t{i // 3 % 30}",),
                  (ipaddress.ip_address(0x64400001 + 2 * i),
                   ipaddress.ip_address((0xFD7A115CA1E0 << 80) + 1 + 2 * i)))
             for i in range(3000)]
    tags = {f"tag:t{t}": TagOwners(f"tag:t{t}", ()) for t in range(30)}
    acls = [acl(["autogroup:member"], [f"tag:t{k % 30}:{22 + k}", "autogroup:member:443"])
            for k in range(100)]
    pol = replace(policy(acls=acls), tag_owners=tags)
    diags = Diagnostics()
    lint_policy(pol, Inventory.of(nodes), diags)
    assert not diags.items  # each rule opens its own port: nothing is shadowed


def _pairwise_w203(accesses: list[object]) -> list[tuple[int, int]]:
    """The reference: every ordered pair of rules, the first covering one named."""
    found = []
    for i, rule in enumerate(accesses):
        if not rule.entries or not rule.src or not any(d for d, _, _ in rule.entries):  # type: ignore[attr-defined]
            continue
        for j, other in enumerate(accesses):
            if i != j and other.covers(rule) and not (j > i and rule.covers(other)):  # type: ignore[attr-defined]
                found.append((i, j))
                break
    return found


SRCS = ["tag:web", "tag:db", "alice@example.com", "group:g", "group:h", "*",
        "autogroup:member", "100.64.0.0/30", "100.64.0.10"]
DSTS = ["tag:web", "tag:db", "alice@example.com", "group:g", "*", "100.64.0.0/30"]


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.lists(st.sampled_from(SRCS), min_size=1, max_size=3),
                          st.lists(st.tuples(st.sampled_from(DSTS),
                                             st.sampled_from(["22", "*", "20-30", "443"])),
                                   min_size=1, max_size=2)),
                min_size=1, max_size=12))
def test_w203_names_the_same_covering_rule_as_the_pairwise_reference(
        rules: list[tuple[list[str], list[tuple[str, str]]]]) -> None:
    # _shadowed decides source containment once per pair of distinct source sets;
    # the warnings (which rule, which covering rule) must be the pairwise ones.
    from policyc.analysis import lint as lint_module
    from policyc.compiler.resolve import Resolver

    acls = [{"action": "accept", "src": src, "dst": [f"{d}:{p}" for d, p in dst]}
            for src, dst in rules]
    text = json.dumps({"tagOwners": TAGS, "groups": {"group:g": ["alice@example.com"],
                                                     "group:h": []}, "acls": acls}, indent=1)
    diags = Diagnostics()
    source = SourceFile("policy.hujson", text)
    pol = build_policy(parse(source, diags), source, diags)
    assert not diags.has_errors
    resolver = Resolver(pol, INVENTORY)
    accesses = [lint_module._access(resolver, r) for r in lint_module._rules(pol)]
    got = Diagnostics()
    lint_module._shadowed(accesses, got)
    expected = _pairwise_w203(accesses)  # type: ignore[arg-type]
    assert [(d.span, d.message) for d in got.warnings] == [
        (accesses[i].span, "everything this rule allows is already allowed by the rule at "
                           f"{accesses[j].span.location()}") for i, j in expected]

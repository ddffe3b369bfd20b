"""Properties of the compiled SSH policies on random policies and tailnets.

1. A node's `ssh_policy` never names a principal outside the SSH sources: every
   compiled rule's principals lie within the sources of one policy rule of the
   same action that reaches that node.
2. The compiled policies agree with the reference evaluator that `sshTests`
   use: a Tailscale client evaluating its `ssh_policy` (first rule whose
   principal is the source and whose `sshUsers` maps the user to a non-empty
   local user) allows exactly the connections the reference allows, and
   demands a check exactly when the reference finds a check rule for it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from hypothesis import given, settings
from strategies import SSH_PROBE_USERS, load, ssh_policies, tailnets

from policyc.analysis.reference import ReferenceEvaluator, ssh_verdict
from policyc.compiler.compiler import compile_policy
from policyc.compiler.nodes import Inventory, Node
from policyc.policy.model import Policy, SshRule


def _source_ips(evaluator: ReferenceEvaluator, rule: SshRule) -> set[str]:
    """Addresses of the nodes a rule's sources match, by the reference evaluator."""
    return {str(ip) for node in evaluator.inventory for ip in node.ips
            if any(evaluator.source_contains(a, ip) for a in rule.sources)}


def _reaches(evaluator: ReferenceEvaluator, rule: SshRule, node: Node) -> bool:
    """May the node receive this rule: a destination (autogroup:self: any user's
    device), or, with a localpart user, one of the rule's sources."""
    if any(evaluator.destination_contains(a, s, d) for a in rule.destinations
           for s in node.ips for d in node.ips):
        return True
    if node.owner is not None and any(str(a) == "autogroup:self" for a in rule.destinations):
        return True
    localpart = any(u.startswith("localpart:") for u in rule.users)
    return localpart and any(evaluator.source_contains(a, ip) for a in rule.sources
                             for ip in node.ips)


@settings(max_examples=150, deadline=None)
@given(text=ssh_policies(), inventory=tailnets())
def test_principals_stay_within_ssh_sources(text: str, inventory: Inventory) -> None:
    policy = load(text)
    evaluator = ReferenceEvaluator(policy, inventory)
    sources = [_source_ips(evaluator, rule) for rule in policy.ssh]
    every_source = set().union(*sources)
    compiled = compile_policy(policy, inventory)
    for node in inventory:
        for wire in compiled.netmaps[node.name].ssh_policy["rules"]:
            principals = {p["nodeIP"] for p in wire["principals"]}
            assert principals, f"{node.name}: a rule without principals"
            assert principals <= every_source, (node.name, principals - every_source)
            check = "holdAndDelegate" in wire["action"]
            assert any(
                principals <= sources[k] and (rule.action == "check") == check
                and _reaches(evaluator, rule, node)
                for k, rule in enumerate(policy.ssh)), (node.name, wire)


def client_verdict(ssh_policy: dict[str, Any], src: Node, user: str) -> str | None:
    """What a Tailscale client decides (tailssh's matchRule / mapLocalUser)."""
    addresses = {str(ip) for ip in src.ips}
    for rule in ssh_policy["rules"]:
        if not any(p.get("nodeIP") in addresses for p in rule["principals"]):
            continue
        users = rule["sshUsers"]
        local = users.get(user, users.get("*", ""))
        if (user if local == "=" else local) == "":
            continue
        action = rule["action"]
        if action.get("reject"):
            return None
        return "check" if action.get("holdAndDelegate") else "accept"
    return None


def _check_rules_only(policy: Policy) -> Policy:
    return dataclasses.replace(policy, ssh=tuple(r for r in policy.ssh if r.action == "check"))


@settings(max_examples=150, deadline=None)
@given(text=ssh_policies(), inventory=tailnets())
def test_compiled_ssh_policies_agree_with_ssh_tests(text: str, inventory: Inventory) -> None:
    policy = load(text)
    evaluator = ReferenceEvaluator(policy, inventory)
    checks = ReferenceEvaluator(_check_rules_only(policy), inventory)
    localpart = any(u.startswith("localpart:") for r in policy.ssh for u in r.users)
    compiled = compile_policy(policy, inventory)
    for dst in inventory:
        ssh_policy = compiled.netmaps[dst.name].ssh_policy
        for src in inventory:
            if localpart and src is dst:
                continue  # SaaS gives a localpart source rules to itself (captured quirk)
            for user in SSH_PROBE_USERS:
                got = client_verdict(ssh_policy, src, user)
                want = ssh_verdict(evaluator, src, dst, user).action
                where = (src.name, dst.name, user, got, want)
                assert (got is None) == (want is None), where
                # Check rules come first on the wire: a check applies whenever one matches.
                needs_check = ssh_verdict(checks, src, dst, user).action == "check"
                assert (got == "check") == needs_check, where

"""The benchmark's other dense shapes (benchmarks/dense_shapes.py), small: every way
of making a netmap gives the same one.

For Tailscale's default allow-all policy, heavy autogroup:self/member with
multi-tag devices, grants with `via` routers, exit nodes and app capabilities,
IPv6-only nodes with hosts and ipsets, and a thousand-rule-style SSH policy
(check, autogroup:nonroot, localpart), each node's netmap made alone
(`node_netmap`, what `policyc compile --node` runs; its SSH policy resolves
only the rules that can reach the node) and the index's netmap equal the whole
compile's, byte for byte; and every SSH principal of a node is an address of a
source node of a rule reaching it (a reference written here from the inventory).
"""

from __future__ import annotations

import json

import orjson
import pytest
from strategies import load

from benchmarks import dense_shapes
from policyc.compiler import compile_policy, node_netmap
from policyc.compiler.index import PolicyIndex
from policyc.compiler.inventory import load_inventory_text
from policyc.compiler.nodes import Inventory
from policyc.netmap import NodeNetmap
from policyc.policy.model import Policy


def wire(netmap: NodeNetmap) -> bytes:
    return orjson.dumps(netmap.to_json(), option=orjson.OPT_SORT_KEYS)


def tailnet(shape: str, nodes: int = 60, rules: int = 40) -> tuple[Policy, Inventory]:
    text, data = dense_shapes.SHAPES[shape](nodes, 8, rules, 3)
    inventory, diags = load_inventory_text(json.dumps(data))
    assert not diags.has_errors
    return load(text), inventory


@pytest.mark.parametrize("shape", sorted(dense_shapes.SHAPES))
def test_each_node_alone_and_the_index_equal_the_whole_compile(shape: str) -> None:
    policy, inventory = tailnet(shape)
    fresh = compile_policy(policy, inventory).netmaps
    index = PolicyIndex.build(policy, inventory)
    assert index.names() == list(fresh)
    for name, expected in fresh.items():
        alone = node_netmap(policy, inventory, name)
        assert wire(alone) == wire(expected), name
        assert alone.ssh_policy == expected.ssh_policy, name
        got = index.netmap(name)
        assert wire(got) == wire(expected), name
        assert got.ssh_policy == expected.ssh_policy, name


def _member_ips(policy: Policy, inventory: Inventory, alias: object) -> set[str]:
    """A source alias's node addresses, read off the inventory (SSH sources are
    users, groups, tags, autogroup:member and autogroup:tagged)."""
    text = str(alias)
    out: set[str] = set()
    for node in inventory:
        if text.startswith("tag:"):
            hit = text in node.tags
        elif text == "autogroup:tagged":
            hit = bool(node.tags)
        elif text == "autogroup:member":
            hit = not node.tags and node.user is not None
        elif text.startswith("group:"):
            hit = not node.tags and node.user in policy.groups[text].logins
        else:
            hit = not node.tags and node.user == text
        if hit:
            out.update(str(ip) for ip in node.ips)
    return out


def test_ssh_principals_are_sources_of_rules_reaching_the_node() -> None:
    policy, inventory = tailnet("ssh", nodes=80, rules=60)
    rule_sources = [set().union(*(_member_ips(policy, inventory, a) for a in rule.sources))
                    for rule in policy.ssh]
    checks = {k for k, rule in enumerate(policy.ssh) if rule.action == "check"}
    assert any(len(s) > 10 for s in rule_sources)
    seen = 0
    for node in inventory:
        for made in node_netmap(policy, inventory, node.name).ssh_policy["rules"]:
            principals = {p["nodeIP"] for p in made["principals"]}
            check = "holdAndDelegate" in made["action"]
            assert any(principals <= rule_sources[k] and (k in checks) == check
                       for k in range(len(policy.ssh))), (node.name, made)
            seen += 1
    assert seen > len(inventory)

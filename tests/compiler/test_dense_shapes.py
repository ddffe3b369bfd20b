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

import ipaddress
import json
from dataclasses import replace

import orjson
import pytest
from strategies import load
from test_index import content

from benchmarks import dense_shapes
from policyc.compiler import compile_policy, node_netmap
from policyc.compiler.index import NodeAdded, NodeEvent, NodeRemoved, NodeUpdated, PolicyIndex
from policyc.compiler.inventory import load_inventory_text
from policyc.compiler.livepatch import patchable
from policyc.compiler.nodes import Inventory, Node
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


def _events(policy: Policy, inventory: Inventory) -> list[NodeEvent]:
    """A new laptop, a leave, a retag, moves to new addresses, a tagged server's join:
    devices of users the via grants name (grants: `group:netops`, named only there),
    none of them a router."""
    members = [n for n in inventory if not n.tags and n.user is not None]
    team = policy.groups["group:netops"].logins if "group:netops" in policy.groups else ()
    member = next((n for n in members if n.user in team), members[0])
    other = next((n for n in members if n.user in team and n != member), members[3])
    server = next(n for n in inventory if n.tags and not n.routes and not n.exit_node)
    fresh = [ipaddress.ip_address("100.70.0.9"), ipaddress.ip_address("fd7a:115c:a1e0::9:9")]
    return [
        NodeAdded(Node("laptop", member.user, (), tuple(fresh), "k" * 43 + "=")),
        # Still every router's peer (`*` reaches tag:router), seen alike: only the
        # via rules' SrcIPs tell the routers' netmaps changed.
        NodeUpdated(replace(member, tags=("tag:t3",), user=None)),
        NodeUpdated(replace(other, ips=(ipaddress.ip_address("100.70.0.12"),))),
        NodeRemoved(other.name),
        NodeUpdated(replace(server, ips=(ipaddress.ip_address("100.70.0.10"),))),
        NodeAdded(Node("server2", None, ("tag:t1",), (ipaddress.ip_address("100.70.0.11"),),
                       "j" * 43 + "=")),
        NodeRemoved("laptop"),
    ]


@pytest.mark.parametrize("shape", ["grants", "selfmember", "v6hosts", "ssh"])
def test_events_are_patched_exactly(shape: str) -> None:
    """Node events on these shapes (grants: `via` grants) are patched in place, not
    rebuilt, and leave the index equal to a fresh compile with the exact changed set."""
    policy, inventory = tailnet(shape)
    index = PolicyIndex.build(policy, inventory)
    before = dict(compile_policy(policy, inventory).netmaps)
    for event in _events(policy, inventory):
        name = event.name if isinstance(event, NodeRemoved) else event.node.name
        old = index.node(name)
        new = None if isinstance(event, NodeRemoved) else event.node
        assert patchable(index._stage, old, new), event
        changes = index.apply(event)
        after = dict(compile_policy(policy, index.inventory()).netmaps)
        assert index.names() == list(after)
        for node, netmap in after.items():
            assert wire(index.netmap(node)) == wire(netmap), (event, node)
        differ = {n for n in after if n not in before or content(before[n]) != content(after[n])}
        assert changes.names == differ | (set(before) - set(after)), event
        before = after


VIA_POLICY = """{
  "groups": {"group:netops": ["alice@example.com"]},
  "tagOwners": {"tag:router": [], "tag:srv": []},
  "grants": [
    {"src": ["group:netops"], "dst": ["10.0.0.0/24"], "ip": ["tcp:22"], "via": ["tag:router"]},
    {"src": ["*"], "dst": ["tag:router"], "ip": ["icmp:*"]},
  ],
}"""


def _device(name: str, user: str | None, tags: tuple[str, ...], k: int,
            routes: tuple[str, ...] = ()) -> Node:
    return Node(name, user, tags, (ipaddress.ip_address(f"100.64.0.{k}"),), f"{k:043d}=",
                tuple(ipaddress.ip_network(r) for r in routes))


def test_a_via_source_leaving_changes_only_the_routers_rules() -> None:
    """Alice's laptop is retagged: still the router's peer (`*` reaches it), seen the
    same, but no longer a source of the via grant (its group is named nowhere else):
    the router's netmap changes by its via rule's SrcIPs alone, and is reported."""
    policy = load(VIA_POLICY)
    inventory = Inventory.of([
        _device("router", None, ("tag:router",), 1, ("10.0.0.0/24",)),
        _device("desk", "alice@example.com", (), 2),
        _device("laptop", "alice@example.com", (), 3),
        _device("bob", "bob@example.com", (), 4),
    ])
    index = PolicyIndex.build(policy, inventory)
    before = dict(compile_policy(policy, inventory).netmaps)
    laptop = inventory.get("laptop")
    assert laptop is not None
    event = NodeUpdated(replace(laptop, user=None, tags=("tag:srv",)))
    assert patchable(index._stage, laptop, event.node)
    changes = index.apply(event)
    after = dict(compile_policy(policy, index.inventory()).netmaps)
    for node, netmap in after.items():
        assert wire(index.netmap(node)) == wire(netmap), node
    differ = {n for n in after if content(before[n]) != content(after[n])}
    assert "router" in differ
    assert [p.name for p in before["router"].peers] == [p.name for p in after["router"].peers]
    assert changes.names == differ


SSH_POLICY = """{
  "acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}],
  "tagOwners": {"tag:x": []},
  "ssh": [
    {"action": "check", "src": ["autogroup:member"], "dst": ["autogroup:self"],
     "users": ["autogroup:nonroot", "root"]},
    {"action": "accept", "src": ["alice@example.com"], "dst": ["alice@example.com"],
     "users": ["root"]},
  ],
}"""


@pytest.mark.parametrize("event", ["join", "leave", "retag"])
@pytest.mark.parametrize("with_self", [True, False])
def test_ssh_events_report_the_owners_devices(event: str, with_self: bool) -> None:
    """A device of Alice's joins, leaves or is retagged: her other devices list it as
    an SSH principal (autogroup:self, and a rule from Alice to Alice) or stop; the
    report says exactly which netmaps changed."""
    text = SSH_POLICY if with_self else SSH_POLICY.replace(
        '"autogroup:self"', '"autogroup:tagged"').replace('"autogroup:member"', '"tag:x"'
                                                           ).replace('"check"', '"accept"')
    policy = load(text)
    inventory = Inventory.of([
        _device("desk", "alice@example.com", (), 2),
        _device("phone", "alice@example.com", (), 5),
        _device("bob", "bob@example.com", (), 4),
        _device("carol", "carol@example.com", (), 6),
    ])
    if event != "join":
        inventory = Inventory.of([*inventory.nodes, _device("laptop", "alice@example.com", (), 3)])
    index = PolicyIndex.build(policy, inventory)
    before = dict(compile_policy(policy, inventory).netmaps)
    laptop = _device("laptop", "alice@example.com", (), 3)
    changes = index.apply({"join": NodeAdded(laptop), "leave": NodeRemoved("laptop"),
                           "retag": NodeUpdated(replace(laptop, user=None, tags=("tag:x",)))
                           }[event])
    after = dict(compile_policy(policy, index.inventory()).netmaps)
    for node, netmap in after.items():
        assert wire(index.netmap(node)) == wire(netmap), node
        assert index.netmap(node).ssh_policy == netmap.ssh_policy, node
    differ = {n for n in after if n not in before or content(before[n]) != content(after[n])}
    assert {"desk", "phone"} <= differ
    assert changes.names == differ | (set(before) - set(after))

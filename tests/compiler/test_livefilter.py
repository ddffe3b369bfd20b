"""Filters made from each node's last one (`PolicyIndex.build(..., reuse_filters=True)`,
livefilter.py) against from-scratch compiles.

Property: after random node events and policy pushes, asking for some nodes'
netmaps after each (so other nodes' memos fall several events behind, as
control's do for nodes an event did not change), every netmap asked for equals
`compile_policy` of the same policy and inventory.
"""

from __future__ import annotations

import ipaddress
from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import load, node, policies
from test_index import (  # the index's own strategies, and its tiny chunks
    SSH_RULES,
    dense_policies,
    events,
    expected,
    index_tailnets,
    small_chunks,
    with_ssh,
)

from policyc.compiler import NodeAdded, NodeUpdated, PolicyIndex
from policyc.compiler.nodes import Inventory

__all__ = ["small_chunks"]  # a module fixture: every edit here crosses chunk boundaries


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.one_of(dense_policies(), policies()), inventory=index_tailnets(),
       ssh=st.booleans(), ordinary=st.booleans(), data=st.data())
def test_filters_made_from_the_last_ones_equal_a_fresh_compile(
        text: str, inventory: Inventory, ssh: bool, ordinary: bool,
        data: st.DataObject) -> None:
    policy = load(with_ssh(text, SSH_RULES) if ssh else text)
    index = PolicyIndex.build(policy, inventory, reuse_filters=True)
    for name in index.names():
        index.netmap(name)
    for step in range(data.draw(st.integers(1, 8), label="events")):
        if data.draw(st.integers(0, 12), label="policy push?") == 0:
            policy = load(data.draw(dense_policies(), label="new policy"))
            index.set_policy(policy)
        else:
            index.apply(data.draw(events(index, 60 + step, ordinary), label="event"))
        names = index.names()
        if not names:
            continue
        asked = data.draw(st.sets(st.sampled_from(names)), label="netmaps asked for")
        fresh = expected(policy, index.inventory())
        for name in sorted(asked):
            assert index.netmap(name) == fresh[name], name
    fresh = expected(policy, index.inventory())
    for name in index.names():
        assert index.netmap(name) == fresh[name], name


POLICY = """{
  "groups": {"group:eng": ["alice@example.com", "bob@example.com"]},
  "tagOwners": {"tag:web": ["alice@example.com"], "tag:ci": ["alice@example.com"]},
  "acls": [
    {"action": "accept", "src": ["group:eng"], "dst": ["tag:web:443"]},
    {"action": "accept", "src": ["tag:ci"], "dst": ["tag:web:22"]},
  ],
}"""


def test_rules_a_join_left_alone_are_the_same_objects() -> None:
    """What control's digests and deltas go by: a rule whose sources, entries and
    protocols did not change is the very FilterRule of the node's last filter."""
    inventory = Inventory.of([node("web", None, ("tag:web",), 1), node("ci", None, ("tag:ci",), 2),
                              node("alice", "alice@example.com", (), 3)])
    index = PolicyIndex.build(load(POLICY), inventory, reuse_filters=True)
    before = index.netmap("web").packet_filter
    index.apply(NodeAdded(node("bob", "bob@example.com", (), 4)))
    after = index.netmap("web").packet_filter
    assert [r.src_ips for r in after] == [
        ("100.64.0.3", "100.64.0.4", "fd7a:115c:a1e0::3", "fd7a:115c:a1e0::4"),
        ("100.64.0.2", "fd7a:115c:a1e0::2")]
    assert after[0] is not before[0] and after[0].dst_ports is before[0].dst_ports
    assert after[1] is before[1]


def test_a_node_moving_inside_a_destination_range_gets_its_new_entry() -> None:
    """Its groups are the same objects before and after (the range's set, prefixes
    and node bits did not change), but its view did: the entries it had are stale."""
    text = """{
  "tagOwners": {"tag:ci": ["alice@example.com"]},
  "acls": [{"action": "accept", "src": ["tag:ci"], "dst": ["100.64.0.1-100.64.0.30:22"]}],
}"""
    web = node("web", "alice@example.com", (), 3)
    index = PolicyIndex.build(load(text), Inventory.of([node("ci", None, ("tag:ci",), 40), web]),
                              reuse_filters=True)
    assert [d.ip for d in index.netmap("web").packet_filter[0].dst_ports] == ["100.64.0.2/31"]
    index.apply(NodeUpdated(replace(web, ips=(ipaddress.ip_address("100.64.0.4"),))))
    assert [d.ip for d in index.netmap("web").packet_filter[0].dst_ports] == ["100.64.0.4/30"]

"""One node's netmap on its own (compiler/onenode.py) against `compile_policy`.

Property: for random policies (ACLs, grants with via and app capabilities,
autogroup:self, the Internet, SSH rules, nodeAttrs) and random tailnets (subnet
routers, exit nodes, single-stack nodes, an address two nodes share), the netmap
`node_netmap` gives each node is the one `compile_policy` gives it: the same
wire bytes, SSH policy and capability map; and `node_packet_filter` (no peers)
gives the same addresses, routes and filter.
"""

from __future__ import annotations

import ipaddress
from dataclasses import replace

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import load, policies, ssh_policies, tailnets
from test_index import SSH_RULES, dense_policies, with_ssh

from policyc.compiler import compile_policy, node_netmap
from policyc.compiler.nodes import Inventory
from policyc.compiler.onenode import NodeFilter, OneNode, node_packet_filter
from policyc.netmap import NodeNetmap

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def wire(netmap: NodeNetmap) -> bytes:
    return orjson.dumps(netmap.to_json(), option=orjson.OPT_SORT_KEYS)


def assert_each_node_alone(text: str, inventory: Inventory, tuned: bool = False) -> None:
    """`tuned`: one sample node (most source sets look alike, the SrcIPs texts decide)
    and identity aliases resolved for peers, never tested on the nodes left (small
    tailnets always leave few)."""
    policy = load(text)
    fresh = compile_policy(policy, inventory).netmaps
    for i, (name, expected) in enumerate(fresh.items()):
        got = (OneNode(policy, inventory, i, samples=1, scan_missing=0).netmap() if tuned
               else node_netmap(policy, inventory, name))
        assert wire(got) == wire(expected), name
        assert got == expected, name
        assert got.ssh_policy == expected.ssh_policy, name
        assert got.cap_map == expected.cap_map, name
        alone = (OneNode(policy, inventory, i, samples=1, scan_missing=0, peers=False)
                 if tuned else None)
        side = (NodeFilter(name, alone.addresses(), expected.routes, alone.packet_filter())
                if alone is not None else node_packet_filter(policy, inventory, name))
        assert (side.node, side.addresses, side.routes) == (
            expected.node, expected.addresses, expected.routes), name
        assert [r.to_json() for r in side.packet_filter] == [
            r.to_json() for r in expected.packet_filter], name
        assert side.packet_filter == expected.packet_filter, name


# Addresses inside the strategies' approved routes, and in Internet space.
ODD_ADDRESSES = ("10.1.2.7", "10.2.0.9", "192.168.7.7", "fd00:1::7", "8.8.4.4",
                 "2606:4700::7")


@st.composite
def odd_addresses(draw: st.DrawFn, inventory: Inventory) -> Inventory:
    """Maybe give the last node the first node's addresses (the loader refuses it, the
    compiler does not: sets are then not decided node by node), and maybe give nodes
    addresses inside approved routes or in Internet space (a router or exit node then
    keeps entries of other nodes' addresses)."""
    nodes = list(inventory.nodes)
    if len(nodes) > 2 and draw(st.integers(0, 4)) == 0:
        nodes[-1] = replace(nodes[-1], ips=nodes[0].ips)
    for k in draw(st.sets(st.integers(0, len(nodes) - 1), max_size=2)):
        extra = ipaddress.ip_address(draw(st.sampled_from(ODD_ADDRESSES)))
        if all(extra not in n.ips for n in nodes):
            nodes[k] = replace(nodes[k], ips=(*nodes[k].ips, extra))
    return Inventory.of(nodes)


@SETTINGS
@given(text=st.one_of(policies(), dense_policies()), inventory=tailnets(), ssh=st.booleans(),
       data=st.data())
def test_each_node_alone_equals_the_whole_compile(text: str, inventory: Inventory, ssh: bool,
                                                  data: st.DataObject) -> None:
    inventory = data.draw(odd_addresses(inventory))
    assert_each_node_alone(with_ssh(text, SSH_RULES) if ssh else text, inventory)


@SETTINGS
@given(text=ssh_policies(), inventory=tailnets())
def test_ssh_policies_alone_equal_the_whole_compile(text: str, inventory: Inventory) -> None:
    assert_each_node_alone(text, inventory)


@SETTINGS
@given(text=st.one_of(policies(), dense_policies()), inventory=tailnets(), data=st.data())
def test_tuned_paths_give_the_same_netmaps(text: str, inventory: Inventory,
                                           data: st.DataObject) -> None:
    assert_each_node_alone(text, data.draw(odd_addresses(inventory)), tuned=True)


def test_unknown_node_is_a_key_error() -> None:
    inventory = Inventory.of([])
    with pytest.raises(KeyError):
        node_netmap(load('{"acls": []}'), inventory, "nowhere")

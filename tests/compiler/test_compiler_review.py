"""Regression tests for defects found in review of the compiler and evaluators.

Each test states the behaviour POLICY-FORMAT.md asks for and checks the
compiler (and, where it answers the same question, the reference evaluator).
"""

from __future__ import annotations

import ipaddress

from strategies import load, node
from test_properties import compiled_allows

from policyc.analysis.reference import ReferenceEvaluator
from policyc.compiler.compiler import compile_policy
from policyc.compiler.nodes import Inventory

HEADER = """
  "tagOwners": {"tag:router": ["alice@example.com"], "tag:exit": ["alice@example.com"],
                "tag:web": ["alice@example.com"]},
"""


def ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


def _agree(text: str, inventory: Inventory, src: str, dst: str, proto: int,
           port: int | None) -> tuple[bool, bool]:
    pol = load(text)
    netmaps = dict(compile_policy(pol, inventory).netmaps)
    ev = ReferenceEvaluator(pol, inventory)
    return (ev.allowed(ip(src), ip(dst), proto, port),
            compiled_allows(netmaps, inventory, ip(src), ip(dst), proto, port))


# --- via grants with `*` as destination ---------------------------------------------

VIA_INVENTORY = Inventory.of([
    node("laptop", "alice@example.com", (), 1),
    node("router", "bob@example.com", ("tag:router",), 20, routes=("10.1.0.0/16",)),
    node("exit", "bob@example.com", ("tag:exit",), 30, exit_node=True),
])


def test_via_grant_to_wildcard_reaches_the_routes_of_via_routers() -> None:
    # `*` as a destination is every address (POLICY-FORMAT 3.3), so routed
    # through tag:router it is everything that router serves.
    text = "{" + HEADER + """
      "grants": [{"src": ["alice@example.com"], "dst": ["*"], "ip": ["tcp:443"],
                  "via": ["tag:router"]}]}"""
    assert _agree(text, VIA_INVENTORY, "100.64.0.1", "10.1.2.3", 6, 443) == (True, True)
    # ... but not the router itself, nor the Internet through the (untagged for via) exit.
    assert _agree(text, VIA_INVENTORY, "100.64.0.1", "100.64.0.20", 6, 443) == (False, False)
    assert _agree(text, VIA_INVENTORY, "100.64.0.1", "8.8.8.8", 6, 443) == (False, False)
    netmaps = compile_policy(load(text), VIA_INVENTORY).netmaps
    assert "router" in {p.name for p in netmaps["laptop"].peers}
    assert "exit" not in {p.name for p in netmaps["laptop"].peers}


def test_via_grant_to_wildcard_reaches_the_internet_through_via_exit_nodes() -> None:
    text = "{" + HEADER + """
      "grants": [{"src": ["alice@example.com"], "dst": ["*"], "ip": ["*"],
                  "via": ["tag:exit"]}]}"""
    assert _agree(text, VIA_INVENTORY, "100.64.0.1", "8.8.8.8", 6, 22) == (True, True)
    assert _agree(text, VIA_INVENTORY, "100.64.0.1", "10.1.2.3", 6, 22) == (False, False)
    netmaps = compile_policy(load(text), VIA_INVENTORY).netmaps
    laptop_peers = {p.name: p for p in netmaps["laptop"].peers}
    assert set(laptop_peers) == {"exit"}
    assert "0.0.0.0/0" in laptop_peers["exit"].allowed_ips


def test_via_grant_to_an_internet_prefix_is_served_by_via_exit_nodes() -> None:
    # An exit node forwards Internet space (POLICY-FORMAT 5.3 keeps such entries on
    # exit nodes); a via grant naming an Internet prefix goes through the via exits.
    text = "{" + HEADER + """
      "grants": [{"src": ["alice@example.com"], "dst": ["8.8.8.0/24"], "ip": ["tcp:53"],
                  "via": ["tag:exit"]}]}"""
    assert _agree(text, VIA_INVENTORY, "100.64.0.1", "8.8.8.8", 6, 53) == (True, True)
    assert _agree(text, VIA_INVENTORY, "100.64.0.1", "1.1.1.1", 6, 53) == (False, False)
    netmaps = compile_policy(load(text), VIA_INVENTORY).netmaps
    assert [r.to_json() for r in netmaps["exit"].packet_filter] == [{
        "SrcIPs": ["100.64.0.1", "fd7a:115c:a1e0::1"],
        "DstPorts": [{"IP": "8.8.8.0/24", "Ports": {"First": 53, "Last": 53}}],
        "IPProto": [6],
    }]
    exit_peer, = netmaps["laptop"].peers
    assert exit_peer.name == "exit"
    assert "0.0.0.0/0" in exit_peer.allowed_ips  # the laptop routes 8.8.8.8 to the exit


# --- reference peer visibility --------------------------------------------------------


def _peer_views(text: str, inventory: Inventory) -> tuple[dict[str, set[str]],
                                                          dict[str, set[str]]]:
    pol = load(text)
    netmaps = compile_policy(pol, inventory).netmaps
    ev = ReferenceEvaluator(pol, inventory)
    compiled = {a.name: {p.name for p in netmaps[a.name].peers} for a in inventory}
    reference = {a.name: {b.name for b in inventory if ev.may_see(a, b)} for a in inventory}
    return compiled, reference


def test_reference_counts_app_only_grants_for_peer_visibility() -> None:
    # The SaaS captures list CapGrant-only sources and destinations as peers.
    text = "{" + HEADER + """
      "grants": [{"src": ["tag:web"], "dst": ["alice@example.com"],
                  "app": {"example.com/cap/x": [{}]}}]}"""
    inventory = Inventory.of([node("laptop", "alice@example.com", (), 1),
                              node("web", "alice@example.com", ("tag:web",), 2),
                              node("other", "bob@example.com", (), 3)])
    compiled, reference = _peer_views(text, inventory)
    assert reference == compiled == {"laptop": {"web"}, "web": {"laptop"}, "other": set()}
    ev = ReferenceEvaluator(load(text), inventory)  # but no packet is allowed
    assert not ev.allowing_rules(ip("100.64.0.2"), ip("100.64.0.1"), 6, 443)


def test_reference_sees_via_exit_nodes_serving_an_internet_prefix() -> None:
    text = "{" + HEADER + """
      "grants": [{"src": ["alice@example.com"], "dst": ["8.8.8.0/24"], "ip": ["*"],
                  "via": ["tag:exit"]}]}"""
    compiled, reference = _peer_views(text, VIA_INVENTORY)
    assert reference == compiled == {"laptop": {"exit"}, "exit": {"laptop"}, "router": set()}

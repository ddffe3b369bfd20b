"""Cross-checks: the compiler's per-node output against the reference evaluator.

(a) For random policies (HuJSON text through the real front end) and random
    small tailnets, "src may reach dst on proto/port" read off the compiled
    packet filter of the node that receives the packet (the destination
    node, the subnet router the sender's netmap routes it to, or an exit
    node) equals the reference's answer,
    over all node address pairs plus route and Internet destinations.
(b) Node A lists B as a peer (and so holds B's key) iff the reference says
    A may see B.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from strategies import INTERNET_PROBES, ROUTE_PROBES, load, node, policies, tailnets

from policyc.analysis.access import policy_access
from policyc.analysis.reference import ReferenceEvaluator, in_internet
from policyc.compiler.compiler import compile_policy
from policyc.compiler.nodes import Inventory, Node
from policyc.netmap import DEFAULT_PROTOCOLS, FilterRule, NodeNetmap
from policyc.policy.model import IPAddress, IPNetwork

PROPERTY_SETTINGS = settings(max_examples=150, deadline=None,
                             suppress_health_check=[HealthCheck.too_slow])

# (protocol, port); None: a port-less protocol, ports are not compared.
TRAFFIC = ((6, 22), (6, 443), (6, 1500), (6, 8050), (17, 53), (17, 80), (1, None),
           (58, None), (47, None), (132, 9))
EXTRA_SOURCES = ("10.1.2.3", "192.168.7.7", "8.8.8.8")


# --- Tailscale's wgengine/filter matching, for reading compiled filters ----------------


def _src_entry_contains(entry: str, ip: IPAddress) -> bool:
    if entry == "*":
        return True
    if "-" in entry:
        first_text, _, last_text = entry.partition("-")
        first, last = ipaddress.ip_address(first_text), ipaddress.ip_address(last_text)
        return first.version == ip.version and first <= ip <= last  # type: ignore[operator]
    network = ipaddress.ip_network(entry, strict=False)
    return network.version == ip.version and ip in network


def filter_allows(rules: Iterable[FilterRule], src: IPAddress, dst: IPAddress, proto: int,
                  port: int | None) -> bool:
    """Does a node's packet filter admit a new flow? (Tailscale filter semantics.)

    IPProto empty means TCP, UDP, ICMPv4, ICMPv6; ports are compared only when
    the packet has one. Not modelled: the client's extra leniency for ICMP.
    """
    for rule in rules:
        protocols = rule.ip_proto or DEFAULT_PROTOCOLS
        if proto not in protocols:
            continue
        if not any(_src_entry_contains(s, src) for s in rule.src_ips):
            continue
        for dst_range in rule.dst_ports:
            if not _src_entry_contains(dst_range.ip, dst):
                continue
            if port is None or dst_range.ports.first <= port <= dst_range.ports.last:
                return True
    return False


def _routes_held(netmaps: dict[str, NodeNetmap], inventory: Inventory, src: IPAddress,
                 ) -> list[tuple[IPNetwork, Node]]:
    """The subnet routes a packet from `src` can be sent into, with their routers.

    A node's WireGuard sends a packet to the peer whose allowed IPs hold the longest
    prefix of the destination (cryptokey routing), so only the routes its own netmap
    gives its peers count (and a router's own subnets): a router it does not peer
    with, or whose route it may not use, never receives its packets.
    (Exit routes are left out: using an exit node is the user's separate choice.) A
    source that is no node (a host behind a subnet router, or outside) is modelled as
    reaching every approved route.
    """
    sender = next((n for n in inventory if src in n.ips), None)
    if sender is None:
        return [(r, n) for n in inventory for r in n.routes]
    held = [(r, sender) for r in sender.routes]  # its own subnets, as before
    for peer in netmaps[sender.name].peers:
        router = inventory.by_name[peer.name]
        for text in peer.allowed_ips:
            route = ipaddress.ip_network(text)
            if route in router.routes:
                held.append((route, router))
    return held


def receivers(inventory: Inventory, netmaps: dict[str, NodeNetmap], src: IPAddress,
              dst: IPAddress) -> list[Node]:
    """The nodes whose filter judges a packet `src` -> `dst`: the owner of `dst`, else
    the router of the longest route the sender holds, else the exit nodes."""
    owners = [n for n in inventory if dst in n.ips]
    if owners:
        return owners
    routed = [(route.prefixlen, n) for route, n in _routes_held(netmaps, inventory, src)
              if route.version == dst.version and dst in route]
    if routed:
        longest = max(length for length, _ in routed)
        return [n for length, n in routed if length == longest]
    if in_internet(dst):
        return [n for n in inventory if n.exit_node]
    return []


def compiled_allows(netmaps: dict[str, NodeNetmap], inventory: Inventory, src: IPAddress,
                    dst: IPAddress, proto: int, port: int | None) -> bool:
    return any(filter_allows(netmaps[n.name].packet_filter, src, dst, proto, port)
               for n in receivers(inventory, netmaps, src, dst))


# --- the properties ------------------------------------------------------------------------


def describe(text: str, inventory: Inventory) -> str:
    """A compact account of a failing example: the rules and the nodes."""
    rules = text[text.find('"hosts"'):]
    nodes = [f"{n.name} user={n.user} tags={list(n.tags)} ips={[str(i) for i in n.ips]}"
             f" routes={[str(r) for r in n.routes]} exit={n.exit_node}" for n in inventory]
    return rules + "\n" + "\n".join(nodes)


def _addresses(inventory: Inventory) -> list[IPAddress]:
    return [ip for n in inventory for ip in n.ips]


def _mismatches(text: str, inventory: Inventory, dests: list[IPAddress],
                traffic: list[tuple[int, int | None]]) -> list[str]:
    pol = load(text)
    netmaps = dict(compile_policy(pol, inventory).netmaps)
    ev = ReferenceEvaluator(pol, inventory)
    sources = _addresses(inventory) + [ipaddress.ip_address(t) for t in EXTRA_SOURCES]
    found = []
    for src in sources:
        for dst in dests:
            for proto, port in traffic:
                expected = ev.allowed(src, dst, proto, port)
                actual = compiled_allows(netmaps, inventory, src, dst, proto, port)
                if expected != actual:
                    found.append(f"{src} -> {dst} proto {proto} port {port}: "
                                 f"reference {expected}, compiled {actual}")
    return found


TRAFFIC_SAMPLE = st.lists(st.sampled_from(TRAFFIC), min_size=3, max_size=3, unique=True)


@PROPERTY_SETTINGS
@given(text=policies(), inventory=tailnets(), traffic=TRAFFIC_SAMPLE)
def test_compiled_filters_match_the_reference(text: str, inventory: Inventory,
                                              traffic: list[tuple[int, int | None]]) -> None:
    dests = _addresses(inventory) + [ipaddress.ip_address(t) for t in ROUTE_PROBES]
    mismatches = _mismatches(text, inventory, dests, traffic)
    assert not mismatches, "\n".join(mismatches[:10]) + "\n" + describe(text, inventory)


@settings(PROPERTY_SETTINGS, phases=[Phase.explicit, Phase.reuse, Phase.generate])
@given(text=policies(), inventory=tailnets(with_exit=True), traffic=TRAFFIC_SAMPLE)
def test_internet_through_exit_nodes_matches_the_reference(
        text: str, inventory: Inventory, traffic: list[tuple[int, int | None]]) -> None:
    dests = [ipaddress.ip_address(t) for t in INTERNET_PROBES]
    mismatches = _mismatches(text, inventory, dests, traffic)
    assert not mismatches, "\n".join(mismatches[:10]) + "\n" + describe(text, inventory)


VIA_NESTED_POLICY = """{
  "hosts": {"lan": "10.1.0.0/16"},
  "tagOwners": {"tag:web": ["alice@example.com"], "tag:router": ["alice@example.com"]},
  "grants": [
    {"src": ["alice@example.com"], "dst": ["alice@example.com", "lan"], "ip": ["*"],
     "via": ["tag:web"]},
    {"src": ["alice@example.com"], "dst": ["autogroup:self"], "ip": ["*"]},
  ],
}"""


def test_via_router_receives_what_a_more_specific_unreachable_route_would_take() -> None:
    """Regression (found by the property above): `router` (tag:web, 10.1.0.0/16) is the
    via router for alice's grant to lan; `router1` (tag:router) serves the more specific
    10.1.2.0/24 but no rule lets alice use it, so alice does not peer with it and her
    packet to 10.1.2.3 goes to `router`, whose filter admits it, as the reference says.
    (A global longest-prefix match sent it to `router1` and read a false "denied".)"""
    net = ipaddress.ip_network
    inventory = Inventory.of([
        node("n0", "alice@example.com", (), 1),
        node("router", "alice@example.com", ("tag:web",), 40, routes=(net("10.1.0.0/16"),)),
        node("router1", "alice@example.com", ("tag:router",), 41,
             routes=(net("10.1.2.0/24"), net("10.2.0.0/24"))),
    ])
    pol = load(VIA_NESTED_POLICY)
    netmaps = dict(compile_policy(pol, inventory).netmaps)
    alice, host = ipaddress.ip_address("100.64.0.1"), ipaddress.ip_address("10.1.2.3")
    assert {p.name: p.allowed_ips[-1] for p in netmaps["n0"].peers} == {"router": "10.1.0.0/16"}
    assert [n.name for n in receivers(inventory, netmaps, alice, host)] == ["router"]
    assert not netmaps["router1"].packet_filter  # the via grant is not router1's
    ev = ReferenceEvaluator(pol, inventory)
    for proto, port in ((6, 22), (6, 443), (17, 53), (1, None)):
        assert ev.allowed(alice, host, proto, port)
        assert compiled_allows(netmaps, inventory, alice, host, proto, port)
    assert not _mismatches(VIA_NESTED_POLICY, inventory,
                           [*_addresses(inventory), host], list(TRAFFIC))


def test_a_more_specific_route_the_sender_holds_wins_over_the_via_router() -> None:
    """viafix's open question: alice also holds a regular grant into router1's more
    specific 10.1.2.0/24 (tcp/22). Then router1 is her peer with that route (headscale's
    ViaRoutesForPeer keeps a non-via router's overlapping route when a regular grant
    covers it), her 10.1.2.x traffic goes to router1 by longest prefix, and only tcp/22
    gets through: the via grant no longer reaches 10.1.2.0/24 from alice (reference,
    diff boxes and compiled netmaps agree), while the rest of lan still goes via
    `router`. A router's own subnet counts the same way for the router itself."""
    net = ipaddress.ip_network
    inventory = Inventory.of([
        node("n0", "alice@example.com", (), 1),
        node("router", "alice@example.com", ("tag:web",), 40, routes=(net("10.1.0.0/16"),)),
        node("router1", "alice@example.com", ("tag:router",), 41,
             routes=(net("10.1.2.0/24"),)),
    ])
    text = VIA_NESTED_POLICY.replace(
        '"ip": ["*"]},\n  ],', '"ip": ["*"]},\n    {"src": ["alice@example.com"], '
        '"dst": ["10.1.2.0/24"], "ip": ["tcp:22"]},\n  ],')
    pol = load(text)
    assert len(pol.grants or ()) == 3
    netmaps = dict(compile_policy(pol, inventory).netmaps)
    alice = ipaddress.ip_address("100.64.0.1")
    inner, outer = ipaddress.ip_address("10.1.2.3"), ipaddress.ip_address("10.1.7.7")
    assert [n.name for n in receivers(inventory, netmaps, alice, inner)] == ["router1"]
    assert [n.name for n in receivers(inventory, netmaps, alice, outer)] == ["router"]
    ev = ReferenceEvaluator(pol, inventory)
    access = policy_access(pol, inventory)
    for dst, proto, port, expected in ((inner, 6, 22, True), (inner, 6, 443, False),
                                       (inner, 17, 53, False), (outer, 6, 443, True)):
        assert ev.allowed(alice, dst, proto, port) is expected, (dst, port)
        assert access.allows(alice, dst, proto, port) is expected, (dst, port)
        assert compiled_allows(netmaps, inventory, alice, dst, proto, port) is expected
    # router1 sending into its own subnet: its own route wins, not the via router.
    own = ipaddress.ip_address("100.64.0.41")
    solo = load(text.replace('"src": ["alice@example.com"], "dst": ["alice@example.com", "lan"]',
                             '"src": ["tag:router"], "dst": ["lan"]'))
    assert not ReferenceEvaluator(solo, inventory).allowed(own, inner, 6, 443)
    assert ReferenceEvaluator(solo, inventory).allowed(own, outer, 6, 443)
    assert not _mismatches(text, inventory, [*_addresses(inventory), inner, outer],
                           list(TRAFFIC))


@PROPERTY_SETTINGS
@given(text=policies(), inventory=tailnets())
def test_peers_and_keys_match_reference_visibility(text: str, inventory: Inventory) -> None:
    pol = load(text)
    netmaps = compile_policy(pol, inventory).netmaps
    ev = ReferenceEvaluator(pol, inventory)
    for a in inventory:
        expected = {b.name for b in inventory if ev.may_see(a, b)}
        netmap = netmaps[a.name]
        assert {p.name for p in netmap.peers} == expected, a.name + describe(text, inventory)
        keys = {p.key for p in netmap.peers}
        assert keys == {b.key for b in inventory if b.name in expected}, a.name


@PROPERTY_SETTINGS
@given(text=policies(), inventory=tailnets())
def test_reference_reachability_between_nodes_implies_visibility(
        text: str, inventory: Inventory) -> None:
    pol = load(text)
    ev = ReferenceEvaluator(pol, inventory)
    for a in inventory:
        for b in inventory:
            if a.name == b.name or ev.may_see(a, b):
                continue
            for proto, port in TRAFFIC:
                assert not any(ev.allowed(s, d, proto, port) for s in a.ips for d in b.ips)

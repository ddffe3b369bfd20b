"""Real packets through a WireGuard mesh of namespaces, enforced by policyc.

The samples' tailnet (8 of its nodes, one per role) is compiled, enforced
with `policyc.enforcer.node.enforce`, and probed with TCP, UDP and ICMP
between every ordered pair. The expected answer comes from the reference
evaluator (written from the policy format, independent of the compiler).
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterator
from dataclasses import replace

import harness
import pytest
from harness import Probe
from sample_tailnets import Tailnet

from policyc.analysis.reference import ReferenceEvaluator
from policyc.enforcer import nft
from policyc.netmap import FilterRule, NetPortRange, NodeNetmap, PortRange

pytestmark = [
    pytest.mark.privileged,
    pytest.mark.skipif(harness.requirements_missing() is not None,
                       reason=str(harness.requirements_missing())),
]

TCP_PORTS = (22, 443, 5432, 8080)
UDP_PORTS = (443,)
PROTO_NUMBERS = {"tcp": 6, "udp": 17}


def probes_between(names: list[str]) -> list[Probe]:
    out: list[Probe] = []
    for src in names:
        for dst in names:
            if src == dst:
                continue
            out += [Probe(src, dst, "tcp", port) for port in TCP_PORTS]
            out += [Probe(src, dst, "udp", port) for port in UDP_PORTS]
            out += [Probe(src, dst, "icmp", 0, 4), Probe(src, dst, "icmp", 0, 6),
                    Probe(src, dst, "tcp", 22, 6)]
    return out


def expected(net: Tailnet, probe: Probe) -> bool:
    """What the policy says: may src initiate this (reference evaluator)?

    ICMP follows the Tailscale client: an echo request is admitted when any
    protocol or port is open from src to dst ("if any port is open to an IP,
    allow ICMP to it", wgengine/filter), which the reference leaves out.
    """
    reference = ReferenceEvaluator(net.policy, net.mesh.inventory)
    src, dst = net.mesh[probe.src], net.mesh[probe.dst]
    family = probe.family
    src_ip = ipaddress.ip_address(src.ipv6 if family == 6 else src.ipv4)
    dst_ip = ipaddress.ip_address(dst.ipv6 if family == 6 else dst.ipv4)
    if probe.proto == "icmp":
        icmp = 58 if family == 6 else 1
        return any(reference.allowed(src_ip, dst_ip, proto, None)
                   for proto in (icmp, 6, 17, 132))
    return reference.allowed(src_ip, dst_ip, PROTO_NUMBERS[probe.proto], probe.port)


def mismatches(net: Tailnet, probes: list[Probe]) -> list[str]:
    """Probes whose outcome differs from the policy (after one slower retry)."""
    return harness.policy_mismatches(net.mesh, probes, lambda p: expected(net, p))


def test_peers_are_exactly_the_netmap_peers(tailnet: Tailnet) -> None:
    reference = ReferenceEvaluator(tailnet.policy, tailnet.mesh.inventory)
    inventory = tailnet.mesh.inventory
    for name, node in tailnet.mesh.nodes.items():
        visible = {inventory.by_name[other].key for other in tailnet.mesh.nodes
                   if reference.may_see(inventory.by_name[name], inventory.by_name[other])}
        assert node.wg_peers() == {p.key for p in tailnet.netmaps[name].peers} == visible, name


def test_traffic_between_every_pair_matches_the_policy(tailnet: Tailnet) -> None:
    probes = probes_between(list(tailnet.mesh.nodes))
    allowed = [p for p in probes if expected(tailnet, p)]
    assert 0 < len(allowed) < len(probes)  # the matrix holds both answers
    assert mismatches(tailnet, probes) == []


def test_a_node_without_the_peer_key_cannot_reach_it_even_unfiltered(tailnet: Tailnet) -> None:
    # QA (dave) may reach staging-api on some ports but never prod-db, and prod-db
    # may not initiate to dave: dave's netmap does not carry prod-db's key.
    dave, staging, db = "dave-laptop", "staging-api", "prod-db"
    keys = {p.key for p in tailnet.netmaps[dave].peers}
    assert tailnet.mesh.inventory.by_name[db].key not in keys
    assert tailnet.mesh.inventory.by_name[staging].key in keys
    blocked_by_filter = Probe(dave, staging, "tcp", 5432)
    no_key = [Probe(dave, db, "tcp", 5432), Probe(dave, db, "icmp"),
              Probe(db, dave, "tcp", 22), Probe(db, dave, "icmp")]
    assert not any(harness.probe_all(tailnet.mesh, [blocked_by_filter, *no_key]).values())
    try:
        for name in (dave, staging, db):
            tailnet.mesh[name].run(["nft", "delete", "table", "inet", "policyc"], check=True)
        seen = harness.probe_all(tailnet.mesh, [blocked_by_filter, *no_key])
        assert seen[blocked_by_filter], "flushing the filter did not open a filtered port"
        assert not any(seen[p] for p in no_key)
    finally:
        for name in (dave, staging, db):
            tailnet.enforce(name)


def without_port(rules: tuple[FilterRule, ...], src_ip: str, port: int) -> tuple[FilterRule, ...]:
    """The filter with `port` taken away from rules whose sources include `src_ip`."""
    src = ipaddress.ip_address(src_ip)
    out = []
    for rule in rules:
        if not any(_source_contains(s, src) for s in rule.src_ips):
            out.append(rule)
            continue
        kept = tuple(d for d in rule.dst_ports if not d.ports.first <= port <= d.ports.last)
        if kept:
            out.append(replace(rule, dst_ports=kept))
    return tuple(out)


def _source_contains(text: str, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if text == "*":
        return True
    if "-" in text:
        low, high = (ipaddress.ip_address(t) for t in text.split("-"))
        return low.version == ip.version and low <= ip <= high  # type: ignore[operator]
    net = ipaddress.ip_network(text, strict=False)
    return net.version == ip.version and ip in net


@pytest.fixture()
def session_alice_to_web(tailnet: Tailnet) -> Iterator[harness.TcpSession]:
    web = tailnet.mesh["prod-web-1"]
    session = harness.open_tcp_session(tailnet.mesh["alice-laptop"], web.ipv4, 8080,
                                       mesh=tailnet.mesh)
    yield session
    session.close()
    tailnet.enforce("prod-web-1")


def test_revoking_a_rule_kills_an_open_connection(tailnet: Tailnet,
                                                  session_alice_to_web: harness.TcpSession
                                                  ) -> None:
    alice, web = tailnet.mesh["alice-laptop"], "prod-web-1"
    assert session_alice_to_web.send("before")
    old = tailnet.netmaps[web]
    revoked = replace(old, packet_filter=without_port(old.packet_filter, alice.ipv4, 8080))
    assert revoked.packet_filter != old.packet_filter
    tailnet.enforce(web, revoked)
    assert not session_alice_to_web.send("after", timeout=2.0)
    session_alice_to_web.close()  # frees port 8080 for the probe server
    seen = harness.probe_all(tailnet.mesh, [Probe("alice-laptop", web, "tcp", 8080),
                                            Probe("alice-laptop", web, "tcp", 22)])
    assert seen == {Probe("alice-laptop", web, "tcp", 8080): False,
                    Probe("alice-laptop", web, "tcp", 22): True}


def test_a_broken_ruleset_leaves_the_old_one_in_force(tailnet: Tailnet) -> None:
    db = tailnet.mesh["prod-db"]
    good = nft.render_ruleset(tailnet.netmaps["prod-db"], db.iface)
    broken = json.loads(json.dumps(good))
    broken["nftables"].append({"add": {"rule": {
        "family": "inet", "table": "policyc", "chain": "no-such-chain",
        "expr": [{"accept": None}]}}})
    probes = [Probe(src, "prod-db", proto, port) for src in ("alice-laptop", "prod-web-1")
              for proto, port in (("tcp", 5432), ("tcp", 22), ("icmp", 0))]
    assert mismatches(tailnet, probes) == []
    result = nft.apply_ruleset(broken, netns=db.netns)
    assert not result.ok
    assert "N501" in {d.code for d in result.diagnostics}
    assert mismatches(tailnet, probes) == []  # still filtered exactly as before
    assert nft.check_drift(good, db.netns).ok


def input_chain(node: harness.MeshNode) -> str:
    listing = json.loads(node.run(["nft", "-j", "list", "table", "inet", "policyc"],
                                  check=True).stdout)
    chains = [item["chain"] for item in listing["nftables"] if "chain" in item]
    return next(c["name"] for c in chains if c.get("hook") == "input")


def test_a_hand_added_rule_is_detected_as_drift(tailnet: Tailnet) -> None:
    db = tailnet.mesh["prod-db"]
    expected_ruleset = nft.render_ruleset(tailnet.netmaps["prod-db"], db.iface)
    assert nft.check_drift(expected_ruleset, db.netns).ok
    try:
        db.run(["nft", "insert", "rule", "inet", "policyc", input_chain(db),
                "tcp", "dport", "9999", "accept"], check=True)
        report = nft.check_drift(expected_ruleset, db.netns)
        assert not report.ok and report.differences
        assert "N502" in {d.code for d in report.diagnostics}
    finally:
        tailnet.enforce("prod-db")
    assert nft.check_drift(expected_ruleset, db.netns).ok


def test_enforce_is_idempotent_and_keeps_sessions(tailnet: Tailnet) -> None:
    web = tailnet.mesh["prod-web-1"]
    session = harness.open_tcp_session(tailnet.mesh["alice-laptop"], web.ipv4, 443,
                                       mesh=tailnet.mesh)
    try:
        tailnet.enforce("prod-web-1")
        tailnet.enforce("alice-laptop")
        assert session.send("still-open")
    finally:
        session.close()


def test_netmap_without_a_peer_removes_its_key(tailnet: Tailnet) -> None:
    alice, web = "alice-laptop", "prod-web-1"
    old: NodeNetmap = tailnet.netmaps[alice]
    web_key = tailnet.mesh.inventory.by_name[web].key
    try:
        tailnet.enforce(alice, replace(old, peers=tuple(p for p in old.peers
                                                        if p.key != web_key)))
        assert web_key not in tailnet.mesh[alice].wg_peers()
        assert harness.probe_all(tailnet.mesh, [Probe(alice, web, "tcp", 22)]) == {
            Probe(alice, web, "tcp", 22): False}
    finally:
        tailnet.enforce(alice)
    assert harness.probe_all(tailnet.mesh, [Probe(alice, web, "tcp", 22)]) == {
        Probe(alice, web, "tcp", 22): True}


def test_a_filter_that_fails_to_load_adds_no_peers_but_removes_stale_ones(
        tailnet: Tailnet) -> None:
    from policyc.enforcer.node import enforce

    dave = tailnet.mesh["dave-laptop"]
    old = tailnet.netmaps["dave-laptop"]
    inventory = tailnet.mesh.inventory
    db_key, staging_key = inventory.by_name["prod-db"].key, inventory.by_name["staging-api"].key
    db_peer = next(p for p in tailnet.netmaps["prod-web-1"].peers if p.key == db_key)
    broken = replace(
        old,
        peers=(*(p for p in old.peers if p.key != staging_key), db_peer),
        packet_filter=(*old.packet_filter, FilterRule(("not-an-address",), (
            NetPortRange(dave.ipv4, PortRange(22, 22)),))),
    )
    try:
        result = enforce(broken, dave.iface, netns=dave.netns)
        assert not result.ok and not result.filter_loaded
        assert "N507" in {d.code for d in result.diagnostics}
        peers = dave.wg_peers()
        assert db_key not in peers  # access is never widened on a failed filter
        assert staging_key not in peers  # but taking it away is always safe
        expected_ruleset = nft.render_ruleset(old, dave.iface)
        assert nft.check_drift(expected_ruleset, dave.netns).ok  # old filter in force
    finally:
        tailnet.enforce("dave-laptop")
    assert staging_key in dave.wg_peers()


def test_enforce_reports_a_missing_namespace_without_raising() -> None:
    from policyc.enforcer.node import enforce

    result = enforce(NodeNetmap("x", ("100.64.0.1",), (), ()), "pcwnosuch0",
                     netns="pce-no-such-namespace")
    assert not result.ok
    assert "N508" in {d.code for d in result.diagnostics}
    assert result.messages()

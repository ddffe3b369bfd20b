"""Real packets through the sample's subnet router to the office LAN behind it.

A small mesh (one member per role, a tagged server, office-router) is
compiled from the samples and enforced; office-router forwards to the LAN
198.19.20.0/24 (printer .15, office-nas .20), each host in a namespace of
its own. TCP probes from every client to both hosts are compared with the
reference evaluator. Where a probe is denied, a SYN tap in the router's
forward hook (a separate table, ahead of policyc's) shows the packet did
reach the router, and policyc's `fwd_dropped` counter grows by exactly the
SYNs of the denied flows: the router's forward chain blocked them, not a
missing route.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterator
from dataclasses import replace

import harness
import pytest
from harness import LanProbe
from sample_tailnets import OFFICE_HOSTS, OFFICE_LAN, OFFICE_ROUTER, Office, load_inventory

from policyc.analysis.reference import ReferenceEvaluator
from policyc.enforcer import nft
from policyc.enforcer.wireguard import peer_allowed_ips
from policyc.netmap import NodeNetmap

pytestmark = [
    pytest.mark.privileged,
    pytest.mark.skipif(harness.requirements_missing() is not None,
                       reason=str(harness.requirements_missing())),
]

CLIENTS = ("alice-laptop", "dave-laptop", "frank-laptop", "carol-laptop", "prod-web-1")
PORTS = (22, 445, 631, 9100)
LAN = ipaddress.ip_network(OFFICE_LAN)
Flow = tuple[str, str, int]


def lan_probes() -> list[LanProbe]:
    return [LanProbe(src, host, "tcp", port)
            for src in CLIENTS for host in OFFICE_HOSTS for port in PORTS]


def expected(office: Office, probe: LanProbe) -> bool:
    """May the client open this TCP port on the LAN host (reference evaluator)?"""
    reference = ReferenceEvaluator(office.policy, office.mesh.inventory)
    src = ipaddress.ip_address(office.mesh[probe.src].ipv4)
    return reference.allowed(src, ipaddress.ip_address(office.lan[probe.dst].ip), 6, probe.port)


def flow(office: Office, probe: LanProbe) -> Flow:
    return office.mesh[probe.src].ipv4, office.lan[probe.dst].ip, probe.port


def routed_via_router(netmap: NodeNetmap) -> bool:
    """Does this netmap give office-router's peer entry the LAN route?"""
    return any(p.name == OFFICE_ROUTER and _holds_lan(p.allowed_ips) for p in netmap.peers)


def _holds_lan(cidrs: object) -> bool:
    return any(ipaddress.ip_network(c, strict=False).overlaps(LAN) for c in cidrs  # type: ignore[attr-defined]
               if ":" not in c)


def forward_drops(office: Office) -> int:
    count = nft.counter_packets("fwd_dropped", office.mesh[OFFICE_ROUTER].netns)
    assert count is not None, "office-router has no fwd_dropped counter"
    return count


def run_matrix(office: Office, probes: list[LanProbe]) -> dict[LanProbe, bool]:
    """Probe outcomes, with one slower retry for probes that disagree with the policy."""
    seen = harness.probe_lan(office.mesh, office.lan, probes)
    suspects = [p for p in probes if seen[p] != expected(office, p)]
    if suspects:
        seen.update(harness.probe_lan(office.mesh, office.lan, suspects, timeout=3.0))
    return seen


# --- the LAN as built -------------------------------------------------------------------


def test_the_lan_is_the_policys_office_lan(office: Office) -> None:
    hosts = office.policy.hosts
    assert hosts["office-lan"].network == LAN
    for name, ip in OFFICE_HOSTS.items():
        assert hosts[name].network == ipaddress.ip_network(f"{ip}/32")
        assert office.lan[name].ip == ip
    assert LAN in office.mesh.inventory.by_name[OFFICE_ROUTER].routes
    assert office.netmaps[OFFICE_ROUTER].routes == (OFFICE_LAN,)


def test_lan_namespaces_are_this_runs_and_the_router_forwards(office: Office) -> None:
    listing = {line.split(" ")[0]
               for line in harness.sh(["ip", "netns", "list"]).stdout.splitlines()}
    for netns in office.lan.namespaces:
        assert netns in listing
        # The session sweep deletes namespaces whose owner PID is dead: ours parse to us.
        assert harness._owner_pid(netns) == os.getpid(), netns
    router = office.mesh[OFFICE_ROUTER]
    forwarding = router.run(["sysctl", "-n", "net.ipv4.ip_forward"], check=True).stdout
    assert forwarding.strip() == "1"


def test_wireguard_routes_to_the_lan_are_exactly_the_netmaps(office: Office) -> None:
    router_key = office.mesh.inventory.by_name[OFFICE_ROUTER].key
    for name, node in office.mesh.nodes.items():
        netmap = office.netmaps[name]
        running = harness.wg_allowed_ips(node)
        assert running == {p.key: set(peer_allowed_ips(p)) for p in netmap.peers}, name
        holders = {key for key, ips in running.items() if _holds_lan(ips)}
        assert holders == ({router_key} if routed_via_router(netmap) else set()), name
    members = [n for n in CLIENTS if not office.mesh.inventory.by_name[n].is_tagged]
    assert all(routed_via_router(office.netmaps[n]) for n in members)
    # The tagged server is no autogroup:member: no route to the LAN in its netmap,
    # so no WireGuard allowed-ip for it either.
    assert not routed_via_router(office.netmaps["prod-web-1"])
    assert not any(_holds_lan(ips)
                   for ips in harness.wg_allowed_ips(office.mesh["prod-web-1"]).values())


# --- packets ---------------------------------------------------------------------------


def test_lan_traffic_matches_the_policy_and_denials_are_the_routers(office: Office) -> None:
    probes = lan_probes()
    want = {p: expected(office, p) for p in probes}
    assert 0 < sum(want.values()) < len(probes)  # the matrix holds both answers
    routed = {name: routed_via_router(office.netmaps[name]) for name in CLIENTS}
    with harness.ForwardTap(office.mesh[OFFICE_ROUTER].netns,
                            [flow(office, p) for p in probes]) as tap:
        before = forward_drops(office)
        seen = run_matrix(office, probes)
        denied_at_router = [p for p in probes if routed[p.src] and not want[p]]
        # Every SYN of a denied flow that reached the router, and nothing else, is
        # counted by policyc's forward drop rule. (Both read until they agree for a
        # moment: a last retransmission may still be on its way through WireGuard.)
        harness.wait_for(lambda: forward_drops(office) - before == sum(
            tap.syns()[flow(office, p)] for p in denied_at_router), timeout=1.0)
        after = forward_drops(office)
        syns = tap.syns()
    assert [f"{p}: policy says {'allow' if want[p] else 'deny'}, packets were "
            f"{'let through' if seen[p] else 'blocked'}"
            for p in probes if seen[p] != want[p]] == []
    for p in probes:
        if routed[p.src]:
            assert syns[flow(office, p)] >= 1, f"{p}: the SYN never reached the router"
        else:
            assert syns[flow(office, p)] == 0, f"{p}: left the client without a route"
    assert denied_at_router
    assert after - before == sum(syns[flow(office, p)] for p in denied_at_router)


def test_without_the_routers_filter_the_denied_flows_get_through(office: Office) -> None:
    probes = lan_probes()
    routed = {name: routed_via_router(office.netmaps[name]) for name in CLIENTS}
    denied_at_router = [p for p in probes if routed[p.src] and not expected(office, p)]
    no_route = [p for p in probes if not routed[p.src]]
    router = office.mesh[OFFICE_ROUTER]
    try:
        router.run(["nft", "delete", "table", "inet", "policyc"], check=True)
        seen = harness.probe_lan(office.mesh, office.lan, [*denied_at_router, *no_route])
        assert [str(p) for p in denied_at_router if not seen[p]] == []
        assert [str(p) for p in no_route if seen[p]] == []  # WireGuard still has no route
    finally:
        office.enforce(OFFICE_ROUTER)
    assert nft.check_drift(nft.render_ruleset(office.netmaps[OFFICE_ROUTER], router.iface,
                                              routes=(OFFICE_LAN,)), router.netns).ok


@pytest.fixture()
def dave_without_lan_route(office: Office) -> Iterator[NodeNetmap]:
    old = office.netmaps["dave-laptop"]
    peers = tuple(replace(p, allowed_ips=tuple(c for c in p.allowed_ips if not _holds_lan([c])))
                  if p.name == OFFICE_ROUTER else p for p in old.peers)
    netmap = replace(old, peers=peers)
    assert routed_via_router(old) and not routed_via_router(netmap)
    try:
        office.enforce("dave-laptop", netmap)
        yield netmap
    finally:
        office.enforce("dave-laptop")


def test_a_peer_entry_without_the_lan_route_takes_the_allowed_ip_away(
        office: Office, dave_without_lan_route: NodeNetmap) -> None:
    dave = office.mesh["dave-laptop"]
    router_key = office.mesh.inventory.by_name[OFFICE_ROUTER].key
    running = harness.wg_allowed_ips(dave)
    router = office.mesh.inventory.by_name[OFFICE_ROUTER]
    assert running[router_key] == {f"{ip}/{32 if ip.version == 4 else 128}"
                                   for ip in router.ips}
    assert not any(_holds_lan(ips) for ips in running.values())
    printer = LanProbe("dave-laptop", "printer", "tcp", 631)
    assert expected(office, printer)  # the policy allows it; only the route is gone
    with harness.ForwardTap(office.mesh[OFFICE_ROUTER].netns,
                            [flow(office, printer)]) as tap:
        assert harness.probe_lan(office.mesh, office.lan, [printer]) == {printer: False}
        assert tap.syns() == {flow(office, printer): 0}


def test_restoring_the_lan_route_restores_access(office: Office) -> None:
    # Runs after the test above removed and restored dave's route.
    dave = office.mesh["dave-laptop"]
    router_key = office.mesh.inventory.by_name[OFFICE_ROUTER].key
    assert OFFICE_LAN in harness.wg_allowed_ips(dave)[router_key]
    printer = LanProbe("dave-laptop", "printer", "tcp", 631)
    assert run_matrix(office, [printer]) == {printer: True}


# --- the harness cleans up after itself ------------------------------------------------------


def _namespaces() -> set[str]:
    return {line.split(" ")[0]
            for line in harness.sh(["ip", "netns", "list"]).stdout.splitlines()}


def test_lan_namespaces_are_removed_on_close_and_on_a_failed_add() -> None:
    with harness.Mesh.build(load_inventory(), [OFFICE_ROUTER]) as mesh:
        with pytest.raises(ValueError):  # outside 198.18.0.0/15: refused before anything exists
            mesh.add_lan(OFFICE_ROUTER, "10.20.0.0/24", {"printer": "10.20.0.15"})
        with pytest.raises(KeyError):  # fails after the host namespaces were made
            mesh.add_lan(OFFICE_ROUTER, OFFICE_LAN, OFFICE_HOSTS, clients=["no-such-node"])
        assert mesh.lans == []
        leftovers = {ns for ns in _namespaces() if ns.startswith(f"{mesh.hub[:-3]}l")}
        assert leftovers == set()
        router = mesh[OFFICE_ROUTER]
        assert "lan0" not in router.run(["ip", "-o", "link", "show"], check=True).stdout
        lan = mesh.add_lan(OFFICE_ROUTER, OFFICE_LAN, OFFICE_HOSTS)
        server = lan["printer"].popen(["sleep", "60"])
        # `ip netns exec` enters the namespace some time after Popen returns (long
        # under load); close kills what is in the namespace then, so wait for it.
        netns = lan["printer"].netns
        assert harness.wait_for(lambda: str(server.pid) in harness.sh(
            ["ip", "netns", "pids", netns]).stdout.split(), timeout=30), "never entered"
        assert set(lan.namespaces) <= _namespaces()
    assert not set(lan.namespaces) & _namespaces()
    assert server.wait(timeout=5) is not None  # killed by PID with its namespace

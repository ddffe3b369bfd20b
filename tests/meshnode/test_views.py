"""whois and status: who owns an address, and how the agent describes itself."""

from __future__ import annotations

import pytest
from meshnode_helpers import sample_netmap

from policyc.meshnode.views import Identity, Status, parse_address, render_status, whois

NETMAP = sample_netmap("alice", peers=2)
IDENTITIES = {"peer0": Identity("bob@example.com", ()), "peer1": Identity(None, ("tag:prod",))}


@pytest.mark.parametrize("text, expected", [
    ("100.64.0.10", "100.64.0.10"), ("100.64.0.10:22", "100.64.0.10"),
    ("fd7a:115c:a1e0::a", "fd7a:115c:a1e0::a"), ("[fd7a:115c:a1e0::a]:443", "fd7a:115c:a1e0::a"),
    ("nonsense", None), ("100.64.0.300", None), ("", None), ("; rm -rf /", None),
])
def test_addresses_with_and_without_ports_parse(text: str, expected: str | None) -> None:
    parsed = parse_address(text)
    assert (str(parsed) if parsed else None) == expected


def test_whois_names_the_peer_with_its_user_or_tags_by_either_address() -> None:
    bob = whois(NETMAP, IDENTITIES, "100.64.0.10:22")
    assert bob is not None and (bob.node, bob.user, bob.tags) == ("peer0", "bob@example.com", ())
    tagged = whois(NETMAP, IDENTITIES, "[fd7a:115c:a1e0::b]:80")
    assert tagged is not None and (tagged.node, tagged.tags) == ("peer1", ("tag:prod",))
    assert tagged.key == NETMAP.peers[1].key and not tagged.is_self


def test_whois_knows_this_node_and_nothing_outside_the_netmap() -> None:
    me = whois(NETMAP, IDENTITIES, "100.64.0.1", "KEY", Identity("alice@example.com"))
    assert me is not None and me.is_self and me.user == "alice@example.com"
    assert whois(NETMAP, IDENTITIES, "100.64.0.99") is None
    assert whois(NETMAP, IDENTITIES, "100.64.0.0/10") is None


def test_status_reports_age_and_renders_every_peer() -> None:
    status = Status("alice", ("100.64.0.1",), True, False, 4, 1000, "p1",
                    ({"name": "peer0", "addresses": ["100.64.0.10"]},),
                    {"ok": True, "summary": "filter loaded"}, None)
    data = status.to_json(now=1030.0)
    assert data["netmap_age_seconds"] == 30.0 and data["control_reachable"] is False
    text = render_status(data)
    assert "unreachable" in text and "version 4" in text and "peer0" in text


def test_a_running_agent_that_has_not_asked_control_is_not_called_stopped() -> None:
    starting = Status("alice", (), True, None, None, None, None, (), None, None).to_json(0.0)
    assert "control:  not asked yet" in render_status(starting)
    stopped = {**starting, "agent_running": False}
    assert "control:  unknown (agent not running)" in render_status(stopped)


def test_owners_come_from_the_signed_envelope() -> None:
    from meshnode_helpers import FakeControlKeys

    from policyc.meshnode.agent import identities_of
    from policyc.protocol import PeerOwner, verify_netmap

    control = FakeControlKeys()
    signed = control.sign("alice", "a" * 43 + "=", 1, NETMAP,
                          owners=(PeerOwner("peer0", "bob@example.com"),
                                  PeerOwner("peer1", None, ("tag:prod",))))
    envelope = verify_netmap(signed, control.pins.signing_key, node_key="a" * 43 + "=")
    assert identities_of(envelope) == IDENTITIES

"""Signed netmap deltas: base + delta is byte for byte the full netmap, and a node
applies only control's delta, for its own key, onto the version it holds."""

from __future__ import annotations

import base64
import json
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

from policyc.netmap import CapGrant, FilterRule, NetPortRange, NodeNetmap, Peer, PortRange
from policyc.protocol import NetmapEnvelope, ProtocolError, sign_netmap, verify_netmap
from policyc.protocol.codec import b64encode, canonical_json
from policyc.protocol.delta import (
    DELTA_CONTEXT,
    SourcesMemo,
    apply_delta,
    delta_payload,
    netmap_changes,
    sign_delta,
    verify_delta,
)
from policyc.protocol.envelope import PeerOwner, sign_payload

CONTROL = SigningKey.generate()
PINNED = b64encode(bytes(CONTROL.verify_key))
KEY = b64encode(b"\x01" * 32)
NODE = "n-self"

NAMES = [f"n-{i}" for i in range(12)]
IPS = [f"100.64.0.{i}" for i in range(1, 30)] + [f"fd7a:115c:a1e0::{i:x}" for i in range(1, 30)]

peers_st = st.dictionaries(
    st.sampled_from(NAMES),
    st.builds(lambda key, ips, routes, endpoint: (key, ips, routes, endpoint),
              st.integers(0, 3), st.lists(st.sampled_from(IPS), max_size=2, unique=True),
              st.lists(st.sampled_from(["10.0.0.0/24", "0.0.0.0/0"]), max_size=2, unique=True),
              st.sampled_from([None, "192.0.2.1:41641"])),
    max_size=8)


def peers_of(spec: dict[str, tuple[int, list[str], list[str], str | None]]) -> tuple[Peer, ...]:
    return tuple(Peer(name, b64encode(bytes([k + 2]) * 32), tuple(ips),
                      tuple(f"{ip}/32" for ip in ips) + tuple(routes), endpoint)
                 for name, (k, ips, routes, endpoint) in sorted(spec.items()))


rule_st = st.builds(
    lambda sources, dst, port, proto, cap, ordered: FilterRule(
        tuple(sorted(set(sources))) if ordered else tuple(sources),
        () if cap else (NetPortRange(dst, PortRange(port, port)),),
        proto, (CapGrant((f"{dst}/32",), (("cap/x", None),)),) if cap else ()),
    st.lists(st.sampled_from(IPS), max_size=6), st.sampled_from(IPS[:4]),
    st.sampled_from([22, 443]), st.sampled_from([(), (6,)]), st.booleans(),
    st.integers(0, 9).map(lambda n: n != 0))  # now and then sources out of order

netmap_st = st.builds(
    lambda peers, rules, addresses, routes, ssh, cap, pv: NodeNetmap(
        NODE, addresses, peers_of(peers), tuple(rules), ssh, pv, routes, cap),
    peers_st, st.lists(rule_st, max_size=5),
    st.sampled_from([("100.64.0.1",), ("100.64.0.1", "fd7a:115c:a1e0::1")]),
    st.sampled_from([(), ("10.1.0.0/24",)]),
    st.sampled_from([{}, {"rules": [{"action": {"accept": True}}]}]),
    st.sampled_from([{}, {"cap/a": None}]), st.sampled_from(["p1", "p2"]))


def owners_of(netmap: NodeNetmap, users: dict[str, str]) -> tuple[PeerOwner, ...]:
    """As control lists them: the node's own first, then its peers' by name."""
    names = [netmap.node, *sorted(p.name for p in netmap.peers)]
    return tuple(PeerOwner(n, users.get(n), () if n in users else ("tag:t",)) for n in names)


users_st = st.dictionaries(st.sampled_from([NODE, *NAMES]),
                           st.sampled_from(["a@example.com", "b@example.com"]))


def envelope(netmap: NodeNetmap, owners: tuple[PeerOwner, ...], version: int,
             key: str = KEY) -> NetmapEnvelope:
    return NetmapEnvelope(NODE, key, version, "pv", 1_700_000_000 + version, netmap, owners)


def signed_delta(changes: dict[str, object], base: int = 5, version: int = 6,
                 key: str = KEY, signer: SigningKey = CONTROL) -> dict[str, str]:
    payload = delta_payload(NODE, key, base, version, "pv", 1_700_000_000 + version,
                            canonical_json(changes))
    return sign_delta(signer, payload)


@settings(max_examples=150, deadline=None)
@given(netmap_st, netmap_st, users_st, users_st)
def test_base_plus_delta_is_the_full_netmap(old: NodeNetmap, new: NodeNetmap,
                                            old_users: dict[str, str],
                                            new_users: dict[str, str]) -> None:
    """Whatever changed (peers, keys, routes, rules, sources, fields, owners), the
    envelope a node makes from its base and the signed delta is the one control
    would have signed in full, byte for byte."""
    old_owners, new_owners = owners_of(old, old_users), owners_of(new, new_users)
    changes = netmap_changes(old, old_owners, new, new_owners)
    assert changes is not None  # these netmaps follow the format's ordering rules
    memo: SourcesMemo = {}  # control's, shared by a change's netmaps: hits give the same
    assert netmap_changes(old, old_owners, new, new_owners, memo) == changes
    assert netmap_changes(old, old_owners, new, new_owners, memo) == changes
    base = envelope(old, old_owners, 5)
    delta = verify_delta(signed_delta(changes), PINNED, node_key=KEY, base=5)
    got = apply_delta(base, delta)
    want = envelope(new, new_owners, 6)
    assert canonical_json(got.to_json()) == canonical_json(want.to_json())


@settings(max_examples=100, deadline=None)
@given(netmap_st, users_st)
def test_an_unchanged_netmap_has_no_changes(netmap: NodeNetmap, users: dict[str, str]) -> None:
    """Nothing but the policy stamp, which every delta carries (see the next test)."""
    owners = owners_of(netmap, users)
    copy = NodeNetmap.from_json(json.loads(canonical_json(netmap.to_json())))
    assert netmap_changes(netmap, owners, copy, owners) == \
        {"fields": {"policy_version": netmap.policy_version}}


def test_the_policy_stamp_is_the_new_one_whatever_the_base_had() -> None:
    """A node may hold its version with an older stamp than control's copy of it (a
    push that changed nothing else for it): the delta's result has the new stamp."""
    held = NodeNetmap(NODE, (), (), (), policy_version="old")
    control_copy = replace(held, policy_version="newer")
    new = replace(held, policy_version="newer", routes=("10.1.0.0/24",))
    changes = netmap_changes(control_copy, (), new, ())
    assert changes is not None
    delta = verify_delta(signed_delta(changes), PINNED, node_key=KEY, base=5)
    assert apply_delta(envelope(held, (), 5), delta).netmap.to_json() == new.to_json()


def test_a_join_sends_the_new_peer_and_two_sources_not_the_netmap() -> None:
    """The shape that matters on a dense tailnet: a rule that gained the newcomer's
    addresses carries those two, not its hundreds of sources."""
    sources = tuple(sorted(IPS[:40]))
    rule = FilterRule(sources, (NetPortRange("100.64.0.1", PortRange(22, 22)),))
    old = NodeNetmap(NODE, ("100.64.0.1",), peers_of({"n-1": (0, [IPS[1]], [], None)}), (rule,))
    joined = FilterRule(tuple(sorted((*sources, IPS[45], IPS[50]))), rule.dst_ports)
    new = NodeNetmap(NODE, ("100.64.0.1",), peers_of({"n-1": (0, [IPS[1]], [], None),
                                                      "n-2": (1, [IPS[45]], [], None)}),
                     (joined,))
    changes = netmap_changes(old, (), new, ())
    assert changes is not None
    assert [p["name"] for p in changes["peers"]] == ["n-2"]
    assert changes["filter"] == {"length": 1, "rules": [],
                                 "sources": [[0, [], sorted([IPS[45], IPS[50]])]]}


def test_peers_out_of_name_order_are_sent_in_full() -> None:
    netmap = NodeNetmap(NODE, (), peers_of({"n-1": (0, [], [], None), "n-2": (1, [], [], None)}),
                        ())
    backwards = NodeNetmap(NODE, (), tuple(reversed(netmap.peers)), ())
    assert netmap_changes(netmap, (), backwards, ()) is None


def test_the_signature_context_is_its_own() -> None:
    """A delta is not a netmap and a netmap is not a delta, whatever the bytes say."""
    as_delta = signed_delta({})
    with pytest.raises(ProtocolError) as err:
        verify_netmap(as_delta, PINNED, node_key=KEY)
    assert err.value.code == "bad-signature"
    netmap = NodeNetmap(NODE, (), (), ())
    with pytest.raises(ProtocolError) as err:
        verify_delta(sign_netmap(CONTROL, envelope(netmap, (), 6)), PINNED, node_key=KEY, base=5)
    assert err.value.code == "bad-signature"


@pytest.mark.parametrize(("signed", "base", "code"), [
    (signed_delta({}, signer=SigningKey.generate()), 5, "bad-signature"),
    (signed_delta({}, key=b64encode(b"\x09" * 32)), 5, "wrong-node"),
    (signed_delta({}, base=4), 5, "wrong-base"),  # a missed version: ask for the full one
    (signed_delta({}, base=5, version=5), 5, "old-version"),
    (signed_delta({}, base=5, version=3), 5, "old-version"),
])
def test_refused(signed: dict[str, str], base: int, code: str) -> None:
    with pytest.raises(ProtocolError) as err:
        verify_delta(signed, PINNED, node_key=KEY, base=base)
    assert err.value.code == code


@pytest.mark.parametrize("kind", ["removal", None])
def test_another_kind_under_the_delta_context_is_refused(kind: str | None) -> None:
    """The context says which statement; `kind` must say the same (a removal notice
    or a full envelope signed under the delta's context is not a delta)."""
    data = json.loads(base64.b64decode(signed_delta({})["payload"]))
    data.pop("kind")
    if kind is not None:
        data["kind"] = kind
    signed = sign_payload(CONTROL, canonical_json(data), DELTA_CONTEXT)
    with pytest.raises(ProtocolError) as err:
        verify_delta(signed, PINNED, node_key=KEY, base=5)
    assert err.value.code == "bad-message"


def test_a_changed_delta_is_refused() -> None:
    signed = signed_delta({"peers_removed": []})
    data = json.loads(base64.b64decode(signed["payload"]))
    data["changes"]["peers_removed"] = ["n-1"]
    forged = dict(signed, payload=b64encode(json.dumps(data).encode()))
    with pytest.raises(ProtocolError) as err:
        verify_delta(forged, PINNED, node_key=KEY, base=5)
    assert err.value.code == "bad-signature"


@pytest.mark.parametrize("changes", [
    {"filter": {"length": 2, "rules": [], "sources": []}},  # rule 1 undefined
    {"filter": {"length": 1, "rules": [[3, {"SrcIPs": []}]], "sources": []}},
    {"filter": {"length": -1}},
    {"peers": [{"key": "k"}]},
    {"peers": "n-1"},
    {"fields": {"peers": []}},
    {"owners": [{"user": 3}]},
])
def test_a_delta_that_does_not_fit_is_refused(changes: dict[str, object]) -> None:
    base = envelope(NodeNetmap(NODE, (), (), ()), (), 5)
    delta = verify_delta(signed_delta(changes), PINNED, node_key=KEY, base=5)
    with pytest.raises(ProtocolError) as err:
        apply_delta(base, delta)
    assert err.value.code == "bad-message"

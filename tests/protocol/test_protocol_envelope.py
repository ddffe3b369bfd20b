"""Signed netmap envelopes: a node accepts only control's signature, for its own
key, and only a version newer than the one it holds."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from nacl.signing import SigningKey

from policyc.netmap import ALL_PORTS, FilterRule, NetPortRange, NodeNetmap, Peer
from policyc.protocol import NetmapEnvelope, ProtocolError, sign_netmap, verify_netmap
from policyc.protocol.codec import b64encode, canonical_json
from policyc.protocol.envelope import EncodedNetmap, PeerOwner, sign_payload

CONTROL = SigningKey.generate()
PINNED = b64encode(bytes(CONTROL.verify_key))
KEY = b64encode(b"\x01" * 32)

NETMAP = NodeNetmap(
    node="web-1", addresses=("100.64.0.1", "fd7a:115c:a1e0::1"),
    peers=(Peer("db-1", b64encode(b"\x02" * 32), ("100.64.0.2",), ("100.64.0.2/32",)),),
    packet_filter=(FilterRule(("100.64.0.2",), (NetPortRange("100.64.0.1", ALL_PORTS),)),),
    policy_version="abc")


def envelope(version: int = 5, key: str = KEY) -> NetmapEnvelope:
    return NetmapEnvelope("web-1", key, version, "abc", 1_700_000_000, NETMAP)


def test_round_trip() -> None:
    got = verify_netmap(sign_netmap(CONTROL, envelope()), PINNED, node_key=KEY, newer_than=4)
    assert got == envelope()
    assert got.netmap.peers[0].name == "db-1"


def test_another_signer_is_refused() -> None:
    signed = sign_netmap(SigningKey.generate(), envelope())
    with pytest.raises(ProtocolError) as err:
        verify_netmap(signed, PINNED, node_key=KEY)
    assert err.value.code == "bad-signature"


def test_a_changed_payload_is_refused() -> None:
    signed = sign_netmap(CONTROL, envelope())
    data = json.loads(base64.b64decode(signed["payload"]))
    data["netmap"]["peers"] = []
    forged = dict(signed, payload=b64encode(json.dumps(data).encode()))
    with pytest.raises(ProtocolError) as err:
        verify_netmap(forged, PINNED, node_key=KEY)
    assert err.value.code == "bad-signature"


def test_a_netmap_for_another_node_is_refused() -> None:
    signed = sign_netmap(CONTROL, envelope(key=b64encode(b"\x09" * 32)))
    with pytest.raises(ProtocolError) as err:
        verify_netmap(signed, PINNED, node_key=KEY)
    assert err.value.code == "wrong-node"


@pytest.mark.parametrize("held", [5, 6])
def test_an_older_or_equal_version_is_refused(held: int) -> None:
    with pytest.raises(ProtocolError) as err:
        verify_netmap(sign_netmap(CONTROL, envelope(5)), PINNED, node_key=KEY, newer_than=held)
    assert err.value.code == "old-version"


@pytest.mark.parametrize("signed", [None, {}, {"payload": "!!", "signature": "AA=="},
                                    {"payload": "AAAA", "signature": b64encode(b"s" * 63)}])
def test_malformed_envelopes_are_protocol_errors(signed: object) -> None:
    with pytest.raises(ProtocolError):
        verify_netmap(signed, PINNED, node_key=KEY)


def test_peer_owners_travel_signed_and_malformed_ones_are_refused() -> None:
    from dataclasses import replace

    from policyc.protocol import PeerOwner

    owned = replace(envelope(), owners=(PeerOwner("db-1", None, ("tag:db",)),
                                        PeerOwner("web-1", "alice@example.com")))
    got = verify_netmap(sign_netmap(CONTROL, owned), PINNED, node_key=KEY)
    assert got.owners == owned.owners
    assert "owners" not in envelope().to_json()  # absent when there are none
    for bad in ({"name": 3}, {"name": "x", "user": 5}, {"name": "x", "tags": "tag:a"}, "x"):
        payload = {**owned.to_json(), "owners": [bad]}
        from policyc.protocol.codec import canonical_json
        from policyc.protocol.envelope import SIGNATURE_CONTEXT
        body = canonical_json(payload)
        signed = {"payload": b64encode(body),
                  "signature": b64encode(CONTROL.sign(SIGNATURE_CONTEXT + body).signature)}
        with pytest.raises(ProtocolError) as err:
            verify_netmap(signed, PINNED, node_key=KEY)
        assert err.value.code == "bad-message"


# --- EncodedNetmap: the bytes control digests and signs, encoded once ---------------

JSON_TEXT = st.text(max_size=12)  # any Unicode: quotes, escapes, non-ASCII
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | JSON_TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(JSON_TEXT, inner, max_size=3),
    max_leaves=8)


@st.composite
def encoded_cases(draw: st.DrawFn) -> tuple[NetmapEnvelope, tuple[PeerOwner, ...]]:
    peers = tuple(Peer(draw(JSON_TEXT), b64encode(bytes([i]) * 32), (f"100.64.0.{i}",),
                       (f"100.64.0.{i}/32",), draw(st.none() | JSON_TEXT))
                  for i in range(draw(st.integers(0, 3))))
    netmap = NodeNetmap(
        node=draw(JSON_TEXT), addresses=("100.64.0.1",), peers=peers, packet_filter=(),
        ssh_policy=draw(st.dictionaries(JSON_TEXT, JSON_VALUES, max_size=2)),
        policy_version=draw(JSON_TEXT),
        cap_map=draw(st.dictionaries(JSON_TEXT, JSON_VALUES, max_size=3)))
    owners = tuple(PeerOwner(draw(JSON_TEXT), draw(st.none() | JSON_TEXT),
                             tuple(draw(st.lists(JSON_TEXT, max_size=2))))
                   for _ in range(draw(st.integers(0, 2))))
    envelope = NetmapEnvelope(draw(JSON_TEXT), KEY, draw(st.integers(0, 2**62)),
                              draw(JSON_TEXT), draw(st.integers(0, 2**40)), netmap, owners)
    return envelope, owners


@given(encoded_cases())
def test_encoded_payload_is_the_canonical_envelope(case: tuple[NetmapEnvelope,
                                                               tuple[PeerOwner, ...]]) -> None:
    envelope, owners = case
    encoded = EncodedNetmap(envelope.netmap, owners)
    payload = encoded.payload(envelope.node, envelope.key, envelope.version,
                              envelope.policy_version, envelope.issued_at)
    assert payload == canonical_json(envelope.to_json())
    pieces = b"[" + b",".join(canonical_json(o.to_json()) for o in owners) + b"]"
    assert EncodedNetmap(envelope.netmap, owners, pieces).payload(
        envelope.node, envelope.key, envelope.version, envelope.policy_version,
        envelope.issued_at) == payload  # control's owner JSON pieces, joined
    assert verify_netmap(sign_payload(CONTROL, payload), PINNED, node_key=KEY) == envelope
    content = envelope.netmap.to_json()
    del content["policy_version"]
    assert encoded.content() == canonical_json(
        {"netmap": content, "owners": [o.to_json() for o in owners]})

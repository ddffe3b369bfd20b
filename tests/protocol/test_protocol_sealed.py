"""Boxed node requests: only the holder of the node's private key can make one,
a request is good for one endpoint and once, and answers are bound to requests."""

from __future__ import annotations

import base64
import time

import pytest
from nacl.public import PrivateKey

from policyc.protocol import ProtocolError, ReplayGuard, open_request, open_response
from policyc.protocol.codec import b64encode
from policyc.protocol.sealed import BoxCache, public_key_text, seal_request, seal_response

CONTROL = PrivateKey.generate()
CONTROL_PUB = b64encode(bytes(CONTROL.public_key))


def node_key() -> PrivateKey:
    return PrivateKey.generate()


def test_round_trip_proves_the_node_key_and_binds_the_answer() -> None:
    node = node_key()
    sealed = seal_request(node, CONTROL_PUB, "poll", {"since": 3})
    opened = open_request(CONTROL, sealed.wire, "poll", ReplayGuard(not_before=0))
    assert opened.node_key == public_key_text(node)
    assert opened.body == {"since": 3}
    answer = seal_response(CONTROL, opened, {"changed": False, "netmap": None})
    assert open_response(node, CONTROL_PUB, answer, sealed, "poll") == \
        {"changed": False, "netmap": None}


def test_a_request_claiming_another_nodes_key_does_not_open() -> None:
    victim, forger = node_key(), node_key()
    sealed = seal_request(forger, CONTROL_PUB, "poll", {"since": 0})
    forged = dict(sealed.wire, node_key=public_key_text(victim))
    with pytest.raises(ProtocolError) as err:
        open_request(CONTROL, forged, "poll", ReplayGuard(not_before=0))
    assert err.value.code == "bad-box"


def test_a_tampered_box_does_not_open() -> None:
    sealed = seal_request(node_key(), CONTROL_PUB, "poll", {"since": 0})
    raw = bytearray(base64.b64decode(sealed.wire["box"]))
    raw[-1] ^= 1
    with pytest.raises(ProtocolError) as err:
        open_request(CONTROL, dict(sealed.wire, box=b64encode(bytes(raw))), "poll",
                     ReplayGuard(not_before=0))
    assert err.value.code == "bad-box"


def test_a_replayed_request_is_refused() -> None:
    guard = ReplayGuard(not_before=0)
    sealed = seal_request(node_key(), CONTROL_PUB, "poll", {"since": 0})
    open_request(CONTROL, sealed.wire, "poll", guard)
    with pytest.raises(ProtocolError) as err:
        open_request(CONTROL, sealed.wire, "poll", guard)
    assert err.value.code == "replay"


def test_an_old_or_future_timestamp_is_refused() -> None:
    now = time.time()
    for when in (now - 1000, now + 1000):
        sealed = seal_request(node_key(), CONTROL_PUB, "poll", {"since": 0}, now=when)
        with pytest.raises(ProtocolError) as err:
            open_request(CONTROL, sealed.wire, "poll", ReplayGuard(not_before=0), now=now)
        assert err.value.code == "stale"


def test_a_request_made_before_a_restart_is_refused() -> None:
    sealed = seal_request(node_key(), CONTROL_PUB, "poll", {"since": 0}, now=time.time() - 5)
    with pytest.raises(ProtocolError) as err:
        open_request(CONTROL, sealed.wire, "poll", ReplayGuard(not_before=time.time()))
    assert err.value.code == "stale"


def test_nonces_are_forgotten_once_out_of_the_window() -> None:
    guard = ReplayGuard(window=10, not_before=0)
    node = public_key_text(node_key())
    for i in range(50):
        guard.check(node, bytes([i]) * 24, ts_ms=i * 1000, now=i)
    assert len(guard) <= 12


def test_a_request_for_another_endpoint_is_refused() -> None:
    sealed = seal_request(node_key(), CONTROL_PUB, "poll", {"since": 0})
    with pytest.raises(ProtocolError) as err:
        open_request(CONTROL, sealed.wire, "register", ReplayGuard(not_before=0))
    assert err.value.code == "wrong-kind"


def test_an_answer_to_another_request_is_refused() -> None:
    node = node_key()
    first = seal_request(node, CONTROL_PUB, "poll", {"since": 0})
    second = seal_request(node, CONTROL_PUB, "poll", {"since": 0})
    guard = ReplayGuard(not_before=0)
    answer = seal_response(CONTROL, open_request(CONTROL, first.wire, "poll", guard), {})
    with pytest.raises(ProtocolError) as err:
        open_response(node, CONTROL_PUB, answer, second, "poll")
    assert err.value.code == "wrong-answer"


def test_only_the_node_can_read_the_answer() -> None:
    node, other = node_key(), node_key()
    sealed = seal_request(node, CONTROL_PUB, "poll", {"since": 0})
    opened = open_request(CONTROL, sealed.wire, "poll", ReplayGuard(not_before=0))
    answer = seal_response(CONTROL, opened, {"secret": 1})
    with pytest.raises(ProtocolError) as err:
        open_response(other, CONTROL_PUB, answer, sealed, "poll")
    assert err.value.code == "bad-box"


@pytest.mark.parametrize("wire", [
    None, [], {}, {"node_key": "x", "nonce": "y", "box": "z"},
    {"node_key": b64encode(b"k" * 31), "nonce": b64encode(b"n" * 24), "box": "AAAA"},
    {"node_key": b64encode(b"k" * 32), "nonce": b64encode(b"n" * 24), "box": 5},
    {"node_key": b64encode(b"k" * 32) + "\n", "nonce": b64encode(b"n" * 24), "box": "AAAA"},
])
def test_malformed_requests_are_protocol_errors(wire: object) -> None:
    with pytest.raises(ProtocolError):
        open_request(CONTROL, wire, "poll", ReplayGuard(not_before=0))


def test_the_box_cache_opens_and_seals_as_a_fresh_box_and_stays_bounded() -> None:
    boxes = BoxCache(CONTROL, size=2)
    guard = ReplayGuard(not_before=0)
    nodes = [node_key() for _ in range(3)]
    for _ in range(2):  # the second round takes cached boxes (the first two were evicted)
        for node in nodes:
            sealed = seal_request(node, CONTROL_PUB, "poll", {"since": 1})
            opened = open_request(boxes, sealed.wire, "poll", guard)
            assert opened.node_key == public_key_text(node)
            answer = seal_response(boxes, opened, {"changed": False, "netmap": None})
            assert open_response(node, CONTROL_PUB, answer, sealed, "poll")["changed"] is False
    assert len(boxes._boxes) == 2
    victim, forger = nodes[0], node_key()
    boxes.box(bytes(victim.public_key))  # the victim's box is cached: still no forgery
    sealed = seal_request(forger, CONTROL_PUB, "poll", {"since": 0})
    forged = dict(sealed.wire, node_key=public_key_text(victim))
    with pytest.raises(ProtocolError) as err:
        open_request(boxes, forged, "poll", guard)
    assert err.value.code == "bad-box"

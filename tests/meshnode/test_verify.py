"""Verify before enforce: what reaches the enforcer, and what is refused with which code."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from meshnode_helpers import FakeControlKeys, peer_key, sample_netmap

from policyc.meshnode.keys import load_or_create_node_key
from policyc.meshnode.state import StateDir
from policyc.meshnode.verify import (
    Chain,
    check_removal,
    check_signed,
    load_cache,
    save_cache,
)
from policyc.protocol import ProtocolError


@pytest.fixture()
def control() -> FakeControlKeys:
    return FakeControlKeys()


NODE_KEY = peer_key()


def check(signed: object, control: FakeControlKeys, current: int | None = None,
          name: str | None = "alice") -> int:
    return check_signed(signed, control.pins, node_key=NODE_KEY, node_name=name,
                        current_version=current).version


def refused(signed: object, control: FakeControlKeys, current: int | None = None,
            name: str | None = "alice") -> str:
    with pytest.raises(ProtocolError) as caught:
        check(signed, control, current, name)
    return caught.value.code


def test_a_newer_netmap_signed_for_this_node_is_accepted(control: FakeControlKeys) -> None:
    assert check(control.sign("alice", NODE_KEY, 7), control, current=6) == 7
    assert check(control.sign("alice", NODE_KEY, 1), control, current=None) == 1


@pytest.mark.parametrize("current", [7, 8, 100])
def test_an_older_or_equal_version_is_a_rollback(control: FakeControlKeys, current: int) -> None:
    assert refused(control.sign("alice", NODE_KEY, 7), control, current=current) == "old-version"


def test_a_netmap_signed_by_another_key_is_refused(control: FakeControlKeys) -> None:
    impostor = FakeControlKeys()
    assert refused(impostor.sign("alice", NODE_KEY, 9), control) == "bad-signature"


def test_every_altered_payload_byte_breaks_the_signature(control: FakeControlKeys) -> None:
    signed = control.sign("alice", NODE_KEY, 3)
    payload = bytearray(base64.b64decode(signed["payload"]))
    for index in range(0, len(payload), max(1, len(payload) // 40)):
        altered = bytearray(payload)
        altered[index] ^= 0x01
        forged = {**signed, "payload": base64.b64encode(bytes(altered)).decode()}
        assert refused(forged, control) == "bad-signature", index


def test_a_netmap_for_another_node_key_or_name_is_refused(control: FakeControlKeys) -> None:
    assert refused(control.sign("alice", peer_key(), 3), control) == "wrong-node"
    assert refused(control.sign("bob", NODE_KEY, 3, sample_netmap("bob")), control) \
        == "wrong-node"
    inner_mismatch = control.sign("alice", NODE_KEY, 3, sample_netmap("mallory"))
    assert refused(inner_mismatch, control) == "wrong-node"


@pytest.mark.parametrize("garbage", [None, [], "x", {}, {"payload": "!!", "signature": "x"}])
def test_garbage_is_refused_not_crashed_on(control: FakeControlKeys, garbage: object) -> None:
    assert refused(garbage, control)


def test_the_cache_is_verified_again_when_it_is_loaded(tmp_path: Path,
                                                       control: FakeControlKeys) -> None:
    state = StateDir(tmp_path).ensure()
    key, _ = load_or_create_node_key(state)
    assert load_cache(state, control.pins, node_key=key.public_key, node_name="alice") \
        == (None, None, None)
    signed = control.sign("alice", key.public_key, 5)
    save_cache(state, signed)
    envelope, wire, problem = load_cache(state, control.pins, node_key=key.public_key,
                                         node_name="alice")
    assert problem is None and envelope is not None and envelope.version == 5
    assert wire == Chain(signed)
    # Another control's pins (or a tampered file) make the cache worthless, not trusted.
    _, _, problem = load_cache(state, FakeControlKeys().pins, node_key=key.public_key,
                               node_name="alice")
    assert problem is not None and problem.code == "bad-signature"
    state.netmap.write_text(json.dumps({**signed, "signature": signed["signature"][::-1]}))
    envelope, _, problem = load_cache(state, control.pins, node_key=key.public_key,
                                      node_name="alice")
    assert envelope is None and problem is not None
    state.netmap.write_text("{not json")
    envelope, _, problem = load_cache(state, control.pins, node_key=key.public_key,
                                      node_name="alice")
    assert envelope is None and problem is not None and problem.code == "cache"


def removal_refused(signed: object, control: FakeControlKeys, current: int | None = 6,
                    name: str | None = "alice") -> str:
    with pytest.raises(ProtocolError) as caught:
        check_removal(signed, control.pins, node_key=NODE_KEY, node_name=name,
                      current_version=current)
    return caught.value.code


def test_a_removal_notice_is_believed_only_signed_for_this_node_and_newer(
        control: FakeControlKeys) -> None:
    notice = check_removal(control.remove(NODE_KEY, 7, "alice", "node-expired"), control.pins,
                           node_key=NODE_KEY, node_name="alice", current_version=6)
    assert (notice.reason, notice.version, notice.node) == ("node-expired", 7, "alice")
    assert check_removal(control.remove(NODE_KEY, 7), control.pins, node_key=NODE_KEY,
                         node_name="alice", current_version=None).node is None
    assert removal_refused(control.remove(NODE_KEY, 6), control) == "old-version"
    assert removal_refused(FakeControlKeys().remove(NODE_KEY, 7), control) == "bad-signature"
    assert removal_refused(control.remove(peer_key(), 7), control) == "wrong-node"
    assert removal_refused(control.remove(NODE_KEY, 7, "bob"), control) == "wrong-node"
    assert removal_refused(control.remove(NODE_KEY, 7, reason="bored"), control) == "bad-message"
    # A netmap envelope is signed under another context: it is never a removal notice,
    # and a notice is never a netmap.
    assert removal_refused(control.sign("alice", NODE_KEY, 7), control) == "bad-signature"
    assert refused(control.remove(NODE_KEY, 7), control) == "bad-signature"


def test_a_cached_chain_of_deltas_is_verified_and_applied_again(
        tmp_path: Path, control: FakeControlKeys) -> None:
    """The cache is the full envelope plus the signed deltas since: loading it gives
    the netmap the last delta made, and a chain that does not verify is no cache."""
    state = StateDir(tmp_path).ensure()
    key, _ = load_or_create_node_key(state)
    one, two, three = sample_netmap(peers=1), sample_netmap(peers=2), sample_netmap(peers=3)
    full = control.sign("alice", key.public_key, 5, one)
    chain = Chain(full).then(control.delta("alice", key.public_key, (one, 5), (two, 6))) \
        .then(control.delta("alice", key.public_key, (two, 6), (three, 8)))
    save_cache(state, chain)
    envelope, loaded, problem = load_cache(state, control.pins, node_key=key.public_key,
                                           node_name="alice")
    assert problem is None and loaded == chain
    assert envelope is not None and envelope.version == 8 and envelope.netmap == three
    # A delta out of order (its base is not the version before it) breaks the chain.
    save_cache(state, Chain(full, tuple(reversed(chain.deltas))))
    envelope, _, problem = load_cache(state, control.pins, node_key=key.public_key,
                                      node_name="alice")
    assert envelope is None and problem is not None and problem.code == "wrong-base"
    # So does one signed by anyone else, or for another node's key.
    for forged in (FakeControlKeys().delta("alice", key.public_key, (one, 5), (two, 6)),
                   control.delta("alice", peer_key(), (one, 5), (two, 6))):
        save_cache(state, Chain(full, (forged,)))
        envelope, _, problem = load_cache(state, control.pins, node_key=key.public_key,
                                          node_name="alice")
        assert envelope is None and problem is not None
        assert problem.code in {"bad-signature", "wrong-node"}

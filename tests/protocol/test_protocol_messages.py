"""Message bodies round-trip and refuse the wrong shapes with ProtocolError."""

from __future__ import annotations

from typing import Any

import pytest

from policyc.protocol import (
    PollRequest,
    PollResponse,
    ProtocolError,
    RegisterRequest,
    RegisterResponse,
    ServerKeys,
)
from policyc.protocol.codec import b64encode


def test_round_trips() -> None:
    key = b64encode(b"\x03" * 32)
    for message in (
        ServerKeys(key, key),
        RegisterRequest("pk-abc", "web-1", ("10.0.0.0/24",), "192.0.2.1:41641"),
        RegisterResponse("web-1", ("100.64.0.1", "fd7a:115c:a1e0::1"), None, ("tag:web",)),
        PollRequest(7),
        PollRequest(7, deltas=True),
        PollResponse(True, {"payload": "x", "signature": "y"}),
        PollResponse(True, None, None, {"payload": "x", "signature": "y"}),
        PollResponse(False),
        PollResponse(False, None, {"payload": "x", "signature": "y"}),
    ):
        assert type(message).from_json(message.to_json()) == message


@pytest.mark.parametrize(("kind", "data"), [
    (RegisterRequest, {"hostname": "a"}),
    (RegisterRequest, {"auth_key": 1, "hostname": "a"}),
    (RegisterRequest, {"auth_key": "k", "hostname": "a", "routes": "10.0.0.0/8"}),
    (RegisterRequest, {"auth_key": "k", "hostname": "a" * 300}),
    (RegisterRequest, {"auth_key": "k", "hostname": "a", "endpoint": 5}),
    (PollRequest, {"since": -1}),
    (PollRequest, {"since": True}),
    (PollRequest, {"since": "3"}),
    (PollRequest, {"since": 3, "deltas": 1}),
    (PollResponse, {"changed": True}),
    (PollResponse, {"changed": True, "delta": "x"}),
    (PollResponse, {"changed": True, "netmap": {}, "delta": {}}),  # one or the other
    (ServerKeys, {"signing_key": "AA==", "box_key": "AA==", "protocol": 1}),
])
def test_wrong_shapes_are_refused(kind: Any, data: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError):
        kind.from_json(data)

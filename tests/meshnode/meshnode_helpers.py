"""Tiny builders for meshnode tests: a control signing key and signed netmaps."""

from __future__ import annotations

import base64
import time
from typing import Any

from nacl.public import PrivateKey
from nacl.signing import SigningKey

from policyc.netmap import FilterRule, NetPortRange, NodeNetmap, Peer, PortRange
from policyc.protocol import (
    NetmapEnvelope,
    PeerOwner,
    RemovalNotice,
    ServerKeys,
    sign_netmap,
    sign_removal,
)
from policyc.protocol.codec import canonical_json
from policyc.protocol.delta import delta_payload, netmap_changes, sign_delta


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class FakeControlKeys:
    """Control's two keys, made here; `pins` is what a node would pin."""

    def __init__(self) -> None:
        self.signing = SigningKey.generate()
        self.box = PrivateKey.generate()
        self.pins = ServerKeys(b64(bytes(self.signing.verify_key)), b64(bytes(self.box.public_key)))

    def sign(self, node: str, key: str, version: int, netmap: NodeNetmap | None = None,
             owners: tuple[PeerOwner, ...] = ()) -> dict[str, Any]:
        envelope = NetmapEnvelope(node=node, key=key, version=version, policy_version="p1",
                                  issued_at=int(time.time()),
                                  netmap=netmap or sample_netmap(node), owners=owners)
        return sign_netmap(self.signing, envelope)

    def delta(self, node: str, key: str, base: tuple[NodeNetmap, int],
              new: tuple[NodeNetmap, int]) -> dict[str, Any]:
        """The signed delta from netmap `base[0]` at version `base[1]` to `new`."""
        changes = netmap_changes(base[0], (), new[0], ())
        assert changes is not None
        return sign_delta(self.signing, delta_payload(node, key, base[1], new[1], "p1",
                                                      int(time.time()), canonical_json(changes)))

    def remove(self, key: str, version: int, node: str | None = None,
               reason: str = "not-registered") -> dict[str, Any]:
        notice = RemovalNotice(key, node, reason, version, int(time.time()))
        return sign_removal(self.signing, notice)


def peer_key() -> str:
    return b64(bytes(PrivateKey.generate().public_key))


def sample_netmap(node: str = "alice", peers: int = 1) -> NodeNetmap:
    return NodeNetmap(
        node=node, addresses=("100.64.0.1", "fd7a:115c:a1e0::1"),
        peers=tuple(Peer(f"peer{i}", peer_key(),
                         (f"100.64.0.{10 + i}", f"fd7a:115c:a1e0::{10 + i:x}"),
                         (f"100.64.0.{10 + i}/32", f"fd7a:115c:a1e0::{10 + i:x}/128"))
                    for i in range(peers)),
        packet_filter=(FilterRule(("100.64.0.10",),
                                  (NetPortRange("100.64.0.1", PortRange(22, 22)),)),),
    )

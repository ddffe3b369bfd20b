"""Signed removal notices: how control tells a node it is no longer in the tailnet.

A node that is removed (`nodes rm`) or whose key expired must drop its peers
and admit nothing. That answer is as consequential as a netmap, so it is
signed like one: control's Ed25519 key over the canonical JSON of the notice,
under its own domain-separation prefix (a netmap signature can never be read
as a removal, nor the other way round). The notice names the node key it is
for and carries a `version` from the same counter as netmap versions, newer
than any netmap the node was given; a node believes it only if it verifies
against the pinned key, names its own key, and is newer than the netmap in
force. An unsigned "you are removed" (a bare HTTP 403 from anyone on the path)
is not a notice: the node keeps its rules and reports it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nacl.signing import SigningKey, VerifyKey

from policyc.protocol.codec import ProtocolError, canonical_json, field
from policyc.protocol.envelope import payload_for_node, sign_payload

REMOVAL_FORMAT = 1
REMOVAL_CONTEXT = b"policyc node removal v1\n"
# Why control no longer serves the key: removed by an admin (or never known), or expired.
REMOVAL_REASONS = frozenset({"not-registered", "node-expired"})


@dataclass(frozen=True, slots=True)
class RemovalNotice:
    key: str  # the node's base64 X25519 public key
    node: str | None  # its name, when control still has the record (an expired node)
    reason: str  # one of REMOVAL_REASONS
    version: int  # newer than every netmap version the node was given
    issued_at: int  # unix seconds

    def to_json(self) -> dict[str, Any]:
        return {"format": REMOVAL_FORMAT, "kind": "removal", "key": self.key,
                "node": self.node, "reason": self.reason, "version": self.version,
                "issued_at": self.issued_at}


def sign_removal(signing_key: SigningKey, notice: RemovalNotice) -> dict[str, str]:
    return sign_payload(signing_key, canonical_json(notice.to_json()), REMOVAL_CONTEXT)


def verify_removal(signed: object, verify_key: VerifyKey | str, *, node_key: str,
                   newer_than: int | None = None) -> RemovalNotice:
    """The notice inside `signed`, if control signed it for `node_key`.

    Raises ProtocolError: "bad-signature", "wrong-node" (another key),
    "old-version" (not newer than `newer_than`, the netmap version in force),
    "bad-message" (shape, unknown reason).
    """
    what = "removal notice"
    data = payload_for_node(signed, verify_key, REMOVAL_CONTEXT, what,
                            form=(REMOVAL_FORMAT, "removal"), node_key=node_key)
    reason = field(data, "reason", str, what)
    if reason not in REMOVAL_REASONS:
        raise ProtocolError("bad-message", f"removal notice: unknown reason {reason[:40]!r}")
    version = field(data, "version", int, what)
    if newer_than is not None and version <= newer_than:
        raise ProtocolError("old-version", f"removal notice version {version} is not newer "
                            f"than the netmap in force ({newer_than})")
    node = data.get("node")
    if node is not None and not isinstance(node, str):
        raise ProtocolError("bad-message", "removal notice: 'node' must be a string or null")
    return RemovalNotice(node_key, node, reason, version, field(data, "issued_at", int, what))

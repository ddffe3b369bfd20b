"""Signed netmap envelopes: what control hands a node, and how a node checks it.

The envelope names the node and its key, so a netmap signed for one node is
useless to another; `version` increases monotonically per node, so a node
can refuse a replayed older netmap; `policy_version` and `issued_at` say
where it came from. The wire form is `{"payload", "signature"}`: the
canonical JSON bytes of the envelope (base64) and an Ed25519 signature over
a domain-separated copy of them, so the bytes a node verifies are exactly
the bytes it parses.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import nacl.exceptions
from nacl.signing import SigningKey, VerifyKey

from policyc.netmap import NodeNetmap
from policyc.protocol.codec import (
    SIGNATURE_BYTES,
    ProtocolError,
    b64decode,
    b64encode,
    canonical_json,
    decode_key,
    field,
    parse_object,
    string_list,
)

ENVELOPE_FORMAT = 1
SIGNATURE_CONTEXT = b"policyc netmap envelope v1\n"
MAX_OWNERS = 1 << 20


@dataclass(frozen=True, slots=True)
class PeerOwner:
    """Who a peer belongs to: its user (untagged) or its tags (`policyc node whois`)."""

    name: str
    user: str | None
    tags: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "user": self.user, "tags": list(self.tags)}

    @classmethod
    def from_json(cls, data: object) -> PeerOwner:
        what = "peer owner"
        if not isinstance(data, dict):
            raise ProtocolError("bad-message", f"{what} must be a JSON object")
        user = data.get("user")
        if user is not None and not isinstance(user, str):
            raise ProtocolError("bad-message", f"{what}: 'user' must be a string or null")
        return cls(field(data, "name", str, what), user, string_list(data, "tags", what))


@dataclass(frozen=True, slots=True)
class NetmapEnvelope:
    node: str  # the node's name
    key: str  # the node's base64 X25519 public key
    version: int  # per node, strictly increasing
    policy_version: str  # the stored policy it was compiled from
    issued_at: int  # unix seconds
    netmap: NodeNetmap
    # The owners of this node's peers (and of the node itself), signed with the
    # netmap so whois answers come from control, not from the wire. Optional.
    owners: tuple[PeerOwner, ...] = ()

    def to_json(self) -> dict[str, Any]:
        out = {"format": ENVELOPE_FORMAT, "node": self.node, "key": self.key,
               "version": self.version, "policy_version": self.policy_version,
               "issued_at": self.issued_at, "netmap": self.netmap.to_json()}
        if self.owners:
            out["owners"] = [o.to_json() for o in self.owners]
        return out


def verify_key_of(key: VerifyKey | str) -> VerifyKey:
    return key if isinstance(key, VerifyKey) else VerifyKey(decode_key(key, "signing key"))


def sign_netmap(signing_key: SigningKey, envelope: NetmapEnvelope) -> dict[str, str]:
    return sign_payload(signing_key, canonical_json(envelope.to_json()))


def sign_payload(signing_key: SigningKey, payload: bytes,
                 context: bytes = SIGNATURE_CONTEXT) -> dict[str, str]:
    """The wire form of a signed envelope whose canonical JSON bytes are `payload`
    (`context`: another statement's own domain, e.g. a removal notice's)."""
    signature = signing_key.sign(context + payload).signature
    return {"payload": b64encode(payload), "signature": b64encode(signature)}


def _object(fields: dict[str, bytes]) -> bytes:
    """Canonical JSON of an object whose values are canonical JSON bytes already
    (keys sorted as canonical_json sorts them; every key here is ASCII)."""
    return b"{" + b",".join(canonical_json(k) + b":" + fields[k] for k in sorted(fields)) + b"}"


class EncodedNetmap:
    """A netmap and its peers' owners as canonical JSON, encoded once.

    Control hashes a netmap's content to see whether it changed and, if it did,
    signs an envelope carrying it; both are built from these bytes, so a push to
    a thousand nodes encodes each netmap once. `payload(...)` is byte for byte
    `canonical_json(NetmapEnvelope(...).to_json())` (a test holds it to that).
    """

    __slots__ = ("_fields", "_owners", "netmap", "owners")

    def __init__(self, netmap: NodeNetmap, owners: tuple[PeerOwner, ...],
                 owners_json: bytes | None = None, peers_json: bytes | None = None) -> None:
        """`owners_json`, `peers_json`: canonical_json of the owners list and of the
        netmap's peers, when the caller has them (control keeps each owner's JSON
        between changes, and each peer's: on a dense tailnet most Peer objects are
        shared by hundreds of netmaps)."""
        self.netmap = netmap
        self.owners = owners
        if peers_json is None:
            self._fields = {k: canonical_json(v) for k, v in netmap.to_json().items()}
        else:
            self._fields = {k: canonical_json(v)
                            for k, v in NodeNetmap.to_json(replace(netmap, peers=())).items()}
            self._fields["peers"] = peers_json
        self._owners = (canonical_json([o.to_json() for o in owners]) if owners_json is None
                        else owners_json)

    def content(self) -> bytes:
        """`{"netmap": ..., "owners": [...]}` without the netmap's policy_version stamp:
        what a node's netmap "changed" means (a push that changes nothing else for a
        node does not re-version it)."""
        netmap = _object({k: v for k, v in self._fields.items() if k != "policy_version"})
        return _object({"netmap": netmap, "owners": self._owners})

    def payload(self, node: str, key: str, version: int, policy_version: str,
                issued_at: int) -> bytes:
        fields = {"format": canonical_json(ENVELOPE_FORMAT), "node": canonical_json(node),
                  "key": canonical_json(key), "version": canonical_json(version),
                  "policy_version": canonical_json(policy_version),
                  "issued_at": canonical_json(issued_at), "netmap": _object(self._fields)}
        if self.owners:
            fields["owners"] = self._owners
        return _object(fields)


def verified_payload(signed: object, verify_key: VerifyKey | str, context: bytes,
                     what: str) -> dict[str, Any]:
    """The JSON object a `{"payload", "signature"}` wire form carries, once the
    signature over `context + payload` verifies ("bad-signature" otherwise)."""
    if not isinstance(signed, dict):
        raise ProtocolError("bad-message", f"a signed {what} must be a JSON object")
    wire = f"signed {what}"
    payload = b64decode(field(signed, "payload", str, wire), "payload")
    signature = b64decode(field(signed, "signature", str, wire), "signature", SIGNATURE_BYTES)
    try:
        verify_key_of(verify_key).verify(context + payload, signature)
    except nacl.exceptions.BadSignatureError:
        raise ProtocolError("bad-signature", f"{what} is not signed by control's key") from None
    return parse_object(payload, f"{what} envelope" if what == "netmap" else what)


def payload_for_node(signed: object, verify_key: VerifyKey | str, context: bytes, what: str,
                     *, form: tuple[int, str | None], node_key: str) -> dict[str, Any]:
    """`verified_payload`, then the checks every message to one node shares: its
    `format` and `kind` are `form` ("bad-message" otherwise) and it was signed for
    `node_key` ("wrong-node"): a message for another node never verifies here."""
    data = verified_payload(signed, verify_key, context, what)
    shape = f"{what} envelope" if what == "netmap" else what
    if field(data, "format", int, shape) != form[0] or data.get("kind") != form[1]:
        raise ProtocolError("bad-message", f"unknown {shape} format")
    if field(data, "key", str, shape) != node_key:
        raise ProtocolError("wrong-node", f"{what} was signed for another node's key")
    return data


def verify_netmap(signed: object, verify_key: VerifyKey | str, *, node_key: str,
                  newer_than: int | None = None) -> NetmapEnvelope:
    """The envelope inside `signed`, if control signed it for `node_key`.

    Raises ProtocolError: "bad-signature" (not signed by `verify_key`),
    "wrong-node" (signed for another key), "old-version" (version not
    greater than `newer_than`, the version the node already holds), or a
    shape error. A node enforces nothing that did not pass this function.
    """
    data = payload_for_node(signed, verify_key, SIGNATURE_CONTEXT, "netmap",
                            form=(ENVELOPE_FORMAT, None), node_key=node_key)
    what = "netmap envelope"
    version = field(data, "version", int, what)
    if newer_than is not None and version <= newer_than:
        raise ProtocolError("old-version",
                            f"netmap version {version} is not newer than {newer_than}")
    try:
        netmap = NodeNetmap.from_json(field(data, "netmap", dict, what))
    except (KeyError, TypeError, ValueError, AttributeError):
        raise ProtocolError("bad-message", "netmap has the wrong shape") from None
    owners = data.get("owners", [])
    if not isinstance(owners, list) or len(owners) > MAX_OWNERS:
        raise ProtocolError("bad-message", "netmap envelope: 'owners' must be a list")
    return NetmapEnvelope(
        node=field(data, "node", str, what), key=node_key, version=version,
        policy_version=field(data, "policy_version", str, what),
        issued_at=field(data, "issued_at", int, what), netmap=netmap,
        owners=tuple(PeerOwner.from_json(o) for o in owners))

"""The bodies of node requests and responses, as frozen dataclasses.

Each has `to_json` (what goes inside the box) and `from_json`, which checks
types and lengths and raises `ProtocolError` for anything else. Semantic
checks (is the hostname acceptable, is the route a valid CIDR) are the
server's: this module only fixes the shapes both sides agree on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from policyc.protocol.codec import ProtocolError, decode_key, field, string_list

PROTOCOL_VERSION = 1

# Control's HTTP paths for nodes (the only HTTP detail both sides share).
PATH_KEY = "/key"  # GET: ServerKeys, plain JSON
PATH_REGISTER = "/machine/register"  # POST: sealed RegisterRequest -> sealed RegisterResponse
PATH_POLL = "/machine/poll"  # POST: sealed PollRequest -> sealed PollResponse (long-poll)
POLL_TIMEOUT_SECONDS = 60.0  # a long-poll with no change answers after this long

# Request kinds: bound into the sealed plaintext so a body for one endpoint
# can never be replayed against another.
KIND_REGISTER = "register"
KIND_POLL = "poll"


@dataclass(frozen=True, slots=True)
class ServerKeys:
    """GET /key: control's public keys (nodes pin `signing_key` out of band)."""

    signing_key: str  # base64 Ed25519 verify key: netmap envelopes
    box_key: str  # base64 X25519 public key: node requests are boxed to it
    protocol: int = PROTOCOL_VERSION

    def to_json(self) -> dict[str, Any]:
        return {"signing_key": self.signing_key, "box_key": self.box_key,
                "protocol": self.protocol}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ServerKeys:
        what = "server keys"
        signing = field(data, "signing_key", str, what)
        box = field(data, "box_key", str, what)
        decode_key(signing, "signing_key")
        decode_key(box, "box_key")
        return cls(signing, box, field(data, "protocol", int, what))


@dataclass(frozen=True, slots=True)
class RegisterRequest:
    """A node joins: its pre-auth key, the name it would like, what it offers.

    The node's public key is not in the body: it is the key the request is
    boxed with, so registering proves possession of the private key.
    `routes` are advertised (subnet CIDRs, 0.0.0.0/0 and ::/0 for an exit
    node); an admin approves them.
    """

    auth_key: str
    hostname: str
    routes: tuple[str, ...] = ()
    endpoint: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"auth_key": self.auth_key, "hostname": self.hostname,
                "routes": list(self.routes), "endpoint": self.endpoint}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RegisterRequest:
        what = "register request"
        endpoint = data.get("endpoint")
        if endpoint is not None and (not isinstance(endpoint, str) or len(endpoint) > 256):
            raise ProtocolError("bad-message", f"{what}: 'endpoint' must be a short string")
        return cls(
            auth_key=_short(field(data, "auth_key", str, what), "auth_key", what),
            hostname=_short(field(data, "hostname", str, what), "hostname", what),
            routes=string_list(data, "routes", what),
            endpoint=endpoint,
        )


@dataclass(frozen=True, slots=True)
class RegisterResponse:
    """Who the node now is on the tailnet."""

    name: str
    addresses: tuple[str, ...]  # one IPv4 in 100.64.0.0/10, one IPv6 in fd7a:115c:a1e0::/48
    user: str | None
    tags: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "addresses": list(self.addresses),
                "user": self.user, "tags": list(self.tags)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RegisterResponse:
        what = "register response"
        user = data.get("user")
        if user is not None and not isinstance(user, str):
            raise ProtocolError("bad-message", f"{what}: 'user' must be a string or null")
        return cls(field(data, "name", str, what), string_list(data, "addresses", what),
                   user, string_list(data, "tags", what))


@dataclass(frozen=True, slots=True)
class PollRequest:
    """Long-poll: answer as soon as my netmap is newer than `since` (0: now).

    `deltas`: the node holds verified version `since` and can apply a signed delta
    from it (`protocol.delta`); without it control always answers in full."""

    since: int = 0
    deltas: bool = False

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"since": self.since}
        if self.deltas:
            out["deltas"] = True
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PollRequest:
        since = field(data, "since", int, "poll request")
        if since < 0 or since > 1 << 62:
            raise ProtocolError("bad-message", "poll request: 'since' is out of range")
        deltas = data.get("deltas", False)
        if not isinstance(deltas, bool):
            raise ProtocolError("bad-message", "poll request: 'deltas' must be a boolean")
        return cls(since, deltas)


@dataclass(frozen=True, slots=True)
class PollResponse:
    """A signed netmap envelope (wire form) or, to a node that asked for deltas, a
    signed delta from the version it holds; "no change" after the timeout; or, for
    a key control no longer serves, a signed removal notice (`protocol.removal`)."""

    changed: bool
    netmap: dict[str, Any] | None = None  # signed envelope: see envelope.sign_netmap
    removed: dict[str, Any] | None = None  # signed notice: see removal.sign_removal
    delta: dict[str, Any] | None = None  # signed delta: see delta.sign_delta

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"changed": self.changed, "netmap": self.netmap}
        if self.removed is not None:
            out["removed"] = self.removed
        if self.delta is not None:
            out["delta"] = self.delta
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PollResponse:
        what = "poll response"
        changed = field(data, "changed", bool, what)
        netmap = data.get("netmap")
        delta = data.get("delta")
        if delta is not None and (not isinstance(delta, dict) or netmap is not None):
            raise ProtocolError("bad-message", f"{what}: 'delta' must be an object, "
                                "and comes without a netmap")
        if changed and delta is None:
            netmap = field(data, "netmap", dict, what)
        removed = data.get("removed")
        if removed is not None and not isinstance(removed, dict):
            raise ProtocolError("bad-message", f"{what}: 'removed' must be an object")
        return cls(changed, netmap if isinstance(netmap, dict) else None, removed, delta)


def _short(value: str, name: str, what: str, limit: int = 256) -> str:
    if len(value) > limit:
        raise ProtocolError("bad-message", f"{what}: {name!r} is longer than {limit}")
    return value

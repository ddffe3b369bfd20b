"""Verify before enforce: a netmap reaches the enforcer only through `check_signed`.

`protocol.verify_netmap` checks control's signature (the pinned key), that the
envelope was signed for this node's key, and that its version is newer than the
one in force (an older or equal one is a rollback or replay). On top of that the
node checks the envelope names this node and so does the netmap inside it.
Anything that fails is rejected with a stable code; the caller logs it and keeps
the rules it has. `check_removal` does the same for control's signed removal
notice: the only thing that makes a node leave the tailnet.

`check_delta` verifies a signed delta (`protocol.delta`) the same way and applies
it only onto the netmap in force, the version it names as its base.

The cache (`netmap.json`) holds the signed envelopes exactly as received: the
last full one, and the signed deltas applied on top of it since (`Chain`), so a
restarted agent re-verifies what it is about to enforce instead of trusting a
file; a cache that no longer verifies (another control, another key, a delta
that does not apply) is ignored. The chain is kept short: with MAX_CHAIN deltas
the agent asks control for a full netmap again (`Chain.wants_deltas`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from policyc.meshnode.state import StateDir, StateError
from policyc.protocol import (
    NetmapEnvelope,
    ProtocolError,
    RemovalNotice,
    ServerKeys,
    verify_netmap,
    verify_removal,
)
from policyc.protocol.delta import apply_delta, verify_delta

MAX_CHAIN = 32  # deltas cached on one full envelope before the agent asks for a full one


@dataclass(frozen=True, slots=True)
class Chain:
    """The signed netmap in force as received: a full envelope and the deltas since."""

    full: dict[str, Any]
    deltas: tuple[dict[str, Any], ...] = ()

    def to_json(self) -> dict[str, Any]:
        """A chain without deltas is written as the bare envelope (the older format)."""
        return self.full if not self.deltas else {"full": self.full,
                                                  "deltas": list(self.deltas)}

    @property
    def wants_deltas(self) -> bool:
        return len(self.deltas) < MAX_CHAIN

    def then(self, delta: dict[str, Any]) -> Chain:
        return Chain(self.full, (*self.deltas, delta))


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a netmap was not enforced (code from ProtocolError, or "cache")."""

    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


def check_signed(signed: object, pins: ServerKeys, *, node_key: str, node_name: str | None,
                 current_version: int | None) -> NetmapEnvelope:
    """The envelope if it may be enforced; ProtocolError otherwise."""
    envelope = verify_netmap(signed, pins.signing_key, node_key=node_key,
                             newer_than=current_version)
    if node_name is not None and envelope.node != node_name:
        raise ProtocolError("wrong-node", f"netmap is for node {envelope.node!r}, "
                            f"this node is {node_name!r}")
    if envelope.netmap.node != envelope.node:
        raise ProtocolError("wrong-node", "the netmap inside names another node than "
                            "its envelope")
    return envelope


def check_delta(signed: object, pins: ServerKeys, *, node_key: str, node_name: str | None,
                in_force: NetmapEnvelope) -> NetmapEnvelope:
    """The envelope `signed` (a delta) makes of `in_force`, if it may be enforced:
    signed by the pinned key, for this node's key and name, from the version in
    force to a newer one; ProtocolError otherwise ("wrong-base": ask for the full)."""
    delta = verify_delta(signed, pins.signing_key, node_key=node_key, base=in_force.version)
    if node_name is not None and delta.node != node_name:
        raise ProtocolError("wrong-node", f"netmap delta is for node {delta.node!r}, "
                            f"this node is {node_name!r}")
    envelope = apply_delta(in_force, delta)
    if envelope.netmap.node != envelope.node:
        raise ProtocolError("wrong-node", "the netmap names another node than its envelope")
    return envelope


def check_removal(signed: object, pins: ServerKeys, *, node_key: str, node_name: str | None,
                  current_version: int | None) -> RemovalNotice:
    """The removal notice if this node must leave; ProtocolError otherwise.

    Signed by the pinned key, for this node's key (and name, when it names one),
    newer than the netmap in force: an old notice cannot undo a later join.
    """
    notice = verify_removal(signed, pins.signing_key, node_key=node_key,
                            newer_than=current_version)
    if node_name is not None and notice.node is not None and notice.node != node_name:
        raise ProtocolError("wrong-node", f"removal notice is for node {notice.node!r}, "
                            f"this node is {node_name!r}")
    return notice


def save_cache(state: StateDir, chain: Chain | dict[str, Any]) -> None:
    state.write_json(state.netmap, (chain if isinstance(chain, Chain) else Chain(chain)).to_json())


def load_cache(state: StateDir, pins: ServerKeys | None, *, node_key: str,
               node_name: str | None) -> tuple[NetmapEnvelope | None, Chain | None,
                                               Rejection | None]:
    """The cached envelope (verified again, its deltas applied) and the chain it came
    from, or why there is none."""
    try:
        data = state.read_json(state.netmap)
    except StateError as err:
        return None, None, Rejection("cache", str(err))
    if data is None:
        return None, None, None
    if pins is None:
        return None, None, Rejection("cache", "a netmap is cached but no control key is pinned")
    chain = _chain(data)
    try:
        envelope = check_signed(chain.full, pins, node_key=node_key, node_name=node_name,
                                current_version=None)
        for delta in chain.deltas:
            envelope = check_delta(delta, pins, node_key=node_key, node_name=node_name,
                                   in_force=envelope)
    except ProtocolError as err:
        return None, None, Rejection(err.code, f"cached netmap: {err.message}")
    return envelope, chain, None


def _chain(data: object) -> Chain:
    """The cache file's chain (the bare envelope of older agents is a chain of one);
    shapes are checked by verification."""
    if isinstance(data, dict) and "full" in data:
        deltas = data.get("deltas")
        return Chain(data["full"], tuple(deltas) if isinstance(deltas, list) else ({},))
    return Chain(data)  # type: ignore[arg-type]  # verified next: a non-dict is refused

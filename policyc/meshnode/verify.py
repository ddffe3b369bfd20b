"""Verify before enforce: a netmap reaches the enforcer only through `check_signed`.

`protocol.verify_netmap` checks control's signature (the pinned key), that the
envelope was signed for this node's key, and that its version is newer than the
one in force (an older or equal one is a rollback or replay). On top of that the
node checks the envelope names this node and so does the netmap inside it.
Anything that fails is rejected with a stable code; the caller logs it and keeps
the rules it has. `check_removal` does the same for control's signed removal
notice: the only thing that makes a node leave the tailnet.

The cache (`netmap.json`) holds the signed envelope exactly as received, so a
restarted agent re-verifies what it is about to enforce instead of trusting a
file; a cache that no longer verifies (another control, another key) is ignored.
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


def save_cache(state: StateDir, signed: dict[str, Any]) -> None:
    state.write_json(state.netmap, signed)


def load_cache(state: StateDir, pins: ServerKeys | None, *, node_key: str,
               node_name: str | None) -> tuple[NetmapEnvelope | None, dict[str, Any] | None,
                                               Rejection | None]:
    """The cached envelope (verified again) and its wire form, or why there is none."""
    try:
        signed = state.read_json(state.netmap)
    except StateError as err:
        return None, None, Rejection("cache", str(err))
    if signed is None:
        return None, None, None
    if pins is None:
        return None, None, Rejection("cache", "a netmap is cached but no control key is pinned")
    try:
        envelope = check_signed(signed, pins, node_key=node_key, node_name=node_name,
                                current_version=None)
    except ProtocolError as err:
        return None, None, Rejection(err.code, f"cached netmap: {err.message}")
    return envelope, signed, None

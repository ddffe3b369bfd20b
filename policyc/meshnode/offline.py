"""`node status` and `node whois` when no agent runs: answers from the cached netmap.

The cache is verified again (pinned key, node key) before it is believed, exactly
as a restarting agent would; what the cache cannot tell (is control reachable?
did the last apply work?) is reported as unknown.
"""

from __future__ import annotations

import time
from typing import Any

from policyc.meshnode.agent import identities_of, self_identity
from policyc.meshnode.keys import load_or_create_node_key, load_pinned_control_keys
from policyc.meshnode.state import StateDir, StateError
from policyc.meshnode.verify import load_cache
from policyc.meshnode.views import Status, peer_rows, whois
from policyc.protocol import NetmapEnvelope


def _cached(state: StateDir) -> tuple[NetmapEnvelope | None, dict[str, Any] | None, str | None]:
    """(envelope, identity, problem) from DIR without creating anything in it."""
    if not state.node_key.exists():  # never started here: nothing to report as a problem
        return None, None, None
    try:
        key, _ = load_or_create_node_key(state)
        pins = load_pinned_control_keys(state)
        identity = state.read_json(state.identity)
    except StateError as err:
        return None, None, str(err)
    name = identity.get("name") if isinstance(identity, dict) else None
    envelope, _signed, problem = load_cache(state, pins, node_key=key.public_key,
                                            node_name=name if isinstance(name, str) else None)
    return envelope, identity if isinstance(identity, dict) else None, \
        str(problem) if problem else None


def offline_status(state: StateDir) -> dict[str, Any]:
    envelope, identity, problem = _cached(state)
    identity = identity or {}
    status = Status(
        name=identity.get("name"), addresses=tuple(identity.get("addresses") or ()),
        agent_running=False, control_reachable=None,
        netmap_version=envelope.version if envelope else None,
        netmap_issued_at=envelope.issued_at if envelope else None,
        policy_version=envelope.policy_version if envelope else None,
        peers=peer_rows(envelope.netmap if envelope else None), last_apply=None,
        last_rejection={"code": "cache", "message": problem} if problem else None,
        extra={"state": str(state.root), "state_exists": state.root.is_dir()})
    return status.to_json(time.time())


def offline_whois(state: StateDir, address: str) -> dict[str, Any]:
    envelope, identity, _problem = _cached(state)
    if envelope is None:
        return {"found": False, "whois": None}
    key, _ = load_or_create_node_key(state)
    found = whois(envelope.netmap, identities_of(envelope), address, key.public_key,
                  self_identity(identity))
    return {"found": found is not None, "whois": found.to_json() if found else None}

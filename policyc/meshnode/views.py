"""What `node status` and `node whois` show, computed from the agent's state (pure).

Both the running agent (over its local socket) and the CLI's fallback (reading the
cached netmap when no agent runs) build their answers with these functions, so the
two views cannot drift apart.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from policyc.netmap import NodeNetmap


@dataclass(frozen=True, slots=True)
class Identity:
    """Who owns a node: its login (untagged nodes) or its tags."""

    user: str | None = None
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class WhoisAnswer:
    node: str
    addresses: tuple[str, ...]
    key: str
    user: str | None
    tags: tuple[str, ...]
    is_self: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"node": self.node, "addresses": list(self.addresses), "key": self.key,
                "user": self.user, "tags": list(self.tags), "self": self.is_self}


def parse_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """`IP`, `IP:PORT`, `[IPv6]:PORT` or a bare IPv6 address; None if it is none of these."""
    candidate = text.strip()
    if candidate.startswith("[") and "]" in candidate:
        candidate = candidate[1:candidate.index("]")]
    elif candidate.count(":") == 1:
        candidate = candidate.split(":", 1)[0]
    try:
        return ipaddress.ip_address(candidate)
    except ValueError:
        return None


def whois(netmap: NodeNetmap, identities: Mapping[str, Identity], text: str,
          self_key: str = "", self_identity: Identity | None = None) -> WhoisAnswer | None:
    """The node that owns mesh address `text`, as this node's netmap knows it.

    Only exact addresses count (a peer's /32 or /128), never the subnet routes it
    serves: a LAN host behind a router is not that router.
    """
    wanted = parse_address(text)
    if wanted is None:
        return None
    if any(_same(a, wanted) for a in netmap.addresses):
        me = self_identity or identities.get(netmap.node, Identity())
        return WhoisAnswer(netmap.node, netmap.addresses, self_key, me.user, me.tags, True)
    for peer in netmap.peers:
        if any(_same(a, wanted) for a in peer.addresses):
            who = identities.get(peer.name, Identity())
            return WhoisAnswer(peer.name, peer.addresses, peer.key, who.user, who.tags)
    return None


def _same(address: str, wanted: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    try:
        return ipaddress.ip_address(address.split("/", 1)[0]) == wanted
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class Status:
    """One snapshot of the agent, as `node status --json` prints it."""

    name: str | None
    addresses: tuple[str, ...]
    agent_running: bool
    control_reachable: bool | None  # None: not known (no agent running)
    netmap_version: int | None
    netmap_issued_at: int | None
    policy_version: str | None
    peers: tuple[dict[str, Any], ...]
    last_apply: dict[str, Any] | None
    last_rejection: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self, now: float) -> dict[str, Any]:
        age = None if self.netmap_issued_at is None else max(0.0, now - self.netmap_issued_at)
        return {
            "name": self.name, "addresses": list(self.addresses),
            "agent_running": self.agent_running, "control_reachable": self.control_reachable,
            "netmap_version": self.netmap_version, "netmap_age_seconds": age,
            "policy_version": self.policy_version, "peers": list(self.peers),
            "last_apply": self.last_apply, "last_rejection": self.last_rejection, **self.extra,
        }


def peer_rows(netmap: NodeNetmap | None) -> tuple[dict[str, Any], ...]:
    if netmap is None:
        return ()
    return tuple({"name": p.name, "key": p.key, "addresses": list(p.addresses),
                  "allowed_ips": list(p.allowed_ips), "endpoint": p.endpoint}
                 for p in sorted(netmap.peers, key=lambda p: p.name))


def render_status(status: dict[str, Any]) -> str:
    """Human form of `Status.to_json` (what `node status` prints without --json)."""
    reach = status.get("control_reachable")
    control = {True: "reachable", False: "unreachable",
               None: "not asked yet" if status.get("agent_running")
               else "unknown (agent not running)"}
    where = status.get("state")
    lines = [
        f"node:     {status.get('name') or '(not joined)'}",
        *([f"state:    {where}{'' if status.get('state_exists', True) else ' (no such directory)'}"]
          if where else []),
        f"address:  {', '.join(status.get('addresses') or []) or '-'}",
        f"agent:    {'running' if status.get('agent_running') else 'not running'}",
        f"control:  {control.get(reach, 'unknown')}",
    ]
    version = status.get("netmap_version")
    if version is None:
        lines.append("netmap:   none")
    else:
        age = status.get("netmap_age_seconds")
        lines.append(f"netmap:   version {version}, policy {status.get('policy_version')}, "
                     f"{age:.0f} s old" if age is not None else f"netmap:   version {version}")
    applied = status.get("last_apply")
    if applied:
        lines.append(f"applied:  {'ok' if applied.get('ok') else 'FAILED'}: "
                     f"{applied.get('summary', '')}")
    rejected = status.get("last_rejection")
    if rejected:
        lines.append(f"rejected: {rejected.get('code')}: {rejected.get('message')}")
    peers = status.get("peers") or []
    lines.append(f"peers:    {len(peers)}")
    lines.extend(f"  {p['name']:<24} {', '.join(p['addresses'])}" for p in peers)
    return "\n".join(lines)

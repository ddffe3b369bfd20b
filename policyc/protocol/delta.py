"""Signed netmap deltas: a node's netmap from version `base` to `version`.

On a dense tailnet one join changes every node's netmap (each gains a peer,
and the filter rules the newcomer is a source of gain its two addresses), so
sending every node its whole netmap again costs O(nodes^2) bytes per join. A
node that holds verified version `base` may be sent this instead: the peers
removed and the peers added or changed, the filter rules replaced (or, when a
rule only gained or lost sources, those sources), and any other field that
changed. Control falls back to a full envelope whenever the node's version is
not `base` (a restart, a missed version, a lost cache) or the change is not
expressible as a delta.

Applying a delta gives exactly the full netmap control would send: the rules
both sides follow are part of the format (peers in name order; the owners list
is the node's own owner first, then the peers' by name; a rule's sources in
sorted order without duplicates), and control builds a delta only when the new
netmap follows them (`netmap_changes` returns None otherwise).

The envelope is signed like a netmap, under its own signature context (a
delta can never be read as a netmap or a removal notice, nor the other way
round), and names the node, its key, `base` and `version`: a delta signed for
one node is useless to another, and a node applies one only onto the version
it names, so it cannot be replayed or rolled back.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, replace
from typing import Any

from nacl.signing import SigningKey, VerifyKey

from policyc.netmap import FilterRule, NodeNetmap, Peer
from policyc.protocol.codec import ProtocolError, canonical_json, field
from policyc.protocol.envelope import (
    MAX_OWNERS,
    NetmapEnvelope,
    PeerOwner,
    _object,
    payload_for_node,
    sign_payload,
)

DELTA_FORMAT = 1
DELTA_CONTEXT = b"policyc netmap delta v1\n"
# The netmap's fields other than peers and filter: sent whole when they change.
OTHER_FIELDS = ("addresses", "ssh_policy", "policy_version", "routes", "cap_map")
MAX_RULES = 1 << 20
_OWNER_NAME = operator.attrgetter("name")
# (id(old sources), id(new sources)) -> (old sources, new sources, (removed, added) or None)
SourcesMemo = dict[tuple[int, int], tuple[tuple[str, ...], tuple[str, ...],
                                         tuple[list[str], list[str]] | None]]


@dataclass(frozen=True, slots=True)
class KnownPeers:
    """How a netmap's peers changed, when the caller knows it exactly (the compiler
    index reports it per event): the names no longer peers, and the peers added or
    changed, in name order. `owners`, when the caller knows them too: the owners
    added or changed, in the owners' order (their names no longer listed are then
    `removed`'s)."""

    removed: tuple[str, ...]
    updated: tuple[Peer, ...]
    owners: tuple[PeerOwner, ...] | None = None


@dataclass(frozen=True, slots=True)
class NetmapDelta:
    node: str
    key: str
    base: int  # the version this delta applies to
    version: int  # the version it makes
    policy_version: str
    issued_at: int
    changes: dict[str, Any]  # see netmap_changes


# --- control's side ---------------------------------------------------------------


def netmap_changes(old: NodeNetmap, old_owners: tuple[PeerOwner, ...], new: NodeNetmap,
                   new_owners: tuple[PeerOwner, ...],
                   memo: SourcesMemo | None = None,
                   known: KnownPeers | None = None) -> dict[str, Any] | None:
    """What turns (old, old_owners) into (new, new_owners), as delta JSON; None when
    the new netmap does not follow the format's ordering rules (send it in full).

    `memo`: one dict for the netmaps of one change, so that the sources edit of a rule
    is worked out once per pair of source tuples (the compiler shares them: a dense
    tailnet's thousand netmaps have ~40,000 rules over a few hundred source tuples).
    `known`: the peers' change, which the caller vouches for (`new.peers` is `old.peers`
    with it applied, in name order): the peers are then neither compared nor checked,
    nor, with `known.owners`, the owners (made from the peers: in order)."""
    owners_known = known is not None and known.owners is not None
    if new.node != old.node or (known is None and not _in_name_order(new.peers)) or \
            not (owners_known or _owners_in_order(new.node, new_owners)):
        return None
    changes: dict[str, Any] = {}
    if known is not None:
        if known.removed or known.updated:
            changes["peers_removed"] = sorted(known.removed)
            changes["peers"] = [p.to_json() for p in known.updated]
    elif old.peers != new.peers:
        was = {p.name: p for p in old.peers}
        now = {p.name for p in new.peers}
        changes["peers_removed"] = sorted(was.keys() - now)
        # Most Peer objects are the very ones the old netmap had: compare only the rest.
        kept = set(map(id, old.peers))
        changes["peers"] = [p.to_json() for p in new.peers
                            if id(p) not in kept and was.get(p.name) != p]
    if old.packet_filter != new.packet_filter:
        rules = _filter_changes(old.packet_filter, new.packet_filter,
                                {} if memo is None else memo)
        if rules is None:
            return None
        changes["filter"] = rules
    was_fields, now_fields = _other_fields(old), _other_fields(new)
    # The policy stamp always: control's copy of the base may carry a newer stamp than
    # the node's (a push that changed nothing else for the node does not re-version it).
    changes["fields"] = {k: v for k, v in now_fields.items()
                         if k == "policy_version" or was_fields[k] != v}
    if known is not None and known.owners is not None:
        if known.removed or known.owners:
            changes["owners_removed"] = sorted(known.removed)
            changes["owners"] = [o.to_json() for o in known.owners]
    elif old_owners != new_owners:
        # Most PeerOwner objects are the very ones the old list had: look only at the rest.
        kept = set(map(id, old_owners))
        fresh = [o for o in new_owners if id(o) not in kept]
        was_owner = dict(zip(map(_OWNER_NAME, old_owners), old_owners, strict=True))
        changes["owners_removed"] = sorted(was_owner.keys() - set(map(_OWNER_NAME, new_owners)))
        changes["owners"] = [o.to_json() for o in fresh if was_owner.get(o.name) != o]
    return changes


def _other_fields(netmap: NodeNetmap) -> dict[str, Any]:
    """The OTHER_FIELDS as `NodeNetmap.to_json` writes them (without the peers)."""
    return {"addresses": list(netmap.addresses), "ssh_policy": netmap.ssh_policy,
            "policy_version": netmap.policy_version, "routes": list(netmap.routes),
            "cap_map": netmap.cap_map}


def _differs(old: object, new: object) -> bool:
    return old is not new and old != new


def _in_name_order(peers: tuple[Peer, ...]) -> bool:
    return _ascending([p.name for p in peers])


def _owners_in_order(node: str, owners: tuple[PeerOwner, ...]) -> bool:
    """The node's own owner (if listed) first, then the others by name, each once."""
    names = [o.name for o in owners]
    if names and names[0] == node:
        names = names[1:]
    return node not in names and _ascending(names)


def _filter_changes(old: tuple[FilterRule, ...], new: tuple[FilterRule, ...],
                    memo: SourcesMemo) -> dict[str, Any] | None:
    """Rules by position: replaced whole, or (same destinations) their sources edited."""
    replaced: list[Any] = []
    sources: list[Any] = []
    for i, rule in enumerate(new):
        before = old[i] if i < len(old) else None
        if before is not None and not _differs(before, rule):
            continue
        edit = _sources_edit(before.src_ips, rule.src_ips, memo) \
            if before is not None and _same_but_sources(before, rule) else None
        if edit is not None:
            sources.append([i, *edit])
        else:
            replaced.append([i, rule.to_json()])
    return {"length": len(new), "rules": replaced, "sources": sources}


def _sources_edit(was: tuple[str, ...], now: tuple[str, ...],
                  memo: SourcesMemo) -> tuple[list[str], list[str]] | None:
    """(removed, added) turning `was` into `now`, None if `now` is not in the sorted
    order a node rebuilds; memoised by the tuples' identity (kept alive in the memo)."""
    key = (id(was), id(now))
    found = memo.get(key)
    if found is None:
        edit = None
        if _ascending(now):
            old_set, new_set = set(was), set(now)
            edit = (sorted(old_set - new_set), sorted(new_set - old_set))
        found = memo[key] = (was, now, edit)
    return found[2]


def _same_but_sources(a: FilterRule, b: FilterRule) -> bool:
    return a.dst_ports == b.dst_ports and a.ip_proto == b.ip_proto and \
        a.cap_grant == b.cap_grant


def _ascending(items: list[str] | tuple[str, ...]) -> bool:
    """Sorted and without duplicates (one C-level pass: rules have hundreds of sources)."""
    return all(map(operator.lt, items[:-1], items[1:]))


def delta_payload(node: str, key: str, base: int, version: int, policy_version: str,
                  issued_at: int, changes_json: bytes) -> bytes:
    """The canonical JSON bytes of a delta envelope (`changes_json`: canonical_json of
    the changes, which nodes with the same changes may share)."""
    return _object({"format": canonical_json(DELTA_FORMAT), "kind": canonical_json("delta"),
                    "node": canonical_json(node), "key": canonical_json(key),
                    "base": canonical_json(base), "version": canonical_json(version),
                    "policy_version": canonical_json(policy_version),
                    "issued_at": canonical_json(issued_at), "changes": changes_json})


def sign_delta(signing_key: SigningKey, payload: bytes) -> dict[str, str]:
    return sign_payload(signing_key, payload, DELTA_CONTEXT)


# --- the node's side ----------------------------------------------------------------


def verify_delta(signed: object, verify_key: VerifyKey | str, *, node_key: str,
                 base: int) -> NetmapDelta:
    """The delta inside `signed`, if control signed it for `node_key` onto `base`.

    Raises ProtocolError: "bad-signature", "wrong-node" (another key), "wrong-base"
    (not a delta from the version the node holds), "old-version" (a version not
    newer than its base), or a shape error.
    """
    what = "netmap delta"
    data = payload_for_node(signed, verify_key, DELTA_CONTEXT, what,
                            form=(DELTA_FORMAT, "delta"), node_key=node_key)
    delta_base = field(data, "base", int, what)
    if delta_base != base:
        raise ProtocolError("wrong-base", f"netmap delta applies to version {delta_base}, "
                            f"this node holds {base}")
    version = field(data, "version", int, what)
    if version <= base:
        raise ProtocolError("old-version", f"netmap delta version {version} is not newer "
                            f"than {base}")
    return NetmapDelta(field(data, "node", str, what), node_key, base, version,
                       field(data, "policy_version", str, what),
                       field(data, "issued_at", int, what), field(data, "changes", dict, what))


def apply_delta(envelope: NetmapEnvelope, delta: NetmapDelta) -> NetmapEnvelope:
    """The envelope `delta` makes of `envelope` (which must be its base, for its node).

    ProtocolError("bad-message") for a delta that does not fit the netmap."""
    if delta.base != envelope.version or delta.key != envelope.key or \
            delta.node != envelope.node:
        raise ProtocolError("wrong-base", "netmap delta is not for the netmap in force")
    try:
        netmap = _apply_netmap(envelope.netmap, delta.changes)
        owners = _apply_owners(envelope.node, envelope.owners, delta.changes)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError):
        raise ProtocolError("bad-message", "netmap delta has the wrong shape") from None
    return NetmapEnvelope(envelope.node, envelope.key, delta.version, delta.policy_version,
                          delta.issued_at, netmap, owners)


def _apply_netmap(netmap: NodeNetmap, changes: dict[str, Any]) -> NodeNetmap:
    peers = netmap.peers
    if "peers" in changes or "peers_removed" in changes:
        by_name = {p.name: p for p in peers}
        for name in _strings(changes.get("peers_removed", [])):
            by_name.pop(name, None)
        for data in _list(changes.get("peers", [])):
            peer = _peer(data)
            by_name[peer.name] = peer
        peers = tuple(by_name[n] for n in sorted(by_name))
    packet_filter = netmap.packet_filter
    if "filter" in changes:
        packet_filter = _apply_filter(packet_filter, changes["filter"])
    fields = changes.get("fields", {})
    if not isinstance(fields, dict) or not set(fields) <= set(OTHER_FIELDS):
        raise ValueError("unknown netmap field in a delta")
    parsed = NodeNetmap.from_json({"node": netmap.node, **fields})
    updates = {name: getattr(parsed, name) for name in fields}
    return replace(netmap, peers=peers, packet_filter=packet_filter, **updates)


def _peer(data: object) -> Peer:
    if not isinstance(data, dict):
        raise ValueError("a peer must be an object")
    peer = NodeNetmap.from_json({"node": "", "peers": [data]}).peers[0]
    if not isinstance(peer.name, str) or not isinstance(peer.key, str):
        raise ValueError("a peer needs a name and a key")
    return peer


def _apply_filter(old: tuple[FilterRule, ...], changes: object) -> tuple[FilterRule, ...]:
    if not isinstance(changes, dict):
        raise ValueError("filter changes must be an object")
    length = changes["length"]
    if not isinstance(length, int) or isinstance(length, bool) or not 0 <= length <= MAX_RULES:
        raise ValueError("filter length out of range")
    rules: list[FilterRule | None] = [*old[:length], *([None] * (length - len(old)))]
    for entry in _list(changes.get("sources", [])):
        i, removed, added = entry
        before = rules[_index(i, length)]
        if before is None:
            raise ValueError("sources edited on a rule that is not there")
        sources = (set(before.src_ips) - set(_strings(removed))) | set(_strings(added))
        rules[i] = replace(before, src_ips=tuple(sorted(sources)), src_ranges=None)
    for entry in _list(changes.get("rules", [])):
        i, data = entry
        if not isinstance(data, dict):
            raise ValueError("a rule must be an object")
        rules[_index(i, length)] = FilterRule.from_json(data)
    if any(r is None for r in rules):
        raise ValueError("the delta leaves a filter rule undefined")
    return tuple(r for r in rules if r is not None)


def _apply_owners(node: str, owners: tuple[PeerOwner, ...],
                  changes: dict[str, Any]) -> tuple[PeerOwner, ...]:
    if "owners" not in changes and "owners_removed" not in changes:
        return owners
    by_name = {o.name: o for o in owners}
    for name in _strings(changes.get("owners_removed", [])):
        by_name.pop(name, None)
    for data in _list(changes.get("owners", [])):
        owner = PeerOwner.from_json(data)
        by_name[owner.name] = owner
    if len(by_name) > MAX_OWNERS:
        raise ValueError("too many owners")
    own = by_name.pop(node, None)
    return ((own,) if own is not None else ()) + tuple(by_name[n] for n in sorted(by_name))


def _index(value: object, length: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < length:
        raise ValueError("rule index out of range")
    return value


def _list(value: object) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError("expected a list")
    return value


def _strings(value: object) -> list[str]:
    items = _list(value)
    if not all(isinstance(s, str) for s in items):
        raise ValueError("expected a list of strings")
    return items

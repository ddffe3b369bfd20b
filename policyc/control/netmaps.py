"""The tailnet's netmaps: the one place control asks the compiler for them.

Built once with the compiler's incremental index (`PolicyIndex`); each change
is fed to it as node events (joined, removed, updated) or a policy push, and
the index reports exactly the netmaps that changed, grouped by peer delta (a
policy push builds a new index instead: every netmap is a candidate). Control
then compares `Owners.digest`s, which leave out the policy version stamp and
include the owners the envelope carries, so a push re-signs only the nodes
whose peers, filter, routes, SSH policy or peer owners differ.

After a single node event, a changed node that was in the netmaps before gets
its new netmap as the one control holds with the index's reported peer delta
applied (`TailnetNetmaps.netmap_after`: the filter and other fields still come
from the index): on a dense tailnet a join changes ~every netmap, and listing
~every node as a peer of each, encoding it and diffing it was O(N^2) per join.

The digest is made of hashes cached per Peer object, per rule sources tuple
and per owner (`Owners.digest`), not of the netmap's canonical JSON (which is
what it was before digests were prefixed "v2:"; a control started on a
database holding the old digests gives every node a new version once).

The index is mutable: if the transaction that follows a change fails, the
caller drops this object and builds a new one (see `Tailnet.change`).
"""

from __future__ import annotations

import bisect
import hashlib
import operator
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import islice

import orjson

from policyc.compiler.index import (
    NodeAdded,
    NodeEvent,
    NodeRemoved,
    NodeUpdated,
    PeerDelta,
    PolicyIndex,
)
from policyc.compiler.nodes import Inventory
from policyc.netmap import FilterRule, NodeNetmap, Peer
from policyc.policy.model import Policy
from policyc.protocol.codec import canonical_json
from policyc.protocol.delta import KnownPeers
from policyc.protocol.envelope import PeerOwner

DIGEST_VERSION = "v2:"  # digests stored before it were of the content's canonical JSON
_DIGEST_CONTEXT = b"policyc netmap content v2\n"
_NAME = operator.attrgetter("name")
_FIRST, _SECOND = operator.itemgetter(0), operator.itemgetter(1)
NO_PEER_CHANGE = PeerDelta((), (), (), (), False)


def _sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


class Owners:
    """Who each node belongs to (user, or tags), and the hashes netmap digests are
    made of.

    Made per change from the previous change's `Owners`: an owner entry is rebuilt
    only for a node whose user or tags changed, and the hashes of Peer objects and
    rule sources tuples the previous change made are reused (the index shares most
    of them between the netmaps of one change and the next).
    """

    _by_name: dict[str, tuple[PeerOwner, bytes]]  # name -> (owner, hash of its JSON)

    def __init__(self, inventory: Inventory, previous: Owners | None = None) -> None:
        # Hashes by the object's identity (the objects are kept in `_pinned`, so an id
        # is not reused while it is a key).
        self._hashes: dict[int, bytes] = {}
        self._rules: dict[int, bytes] = {}  # id(FilterRule) -> its JSON in the digest
        self._pinned: list[object] = []
        self._earlier = previous._hashes if previous is not None else {}
        self._earlier_rules = previous._rules if previous is not None else {}
        old = previous._by_name if previous is not None else {}
        by_name: dict[str, tuple[PeerOwner, bytes]] = {}
        rebuilt: list[str] = []
        for node in inventory:
            entry = old.get(node.name)
            user = node.owner
            if entry is None or entry[0].user != user or entry[0].tags != node.tags:
                owner = PeerOwner(node.name, user, node.tags)
                entry = (owner, _sha(canonical_json(owner.to_json())))
                rebuilt.append(node.name)
            by_name[node.name] = entry
        self._by_name = by_name
        # The nodes whose owner entry is new or differs from the previous change's.
        self.rebuilt = frozenset(rebuilt)

    def forget_earlier(self) -> None:
        """Drop the previous change's cache (once this change is installed)."""
        self._earlier = {}
        self._earlier_rules = {}

    def of(self, netmap: NodeNetmap) -> tuple[PeerOwner, ...]:
        """The owners of the node and of each of its peers, the node first, then by name."""
        return tuple(e[0] for e in self._entries(netmap))

    def digest(self, netmap: NodeNetmap) -> tuple[str, tuple[PeerOwner, ...]]:
        """The digest of the netmap's content and its owners, without the policy stamp
        (equal digests, equal envelopes but for the stamp, version and time); and the
        owners (`of`). Hashes of fixed length joined in order: no two contents share
        the input."""
        entries = self._entries(netmap)
        fields = canonical_json([netmap.node, netmap.addresses, netmap.ssh_policy,
                                 netmap.routes, netmap.cap_map])
        owners = b"".join(map(_SECOND, entries))
        digest = hashlib.sha256(
            _DIGEST_CONTEXT + _sha(fields) + _sha(self._peers_hashes(netmap.peers))
            + _sha(self._filter_hashes(netmap.packet_filter)) + _sha(owners)).hexdigest()
        return DIGEST_VERSION + digest, tuple(map(_FIRST, entries))

    def known_peers(self, netmap: NodeNetmap, owners: tuple[PeerOwner, ...],
                    delta: PeerDelta) -> KnownPeers:
        """How `netmap` (with `owners`, from `digest`) differs from the node's netmap
        before this change, whose peers became these by `delta` (`netmap_after`): the
        peers added or changed, and the owners added or changed: the added peers',
        and those this change rebuilt (a user or tags changed) of the node and its
        peers. Looked up by name (bisection), not by walking the ~N peers of a dense
        tailnet's netmap for each of its ~N changed netmaps."""
        peers, name = netmap.peers, netmap.node
        updated = tuple(peers[bisect.bisect_left(peers, p, key=_NAME)]
                        for p in sorted({*delta.peers_added, *delta.peers_changed}))
        changed = {*delta.peers_added}
        for other in self.rebuilt:
            k = bisect.bisect_left(peers, other, key=_NAME)
            if other == name or (k < len(peers) and peers[k].name == other):
                changed.add(other)
        mine = [owners[0]] if name in changed else []
        mine += (owners[bisect.bisect_left(owners, other, 1, key=_NAME)]
                 for other in sorted(changed - {name}))
        return KnownPeers(delta.peers_removed, updated, tuple(mine))

    def _peers_hashes(self, peers: tuple[Peer, ...]) -> bytes:
        cache = self._hashes
        try:  # after the first few netmaps of a change, every peer's hash is there
            return b"".join(map(cache.__getitem__, map(id, peers)))
        except KeyError:
            pass
        for peer in peers:
            if id(peer) not in cache:
                found = self._earlier.get(id(peer))
                cache[id(peer)] = found or _sha(canonical_json(peer.to_json()))
                self._pinned.append(peer)
        return b"".join(map(cache.__getitem__, map(id, peers)))

    def _filter_hashes(self, rules: tuple[FilterRule, ...]) -> bytes:
        """The filter as a JSON array of one item per rule: its sources by their
        tuple's cached hash (the compiler shares them: a dense tailnet's thousand
        netmaps have ~40,000 rules over a few hundred), the rest as JSON (orjson
        writes the dataclasses field by field). Each rule's item is cached by the
        rule object: the index gives a node the very rule objects of its last
        filter for the rules an event left alone (`reuse_filters`)."""
        cache = self._rules
        try:  # after a join on a dense tailnet, most of a node's rules are there
            items = list(map(cache.__getitem__, map(id, rules)))
        except KeyError:
            items = list(map(self._rule_item, rules))
        return b"[" + b",".join(items) + b"]"

    def _rule_item(self, rule: FilterRule) -> bytes:
        found = self._rules.get(id(rule)) or self._earlier_rules.get(id(rule))
        if found is None:
            found = orjson.dumps((self._sources_hash(rule.src_ips).hex(), rule.dst_ports,
                                  rule.ip_proto, rule.cap_grant), option=orjson.OPT_SORT_KEYS)
        if id(rule) not in self._rules:
            self._rules[id(rule)] = found
            self._pinned.append(rule)
        return found

    def _sources_hash(self, sources: tuple[str, ...]) -> bytes:
        cache = self._hashes
        found = cache.get(id(sources))
        if found is None:
            found = cache[id(sources)] = (self._earlier.get(id(sources))
                                          or _sha(canonical_json(sources)))
            self._pinned.append(sources)
        return found

    def _entries(self, netmap: NodeNetmap) -> list[tuple[PeerOwner, bytes]]:
        names = [netmap.node, *map(_NAME, netmap.peers)]
        if not _ascending(names, 1):
            names[1:] = sorted(names[1:])
        by_name = self._by_name
        try:  # every peer is a node of the inventory
            return list(map(by_name.__getitem__, names))
        except KeyError:
            return [by_name[n] for n in names if n in by_name]


def _ascending(items: list[str], start: int = 0) -> bool:
    """items[start:] sorted, without duplicates (one C-level pass)."""
    return all(map(operator.lt, islice(items, start, None), islice(items, start + 1, None)))


@dataclass(frozen=True, slots=True)
class Candidates:
    """The nodes whose netmap or peer owners may differ after a change.

    `known`: after a single node event, each candidate that was in the netmaps
    before it and still is, with the index's exact peer delta for it (empty when
    only its filter, fields or peers' owners may differ): its new netmap is the
    one held with that delta applied. Candidates not in `known` are materialised.
    """

    names: frozenset[str]
    known: Mapping[str, PeerDelta]


class TailnetNetmaps:
    def __init__(self, index: PolicyIndex) -> None:
        self._index = index

    @classmethod
    def build(cls, policy: Policy, inventory: Inventory) -> TailnetNetmaps:
        return cls(PolicyIndex.build(policy, inventory, reuse_filters=True))

    @property
    def inventory(self) -> Inventory:
        return self._index.inventory()

    def netmap(self, name: str) -> NodeNetmap:
        return self._index.netmap(name)

    def netmap_after(self, name: str, held: NodeNetmap, delta: PeerDelta) -> NodeNetmap | None:
        """`name`'s netmap now, from `held` (its netmap before the change) and the peer
        delta the index reported; None when `held` does not fit the delta."""
        peers = list(held.peers)
        added = set(delta.peers_added)
        for gone in delta.peers_removed:
            k = bisect.bisect_left(peers, gone, key=_NAME)
            if k == len(peers) or peers[k].name != gone:
                return None
            del peers[k]
        for new in (*delta.peers_added, *delta.peers_changed):
            peer = self._index.peer(name, new)
            k = bisect.bisect_left(peers, new, key=_NAME)
            there = k < len(peers) and peers[k].name == new
            if there == (new in added):  # an added one there, a changed one not
                return None
            peers[k:k + there] = [peer]
        return self._index.netmap_with_peers(name, tuple(peers))

    def changed(self, policy: Policy, inventory: Inventory) -> Candidates:
        """Move to (policy, inventory); the nodes whose netmap or peer owners may differ."""
        if policy is not self._index.policy:
            # A push may change any netmap: build the new index and let the caller compare
            # each netmap's digest with the stored one (one netmap per node), rather than
            # have the index diff old and new netmaps first (two more per node).
            self._index = PolicyIndex.build(policy, inventory, reuse_filters=True)
            return Candidates(frozenset(n.name for n in inventory), {})
        candidates: set[str] = set()
        events = _events(self._index.inventory(), inventory)
        before = set(self._index.names()) if len(events) == 1 else set()
        known: dict[str, PeerDelta] = {}
        for event in events:
            if isinstance(event, NodeUpdated):  # its peers carry its owner: look at them too
                peers = [p.name for p in self._index.netmap(event.node.name).peers]
                candidates.update(peers)
                known.update(dict.fromkeys(peers, NO_PEER_CHANGE))
            changes = self._index.apply(event)
            candidates.update(changes.names)
            if before:
                for group in changes.deltas:
                    known.update(dict.fromkeys(group.nodes, group))
        present = {n.name for n in inventory}
        if not before:  # none, or several events: each candidate is materialised
            known = {}
        return Candidates(frozenset(candidates & present),
                          {n: d for n, d in known.items() if n in before and n in present
                           and not d.removed})


def _events(old: Inventory, new: Inventory) -> list[NodeEvent]:
    events: list[NodeEvent] = [NodeRemoved(n.name) for n in old if new.get(n.name) is None]
    for node in new:
        before = old.get(node.name)
        if before is None:
            events.append(NodeAdded(node))
        elif before != node:
            events.append(NodeUpdated(node))
    return events

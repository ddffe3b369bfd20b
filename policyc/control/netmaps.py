"""The tailnet's netmaps: the one place control asks the compiler for them.

Built once with the compiler's incremental index (`PolicyIndex`); each change
is fed to it as node events (joined, removed, updated) or a policy push, and
the index reports exactly the netmaps that changed (a policy push builds a
new index instead: every netmap is a candidate). Control then compares
`netmap_digest`s, which leave out the policy version stamp and include the
owners the envelope carries, so a push re-signs only the nodes whose peers,
filter, routes, SSH policy or peer owners differ. Each candidate is
materialised and encoded once (`EncodedNetmap`); the digest and, when it
changed, the signed envelope come from the same bytes.

The index is mutable: if the transaction that follows a change fails, the
caller drops this object and builds a new one (see `Tailnet.change`).
"""

from __future__ import annotations

import hashlib

from policyc.compiler.index import (
    NodeAdded,
    NodeEvent,
    NodeRemoved,
    NodeUpdated,
    PolicyIndex,
)
from policyc.compiler.nodes import Inventory
from policyc.netmap import NodeNetmap, Peer
from policyc.policy.model import Policy
from policyc.protocol.codec import canonical_json
from policyc.protocol.envelope import EncodedNetmap, PeerOwner


def netmap_digest(encoded: EncodedNetmap) -> str:
    """The SHA-256 of the netmap's content and peer owners, without the policy stamp."""
    return hashlib.sha256(encoded.content()).hexdigest()


class Owners:
    """Who each node belongs to (user, or tags), and that owner's canonical JSON.

    Made per change from the previous change's `Owners`: an entry is rebuilt only
    for a node whose user or tags changed (with the index's incremental events, a
    thousand PeerOwners and their JSON per join were a visible share of it).
    """

    _by_name: dict[str, tuple[PeerOwner, bytes]]

    def __init__(self, inventory: Inventory, previous: Owners | None = None) -> None:
        # Each Peer's canonical JSON, by the object's identity (the objects are kept in
        # `_pinned`, so an id is not reused while it is a key): the index shares most
        # Peer objects between the netmaps of one change and the next, and on a dense
        # tailnet encoding each netmap's thousand peers afresh was most of encoding it.
        self._peer_bytes: dict[int, bytes] = {}
        self._pinned: list[Peer] = []
        self._earlier = previous._peer_bytes if previous is not None else {}
        old = previous._by_name if previous is not None else {}
        by_name: dict[str, tuple[PeerOwner, bytes]] = {}
        for node in inventory:
            entry = old.get(node.name)
            user = node.owner
            if entry is None or entry[0].user != user or entry[0].tags != node.tags:
                owner = PeerOwner(node.name, user, node.tags)
                entry = (owner, canonical_json(owner.to_json()))
            by_name[node.name] = entry
        self._by_name = by_name

    def encode(self, netmap: NodeNetmap) -> EncodedNetmap:
        entries = self._entries(netmap)
        return EncodedNetmap(netmap, tuple(e[0] for e in entries),
                             b"[" + b",".join(e[1] for e in entries) + b"]",
                             self.peers_json(netmap.peers))

    def peers_json(self, peers: tuple[Peer, ...]) -> bytes:
        """canonical_json of the peers list, from each peer's cached JSON."""
        cache = self._peer_bytes
        for peer in peers:
            if id(peer) not in cache:
                self._pinned.append(peer)
                cache[id(peer)] = self._earlier.get(id(peer)) or canonical_json(peer.to_json())
        return b"[" + b",".join(map(cache.__getitem__, map(id, peers))) + b"]"

    def forget_earlier(self) -> None:
        """Drop the previous change's cache (once this change is installed)."""
        self._earlier = {}

    def of(self, netmap: NodeNetmap) -> tuple[PeerOwner, ...]:
        """The owners of the node and of each of its peers, the node first."""
        return tuple(e[0] for e in self._entries(netmap))

    def _entries(self, netmap: NodeNetmap) -> list[tuple[PeerOwner, bytes]]:
        names = [netmap.node, *sorted(p.name for p in netmap.peers)]
        return [self._by_name[n] for n in names if n in self._by_name]


class TailnetNetmaps:
    def __init__(self, index: PolicyIndex) -> None:
        self._index = index

    @classmethod
    def build(cls, policy: Policy, inventory: Inventory) -> TailnetNetmaps:
        return cls(PolicyIndex.build(policy, inventory))

    @property
    def inventory(self) -> Inventory:
        return self._index.inventory()

    def netmap(self, name: str) -> NodeNetmap:
        return self._index.netmap(name)

    def changed(self, policy: Policy, inventory: Inventory) -> frozenset[str]:
        """Move to (policy, inventory); the nodes whose netmap or peer owners may differ."""
        if policy is not self._index.policy:
            # A push may change any netmap: build the new index and let the caller compare
            # each netmap's digest with the stored one (one netmap per node), rather than
            # have the index diff old and new netmaps first (two more per node).
            self._index = PolicyIndex.build(policy, inventory)
            return frozenset(n.name for n in inventory)
        candidates: set[str] = set()
        for event in _events(self._index.inventory(), inventory):
            if isinstance(event, NodeUpdated):  # its peers carry its owner: look at them too
                candidates.update(p.name for p in self._index.netmap(event.node.name).peers)
            candidates.update(self._index.apply(event).names)
        present = {n.name for n in inventory}
        return frozenset(candidates & present)


def _events(old: Inventory, new: Inventory) -> list[NodeEvent]:
    events: list[NodeEvent] = [NodeRemoved(n.name) for n in old if new.get(n.name) is None]
    for node in new:
        before = old.get(node.name)
        if before is None:
            events.append(NodeAdded(node))
        elif before != node:
            events.append(NodeUpdated(node))
    return events

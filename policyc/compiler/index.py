"""The compiled-policy index: one node's netmap on demand, and node events.

Build it once per (policy, inventory), then ask for single netmaps and feed it
node events; it reports exactly which netmaps an event changed.

    from policyc.compiler import NodeAdded, NodeRemoved, NodeUpdated, PolicyIndex

    index = PolicyIndex.build(policy, inventory)
    netmap = index.netmap("laptop")               # NodeNetmap; others not computed
    peer = index.peer("laptop", "server")         # a Peer as laptop lists it
    index.netmap_with_peers("laptop", peers)      # its netmap with these peers
    PolicyIndex.build(policy, inventory, reuse_filters=True)  # each node's filter made
                                                  # from its last one (livefilter.py)
    changes = index.apply(NodeAdded(node))        # or NodeRemoved("laptop"),
                                                  # NodeUpdated(replace(node, tags=...))
    for change in changes:                        # exactly the netmaps that differ
        change.node, change.netmap()              # new netmap (None: node removed)
        change.peers_added, change.peers_removed, change.peers_changed   # peer names
    for group in changes.deltas:                  # the same, nodes grouped by delta
        group.nodes, group.peers_added, group.peers_removed, group.peers_changed
    changes = index.set_policy(new_policy)        # rebuilds; same report

Events: `NodeAdded(node)` appends a node; `NodeRemoved(name)`; `NodeUpdated(node)`
replaces the node of the same name, which is how a change of tags, user,
addresses, routes, exit-node approval, key or endpoint is said. After any
sequence of events the index equals a fresh `compile_policy(policy, inventory)`
where `inventory` is `index.inventory()`: the starting nodes in order, updated
in place, removed ones dropped, added ones appended.

A bad event (unknown node, a name, address or key already in use, a malformed
key, a bad tag or user) raises `EventRejected` with I4xx diagnostics, and the
index is left exactly as it was.

`policy_version` is a stamp, not content: a policy push reports the nodes whose
netmap differs in anything else (the control server re-signs and pushes only
those), though every netmap the index gives afterwards carries the new stamp.

The index is mutable: `change.netmap()` materialises the node's netmap from
the index as it is when called (ask before applying the next event), and
`Changes` makes its records on first use (`names` alone is cheap).

How it is kept (livestage.py, livetable.py, livepatch.py): nodes live in
stable slots (a leave leaves a tombstone; the index compacts by rebuilding once
tombstones exceed max(64, a quarter of the nodes)); rules are kept per alias, so
a node event splices the event node's addresses into the identity aliases it
matches, refreshes the units naming a changed alias (the same rules with the
aliases' current SrcIPs and prefix blocks; a unit is recompiled only when that
would not be exact: CapGrants, autogroup:self, a rule or block appearing or
vanishing with an empty set, a changed multi-source set), keeps the merged
groups none of whose aliases changed, and derives the changed netmaps
structurally (`livepatch.patch`). The cyclic collector is paused while an event
is applied and while `Changes` makes its records (what they keep is acyclic; see
collector.py). Groups' address sets (as intervals), SrcIPs texts and prefixes
are patched in chunks (chunks.py), and only the aliases naming the event's node
are looked at (livematch.py). Cost at 10k dense, where a join changes ~9,200
netmaps: ~20-35 ms CPU for the changed set and grouped deltas, spread over
splicing the ~110 groups a user is in, refreshing ~330 units and re-merging
~140 groups of rules; docs/performance.md has the figures. Events that change a node's
approved routes or exit approval, events of a router or exit node when the
policy has `via` grants, node addresses inside approved routes or in Internet
space, and policies where two rules' destinations only together cover the
Internet are applied by rebuilding over
the same slots and comparing every netmap (`_compare_stages`): exact, but
seconds on a 10,000-node tailnet. The leaf functions (alias resolution, unit
compilation, autogroup:self and via rules, reduction of entries) are the ones
`compile_policy` uses; the property tests compare the two after random events.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from functools import partial
from itertools import compress, repeat
from typing import NamedTuple

from policyc.collector import paused_collector
from policyc.compiler.livepatch import Delta, patch, patchable
from policyc.compiler.livestage import GHOST, LiveStage
from policyc.compiler.nodes import Inventory, Node, User
from policyc.compiler.peers import bits_to_indexes
from policyc.compiler.uniqueness import Claims, node_identities
from policyc.compiler.validate_node import node_problems
from policyc.diagnostics.diagnostics import Diagnostics
from policyc.diagnostics.source import SourceFile, Span
from policyc.netmap import NodeNetmap, Peer
from policyc.policy.model import Policy

EVENT_SOURCE = SourceFile("<node event>", "")
EVENT_SPAN = Span(EVENT_SOURCE, 0, 0)


# --- events --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NodeAdded:
    node: Node


@dataclass(frozen=True, slots=True)
class NodeRemoved:
    name: str


@dataclass(frozen=True, slots=True)
class NodeUpdated:
    """The node of the same name now looks like `node` (tags, user, ips, routes,
    exit node, key, endpoint: any of them)."""

    node: Node


NodeEvent = NodeAdded | NodeRemoved | NodeUpdated


class EventRejected(Exception):
    """The event was not applied; `diagnostics` says why."""

    def __init__(self, diagnostics: Diagnostics) -> None:
        self.diagnostics = diagnostics
        super().__init__("; ".join(str(d) for d in diagnostics.errors))


# --- the report ------------------------------------------------------------------------


class NetmapChange(NamedTuple):
    """One node whose netmap changed, and how its peers changed (by name).

    A named tuple, not a frozen dataclass: a join on a dense tailnet makes one per
    node, and a frozen dataclass's `__init__` costs ~5x as much (~20 ms at 10k)."""

    node: str
    peers_added: tuple[str, ...]
    peers_removed: tuple[str, ...]
    peers_changed: tuple[str, ...]  # still peers, but key, endpoint, addresses or routes differ
    removed: bool  # the node itself left: it has no netmap any more
    source: PolicyIndex  # the index it came from

    def netmap(self) -> NodeNetmap | None:
        """The node's netmap, materialised now from the index's current state (None
        for a removed node); ask before applying the next event."""
        return None if self.removed else self.source.netmap(self.node)


class PeerDelta(NamedTuple):
    """Changed nodes whose peers changed alike (by name): after a join on a dense
    tailnet, ~9,200 nodes share one (each gained the new node), so the report is a
    few of these, not one record per node (`Changes.deltas`)."""

    nodes: tuple[str, ...]
    peers_added: tuple[str, ...]
    peers_removed: tuple[str, ...]
    peers_changed: tuple[str, ...]
    removed: bool  # these nodes left


class Changes:
    """The netmaps one change altered, in inventory order (removed nodes last).

    `names` is the changed set; `deltas` groups the changed nodes by peer delta
    (what a server pushing deltas encodes once per group); iterating gives one
    `NetmapChange` per node. After a patched event each is made on first use: a
    join on a dense tailnet changes every netmap.
    """

    __slots__ = ("_changed", "_deltas", "_make", "_make_deltas", "_names")

    def __init__(self, changed: tuple[NetmapChange, ...] = (), *,
                 make: Callable[[], tuple[NetmapChange, ...]] | None = None,
                 names: frozenset[str] | None = None,
                 deltas: Callable[[], tuple[PeerDelta, ...]] | None = None) -> None:
        self._changed = None if make is not None else changed
        self._make = make
        self._names = names
        self._make_deltas = deltas
        self._deltas: tuple[PeerDelta, ...] | None = None

    @property
    def changed(self) -> tuple[NetmapChange, ...]:
        if self._changed is None:
            assert self._make is not None
            self._changed = self._make()
        return self._changed

    @property
    def deltas(self) -> tuple[PeerDelta, ...]:
        """Every changed node in exactly one group, with the peer delta its record has."""
        if self._deltas is None:
            if self._make_deltas is not None:
                self._deltas = self._make_deltas()
            else:
                by: dict[tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], bool],
                         list[str]] = {}
                for c in self.changed:
                    by.setdefault((c.peers_added, c.peers_removed, c.peers_changed, c.removed),
                                  []).append(c.node)
                self._deltas = tuple(PeerDelta(tuple(nodes), *key) for key, nodes in by.items())
        return self._deltas

    def __iter__(self) -> Iterator[NetmapChange]:
        return iter(self.changed)

    def __len__(self) -> int:
        return len(self.names) if self._changed is None else len(self._changed)

    def __repr__(self) -> str:
        return f"Changes({self.changed!r})"

    @property
    def names(self) -> frozenset[str]:
        if self._names is None:
            self._names = frozenset(c.node for c in self.changed)
        return self._names


# --- the index --------------------------------------------------------------------------

COMPACT_AT = 64  # tombstones tolerated before compacting (and a quarter of the nodes)


class PolicyIndex:
    """A compiled (policy, inventory), answering one node at a time.

    Node events patch the stage in place (`livepatch.patch`) when that is exact,
    and otherwise rebuild it over the same slots and compare (`_compare_stages`).
    """

    def __init__(self, stage: LiveStage, *, reuse_filters: bool = False) -> None:
        self._reuse_filters = reuse_filters
        self._stage = self._used(stage)
        self._position: dict[str, int] = {}
        self._holders: dict[tuple[str, object], Node] = {}
        self._ghosts = 0
        self._last: Delta | None = None  # the last patched event's delta (tests read it)
        for i, node in enumerate(stage.r.nodes):
            if node is GHOST:
                self._ghosts += 1
                continue
            self._position[node.name] = i
            self._claim(node)

    @classmethod
    def build(cls, policy: Policy, inventory: Inventory, *,
              reuse_filters: bool = False) -> PolicyIndex:
        """`reuse_filters`: keep, per node, what its last filter was made of, and make
        the next one from it (`livefilter.py`): for a caller asking for every changed
        netmap after each event (control). Costs a small dict per node asked for."""
        return cls(LiveStage(policy, tuple(inventory.nodes), inventory.users),
                   reuse_filters=reuse_filters)

    def _used(self, stage: LiveStage) -> LiveStage:
        """`stage`, set up to reuse filters when this index does (a new stage's views
        are new objects: nothing from another stage's memos would be reused)."""
        if self._reuse_filters and stage.filter_memos is None:
            stage.filter_memos = {}
        return stage

    @property
    def policy(self) -> Policy:
        return self._stage.policy

    def _live(self) -> list[Node]:
        return [n for n in self._stage.r.nodes if n is not GHOST]

    def inventory(self) -> Inventory:
        return Inventory.of(self._live(), self._stage.users)

    def names(self) -> list[str]:
        return [n.name for n in self._live()]

    def __contains__(self, name: object) -> bool:
        return name in self._position

    def __len__(self) -> int:
        return len(self._position)

    def node(self, name: str) -> Node | None:
        i = self._position.get(name)
        return None if i is None else self._stage.r.nodes[i]

    def netmap(self, name: str) -> NodeNetmap:
        """`name`'s netmap; KeyError for a node the index does not hold."""
        return self._stage.netmap_of(self._position[name])

    def peer(self, viewer: str, name: str) -> Peer:
        """`name` as `viewer` lists it among its peers (with the routes `viewer` may
        use); KeyError for a node the index does not hold."""
        return self._stage.peer_view(self._position[viewer], self._position[name])

    def netmap_with_peers(self, name: str, peers: tuple[Peer, ...]) -> NodeNetmap:
        """`name`'s netmap with `peers` as its peer list and the rest from the index:
        for a caller that holds the node's previous netmap and applied the peer delta
        `apply` reported to its peers (on a dense tailnet, listing ~all nodes as peers
        for each of ~all changed netmaps is what a join would cost otherwise)."""
        return replace(self._stage.netmap_of(self._position[name], []), peers=peers)

    def netmaps(self, names: Iterable[str] | None = None) -> Iterator[tuple[str, NodeNetmap]]:
        """(name, netmap) one at a time, all nodes by default: for streaming output.
        Peer sets are computed together (by identity class); lists one by one."""
        stage = self._stage
        slots = (sorted(self._position.values()) if names is None
                 else [self._position[n] for n in names])
        for i, netmap in stage.iter_netmaps(slots):
            yield stage.r.nodes[i].name, netmap

    # --- changes -------------------------------------------------------------------

    def apply(self, event: NodeEvent) -> Changes:
        """Apply one node event; raises EventRejected (index unchanged) for a bad one."""
        self._check(event)
        # Like the build, an event makes acyclic objects only; with the collector
        # running, the ones it keeps would trigger full collections of the whole
        # stage (~1 s at 10k dense) every few dozen events (collector.py).
        with paused_collector():
            return self._apply(event)

    def _apply(self, event: NodeEvent) -> Changes:
        stage = self._stage
        stage = self._stage
        if isinstance(event, NodeRemoved):
            slot, new = self._position[event.name], None
        elif isinstance(event, NodeAdded):
            slot, new = len(stage.r.nodes), event.node
        else:
            slot, new = self._position[event.node.name], event.node
        old = stage.r.nodes[slot] if slot < len(stage.r.nodes) else None
        name = (old or new or GHOST).name
        if patchable(stage, old, new):
            delta = self._last = patch(stage, slot, old, new)
            changes = self._report(slot, name, old, new, delta)
        else:
            slots = (*stage.r.nodes[:slot], new or GHOST, *stage.r.nodes[slot + 1:])
            rebuilt = LiveStage(stage.policy, slots, stage.users)
            changes = _compare_stages(stage, rebuilt, slot, name, self)
            self._stage = self._used(rebuilt)
        self._moved(slot, old, new)
        return changes

    def set_policy(self, policy: Policy) -> Changes:
        """A new policy over the same nodes: rebuild, report the netmaps that differ."""
        return self._switch(LiveStage(policy, tuple(self._live()), self._stage.users))

    def set_users(self, users: tuple[User, ...] | None) -> Changes:
        """A new inventory user list (roles, for role autogroups): rebuild and report
        the netmaps that differ. Node events never change the user list."""
        return self._switch(LiveStage(self._stage.policy, tuple(self._live()), users))

    def _switch(self, new: LiveStage) -> Changes:
        old_index = PolicyIndex(self._stage)
        self.__init__(new, reuse_filters=self._reuse_filters)  # type: ignore[misc]
        return _diff(old_index, self)

    # --- bookkeeping -------------------------------------------------------------------

    def _moved(self, slot: int, old: Node | None, new: Node | None) -> None:
        if old is not None:
            self._release(old)
            del self._position[old.name]
        if new is not None:
            self._claim(new)
            self._position[new.name] = slot
        else:
            self._ghosts += 1
        if self._ghosts > max(COMPACT_AT, len(self._position) // 4):
            # Tombstones only cost slots: compact by rebuilding (netmaps do not change).
            stage = self._stage
            self.__init__(LiveStage(stage.policy, tuple(self._live()), stage.users),  # type: ignore[misc]
                          reuse_filters=self._reuse_filters)

    def _claim(self, node: Node) -> None:
        for identity in node_identities(node):
            self._holders.setdefault(identity, node)

    def _release(self, node: Node) -> None:
        for identity in node_identities(node):
            if self._holders.get(identity) is node:
                del self._holders[identity]

    def _check(self, event: NodeEvent) -> None:
        diags = Diagnostics()
        if isinstance(event, NodeRemoved):
            if event.name not in self._position:
                diags.error("I404", EVENT_SPAN, f'unknown node "{event.name}"')
                raise EventRejected(diags)
            return
        node = event.node
        known = node.name in self._position
        if isinstance(event, NodeUpdated) and not known:
            diags.error("I404", EVENT_SPAN, f'unknown node "{node.name}"')
        elif isinstance(event, NodeAdded) and known:
            diags.error("I402", EVENT_SPAN, f'node name "{node.name}" is already used')
        for code, message in node_problems(node):
            diags.error(code, EVENT_SPAN, message)
        # The loader's rule (`uniqueness.node_conflicts`: names case-insensitive, the
        # node of the same name is the one replaced), from an identity map kept up to date.
        held = [h for i in node_identities(node)
                if (h := self._holders.get(i)) is not None and h.name != node.name]
        if held:
            claims = Claims()
            for holder in dict.fromkeys(held):
                claims.claim(holder, Diagnostics())
            claims.claim(node, diags)
        if diags.has_errors:
            raise EventRejected(diags)

    def _report(self, slot: int, name: str, old: Node | None, new: Node | None,
                delta: Delta) -> Changes:
        slot_names = self._stage.names  # this version's: later events copy it or append
        changed = delta.changed
        if new is not None and (old is None or delta.own_changed):
            changed |= 1 << slot
        # One C-level pass from the bitset to the names: a join on a dense tailnet
        # changes ~every netmap (indexes, then nodes, then names was ~2.5 ms at 10k).
        names = list(_named(slot_names, changed))
        if new is None:
            names.append(name)

        def make() -> tuple[NetmapChange, ...]:
            with paused_collector():  # ~10,000 records kept: see `apply`
                return _records(self, slot_names, bits_to_indexes(changed), names, slot,
                                name, new is None, delta)

        def deltas() -> tuple[PeerDelta, ...]:
            return _deltas(slot_names, changed, slot, name, new is None, delta)

        return Changes(make=make, names=frozenset(names), deltas=deltas)


_RECORD = partial(tuple.__new__, NetmapChange)  # a NetmapChange from its fields, in C
_BIT_FLAGS = bytes.maketrans(b"01", b"\x00\x01")


def _named(slot_names: Sequence[str], bits: int) -> Iterator[str]:
    """The names of the slots in `bits`, in slot order (C-level: the bits' binary text,
    least significant first, as 0/1 bytes selecting from the names)."""
    return compress(slot_names, bin(bits)[:1:-1].encode().translate(_BIT_FLAGS))


def _records(index: PolicyIndex, slot_names: Sequence[str], slots: list[int],
             names: list[str], slot: int, name: str, left: bool, delta: Delta
             ) -> tuple[NetmapChange, ...]:
    """The records of a patched event: E's own peer delta; every other changed node
    gained, lost or sees anew at most E (`names`: the slots' names, then E's if it left)."""
    after, before = delta.peers_after, delta.peers_before
    alone, nothing = (name,), ()
    # Per slot, E or nothing in each field, looked up in C-level passes: a join on a
    # dense tailnet makes ~9,200 records (a Python loop over them was ~10 ms).
    gained = dict.fromkeys(bits_to_indexes(after & ~before), alone)
    lost = dict.fromkeys(bits_to_indexes(before & ~after), alone)
    viewed = dict.fromkeys(bits_to_indexes(delta.view_changed), alone)
    out = list(map(_RECORD, zip(
        names[:len(slots)], map(gained.get, slots, repeat(nothing)),
        map(lost.get, slots, repeat(nothing)), map(viewed.get, slots, repeat(nothing)),
        repeat(False), repeat(index))))
    k = bisect.bisect_left(slots, slot)
    if k < len(slots) and slots[k] == slot:
        out[k] = NetmapChange(
            name, _names(slot_names, after & ~before), _names(slot_names, before & ~after),
            _names(slot_names, delta.own_peers_changed), False, index)
    if left:
        out.append(NetmapChange(name, (), (), (), True, index))
    return tuple(out)


def _deltas(slot_names: Sequence[str], changed: int, slot: int, name: str, left: bool,
            delta: Delta) -> tuple[PeerDelta, ...]:
    """`_records` grouped: E's own delta, then the other changed nodes by whether they
    gained E, lost E, see E anew (disjoint: that needs E as a peer before and after)
    or only their filters changed."""
    after, before = delta.peers_after, delta.peers_before
    out: list[PeerDelta] = []
    if changed >> slot & 1:
        out.append(PeerDelta((name,), _names(slot_names, after & ~before),
                             _names(slot_names, before & ~after),
                             _names(slot_names, delta.own_peers_changed), False))
    others = changed & ~(1 << slot)
    gained, lost, viewed = after & ~before, before & ~after, delta.view_changed
    alone = (name,)
    for bits, fields in ((others & gained, (alone, (), ())), (others & lost, ((), alone, ())),
                         (others & viewed, ((), (), alone)),
                         (others & ~(gained | lost | viewed), ((), (), ()))):
        if bits:
            out.append(PeerDelta(tuple(_named(slot_names, bits)), fields[0], fields[1], fields[2],
                                 False))
    if left:
        out.append(PeerDelta((name,), (), (), (), True))
    return tuple(out)


def _names(slot_names: Sequence[str], bits: int) -> tuple[str, ...]:
    return tuple(sorted(_named(slot_names, bits)))


def _content(netmap: NodeNetmap) -> tuple[object, ...]:
    """Everything but the policy_version stamp (ssh_policy and cap_map are outside
    NodeNetmap's ==)."""
    return (replace(netmap, policy_version=""), netmap.ssh_policy, netmap.cap_map)


def _compare_stages(old: LiveStage, new: LiveStage, slot: int, name: str,
                    index: PolicyIndex) -> Changes:
    """The exact report of an event applied by rebuilding: both stages share slots, so
    peer bitsets compare directly; every other netmap's content is compared."""
    before_bits, after_bits = old.peer_bitsets(), new.peer_bitsets()
    look = set(old.routed) | set(new.routed) | {slot}
    out: list[NetmapChange] = []
    had = slot < len(old.r.nodes) and old.r.nodes[slot] is not GHOST
    for i, node in enumerate(new.r.nodes):
        if node is GHOST:
            continue
        if i == slot and not had:
            peers = tuple(p.name for p in new.netmap_of(i).peers)
            out.append(NetmapChange(name, peers, (), (), False, index))
            continue
        if i == slot:
            was, now = old.netmap_of(i, bits_to_indexes(before_bits[i])), new.netmap_of(i)
            if _content(was) != _content(now):
                out.append(_peer_delta(name, was.peers, now.peers, index))
            continue
        before, after = before_bits[i], after_bits[i] if i < len(after_bits) else 0
        common = before & after
        views = tuple(sorted(new.r.nodes[p].name for p in look
                             if common >> p & 1 and old.peer_view(i, p) != new.peer_view(i, p)))
        added = tuple(sorted(new.r.nodes[p].name for p in bits_to_indexes(after & ~before)))
        removed = tuple(sorted(old.r.nodes[p].name for p in bits_to_indexes(before & ~after)))
        if added or removed or views or old.rest(i) != new.rest(i):
            out.append(NetmapChange(node.name, added, removed, views, False, index))
    if had and new.r.nodes[slot] is GHOST:
        out.append(NetmapChange(name, (), (), (), True, index))
    return Changes(tuple(out))


def _diff(old: PolicyIndex, new: PolicyIndex) -> Changes:
    out: list[NetmapChange] = []
    for name, after in new.netmaps():
        if name not in old:
            out.append(NetmapChange(name, tuple(p.name for p in after.peers), (), (), False, new))
            continue
        before = old.netmap(name)
        if _content(before) != _content(after):
            out.append(_peer_delta(name, before.peers, after.peers, new))
    for name in old.names():
        if name not in new:
            out.append(NetmapChange(name, (), (), (), True, new))
    return Changes(tuple(out))


def _peer_delta(name: str, before: tuple[Peer, ...], after: tuple[Peer, ...],
                index: PolicyIndex) -> NetmapChange:
    old = {p.name: p for p in before}
    new = {p.name: p for p in after}
    added = tuple(p.name for p in after if p.name not in old)
    removed = tuple(p.name for p in before if p.name not in new)
    changed = tuple(p.name for p in after if p.name in old and old[p.name] != p)
    return NetmapChange(name, added, removed, changed, False, index)

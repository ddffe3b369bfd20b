"""The compiled-policy index: one node's netmap on demand, and node events.

Build it once per (policy, inventory), then ask for single netmaps and feed it
node events; it reports exactly which netmaps an event changed.

    from policyc.compiler import NodeAdded, NodeRemoved, NodeUpdated, PolicyIndex

    index = PolicyIndex.build(policy, inventory)
    netmap = index.netmap("laptop")               # NodeNetmap; others not computed
    changes = index.apply(NodeAdded(node))        # or NodeRemoved("laptop"),
                                                  # NodeUpdated(replace(node, tags=...))
    for change in changes:                        # exactly the netmaps that differ
        change.node, change.netmap()              # new netmap (None: node removed)
        change.peers_added, change.peers_removed, change.peers_changed   # peer names
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

Per-node pieces come from `compiler.Compilation`, the stage `compile_policy`
itself uses, so there is one definition of a node's netmap.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

from policyc.compiler.compiler import Compilation
from policyc.compiler.nodes import Inventory, Node, User
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


@dataclass(frozen=True, slots=True)
class NetmapChange:
    """One node whose netmap changed, and how its peers changed (by name)."""

    node: str
    peers_added: tuple[str, ...]
    peers_removed: tuple[str, ...]
    peers_changed: tuple[str, ...]  # still peers, but key, endpoint, addresses or routes differ
    removed: bool  # the node itself left: it has no netmap any more
    _state: _State

    def netmap(self) -> NodeNetmap | None:
        """The new netmap, materialised now (None for a removed node)."""
        return None if self.removed else self._state.netmap(self.node)


@dataclass(frozen=True, slots=True)
class Changes:
    changed: tuple[NetmapChange, ...]  # in inventory order; removed nodes last

    def __iter__(self) -> Iterator[NetmapChange]:
        return iter(self.changed)

    def __len__(self) -> int:
        return len(self.changed)

    @property
    def names(self) -> frozenset[str]:
        return frozenset(c.node for c in self.changed)


# --- the index --------------------------------------------------------------------------


class _State:
    """One immutable version: policy, nodes, the shared stage, netmaps made so far."""

    def __init__(self, policy: Policy, nodes: tuple[Node, ...],
                 users: tuple[User, ...] | None) -> None:
        self.policy = policy
        self.nodes = nodes
        self.users = users  # the inventory's user list (roles); events do not change it
        self.position = {n.name: i for i, n in enumerate(nodes)}
        self.stage = Compilation(policy, Inventory.of(nodes, users))
        self._cache: dict[int, NodeNetmap] = {}

    def netmap_at(self, i: int) -> NodeNetmap:
        netmap = self._cache.get(i)
        if netmap is None:
            netmap = self.stage.netmap_of(i)
            self._cache[i] = netmap
        return netmap

    def netmap(self, name: str) -> NodeNetmap:
        return self.netmap_at(self.position[name])


class PolicyIndex:
    """A compiled (policy, inventory), answering one node at a time."""

    def __init__(self, state: _State) -> None:
        self._state = state

    @classmethod
    def build(cls, policy: Policy, inventory: Inventory) -> PolicyIndex:
        return cls(_State(policy, tuple(inventory.nodes), inventory.users))

    @property
    def policy(self) -> Policy:
        return self._state.policy

    def inventory(self) -> Inventory:
        return Inventory.of(self._state.nodes, self._state.users)

    def names(self) -> list[str]:
        return [n.name for n in self._state.nodes]

    def __contains__(self, name: object) -> bool:
        return name in self._state.position

    def __len__(self) -> int:
        return len(self._state.nodes)

    def node(self, name: str) -> Node | None:
        i = self._state.position.get(name)
        return None if i is None else self._state.nodes[i]

    def netmap(self, name: str) -> NodeNetmap:
        """`name`'s netmap; KeyError for a node the index does not hold."""
        return self._state.netmap(name)

    # --- changes -------------------------------------------------------------------

    def apply(self, event: NodeEvent) -> Changes:
        """Apply one node event; raises EventRejected (index unchanged) for a bad one."""
        nodes = self._next_nodes(event)
        return self._switch(_State(self._state.policy, nodes, self._state.users))

    def set_policy(self, policy: Policy) -> Changes:
        """A new policy over the same nodes: rebuild, report the netmaps that differ."""
        return self._switch(_State(policy, self._state.nodes, self._state.users))

    def _switch(self, new: _State) -> Changes:
        changes = _diff(self._state, new)
        self._state = new
        return changes

    def _next_nodes(self, event: NodeEvent) -> tuple[Node, ...]:
        state = self._state
        diags = Diagnostics()
        nodes = list(state.nodes)
        if isinstance(event, NodeRemoved):
            i = state.position.get(event.name)
            if i is None:
                diags.error("I404", EVENT_SPAN, f'unknown node "{event.name}"')
                raise EventRejected(diags)
            del nodes[i]
            return tuple(nodes)
        node = event.node
        i = state.position.get(node.name)
        if isinstance(event, NodeUpdated) and i is None:
            diags.error("I404", EVENT_SPAN, f'unknown node "{node.name}"')
        elif isinstance(event, NodeAdded) and i is not None:
            diags.error("I402", EVENT_SPAN, f'node name "{node.name}" is already used')
        for code, message in node_problems(node):
            diags.error(code, EVENT_SPAN, message)
        self._check_unique(node, diags)
        if diags.has_errors:
            raise EventRejected(diags)
        if i is None:
            nodes.append(node)
        else:
            nodes[i] = node
        return tuple(nodes)

    def _check_unique(self, node: Node, diags: Diagnostics) -> None:
        """Addresses and keys identify nodes: no other node may hold them."""
        for other in self._state.nodes:
            if other.name == node.name:
                continue
            for ip in node.ips:
                if ip in other.ips:
                    diags.error("I402", EVENT_SPAN, f'node "{node.name}": address {ip} is '
                                f'already used by node "{other.name}"')
            if node.key and node.key == other.key:
                diags.error("I402", EVENT_SPAN, f'node "{node.name}": key {node.key} is '
                            f'already used by node "{other.name}"')


def _content(netmap: NodeNetmap) -> tuple[object, ...]:
    """Everything but the policy_version stamp (ssh_policy is outside NodeNetmap's ==)."""
    return (replace(netmap, policy_version=""), netmap.ssh_policy)


def _diff(old: _State, new: _State) -> Changes:
    out: list[NetmapChange] = []
    for i, node in enumerate(new.nodes):
        after = new.netmap_at(i)
        j = old.position.get(node.name)
        if j is None:
            out.append(NetmapChange(node.name, tuple(p.name for p in after.peers), (), (),
                                    False, new))
            continue
        before = old.netmap_at(j)
        if _content(before) != _content(after):
            out.append(_peer_delta(node.name, before.peers, after.peers, new))
    for node in old.nodes:
        if node.name not in new.position:
            out.append(NetmapChange(node.name, (), (), (), True, new))
    return Changes(tuple(out))


def _peer_delta(name: str, before: tuple[Peer, ...], after: tuple[Peer, ...],
                state: _State) -> NetmapChange:
    old = {p.name: p for p in before}
    new = {p.name: p for p in after}
    added = tuple(p.name for p in after if p.name not in old)
    removed = tuple(p.name for p in before if p.name not in new)
    changed = tuple(p.name for p in after if p.name in old and old[p.name] != p)
    return NetmapChange(name, added, removed, changed, False, state)

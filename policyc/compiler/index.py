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

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace

from policyc.compiler.compiler import Compilation
from policyc.compiler.nodes import Inventory, Node, User
from policyc.compiler.peers import bits_to_indexes
from policyc.compiler.uniqueness import node_conflicts
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

    def netmap_at(self, i: int) -> NodeNetmap:
        # Not cached: a netmap holds a peer list O(nodes) long; the index keeps only
        # what nodes share (rules, peer edges) and materialises on request.
        return self.stage.netmap_of(i)

    def netmap(self, name: str) -> NodeNetmap:
        return self.netmap_at(self.position[name])

    def rest(self, i: int) -> tuple[object, ...]:
        """Node `i`'s netmap content apart from its peers (and the version stamp)."""
        return _content(self.stage.netmap_of(i, []))


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

    def netmaps(self, names: Iterable[str] | None = None) -> Iterator[tuple[str, NodeNetmap]]:
        """(name, netmap) one at a time, all nodes by default: for streaming output.
        Peer sets are computed together (by identity class); lists one by one."""
        state = self._state
        indexes = None if names is None else [state.position[n] for n in names]
        for i, netmap in state.stage.iter_netmaps(indexes):
            yield state.nodes[i].name, netmap

    # --- changes -------------------------------------------------------------------

    def apply(self, event: NodeEvent) -> Changes:
        """Apply one node event; raises EventRejected (index unchanged) for a bad one."""
        nodes = self._next_nodes(event)
        old = self._state
        new = _State(old.policy, nodes, old.users)
        name = event.name if isinstance(event, NodeRemoved) else event.node.name
        changes = event_diff(old, new, name)
        self._state = new
        return changes

    def set_policy(self, policy: Policy) -> Changes:
        """A new policy over the same nodes: rebuild, report the netmaps that differ."""
        return self._switch(_State(policy, self._state.nodes, self._state.users))

    def set_users(self, users: tuple[User, ...] | None) -> Changes:
        """A new inventory user list (roles, for role autogroups): rebuild and report
        the netmaps that differ. Node events never change the user list."""
        return self._switch(_State(self._state.policy, self._state.nodes, users))

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
        node_conflicts(node, Inventory.of(state.nodes), diags)  # the loader's own rule
        if diags.has_errors:
            raise EventRejected(diags)
        if i is None:
            nodes.append(node)
        else:
            nodes[i] = node
        return tuple(nodes)


def _content(netmap: NodeNetmap) -> tuple[object, ...]:
    """Everything but the policy_version stamp (ssh_policy and cap_map are outside
    NodeNetmap's ==)."""
    return (replace(netmap, policy_version=""), netmap.ssh_policy, netmap.cap_map)


def event_diff(old: _State, new: _State, name: str) -> Changes:
    """What one node event changed, without comparing every netmap.

    Every peer edge is a set of nodes chosen by each node's own attributes, so an
    event on node E changes the peer relation only in pairs that include E; the
    netmaps that may differ otherwise are those holding a rule whose content
    changed, E's owner's devices (autogroup:self), via routers, and SSH
    destinations of rules E is a source of. Those candidates are compared
    exactly (all but the peer list); peers by E's old and new peer sets.
    """
    eo, en = old.position.get(name), new.position.get(name)
    old_peers = _peer_names(old, eo)
    new_peers = _peer_names(new, en)
    candidates = (_candidates(old, eo) | _candidates(new, en)
                  | (old_peers ^ new_peers))
    base_changed = (eo is not None and en is not None
                    and old.stage.base_peers[eo] != new.stage.base_peers[en])
    routed = (eo is not None and eo in old.stage.routed) or (en is not None
                                                               and en in new.stage.routed)
    if base_changed or routed:
        candidates |= old_peers & new_peers
    out: list[NetmapChange] = []
    for i, node in enumerate(new.nodes):
        if node.name == name:
            if eo is None:
                peers = tuple(p.name for p in new.netmap_at(i).peers)
                out.append(NetmapChange(name, peers, (), (), False, new))
            else:
                change = _compare(old, eo, new, i)
                if change is not None:
                    out.append(change)
            continue
        if node.name not in candidates:
            continue
        j = old.position[node.name]
        # Peers are mutual: this node sees E iff it is among E's peers.
        was, now = node.name in old_peers, node.name in new_peers
        added = (name,) if now and not was else ()
        removed = (name,) if was and not now else ()
        changed: tuple[str, ...] = ()
        if was and now and eo is not None and en is not None \
                and old.stage.peer_view(j, eo) != new.stage.peer_view(i, en):
            changed = (name,)
        if added or removed or changed or old.rest(j) != new.rest(i):
            out.append(NetmapChange(node.name, added, removed, changed, False, new))
    if en is None:
        out.append(NetmapChange(name, (), (), (), True, new))
    return Changes(tuple(out))


def _peer_names(state: _State, i: int | None) -> set[str]:
    if i is None:
        return set()
    nodes = state.nodes
    return {nodes[p].name for p in bits_to_indexes(state.stage.graph.peer_bits(i))}


def _candidates(state: _State, e: int | None) -> set[str]:
    """Nodes whose filter, SSH policy or other per-node parts may depend on node `e`."""
    if e is None:
        return set()
    stage, nodes = state.stage, state.nodes
    found: set[int] = {e} | stage.via_routers
    node = nodes[e]
    if node.owner is not None:
        found.update(stage.r.by_user.get(node.owner, ()))
    found |= _rule_nodes(stage, e)
    for rule in stage.ssh.rules:
        if e in rule.sources:
            found |= rule.destinations
            if rule.to_self or rule.has_localpart:
                found |= rule.sources
    return {nodes[i].name for i in found}


def _rule_nodes(stage: Compilation, e: int) -> set[int]:
    """Nodes holding a shared rule that names `e` among its sources or destinations
    (its SrcIPs or DstPorts text may change with `e`)."""
    reduction = stage.reduction
    if reduction is None:
        return set()
    found: set[int] = set()
    addrs = stage.r.node_addrs[e] | stage.r.node_routes[e]
    everyone = False
    for ri, rule in enumerate(reduction.rules):
        if not (rule.src.overlaps(addrs)
                or any(entry.ip != "*" and entry.addrs.overlaps(addrs) for entry in rule.dst)
                or any(cap.addrs.overlaps(addrs) for cap in rule.caps)):
            continue
        nodes = reduction.rule_nodes(ri)
        if nodes is None:
            everyone = True
            break
        found |= nodes
    if everyone:
        return set(range(len(stage.r.nodes)))
    return found


def _compare(old: _State, j: int, new: _State, i: int) -> NetmapChange | None:
    """The event's own node: compare its whole netmap."""
    before, after = old.netmap_at(j), new.netmap_at(i)
    if _content(before) == _content(after):
        return None
    return _peer_delta(after.node, before.peers, after.peers, new)


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

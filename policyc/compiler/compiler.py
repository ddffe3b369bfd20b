"""The compiler: Policy + Inventory -> one NodeNetmap per node (§4, §5).

Stages: resolve aliases (`resolve.py`), turn ACLs/grants into shared rules
(`grants.py`), expand autogroup:self / via and reduce per node
(`pernode.py`), compute peers over bitsets (`peers.py`), SSH policy
(`sshpolicy.py`) and node capabilities (`nodeattrs.py`). This module only
wires them together.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace

from policyc.collector import paused_collector
from policyc.compiler.addrset import ALL, AddressSet, union_all
from policyc.compiler.grants import CompiledUnit, UnitCompiler, expand_units
from policyc.compiler.internet import INTERNET
from policyc.compiler.nodeattrs import NodeAttrCompiler
from policyc.compiler.nodes import Inventory, Node
from policyc.compiler.peers import PeerGraph, bits_to_indexes, indexes_to_bits
from policyc.compiler.pernode import (
    NodeView,
    OwnerSources,
    Reduction,
    node_filter,
    self_rules,
    via_rules,
    via_served,
)
from policyc.compiler.resolve import Resolver
from policyc.compiler.rules import Rule, merge_rules
from policyc.compiler.sshpolicy import NO_CONTROL_URL, SshCompiler
from policyc.diagnostics.source import Span
from policyc.netmap import ALL_PORTS, FilterRule, NetPortRange, NodeNetmap, Peer
from policyc.policy.model import Policy

ALLOW_ALL = FilterRule(("*",), (NetPortRange("*", ALL_PORTS),))
EXIT_ROUTES = ("0.0.0.0/0", "::/0")


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """An unreduced rule and the policy rule it came from."""

    rule: FilterRule
    span: Span

    def __str__(self) -> str:
        return f"{self.span.location()}: {self.rule.to_json()}"


@dataclass(frozen=True, slots=True)
class CompiledPolicy:
    netmaps: Mapping[str, NodeNetmap]
    global_rules: tuple[CompiledRule, ...]
    policy_version: str
    allows_all: bool = False


@dataclass(frozen=True, slots=True)
class _Restamped:
    """One autogroup:self unit's rules for every owner (for global_rules): each
    item is an owner's rules and whether they are shared rules of an earlier unit
    with the same self part, to restate with this unit's order and span."""

    items: list[tuple[list[Rule], bool]]
    unit: int
    span: Span

    def made(self) -> list[Rule]:
        return [replace(rule, order=(self.unit, rule.order[1]), span=self.span)
                if restamp else rule for rules, restamp in self.items for rule in rules]


def policy_version(policy: Policy) -> str:
    return hashlib.sha256(policy.source.text.encode()).hexdigest()[:16]


def compile_policy(policy: Policy, inventory: Inventory, *,
                   control_url: str = NO_CONTROL_URL) -> CompiledPolicy:
    """Every node's netmap. `control_url` is where SSH `check` rules delegate to."""
    return Compilation(policy, inventory, control_url).compiled()


class Compilation:
    """The shared stage of one (policy, inventory), and per-node assembly from it.

    Everything nodes share (rules, the reduction index, peer edges, usable
    routes, SSH sources) is built once in `__init__`; `netmap_of(i)` then
    assembles one node's netmap. `compile_policy` asks for every node; the
    compiled-policy index (`index.py`) asks for one at a time. Both go through
    these same methods, so there is one definition of a node's netmap.
    """

    def __init__(self, policy: Policy, inventory: Inventory,
                 control_url: str = NO_CONTROL_URL) -> None:
        with paused_collector():
            self._build(policy, inventory, control_url)

    def _build(self, policy: Policy, inventory: Inventory, control_url: str) -> None:
        self.policy = policy
        self.r = Resolver(policy, inventory)
        self.version = policy_version(policy)
        self.graph = PeerGraph(self.r)
        self.views = [
            NodeView(i, self.r.node_addrs[i], self.r.node_routes[i], n.exit_node, n.ips)
            for i, n in enumerate(self.r.nodes)
        ]
        self.extras: list[list[Rule]] = [[] for _ in self.r.nodes]
        self.reduction: Reduction | None = None  # None: the policy allows everything
        self._peer_bitsets: list[int] | None = None
        self.via_routers: set[int] = set()  # nodes with rules from `via` grants
        if policy.allows_all:
            self.graph.add_rule(ALL, ALL, True)
            self._global: tuple[CompiledRule, ...] | list[Rule | _Restamped] = (
                CompiledRule(ALLOW_ALL, policy.source.whole()),)
        else:
            self._shared_stage()
        self.usable = self.graph.usable_routes()
        self.ssh = SshCompiler(policy, self.r, control_url)
        self.attrs = NodeAttrCompiler(policy, self.r)
        self.base_peers = [base_peer(n, self.r.ip_texts(i)) for i, n in enumerate(self.r.nodes)]
        self.routed = frozenset(i for i, n in enumerate(self.r.nodes) if n.routes or n.exit_node)
        by_name = sorted(range(len(self.r.nodes)), key=lambda i: self.r.nodes[i].name)
        self.rank = [0] * len(by_name)
        for position, i in enumerate(by_name):
            self.rank[i] = position

    def _shared_stage(self) -> None:
        compiler = UnitCompiler(self.r)
        units = [compiler.compile(i, u) for i, u in enumerate(expand_units(self.policy))]
        shared = merge_rules(r for u in units for r in u.rules)
        per_node: list[Rule | _Restamped] = [*self._self_rules(units), *self._via_rules(units)]
        for rule in shared:
            dst = rule.dst_sets if rule.dst_sets is not None and not rule.caps else rule.dst_addrs
            self.graph.add_rule(rule.src, dst, rule.internet)
        self.reduction = Reduction(shared, self.r, self.views)
        self._global = [*shared, *per_node]

    @property
    def global_rules(self) -> tuple[CompiledRule, ...]:
        """Every unreduced rule with its span (made on demand: the index never needs it)."""
        if isinstance(self._global, list):
            rules = [made for r in self._global
                     for made in ((r,) if isinstance(r, Rule) else r.made())]
            self._global = tuple(CompiledRule(r.to_wire(), r.span) for r in rules)
        return self._global

    def compiled(self) -> CompiledPolicy:
        """Every node's netmap (peer sets computed together, by identity class)."""
        netmaps = {self.r.nodes[i].name: netmap for i, netmap in self.iter_netmaps()}
        return CompiledPolicy(netmaps, self.global_rules, self.version,
                              allows_all=self.reduction is None)

    # --- per-node rule sources --------------------------------------------------

    def _self_rules(self, units: list[CompiledUnit]) -> list[Rule | _Restamped]:
        out: list[Rule | _Restamped] = []
        memo: dict[tuple[int, tuple[int, ...]], tuple[list[Rule], bool]] = {}
        shapes: dict[tuple[object, ...], int] = {}
        owners_of: dict[AddressSet, list[tuple[str, tuple[int, ...]]]] = {}
        sources = OwnerSources(self.r)
        for unit in units:
            part = unit.self_part
            if part is None:
                continue
            owners = owners_of.get(part.sources)
            if owners is None:  # units share their sources (autogroup:member): group once
                by_owner: dict[str, list[int]] = defaultdict(list)
                nodes = self.r.nodes
                for i in self.r.nodes_in(part.sources):
                    owner = nodes[i].owner
                    if owner is not None:
                        by_owner[owner].append(i)
                owners = owners_of[part.sources] = [(o, tuple(s)) for o, s in by_owner.items()]
            shape = shapes.setdefault(
                (tuple((c.protocols, c.ports) for c in part.ip), repr(part.app)), len(shapes))
            items: list[tuple[list[Rule], bool]] = []
            out.append(_Restamped(items, unit.index, unit.span))
            for owner, srcs in owners:
                user_nodes = self.r.by_user[owner]
                # Units with the same self part differ only in order and span: build
                # the rules (and the peer edge) once per (part, owner's sources).
                key = (shape, srcs)
                made = memo.get(key)
                if made is None:
                    rules = self_rules(unit, part, user_nodes, srcs, sources)
                    memo[key] = (rules, any(rule.caps for rule in rules))
                    if any(rule.dst or rule.caps for rule in rules):
                        self.graph.add_edge(indexes_to_bits(srcs), indexes_to_bits(user_nodes),
                                            sources.addresses(tuple(user_nodes)), False)
                    items.append((rules, False))
                else:
                    # Merging rules (DstPorts) fold into the first unit's copy on every
                    # node anyway, so nodes share that copy; CapGrant rules never merge
                    # and keep their own order. The global list gets exact copies lazily.
                    rules, has_caps = made
                    if has_caps:
                        rules = [rule if rule.merge_key is not None
                                 else self._restamp(rule, unit) for rule in rules]
                    items.append((made[0], True))
                for i in user_nodes:
                    self.extras[i].extend(rules)
        return out

    @staticmethod
    def _restamp(rule: Rule, unit: CompiledUnit) -> Rule:
        return replace(rule, order=(unit.index, rule.order[1]), span=unit.span)

    def _via_rules(self, units: list[CompiledUnit]) -> list[Rule]:
        out: list[Rule] = []
        for unit in units:
            if unit.via is None:
                continue
            for view in self.views:
                served = via_served(unit.via, view, self.r.nodes[view.index].tags)
                if not served:
                    continue
                rules = via_rules(unit, unit.via, served)
                self.extras[view.index].extend(rules)
                self.via_routers.add(view.index)
                # Sources use an exit node's exit routes when it serves them Internet space.
                internet = unit.via.internet or (
                    view.is_exit and any(a.issubset(INTERNET) for _, a in served))
                self.graph.add_edge(self.graph.src_bits(unit.via.src), 1 << view.index,
                                    union_all(a for _, a in served), internet)
                out.extend(rules)
        return out

    # --- per-node assembly --------------------------------------------------------------

    def filter_of(self, i: int) -> tuple[FilterRule, ...]:
        if self.reduction is None:
            return (ALLOW_ALL,)
        return tuple(node_filter(self.reduction, self.views[i], self.extras[i]))

    def peer_bitsets(self) -> list[int]:
        """Every node's peers as a bitset, computed once by identity class."""
        if self._peer_bitsets is None:
            self._peer_bitsets = self.graph.peer_bitsets()
        return self._peer_bitsets

    def iter_netmaps(self, indexes: Iterable[int] | None = None
                     ) -> Iterator[tuple[int, NodeNetmap]]:
        """Netmaps one at a time (all nodes by default), for streaming: only the
        peer bitsets are held for every node, never every peer list."""
        bitsets = self.peer_bitsets()
        for i in range(len(self.r.nodes)) if indexes is None else indexes:
            yield i, self.netmap_of(i, bits_to_indexes(bitsets[i]))

    def netmap_of(self, i: int, peers: list[int] | None = None) -> NodeNetmap:
        """Node `i`'s netmap; `peers` (ascending indexes) if already known."""
        if peers is None:
            bitsets = self._peer_bitsets
            peers = (self.graph.peers_of(i) if bitsets is None
                     else bits_to_indexes(bitsets[i]))
        node = self.r.nodes[i]
        ordered = sorted(peers, key=self.rank.__getitem__)
        base, routed = self.base_peers, self.routed
        peer_list = tuple(base[p] if p not in routed else self._peer(i, p) for p in ordered)
        return NodeNetmap(
            node=node.name,
            addresses=tuple(str(ip) for ip in node.ips),
            peers=peer_list,
            packet_filter=self.filter_of(i),
            ssh_policy=self.ssh.for_node(i),
            policy_version=self.version,
            routes=served_routes(node),
            cap_map=self.attrs.for_node(i),
        )

    def peer_view(self, me: int, p: int) -> Peer:
        """Peer `p` as node `me` would list it."""
        return self._peer(me, p) if p in self.routed else self.base_peers[p]

    def _peer(self, me: int, p: int) -> Peer:
        """Peer `p` as node `me` sees it: with the routes `me` may send into."""
        return routed_peer(self.base_peers[p], self.r.nodes[p], me, p, self.usable)


def routed_peer(base: Peer, node: Node, me: int, p: int,
                usable: Mapping[tuple[int, int], int]) -> Peer:
    """Peer `p` (`node`, listed as `base`) as node `me` sees it: with the routes
    `usable` says `me` may send into ((router, route number) -> bitset of senders;
    the exit routes are number len(routes))."""
    if not (node.routes or node.exit_node):
        return base  # one shared object: most peers have no routes to choose
    bit = 1 << me
    extra = [str(route) for k, route in enumerate(node.routes)
             if usable.get((p, k), 0) & bit]
    if node.exit_node and usable.get((p, len(node.routes)), 0) & bit:
        extra.extend(EXIT_ROUTES)
    if not extra:
        return base
    return Peer(base.name, base.key, base.addresses, base.allowed_ips + tuple(extra),
                base.endpoint)

def base_peer(node: Node, texts: tuple[str, ...]) -> Peer:
    """A peer as every node lists it when it has no routes to choose from."""
    # An address's host prefix reads as the address and its length (no scope ids:
    # mesh addresses are validated); `ip_network` per address was a measurable cost.
    allowed = tuple(f"{text}/{ip.max_prefixlen}" if "%" not in text
                    else str(ipaddress.ip_network(ip))
                    for text, ip in zip(texts, node.ips, strict=True))
    return Peer(node.name, node.key, texts, allowed, node.endpoint)


def served_routes(node: Node) -> tuple[str, ...]:
    """The routes `node` forwards for its peers: approved subnets, then exit routes."""
    exits = ("0.0.0.0/0", "::/0") if node.exit_node else ()
    return tuple(str(r) for r in node.routes) + exits

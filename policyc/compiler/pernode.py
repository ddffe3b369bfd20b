"""Per-node rules: autogroup:self and via expansion, and reduction (§4.5, §5.3).

`Reduction` indexes the shared rules by destination once, so finding the
rules that concern a node costs O(its output), not O(rules x nodes).
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, replace

from policyc.compiler.addrset import AddressSet
from policyc.compiler.grants import (
    INTERNET_PREFIXES,
    CompiledUnit,
    SelfPart,
    ViaPart,
    companion_rules,
)
from policyc.compiler.internet import INTERNET
from policyc.compiler.resolve import Resolver
from policyc.compiler.rules import CapEntry, DstEntry, Rule, merge_rules
from policyc.netmap import ALL_PORTS, FilterRule, PortRange
from policyc.policy.model import IPAddress, IPNetwork


@dataclass(frozen=True, slots=True)
class NodeView:
    """What reduction needs to know about one node."""

    index: int
    addrs: AddressSet
    routes: AddressSet
    is_exit: bool
    ips: tuple[IPAddress, ...]


def entry_concerns(addrs: AddressSet, node: NodeView) -> bool:
    """Keep a DstPorts entry if it holds the node, overlaps its routes, or is Internet
    space on an exit node."""
    if addrs.overlaps(node.addrs) or addrs.overlaps(node.routes):
        return True
    return node.is_exit and addrs.issubset(INTERNET)


def reduce_caps(caps: tuple[CapEntry, ...], node: NodeView) -> list[CapEntry]:
    """CapGrant Dsts narrowed to the node's own /32 /128, or kept whole for its routes."""
    out: list[CapEntry] = []
    for cap in caps:
        keep: set[IPNetwork] = set()
        for prefix in cap.prefixes:
            keep.update(ipaddress.ip_network(ip) for ip in node.ips
                        if ip.version == prefix.version and ip in prefix)
            if AddressSet.of_network(prefix).overlaps(node.routes):
                keep.add(prefix)
        if keep:
            ordered = sorted(keep, key=lambda p: (p.version, int(p.network_address), p.prefixlen))
            out.append(CapEntry(tuple(ordered), cap.cap_map))
    return out


class Reduction:
    """Shared rules indexed by the nodes their destinations concern."""

    def __init__(self, rules: list[Rule], resolver: Resolver, views: list[NodeView]) -> None:
        self.rules = rules
        self.views = views
        self.everywhere: list[tuple[int, int]] = []  # (rule, entry) kept on every node
        self.by_node: dict[int, list[tuple[int, int]]] = defaultdict(list)
        self.cap_candidates: dict[int, list[int]] = defaultdict(list)
        self.by_key = {r.merge_key: i for i, r in enumerate(rules) if r.merge_key is not None}
        # (id(addrs), internet) -> (addrs, nodes): the entry holds `addrs` so its id
        # cannot be reused by another set while the key is in the cache.
        self._found: dict[tuple[int, bool], tuple[AddressSet, frozenset[int]]] = {}
        self._resolver = resolver
        # Entries are shared objects (one per prefix and port range in the
        # compilation), so gather (rule, entry) positions per entry object first and
        # look each one's nodes up once, not once per rule that has it.
        positions: dict[int, list[tuple[int, int]]] = {}
        entry_of: dict[int, DstEntry] = {}
        for ri, rule in enumerate(rules):
            if rule.caps:
                for ni in self._nodes_for(rule.dst_addrs, resolver, internet=False):
                    self.cap_candidates[ni].append(ri)
            for ei, entry in enumerate(rule.dst):
                key = id(entry)
                found = positions.get(key)
                if found is None:
                    found = positions[key] = []
                    entry_of[key] = entry
                found.append((ri, ei))
        by_node = self.by_node
        for key, pairs in positions.items():
            entry = entry_of[key]
            if entry.ip == "*":
                self.everywhere += pairs
                continue
            for ni in self._nodes_for(entry.addrs, resolver, internet=True):
                by_node[ni] += pairs

    def rule_nodes(self, ri: int) -> set[int] | None:
        """The nodes shared rule `ri` concerns; None: every node (a `*` entry)."""
        rule = self.rules[ri]
        found: set[int] = set()
        for entry in rule.dst:
            if entry.ip == "*":
                return None
            found |= self._nodes_for(entry.addrs, self._resolver, internet=True)
        if rule.caps:
            found |= self._nodes_for(rule.dst_addrs, self._resolver, internet=False)
        return found

    def _nodes_for(self, addrs: AddressSet, resolver: Resolver, *, internet: bool
                   ) -> frozenset[int]:
        # The same prefix object recurs in many rules (entries are shared): key by
        # identity, which skips hashing. Some sets are made per call (a rule's
        # dst_addrs), so the cache keeps each keyed set alive: a freed set's id
        # would otherwise be reused and answer for a different set.
        key = (id(addrs), internet)
        cached = self._found.get(key)
        if cached is not None:
            return cached[1]
        nodes = set(resolver.nodes_in(addrs))
        nodes.update(resolver.routers_overlapping(addrs))
        if internet and resolver.exit_nodes and addrs.issubset(INTERNET):
            nodes.update(resolver.exit_nodes)
        found = frozenset(nodes)
        self._found[key] = (addrs, found)
        return found

    def shared_entries(self, ni: int) -> dict[int, list[int]]:
        """rule index -> kept entry indexes, for the shared rules."""
        kept: dict[int, list[int]] = defaultdict(list)
        for ri, ei in sorted(self.everywhere + self.by_node.get(ni, [])):
            kept[ri].append(ei)
        return kept


class OwnerSources:
    """Per-device-list pieces of autogroup:self rules, made once per compilation:
    one user's devices recur in every autogroup:self unit."""

    def __init__(self, resolver: Resolver) -> None:
        self.r = resolver
        self._sources: dict[tuple[int, ...], tuple[AddressSet, tuple[str, ...]]] = {}
        self._addresses: dict[tuple[int, ...], AddressSet] = {}
        self._entries: dict[tuple[tuple[int, ...], tuple[PortRange, ...]],
                            tuple[DstEntry, ...]] = {}

    def addresses(self, nodes: tuple[int, ...]) -> AddressSet:
        found = self._addresses.get(nodes)
        if found is None:
            found = self._addresses[nodes] = self.r.addresses_of(nodes)
        return found

    def source(self, srcs: tuple[int, ...]) -> tuple[AddressSet, tuple[str, ...]]:
        """The devices' addresses and their SrcIPs text."""
        found = self._sources.get(srcs)
        if found is None:
            src = self.addresses(srcs)
            found = self._sources[srcs] = (src, tuple(self.r.texts(src)))
        return found

    def entries(self, nodes: tuple[int, ...], ports: tuple[PortRange, ...]
                ) -> tuple[DstEntry, ...]:
        """DstPorts entries for every address of the devices, per port range."""
        key = (nodes, ports)
        found = self._entries.get(key)
        if found is None:
            found = self._entries[key] = tuple(
                DstEntry(text, one, p) for i in nodes for text, one in self.r.ip_parts(i)
                for p in ports)
        return found


def self_rules(unit: CompiledUnit, part: SelfPart, user_nodes: list[int],
               srcs: tuple[int, ...], sources: OwnerSources) -> list[Rule]:
    """The autogroup:self rules every device of one user receives.

    `srcs` are the user's devices among the grant's sources.
    """
    resolver = sources.r
    src, src_ips = sources.source(srcs)
    devices = tuple(user_nodes)
    out: list[Rule] = []
    seq = 100_000
    for cap in part.ip:
        entries = sources.entries(devices, cap.ports or (ALL_PORTS,))
        out.append(Rule(src_ips, src, (unit.index, seq), entries, tuple(cap.protocols),
                        span=unit.span))
        seq += 1
    if part.app:
        caps = tuple(
            CapEntry(tuple(resolver.node_addrs[i].to_prefixes()), part.app) for i in user_nodes
        )
        out.append(Rule(src_ips, src, (unit.index, seq), caps=caps, span=unit.span))
        dst_texts = [str(ip) for i in user_nodes for ip in resolver.nodes[i].ips]
        out.extend(companion_rules((unit.index, seq), dst_texts, tuple(src.to_prefixes()),
                                   {name for name, _ in part.app}, unit.span))
    return out


def via_served(via: ViaPart, node: NodeView, tags: tuple[str, ...]) -> list[tuple[str, AddressSet]]:
    """The destinations of a via grant this router serves (empty if none)."""
    if not via.tags.intersection(tags):
        return []
    # Like reduction (entry_concerns): a prefix overlapping the router's routes, or
    # Internet space on an exit node.
    served: list[tuple[str, AddressSet]] = [
        (text, addrs) for text, addrs in zip(via.dst_texts, via.dst_prefixes, strict=True)
        if addrs.overlaps(node.routes) or (node.is_exit and addrs.issubset(INTERNET))
    ]
    if via.internet and node.is_exit:
        served.extend(INTERNET_PARTS)
    return served


# The Internet's prefixes as (text, set), made once: every exit node serving every
# via grant to autogroup:internet lists them (10k dense grants: ~20,000 times).
INTERNET_PARTS: tuple[tuple[str, AddressSet], ...] = tuple(
    (str(p), AddressSet.of_network(p)) for p in INTERNET_PREFIXES)


def via_rules(unit: CompiledUnit, via: ViaPart, served: list[tuple[str, AddressSet]],
              ) -> list[Rule]:
    """Rules of a via grant on one router: its served slice of the destinations."""
    out: list[Rule] = []
    for seq, cap in enumerate(via.ip):
        entries = tuple(DstEntry(text, addrs, p) for text, addrs in served
                        for p in (cap.ports or (ALL_PORTS,)))
        out.append(Rule(via.src_ips, via.src, (unit.index, seq), entries, tuple(cap.protocols),
                        internet=via.internet, span=unit.span))
    return out


def node_filter(reduction: Reduction, node: NodeView, extras: list[Rule]) -> list[FilterRule]:
    """Shared rules plus this node's own, merged as Tailscale merges, then reduced."""
    rules = reduction.rules
    kept = reduction.shared_entries(node.index)
    parts: dict[int, list[DstEntry]] = {ri: [rules[ri].dst[e] for e in eis]
                                        for ri, eis in kept.items()}
    orders: dict[int, tuple[int, int]] = {ri: rules[ri].order for ri in parts}
    extra_rules: list[Rule] = []
    for rule in merge_rules(extras):
        ri = reduction.by_key.get(rule.merge_key) if rule.merge_key is not None else None
        entries = [e for e in rule.dst if entry_concerns(e.addrs, node)]
        if ri is None:
            extra_rules.append(rule)
            continue
        if entries:
            parts.setdefault(ri, []).extend(entries)
            orders[ri] = min(orders.get(ri, rules[ri].order), rule.order)
    items: list[tuple[tuple[int, int], int, FilterRule]] = []
    for ri, entries in parts.items():
        if entries:
            items.append((orders[ri], ri, rules[ri].to_wire(dst=entries)))
    for ri in reduction.cap_candidates.get(node.index, []):
        caps = reduce_caps(rules[ri].caps, node)
        if caps:
            items.append((rules[ri].order, ri, rules[ri].to_wire(caps=caps)))
    for k, rule in enumerate(extra_rules):
        wire = _reduce_extra(rule, node)
        if wire is not None:
            items.append((rule.order, len(rules) + k, wire))
    items.sort(key=lambda t: (t[0], t[1]))
    return [wire for _, _, wire in items]


def _reduce_extra(rule: Rule, node: NodeView) -> FilterRule | None:
    if rule.caps:
        caps = reduce_caps(rule.caps, node)
        return rule.to_wire(caps=caps) if caps else None
    entries = [e for e in rule.dst if entry_concerns(e.addrs, node)]
    return rule.to_wire(dst=entries) if entries else None



SelfShape = tuple[object, ...]


def self_shape(part: SelfPart) -> SelfShape:
    """What decides a self part's rules besides its sources (units with equal shapes
    give one owner the same rules, restamped)."""
    return (tuple((c.protocols, c.ports) for c in part.ip), repr(part.app))


def owner_self_rules(parts: Iterable[tuple[CompiledUnit, SelfPart, tuple[int, ...]]],
                     user_nodes: list[int], sources: OwnerSources
                     ) -> tuple[list[Rule], list[tuple[tuple[int, ...], list[Rule]]]]:
    """One owner's autogroup:self rules, as `Compilation._self_rules` gives each of
    the owner's devices. `parts`: (unit, self part, the owner's devices among the
    part's sources), in unit order. Also returns each distinct rule list made, with
    its source devices (a peer edge from them to `user_nodes` when it has rules)."""
    out: list[Rule] = []
    made_lists: list[tuple[tuple[int, ...], list[Rule]]] = []
    memo: dict[tuple[SelfShape, tuple[int, ...]], list[Rule]] = {}
    for unit, part, srcs in parts:
        if not srcs:
            continue
        key = (self_shape(part), srcs)
        made = memo.get(key)
        if made is None:
            made = memo[key] = self_rules(unit, part, user_nodes, srcs, sources)
            made_lists.append((srcs, made))
            out.extend(made)
        else:
            # Merging rules fold into the first unit's copy anyway; CapGrant rules
            # never merge and keep this unit's order and span.
            out.extend(rule if rule.merge_key is not None
                       else replace(rule, order=(unit.index, rule.order[1]), span=unit.span)
                       for rule in made)
    return out, made_lists

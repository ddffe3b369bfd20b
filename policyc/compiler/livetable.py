"""The compiled-policy index's rule table: shared rules kept per alias, so a node
event patches what it touches instead of recompiling the policy.

`compile_policy` (compiler.py) makes each rule's DstPorts once and indexes every
entry by node; here a rule keeps, per destination alias, a reference to that
alias's prefix parts (`Block`), and the nodes a rule concerns are bitsets made
from the aliases' node bitsets (`Atom.holders`). A node's filter is assembled on
request: the merged rules whose holders include it, each narrowed by bisection
into its blocks. The output is the same as `pernode.node_filter` (the property
tests compare the index with `compile_policy` after random events).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from policyc.compiler.addrpatch import (
    Families,
    IntervalParts,
    Part,
    chunked_families,
    part_start,
    split_parts,
)
from policyc.compiler.addrset import AddressSet, union_all
from policyc.compiler.chunks import Seq, flat, last_at_or_below, sample
from policyc.compiler.grants import SelfPart
from policyc.compiler.internet import INTERNET
from policyc.compiler.peers import Reach
from policyc.compiler.pernode import NodeView, _reduce_extra, entry_concerns, reduce_caps
from policyc.compiler.rules import Order, Rule, merge_rules
from policyc.netmap import CapGrant, FilterRule, NetPortRange, PortRange
from policyc.policy.model import Alias

EVERYONE = -1  # a bitset with every bit set: `*` entries concern every node
Position = tuple[int, int]  # (unit index, rule number in the unit): merged-list order
EXTRA = 1 << 40  # positions of a node's own rules sort after every shared rule


class SrcKey:
    """SrcIPs texts with their hash computed once (rules merge on equal texts).

    The hash reads the length and ~8 texts spread over the tuple, not all of it:
    a node event patches ~100 groups' texts of thousands of entries each, and
    hashing them whole was a visible share of a join (so was a sample of 16).
    Equal texts hash equal; keys that only share the sample are told apart by `==`."""

    __slots__ = ("_hash", "texts")

    def __init__(self, texts: Seq[str]) -> None:
        self.texts = texts  # flat or chunked (`chunks.py`): equal contents, equal keys
        self._hash = hash((len(texts), sample(texts, len(texts) // 8 or 1)))

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SrcKey) and (
            self.texts is other.texts or (self._hash == other._hash and self.texts == other.texts))


MergeKey = tuple[SrcKey, tuple[int, ...]]


class Atom:
    """The addresses of one alias (or one rule's set) and what is derived from them.

    `bits`: nodes with an address in it or an approved route overlapping it (who
    can send from it / be reached at it); `holders` adds exit nodes when a prefix
    of it is Internet space (who keeps a DstPorts entry of it). `texts` (SrcIPs)
    and `parts` (DstPorts prefixes) are made on first use and patched by events.
    An identity alias's set is patched as chunked intervals (`families`); `addrs`
    is made from them when read (most events read few of the sets they patch).
    """

    __slots__ = ("_addrs", "_families", "alias", "bits", "holders", "internet", "key", "parts",
                 "src_key", "texts")

    def __init__(self, key: tuple[str, str], addrs: AddressSet, alias: Alias | None) -> None:
        self.key = key
        self.alias = alias
        self._addrs: AddressSet | None = addrs
        self._families: Families | None = None
        self.bits = 0
        self.holders = 0
        self.internet = False
        self.texts: Seq[str] | None = None
        self.src_key: SrcKey | None = None
        self.parts: tuple[Seq[Part], Seq[Part]] | None = None

    @property
    def addrs(self) -> AddressSet:
        if self._addrs is None:
            assert self._families is not None
            v4, v6 = self._families
            self._addrs = AddressSet(v4.flat(), v6.flat())
        return self._addrs

    @addrs.setter
    def addrs(self, addrs: AddressSet) -> None:
        self._addrs, self._families = addrs, None

    def families(self) -> Families:
        """The set as chunked intervals, to patch (`set_families`)."""
        if self._families is None:
            self._families = chunked_families(self.addrs)
        return self._families

    def set_families(self, families: Families) -> None:
        self._families, self._addrs = families, None

    def overlaps(self, other: AddressSet) -> bool:
        return self.addrs.overlaps(other)

    def has_addresses(self) -> bool:
        """Whether the set is not empty (without making `addrs`)."""
        if self._addrs is not None:
            return bool(self._addrs)
        assert self._families is not None
        return bool(len(self._families[0]) or len(self._families[1]))

    def get_parts(self, cache: IntervalParts | None = None) -> tuple[Seq[Part], Seq[Part]]:
        if self.parts is None:
            self.parts = split_parts(self.addrs, cache)
        return self.parts

    def set_internet(self) -> None:
        """Whether some DstPorts prefix of the set is Internet space (exits keep it)."""
        self.internet = self.addrs.overlaps(INTERNET) and any(
            one.issubset(INTERNET) for family in self.get_parts() for _, one in family)


@dataclass(frozen=True, slots=True, eq=False)
class Block:
    """The DstPorts entries one destination alias gives a rule: its prefixes x ports.
    `star`: the `*` entry, which every node keeps (`atom` is then the ALL atom)."""

    atom: Atom
    star: bool
    parts4: Seq[Part]  # chunked once an event patched them (`chunks.py`)
    parts6: Seq[Part]
    ports: tuple[PortRange, ...]

    def entries(self, view: NodeView, ordinary: bool) -> list[NetPortRange]:
        if self.star:
            return [NetPortRange("*", p) for p in self.ports]
        if ordinary:  # only its own addresses: bisect, the rule may hold 10,000 prefixes
            found: list[Part] = []
            for v6 in (False, True):
                parts = self.parts6 if v6 else self.parts4
                for ip in view.ips:
                    if (ip.version == 6) != v6 or not parts:
                        continue
                    a = int(ip)
                    part = last_at_or_below(parts, a, part_start)
                    if part is not None:
                        one = part[1]
                        last = (one.v6 or one.v4)[0][1]
                        if a <= last and part not in found:
                            found.append(part)
            if len(found) > 1:
                found.sort(key=lambda p: (bool(p[1].v6), part_start(p)))
        else:
            found = [p for p in (*self.parts4, *self.parts6) if entry_concerns(p[1], view)]
        return [NetPortRange(text, port) for text, _ in found for port in self.ports]


@dataclass(frozen=True, slots=True, eq=False)
class IpShape:
    """One DstPorts rule of one unit, before merging."""

    pos: Position
    order: Order
    src_ips: Seq[str]  # flat as compiled, or the source atom's chunked texts
    key: MergeKey
    src: Atom
    blocks: tuple[Block, ...]
    internet: bool
    # Destination sets overlapping Internet space, and whether one alone covers it:
    # together they decide whether exit nodes are destinations (peers).
    inet_sets: tuple[AddressSet, ...] = ()
    covers: bool = False


@dataclass(frozen=True, slots=True, eq=False)
class CapShape:
    """One CapGrant rule (never merged): `dst` is its destinations' set."""

    pos: Position
    rule: Rule
    src: Atom
    dst: Atom


Shape = IpShape | CapShape
# A filter rule to compare: (SrcIPs as held, DstPorts, IPProto, CapGrant).
RuleKey = tuple[Seq[str], tuple[NetPortRange, ...], tuple[int, ...], tuple[CapGrant, ...]]


class Edge(NamedTuple):
    """Sources may reach destinations (peers); `dst` sets decide usable routes (a
    merged rule's are its destination atoms: their sets are read only for a router)."""

    src_bits: int
    dst_bits: int
    dst: tuple[Reach, ...]
    internet: bool


@dataclass(frozen=True, slots=True, eq=False)
class Dests:
    """A merged group's destinations: each of its rules' blocks, and the nodes that
    keep each rule. A node's DstPorts entries from the group are a function of this
    and the node's view alone (`entries_of`). Compared by identity: a group remade
    under a new key with the very same blocks and holders keeps the object
    (`Group.rekeyed`), so a node's entries from it can be reused (`livefilter.py`)."""

    blocks: tuple[tuple[Block, ...], ...]
    part_holders: tuple[int, ...]

    def entries_of(self, bit: int, view: NodeView, ordinary: bool) -> list[NetPortRange]:
        """The entries of the node with bit `bit` (one of the group's holders)."""
        entries: list[NetPortRange] = []
        for blocks, holders in zip(self.blocks, self.part_holders, strict=True):
            if holders & bit:
                for block in blocks:
                    entries.extend(block.entries(view, ordinary))
        return entries


@dataclass(frozen=True, slots=True, eq=False)
class Group:
    """Unit rules with equal SrcIPs and IPProto, merged as `rules.merge_rules` merges."""

    key: MergeKey
    parts: tuple[IpShape, ...]
    part_holders: tuple[int, ...]
    holders: int
    dests: Dests
    atoms: frozenset[int] = frozenset()  # ids of the atoms its holders and edge read

    @staticmethod
    def made(key: MergeKey, parts: tuple[IpShape, ...], exit_bits: int
             ) -> tuple[Group, Edge | None]:
        """The group of `parts` and its peer edge (`PeerGraph.add_rule(src, dst_addrs,
        internet)` of the merged rule), in one pass over the parts' blocks: an event
        makes ~140 groups of a dense tailnet's anew."""
        part_holders: list[int] = []
        holders = dst = 0
        atoms = {id(parts[0].src)}
        dst_atoms: list[Atom] = []
        internet = covers = False
        inet_sets: list[AddressSet] = []
        for shape in parts:
            held = 0
            atoms.add(id(shape.src))
            for block in shape.blocks:
                atom = block.atom
                held |= EVERYONE if block.star else atom.holders
                dst |= atom.bits
                dst_atoms.append(atom)
                atoms.add(id(atom))
            part_holders.append(held)
            holders |= held
            internet = internet or shape.internet
            covers = covers or shape.covers
            inet_sets += shape.inet_sets
        each = tuple(part_holders)
        group = Group(key, parts, each, holders,
                      Dests(tuple(shape.blocks for shape in parts), each), frozenset(atoms))
        covers = covers or (bool(inet_sets) and INTERNET.issubset(union_all(inet_sets)))
        if internet or covers:
            dst |= exit_bits
        src = parts[0].src.bits
        return group, (Edge(src, dst, tuple(dst_atoms), internet or covers)
                       if src and dst else None)

    def rekeyed(self, key: MergeKey, parts: tuple[IpShape, ...], edge: Edge | None,
                flipped: frozenset[int]) -> tuple[Group, Edge | None] | None:
        """This group's rules refreshed under a new key (their source's texts changed):
        the same destinations, none of whose atoms changed, keep this group's holders
        and edge destinations; only the edge's sources are read again. None when
        that does not hold (then the group is made anew). A join made ~110 groups
        anew whose rules had only a new SrcIPs."""
        if edge is None or len(parts) != len(self.parts):
            return None
        for new, was in zip(parts, self.parts, strict=True):
            if new.pos != was.pos or new.src is not was.src or new.blocks != was.blocks \
                    or new.internet != was.internet or new.covers != was.covers \
                    or new.inet_sets != was.inet_sets:
                return None
            if any(id(block.atom) in flipped for block in new.blocks):
                return None
        src = parts[0].src.bits
        # The same blocks (checked above) and holders: the same destinations.
        return (Group(key, parts, self.part_holders, self.holders, self.dests, self.atoms),
                Edge(src, edge.dst_bits, edge.dst, edge.internet) if src else None)

    @property
    def first(self) -> IpShape:
        return self.parts[0]


def cap_edge(cap: CapShape, exit_bits: int) -> Edge | None:
    """`PeerGraph.add_rule` of a CapGrant rule."""
    covers = cap.rule.internet or INTERNET.issubset(cap.dst.addrs)
    src, dst = cap.src.bits, cap.dst.bits | (exit_bits if covers else 0)
    return Edge(src, dst, (cap.dst.addrs,), covers) if src and dst else None


class Table:
    """One version of the shared rules: per unit its shapes, merged groups, caps."""

    __slots__ = ("by_key", "cap_holders", "caps", "edges", "fresh", "gone", "group_edges",
                 "groups", "self_parts", "units")

    def __init__(self, units: list[tuple[Shape, ...]], self_parts: list[SelfPart | None],
                 exit_bits: int, previous: Table | None = None,
                 flipped: frozenset[int] = frozenset()) -> None:
        """`previous`, `flipped`: after a node event, a group of the same rules (the
        same shape objects) none of whose atoms changed (ids in `flipped`) is the
        previous version's, holders and edge included (a join re-OR-ed ~450 groups'
        10k-bit sets). `fresh`: the groups made anew; `gone`: the previous version's
        groups under a key this one lacks (what an event compares, without walking
        every key)."""
        self.units = units
        self.self_parts = self_parts
        merged: dict[MergeKey, list[IpShape]] = {}
        caps: list[CapShape] = []
        for shapes in units:
            for shape in shapes:
                if isinstance(shape, IpShape):
                    merged.setdefault(shape.key, []).append(shape)
                else:
                    caps.append(shape)
        self.groups: list[Group] = []
        self.by_key: dict[MergeKey, Group] = {}
        self.group_edges: dict[MergeKey, Edge | None] = {}
        self.fresh: list[Group] = []
        old = previous.by_key if previous is not None else {}
        found: set[int] = set()
        by_first: dict[Position, Group] | None = None  # previous groups by first rule
        for key, listed in merged.items():
            parts = tuple(listed)
            was = old.get(key)
            if was is not None:
                found.add(id(was))
            # Shapes compare by identity (eq=False): one C-level tuple comparison.
            if was is not None and previous is not None and was.parts == parts \
                    and was.atoms.isdisjoint(flipped):
                group, edge = was, previous.group_edges[key]
            else:
                rekeyed = None
                if previous is not None:  # the same rules under a new key?
                    if by_first is None:
                        by_first = {g.parts[0].pos: g for g in previous.groups}
                    same = by_first.get(parts[0].pos)
                    if same is not None:
                        rekeyed = same.rekeyed(key, parts, previous.group_edges[same.key],
                                               flipped)
                group, edge = rekeyed or Group.made(key, parts, exit_bits)
                self.fresh.append(group)
            self.groups.append(group)
            self.by_key[key] = group
            self.group_edges[key] = edge
        self.gone = [g for g in previous.groups if id(g) not in found] if previous else []
        self.caps = caps
        self.cap_holders = tuple(c.dst.bits for c in caps)
        edges = [*self.group_edges.values(), *(cap_edge(c, exit_bits) for c in caps)]
        self.edges = [e for e in edges if e is not None]

    def filter_of(self, i: int, view: NodeView, extras: list[Rule]) -> list[FilterRule]:
        """Node `i`'s packet filter (`pernode.node_filter` over this table)."""
        return [rule if isinstance(rule, FilterRule) else FilterRule(flat(rule[0]), *rule[1:])
                for rule in self._rules(i, view, extras)]

    def filter_key(self, i: int, view: NodeView, extras: list[Rule]) -> list[RuleKey]:
        """`filter_of` to compare: each rule as (SrcIPs, DstPorts, IPProto, CapGrant),
        a merged rule's SrcIPs as the table holds them (maybe chunked). Equal keys,
        equal filters, whichever way a rule was made (a node's own autogroup:self rule
        merged into a shared one before an event may stand alone after it). A node
        event compares filters before and after; flattening every chunked text for
        that was a third of a join."""
        return [(rule.src_ips, rule.dst_ports, rule.ip_proto, rule.cap_grant)
                if isinstance(rule, FilterRule) else (*rule, ())
                for rule in self._rules(i, view, extras)]

    def _rules(self, i: int, view: NodeView, extras: list[Rule]
               ) -> list[FilterRule | tuple[Seq[str], tuple[NetPortRange, ...], tuple[int, ...]]]:
        """The filter's rules in order; merged ones as (SrcIPs as held, DstPorts, IPProto)."""
        bit = 1 << i
        ordinary = not view.routes and not view.is_exit
        chosen: dict[MergeKey, list[NetPortRange]] = {}
        orders: dict[MergeKey, Order] = {}
        for group in self.groups:
            h = group.holders  # see `peers.HIGH`: the test reading fewer digits
            if not ((h >> i & 1) if 2 * i > h.bit_length() else (h & bit)):
                continue
            chosen[group.key] = group.dests.entries_of(bit, view, ordinary)
            orders[group.key] = group.first.order
        extra_rules: list[Rule] = []
        for rule in merge_rules(extras):
            merged = (self.by_key.get((SrcKey(rule.src_ips), rule.proto))
                      if rule.merge_key is not None else None)
            if merged is None:
                extra_rules.append(rule)
                continue
            kept = [e.to_wire() for e in rule.dst if entry_concerns(e.addrs, view)]
            if kept:
                chosen.setdefault(merged.key, []).extend(kept)
                orders[merged.key] = min(orders.get(merged.key, merged.first.order), rule.order)
        items: list[tuple[Order, Position, Any]] = []
        for key, entries in chosen.items():
            if entries:
                first = self.by_key[key].first
                items.append((orders[key], first.pos, (first.src_ips, tuple(entries), key[1])))
        for cap, holders in zip(self.caps, self.cap_holders, strict=True):
            if holders & bit:
                reduced = reduce_caps(cap.rule.caps, view)
                if reduced:
                    items.append((cap.rule.order, cap.pos, cap.rule.to_wire(caps=reduced)))
        for k, rule in enumerate(extra_rules):
            wire = _reduce_extra(rule, view)
            if wire is not None:
                items.append((rule.order, (EXTRA, k), wire))
        items.sort(key=lambda t: (t[0], t[1]))
        return [wire for _, _, wire in items]

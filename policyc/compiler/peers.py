"""Peer visibility (POLICY-FORMAT §5.5) over node bitsets.

A and B are peers iff some rule lets one initiate to the other. Each rule
becomes an edge (source nodes, destination nodes) held as Python ints used
as bitsets, so OR-ing a 10k-node set is one C-level operation. Nodes that
take part in exactly the same edges form one identity class and have their
peer set computed once.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import compress
from typing import Protocol

from policyc.compiler.addrset import AddressSet, union_all
from policyc.compiler.internet import INTERNET
from policyc.compiler.nodes import Node
from policyc.compiler.resolve import Resolver


@dataclass(frozen=True, slots=True)
class Edge:
    src_bits: int
    dst_bits: int
    # What the sources may reach (the union of these sets), to decide which
    # routes they use.
    dst: tuple[AddressSet, ...]
    internet: bool  # the sources may use exit nodes


_BIT_VALUES = bytes.maketrans(b"01", b"\x00\x01")


# HIGH: testing bit i of a slot bitset. `bits & (1 << i)` reads the digits below bit
# i, `bits >> i & 1` those above it; a 100k-slot bitset is 12.5 KB, and a table's
# ~400 group holders (or ~800 edge sides) are ~5-10 MB, not in cache. A joined node
# has the top slot, so `&` read all of each; index code tests the upper half of the
# slots with `>>` (a joined node's test then reads a digit or two).


def bits_to_indexes(bits: int) -> list[int]:
    """Set bit positions, in increasing order, at C speed: a few bits are found in
    the binary text one by one; a dense set (a dense tailnet's peer set: one per
    netmap written) is picked out of all positions by the text's 0/1 bytes, ~6x
    faster at 10k bits than finding each."""
    text = bin(bits)[:1:-1]  # least significant bit first, without the "0b"
    if bits.bit_count() * 6 > len(text):
        return list(compress(range(len(text)), text.encode().translate(_BIT_VALUES)))
    out: list[int] = []
    i = text.find("1")
    while i >= 0:
        out.append(i)
        i = text.find("1", i + 1)
    return out


def indexes_to_bits(indexes: Iterable[int]) -> int:
    bits = 0
    for i in indexes:
        bits |= 1 << i
    return bits


class BitEdge(Protocol):
    """What peer computation reads of an edge (this module's and the live stage's)."""

    @property
    def src_bits(self) -> int: ...

    @property
    def dst_bits(self) -> int: ...


def peer_bitsets_of(edges: Iterable[BitEdge], n: int) -> list[int]:
    """For each of `n` nodes, its peers as a bitset (never itself).

    Nodes in the same edges share one OR-ed set; only the own bit differs. Bits at
    or beyond `n` (slots the caller does not list) are ignored.
    """
    outgoing: list[set[int]] = [set() for _ in range(n)]
    incoming: list[set[int]] = [set() for _ in range(n)]
    dst_ids: dict[int, int] = {}
    src_ids: dict[int, int] = {}
    # Per distinct side, the ids of the other sides it meets: a via grant's sources
    # (thousands of nodes) reach each of its routers in an edge of its own, and
    # their nodes were walked once per edge (10k grants shape: 53M set adds).
    dsts_of: dict[int, set[int]] = defaultdict(set)
    srcs_of: dict[int, set[int]] = defaultdict(set)
    for edge in edges:
        d = dst_ids.setdefault(edge.dst_bits, len(dst_ids))
        s = src_ids.setdefault(edge.src_bits, len(src_ids))
        dsts_of[edge.src_bits].add(d)
        srcs_of[edge.dst_bits].add(s)
    for side, ids in dsts_of.items():
        for i in bits_to_indexes(side):
            if i < n:
                outgoing[i].update(ids)
    for side, ids in srcs_of.items():
        for i in bits_to_indexes(side):
            if i < n:
                incoming[i].update(ids)
    dst_by_id = {v: k for k, v in dst_ids.items()}
    src_by_id = {v: k for k, v in src_ids.items()}
    by_class: dict[tuple[frozenset[int], frozenset[int]], int] = {}
    out: list[int] = []
    for i in range(n):
        key = (frozenset(outgoing[i]), frozenset(incoming[i]))
        bits = by_class.get(key)
        if bits is None:
            bits = 0
            for d in key[0]:
                bits |= dst_by_id[d]
            for s in key[1]:
                bits |= src_by_id[s]
            by_class[key] = bits
        out.append(bits & ~(1 << i))
    return out


class Reach(Protocol):
    """A destination set as usable-route computation reads it (an `AddressSet`, or
    the index's alias atom holding one)."""

    def overlaps(self, other: AddressSet, /) -> bool: ...


class RouteEdge(BitEdge, Protocol):
    """What usable-route computation reads of an edge."""

    @property
    def dst(self) -> tuple[Reach, ...]: ...

    @property
    def internet(self) -> bool: ...


def add_usable_routes(node: Node, p: int, edges: Iterable[RouteEdge],
                      out: dict[tuple[int, int], int]) -> None:
    """OR into `out[(p, route number)]` the sources of `edges` that reach router
    `p` (`node`) and may send into that route; number `len(routes)` is the exit."""
    bit = 1 << p
    for edge in edges:
        if not edge.dst_bits & bit:
            continue
        for k, route in enumerate(node.routes):
            one = AddressSet.of_network(route)
            if any(d.overlaps(one) for d in edge.dst):
                out[(p, k)] |= edge.src_bits
        if node.exit_node and edge.internet:
            out[(p, len(node.routes))] |= edge.src_bits

class PeerGraph:
    """Collects edges, then answers peers and usable routes per node."""

    def __init__(self, resolver: Resolver) -> None:
        self.r = resolver
        self.edges: set[Edge] = set()
        self._src_cache: dict[AddressSet, int] = {}
        self._exit_bits = indexes_to_bits(list(resolver.exit_nodes))

    def src_bits(self, addrs: AddressSet) -> int:
        """Nodes that can send from `addrs`: own addresses, or routes behind them."""
        cached = self._src_cache.get(addrs)
        if cached is None:
            found = self.r.nodes_in(addrs) + self.r.routers_overlapping(addrs)
            cached = indexes_to_bits(found)
            self._src_cache[addrs] = cached
        return cached

    def dst_bits(self, addrs: AddressSet, internet: bool) -> int:
        bits = self.src_bits(addrs)
        if internet or (self._exit_bits and INTERNET.issubset(addrs)):
            bits |= self._exit_bits
        return bits

    def add_rule(self, src: AddressSet, dst: AddressSet | tuple[AddressSet, ...],
                 internet: bool) -> None:
        """An edge from the nodes that can send from `src` to those in `dst` (a
        set, or sets whose union it is: each set's nodes are looked up once)."""
        s = self.src_bits(src)
        if not s:
            return
        sets = (dst,) if isinstance(dst, AddressSet) else dst
        d = 0
        for part in sets:
            d |= self.src_bits(part)
        # The Internet is big: only a union with a part overlapping it can hold it.
        covers = not internet and any(p.overlaps(INTERNET) for p in sets) and (
            INTERNET.issubset(union_all(sets)))
        if internet or covers:
            d |= self._exit_bits
        if d:
            self.edges.add(Edge(s, d, sets, internet or bool(covers)))

    def add_edge(self, src_bits: int, dst_bits: int, dst: AddressSet, internet: bool) -> None:
        if src_bits and dst_bits:
            self.edges.add(Edge(src_bits, dst_bits, (dst,), internet))

    def peers(self) -> list[list[int]]:
        """For every node, the indexes of its peers (never itself), ascending."""
        return [bits_to_indexes(bits) for bits in self.peer_bitsets()]

    def peer_bitsets(self) -> list[int]:
        """For every node, its peers as a bitset (never itself)."""
        return peer_bitsets_of(self.edges, len(self.r.nodes))

    def peer_bits(self, i: int) -> int:
        """Node `i`'s peers as a bitset (never itself), from the edges it takes part in."""
        bit = 1 << i
        bits = 0
        for edge in self.edges:
            if edge.src_bits & bit:
                bits |= edge.dst_bits
            if edge.dst_bits & bit:
                bits |= edge.src_bits
        return bits & ~bit

    def peers_of(self, i: int) -> list[int]:
        """Node `i`'s peers, ascending: one node, without computing the others."""
        return bits_to_indexes(self.peer_bits(i))

    def usable_routes(self) -> dict[tuple[int, int], int]:
        """(router, route number) -> nodes that may send into that route.

        Route number `len(routes)` stands for the exit routes of an exit node.
        """
        out: dict[tuple[int, int], int] = defaultdict(int)
        for p in set(self.r.routers) | set(self.r.exit_nodes):
            add_usable_routes(self.r.nodes[p], p, self.edges, out)
        return out

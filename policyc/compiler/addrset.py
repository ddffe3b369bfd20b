"""Immutable IP address sets as sorted, disjoint, merged integer intervals.

Set algebra runs on `(first, last)` integer pairs, one tuple per address
family, so `10.0.0.0/8` costs as much as a single host. `ipaddress` is used
only at the edges: parsing input and printing Tailscale's textual forms.
"""

from __future__ import annotations

import bisect
import functools
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TypeAlias

from policyc.policy.model import IPAddress, IPNetwork

Interval: TypeAlias = tuple[int, int]  # inclusive
Intervals: TypeAlias = tuple[Interval, ...]
# (first, last, is IPv6) -> the interval's CIDR cover as (text, one-prefix set)
PartsCache: TypeAlias = dict[tuple[int, int, bool], "tuple[tuple[str, AddressSet], ...]"]

V4_MAX = (1 << 32) - 1
V6_MAX = (1 << 128) - 1


def merge(intervals: Iterable[Interval]) -> Intervals:
    """Sort and coalesce overlapping or adjacent intervals."""
    items = sorted(intervals)
    if not items:
        return ()
    out: list[Interval] = []
    cur_first, cur_last = items[0]
    for first, last in items:
        if first <= cur_last + 1:
            if last > cur_last:
                cur_last = last
        else:
            out.append((cur_first, cur_last))
            cur_first, cur_last = first, last
    out.append((cur_first, cur_last))
    return tuple(out)


# A list this many times shorter than the other is bisected into it rather than
# walked beside it: O(short * log long) instead of O(short + long). A node's own
# addresses against a group of thousands is the common case.
FEW = 8


def _intersect(a: Intervals, b: Intervals) -> Intervals:
    if len(a) * FEW < len(b):
        return _intersect_few(a, b)
    if len(b) * FEW < len(a):
        return _intersect_few(b, a)
    out: list[Interval] = []
    i = j = 0
    while i < len(a) and j < len(b):
        first = max(a[i][0], b[j][0])
        last = min(a[i][1], b[j][1])
        if first <= last:
            out.append((first, last))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return tuple(out)


def _subtract(a: Intervals, b: Intervals) -> Intervals:
    out: list[Interval] = []
    j = 0
    for first, last in a:
        cur = first
        while j < len(b) and b[j][1] < cur:
            j += 1
        k = j
        while k < len(b) and b[k][0] <= last:
            if b[k][0] > cur:
                out.append((cur, b[k][0] - 1))
            cur = max(cur, b[k][1] + 1)
            k += 1
        if cur <= last:
            out.append((cur, last))
    return tuple(out)


def _overlaps(a: Intervals, b: Intervals) -> bool:
    """Bisect the shorter list into the longer: O(short * log long)."""
    if len(a) > len(b):
        a, b = b, a
    for first, last in a:
        # Intervals of b starting at or before `last`; the last of them is the
        # only one that can reach back to `first` (b is disjoint and sorted).
        k = bisect.bisect_right(b, (last, V6_MAX + 1))
        if k and b[k - 1][1] >= first:
            return True
    return False


def _intersect_few(few: Intervals, many: Intervals) -> Intervals:
    out: list[Interval] = []
    for first, last in few:
        k = bisect.bisect_right(many, (first, V6_MAX + 1))
        if k and many[k - 1][1] >= first:  # the one starting before `first` reaches it
            k -= 1
        while k < len(many) and many[k][0] <= last:
            out.append((max(first, many[k][0]), min(last, many[k][1])))
            k += 1
    return tuple(out)


def _subset(a: Intervals, b: Intervals) -> bool:
    """Is every interval of `a` inside one of `b`? One merge walk that stops at the
    first miss (b is merged, so an interval of `a` must fit in a single one of b);
    a few intervals are looked up by bisection instead."""
    if a == b:
        return True
    if len(a) * FEW < len(b):
        return all(_inside(first, last, b) for first, last in a)
    j = 0
    for first, last in a:
        # b is sorted and disjoint: skip the intervals ending before `first`.
        while j < len(b) and b[j][1] < first:
            j += 1
        if j == len(b) or b[j][0] > first or b[j][1] < last:
            return False
    return True


def _inside(first: int, last: int, intervals: Intervals) -> bool:
    k = bisect.bisect_right(intervals, (first, V6_MAX + 1))
    return bool(k) and intervals[k - 1][1] >= last


def _cover(first: int, last: int, bits: int) -> list[tuple[int, int]]:
    """Minimal CIDR cover of [first, last] as (network int, prefix length)."""
    out: list[tuple[int, int]] = []
    while first <= last:
        # Largest aligned block starting at `first` that fits in the range.
        size = (first & -first).bit_length() - 1 if first else bits
        while size > 0 and first + (1 << size) - 1 > last:
            size -= 1
        out.append((first, bits - size))
        first += 1 << size
    return out


def _prefix_len(first: int, last: int, bits: int) -> int | None:
    """The prefix length if [first, last] is exactly one CIDR block."""
    size = last - first + 1
    if size & (size - 1) or first & (size - 1):
        return None
    return bits - (size.bit_length() - 1)


@functools.lru_cache(maxsize=1 << 16)
def interval_text(first: int, last: int, v6: bool) -> str:
    bits = 128 if v6 else 32
    make = ipaddress.IPv6Address if v6 else ipaddress.IPv4Address
    if first == last:
        return str(make(first))
    length = _prefix_len(first, last, bits)
    if length is not None:
        return f"{make(first)}/{length}"
    return f"{make(first)}-{make(last)}"


def interval_parts(first: int, last: int, v6: bool, cache: PartsCache
                   ) -> tuple[tuple[str, AddressSet], ...]:
    """One interval's CIDR cover as (wire text, one-prefix set), memoised in `cache`."""
    key = (first, last, v6)
    parts = cache.get(key)
    if parts is None:
        parts = cache[key] = _interval_parts(first, last, v6, cache)
    return parts


def _interval_parts(first: int, last: int, v6: bool, cache: PartsCache
                    ) -> tuple[tuple[str, AddressSet], ...]:
    bits = 128 if v6 else 32
    out: list[tuple[str, AddressSet]] = []
    for network, length in _cover(first, last, bits):
        end = network + (1 << (bits - length)) - 1
        if (network, end) != (first, last):
            # A prefix inside a longer interval: share the object of that exact
            # prefix, made the first time it is met on its own or here.
            key = (network, end, v6)
            same = cache.get(key)
            if same is None:
                same = cache[key] = _interval_parts(network, end, v6, cache)
            out.extend(same)
            continue
        one = AddressSet((), ((network, end),)) if v6 else AddressSet(((network, end),))
        out.append((interval_text(network, end, v6), one))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class AddressSet:
    """A set of IPv4 and IPv6 addresses."""

    v4: Intervals = ()
    v6: Intervals = ()
    _hash: int | None = field(default=None, init=False, repr=False, compare=False)

    def __hash__(self) -> int:
        # Sets key many caches (texts, nodes, prefixes); hash a big one once.
        cached = self._hash
        if cached is None:
            cached = hash((self.v4, self.v6))
            object.__setattr__(self, "_hash", cached)
        return cached

    # --- constructors ---------------------------------------------------------

    @classmethod
    def of_network(cls, network: IPNetwork) -> AddressSet:
        first = int(network.network_address)
        iv = ((first, first + network.num_addresses - 1),)
        return cls((), iv) if network.version == 6 else cls(iv, ())

    @classmethod
    def of_address(cls, address: IPAddress) -> AddressSet:
        value = int(address)
        return cls((), ((value, value),)) if address.version == 6 else cls(((value, value),), ())

    @classmethod
    def of_range(cls, first: IPAddress, last: IPAddress) -> AddressSet:
        if first.version != last.version or int(first) > int(last):
            return EMPTY
        iv = ((int(first), int(last)),)
        return cls((), iv) if first.version == 6 else cls(iv, ())

    @classmethod
    def of_networks(cls, networks: Iterable[IPNetwork]) -> AddressSet:
        return union_all(cls.of_network(n) for n in networks)

    @classmethod
    def of_addresses(cls, addresses: Iterable[IPAddress]) -> AddressSet:
        v4: list[Interval] = []
        v6: list[Interval] = []
        for a in addresses:
            value = int(a)
            (v6 if a.version == 6 else v4).append((value, value))
        # A node's addresses: one of each family, nothing to sort (10k nodes a build).
        return cls(merge(v4) if len(v4) > 1 else tuple(v4),
                   merge(v6) if len(v6) > 1 else tuple(v6))

    @classmethod
    def parse(cls, text: str) -> AddressSet:
        """Tailscale's textual forms: `*`, an address, a CIDR, or `first-last`."""
        text = text.strip()
        if text == "*":
            return ALL
        if "-" in text:
            first, last = text.split("-", 1)
            return cls.of_range(ipaddress.ip_address(first), ipaddress.ip_address(last))
        if "/" in text:
            return cls.of_network(ipaddress.ip_network(text, strict=False))
        return cls.of_address(ipaddress.ip_address(text))

    # --- algebra ----------------------------------------------------------------

    def __or__(self, other: AddressSet) -> AddressSet:
        return self.union(other)

    def __and__(self, other: AddressSet) -> AddressSet:
        return self.intersection(other)

    def __sub__(self, other: AddressSet) -> AddressSet:
        return self.difference(other)

    def union(self, other: AddressSet) -> AddressSet:
        if not other:
            return self
        if not self:
            return other
        return AddressSet(merge(self.v4 + other.v4), merge(self.v6 + other.v6))

    def intersection(self, other: AddressSet) -> AddressSet:
        return AddressSet(_intersect(self.v4, other.v4), _intersect(self.v6, other.v6))

    def difference(self, other: AddressSet) -> AddressSet:
        return AddressSet(_subtract(self.v4, other.v4), _subtract(self.v6, other.v6))

    def overlaps(self, other: AddressSet) -> bool:
        return _overlaps(self.v4, other.v4) or _overlaps(self.v6, other.v6)

    def issubset(self, other: AddressSet) -> bool:
        return _subset(self.v4, other.v4) and _subset(self.v6, other.v6)

    def contains(self, address: IPAddress) -> bool:
        value = int(address)
        intervals = self.v6 if address.version == 6 else self.v4
        return any(first <= value <= last for first, last in intervals)

    def __contains__(self, address: IPAddress) -> bool:
        return self.contains(address)

    def __bool__(self) -> bool:
        return bool(self.v4) or bool(self.v6)

    def __len__(self) -> int:
        """Number of addresses (may be huge for IPv6)."""
        return sum(b - a + 1 for a, b in self.v4) + sum(b - a + 1 for a, b in self.v6)

    @property
    def is_all(self) -> bool:
        return self.v4 == ALL.v4 and self.v6 == ALL.v6

    # --- output ----------------------------------------------------------------

    def to_prefixes(self) -> list[IPNetwork]:
        """The minimal CIDR cover, IPv4 first, each family in address order."""
        out: list[IPNetwork] = []
        for first, last in self.v4:
            out.extend(ipaddress.IPv4Network((n, length)) for n, length in _cover(first, last, 32))
        for first, last in self.v6:
            out.extend(ipaddress.IPv6Network((n, length)) for n, length in _cover(first, last, 128))
        return out

    def prefix_texts(self, *, bare_hosts: bool) -> list[str]:
        """The CIDR cover as text; single addresses without `/32` if `bare_hosts`."""
        out: list[str] = []
        for v6, intervals in ((False, self.v4), (True, self.v6)):
            bits = 128 if v6 else 32
            make = ipaddress.IPv6Address if v6 else ipaddress.IPv4Address
            for first, last in intervals:
                for network, length in _cover(first, last, bits):
                    if bare_hosts and length == bits:
                        out.append(str(make(network)))
                    else:
                        out.append(f"{make(network)}/{length}")
        return out

    def prefix_parts(self, cache: PartsCache | None = None) -> list[tuple[str, AddressSet]]:
        """The CIDR cover as (wire text, one-prefix set); hosts without `/32`.

        `cache` (interval -> its parts) makes the parts of an interval once per
        compilation and gives every equal prefix one shared object, so later stages
        can key by identity: node address sets share most of their intervals.
        """
        if cache is None:
            cache = {}
        out: list[tuple[str, AddressSet]] = []
        for v6, intervals in ((False, self.v4), (True, self.v6)):
            for first, last in intervals:
                key = (first, last, v6)
                parts = cache.get(key)
                if parts is None:
                    parts = cache[key] = _interval_parts(first, last, v6, cache)
                out.extend(parts)
        return out

    def texts(self) -> list[str]:
        """Tailscale's SrcIPs form: one entry per interval, string-sorted."""
        if self.is_all:
            return ["*"]
        out = [interval_text(a, b, False) for a, b in self.v4]
        out.extend(interval_text(a, b, True) for a, b in self.v6)
        return sorted(out)

    def __str__(self) -> str:
        return ", ".join(self.texts()) if self else "{}"


def union_all(sets: Iterable[AddressSet]) -> AddressSet:
    """Union of many sets with one sort per family (not pairwise merges).

    The same set object given many times (a prefix shared by many entries) is
    taken once.
    """
    distinct: dict[int, AddressSet] = {}
    for s in sets:
        if s.v4 or s.v6:
            distinct[id(s)] = s
    if len(distinct) <= 1:
        # Already merged: a rule naming one group is common.
        return next(iter(distinct.values())) if distinct else EMPTY
    v4: list[Interval] = []
    v6: list[Interval] = []
    for s in distinct.values():
        v4 += s.v4
        v6 += s.v6
    return AddressSet(merge(v4), merge(v6))


def of_points(v4: Iterable[int], v6: Iterable[int]) -> AddressSet:
    """The set of single addresses given as integers (any order, repeats allowed)."""
    return AddressSet(_runs(v4), _runs(v6))


def _runs(points: Iterable[int]) -> Intervals:
    values = sorted(set(points))
    if not values:
        return ()
    out: list[Interval] = []
    start = prev = values[0]
    for value in values:
        if value > prev + 1:
            out.append((start, prev))
            start = value
        prev = value
    out.append((start, prev))
    return tuple(out)


EMPTY = AddressSet()
ALL = AddressSet(((0, V4_MAX),), ((0, V6_MAX),))


# The interval algebra under public names, for other integer spaces that want the
# same sorted-disjoint-interval representation (e.g. protocol x port in analysis/).
intersect_intervals = _intersect
subtract_intervals = _subtract
intervals_overlap = _overlaps
intervals_subset = _subset

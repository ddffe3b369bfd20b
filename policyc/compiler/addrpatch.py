"""Local edits of address sets and of what is derived from them, for node events.

A node event adds or removes one node's few addresses from identity alias sets
(a group, a tag, autogroup:member). Rebuilding a 5,000-address set, its SrcIPs
texts or its DstPorts prefixes costs O(set); these functions splice only the
intervals next to the address that moved (O(log set) to find), each kept in
chunks (chunks.py) so a splice copies one chunk, and an event costs O(aliases
it touches), not O(their sizes).

Everything here is exact: a patched value equals the one computed from scratch
(tests/compiler/test_addrpatch.py checks that against `AddressSet`).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable
from itertools import chain, compress, repeat

from policyc.compiler.addrset import (
    AddressSet,
    Interval,
    Intervals,
    PartsCache,
    _cover,
    interval_parts,
    interval_text,
)
from policyc.compiler.chunks import Chunks, Loc, Seq, chunked

Part = tuple[str, AddressSet]  # DstPorts wire text and its one-prefix set


def _near(family: Chunks[Interval], point: int) -> tuple[Loc, Loc, Intervals]:
    """[lo, hi) of the intervals overlapping [point - 1, point + 1], and those."""
    lo = family.left(point - 1)  # the first interval starting at point - 1 or later
    before = family.before(lo)
    if before is not None and before[1] >= point - 1:
        lo = family.previous(lo)
    hi, near = lo, []
    item = family.at(hi)
    while item is not None and item[0] <= point + 1:
        near.append(item)
        hi = family.next(hi)
        item = family.at(hi)
    return lo, hi, tuple(near)


def _spliced(old: Intervals, point: int, add: bool) -> Intervals:
    """The intervals replacing `old` (those overlapping [point - 1, point + 1])."""
    if add:
        first = min([point, *(a for a, _ in old)])
        last = max([point, *(b for _, b in old)])
        # Old neighbours overlapping [p-1, p+1] are adjacent to p or contain it: one run.
        return ((first, last),)
    pieces: list[Interval] = []
    for a, b in old:
        if a <= point - 1:
            pieces.append((a, min(b, point - 1)))
        if b >= point + 1:
            pieces.append((max(a, point + 1), b))
    return tuple(pieces)


class PointEdit:
    """One address added to or removed from a set: the intervals around it before
    and after (`old_near`, `new_near`), which is all the texts and prefixes need."""

    __slots__ = ("add", "new_near", "old_near", "point", "v6")

    def __init__(self, point: int, v6: bool, add: bool, old_near: Intervals,
                 new_near: Intervals) -> None:
        self.v6, self.point, self.add = v6, point, add
        self.old_near, self.new_near = old_near, new_near


Families = tuple[Chunks[Interval], Chunks[Interval]]  # a set's v4 and v6 intervals, chunked


first_of: Callable[[Interval], int] = operator.itemgetter(0)  # C-level, for bisect's key


def chunked_families(addrs: AddressSet) -> Families:
    return Chunks.of(addrs.v4, first_of), Chunks.of(addrs.v6, first_of)


def edit_families(families: Families, points: Iterable[tuple[int, bool]], add: bool,
                  edits: list[PointEdit]) -> Families:
    """The set (as chunked families) with each (address int, is v6) added or removed,
    one edit per point appended to `edits`: each splice copies one chunk of
    intervals, not the family (a copy of thousands of interval tuples touches each
    one's reference count, which was most of a join's splices)."""
    v4, v6 = families
    for point, is6 in points:
        family = v6 if is6 else v4
        lo, hi, old = _near(family, point)
        new = _spliced(old, point, add)
        edits.append(PointEdit(point, is6, add, old, new))
        if is6:
            v6 = family.splice(lo, hi, new)
        else:
            v4 = family.splice(lo, hi, new)
    return v4, v6


def edit_points(addrs: AddressSet, points: Iterable[tuple[int, bool]], add: bool
                ) -> tuple[AddressSet, list[PointEdit]]:
    """`addrs` with each (address int, is v6) added or removed, one edit per point."""
    edits: list[PointEdit] = []
    v4, v6 = edit_families(chunked_families(addrs), points, add, edits)
    return AddressSet(v4.flat(), v6.flat()), edits


def _family_set(intervals: Intervals, v6: bool) -> AddressSet:
    return AddressSet((), intervals) if v6 else AddressSet(intervals, ())


def patch_texts(texts: Seq[str], edits: list[PointEdit],
                texts_of: Callable[[AddressSet], list[str]]) -> Chunks[str]:
    """SrcIPs texts (sorted, unique) after `edits`: drop the texts of the old intervals
    next to each point, add those of the new ones (`texts_of`: the resolver's texts,
    against the current node addresses). Chunked: an edit copies one chunk."""
    out = chunked(texts)
    for edit in edits:
        added = texts_of(_family_set(edit.new_near, edit.v6))
        kept = set(added)
        for first, last in edit.old_near:
            for text in _written(out, first, last, edit.v6):
                if text in kept:  # written the same after the edit: stays
                    continue
                c, j = out.left(text)
                if out.at((c, j)) == text:
                    out = out.splice((c, j), (c, j + 1), ())
        for text in added:
            at = out.left(text)
            if out.at(at) != text:
                out = out.splice(at, at, (text,))
    return out


def _written(texts: Chunks[str], first: int, last: int, v6: bool) -> list[str]:
    """How [first, last] was written in `texts`: as one text, or address by address
    (when every address in it was a node's)."""
    whole = interval_text(first, last, v6)
    if first == last or texts.at(texts.left(whole)) == whole:
        return [whole]
    return [interval_text(a, a, v6) for a in range(first, last + 1)]


def cover_parts(intervals: Intervals, v6: bool) -> list[Part]:
    """DstPorts prefixes of intervals (like `AddressSet.prefix_parts`, one family)."""
    bits = 128 if v6 else 32
    out: list[Part] = []
    for first, last in intervals:
        for network, length in _cover(first, last, bits):
            end = network + (1 << (bits - length)) - 1
            one = AddressSet((), ((network, end),)) if v6 else AddressSet(((network, end),))
            out.append((interval_text(network, end, v6), one))
    return out


def part_start(part: Part) -> int:
    one = part[1]
    return (one.v6 or one.v4)[0][0]


def patch_parts(parts4: Seq[Part], parts6: Seq[Part], edits: list[PointEdit]
                ) -> tuple[Chunks[Part], Chunks[Part]]:
    """Prefix parts per family after `edits`: the cover of the intervals next to each
    point is replaced; elsewhere the cover is unchanged. Chunked, as texts."""
    out4, out6 = chunked(parts4, part_start), chunked(parts6, part_start)
    for edit in edits:
        parts = out6 if edit.v6 else out4
        if edit.old_near:
            lo = parts.left(edit.old_near[0][0])
            hi = parts.right(edit.old_near[-1][1])
        else:
            lo = hi = parts.left(edit.point)
        patched = parts.splice(lo, hi, cover_parts(edit.new_near, edit.v6))
        if edit.v6:
            out6 = patched
        else:
            out4 = patched
    return out4, out6


class IntervalParts:
    """Prefix parts per interval, made once while building: groups share most
    of their intervals, and equal prefixes become one object (`interval_parts`).
    Looked up per family by the interval tuples themselves, in C-level passes."""

    __slots__ = ("_v4", "_v6", "shared")

    def __init__(self) -> None:
        self.shared: PartsCache = {}
        self._v4: dict[Interval, tuple[Part, ...]] = {}
        self._v6: dict[Interval, tuple[Part, ...]] = {}

    def split(self, addrs: AddressSet) -> tuple[tuple[Part, ...], tuple[Part, ...]]:
        return self._family(addrs.v4, False), self._family(addrs.v6, True)

    def _family(self, intervals: Intervals, v6: bool) -> tuple[Part, ...]:
        known = self._v6 if v6 else self._v4
        found = list(map(known.get, intervals))
        for k in compress(range(len(found)), map(operator.is_, found, repeat(None))):
            first, last = intervals[k]
            found[k] = known[intervals[k]] = interval_parts(first, last, v6, self.shared)
        return tuple(chain.from_iterable(found))  # type: ignore[arg-type]


def split_parts(addrs: AddressSet, cache: IntervalParts | None = None
                ) -> tuple[tuple[Part, ...], tuple[Part, ...]]:
    """Prefix parts per family (through `cache` while building)."""
    if cache is not None:
        return cache.split(addrs)
    return tuple(cover_parts(addrs.v4, False)), tuple(cover_parts(addrs.v6, True))


def bits_of(indexes: Iterable[int]) -> int:
    """A bitset of node indexes, built in one C-level conversion."""
    indexes = list(indexes)
    if not indexes:
        return 0
    if len(indexes) > 64:  # an alias's thousands of nodes: one digit per node, parsed in C
        top = max(indexes)
        digits = bytearray(b"0") * (top + 1)
        for i in indexes:
            digits[top - i] = 49  # "1"
        return int(digits, 2)
    buf = bytearray(max(indexes) // 8 + 1)
    for i in indexes:
        buf[i >> 3] |= 1 << (i & 7)
    return int.from_bytes(buf, "little")

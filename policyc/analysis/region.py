"""Set arithmetic on unions of boxes: what one set of boxes holds and another does not.

A union of boxes (src x dst x services) has no compact normal form, so the
difference A - B is computed by splitting the source axis into classes:
addresses that belong to exactly the same boxes' sources (a sweep over the
interval ends of every distinct source set). Within one class the question is
two-dimensional; the service axis is split the same way, and for each
service segment the destinations left over are one address-set subtraction.
The result is exact: `Piece`s whose union is precisely A - B.

Boxes of A that B also holds verbatim cannot contribute and are dropped
first, and boxes of B that miss the span of what is left are ignored, so
the cost of comparing two versions of a policy follows what changed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from policyc.analysis.access import Box
from policyc.analysis.reference import RuleRef
from policyc.analysis.services import Services
from policyc.compiler.addrset import AddressSet, Interval, merge, union_all
from policyc.diagnostics.source import NO_SPAN
from policyc.policy.model import IPAddress


@dataclass(frozen=True, slots=True)
class Piece:
    """Part of a difference: every packet src x dst x services, and the rules of A
    (the minuend) that allow it."""

    src: AddressSet
    dst: AddressSet
    services: Services
    rules: tuple[RuleRef, ...]

    def contains(self, src: IPAddress, dst: IPAddress, proto: int, port: int | None) -> bool:
        return src in self.src and dst in self.dst and self.services.contains(proto, port)


def subtract(a: Sequence[Box], b: Sequence[Box]) -> list[Piece]:
    """The packets some box of `a` holds and no box of `b` holds."""
    held = {box.key for box in b}
    minuend = [box for box in a if box.key not in held]
    if not minuend:
        return []
    span_src = union_all(box.src for box in minuend)
    span_dst = union_all(box.dst for box in minuend)
    span_svc = Services(merge(i for box in minuend for i in box.services.intervals))
    subtrahend = [box for box in b if box.src.overlaps(span_src)
                  and box.dst.overlaps(span_dst) and box.services.overlaps(span_svc)]
    pieces: list[Piece] = []
    boxes = (*minuend, *subtrahend)
    unions: dict[frozenset[int], AddressSet] = {}  # shared by all source classes
    for (a_ids, b_ids), src in _source_classes(minuend, subtrahend).items():
        if not a_ids:
            continue
        ids = sorted(a_ids) + [len(minuend) + j for j in sorted(b_ids)]
        for dst, services, rules in _subtract_2d(boxes, ids, len(minuend), unions):
            pieces.append(Piece(src, dst, services, rules))
    return pieces


def intersecting(boxes: Sequence[Box], src: AddressSet, dst: AddressSet,
                 services: Services) -> Box | None:
    """The first box that holds some packet of src x dst x services."""
    for box in boxes:
        if box.src.overlaps(src) and box.dst.overlaps(dst) and box.services.overlaps(services):
            return box
    return None


# --- the source axis ------------------------------------------------------------------


Signature = tuple[frozenset[int], frozenset[int]]


def _source_classes(a: Sequence[Box], b: Sequence[Box]) -> dict[Signature, AddressSet]:
    """Addresses grouped by which boxes of a and of b include them as a source."""
    distinct: dict[AddressSet, int] = {}
    a_of: list[int] = [distinct.setdefault(box.src, len(distinct)) for box in a]
    b_of: list[int] = [distinct.setdefault(box.src, len(distinct)) for box in b]
    a_boxes: dict[int, list[int]] = defaultdict(list)
    b_boxes: dict[int, list[int]] = defaultdict(list)
    for i, s in enumerate(a_of):
        a_boxes[s].append(i)
    for j, s in enumerate(b_of):
        b_boxes[s].append(j)
    sets = list(distinct)
    out: dict[Signature, tuple[list[Interval], list[Interval]]] = {}
    for v6 in (False, True):
        for members, first, last in sweep([s.v6 if v6 else s.v4 for s in sets]):
            signature = (frozenset(i for m in members for i in a_boxes.get(m, ())),
                         frozenset(j for m in members for j in b_boxes.get(m, ())))
            out.setdefault(signature, ([], []))[1 if v6 else 0].append((first, last))
    return {sig: AddressSet(merge(v4), merge(v6)) for sig, (v4, v6) in out.items()}


def sweep(families: Sequence[Sequence[Interval]]) -> list[tuple[frozenset[int], int, int]]:
    """Split the line at every interval end: (which inputs cover it, first, last) for
    each covered elementary segment. Each input must be sorted and disjoint."""
    events: list[tuple[int, int, int]] = []
    for k, intervals in enumerate(families):
        for first, last in intervals:
            events.append((first, 1, k))
            events.append((last + 1, -1, k))
    events.sort()
    out: list[tuple[frozenset[int], int, int]] = []
    active: set[int] = set()
    members: frozenset[int] = frozenset()
    position = 0
    i = 0
    while i < len(events):
        point = events[i][0]
        if active and point > position:
            out.append((members, position, point - 1))
        while i < len(events) and events[i][0] == point:
            _, delta, k = events[i]
            if delta > 0:
                active.add(k)
            else:
                active.discard(k)
            i += 1
        members = frozenset(active)
        position = point
    return out


# --- destinations x services within one source class ------------------------------------


def _subtract_2d(boxes: Sequence[Box], ids: list[int], minuend: int,
                 unions: dict[frozenset[int], AddressSet],
                 ) -> list[tuple[AddressSet, Services, tuple[RuleRef, ...]]]:
    """(dst, services, rules) pieces of one source class: the union of its minuend
    boxes' (dst x services) minus its subtrahend boxes'. `ids` index `boxes`; those
    below `minuend` are the minuend's. `unions` memoises destination unions."""
    def union(members: frozenset[int]) -> AddressSet:
        found = unions.get(members)
        if found is None:
            found = unions[members] = union_all(boxes[m].dst for m in members)
        return found

    segments = sweep([boxes[i].services.intervals for i in ids])
    left_over: dict[frozenset[int], AddressSet] = {}
    by_dst: dict[AddressSet, tuple[list[Interval], list[RuleRef]]] = {}
    for local, first, last in segments:
        members = frozenset(ids[k] for k in local)
        from_a = frozenset(m for m in members if m < minuend)
        if not from_a:
            continue
        dst = left_over.get(members)
        if dst is None:
            from_b = members - from_a
            dst = union(from_a) - union(from_b) if from_b else union(from_a)
            left_over[members] = dst
        if not dst:
            continue
        intervals, rules = by_dst.setdefault(dst, ([], []))
        intervals.append((first, last))
        for m in sorted(from_a):
            if boxes[m].rule not in rules and boxes[m].dst.overlaps(dst):
                rules.append(boxes[m].rule)
    return [(dst, Services(merge(iv)), tuple(rules)) for dst, (iv, rules) in by_dst.items()]


def covers(boxes: Sequence[Box], src: AddressSet, dst: AddressSet,
           services: Services) -> list[Piece]:
    """What of src x dst x services no box holds (empty: the boxes cover it all)."""
    if not (src and dst and services):
        return []
    whole = Box(src, dst, services, RuleRef("default", -1, -1, None, NO_SPAN, NO_SPAN))
    return subtract([whole], boxes)

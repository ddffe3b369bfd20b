"""Set arithmetic on unions of boxes: what one set of boxes holds and another does not.

A union of boxes (src x dst x services) has no compact normal form, so the
difference A - B is computed by splitting the source axis into classes:
addresses that belong to exactly the same boxes' sources. Addresses are
atoms of the boxes' sets (atoms.py: each distinct set is a bit mask), so a
class is the atoms with one signature, found once per atom rather than per
address. Within one class the question is two-dimensional; the service axis
is split by a sweep, and for each service segment the destinations left over
are one mask subtraction. The result is exact: `Piece`s whose union is
precisely A - B.

Boxes of A that B also holds verbatim cannot contribute and are dropped
first, and boxes of B that miss the span of what is left are ignored, so
the cost of comparing two versions of a policy follows what changed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from policyc.analysis.access import Box
from policyc.analysis.atoms import Atoms, sweep
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


def subtract(a: Sequence[Box], b: Sequence[Box], atoms: Atoms | None = None) -> list[Piece]:
    """The packets some box of `a` holds and no box of `b` holds."""
    found = subtract_masks(a, b, atoms)
    if found is None:
        return []
    atoms, pieces = found
    return [Piece(atoms.to_set(p.src), atoms.to_set(p.dst), p.services, p.rules)
            for p in pieces]


@dataclass(frozen=True, slots=True)
class MaskPiece:
    """A `Piece` whose addresses are atom masks (see atoms.py)."""

    src: int
    dst: int
    services: Services
    rules: tuple[RuleRef, ...]


def operands(a: Sequence[Box], b: Sequence[Box]) -> tuple[list[Box], list[Box]]:
    """The boxes that matter to a - b: those of `a` that `b` does not hold verbatim,
    and those of `b` that meet the span of what is left."""
    held = {box.key for box in b}
    minuend = [box for box in a if box.key not in held]
    if not minuend:
        return [], []
    span_src = union_all(box.src for box in minuend)
    span_dst = union_all(box.dst for box in minuend)
    span_svc = Services(merge(i for box in minuend for i in box.services.intervals))
    subtrahend = [box for box in b if box.src.overlaps(span_src)
                  and box.dst.overlaps(span_dst) and box.services.overlaps(span_svc)]
    return minuend, subtrahend


def subtract_masks(a: Sequence[Box], b: Sequence[Box], atoms: Atoms | None = None,
                   ) -> tuple[Atoms, list[MaskPiece]] | None:
    """`subtract` with the addresses as masks over `atoms` (made here if not given;
    given, it must hold every source and destination set of `operands(a, b)`). None
    when every box of `a` is also one of `b`."""
    return subtract_operands(*operands(a, b), atoms)


def subtract_operands(minuend: Sequence[Box], subtrahend: Sequence[Box],
                      atoms: Atoms | None = None) -> tuple[Atoms, list[MaskPiece]] | None:
    """`subtract_masks` of what `operands` found."""
    if not minuend:
        return None
    boxes = (*minuend, *subtrahend)
    if atoms is None:
        atoms = Atoms(s for box in boxes for s in (box.src, box.dst))
    dst_masks = [atoms.mask(box.dst) for box in boxes]
    rule_ids: dict[RuleRef, int] = {}  # equal rules (self boxes of one entry) share an id
    box_rules = [rule_ids.setdefault(box.rule, len(rule_ids)) for box in boxes]
    pieces: list[MaskPiece] = []
    unions: dict[frozenset[int], int] = {}  # shared by all source classes
    for (a_ids, b_ids), src in _source_classes(atoms, minuend, subtrahend):
        if not a_ids:
            continue
        ids = sorted(a_ids) + [len(minuend) + j for j in sorted(b_ids)]
        for dst, services, rules in _subtract_2d(boxes, dst_masks, box_rules, ids,
                                                 len(minuend), unions):
            pieces.append(MaskPiece(src, dst, services, rules))
    return atoms, pieces


def intersecting(boxes: Sequence[Box], src: AddressSet, dst: AddressSet,
                 services: Services) -> Box | None:
    """The first box that holds some packet of src x dst x services."""
    for box in boxes:
        if box.src.overlaps(src) and box.dst.overlaps(dst) and box.services.overlaps(services):
            return box
    return None


# --- the source axis ------------------------------------------------------------------


Signature = tuple[frozenset[int], frozenset[int]]


def _source_classes(atoms: Atoms, a: Sequence[Box], b: Sequence[Box],
                    ) -> list[tuple[Signature, int]]:
    """Atoms grouped by which boxes of a and of b include them as a source: (signature,
    mask) per class, in the order of the classes' lowest addresses."""
    a_boxes: dict[int, list[int]] = defaultdict(list)  # input set -> boxes with it as src
    b_boxes: dict[int, list[int]] = defaultdict(list)
    for i, box in enumerate(a):
        a_boxes[atoms.index(box.src)].append(i)
    for j, box in enumerate(b):
        b_boxes[atoms.index(box.src)].append(j)
    out: dict[Signature, int] = {}
    for atom, members in enumerate(atoms.members):
        a_ids = frozenset(i for m in members for i in a_boxes.get(m, ()))
        b_ids = frozenset(j for m in members for j in b_boxes.get(m, ()))
        if not (a_ids or b_ids):
            continue  # a destination-only atom
        signature = (a_ids, b_ids)
        out[signature] = out.get(signature, 0) | (1 << atom)
    return list(out.items())


# --- destinations x services within one source class ------------------------------------


def _subtract_2d(boxes: Sequence[Box], dst_masks: Sequence[int], box_rules: Sequence[int],
                 ids: list[int], minuend: int, unions: dict[frozenset[int], int],
                 ) -> list[tuple[int, Services, tuple[RuleRef, ...]]]:
    """(dst, services, rules) pieces of one source class: the union of its minuend
    boxes' (dst x services) minus its subtrahend boxes'. `ids` index `boxes`; those
    below `minuend` are the minuend's; `box_rules` numbers their rules. `unions`
    memoises destination unions."""
    def union(members: frozenset[int]) -> int:
        found = unions.get(members)
        if found is None:
            found = 0
            for m in members:
                found |= dst_masks[m]
            unions[members] = found
        return found

    # Boxes share a few distinct service sets: sweep those, not every box's.
    by_services: dict[Services, list[int]] = {}
    for i in ids:
        by_services.setdefault(boxes[i].services, []).append(i)
    holders = list(by_services.values())
    segments = sweep([services.intervals for services in by_services])
    left_over: dict[frozenset[int], int] = {}
    by_dst: dict[int, _Found] = {}
    for local, first, last in segments:
        members = frozenset(i for k in local for i in holders[k])
        from_a = frozenset(m for m in members if m < minuend)
        if not from_a:
            continue
        dst = left_over.get(members)
        if dst is None:
            from_b = members - from_a
            dst = union(from_a) & ~union(from_b) if from_b else union(from_a)
            left_over[members] = dst
        if not dst:
            continue
        found = by_dst.get(dst)
        if found is None:
            found = by_dst[dst] = _Found([], [], set(), set())
        found.intervals.append((first, last))
        if from_a in found.seen_boxes:
            continue  # these boxes' rules are in already
        found.seen_boxes.add(from_a)
        for m in sorted(from_a):
            if box_rules[m] not in found.seen_rules and dst_masks[m] & dst:
                found.seen_rules.add(box_rules[m])
                found.rules.append(boxes[m].rule)
    return [(dst, Services(merge(f.intervals)), tuple(f.rules)) for dst, f in by_dst.items()]


@dataclass(slots=True)
class _Found:
    """One destination's pieces of one source class, while they are collected."""

    intervals: list[Interval]
    rules: list[RuleRef]
    seen_rules: set[int]
    seen_boxes: set[frozenset[int]]


def covers(boxes: Sequence[Box], src: AddressSet, dst: AddressSet,
           services: Services) -> list[Piece]:
    """What of src x dst x services no box holds (empty: the boxes cover it all)."""
    if not (src and dst and services):
        return []
    whole = Box(src, dst, services, RuleRef("default", -1, -1, None, NO_SPAN, NO_SPAN))
    return subtract([whole], boxes)

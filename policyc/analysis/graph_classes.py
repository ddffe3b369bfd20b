"""The access map's cells by source class: what each class of addresses reaches.

Every set involved (the boxes' sources and destinations, the rows, the
columns' delivered targets) is a union of atoms (atoms.py), and every service
set a union of service segments, so sets are bit masks and the algebra is
integer `|` and `&`. Addresses that lie in exactly the same boxes' sources (a
*source class*, its signature being those sources) reach exactly the same
things, so what a class opens towards each column is worked out once per
class, from per-source tables made once per (source, destination) pair of
boxes. A row is then its classes combined: `full` is the intersection over
them, `some` the union, and its rules those of every box whose source touches
the row and whose destination touches the column.

The cost follows boxes + classes x columns + rows x their classes x columns,
never rows x columns x boxes: a dense 1k-node policy (~18,000 boxes, ~550
distinct sources, ~360 atoms) is a few hundred thousand integer operations.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from policyc.analysis.access import Box
from policyc.analysis.atoms import Atoms, bits, sweep
from policyc.analysis.reference import RuleRef
from policyc.analysis.services import Services
from policyc.compiler.addrset import AddressSet, merge

CellMasks = tuple[int, int, int]  # (full services, some services, rules) as masks
RowReach = tuple[CellMasks, ...]  # one per column


class ServiceSegments:
    """The segments a family of service sets splits the service line into; each set
    of the family, and every union and intersection of them, is a mask of segments."""

    def __init__(self, family: Iterable[Services]) -> None:
        distinct = list(dict.fromkeys(family))
        self.segments: list[tuple[int, int]] = []
        masks = [0] * len(distinct)
        for members, first, last in sweep([s.intervals for s in distinct]):
            bit = 1 << len(self.segments)
            self.segments.append((first, last))
            for k in members:
                masks[k] |= bit
        self._masks = dict(zip(distinct, masks, strict=True))
        self._sets: dict[int, Services] = {}

    def mask(self, services: Services) -> int:
        return self._masks[services]

    def to_services(self, mask: int) -> Services:
        found = self._sets.get(mask)
        if found is None:
            found = self._sets[mask] = Services(merge(self.segments[k] for k in bits(mask)))
        return found


class Reach:
    """Per source class and column: the services it opens and the rules that allow them."""

    def __init__(self, boxes: Sequence[Box], rows: Sequence[AddressSet],
                 targets: Sequence[AddressSet]) -> None:
        self._atoms = atoms = Atoms([*(b.src for b in boxes), *(b.dst for b in boxes),
                                     *rows, *targets])
        self._segments = ServiceSegments(b.services for b in boxes)
        self._columns = len(targets)
        rule_ids: dict[tuple[str, int], int] = {}  # a rule's entries show as one rule
        rules: list[RuleRef] = []
        by_pair: dict[tuple[int, int], list[int]] = {}  # (src, dst) -> [services, rules]
        for box in boxes:
            rule = rule_ids.get((box.rule.kind, box.rule.index))
            if rule is None:
                rule = rule_ids[(box.rule.kind, box.rule.index)] = len(rules)
                rules.append(box.rule)
            pair = by_pair.setdefault((atoms.index(box.src), atoms.index(box.dst)), [0, 0])
            pair[0] |= self._segments.mask(box.services)
            pair[1] |= 1 << rule
        self.rules: tuple[RuleRef, ...] = tuple(rules)
        target_masks = [atoms.mask(t) for t in targets]
        dst_columns: dict[int, list[int]] = {}  # dst -> the columns whose targets it meets
        by_src: dict[int, list[list[int]]] = {}  # src -> per column [services, rules]
        for (src, dst), (services, rule_mask) in by_pair.items():
            columns = dst_columns.get(dst)
            if columns is None:
                dst_mask = atoms.mask(atoms.sets[dst])
                columns = dst_columns[dst] = [c for c, t in enumerate(target_masks)
                                              if t & dst_mask]
            per_column = by_src.get(src)
            if per_column is None:
                per_column = by_src[src] = [[0, 0] for _ in targets]
            for c in columns:
                per_column[c][0] |= services
                per_column[c][1] |= rule_mask
        self._by_src = by_src
        self._source_masks = [atoms.mask(atoms.sets[src]) for src in by_src]
        self._class_of: list[int] = []  # per atom, its source class
        self._classes: list[tuple[tuple[int, int], ...]] = []  # per class, per column
        known: dict[frozenset[int], int] = {}
        for members in atoms.members:
            signature = frozenset(m for m in members if m in by_src)
            k = known.get(signature)
            if k is None:
                k = known[signature] = len(self._classes)
                self._classes.append(self._class_reach(signature))
            self._class_of.append(k)
        self._rows: dict[frozenset[int], RowReach] = {}

    def _class_reach(self, signature: frozenset[int]) -> tuple[tuple[int, int], ...]:
        """(services, rules) per column of the addresses in exactly these sources."""
        out = [[0, 0] for _ in range(self._columns)]
        for src in signature:
            for c, (services, rules) in enumerate(self._by_src[src]):
                out[c][0] |= services
                out[c][1] |= rules
        return tuple((services, rules) for services, rules in out)

    def row(self, addrs: AddressSet) -> RowReach:
        """Per column (full, some, rules) masks of a row's addresses (one of `rows`)."""
        atoms = self._atoms
        classes = frozenset(self._class_of[a] for a in atoms.atoms_of[atoms.index(addrs)])
        found = self._rows.get(classes)
        if found is None:
            full = [-1] * self._columns
            some = [0] * self._columns
            rules = [0] * self._columns
            for k in classes:
                for c, (services, rule_mask) in enumerate(self._classes[k]):
                    full[c] &= services
                    some[c] |= services
                    rules[c] |= rule_mask
            found = self._rows[classes] = tuple(zip(full, some, rules, strict=True))
        return found

    def sources(self, addrs: AddressSet) -> tuple[int, ...]:
        """The boxes' sources (numbered as in `source_rules`) that touch a row's addresses:
        a cell's rules are the union of theirs towards its column."""
        mask = self._atoms.mask(addrs)
        return tuple(k for k, source in enumerate(self._source_masks) if source & mask)

    def source_rules(self) -> list[dict[int, int]]:
        """Per source, column -> the rules (mask) of its boxes whose destination
        touches the column."""
        return [{c: rules for c, (_, rules) in enumerate(self._by_src[src]) if rules}
                for src in self._by_src]

    def services(self, mask: int) -> Services:
        return self._segments.to_services(mask)

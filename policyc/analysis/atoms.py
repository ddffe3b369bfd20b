"""Address sets as bit masks over the atoms of a finite family of sets.

A diff or a proof only ever combines the few thousand distinct address
sets its boxes name (groups, tags, owners' nodes, hosts...). Those sets
split the address space into *atoms*: maximal groups of addresses that
belong to exactly the same sets of the family (for a tailnet, typically
the nodes that share every group, tag and owner: a node-class). Every set
the family can build by union, intersection and difference is a union of
atoms, so it is one Python int with a bit per atom, and the set algebra of
the subtraction runs at machine speed instead of interval walks.

Atoms are numbered in the order of their first (lowest) address, IPv4
before IPv6, which keeps every "in address order" iteration of the callers
unchanged. `to_set` turns a mask back into an exact `AddressSet`.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator, Sequence

from policyc.compiler.addrset import AddressSet, Interval, merge


class Atoms:
    """The atoms of a family of address sets; `mask(s)` for each set of it."""

    def __init__(self, family: Iterable[AddressSet]) -> None:
        self.sets: list[AddressSet] = list(dict.fromkeys(family))
        self._index = {s: k for k, s in enumerate(self.sets)}
        # Per atom: the input sets holding it, and its intervals per family.
        self.members: list[frozenset[int]] = []
        self.v4: list[list[Interval]] = []
        self.v6: list[list[Interval]] = []
        by_members: dict[frozenset[int], int] = {}
        for v6 in (False, True):
            for members, first, last in sweep([s.v6 if v6 else s.v4 for s in self.sets]):
                atom = by_members.get(members)
                if atom is None:
                    atom = by_members[members] = len(self.members)
                    self.members.append(members)
                    self.v4.append([])
                    self.v6.append([])
                (self.v6 if v6 else self.v4)[atom].append((first, last))
        atoms_of: list[list[int]] = [[] for _ in self.sets]
        for atom, members in enumerate(self.members):
            for k in members:
                atoms_of[k].append(atom)
        self.atoms_of: list[list[int]] = atoms_of  # per input set, its atoms in order
        self._masks = [_mask_of(atoms) for atoms in atoms_of]
        self._sets: dict[int, AddressSet] = {}
        self._segments: list[tuple[list[int], list[int], list[int]]] | None = None

    def __len__(self) -> int:
        return len(self.members)

    def index(self, addrs: AddressSet) -> int:
        """The position of `addrs` in the family (`members` speak of positions)."""
        return self._index[addrs]

    def mask(self, addrs: AddressSet) -> int:
        """The atoms of `addrs`, which must be a set of the family."""
        return self._masks[self._index[addrs]]

    def to_set(self, mask: int) -> AddressSet:
        """The addresses of the atoms in `mask` (memoised: results repeat a lot)."""
        found = self._sets.get(mask)
        if found is None:
            atoms = list(bits(mask))
            if len(atoms) == 1:  # an atom's intervals are already sorted and disjoint
                found = AddressSet(tuple(self.v4[atoms[0]]), tuple(self.v6[atoms[0]]))
            else:
                found = AddressSet(merge(i for a in atoms for i in self.v4[a]),
                                   merge(i for a in atoms for i in self.v6[a]))
            self._sets[mask] = found
        return found


    def exact_mask(self, addrs: AddressSet) -> int | None:
        """The mask of `addrs` if it is a union of atoms (of the family or not), else
        None: the atoms it touches, found by bisection, must make exactly `addrs`."""
        known = self._index.get(addrs)
        if known is not None:
            return self._masks[known]
        if self._segments is None:  # per family: segment starts, ends, atoms
            self._segments = []
            for family in (self.v4, self.v6):
                ordered = sorted((i, atom) for atom, intervals in enumerate(family)
                                 for i in intervals)
                self._segments.append(([f for (f, _), _ in ordered],
                                       [last for (_, last), _ in ordered],
                                       [atom for _, atom in ordered]))
        mask = 0
        for intervals, (starts, ends, owners) in zip((addrs.v4, addrs.v6), self._segments,
                                                     strict=True):
            for first, last in intervals:
                for atom in owners[bisect.bisect_left(ends, first):
                                   bisect.bisect_right(starts, last)]:
                    mask |= 1 << atom
        return mask if mask and self.to_set(mask) == addrs else None


def _mask_of(atoms: Iterable[int]) -> int:
    mask = 0
    for atom in atoms:
        mask |= 1 << atom
    return mask


def bits(mask: int) -> Iterator[int]:
    """The atom numbers in `mask`, lowest first."""
    while mask:
        low = mask & -mask
        yield low.bit_length() - 1
        mask ^= low


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

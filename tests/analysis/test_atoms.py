"""Atoms: masks over a family of address sets compute the same sets as intervals do."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from policyc.analysis.atoms import Atoms, bits
from policyc.compiler.addrset import AddressSet
from tests.compiler.test_addrset import sets


def _family(drawn: list[tuple[AddressSet, set[int]]]) -> list[AddressSet]:
    return [s for s, _ in drawn]


@given(st.lists(sets(), min_size=1, max_size=6))
def test_masks_do_the_algebra_of_the_sets(drawn: list[tuple[AddressSet, set[int]]]) -> None:
    family = _family(drawn)
    atoms = Atoms(family)
    for a in family:
        assert atoms.to_set(atoms.mask(a)) == a
        for b in family:
            ma, mb = atoms.mask(a), atoms.mask(b)
            assert atoms.to_set(ma | mb) == a | b
            assert atoms.to_set(ma & mb) == a & b
            assert atoms.to_set(ma & ~mb) == a - b
            assert bool(ma & mb) == a.overlaps(b)


@given(st.lists(sets(), min_size=1, max_size=6))
def test_atoms_are_disjoint_and_numbered_by_lowest_address(
        drawn: list[tuple[AddressSet, set[int]]]) -> None:
    atoms = Atoms(_family(drawn))
    pieces = [atoms.to_set(1 << k) for k in range(len(atoms))]
    assert all(pieces)
    for k, p in enumerate(pieces):
        assert not any(p.overlaps(q) for q in pieces[k + 1:])
    lowest = [(0, p.v4[0][0]) if p.v4 else (1, p.v6[0][0]) for p in pieces]
    assert lowest == sorted(lowest)
    # Two addresses share an atom exactly when the same sets hold them.
    for k, p in enumerate(pieces):
        holders = {i for i, s in enumerate(atoms.sets) if p.issubset(s)}
        assert holders == set(atoms.members[k])
        assert all(not p.overlaps(s) for i, s in enumerate(atoms.sets) if i not in holders)


def test_bits_lists_the_atoms_lowest_first() -> None:
    assert list(bits(0)) == []
    assert list(bits(0b101001)) == [0, 3, 5]

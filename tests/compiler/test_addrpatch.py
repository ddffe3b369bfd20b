"""Local edits of address sets (addrpatch.py) against computing from scratch.

A node event splices one node's addresses into or out of an alias set, its
SrcIPs texts and its DstPorts prefixes; each patched value must equal the one
made from the resulting set directly (with the node addresses of that moment).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policyc.compiler import chunks
from policyc.compiler.addrpatch import (
    IntervalParts,
    bits_of,
    edit_points,
    patch_parts,
    patch_texts,
    split_parts,
)
from policyc.compiler.addrset import AddressSet, merge
from policyc.compiler.nodes import Node
from policyc.compiler.peers import bits_to_indexes
from policyc.compiler.resolve import _AddressIndex


@pytest.fixture(autouse=True, scope="module")
def small_chunks() -> Iterator[None]:
    """Sets are patched as chunked intervals (and texts, prefixes); tiny chunks make
    every edit here find its neighbours across chunk boundaries, as a big group's do."""
    was, chunks.CHUNK = chunks.CHUNK, 2
    yield
    chunks.CHUNK = was


BASE = int(ipaddress.IPv4Address("100.64.0.0"))
V6_BASE = int(ipaddress.IPv6Address("fd7a:115c:a1e0::"))


def nodes_at(offsets: set[int]) -> list[Node]:
    return [Node(f"n{k}", None, (), (ipaddress.IPv4Address(BASE + k),
                                    ipaddress.IPv6Address(V6_BASE + k)))
            for k in sorted(offsets)]


def set_of(offsets: set[int], extra: list[tuple[int, int]]) -> AddressSet:
    v4 = [(BASE + k, BASE + k) for k in offsets] + [(BASE + a, BASE + b) for a, b in extra]
    v6 = [(V6_BASE + k, V6_BASE + k) for k in offsets]
    return AddressSet(merge(v4), merge(v6))


@settings(max_examples=300, deadline=None)
@given(members=st.sets(st.integers(0, 40), max_size=25),
       others=st.sets(st.integers(0, 40), max_size=15),
       ranges=st.lists(st.tuples(st.integers(0, 40), st.integers(0, 4)), max_size=2),
       point=st.integers(0, 40), add=st.booleans())
def test_patched_set_texts_and_prefixes_equal_a_fresh_computation(
        members: set[int], others: set[int], ranges: list[tuple[int, int]], point: int,
        add: bool) -> None:
    """A set of node addresses (plus a few ranges) gains or loses one node's two
    addresses; the node address index changes with it, as in an event."""
    extra = [(a, a + w) for a, w in ranges]
    members = members - {point} if add else members | {point}
    nodes_before = (members | others | {point}) if not add else (members | others)
    nodes_after = (nodes_before | {point}) if add else (nodes_before - {point})
    before = set_of(members, extra)
    index_before = _AddressIndex(nodes_at(nodes_before))
    index_after = _AddressIndex(nodes_at(nodes_after))
    points = [(BASE + point, False), (V6_BASE + point, True)]
    after, edits = edit_points(before, points, add)
    covered = any(a <= point <= a + w for a, w in ranges)
    expected = set_of(members | {point}, extra) if add else (
        set_of(members - {point}, extra) if not covered else None)
    if expected is None:  # the point stays inside a range: not an identity set's edit
        return
    assert after == expected
    texts = patch_texts(tuple(index_before.texts(before)), edits, index_after.texts)
    assert list(texts) == index_after.texts(after)
    parts = patch_parts(*split_parts(before), edits)
    assert parts == split_parts(after)


@given(st.sets(st.integers(0, 3000), max_size=50) | st.sets(st.integers(0, 300), min_size=60))
def test_bits_of_sets_exactly_those_bits(indexes: set[int]) -> None:
    """Sparse sets and dense ones (the two ways bits_to_indexes reads a set)."""
    assert bits_to_indexes(bits_of(indexes)) == sorted(indexes)


@given(st.lists(st.tuples(st.sets(st.integers(0, 40), max_size=25),
                          st.lists(st.tuples(st.integers(0, 40), st.integers(0, 9)),
                                   max_size=3)),
                min_size=1, max_size=4))
def test_parts_through_the_build_cache_equal_parts_made_alone(
        sets: list[tuple[set[int], list[tuple[int, int]]]]) -> None:
    """The build's shared interval cache gives each set the parts `split_parts`
    makes without it, whatever sets were split before."""
    cache = IntervalParts()
    for offsets, ranges in sets:
        addrs = set_of(offsets, [(a, a + w) for a, w in ranges])
        assert split_parts(addrs, cache) == split_parts(addrs)

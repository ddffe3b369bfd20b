"""Chunked sorted sequences (chunks.py) against plain tuples.

Node events edit the SrcIPs texts and prefix parts of big groups through `Chunks`;
after any sequence of splices and lookups a `Chunks` must read exactly as the tuple
edited the same way, whatever the chunk size.
"""

from __future__ import annotations

import bisect

from hypothesis import given, settings
from hypothesis import strategies as st

from policyc.compiler import chunks
from policyc.compiler.chunks import Chunks, last_at_or_below, sample


def half(x: int) -> int:
    return x // 2


def loc(items: Chunks[int], k: int) -> tuple[int, int]:
    """Index k as a position: found the way callers find them, by key."""
    flat = items.flat()
    if k == len(flat):
        return items.right(half(flat[-1])) if flat else (0, 0)
    at = items.left(half(flat[k]))  # the first item of that key ...
    first = bisect.bisect_left(flat, half(flat[k]), key=half)
    for _ in range(k - first):  # ... then step over equal keys
        c, j = at
        at = items._loc(c, j + 1)
    return at


EDITS = st.lists(st.tuples(st.integers(0, 200), st.integers(0, 6),
                           st.lists(st.integers(0, 10_000), max_size=12)), max_size=25)


@settings(max_examples=300, deadline=None)
@given(items=st.lists(st.integers(0, 10_000), max_size=300), edits=EDITS,
       size=st.integers(1, 9), probes=st.lists(st.integers(-5, 10_005), max_size=8),
       step=st.integers(1, 20))
def test_chunks_read_as_the_tuple_spliced_the_same_way(
        items: list[int], edits: list[tuple[int, int, list[int]]], size: int,
        probes: list[int], step: int) -> None:
    was, chunks.CHUNK = chunks.CHUNK, size
    try:
        expected = tuple(sorted(items))
        got = Chunks.of(expected, key=half)  # a key, as parts have
        versions = [(got, expected)]
        for at, width, new in edits:
            lo = min(at, len(expected))
            hi = min(lo + width, len(expected))
            # Keep the order (the lookups need it): new items between their neighbours.
            low = expected[lo - 1] if lo else 0
            high = expected[hi] if hi < len(expected) else 10_000
            fill = tuple(sorted(min(max(x, low), high) for x in new))
            got = got.splice(loc(got, lo), loc(got, hi), fill)
            expected = expected[:lo] + fill + expected[hi:]
            versions.append((got, expected))
        for one, one_tup in versions:  # equal exactly when their tuples are
            for other, other_tup in versions:
                assert (one == other) == (one_tup == other_tup)
        for version, tup in versions:  # earlier versions are unchanged by later edits
            assert version.flat() == tup and tuple(version) == tup and len(version) == len(tup)
            assert version == tup and version == Chunks.of(tup)
            assert sample(version, step) == tup[::step]
            for x in probes:
                k = bisect.bisect_left(tup, x, key=half)
                assert version.at(version.left(x)) == (tup[k] if k < len(tup) else None)
                k = bisect.bisect_right(tup, x, key=half)
                assert version.before(version.right(x)) == (tup[k - 1] if k else None)
                assert last_at_or_below(version, x, half) == last_at_or_below(tup, x, half)
            # Stepping through the positions reads the tuple forwards and backwards.
            at, forwards = (0, 0), []
            while version.at(at) is not None:
                forwards.append(version.at(at))
                at = version.next(at)
            backwards = []
            while at != (0, 0):
                at = version.previous(at)
                backwards.append(version.at(at))
            assert tuple(forwards) == tup and tuple(reversed(backwards)) == tup
    finally:
        chunks.CHUNK = was

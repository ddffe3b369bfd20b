"""Immutable sorted sequences kept in chunks, so a small edit copies little.

A node event adds or removes one node's addresses in the SrcIPs texts and DstPorts
prefixes of the ~100 groups it is in, thousands of entries each. Copying each
sequence whole per event was most of a join on a dense tailnet; a `Chunks` edit
copies the chunk it touches and the short tuple of chunks, and shares the rest with
the previous version (which the event still reads: the old and new filters are
compared). A netmap reads one flat tuple (`flat`), made once per version.

The caller keeps the items sorted (by `key`, or by themselves); `left` and `right`
take a key value, as `bisect` does with `key=`.
"""

from __future__ import annotations

import bisect
import operator
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import accumulate, chain
from typing import Any, Generic, TypeVar

T = TypeVar("T")
CHUNK = 128  # items per chunk as made; an edit splits a chunk beyond twice that
Loc = tuple[int, int]  # (chunk, offset in it): a position, canonical (see `_loc`)


class Chunks(Generic[T]):
    """A tuple in chunks: `flat()` is the tuple; `splice` returns a new `Chunks`.

    Positions are (chunk, offset) pairs, not indexes: keeping each chunk's start
    index would rebuild a tuple of Python ints per edit, costing more than the
    edit (tens of chunks)."""

    __slots__ = ("_chunks", "_flat", "_heads", "_key", "_len")

    def __init__(self, chunks: tuple[tuple[T, ...], ...], heads: tuple[Any, ...],
                 key: Callable[[T], Any] | None, length: int) -> None:
        self._chunks = chunks  # never an empty chunk
        self._heads = heads  # each chunk's first key
        self._key = key
        self._len = length
        self._flat: tuple[T, ...] | None = None

    @classmethod
    def of(cls, items: Sequence[T], key: Callable[[T], Any] | None = None) -> Chunks[T]:
        chunks = _split(tuple(items))
        return cls(chunks, _heads(chunks, key), key, len(items))

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[T]:
        return chain.from_iterable(self._chunks)

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if isinstance(other, Chunks):
            if len(self) != len(other):
                return False
            if self._chunks == other._chunks:  # shared chunks compare by identity
                return True
        elif not isinstance(other, tuple):
            return NotImplemented
        # Item by item, stopping at the first difference (no flat copies made).
        return len(self) == len(other) and all(map(operator.eq, self, other))

    def __hash__(self) -> int:
        return hash(self.flat())  # as the tuple's

    def __repr__(self) -> str:
        return f"Chunks({self.flat()!r})"

    def flat(self) -> tuple[T, ...]:
        """The items as one tuple, made on first use (a netmap's rule reads it)."""
        if self._flat is None:
            self._flat = tuple(chain.from_iterable(self._chunks))
        return self._flat

    def sample(self, step: int) -> tuple[T, ...]:
        """self[::step], each sampled position found by bisection in the chunks' ends
        (made in C: a Python walk over the chunks cost more than the edit)."""
        chunks = self._chunks
        ends = list(accumulate(map(len, chunks)))
        out: list[T] = []
        for i in range(0, self._len, step):
            c = bisect.bisect_right(ends, i)
            out.append(chunks[c][i - ends[c] + len(chunks[c])])
        return tuple(out)

    def left(self, x: Any) -> Loc:
        """Where `bisect_left` of key `x` is."""
        c = bisect.bisect_left(self._heads, x) - 1  # the last chunk starting below x
        if c < 0:
            return (0, 0)
        return self._loc(c, bisect.bisect_left(self._chunks[c], x, key=self._key))

    def right(self, x: Any) -> Loc:
        """Where `bisect_right` of key `x` is."""
        c = bisect.bisect_right(self._heads, x) - 1  # the last chunk starting at or below x
        if c < 0:
            return (0, 0)
        return self._loc(c, bisect.bisect_right(self._chunks[c], x, key=self._key))

    def _loc(self, c: int, j: int) -> Loc:
        """The end of a chunk is the start of the next: one name per position, so
        positions compare as tuples."""
        if j == len(self._chunks[c]) and c + 1 < len(self._chunks):
            return (c + 1, 0)
        return (c, j)

    def at(self, loc: Loc) -> T | None:
        """The item at `loc` (None at the end)."""
        c, j = loc
        chunk = self._chunks[c] if self._chunks else ()
        return chunk[j] if j < len(chunk) else None

    def before(self, loc: Loc) -> T | None:
        """The item just before `loc` (None at the start)."""
        c, j = loc
        if j:
            return self._chunks[c][j - 1]
        return self._chunks[c - 1][-1] if c else None

    def next(self, loc: Loc) -> Loc:
        """The position after `loc` (which holds an item)."""
        c, j = loc
        return self._loc(c, j + 1)

    def previous(self, loc: Loc) -> Loc:
        """The position before `loc` (which is not the start)."""
        c, j = loc
        return (c, j - 1) if j else (c - 1, len(self._chunks[c - 1]) - 1)

    def splice(self, lo: Loc, hi: Loc, items: Iterable[T]) -> Chunks[T]:
        """The sequence with the items from `lo` up to `hi` replaced by `items` (kept
        sorted by the caller): the chunks holding them are rebuilt, the rest shared."""
        chunks = self._chunks
        new = tuple(items)
        if not chunks:
            return Chunks.of(new, self._key)
        (a, i), (b, j) = lo, hi
        removed = (sum(map(len, chunks[a:b])) if b > a else 0) - i + j
        merged = chunks[a][:i] + new + chunks[b][j:]
        pieces = _split(merged) if len(merged) > 2 * CHUNK else ((merged,) if merged else ())
        return Chunks(_replaced(chunks, a, b, pieces),
                      _replaced(self._heads, a, b, _heads(pieces, self._key)),
                      self._key, self._len - removed + len(new))


def _replaced(items: tuple[Any, ...], a: int, b: int, new: tuple[Any, ...]) -> tuple[Any, ...]:
    """`items` with items[a:b + 1] replaced by `new`, in one copy when `new` is one item."""
    if len(new) == 1 and a == b:
        out = list(items)
        out[a] = new[0]
        return tuple(out)
    return items[:a] + new + items[b + 1:]


def _split(items: tuple[T, ...]) -> tuple[tuple[T, ...], ...]:
    return tuple(items[i:i + CHUNK] for i in range(0, len(items), CHUNK))


def _heads(chunks: tuple[tuple[T, ...], ...], key: Callable[[T], Any] | None
           ) -> tuple[Any, ...]:
    firsts = (chunk[0] for chunk in chunks)
    return tuple(firsts if key is None else map(key, firsts))


Seq = tuple[T, ...] | Chunks[T]  # what a patched value may be: flat as built, or chunked


def flat(items: Seq[T]) -> tuple[T, ...]:
    return items.flat() if isinstance(items, Chunks) else items


def chunked(items: Seq[T], key: Callable[[T], Any] | None = None) -> Chunks[T]:
    return items if isinstance(items, Chunks) else Chunks.of(items, key)


def sample(items: Seq[T], step: int) -> tuple[T, ...]:
    """items[::step], read from the chunks without flattening them."""
    if isinstance(items, Chunks):
        return items.sample(step)
    return items[::step]


def last_at_or_below(items: Seq[T], x: Any, key: Callable[[T], Any]) -> T | None:
    """The last item whose key is at most `x` (items sorted by `key`)."""
    if isinstance(items, Chunks):
        return items.before(items.right(x))
    k = bisect.bisect_right(items, x, key=key)
    return items[k - 1] if k else None

"""A netmap's JSON assembled from cached byte fragments, for writing many netmaps.

Writing every node's netmap repeats the same pieces: a peer entry is the same
`Peer` object in every netmap that lists it without routes (most do), and a
filter rule's `SrcIPs` is the same tuple for every node holding the rule. On
a dense tailnet these are nearly all of the bytes (10k nodes: ~2 MB of peers
and ~4 MB of SrcIPs per netmap), so each is encoded once, kept by object
identity, and a netmap is the join of its fragments. The bytes are exactly
what orjson gives for `netmap.to_json()`, compact or with OPT_INDENT_2 (the
layout below is orjson's: `,`/`:` compact; two-space indent, `": "`, and
`[]`/`{}` for empty containers when indented); tests/test_netmap_json.py
compares the two on compiled and generated netmaps.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import orjson

from policyc.netmap import FilterRule, NodeNetmap, Peer

# Bytes of fragments kept before a cache is emptied. A 10k-node dense tailnet
# shares ~2 MB of peer entries and tens of MB of large SrcIPs lists; objects made
# per netmap (a peer with the routes one viewer may use) would otherwise pile up
# for the whole run.
PEER_CACHE_BYTES = 64 << 20
SOURCE_CACHE_BYTES = 128 << 20
# SrcIPs lists shorter than this are encoded in place: they are cheap, and many
# belong to one netmap only (autogroup:self sources are one owner's devices).
SHARED_SOURCES = 8


def _listed_alike(peer: Peer) -> bool:
    """A peer listed with only its own addresses is one object every viewer
    shares; one with routes a viewer may use is made for that viewer
    (compiler.routed_peer), so caching it would only hold memory."""
    return len(peer.allowed_ips) == len(peer.addresses)


class Fragments:
    """Encoded bytes of objects, by identity. Each cached object is kept alive,
    so its id cannot be reused while the entry exists. Bounded in bytes; only
    objects `shared` says are likely shared are kept (the others would hold
    memory of their own for nothing)."""

    def __init__(self, encode: Callable[[Any], bytes], limit: int,
                 shared: Callable[[Any], bool]) -> None:
        self._encode = encode
        self._limit = limit
        self._shared = shared
        self._by_id: dict[int, bytes] = {}
        self._kept: list[object] = []
        self._size = 0
        self.clears = 0

    def many(self, objects: Sequence[object]) -> list[bytes]:
        """The fragments of `objects`, in order (one C-level pass when all are cached)."""
        found: list[bytes | None] = list(map(self._by_id.get, map(id, objects)))
        if None not in found:
            return found  # type: ignore[return-value]  # no None: all are bytes
        return [self.one(o) if f is None else f for o, f in zip(objects, found, strict=True)]

    def one(self, obj: object) -> bytes:
        data = self._by_id.get(id(obj))
        if data is None:
            data = self._encode(obj)
            if not self._shared(obj):
                return data
            if self._size + len(data) > self._limit:
                self.clear()
            self._by_id[id(obj)] = data
            self._kept.append(obj)
            self._size += len(data)
        return data

    @property
    def held(self) -> int:
        """Bytes of fragments held (at most the limit, or one fragment above it)."""
        return self._size

    def clear(self) -> None:
        self.clears += 1
        self._by_id.clear()
        self._kept.clear()
        self._size = 0


class NetmapEncoder:
    """`orjson.dumps(netmap.to_json())` (indented when `pretty`), from fragments
    shared between the netmaps one encoder writes."""

    def __init__(self, *, pretty: bool, peer_bytes: int = PEER_CACHE_BYTES,
                 source_bytes: int = SOURCE_CACHE_BYTES) -> None:
        self._option = orjson.OPT_INDENT_2 if pretty else 0
        self._colon = b": " if pretty else b":"
        self._pretty = pretty
        # A peer sits at depth 2 ({"peers": [peer]}), a rule's SrcIPs at depth 3.
        self._peers = Fragments(lambda p: self.leaf(p, 2), peer_bytes, _listed_alike)
        self._sources = Fragments(lambda s: self.leaf(list(s), 3), source_bytes,
                                  lambda s: len(s) >= SHARED_SOURCES)

    def netmap(self, netmap: NodeNetmap) -> bytes:
        return b"".join(self.chunks(netmap))

    def chunks(self, netmap: NodeNetmap) -> list[bytes]:
        """The netmap's bytes as a list of pieces (large ones shared with the caches):
        joining copies the document once; `os.writev` need not copy it at all."""
        out: list[bytes] = []
        rest = replace(netmap, peers=(), packet_filter=()).to_json()
        self._open(out, b"{", 0)
        for k, (key, value) in enumerate(rest.items()):  # to_json's keys, in its order
            self._key(out, key, k, 0)
            if key == "peers":
                self._array(out, self._peers.many(netmap.peers), 1)
            elif key == "packet_filter":
                self._rules(out, netmap.packet_filter)
            else:
                out.append(self.leaf(value, 1))
        self._close(out, b"}", 0)
        return out

    def _rules(self, out: list[bytes], rules: tuple[FilterRule, ...]) -> None:
        if not rules:
            out.append(b"[]")
            return
        self._open(out, b"[", 1)
        for k, rule in enumerate(rules):
            if k:
                out.append(b"," + self._newline(2))
            self._open(out, b"{", 2)
            rest = replace(rule, src_ips=()).to_json()
            for j, (key, value) in enumerate(rest.items()):
                self._key(out, key, j, 2)
                out.append(self._sources.one(rule.src_ips) if key == "SrcIPs"
                           else self.leaf(value, 3))
            self._close(out, b"}", 2)
        self._close(out, b"]", 1)

    # --- orjson's layout -----------------------------------------------------------

    def _newline(self, depth: int) -> bytes:
        return b"\n" + b"  " * depth if self._pretty else b""

    def leaf(self, value: Any, depth: int) -> bytes:
        """`value` encoded as it reads `depth` levels down."""
        data = orjson.dumps(value, option=self._option)
        return data.replace(b"\n", self._newline(depth)) if self._pretty and depth else data

    def _open(self, out: list[bytes], bracket: bytes, depth: int) -> None:
        out.append(bracket + self._newline(depth + 1))

    def _close(self, out: list[bytes], bracket: bytes, depth: int) -> None:
        out.append(self._newline(depth) + bracket)

    def _key(self, out: list[bytes], key: str, position: int, depth: int) -> None:
        """`key` of an object at `depth`, after a separator unless it comes first."""
        head = b"," + self._newline(depth + 1) if position else b""
        out.append(head + orjson.dumps(key) + self._colon)

    def _array(self, out: list[bytes], items: list[bytes], depth: int) -> None:
        if not items:
            out.append(b"[]")
            return
        self._open(out, b"[", depth)
        out.append((b"," + self._newline(depth + 1)).join(items))
        self._close(out, b"]", depth)

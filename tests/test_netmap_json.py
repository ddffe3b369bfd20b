"""Netmaps assembled from cached fragments are byte for byte orjson's encoding.

Reference: `orjson.dumps(netmap.to_json())`, compact and with OPT_INDENT_2 (what
`compile` wrote before fragments). One encoder writes many netmaps that share
peers and SrcIPs tuples, with a cache small enough to be emptied along the way.
"""

from __future__ import annotations

import os
from pathlib import Path

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import load, policies, tailnets

from policyc.cli.netmap_json import Fragments, NetmapEncoder
from policyc.cli.output import _write_rest, write_chunks, write_netmap_files
from policyc.compiler import PolicyIndex
from policyc.compiler.nodes import Inventory
from policyc.netmap import CapGrant, FilterRule, NetPortRange, NodeNetmap, Peer, PortRange


def reference(netmap: NodeNetmap, pretty: bool) -> bytes:
    return orjson.dumps(netmap.to_json(), option=orjson.OPT_INDENT_2 if pretty else 0)


def assert_encodes_like_orjson(netmaps: list[NodeNetmap], limit: int) -> None:
    for pretty in (False, True):
        encoder = NetmapEncoder(pretty=pretty, peer_bytes=limit, source_bytes=limit)
        for _ in range(2):  # the second pass reads the cached fragments
            for netmap in netmaps:
                assert encoder.netmap(netmap) == reference(netmap, pretty)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tailnets(), policies(), st.sampled_from((200, 1 << 20)))
def test_compiled_netmaps_encode_like_orjson(inventory: Inventory, text: str,
                                             limit: int) -> None:
    index = PolicyIndex.build(load(text), inventory)
    assert_encodes_like_orjson([netmap for _, netmap in index.netmaps()], limit)


# --- generated netmaps: every wire field, unicode, empty containers --------------------

texts = st.text(max_size=8)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=6)
peers = st.builds(Peer, texts, texts, st.tuples(texts), st.lists(texts, max_size=3).map(tuple),
                  st.none() | texts)
ports = st.builds(PortRange, st.integers(0, 65535), st.integers(0, 65535))
rules = st.builds(
    FilterRule,
    st.lists(texts, max_size=12).map(tuple),  # cached from 8 on
    st.lists(st.builds(NetPortRange, texts, ports), max_size=3).map(tuple),
    st.lists(st.integers(0, 255), max_size=3).map(tuple),
    st.lists(st.builds(CapGrant, st.lists(texts, max_size=2).map(tuple),
                       st.lists(st.tuples(texts, json_values), max_size=2).map(tuple)),
             max_size=2).map(tuple))


@st.composite
def netmap_families(draw: st.DrawFn) -> list[NodeNetmap]:
    """Netmaps drawing their peers and rules (so SrcIPs tuples) from shared pools."""
    peer_pool = draw(st.lists(peers, max_size=6))
    rule_pool = draw(st.lists(rules, max_size=4))
    out = []
    for _ in range(draw(st.integers(1, 4))):
        chosen = draw(st.lists(st.sampled_from(peer_pool), max_size=6)) if peer_pool else []
        filt = draw(st.lists(st.sampled_from(rule_pool), max_size=4)) if rule_pool else []
        filt = [FilterRule(r.src_ips, r.dst_ports[:1], r.ip_proto, r.cap_grant)
                if draw(st.booleans()) else r for r in filt]  # shared SrcIPs, own rule
        out.append(NodeNetmap(
            node=draw(texts), addresses=draw(st.lists(texts, max_size=2).map(tuple)),
            peers=tuple(chosen), packet_filter=tuple(filt),
            ssh_policy=draw(st.dictionaries(texts, json_values, max_size=2)),
            policy_version=draw(texts), routes=draw(st.lists(texts, max_size=2).map(tuple)),
            cap_map=draw(st.dictionaries(texts, json_values, max_size=2))))
    return out


@settings(max_examples=200, deadline=None)
@given(netmap_families(), st.sampled_from((1, 100, 1 << 20)))
def test_generated_netmaps_encode_like_orjson(netmaps: list[NodeNetmap], limit: int) -> None:
    assert_encodes_like_orjson(netmaps, limit)


def test_fragments_stay_within_their_limit() -> None:
    fragments = Fragments(lambda data: bytes(data), limit=1000, shared=lambda data: True)
    for size in [300, 300, 300, 2000, 10, 999, *range(2, 400)]:
        data = bytearray(b"x" * size)  # a new object each time
        assert fragments.one(data) == data
        assert fragments.held <= max(1000, size)
    kept = bytearray(b"kept")
    assert fragments.many([kept, kept]) == [b"kept", b"kept"]
    own = Fragments(lambda data: bytes(data), limit=1000, shared=lambda data: len(data) < 10)
    assert own.many([bytearray(b"x" * 50), bytearray(b"y")]) == [b"x" * 50, b"y"]
    assert own.held == 1  # the long one was not kept


# --- files --------------------------------------------------------------------------------

def test_files_hold_the_encoding_and_a_newline(tmp_path: Path) -> None:
    index = PolicyIndex.build(load('{"acls": [{"action": "accept", "src": ["*"], '
                                   '"dst": ["*:*"]}]}'), _inventory())
    netmaps = dict(index.netmaps())
    for pretty in (False, True):
        paths = {name: tmp_path / f"{name}-{pretty}.json" for name in netmaps}
        write_netmap_files(index.netmaps(), paths, pretty=pretty)
        for name, netmap in netmaps.items():
            assert paths[name].read_bytes() == reference(netmap, pretty) + b"\n"


def test_write_chunks_past_one_writev_batch(tmp_path: Path) -> None:
    chunks = [str(i).encode() * (i % 7) for i in range(5000)]  # > IOV_MAX, some empty
    target = tmp_path / "out.json"
    target.write_bytes(b"old contents, longer than nothing")
    write_chunks(target, chunks)
    assert target.read_bytes() == b"".join(chunks)


def test_a_short_write_is_finished_chunk_by_chunk(tmp_path: Path) -> None:
    batch = [b"abc", b"", b"defgh", b"ij"]
    for done in range(len(b"".join(batch)) + 1):
        target = tmp_path / f"short-{done}"
        fd = os.open(target, os.O_WRONLY | os.O_CREAT)
        try:
            os.write(fd, b"".join(batch)[:done])  # what writev managed before stopping
            _write_rest(fd, batch, done)
        finally:
            os.close(fd)
        assert target.read_bytes() == b"abcdefghij"


def _inventory() -> Inventory:
    from strategies import example_inventory

    return example_inventory()

"""The nft reader's addresses: the cached, C-parsed texts agree with `ipaddress`, and a
compiled rule's integer ranges with its texts."""

from __future__ import annotations

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import load, policies, tailnets

from policyc.compiler import compile_policy
from policyc.compiler.nodes import Inventory
from policyc.enforcer import nftsets


def reference(text: str) -> tuple[int, tuple[int, int]] | None:
    """What `ipaddress` alone makes of the text: the reader without its cache and
    C fast path."""
    return nftsets._parse_address(text)


def spellings(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> list[str]:
    """The canonical text and other ways to write the same address."""
    out = [str(ip)]
    if ip.version == 6:
        out += [ip.exploded, ip.exploded.upper(), f"{ip}%eth0", str(ip).replace("::", ":0:", 1)]
    else:
        out += [".".join(f"0{octet}" for octet in str(ip).split(".")), f"::ffff:{ip}"]
    return out


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)))
def test_addresses_read_as_ipaddress_reads_them(ip: ipaddress.IPv4Address
                                                | ipaddress.IPv6Address) -> None:
    for text in spellings(ip):
        assert nftsets.parse_address(text) == reference(text), text
        assert nftsets.parse_address(text) == reference(text), text  # cached


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet="0123456789abcdefABCDEF:.%/- ", max_size=45))
def test_any_text_reads_as_ipaddress_reads_it(text: str) -> None:
    assert nftsets.parse_address(text) == reference(text)


def test_address_set_reports_bad_texts_and_merges() -> None:
    bad: list[str] = []
    got = nftsets.address_set(["100.64.0.2", "100.64.0.1", "1.2.3", "*", "fd7a::1"], bad)
    assert bad == ["1.2.3"]
    assert got.v4 == ((0, 2**32 - 1),)
    assert got.v6 == ((0, 2**128 - 1),)
    bad.clear()
    again = nftsets.address_set(["100.64.0.2", "100.64.0.1", "1.2.3"], bad)
    assert bad == ["1.2.3"]  # a cached malformed text is still reported
    assert again.v4 == ((int(ipaddress.ip_address("100.64.0.1")),
                         int(ipaddress.ip_address("100.64.0.2"))),)


@settings(max_examples=150, deadline=None)
@given(text=policies(), inventory=tailnets())
def test_compiled_src_ranges_mean_what_the_texts_say(text: str, inventory: Inventory) -> None:
    """The nft reader takes a compiled rule's `src_ranges` instead of its SrcIPs
    texts: they must be the texts' meaning exactly."""
    for netmap in compile_policy(load(text), inventory).netmaps.values():
        for rule in netmap.packet_filter:
            if rule.src_ranges is not None:
                assert nftsets.AddrSet(*rule.src_ranges) == nftsets.address_set(rule.src_ips)

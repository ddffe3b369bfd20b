"""AddressSet: interval algebra checked against python's ipaddress."""

from __future__ import annotations

import ipaddress

from hypothesis import given
from hypothesis import strategies as st

from policyc.compiler.addrset import ALL, EMPTY, AddressSet, union_all
from policyc.compiler.internet import INTERNET, TAILSCALE_RANGES

# Small universe (a /24 of v4 and a /120 of v6) so sets can be enumerated.
V4_BASE = int(ipaddress.IPv4Address("10.0.0.0"))
V6_BASE = int(ipaddress.IPv6Address("fd00::"))


@st.composite
def networks(draw: st.DrawFn) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    v6 = draw(st.booleans())
    length = draw(st.integers(min_value=24 if not v6 else 120, max_value=32 if not v6 else 128))
    bits = 32 if not v6 else 128
    offset = draw(st.integers(min_value=0, max_value=255)) >> (bits - length) << (bits - length)
    if v6:
        return ipaddress.IPv6Network((V6_BASE + offset, length))
    return ipaddress.IPv4Network((V4_BASE + offset, length))


def sets() -> st.SearchStrategy[tuple[AddressSet, set[int]]]:
    return st.lists(networks(), max_size=6).map(_both)


def _both(nets: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> tuple[AddressSet, set[int]]:
    members = {(n.version << 200) | int(a) for n in nets for a in n}
    return AddressSet.of_networks(nets), members


def _members(s: AddressSet) -> set[int]:
    out = {(4 << 200) | a for first, last in s.v4 for a in range(first, last + 1)}
    out |= {(6 << 200) | a for first, last in s.v6 for a in range(first, last + 1)}
    return out


@given(sets(), sets())
def test_algebra_matches_python_sets(a: tuple[AddressSet, set[int]],
                                     b: tuple[AddressSet, set[int]]) -> None:
    (sa, ma), (sb, mb) = a, b
    assert _members(sa) == ma
    assert _members(sa | sb) == ma | mb
    assert _members(sa & sb) == ma & mb
    assert _members(sa - sb) == ma - mb
    assert sa.overlaps(sb) == bool(ma & mb)
    assert sa.issubset(sb) == (ma <= mb)


def _scattered(points: list[int]) -> tuple[AddressSet, set[int]]:
    """Single addresses two apart: as many intervals as points."""
    return _both([ipaddress.IPv4Network((V4_BASE + 2 * p, 32)) for p in points])


@given(st.lists(st.integers(0, 127), max_size=40).map(_scattered), sets())
def test_a_short_side_against_a_long_one(a: tuple[AddressSet, set[int]],
                                         b: tuple[AddressSet, set[int]]) -> None:
    """Either side many times longer than the other (the bisecting paths)."""
    for (sa, ma), (sb, mb) in ((a, b), (b, a)):
        assert _members(sa & sb) == ma & mb
        assert sa.issubset(sb) == (ma <= mb)
        assert sa.overlaps(sb) == bool(ma & mb)


@given(sets())
def test_prefix_cover_is_exact_and_minimal(a: tuple[AddressSet, set[int]]) -> None:
    s, _ = a
    prefixes = s.to_prefixes()
    assert AddressSet.of_networks(prefixes) == s
    # Minimal: the cover equals what ipaddress computes per interval.
    expected = []
    for first, last in s.v4:
        expected.extend(ipaddress.summarize_address_range(
            ipaddress.IPv4Address(first), ipaddress.IPv4Address(last)))
    for first, last in s.v6:
        expected.extend(ipaddress.summarize_address_range(
            ipaddress.IPv6Address(first), ipaddress.IPv6Address(last)))
    assert prefixes == expected


@given(sets())
def test_texts_round_trip(a: tuple[AddressSet, set[int]]) -> None:
    s, _ = a
    assert union_all(AddressSet.parse(t) for t in s.texts()) == s
    assert s.texts() == sorted(s.texts())


@given(sets(), st.integers(min_value=0, max_value=255))
def test_contains(a: tuple[AddressSet, set[int]], offset: int) -> None:
    s, members = a
    address = ipaddress.IPv4Address(V4_BASE + offset)
    assert s.contains(address) == (((4 << 200) | int(address)) in members)


def test_big_prefix_costs_one_interval() -> None:
    s = AddressSet.parse("10.0.0.0/8")
    assert s.v4 == ((int(ipaddress.IPv4Address("10.0.0.0")),
                     int(ipaddress.IPv4Address("10.255.255.255"))),)


def test_tailscale_text_forms() -> None:
    assert AddressSet.parse("100.64.0.1").texts() == ["100.64.0.1"]
    assert AddressSet.parse("10.1.0.0/16").texts() == ["10.1.0.0/16"]
    assert TAILSCALE_RANGES.texts() == [
        "100.115.94.0-100.127.255.255", "100.64.0.0-100.115.91.255", "fd7a:115c:a1e0::/48",
    ]
    assert ALL.texts() == ["*"]
    assert EMPTY.texts() == []
    assert not EMPTY


def test_ranges_parse_and_reject_reversed() -> None:
    s = AddressSet.parse("10.0.0.1-10.0.0.20")
    assert len(s) == 20
    assert not AddressSet.of_range(ipaddress.ip_address("10.0.0.9"),
                                   ipaddress.ip_address("10.0.0.1"))


def test_internet_excludes_private_and_tailscale_space() -> None:
    for private in ("10.1.2.3", "192.168.1.1", "100.100.1.1", "fd7a:115c:a1e0::1", "169.254.1.1"):
        assert not INTERNET.contains(ipaddress.ip_address(private))
    assert INTERNET.contains(ipaddress.ip_address("8.8.8.8"))
    assert INTERNET.contains(ipaddress.ip_address("2001:4860::8888"))


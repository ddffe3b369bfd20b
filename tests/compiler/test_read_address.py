"""The inventory's address reader (C parser for canonical text) and the address
writer (C formatter) agree with `ipaddress`."""

from __future__ import annotations

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st

from policyc.compiler.nodecheck import TAILNET_RANGES, in_tailnet_range, read_address
from policyc.netmap import address_text
from policyc.policy.aliases import parse_address


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)), st.sampled_from(range(4)))
def test_read_address_is_parse_address(ip: ipaddress.IPv4Address | ipaddress.IPv6Address,
                                       spelling: int) -> None:
    text = [str(ip), ip.exploded, f"{ip}%eth0", str(ip).upper()][spelling]
    got = read_address(text)
    assert got == parse_address(text)
    assert type(got) is type(parse_address(text))
    if got is not None:
        assert in_tailnet_range(got) == any(got in net for net in TAILNET_RANGES)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="0123456789abcdef:.%/ ", max_size=42))
def test_any_text_reads_as_parse_address_reads_it(text: str) -> None:
    assert read_address(text) == parse_address(text)


# Hextets mostly 0 (runs of zeros decide where `::` goes), 1 and ffff (the
# embedded-IPv4 forms), or anything.
HEXTETS = st.one_of(st.sampled_from([0, 0, 1, 0xFFFF]), st.integers(0, 0xFFFF))


@given(st.lists(st.lists(HEXTETS, min_size=8, max_size=8), max_size=20),
       st.lists(st.integers(0, 2**32 - 1), max_size=20))
def test_address_text_is_ipaddress_text(v6_words: list[list[int]], v4: list[int]) -> None:
    v6 = [int("".join(f"{word:04x}" for word in words), 16) for words in v6_words]
    assert [address_text(a, True) for a in v6] == [str(ipaddress.IPv6Address(a)) for a in v6]
    assert [address_text(a, False) for a in v4] == [str(ipaddress.IPv4Address(a)) for a in v4]

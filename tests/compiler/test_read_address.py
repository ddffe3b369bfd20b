"""The inventory's address reader (C parser for canonical text) agrees with `ipaddress`."""

from __future__ import annotations

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st

from policyc.compiler.nodecheck import TAILNET_RANGES, in_tailnet_range, read_address
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

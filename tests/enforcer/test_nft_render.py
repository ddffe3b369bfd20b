"""Rendering FilterRules to nftables JSON: goldens, aggregation, semantics."""

from __future__ import annotations

import ipaddress
import json

import pytest
from goldens import GOLDEN_ROOT, check_golden
from hypothesis import given, settings
from hypothesis import strategies as st

from policyc.enforcer.nft import filter_allows, render_ruleset, render_text
from policyc.enforcer.nftsets import (
    address_set,
    build_family_sets,
    parse_filter,
    sets_allow,
)
from policyc.policy.diagnostics import Diagnostics
from policyc.policy.filtertypes import FilterRule, NetPortRange, NodeNetmap, PortRange

GOLDEN_DIR = GOLDEN_ROOT / "nft"
NODE_V4, NODE_V6 = "100.64.0.10", "fd7a:115c:a1e0::a"
TAILNET_SRCS = ("100.64.0.0-100.115.91.255", "100.115.94.0-100.127.255.255",
                "fd7a:115c:a1e0::/48")


def dst(ip: str, first: int = 0, last: int = 65535) -> NetPortRange:
    return NetPortRange(ip, PortRange(first, last))


def netmap(*rules: FilterRule) -> NodeNetmap:
    return NodeNetmap("web-1", (NODE_V4, NODE_V6), (), tuple(rules))


CASES: dict[str, tuple[NodeNetmap, tuple[str, ...]]] = {
    "empty": (netmap(), ()),
    "ssh_from_tailnet": (netmap(FilterRule(TAILNET_SRCS, (dst(NODE_V4, 22, 22),
                                                          dst(NODE_V6, 22, 22)))), ()),
    "web_and_gre": (netmap(
        FilterRule(("100.64.0.20", "100.64.0.21"),
                   (dst("*", 80, 80), dst("*", 443, 443), dst("*", 81, 81)), (6,)),
        FilterRule(("10.0.0.0/8",), (dst("10.20.0.0/16"),), (47,)),
    ), ("10.20.0.0/16",)),
    "exit_node": (netmap(FilterRule(("*",), (dst("*"),))), ("0.0.0.0/0", "::/0")),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_json_and_text(case: str) -> None:
    nm, routes = CASES[case]
    ruleset = render_ruleset(nm, "wg0", routes=routes)
    as_json = json.dumps(ruleset, indent=1, sort_keys=True) + "\n"
    check_golden(GOLDEN_DIR / f"{case}.nft.json", as_json)
    check_golden(GOLDEN_DIR / f"{case}.nft", render_text(ruleset))


def test_rendering_is_deterministic_and_order_independent() -> None:
    nm = CASES["web_and_gre"][0]
    shuffled = NodeNetmap(nm.node, nm.addresses, (), tuple(reversed(nm.packet_filter)))
    first = render_ruleset(nm, "wg0", routes=("10.20.0.0/16",))
    assert first == render_ruleset(nm, "wg0", routes=("10.20.0.0/16",))
    assert first == render_ruleset(shuffled, "wg0", routes=("10.20.0.0/16",))


def set_elems(ruleset: dict, name: str) -> list:
    for command in ruleset["nftables"]:
        body = command.get("add", {}).get("set")
        if body and body["name"] == name:
            return list(body.get("elem", []))
    raise AssertionError(f"no set {name}")


def test_adjacent_sources_and_ports_merge_into_one_element() -> None:
    nm = netmap(
        FilterRule(("100.64.1.0/25",), (dst(NODE_V4, 22, 24),), (6,)),
        FilterRule(("100.64.1.128/25",), (dst(NODE_V4, 22, 22), dst(NODE_V4, 24, 24)), (6,)),
        FilterRule(("100.64.1.0/24",), (dst(NODE_V4, 23, 23),), (6,)),
    )
    elems = set_elems(render_ruleset(nm, "wg0"), "in4_ports")
    assert elems == [{"concat": [{"prefix": {"addr": "100.64.1.0", "len": 24}}, NODE_V4, 6,
                                 {"range": [22, 24]}]}]


def test_dst_star_means_any_address_of_both_families() -> None:
    filt = parse_filter([FilterRule(("*",), (dst("*", 80, 80),), (6,))])
    v6 = build_family_sets(filt, 6)
    assert v6.ports == (((0, 2**128 - 1), (0, 2**128 - 1), 6, (80, 80)),)


def test_input_sets_only_admit_local_destinations_and_forward_only_routes() -> None:
    nm = netmap(FilterRule(("100.64.0.20",), (dst("*", 80, 80),), (6,)))
    ruleset = render_ruleset(nm, "wg0", routes=("10.20.0.0/16",))
    in_dsts = {json.dumps(e["concat"][1]) for e in set_elems(ruleset, "in4_ports")}
    fwd_dsts = {json.dumps(e["concat"][1]) for e in set_elems(ruleset, "fwd4_ports")}
    assert in_dsts == {json.dumps(NODE_V4),
                       json.dumps({"prefix": {"addr": "10.20.0.0", "len": 16}})}
    assert fwd_dsts == {json.dumps({"prefix": {"addr": "10.20.0.0", "len": 16}})}


def test_elements_never_overlap() -> None:
    nm = netmap(
        FilterRule(("100.64.0.0/10", "100.64.0.5"), (dst(NODE_V4, 1, 1000),), (6, 17)),
        FilterRule(("100.64.0.0-100.64.0.9",), (dst(NODE_V4, 500, 2000),), (6,)),
        FilterRule(("100.64.0.7",), (dst("*"),), ()),
    )
    sets = build_family_sets(parse_filter(nm.packet_filter), 4)
    boxes = sets.ports
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            overlap = a[2] == b[2] and all(
                max(x[0], y[0]) <= min(x[1], y[1]) for x, y in
                ((a[0], b[0]), (a[1], b[1]), (a[3], b[3])))
            assert not overlap, (a, b)


def test_icmp_follows_any_rule_to_the_address_like_tailscale() -> None:
    rules = [FilterRule(("100.64.0.20",), (dst(NODE_V4, 22, 22),), (6,))]
    assert filter_allows(rules, "100.64.0.20", NODE_V4, 1)
    assert not filter_allows(rules, "100.64.0.21", NODE_V4, 1)
    assert not filter_allows(rules, "100.64.0.20", NODE_V4, 17, 22)
    assert not filter_allows(rules, "100.64.0.20", NODE_V4, 6, 23)


def test_other_protocols_need_all_ports() -> None:
    rules = [FilterRule(("10.0.0.1",), (dst("10.0.0.2", 5, 5),), (47,)),
             FilterRule(("10.0.0.3",), (dst("10.0.0.2"),), (47,))]
    assert not filter_allows(rules, "10.0.0.1", "10.0.0.2", 47)
    assert filter_allows(rules, "10.0.0.3", "10.0.0.2", 47)


def test_capgrant_rules_grant_no_packets() -> None:
    from policyc.policy.filtertypes import CapGrant

    rules = [FilterRule(("*",), cap_grant=(CapGrant(("100.64.0.10/32",), ()),))]
    assert parse_filter(rules).rules == ()


@pytest.mark.parametrize(("rule", "code"), [
    (FilterRule(("100.64.0.300",), (dst(NODE_V4, 22, 22),)), "N507"),
    (FilterRule(("100.64.0.1",), (dst("not-an-ip", 22, 22),)), "N507"),
    (FilterRule(("100.64.0.1",), (dst(NODE_V4, 22, 70000),)), "N507"),
    (FilterRule(("100.64.0.1",), (dst(NODE_V4, 30, 20),)), "N507"),
    (FilterRule(("100.64.0.1",), (dst(NODE_V4, 22, 22),), (300,)), "N507"),
    (FilterRule(("10.0.0.9-10.0.0.1",), (dst(NODE_V4, 22, 22),)), "N507"),
])
def test_malformed_rules_are_errors(rule: FilterRule, code: str) -> None:
    diags = Diagnostics()
    render_ruleset(netmap(rule), "wg0", diagnostics=diags)
    assert [d.code for d in diags.errors] == [code]


def test_capability_sources_are_a_warning_and_ignored() -> None:
    diags = Diagnostics()
    rule = FilterRule(("cap:foo",), (dst(NODE_V4, 22, 22),))
    render_ruleset(netmap(rule), "wg0", diagnostics=diags)
    assert [d.code for d in diags.warnings] == ["N506"]
    assert not diags.has_errors


@pytest.mark.parametrize("iface", ["", "a-very-long-interface-name", "wg/0"])
def test_bad_interface_name_is_n503(iface: str) -> None:
    diags = Diagnostics()
    render_ruleset(netmap(), iface, diagnostics=diags)
    assert [d.code for d in diags.errors] == ["N503"]


# --- property: sets decide exactly what filter_allows decides --------------------

V4 = [str(ipaddress.IPv4Address("10.0.0.0") + i) for i in range(12)]
V6 = [str(ipaddress.IPv6Address("fd00::") + i) for i in range(12)]
PROTOS = [6, 17, 132, 1, 58, 47]


@st.composite
def address_texts(draw: st.DrawFn) -> str:
    pool = draw(st.sampled_from([V4, V6]))
    kind = draw(st.sampled_from(["ip", "cidr", "range", "star"]))
    a = draw(st.integers(0, len(pool) - 1))
    if kind == "ip":
        return pool[a]
    if kind == "star":
        return "*"
    if kind == "range":
        b = draw(st.integers(a, len(pool) - 1))
        return f"{pool[a]}-{pool[b]}"
    length = draw(st.sampled_from([30, 31]) if pool is V4 else st.sampled_from([126, 127]))
    return f"{pool[a]}/{length}"


@st.composite
def rules(draw: st.DrawFn) -> FilterRule:
    srcs = tuple(draw(st.lists(address_texts(), min_size=1, max_size=3)))
    dsts = []
    for _ in range(draw(st.integers(1, 3))):
        first = draw(st.integers(0, 8))
        last = draw(st.one_of(st.integers(first, 10), st.just(65535)))
        all_ports = draw(st.booleans())
        dsts.append(dst(draw(address_texts()), 0 if all_ports else first,
                        65535 if all_ports else last))
    protos = tuple(draw(st.lists(st.sampled_from(PROTOS), max_size=3, unique=True)))
    return FilterRule(srcs, tuple(dsts), protos)


@settings(max_examples=150, deadline=None)
@given(st.lists(rules(), max_size=4), st.data())
def test_set_elements_accept_exactly_what_filter_allows_accepts(
        rule_list: list[FilterRule], data: st.DataObject) -> None:
    filt = parse_filter(rule_list)
    restrict_text = data.draw(st.sampled_from([None, "10.0.0.4/30", "fd00::/126"]))
    for fam, pool in ((4, [*V4, "10.0.0.200"]), (6, [*V6, "fd00::99"])):
        restrict = None
        if restrict_text is not None:
            restrict = address_set([restrict_text]).family(fam)
        sets = build_family_sets(filt, fam, restrict)
        for _ in range(25):
            src = data.draw(st.sampled_from(pool))
            dst_ip = data.draw(st.sampled_from(pool))
            proto = data.draw(st.sampled_from(PROTOS))
            port = data.draw(st.integers(0, 12))
            expected = filter_allows(filt, src, dst_ip, proto, port)
            d = int(ipaddress.ip_address(dst_ip))
            if restrict is not None:
                expected = expected and any(lo <= d <= hi for lo, hi in restrict)
            s = int(ipaddress.ip_address(src))
            assert sets_allow(sets, s, d, proto, port) == expected, (src, dst_ip, proto, port)


def test_apply_refuses_something_that_is_not_a_ruleset() -> None:
    from policyc.enforcer.nft import apply_ruleset

    result = apply_ruleset({"rules": []})
    assert not result.ok
    assert [d.code for d in result.diagnostics] == ["N501"]


def test_fail_closed_table_only_admits_established_flows_on_the_mesh() -> None:
    from policyc.enforcer.nft import fail_closed_ruleset

    text = render_text(fail_closed_ruleset("wg0"))
    assert 'iifname "wg0" jump closed_in' in text
    assert "ct state established,related accept\n\t\tdrop" in text

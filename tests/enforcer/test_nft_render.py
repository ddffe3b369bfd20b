"""Rendering FilterRules to nftables JSON: goldens, aggregation, semantics."""

from __future__ import annotations

import ipaddress
import itertools
import json

import pytest
from goldens import GOLDEN_ROOT, check_golden
from hypothesis import given, settings
from hypothesis import strategies as st

from policyc.enforcer.nft import filter_allows, render_ruleset, render_text
from policyc.enforcer.nftapply import element_count
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
        add = command.get("add", {})
        body = add.get("set") or add.get("map")
        if body and body["name"] == name:
            return list(body.get("elem", []))
    raise AssertionError(f"no set or map {name}")


def test_adjacent_sources_and_ports_merge_into_one_element() -> None:
    nm = netmap(
        FilterRule(("100.64.1.0/25",), (dst(NODE_V4, 22, 24),), (6,)),
        FilterRule(("100.64.1.128/25",), (dst(NODE_V4, 22, 22), dst(NODE_V4, 24, 24)), (6,)),
        FilterRule(("100.64.1.0/24",), (dst(NODE_V4, 23, 23),), (6,)),
    )
    ruleset = render_ruleset(nm, "wg0")
    # Both halves of the /24 reach the same entries: one class, one interval.
    assert set_elems(ruleset, "in_src4") == [
        [{"prefix": {"addr": "100.64.1.0", "len": 24}}, {"jump": {"target": "in4_c0"}}]]
    assert set_elems(ruleset, "in4_c0_ports") == [
        {"concat": [NODE_V4, 6, {"range": [22, 24]}]}]


def test_sources_with_the_same_entries_share_a_class_and_classes_are_numbered_by_address(
        ) -> None:
    nm = netmap(
        FilterRule(("100.64.0.30", "100.64.0.40"), (dst(NODE_V4, 22, 22),), (6,)),
        FilterRule(("100.64.0.20", "100.64.0.50"), (dst(NODE_V4, 22, 22),), (6,)),
        FilterRule(("100.64.0.40",), (dst(NODE_V4, 443, 443),), (6,)),
    )
    sets = build_family_sets(parse_filter(nm.packet_filter), 4)
    by_address = [(str(ipaddress.IPv4Address(lo)), n) for (lo, _hi), n in sets.sources]
    # .20, .30, .50 reach only tcp/22 (two different rules, one class); .40 also 443.
    assert by_address == [("100.64.0.20", 0), ("100.64.0.30", 0), ("100.64.0.40", 1),
                          ("100.64.0.50", 0)]
    assert len(sets.classes) == 2


def test_many_sources_times_many_ports_cost_their_sum_not_their_product() -> None:
    sources = tuple(f"100.65.{i // 64}.{4 * (i % 64)}/31" for i in range(2000))
    ranges = tuple(dst(NODE_V4, 1000 + 20 * i, 1009 + 20 * i) for i in range(500))
    ruleset = render_ruleset(netmap(FilterRule(sources, ranges, (6,))), "wg0")
    assert len(set_elems(ruleset, "in_src4")) == 2000
    assert len(set_elems(ruleset, "in4_c0_ports")) == 500
    assert set_elems(ruleset, "in4_c0_proto") == [{"concat": [NODE_V4, 1]}]
    assert element_count(ruleset) == 2000 + 500 + 1  # was 2000 x 500 + 2000
    # A second rule over the same sources adds its entries once, not per source.
    more = FilterRule(sources, (dst(NODE_V4, 22, 22),), (17,))
    ruleset = render_ruleset(netmap(FilterRule(sources, ranges, (6,)), more), "wg0")
    assert element_count(ruleset) == 2000 + 501 + 1


def test_dst_star_means_any_address_of_both_families() -> None:
    filt = parse_filter([FilterRule(("*",), (dst("*", 80, 80),), (6,))])
    v6 = build_family_sets(filt, 6)
    everything = (0, 2**128 - 1)
    assert v6.sources == ((everything, 0),)
    assert v6.classes[0].ports == ((everything, 6, (80, 80)),)


def test_input_sets_only_admit_local_destinations_and_forward_only_routes() -> None:
    nm = netmap(FilterRule(("100.64.0.20",), (dst("*", 80, 80),), (6,)))
    ruleset = render_ruleset(nm, "wg0", routes=("10.20.0.0/16",))
    in_dsts = {json.dumps(e["concat"][0]) for e in set_elems(ruleset, "in4_c0_ports")}
    fwd_dsts = {json.dumps(e["concat"][0]) for e in set_elems(ruleset, "fwd4_c0_ports")}
    assert in_dsts == {json.dumps(NODE_V4),
                       json.dumps({"prefix": {"addr": "10.20.0.0", "len": 16}})}
    assert fwd_dsts == {json.dumps({"prefix": {"addr": "10.20.0.0", "len": 16}})}


def test_without_routes_the_forward_maps_are_empty() -> None:
    ruleset = render_ruleset(netmap(FilterRule(("*",), (dst("*"),))), "wg0")
    assert set_elems(ruleset, "fwd_src4") == set_elems(ruleset, "fwd_src6") == []
    assert not any(c.get("add", {}).get("chain", {}).get("name", "").startswith("fwd")
                   for c in ruleset["nftables"])


def test_elements_never_overlap() -> None:
    nm = netmap(
        FilterRule(("100.64.0.0/10", "100.64.0.5"), (dst(NODE_V4, 1, 1000),), (6, 17)),
        FilterRule(("100.64.0.0-100.64.0.9",), (dst(NODE_V4, 500, 2000),), (6,)),
        FilterRule(("100.64.0.7",), (dst("*"),), ()),
    )
    sets = build_family_sets(parse_filter(nm.packet_filter), 4)
    for (a, _), (b, _) in itertools.pairwise(sets.sources):
        assert a[1] < b[0], (a, b)
    for cls in sets.classes:
        for i, x in enumerate(cls.ports):
            for y in cls.ports[i + 1:]:
                overlap = x[1] == y[1] and all(
                    max(u[0], v[0]) <= min(u[1], v[1]) for u, v in ((x[0], y[0]), (x[2], y[2])))
                assert not overlap, (x, y)
        for i, x in enumerate(cls.protocols):
            for y in cls.protocols[i + 1:]:
                assert x[1] != y[1] or max(x[0][0], y[0][0]) > min(x[0][1], y[0][1]), (x, y)


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


def _interval(value: object) -> tuple[int, int]:
    """An nft JSON element field as an inclusive integer interval."""
    if isinstance(value, int):
        return value, value
    if isinstance(value, str):
        return int(ipaddress.ip_address(value)), int(ipaddress.ip_address(value))
    assert isinstance(value, dict)
    if "prefix" in value:
        net = ipaddress.ip_network(f"{value['prefix']['addr']}/{value['prefix']['len']}")
        return int(net.network_address), int(net.broadcast_address)
    return _interval(value["range"][0])[0], _interval(value["range"][1])[1]


def _in_element(elem: object, key: tuple[int, ...]) -> bool:
    fields = elem["concat"] if isinstance(elem, dict) and "concat" in elem else [elem]
    return len(fields) == len(key) and all(
        lo <= k <= hi for k, (lo, hi) in zip(key, map(_interval, fields), strict=True))


class RenderedMatcher:
    """The rendered JSON, interpreted the way nft evaluates it on a new packet.

    mesh chain: `ip[6] saddr vmap @<dir>_src<fam>` finds the source's class
    chain; there, each rule's optional `meta l4proto { ... }` guard and its
    concatenated lookup `daddr . l4proto [. th dport] @set` decide.
    """

    def __init__(self, ruleset: dict) -> None:
        adds = [c["add"] for c in ruleset["nftables"] if "add" in c]
        self.named = {body["name"]: body for a in adds for kind, body in a.items()
                      if kind in ("set", "map")}
        self.rules: dict[str, list[list[dict]]] = {}
        for a in adds:
            if "rule" in a:
                self.rules.setdefault(a["rule"]["chain"], []).append(a["rule"]["expr"])

    def allows(self, chain: str, src: str, dst_ip: str, proto: int, port: int) -> bool:
        ip = ipaddress.ip_address(src)
        payload = "ip" if ip.version == 4 else "ip6"
        vmaps = [e["vmap"] for expr in self.rules[chain] for e in expr if "vmap" in e
                 and e["vmap"]["key"]["payload"] == {"protocol": payload, "field": "saddr"}]
        assert len(vmaps) == 1
        targets = [verdict["jump"]["target"]
                   for key, verdict in self.named[vmaps[0]["data"][1:]].get("elem", [])
                   if _in_element(key, (int(ip),))]
        assert len(targets) <= 1, targets  # source intervals never overlap
        if not targets:
            return False
        d = int(ipaddress.ip_address(dst_ip))
        for expr in self.rules.get(targets[0], []):
            guard = [e["match"]["right"]["set"] for e in expr if "match" in e
                     and e["match"]["left"] == {"meta": {"key": "l4proto"}}]
            if guard and proto not in guard[0]:
                continue
            lookup = next(e["match"] for e in expr if "match" in e
                          and "concat" in e["match"]["left"])
            key = (d, proto, port) if len(lookup["left"]["concat"]) == 3 else (d, proto)
            if any(_in_element(e, key) for e in self.named[lookup["right"][1:]].get("elem", [])):
                assert {"accept": None} in expr
                return True
        return False


ROUTES = [(), ("10.0.0.4/30",), ("fd00::/126",), ("10.0.0.0/29", "fd00::8/125")]


@settings(max_examples=150, deadline=None)
@given(st.lists(rules(), max_size=4), st.sampled_from(ROUTES), st.data())
def test_set_elements_accept_exactly_what_filter_allows_accepts(
        rule_list: list[FilterRule], routes: tuple[str, ...], data: st.DataObject) -> None:
    filt = parse_filter(rule_list)
    local = ("10.0.0.3", "fd00::3")
    ruleset = render_ruleset(NodeNetmap("n", local, (), tuple(rule_list)), "wg0",
                             routes=routes)
    matcher = RenderedMatcher(ruleset)
    served = {"mesh_in": address_set([*local, *routes]), "mesh_fwd": address_set(routes)}
    for fam, pool in ((4, [*V4, "10.0.0.200"]), (6, [*V6, "fd00::99"])):
        unclipped = build_family_sets(filt, fam)
        for _ in range(25):
            src = data.draw(st.sampled_from(pool))
            dst_ip = data.draw(st.sampled_from(pool))
            proto = data.draw(st.sampled_from(PROTOS))
            port = data.draw(st.integers(0, 12))
            allowed = filter_allows(filt, src, dst_ip, proto, port)
            s, d = int(ipaddress.ip_address(src)), int(ipaddress.ip_address(dst_ip))
            case = (src, dst_ip, proto, port)
            assert sets_allow(unclipped, s, d, proto, port) == allowed, case
            for chain, clip in served.items():
                expected = allowed and clip.contains(fam, d)
                assert matcher.allows(chain, src, dst_ip, proto, port) == expected, (chain, case)


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

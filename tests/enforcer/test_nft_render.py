"""Rendering FilterRules to nftables JSON: goldens, aggregation, semantics."""

from __future__ import annotations

import ipaddress
import itertools
import json
from unittest import mock

import pytest
from goldens import GOLDEN_ROOT, check_golden
from hypothesis import given, settings
from hypothesis import strategies as st

from policyc.diagnostics.diagnostics import Diagnostics
from policyc.enforcer import nftrender
from policyc.enforcer.nft import filter_allows, render_ruleset, render_text
from policyc.enforcer.nftapply import canonical_rule, element_count, layout_counts
from policyc.enforcer.nftrender import INLINE_RULES, direct_classes, inline_kinds
from policyc.enforcer.nftsets import (
    ClassSets,
    FamilySets,
    address_set,
    build_family_sets,
    parse_filter,
    sets_allow,
)
from policyc.netmap import FilterRule, NetPortRange, NodeNetmap, PortRange

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
    # All three class layouts: 20 sources to one port (a class chain of
    # plain rules), 20 sources to 10 ports (a chain with a named ports set,
    # ICMP inline), one source to GRE + ICMP on 10 subnets (direct elements).
    "class_layouts": (netmap(
        FilterRule(tuple(f"100.64.1.{2 * i}" for i in range(20)), (dst(NODE_V4, 22, 22),),
                   (6,)),
        FilterRule(tuple(f"100.64.2.{2 * i}" for i in range(20)),
                   tuple(dst(NODE_V4, 1000 + 10 * i, 1000 + 10 * i) for i in range(10)), (6,)),
        FilterRule(("10.0.0.0/8",), tuple(dst(f"10.20.{2 * i}.0/24") for i in range(10)),
                   (47,)),
    ), ("10.20.0.0/16",)),
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


def chain_rules(ruleset: dict, chain: str) -> list[str]:
    """The rules of one chain in nft syntax."""
    text = render_text(ruleset)
    body = text.split(f"\tchain {chain} {{\n", 1)[1].split("\n\t}", 1)[0]
    return [line.strip() for line in body.splitlines()]


MARK_ACCEPT = "ct mark set ct mark | 0x20000000 accept"


def test_adjacent_sources_and_ports_merge_into_one_element() -> None:
    nm = netmap(
        FilterRule(("100.64.1.0/25",), (dst(NODE_V4, 22, 24),), (6,)),
        FilterRule(("100.64.1.128/25",), (dst(NODE_V4, 22, 22), dst(NODE_V4, 24, 24)), (6,)),
        FilterRule(("100.64.1.0/24",), (dst(NODE_V4, 23, 23),), (6,)),
    )
    ruleset = render_ruleset(nm, "wg0")
    # Both halves of the /24 reach the same entries: one class, one interval
    # (a small class: direct elements, no map entry or chain).
    sources = {"prefix": {"addr": "100.64.1.0", "len": 24}}
    assert set_elems(ruleset, "in4_direct_ports") == [
        {"concat": [sources, NODE_V4, 6, {"range": [22, 24]}]}]
    assert set_elems(ruleset, "in4_direct_proto") == [{"concat": [sources, NODE_V4, 1]}]
    assert set_elems(ruleset, "in_src4") == []
    # With many such sources the class gets a chain: one interval, one jump.
    wide = tuple(FilterRule((f"100.64.{2 * i}.0/25",), (dst(NODE_V4, 22, 24),), (6,))
                 for i in range(2, 40))
    ruleset = render_ruleset(netmap(*nm.packet_filter, *wide), "wg0")
    assert set_elems(ruleset, "in_src4")[:2] == [
        [sources, {"jump": {"target": "in4_c0"}}],
        [{"prefix": {"addr": "100.64.4.0", "len": 25}}, {"jump": {"target": "in4_c0"}}]]
    assert chain_rules(ruleset, "in4_c0") == [
        f"ip daddr {NODE_V4} tcp dport 22-24 {MARK_ACCEPT}",
        f"ip daddr {NODE_V4} meta l4proto 1 {MARK_ACCEPT}"]


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
    # The one ICMP entry is a plain rule next to the ports lookup.
    assert chain_rules(ruleset, "in4_c0") == [
        "meta l4proto { 6, 17, 132 } ip daddr . meta l4proto . th dport @in4_c0_ports "
        + MARK_ACCEPT, f"ip daddr {NODE_V4} meta l4proto 1 {MARK_ACCEPT}"]
    assert element_count(ruleset) == 2000 + 500  # was 2000 x 500 + 2000
    # A second rule over the same sources adds its entries once, not per source.
    more = FilterRule(sources, (dst(NODE_V4, 22, 22),), (17,))
    ruleset = render_ruleset(netmap(FilterRule(sources, ranges, (6,)), more), "wg0")
    assert element_count(ruleset) == 2000 + 501


def test_dst_star_means_any_address_of_both_families() -> None:
    filt = parse_filter([FilterRule(("*",), (dst("*", 80, 80),), (6,))])
    v6 = build_family_sets(filt, 6)
    everything = (0, 2**128 - 1)
    assert v6.sources == ((everything, 0),)
    assert v6.classes[0].ports == ((everything, 6, (80, 80)),)


def test_input_sets_only_admit_local_destinations_and_forward_only_routes() -> None:
    nm = netmap(FilterRule(("100.64.0.20",), (dst("*", 80, 80),), (6,)))
    ruleset = render_ruleset(nm, "wg0", routes=("10.20.0.0/16",))
    routed = {"prefix": {"addr": "10.20.0.0", "len": 16}}
    src = "100.64.0.20"
    assert set_elems(ruleset, "in4_direct_ports") == [
        {"concat": [src, routed, 6, 80]}, {"concat": [src, NODE_V4, 6, 80]}]
    assert set_elems(ruleset, "fwd4_direct_ports") == [{"concat": [src, routed, 6, 80]}]
    # The same in a class chain (many sources: not direct).
    many = tuple(f"100.64.0.{i}" for i in range(20, 120, 2))
    ruleset = render_ruleset(netmap(FilterRule(many, (dst("*", 80, 80),), (6,))), "wg0",
                             routes=("10.20.0.0/16",))
    assert chain_rules(ruleset, "in4_c0") == [
        f"ip daddr 10.20.0.0/16 tcp dport 80 {MARK_ACCEPT}",
        f"ip daddr {NODE_V4} tcp dport 80 {MARK_ACCEPT}",
        f"ip daddr 10.20.0.0/16 meta l4proto 1 {MARK_ACCEPT}",
        f"ip daddr {NODE_V4} meta l4proto 1 {MARK_ACCEPT}"]
    assert chain_rules(ruleset, "fwd4_c0") == [
        f"ip daddr 10.20.0.0/16 tcp dport 80 {MARK_ACCEPT}",
        f"ip daddr 10.20.0.0/16 meta l4proto 1 {MARK_ACCEPT}"]


def test_without_routes_the_forward_maps_are_empty() -> None:
    ruleset = render_ruleset(netmap(FilterRule(("*",), (dst("*"),))), "wg0")
    assert set_elems(ruleset, "fwd_src4") == set_elems(ruleset, "fwd_src6") == []
    assert not any(c.get("add", {}).get("chain", {}).get("name", "").startswith("fwd")
                   for c in ruleset["nftables"])


def _class(ports: int, protocols: int) -> ClassSets:
    return ClassSets(tuple(((1, 1), 6, (p, p)) for p in range(ports)),
                     tuple(((1, 1), 40 + p) for p in range(protocols)))


@pytest.mark.parametrize(("ports", "protocols", "inline"), [
    (0, 0, (True, True)),
    (2, 1, (True, True)),
    (INLINE_RULES - 1, 1, (True, True)),    # exactly the budget: all plain rules
    (INLINE_RULES, 1, (False, True)),       # ports do not fit after ICMP: a set
    (INLINE_RULES, 0, (True, True)),
    (INLINE_RULES + 1, 0, (False, True)),
    (500, 3, (False, True)),
    (2, 40, (True, False)),
    (INLINE_RULES + 1, INLINE_RULES + 1, (False, False)),
])
def test_small_lookups_are_inlined_within_the_budget(
        ports: int, protocols: int, inline: tuple[bool, bool]) -> None:
    assert inline_kinds(_class(ports, protocols)) == inline


def test_many_single_source_rules_need_no_chains() -> None:
    # N rules with their own source: N small classes, all direct elements
    # (source . destination . protocol [. port]) in two shared sets; no
    # class chain, no per-class set.
    rules = tuple(FilterRule((f"100.65.{i // 64}.{4 * (i % 64)}",),
                             (dst(NODE_V4, 1000 + i, 1000 + i),), (6,)) for i in range(300))
    ruleset = render_ruleset(netmap(*rules), "wg0")
    assert layout_counts(ruleset) == {"elements": 600, "sets": 4 + 2, "chains": 5,
                                      "rules": 4 + (7 + 2) + 6}
    assert set_elems(ruleset, "in4_direct_ports")[-1] == {
        "concat": ["100.65.4.172", NODE_V4, 6, 1299]}
    assert chain_rules(ruleset, "mesh_in")[3:5] == [
        "meta l4proto { 6, 17, 132 } ip saddr . ip daddr . meta l4proto . th dport "
        f"@in4_direct_ports {MARK_ACCEPT}",
        f"ip saddr . ip daddr . meta l4proto @in4_direct_proto {MARK_ACCEPT}"]


@pytest.mark.parametrize(("sources", "entries", "direct"), [
    (1, 2, True), (1, 30, True), (2, 18, True), (2, 19, False), (3, 9, True),
    (3, 10, False), (20, 1, True), (10_000, 1, True), (20, 2, False), (2000, 501, False),
])
def test_small_classes_are_direct_and_wide_ones_get_a_chain(
        sources: int, entries: int, direct: bool) -> None:
    cls = _class(entries, 0)
    sets = FamilySets(tuple(((2 * i, 2 * i), 0) for i in range(sources)), (cls,))
    assert direct_classes(sets) == (direct,)


def test_class_chains_stay_short() -> None:
    # Per packet: at most INLINE_RULES plain rules and one set lookup.
    for case, (nm, routes) in CASES.items():
        ruleset = render_ruleset(nm, "wg0", routes=routes)
        for command in ruleset["nftables"]:
            name = command.get("add", {}).get("chain", {}).get("name", "")
            if "_c" in name:
                assert len(chain_rules(ruleset, name)) <= INLINE_RULES + 1, (case, name)


def _expr(text: str) -> list[dict]:
    """A few rule shapes in nft JSON, by a short name."""
    def match(left: dict, right: object) -> dict:
        return {"match": {"op": "==", "left": left, "right": right}}

    daddr = match({"payload": {"protocol": "ip", "field": "daddr"}}, NODE_V4)
    l4 = {"meta": {"key": "l4proto"}}
    shapes = {
        "tcp dport 22": [daddr, match({"payload": {"protocol": "tcp", "field": "dport"}}, 22)],
        "meta l4proto 6 th dport 22": [daddr, match(l4, 6), match(
            {"payload": {"protocol": "th", "field": "dport"}}, 22)],
        "meta l4proto 17 th dport 22": [daddr, match(l4, 17), match(
            {"payload": {"protocol": "th", "field": "dport"}}, 22)],
        "tcp dport 23": [daddr, match({"payload": {"protocol": "tcp", "field": "dport"}}, 23)],
        "meta l4proto 6": [daddr, match(l4, 6)],
    }
    return [*shapes[text], {"accept": None}]


def test_read_back_normalises_respellings_but_not_differences() -> None:
    # nft lists `meta l4proto 6 th dport 22` as `tcp dport 22`: equal.
    assert canonical_rule(_expr("meta l4proto 6 th dport 22")) == canonical_rule(
        _expr("tcp dport 22"))
    for other in ("meta l4proto 17 th dport 22", "tcp dport 23", "meta l4proto 6"):
        assert canonical_rule(_expr(other)) != canonical_rule(_expr("tcp dport 22")), other


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
    from policyc.netmap import CapGrant

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
    """The rendered JSON, interpreted the way nft evaluates a new packet.

    A chain's rules are tried in order; a rule is a conjunction of matches
    followed by statements. Understood: `ct state` (the packet is new),
    the ND rule (never an ND packet here), `ip[6] saddr|daddr` (with the
    implicit family check), `tcp|udp|sctp dport` (with nft's implicit
    `meta l4proto` dependency), `th dport`, `meta l4proto`, concatenations,
    and right-hand values, ranges, prefixes, `{ sets }` and `@named` sets;
    verdicts accept, drop and `vmap @map` (a jump: a class chain that does
    not decide returns to the mesh chain).
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
        packet = {"saddr": int(ip), "daddr": int(ipaddress.ip_address(dst_ip)),
                  "proto": proto, "port": port, "payload": "ip" if ip.version == 4 else "ip6"}
        verdict = self._run(chain, packet)
        assert verdict is not None, "the mesh chain ends in a drop"
        return verdict

    def _run(self, chain: str, packet: dict) -> bool | None:
        """True: accepted, False: dropped, None: the chain did not decide."""
        for expr in self.rules.get(chain, []):
            if not self._rule_matches(expr, packet):
                continue
            last = expr[-1]
            if "vmap" in last:
                assert last["vmap"]["key"]["payload"]["field"] == "saddr"
                key = self._field(last["vmap"]["key"], packet)
                if key is None:
                    continue  # the other family's map
                targets = [verdict["jump"]["target"]
                           for k, verdict in self.named[last["vmap"]["data"][1:]].get("elem", [])
                           if _in_element(k, (key,))]
                assert len(targets) <= 1, targets  # source intervals never overlap
                if targets:
                    assert chain.startswith("mesh_") and not targets[0].startswith("mesh_")
                    decided = self._run(targets[0], packet)
                    if decided is not None:
                        return decided
            elif last == {"accept": None}:
                return True
            elif last == {"drop": None}:
                return False
        return None

    def _rule_matches(self, expr: list[dict], packet: dict) -> bool:
        for e in expr:
            if "match" not in e:
                continue
            match = e["match"]
            left, right = match["left"], match["right"]
            if "ct" in left:
                assert left == {"ct": {"key": "state"}} and match["op"] == "in"
                return False  # established/related or invalid: a new packet is neither
            if left.get("payload", {}).get("protocol") == "icmpv6":
                return False  # the ND rule: not an ND packet
            assert match["op"] == "==", match
            fields = left.get("concat", [left])
            key = tuple(self._field(f, packet) for f in fields)
            if None in key:
                return False  # the other family, or `tcp dport` on a UDP packet
            if isinstance(right, str) and right.startswith("@"):
                elements = self.named[right[1:]].get("elem", [])
            elif isinstance(right, dict) and "set" in right:
                elements = right["set"]
            else:
                elements = [right]
            if not any(_in_element(el, key) for el in elements):
                return False
        return True

    @staticmethod
    def _field(left: dict, packet: dict) -> int | None:
        if left == {"meta": {"key": "l4proto"}}:
            return packet["proto"]
        p = left["payload"]
        if p["field"] in ("saddr", "daddr"):
            assert p["protocol"] in ("ip", "ip6"), p
            return packet[p["field"]] if p["protocol"] == packet["payload"] else None
        assert p["field"] == "dport", p
        if p["protocol"] == "th":
            # nothing guards th dport but an earlier l4proto match
            assert packet["proto"] in (6, 17, 132), "th dport read from a portless protocol"
            return packet["port"]
        named = {"tcp": 6, "udp": 17, "sctp": 132}[p["protocol"]]
        return packet["port"] if packet["proto"] == named else None


ROUTES = [(), ("10.0.0.4/30",), ("fd00::/126",), ("10.0.0.0/29", "fd00::8/125")]


@settings(max_examples=150, deadline=None)
@given(st.lists(rules(), max_size=4), st.sampled_from(ROUTES), st.data())
def test_set_elements_accept_exactly_what_filter_allows_accepts(
        rule_list: list[FilterRule], routes: tuple[str, ...], data: st.DataObject) -> None:
    filt = parse_filter(rule_list)
    local = ("10.0.0.3", "fd00::3")
    nm = NodeNetmap("n", local, (), tuple(rule_list))
    # As rendered, and with each class layout forced: all direct; all class
    # chains of plain rules (as far as the budget goes); all named class sets.
    matchers = [RenderedMatcher(render_ruleset(nm, "wg0", routes=routes))]
    for slack, inline in ((10**9, INLINE_RULES), (-(10**9), INLINE_RULES), (-(10**9), 0)):
        with mock.patch.object(nftrender, "DIRECT_SLACK", slack), \
                mock.patch.object(nftrender, "INLINE_RULES", inline):
            matchers.append(RenderedMatcher(render_ruleset(nm, "wg0", routes=routes)))
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
                for matcher in matchers:
                    assert matcher.allows(chain, src, dst_ip, proto, port) == expected, (
                        chain, case)


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

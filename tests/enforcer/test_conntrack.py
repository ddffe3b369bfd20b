"""Revocation decisions (conntrack.py) on a scripted conntrack table: which
flows are cut, with exactly which `conntrack -D` tuple. No kernel needed:
the `conntrack` and `ip` runs are replaced by a fake that records them."""

from __future__ import annotations

import ipaddress
import random
import subprocess
from collections.abc import Iterator, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policyc.enforcer import conntrack, nft
from policyc.enforcer.nftrender import MESH_MARK
from policyc.enforcer.nftsets import address_set, filter_allows, parse_filter
from policyc.netmap import FilterRule, NetPortRange, NodeNetmap, PortRange

NODE4, NODE6 = "100.64.0.10", "fd7a:115c:a1e0::a"
PEER4, PEER6 = "100.64.0.20", "fd7a:115c:a1e0::14"


def flow_xml(src: str, dst: str, proto: int, sport: int | None = None,
             dport: int | None = None, mark: int = 0) -> str:
    l3 = "ipv6" if ":" in src else "ipv4"
    ports = "" if sport is None else f"<sport>{sport}</sport><dport>{dport}</dport>"
    return (f'<flow><meta direction="original"><layer3 protonum="2" protoname="{l3}">'
            f"<src>{src}</src><dst>{dst}</dst></layer3>"
            f'<layer4 protonum="{proto}" protoname="x">{ports}</layer4></meta>'
            f'<meta direction="independent"><mark>{mark}</mark></meta></flow>')


class FakeTools:
    def __init__(self) -> None:
        self.listing = ""
        self.deleted: list[list[str]] = []

    def table(self, *flows: str) -> None:
        self.listing = '<?xml version="1.0"?>\n<conntrack>' + "".join(flows) + "</conntrack>"

    def run(self, args: Sequence[str]) -> subprocess.CompletedProcess[str]:
        args = list(args)
        if args[:2] == ["conntrack", "-L"]:
            return subprocess.CompletedProcess(args, 0, self.listing, "")
        if args[:2] == ["conntrack", "-D"]:
            self.deleted.append(args)
            return subprocess.CompletedProcess(args, 0, "", "1 flow entries deleted")
        if args[:2] == ["ip", "-j"]:
            return subprocess.CompletedProcess(
                args, 0, f'[{{"addr_info": [{{"local": "{NODE4}"}}, {{"local": "{NODE6}"}}]}}]',
                "")
        raise AssertionError(args)


@pytest.fixture
def tools(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeTools]:
    fake = FakeTools()
    monkeypatch.setattr(conntrack, "_run", fake.run)
    yield fake


def rule(src: str, dst: str, first: int = 0, last: int = 65535,
         protos: tuple[int, ...] = ()) -> FilterRule:
    return FilterRule((src,), (NetPortRange(dst, PortRange(first, last)),), protos)


def test_forwarded_flows_into_a_route_no_longer_served_are_cut(tools: FakeTools) -> None:
    # The subnet router's filter still says `*:*` (as Tailscale's does for a
    # `*` destination), but it no longer serves 10.20.0.0/16: the loaded table
    # admits no new flow there, so the established ones must go too.
    tools.table(flow_xml(PEER4, "10.20.0.5", 6, 40000, 443, MESH_MARK),
                flow_xml(PEER4, "10.30.0.5", 6, 40001, 443, MESH_MARK),
                flow_xml(PEER4, NODE4, 6, 40002, 22, MESH_MARK))
    netmap = NodeNetmap("router", (NODE4, NODE6), (), (rule("*", "*"),),
                        routes=("10.30.0.0/16",))
    result = nft.revoke_disallowed_flows(netmap.packet_filter, "wg0",
                                         served=nft.served_destinations(netmap))
    assert result.ok and result.examined == 3
    assert [(f.dst, f.dport) for f in result.revoked] == [("10.20.0.5", 443)]
    assert tools.deleted == [["conntrack", "-D", "-f", "ipv4", "-p", "tcp", "-s", PEER4,
                              "-d", "10.20.0.5", "--sport", "40000", "--dport", "443"]]


def test_without_served_destinations_only_the_rules_decide(tools: FakeTools) -> None:
    tools.table(flow_xml(PEER4, "10.20.0.5", 6, 40000, 443, MESH_MARK))
    result = conntrack.revoke_disallowed_flows((rule("*", "*"),), "wg0")
    assert result.ok and result.revoked == ()


# --- the per-flow decision: FlowJudge == filter_allows (and served) ------------------

V4 = [str(ipaddress.IPv4Address("10.0.0.0") + i) for i in range(10)]
V6 = [str(ipaddress.IPv6Address("fd00::") + i) for i in range(10)]
PROTOS = [6, 17, 132, 1, 58, 47]


@st.composite
def addresses(draw: st.DrawFn) -> str:
    pool = draw(st.sampled_from([V4, V6]))
    kind = draw(st.sampled_from(["ip", "range", "star"]))
    a = draw(st.integers(0, len(pool) - 1))
    if kind == "star":
        return "*"
    if kind == "range":
        return f"{pool[a]}-{pool[draw(st.integers(a, len(pool) - 1))]}"
    return pool[a]


@st.composite
def filter_rules(draw: st.DrawFn) -> FilterRule:
    srcs = tuple(draw(st.lists(addresses(), min_size=1, max_size=3)))
    dsts = []
    for _ in range(draw(st.integers(1, 3))):
        first = draw(st.integers(0, 6))
        last = draw(st.one_of(st.integers(first, 8), st.just(65535)))
        if draw(st.booleans()):
            first, last = 0, 65535
        dsts.append(NetPortRange(draw(addresses()), PortRange(first, last)))
    protos = tuple(draw(st.lists(st.sampled_from(PROTOS), max_size=3, unique=True)))
    return FilterRule(srcs, tuple(dsts), protos)


@settings(max_examples=150, deadline=None)
@given(st.lists(filter_rules(), max_size=4),
       st.sampled_from([None, (), (V4[2], V6[2]), (V4[2], "10.0.0.4/30", "fd00::/126")]),
       st.data())
def test_flow_judge_decides_like_filter_allows_within_served(
        rules: list[FilterRule], served: tuple[str, ...] | None, data: st.DataObject) -> None:
    filt = parse_filter(rules)
    judge = conntrack.FlowJudge(filt, None if served is None else address_set(served))
    clip = None if served is None else address_set(served)
    for _ in range(30):
        pool = data.draw(st.sampled_from([V4, V6]))
        src, dst = data.draw(st.sampled_from(pool)), data.draw(st.sampled_from(pool))
        proto = data.draw(st.sampled_from(PROTOS))
        port = data.draw(st.integers(0, 10)) if proto in (6, 17, 132) else None
        flow = conntrack.Flow(6 if pool is V6 else 4, src, dst, proto, port and 1000, port, 0)
        expected = filter_allows(filt, src, dst, proto, port or 0) and (
            clip is None or clip.contains(flow.family, int(ipaddress.ip_address(dst))))
        assert judge.allows(flow) == expected, (flow, judge.allows(flow))


def test_judging_many_flows_agrees_with_filter_allows() -> None:
    # 1,000 rules x 10,000 flows (benchmarks/bench_check.py times this shape).
    rnd = random.Random(1)
    rules = [FilterRule(tuple(f"100.64.{rnd.randint(0, 40)}.{rnd.randint(0, 255)}"
                              for _ in range(5)),
                        tuple(NetPortRange(NODE4, PortRange(p, p))
                              for p in rnd.sample(range(1, 65535), 5)), (6, 17))
             for _ in range(1000)]
    flows = [conntrack.Flow(4, f"100.64.{rnd.randint(0, 40)}.{rnd.randint(0, 255)}", NODE4,
                            6, 1000, rnd.randint(1, 65535), MESH_MARK) for _ in range(10000)]
    judge = conntrack.FlowJudge(parse_filter(rules))
    decided = [judge.allows(f) for f in flows]
    spot = parse_filter(rules)
    for flow, allowed in list(zip(flows, decided, strict=True))[:200]:
        assert allowed == filter_allows(spot, flow.src, flow.dst, 6, flow.dport or 0)


def test_an_unreadable_listing_is_an_error_not_an_empty_table(tools: FakeTools) -> None:
    tools.listing = '<?xml version="1.0"?>\n<conntrack><flow><meta direction="orig'
    result = conntrack.revoke_disallowed_flows((rule(PEER4, NODE4, 22, 22),), "wg0")
    assert not result.ok and [d.code for d in result.diagnostics] == ["N509"]


def test_an_empty_listing_is_an_empty_table(tools: FakeTools) -> None:
    tools.listing = ""
    result = conntrack.revoke_disallowed_flows((rule(PEER4, NODE4, 22, 22),), "wg0")
    assert result.ok and result.examined == 0

"""Revocation decisions (conntrack.py) on a scripted conntrack table: which
flows are cut, with exactly which `conntrack -D` tuple. No kernel needed:
the `conntrack` and `ip` runs are replaced by a fake that records them."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator, Sequence

import pytest

from policyc.enforcer import conntrack, nft
from policyc.enforcer.nftrender import MESH_MARK
from policyc.policy.filtertypes import FilterRule, NetPortRange, NodeNetmap, PortRange

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

"""Privileged: real nftables in network namespaces this test creates.

Two namespaces joined by a veth pair: `peer` (the mesh peers, several
source addresses) and `node` (enforced; its veth end plays the mesh
interface `mesh0`). Nothing runs in the root namespace.
"""

from __future__ import annotations

import copy
import itertools
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from policyc.enforcer.binding import BindingMissing, import_nftables
from policyc.enforcer.netns import run_in_netns
from policyc.enforcer.nft import (
    apply_ruleset,
    check_drift,
    counter_packets,
    enforce_netmap,
    fail_closed_ruleset,
    read_table,
    remove_table,
    render_ruleset,
    render_text,
    repair,
)
from policyc.netmap import FilterRule, NetPortRange, NodeNetmap, PortRange


def _missing_prerequisite() -> str | None:
    if os.geteuid() != 0:
        return "needs root for network namespaces and nftables"
    for tool in ("ip", "nft", "conntrack", "ping"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    try:
        import_nftables()
    except BindingMissing as err:
        return str(err)
    return None


pytestmark = [pytest.mark.privileged,
              pytest.mark.skipif(_missing_prerequisite() is not None,
                                 reason=str(_missing_prerequisite()))]

NODE4, NODE6 = "100.64.0.10", "fd7a:115c:a1e0::a"
PEER4, OTHER4 = "100.64.0.20", "100.64.0.21"
PEER6, OTHER6 = "fd7a:115c:a1e0::14", "fd7a:115c:a1e0::15"
THIRD4, THIRD6 = "100.64.0.22", "fd7a:115c:a1e0::16"
IFACE = "mesh0"
_counter = itertools.count()


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, check=check, timeout=20)


@dataclass
class Pair:
    node: str
    peer: str


@pytest.fixture
def pair() -> Iterator[Pair]:
    base = f"pc-{os.getpid()}-{next(_counter)}"
    p = Pair(node=f"{base}-n", peer=f"{base}-p")
    try:
        sh("ip", "netns", "add", p.node)
        sh("ip", "netns", "add", p.peer)
        sh("ip", "link", "add", "veth-pc", "netns", p.peer, "type", "veth",
           "peer", "name", IFACE, "netns", p.node)
        for ns, dev, addrs in ((p.node, IFACE, (f"{NODE4}/24", f"{NODE6}/64")),
                               (p.peer, "veth-pc", (f"{PEER4}/24", f"{OTHER4}/24",
                                                    f"{THIRD4}/24", f"{PEER6}/64",
                                                    f"{OTHER6}/64", f"{THIRD6}/64"))):
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            for addr in addrs:
                sh("ip", "-n", ns, "addr", "add", addr, "dev", dev, "nodad")
            sh("ip", "-n", ns, "link", "set", dev, "up")
        yield p
    finally:
        for ns in (p.node, p.peer):
            sh("ip", "netns", "del", ns, check=False)


def dst(ip: str, first: int = 0, last: int = 65535) -> NetPortRange:
    return NetPortRange(ip, PortRange(first, last))


def netmap(*rules: FilterRule) -> NodeNetmap:
    return NodeNetmap("node", (NODE4, NODE6), (), tuple(rules))


SSH_FROM_PEER = netmap(FilterRule((PEER4, PEER6), (dst(NODE4, 22, 22), dst(NODE6, 22, 22),
                                                   dst(NODE4, 80, 80)), (6,)))


class Server:
    """TCP listeners in the node namespace that record what they receive."""

    def __init__(self, ns: str, ports: tuple[int, ...]) -> None:
        self.received: dict[int, bytes] = {}
        self.sockets = [run_in_netns(ns, lambda p=p, fam=fam: self._listen(fam, p))
                        for p in ports for fam in (socket.AF_INET, socket.AF_INET6)]
        for sock in self.sockets:
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    @staticmethod
    def _listen(fam: int, port: int) -> socket.socket:
        sock = socket.socket(fam, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if fam == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(("::" if fam == socket.AF_INET6 else "0.0.0.0", port))
        sock.listen(8)
        return sock

    def _serve(self, sock: socket.socket) -> None:
        port = sock.getsockname()[1]  # not after accept: close() may have run by then
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            threading.Thread(target=self._read, args=(conn, port), daemon=True).start()

    def _read(self, conn: socket.socket, port: int) -> None:
        with conn:
            while data := conn.recv(100):
                self.received[port] = self.received.get(port, b"") + data

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()


def connect(ns: str, src: str, target: str, port: int, timeout: float = 0.8
            ) -> socket.socket | None:
    """A TCP connection from src (in ns), or None if it is not admitted."""
    def attempt() -> socket.socket | None:
        fam = socket.AF_INET6 if ":" in target else socket.AF_INET
        sock = socket.socket(fam, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.bind((src, 0))
            sock.connect((target, port))
        except OSError:
            sock.close()
            return None
        return sock

    return run_in_netns(ns, attempt)


def pings(ns: str, src: str, target: str) -> bool:
    return sh("ip", "netns", "exec", ns, "ping", "-c1", "-W1", "-I", src, target,
              check=False).returncode == 0


def applied(ruleset: dict, ns: str) -> None:
    result = apply_ruleset(ruleset, netns=ns)
    assert result.ok and result.verified, [str(d) for d in result.diagnostics]


def test_allowed_tcp_connects_and_disallowed_is_dropped_and_counted(pair: Pair) -> None:
    applied(render_ruleset(SSH_FROM_PEER, IFACE), pair.node)
    server = Server(pair.node, (22, 23))
    try:
        for src, target in ((PEER4, NODE4), (PEER6, NODE6)):
            ok = connect(pair.peer, src, target, 22)
            assert ok is not None
            ok.close()
            assert connect(pair.peer, src, target, 23) is None
        assert connect(pair.peer, OTHER4, NODE4, 22) is None
        assert connect(pair.peer, OTHER6, NODE6, 22) is None
        assert (counter_packets("in_dropped", pair.node) or 0) >= 4
    finally:
        server.close()


def test_icmp_follows_the_rules_in_both_families(pair: Pair) -> None:
    applied(render_ruleset(SSH_FROM_PEER, IFACE), pair.node)
    assert pings(pair.peer, PEER4, NODE4)
    assert pings(pair.peer, PEER6, NODE6)
    assert not pings(pair.peer, OTHER4, NODE4)
    assert not pings(pair.peer, OTHER6, NODE6)


@pytest.mark.parametrize("name", ["SSH_FROM_PEER", "DRIFT"])
def test_rendered_text_is_valid_nft_syntax(pair: Pair, tmp_path, name: str) -> None:
    nm = {"SSH_FROM_PEER": SSH_FROM_PEER, "DRIFT": DRIFT}[name]
    path = tmp_path / "ruleset.nft"
    path.write_text(render_text(render_ruleset(nm, IFACE, routes=("100.64.0.0/16",
                                                                  "fd7a:115c:a1e0::/64"))))
    checked = sh("ip", "netns", "exec", pair.node, "nft", "-c", "-f", str(path), check=False)
    assert checked.returncode == 0, checked.stderr


GOLDEN_TEXTS = sorted((Path(__file__).parents[1] / "golden" / "nft").glob("*.nft"))


@pytest.mark.parametrize("golden", GOLDEN_TEXTS, ids=[p.stem for p in GOLDEN_TEXTS])
def test_golden_texts_are_valid_nft_syntax(pair: Pair, golden: Path) -> None:
    checked = sh("ip", "netns", "exec", pair.node, "nft", "-c", "-f", str(golden),
                 check=False)
    assert checked.returncode == 0, checked.stderr


def broken(ruleset: dict) -> dict:
    bad = copy.deepcopy(ruleset)
    bad["nftables"].append({"add": {"rule": {
        "family": "inet", "table": "policyc", "chain": "mesh_in",
        "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip",
                                                               "field": "saddr"}},
                            "right": "@no_such_set"}}, {"accept": None}]}}})
    return bad


def test_a_rejected_load_keeps_the_previous_table_in_force(pair: Pair) -> None:
    good = render_ruleset(SSH_FROM_PEER, IFACE)
    applied(good, pair.node)
    result = apply_ruleset(broken(render_ruleset(netmap(), IFACE)), netns=pair.node)
    assert not result.ok and not result.fail_closed
    assert "N501" in [d.code for d in result.diagnostics]
    assert check_drift(good, pair.node).ok
    server = Server(pair.node, (22, 23))
    try:
        assert connect(pair.peer, PEER4, NODE4, 22) is not None
        assert connect(pair.peer, PEER4, NODE4, 23) is None
    finally:
        server.close()


def test_a_rejected_first_load_fails_closed(pair: Pair) -> None:
    result = apply_ruleset(broken(render_ruleset(SSH_FROM_PEER, IFACE)), netns=pair.node)
    assert result.fail_closed and not result.ok
    assert "N501" in [d.code for d in result.diagnostics]
    server = Server(pair.node, (22,))
    try:
        assert connect(pair.peer, PEER4, NODE4, 22) is None
        assert not pings(pair.peer, PEER4, NODE4)
    finally:
        server.close()
    assert read_table(pair.node) is not None


def test_replace_works_with_and_without_an_existing_table(pair: Pair) -> None:
    assert read_table(pair.node) is None
    first = render_ruleset(SSH_FROM_PEER, IFACE)
    applied(first, pair.node)
    second = render_ruleset(netmap(FilterRule((OTHER4,), (dst(NODE4, 23, 23),), (6,))), IFACE)
    applied(second, pair.node)
    assert check_drift(second, pair.node).ok
    assert not check_drift(first, pair.node).ok


OTHER_TABLE = """table inet other {
    set keep { type ipv4_addr; elements = { 192.0.2.1 } }
    chain c { type filter hook input priority 10; policy accept; ip saddr 192.0.2.7 drop; }
}"""


# One class per layout (docs/enforcement.md), in each family:
# PEER* and 20 more sources to 2-3 entries: class chain in4_c0 of plain rules;
# OTHER* and 3 more sources to 10 ports: class chain in4_c1 with a named set
# in4_c1_ports (ICMP a plain rule); THIRD* alone to 8080: direct elements.
DRIFT = netmap(
    FilterRule((PEER4, PEER6, *(f"100.64.1.{2 * i}" for i in range(20)),
                *(f"fd7a:115c:a1e0::1:{2 * i:x}" for i in range(20))),
               (dst(NODE4, 22, 22), dst(NODE6, 22, 22), dst(NODE4, 80, 80)), (6,)),
    FilterRule((OTHER4, OTHER6, *(f"100.64.2.{2 * i}" for i in range(3)),
                *(f"fd7a:115c:a1e0::2:{2 * i:x}" for i in range(3))),
               tuple(dst(node, 1000 + 10 * i, 1000 + 10 * i)
                     for i in range(10) for node in (NODE4, NODE6)), (6,)),
    FilterRule((THIRD4, THIRD6), (dst(NODE4, 8080, 8080), dst(NODE6, 8080, 8080)), (6,)))
MARK_ACCEPT = "ct mark set ct mark | 0x20000000 accept"


def assert_admits(pair: Pair, ports: tuple[int, ...],
                  cases: tuple[tuple[str, str, int, bool], ...]) -> None:
    """Each (source, target, port, admitted): does a TCP connect from the peer get in?"""
    server = Server(pair.node, ports)
    try:
        for src, target, port, admitted in cases:
            sock = connect(pair.peer, src, target, port)
            assert (sock is not None) == admitted, (src, port)
            if sock is not None:
                sock.close()
    finally:
        server.close()


def test_every_class_layout_admits_only_its_own_entries(pair: Pair) -> None:
    ruleset = render_ruleset(DRIFT, IFACE)
    text = render_text(ruleset)
    for fam in (4, 6):
        assert f"chain in{fam}_c0 {{" in text and f"chain in{fam}_c1 {{" in text
        assert f"@in{fam}_c1_ports" in text and f"@in{fam}_c0_ports" not in text
        assert f"@in{fam}_direct_ports" in text
    applied(ruleset, pair.node)
    assert_admits(pair, (22, 23, 80, 1000, 1001, 8080), (
                (PEER4, NODE4, 22, True), (PEER4, NODE4, 80, True), (PEER4, NODE4, 23, False),
                (PEER4, NODE4, 1000, False), (PEER6, NODE6, 22, True),
                (PEER6, NODE6, 80, False), (OTHER4, NODE4, 1000, True),
                (OTHER4, NODE4, 1001, False), (OTHER4, NODE4, 22, False),
                (OTHER6, NODE6, 1000, True), (OTHER6, NODE6, 8080, False),
                (THIRD4, NODE4, 8080, True), (THIRD4, NODE4, 22, False),
                (THIRD6, NODE6, 8080, True), (THIRD6, NODE6, 1000, False)))
    for src, target in ((PEER4, NODE4), (OTHER4, NODE4), (THIRD4, NODE4), (PEER6, NODE6),
                        (OTHER6, NODE6), (THIRD6, NODE6)):
        assert pings(pair.peer, src, target), src


def _with_handles(ns: str, tamper: str) -> str:
    """Replace `{chain:N}` in a tamper command by the handle of rule N of chain."""
    def handle(found: re.Match[str]) -> str:
        listing = sh("ip", "netns", "exec", ns, "nft", "-a", "-j", "list", "chain", "inet",
                     "policyc", found[1]).stdout
        rules = [o["rule"] for o in json.loads(listing)["nftables"] if "rule" in o]
        return str(rules[int(found[2])]["handle"])

    return re.sub(r"\{(\w+):(\d+)\}", handle, tamper)


@pytest.mark.parametrize("tamper", [
    "add element inet policyc in4_c1_ports { 100.64.0.11 . 6 . 1-65535 }",
    "delete element inet policyc in4_c1_ports { 100.64.0.10 . 6 . 1000 }",
    "add element inet policyc in4_direct_ports { 100.64.0.23 . 100.64.0.10 . 6 . 22 }",
    "delete element inet policyc in6_direct_proto { fd7a:115c:a1e0::16 . "
    "fd7a:115c:a1e0::a . 58 }",
    "add element inet policyc in_src4 { 100.64.0.99 : jump in4_c0 }",
    "delete element inet policyc in_src4 { 100.64.0.20 }",
    "add rule inet policyc mesh_in accept",
    "add rule inet policyc in4_c0 accept",
    # inline rules of a small class: one added, one edited, one removed
    f"insert rule inet policyc in4_c0 ip daddr 100.64.0.10 tcp dport 23 {MARK_ACCEPT}",
    "replace rule inet policyc in4_c0 handle {in4_c0:0} "
    f"ip daddr 100.64.0.10 tcp dport 2222 {MARK_ACCEPT}",
    "replace rule inet policyc in6_c0 handle {in6_c0:0} "
    f"ip6 daddr fd7a:115c:a1e0::a udp dport 22 {MARK_ACCEPT}",
    "replace rule inet policyc in4_c1 handle {in4_c1:1} "
    f"ip daddr 100.64.0.0/24 meta l4proto 1 {MARK_ACCEPT}",
    "delete rule inet policyc mesh_in handle {mesh_in:3}",  # the direct ports lookup
    "delete rule inet policyc in4_c0 handle {in4_c0:1}",
    "flush chain inet policyc in6_c0",
    "flush chain inet policyc mesh_in",
    "chain inet policyc input { policy drop; }",
    "delete table inet policyc",
    # a dormant table is still all there, but nothing in it is evaluated
    "add table inet policyc { flags dormant; }",
    # sets whose elements are neither addresses nor protocols
    'add set inet policyc hand { type ifname; elements = { "eth0" }; }',
    "add set inet policyc hand { type ether_addr; elements = { 00:11:22:33:44:55 }; }",
])
def test_drift_is_detected_and_repaired_without_touching_other_tables(
        pair: Pair, tamper: str) -> None:
    run = ("ip", "netns", "exec", pair.node, "nft")
    sh(*run, OTHER_TABLE)
    other_before = sh(*run, "list", "table", "inet", "other").stdout
    expected = render_ruleset(DRIFT, IFACE)
    applied(expected, pair.node)
    assert render_text(expected).count("@in4_c1_ports") == 1
    sh(*run, _with_handles(pair.node, tamper))
    report = check_drift(expected, pair.node)
    assert report.differences
    assert [d.code for d in report.diagnostics] == ["N502"]
    assert repair(expected, netns=pair.node).ok
    assert check_drift(expected, pair.node).ok
    assert sh(*run, "list", "table", "inet", "other").stdout == other_before


def test_remove_table_says_whether_there_was_one(pair: Pair) -> None:
    run = ("ip", "netns", "exec", pair.node, "nft")
    sh(*run, OTHER_TABLE)
    other_before = sh(*run, "list", "table", "inet", "other").stdout
    assert remove_table(pair.node) == (nothing := remove_table(pair.node))
    assert not nothing.removed and nothing.diagnostics == ()  # no table: not an error
    applied(render_ruleset(SSH_FROM_PEER, IFACE), pair.node)
    removed = remove_table(pair.node)
    assert removed.removed and removed.diagnostics == ()
    assert read_table(pair.node) is None
    assert remove_table(pair.node) == nothing
    assert sh(*run, "list", "table", "inet", "other").stdout == other_before
    gone = remove_table(pair.node + "-gone")
    assert not gone.removed and [d.code for d in gone.diagnostics] == ["N508"]


def test_a_rule_respelt_by_hand_to_the_same_meaning_is_not_drift(pair: Pair) -> None:
    # `meta l4proto 6 th dport 22` is what nft lists as `tcp dport 22`.
    expected = render_ruleset(DRIFT, IFACE)
    applied(expected, pair.node)
    sh("ip", "netns", "exec", pair.node, "nft", _with_handles(
        pair.node, "replace rule inet policyc in4_c0 handle {in4_c0:0} ip daddr 100.64.0.10 "
        f"meta l4proto 6 th dport 22 {MARK_ACCEPT}"))
    assert check_drift(expected, pair.node).ok


def test_missing_interface_is_a_warning_and_missing_netns_an_error(pair: Pair) -> None:
    result = apply_ruleset(render_ruleset(SSH_FROM_PEER, "wg-later"), netns=pair.node)
    assert result.ok
    assert [d.code for d in result.diagnostics] == ["N503"]
    result = apply_ruleset(render_ruleset(SSH_FROM_PEER, IFACE), netns="pc-does-not-exist")
    assert not result.ok
    assert [d.code for d in result.diagnostics] == ["N508"]


def test_bad_netmap_is_never_loaded_and_an_unfiltered_node_fails_closed(pair: Pair) -> None:
    bad = netmap(FilterRule(("100.64.0.999",), (dst(NODE4, 22, 22),)))
    result = enforce_netmap(bad, IFACE, netns=pair.node)
    assert not result.ok and result.apply is None
    assert [d.code for d in result.diagnostics] == ["N507", "N501"]
    assert check_drift(fail_closed_ruleset(IFACE), pair.node).ok


def test_bad_netmap_leaves_the_table_in_force_untouched(pair: Pair) -> None:
    good = render_ruleset(SSH_FROM_PEER, IFACE)
    assert apply_ruleset(good, netns=pair.node).ok
    bad = netmap(FilterRule(("100.64.0.999",), (dst(NODE4, 22, 22),)))
    result = enforce_netmap(bad, IFACE, netns=pair.node)
    assert not result.ok and result.apply is None
    assert [d.code for d in result.diagnostics] == ["N507"]
    assert check_drift(good, pair.node).ok


def received_after(server: Server, sock: socket.socket, port: int, data: bytes,
                   within: float = 5.0) -> bool:
    """Whether `data` sent on `sock` reaches the server within `within` seconds.

    A delivery returns as soon as it is seen, so the wait for it is generous
    (a loaded CI machine schedules the reader thread late); a check that
    nothing arrives waits its whole window, so those pass a shorter one.
    """
    before = server.received.get(port, b"")
    try:
        sock.sendall(data)
    except OSError:
        return False
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if server.received.get(port, b"") != before:
            return True
        time.sleep(0.05)
    return False


def test_revocation_cuts_disallowed_flows_and_keeps_allowed_ones(pair: Pair) -> None:
    first = enforce_netmap(SSH_FROM_PEER, IFACE, netns=pair.node)
    assert first.ok, [str(d) for d in first.diagnostics]
    server = Server(pair.node, (22, 80))
    try:
        ssh = connect(pair.peer, PEER4, NODE4, 22)
        web = connect(pair.peer, PEER4, NODE4, 80)
        assert ssh is not None and web is not None
        assert received_after(server, ssh, 22, b"hello")
        assert received_after(server, web, 80, b"hello")
        web_only = netmap(FilterRule((PEER4,), (dst(NODE4, 80, 80),), (6,)))
        second = enforce_netmap(web_only, IFACE, netns=pair.node)
        assert second.ok, [str(d) for d in second.diagnostics]
        assert second.revoke is not None
        assert [f.dport for f in second.revoke.revoked] == [22]
        assert not received_after(server, ssh, 22, b"after revocation", within=1.5)
        assert received_after(server, web, 80, b"still here")
        ssh.close()
        web.close()
    finally:
        server.close()


def test_without_revocation_an_established_flow_outlives_the_new_filter(pair: Pair) -> None:
    assert enforce_netmap(SSH_FROM_PEER, IFACE, netns=pair.node).ok
    server = Server(pair.node, (22,))
    try:
        ssh = connect(pair.peer, PEER4, NODE4, 22)
        assert ssh is not None
        assert enforce_netmap(netmap(), IFACE, netns=pair.node, revoke=False).ok
        assert received_after(server, ssh, 22, b"still flowing")
        ssh.close()
    finally:
        server.close()


def test_each_source_class_reaches_only_its_own_entries(pair: Pair) -> None:
    # PEER* may reach 22; OTHER* may reach 22 and 23: two classes per family.
    classes = netmap(FilterRule((PEER4, OTHER4, PEER6, OTHER6),
                                (dst(NODE4, 22, 22), dst(NODE6, 22, 22)), (6,)),
                     FilterRule((OTHER4, OTHER6), (dst(NODE4, 23, 23), dst(NODE6, 23, 23)),
                                (6,)))
    ruleset = render_ruleset(classes, IFACE)
    chains = [c["add"]["chain"]["name"] for c in ruleset["nftables"]
              if "chain" in c.get("add", {})]
    # Small classes: direct (source . destination ...) elements, no class chains.
    assert sorted(chains) == ["forward", "input", "mesh_fwd", "mesh_in", "output"]
    applied(ruleset, pair.node)
    assert_admits(pair, (22, 23), (
                (PEER4, NODE4, 22, True), (PEER4, NODE4, 23, False),
                (OTHER4, NODE4, 22, True), (OTHER4, NODE4, 23, True),
                (PEER6, NODE6, 22, True), (PEER6, NODE6, 23, False),
                (OTHER6, NODE6, 22, True), (OTHER6, NODE6, 23, True)))


def assert_only_peer_port_22_open(pair: Pair, ruleset: dict[str, Any], closed_port: int) -> None:
    """PEER4 reaches tcp/22 (and may ping), not `closed_port`; OTHER4 reaches nothing."""
    server = Server(pair.node, (22, closed_port))
    try:
        sock = connect(pair.peer, PEER4, NODE4, 22)
        assert sock is not None
        sock.close()
        assert connect(pair.peer, PEER4, NODE4, closed_port) is None
        assert connect(pair.peer, OTHER4, NODE4, 22) is None
        assert pings(pair.peer, PEER4, NODE4)
        assert not pings(pair.peer, OTHER4, NODE4)
    finally:
        server.close()
    assert check_drift(ruleset, pair.node).ok


def test_many_sources_times_many_port_ranges_load_as_their_sum(pair: Pair) -> None:
    # 5,000 source /31s x 1,000 port ranges: 5,000,000 elements as a product,
    # about 6,000 with the source classes. PEER4 is the last source and the
    # last range holds port 22 (20-29).
    sources = (*(f"100.66.{i // 64}.{4 * (i % 64)}/31" for i in range(4999)), PEER4)
    ranges = tuple(dst(NODE4, 1000 + 20 * i, 1009 + 20 * i) for i in range(999))
    big = netmap(FilterRule(sources, (*ranges, dst(NODE4, 20, 29)), (6,)))
    ruleset = render_ruleset(big, IFACE)
    result = apply_ruleset(ruleset, netns=pair.node)
    assert result.ok and result.verified, [str(d) for d in result.diagnostics]
    assert result.elements == 5000 + 1000  # ICMP is a plain rule next to the ports set
    assert_only_peer_port_22_open(pair, ruleset, closed_port=30)


def test_a_thousand_single_source_classes_load_and_enforce(pair: Pair) -> None:
    # The many-classes shape: 1,000 rules, each its own source /31 and port;
    # PEER4 is the last source and reaches port 22. Every class is direct
    # elements in two shared sets (no chain or set per class).
    sources = [f"100.67.{i // 64}.{4 * (i % 64)}/31" for i in range(999)] + [PEER4]
    ports = [2000 + i for i in range(999)] + [22]
    many = netmap(*(FilterRule((src,), (dst(NODE4, port, port),), (6,))
                    for src, port in zip(sources, ports, strict=True)))
    ruleset = render_ruleset(many, IFACE)
    assert "@in4_c" not in render_text(ruleset)
    assert "@in4_direct_ports" in render_text(ruleset)
    result = apply_ruleset(ruleset, netns=pair.node)
    assert result.ok and result.verified, [str(d) for d in result.diagnostics]
    assert_only_peer_port_22_open(pair, ruleset, closed_port=2000)

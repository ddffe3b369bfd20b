"""WireGuard backend: rendering and peer planning (pure), apply on wireguard-go (privileged)."""

from __future__ import annotations

import base64
import ipaddress
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policyc.compiler.nodes import Inventory, Node
from policyc.enforcer.wireguard import (
    PeerState,
    apply_peers,
    configure_interface,
    is_valid_key,
    parse_dump,
    peer_allowed_ips,
    plan_peer_changes,
    render_wireguard,
)
from policyc.netmap import NodeNetmap, Peer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
import harness


def key(n: int) -> str:
    return base64.b64encode(bytes([n]) * 32).decode()


def peer(n: int, *, routes: tuple[str, ...] = (), endpoint: str | None = None) -> Peer:
    v4, v6 = f"100.64.0.{n}", f"fd7a:115c:a1e0::{n:x}"
    return Peer(f"node-{n}", key(n), (v4, v6), (f"{v4}/32", f"{v6}/128", *routes), endpoint)


def netmap(*peers: Peer) -> NodeNetmap:
    return NodeNetmap("me", ("100.64.0.1", "fd7a:115c:a1e0::1"), tuple(peers), ())


# --- render ---------------------------------------------------------------------------


def test_render_is_deterministic_and_sorted_by_key() -> None:
    a = render_wireguard(netmap(peer(3), peer(2, endpoint="198.18.0.2:41641")), "/k")
    b = render_wireguard(netmap(peer(2, endpoint="198.18.0.2:41641"), peer(3)), "/k")
    assert a == b
    assert a.index(key(2)) < a.index(key(3))


def test_render_golden() -> None:
    text = render_wireguard(netmap(peer(2, routes=("10.20.0.0/16",),
                                           endpoint="198.18.0.2:41641"), peer(3)), "/etc/k")
    assert text == (
        "# policyc: WireGuard peers of me\n"
        "[Interface]\n"
        "# PrivateKey from file: /etc/k\n"
        "\n[Peer]\n# node-2\n"
        f"PublicKey = {key(2)}\n"
        "AllowedIPs = 10.20.0.0/16, 100.64.0.2/32, fd7a:115c:a1e0::2/128\n"
        "Endpoint = 198.18.0.2:41641\n"
        "\n[Peer]\n# node-3\n"
        f"PublicKey = {key(3)}\n"
        "AllowedIPs = 100.64.0.3/32, fd7a:115c:a1e0::3/128\n"
    )


def test_render_never_contains_the_private_key(tmp_path: Path) -> None:
    secret = base64.b64encode(b"\x07" * 32).decode()
    key_file = tmp_path / "private.key"
    key_file.write_text(secret)
    text = render_wireguard(netmap(peer(2)), str(key_file))
    assert secret not in text
    assert "PrivateKey =" not in text


def test_allowed_ips_cover_addresses_even_if_netmap_lists_only_routes() -> None:
    p = Peer("r", key(9), ("100.64.0.9",), ("10.20.0.0/16",), None)
    assert peer_allowed_ips(p) == ("10.20.0.0/16", "100.64.0.9/32")


# --- planning -------------------------------------------------------------------------


def state(p: Peer, endpoint: str | None = None) -> PeerState:
    return PeerState(p.key, frozenset(peer_allowed_ips(p)), endpoint)


def test_plan_removes_stale_and_leaves_unchanged_peers_alone() -> None:
    keep, stale, new = peer(2), peer(3), peer(4, endpoint="198.18.0.4:41641")
    running = {keep.key: state(keep, "198.18.0.2:41641"), stale.key: state(stale)}
    args, removed, changed = plan_peer_changes(netmap(keep, new), running)
    assert removed == [stale.key]
    assert changed == [new.key]
    assert ["peer", stale.key, "remove"] == args[:3]
    assert keep.key not in args


def test_plan_updates_changed_allowed_ips_and_endpoint() -> None:
    p = peer(2, routes=("10.20.0.0/16",), endpoint="198.18.0.9:41641")
    running = {p.key: PeerState(p.key, frozenset({"100.64.0.2/32"}), "198.18.0.2:41641")}
    _, removed, changed = plan_peer_changes(netmap(p), running)
    assert (removed, changed) == ([], [p.key])


def test_plan_null_endpoint_keeps_learned_endpoint() -> None:
    p = peer(2)
    running = {p.key: state(p, "198.18.0.2:5555")}
    assert plan_peer_changes(netmap(p), running) == ([], [], [])


def test_plan_removals_only_adds_nothing() -> None:
    stale, new = peer(3), peer(4)
    args, removed, changed = plan_peer_changes(netmap(new), {stale.key: state(stale)},
                                               removals_only=True)
    assert (args, removed, changed) == (["peer", stale.key, "remove"], [stale.key], [])


def simulate_wg_set(running: dict[str, PeerState], args: list[str]) -> dict[str, PeerState]:
    """What `wg set IF <args>` does to the peer table (allowed-ips replace)."""
    out = dict(running)
    i = 0
    while i < len(args):
        assert args[i] == "peer"
        k, i = args[i + 1], i + 2
        old = out.get(k, PeerState(k, frozenset(), None))
        while i < len(args) and args[i] != "peer":
            if args[i] == "remove":
                out.pop(k, None)
                i += 1
                break
            if args[i] == "allowed-ips":
                old = PeerState(k, frozenset(args[i + 1].split(",")), old.endpoint)
            elif args[i] == "endpoint":
                old = PeerState(k, old.allowed_ips, args[i + 1])
            out[k] = old
            i += 2
    return out


peer_ids = st.sets(st.integers(2, 40), max_size=8)


@settings(max_examples=200)
@given(running_ids=peer_ids, wanted_ids=peer_ids, routes=st.booleans())
def test_plan_converges_to_exactly_the_netmap_peers(running_ids: set[int], wanted_ids: set[int],
                                                    routes: bool) -> None:
    running = {key(n): PeerState(key(n), frozenset({f"100.64.0.{n}/32"}), None)
               for n in running_ids}
    extra = ("10.20.0.0/16",) if routes else ()
    wanted = netmap(*(peer(n, routes=extra) for n in sorted(wanted_ids)))
    args, _, _ = plan_peer_changes(wanted, running)
    after = simulate_wg_set(running, args)
    assert {k: s.allowed_ips for k, s in after.items()} == {
        p.key: frozenset(peer_allowed_ips(p)) for p in wanted.peers}


def test_parse_dump() -> None:
    dump = ("PRIV\tPUB\t41641\toff\n"
            f"{key(2)}\t(none)\t198.18.0.2:41641\t100.64.0.2/32,fd7a:115c:a1e0::2/128\t0\t0\t0\toff\n"
            f"{key(3)}\t(none)\t(none)\t(none)\t0\t0\t0\toff\n")
    peers = parse_dump(dump)
    assert peers[key(2)].allowed_ips == {"100.64.0.2/32", "fd7a:115c:a1e0::2/128"}
    assert peers[key(2)].endpoint == "198.18.0.2:41641"
    assert peers[key(3)] == PeerState(key(3), frozenset(), None)


def test_key_validation() -> None:
    assert is_valid_key(key(1))
    assert not is_valid_key("abc")
    assert not is_valid_key(base64.b64encode(b"x" * 31).decode())


def test_bad_peer_key_is_reported_without_touching_the_interface() -> None:
    bad = Peer("bad", "not-a-key", ("100.64.0.5",), ("100.64.0.5/32",), None)
    result = apply_peers(netmap(bad), "does-not-matter", netns="no-such-namespace")
    assert not result.ok
    assert [d.code for d in result.diagnostics] == ["N505"]


# --- on a real wireguard-go interface ----------------------------------------------------

privileged = pytest.mark.skipif(harness.requirements_missing() is not None,
                                reason=str(harness.requirements_missing()))


@pytest.fixture()
def mesh() -> harness.Mesh:
    nodes = [Node(f"wg-{n}", "u@example.com", (),
                  (ipaddress.ip_address(f"100.64.0.{n}"),
                   ipaddress.ip_address(f"fd7a:115c:a1e0::{n:x}")))
             for n in (1, 2, 3)]
    built = harness.Mesh.build(Inventory.of(nodes))
    yield built  # type: ignore[misc]
    built.close()


def real_peer(mesh: harness.Mesh, name: str, *, endpoint: bool = True) -> Peer:
    node = mesh[name]
    return Peer(name, node.public_key, node.addresses,
                tuple(f"{a}/{128 if ':' in a else 32}" for a in node.addresses),
                node.endpoint if endpoint else None)


def interface_line(node: harness.MeshNode) -> str:
    return node.run(["wg", "show", node.iface, "dump"], check=True).stdout.splitlines()[0]


@pytest.mark.privileged
@privileged
def test_apply_adds_updates_and_removes_peers(mesh: harness.Mesh) -> None:
    me = mesh["wg-1"]
    before = interface_line(me)
    first = apply_peers(NodeNetmap("wg-1", me.addresses, (real_peer(mesh, "wg-2"),
                                                          real_peer(mesh, "wg-3")), ()),
                        me.iface, netns=me.netns)
    assert first.ok, first.diagnostics
    assert me.wg_peers() == {mesh["wg-2"].public_key, mesh["wg-3"].public_key}
    second = apply_peers(NodeNetmap("wg-1", me.addresses, (real_peer(mesh, "wg-2"),), ()),
                         me.iface, netns=me.netns)
    assert second.ok
    assert second.removed == (mesh["wg-3"].public_key,)
    assert second.added == () and second.updated == ()
    assert me.wg_peers() == {mesh["wg-2"].public_key}
    assert interface_line(me) == before  # private key and listen port untouched


@pytest.mark.privileged
@privileged
def test_applied_peers_carry_traffic_and_removed_peers_do_not(mesh: harness.Mesh) -> None:
    one, two = mesh["wg-1"], mesh["wg-2"]
    for me, other in ((one, "wg-2"), (two, "wg-1")):
        assert apply_peers(NodeNetmap(me.name, me.addresses,
                                      (real_peer(mesh, other, endpoint=me is one),), ()),
                           me.iface, netns=me.netns).ok
    assert harness.ping(one, two.ipv4)
    assert harness.ping(two, one.ipv6)  # wg-2 learned wg-1's endpoint from the handshake
    assert apply_peers(NodeNetmap("wg-1", one.addresses, (), ()), one.iface, netns=one.netns).ok
    assert not harness.ping(two, one.ipv4, timeout=1)


@pytest.mark.privileged
@privileged
def test_missing_interface_is_n503_and_missing_namespace_n508(mesh: harness.Mesh) -> None:
    no_iface = apply_peers(netmap(), "pcwnosuch0", netns=mesh["wg-1"].netns)
    no_netns = apply_peers(netmap(), "pcwnosuch0", netns="pce-no-such-netns")
    assert [d.code for d in no_iface.diagnostics] == ["N503"]
    assert [d.code for d in no_netns.diagnostics] == ["N508"]


@pytest.mark.privileged
@privileged
def test_configure_interface_sets_key_by_file(mesh: harness.Mesh, tmp_path: Path) -> None:
    me = mesh["wg-1"]
    missing = configure_interface(me.iface, netns=me.netns,
                                  private_key_file=str(tmp_path / "none"))
    assert [d.code for d in missing.diagnostics] == ["N505"]
    result = configure_interface(me.iface, netns=me.netns,
                                 private_key_file=me.private_key_file, listen_port=41000)
    assert result.ok
    fields = interface_line(me).split("\t")
    assert fields[1] == me.public_key and fields[2] == "41000"

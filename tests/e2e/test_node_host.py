"""The agent's host side without control: the interface it creates, what a netmap sets
on the host (filter, peers, addresses, routes, forwarding) and what `node down` undoes.

Real wireguard-go in a namespace made here; nothing leaves the namespace.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import harness
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "meshnode"))
from meshnode_helpers import sample_netmap

from policyc.enforcer.netns import interface_exists
from policyc.enforcer.nft import read_table
from policyc.meshnode.apply import apply_netmap
from policyc.meshnode.down import node_down
from policyc.meshnode.iface import (
    InterfaceError,
    ensure_interface,
    remove_interface,
)
from policyc.meshnode.keys import load_or_create_node_key
from policyc.meshnode.state import StateDir
from policyc.netmap import NodeNetmap

pytestmark = [
    pytest.mark.privileged,
    pytest.mark.skipif(harness.requirements_missing() is not None,
                       reason=str(harness.requirements_missing())),
]
_ids = itertools.count(1)


@pytest.fixture()
def netns() -> Iterator[str]:
    name = f"{harness.NS_PREFIX}{os.getpid()}m{900 + next(_ids)}host"
    harness.sh(["ip", "netns", "add", name])
    harness.sh(["ip", "-n", name, "link", "set", "lo", "up"])
    try:
        yield name
    finally:
        pids = harness.sh(["ip", "netns", "pids", name], check=False).stdout.split()
        for pid in pids:
            harness.sh(["kill", "-9", pid], check=False)
        harness.sh(["ip", "netns", "del", name], check=False)


def iface_name() -> str:
    return f"{harness.WG_PREFIX}{os.getpid() % 100000}h{next(_ids)}"


def ip_json(netns: str, *args: str) -> list[dict[str, object]]:
    out = harness.sh(["ip", "-n", netns, "-j", *args]).stdout
    return json.loads(out) if out.strip() else []


def addresses(netns: str, iface: str) -> set[str]:
    return {f"{a['local']}/{a['prefixlen']}" for link in ip_json(netns, "addr", "show", iface)
            for a in link["addr_info"] if a.get("scope") == "global"}  # type: ignore[index, attr-defined]


def routes(netns: str, iface: str) -> set[str]:
    found = set()
    for family in ("-4", "-6"):
        for r in ip_json(netns, family, "route", "show", "dev", iface, "proto", "static"):
            found.add(str(r["dst"]))
    return found


def test_wireguard_go_is_started_recorded_reused_and_killed_by_pid(
        tmp_path: Path, netns: str) -> None:
    state = StateDir(tmp_path / "state").ensure()
    name = iface_name()
    made = ensure_interface(state, name, netns)
    assert made.kind == "wireguard-go" and made.pid is not None
    assert interface_exists(name, netns)
    assert (harness.WG_SOCKET_DIR / f"{name}.sock").exists()
    assert ensure_interface(state, name, netns) == made  # a restarted agent takes it over
    with pytest.raises(InterfaceError, match="node down"):  # not forgotten for another name
        ensure_interface(state, iface_name(), netns)
    assert remove_interface(state) == made
    assert harness.wait_for(lambda: not interface_exists(name, netns))
    assert not Path(f"/proc/{made.pid}").exists() or \
        "Z" in Path(f"/proc/{made.pid}/stat").read_text().split(") ", 1)[1][:1]


def test_a_name_live_in_another_namespace_is_refused(tmp_path: Path, netns: str) -> None:
    state = StateDir(tmp_path / "state").ensure()
    name = iface_name()
    ensure_interface(state, name, netns)
    other = f"{netns}2"
    harness.sh(["ip", "netns", "add", other])
    try:
        with pytest.raises(InterfaceError, match="another network namespace"):
            ensure_interface(StateDir(tmp_path / "other").ensure(), name, other)
    finally:
        harness.sh(["ip", "netns", "del", other], check=False)
        remove_interface(state)


@pytest.mark.parametrize("bad", ["../../etc", "a" * 16, "x y", "", "eth0;reboot"])
def test_hostile_interface_names_are_refused(tmp_path: Path, bad: str) -> None:
    with pytest.raises(InterfaceError):
        ensure_interface(StateDir(tmp_path).ensure(), bad, None)


def test_a_netmap_sets_filter_peers_addresses_and_routes_and_down_removes_them(
        tmp_path: Path, netns: str) -> None:
    state = StateDir(tmp_path / "state").ensure()
    key, _ = load_or_create_node_key(state)
    name = iface_name()
    ensure_interface(state, name, netns)
    netmap = sample_netmap("alice", peers=3)
    outcome = apply_netmap(netmap, name, netns=netns, private_key_file=str(key.private_key_file),
                           listen_port=None)
    assert outcome.ok, outcome.summary()
    assert addresses(netns, name) == {"100.64.0.1/32", "fd7a:115c:a1e0::1/128"}
    assert routes(netns, name) == {"100.64.0.10", "100.64.0.11", "100.64.0.12",
                                   "fd7a:115c:a1e0::a", "fd7a:115c:a1e0::b", "fd7a:115c:a1e0::c"}
    wg = harness.sh(["ip", "netns", "exec", netns, "wg", "show", name, "dump"]).stdout
    assert wg.splitlines()[0].split("\t")[1] == key.public_key  # private key from the file
    assert {line.split("\t")[0] for line in wg.splitlines()[1:]} == \
        {p.key for p in netmap.peers}
    assert read_table(netns) is not None

    fewer = NodeNetmap(netmap.node, netmap.addresses, netmap.peers[:1], netmap.packet_filter,
                       routes=("198.18.99.0/24",))
    assert outcome.host is not None
    again = apply_netmap(netmap, name, netns=netns, private_key_file=None, listen_port=None,
                         host_in_force=outcome.host)
    assert again.ok and again.host == outcome.host  # nothing to change on the host
    # A netmap that wants other routes changes them even when told what is in force.
    outcome = apply_netmap(fewer, name, netns=netns, private_key_file=None, listen_port=None,
                           host_in_force=outcome.host)
    assert outcome.ok, outcome.summary()
    assert routes(netns, name) == {"100.64.0.10", "fd7a:115c:a1e0::a"}
    forwarding = harness.sh(["ip", "netns", "exec", netns, "sysctl", "-n",
                             "net.ipv4.ip_forward"]).stdout.strip()
    assert forwarding == "1"  # serves an approved route

    done, failed = node_down(state)
    assert not failed, failed
    assert "removed table inet policyc" in done
    assert read_table(netns) is None
    assert harness.wait_for(lambda: not interface_exists(name, netns))
    assert not state.interface.exists()
    assert base64.b64decode(key.public_key)  # the key stays for the next `node up`
    assert state.node_key.exists()


def test_down_before_any_netmap_says_there_was_no_table(tmp_path: Path, netns: str) -> None:
    state = StateDir(tmp_path / "state").ensure()
    name = iface_name()
    assert ensure_interface(state, name, netns).kind != "existing"  # made here
    done, failed = node_down(state)
    assert not failed, failed
    assert "no table inet policyc to remove" in done
    assert not any(line.startswith("removed table") for line in done), done
    assert harness.wait_for(lambda: not interface_exists(name, netns))


def test_down_on_an_interface_it_did_not_create_leaves_the_interface(
        tmp_path: Path, netns: str) -> None:
    state = StateDir(tmp_path / "state").ensure()
    name = iface_name()
    owner = StateDir(tmp_path / "owner").ensure()
    ensure_interface(owner, name, netns)  # someone else's wireguard-go
    try:
        assert ensure_interface(state, name, netns).kind == "existing"
        outcome = apply_netmap(sample_netmap("alice", 2), name, netns=netns,
                               private_key_file=None, listen_port=None)
        assert outcome.ok, outcome.summary()
        _done, failed = node_down(state)
        assert not failed, failed
        assert interface_exists(name, netns)
        assert addresses(netns, name) == set() and routes(netns, name) == set()
        peers = harness.sh(["ip", "netns", "exec", netns, "wg", "show", name, "peers"]).stdout
        assert peers.strip() == ""
    finally:
        remove_interface(owner)


def test_an_interface_that_is_not_wireguard_is_refused_and_down_leaves_it_alone(
        tmp_path: Path, netns: str) -> None:
    # `--iface eth0` by mistake: the agent must not take over (and later flush) the
    # underlay interface; an interface.json recorded by an older agent is left alone too.
    name = iface_name()
    harness.sh(["ip", "-n", netns, "link", "add", name, "type", "veth", "peer", "name",
                f"{name}p"])  # an ordinary link (no dummy module everywhere)
    harness.sh(["ip", "-n", netns, "addr", "add", "198.18.250.1/24", "dev", name])
    state = StateDir(tmp_path / "state").ensure()
    with pytest.raises(InterfaceError, match="not a WireGuard interface"):
        ensure_interface(state, name, netns)
    assert not state.interface.exists()
    state.write_json(state.interface, {"name": name, "netns": netns, "kind": "existing",
                                       "pid": None})
    _done, failed = node_down(state)
    assert failed and "not a WireGuard interface" in failed[0]
    assert addresses(netns, name) == {"198.18.250.1/24"}
    assert interface_exists(name, netns)

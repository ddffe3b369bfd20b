"""`policyc node down`: undo what the agent installed, and nothing else.

In order: the WireGuard peers (every peer on the agent's interface is the agent's),
the routes it added and the addresses control assigned, table `inet policyc`, and
finally the interface itself if the agent created it. The node key, the pinned
control keys and the cached netmap stay: `node up` rejoins without an auth key.
"""

from __future__ import annotations

from policyc.enforcer.netns import interface_exists, netns_exists
from policyc.enforcer.nft import remove_table
from policyc.enforcer.wireguard import apply_peers
from policyc.meshnode.apply import remove_routes_and_addresses
from policyc.meshnode.iface import is_wireguard, recorded_interface, remove_interface
from policyc.meshnode.state import StateDir
from policyc.netmap import NodeNetmap


def node_down(state: StateDir) -> tuple[list[str], list[str]]:
    """(what was done, what failed), one line each."""
    done: list[str] = []
    failed: list[str] = []
    recorded = recorded_interface(state)
    if recorded is None:
        return ["no interface recorded in the state directory; nothing to remove"], []
    netns = recorded.netns
    if netns is not None and not netns_exists(netns):
        remove_interface(state)
        return [f"network namespace {netns!r} is gone; nothing left to remove"], []
    present = interface_exists(recorded.name, netns)
    if present and recorded.kind == "existing" and not is_wireguard(recorded.name, netns):
        # Recorded by an agent before it refused such interfaces (e.g. --iface eth0):
        # flushing its addresses would cut the host off its underlay.
        failed.append(f"{recorded.name} is not a WireGuard interface: its routes and "
                      "addresses are left alone")
    elif present:
        nobody = NodeNetmap(node="", addresses=(), peers=(), packet_filter=())
        peers = apply_peers(nobody, recorded.name, netns=netns)
        if peers.ok:
            done.append(f"removed {len(peers.removed)} WireGuard peer(s) from {recorded.name}")
        else:
            failed += [d.message for d in peers.diagnostics]
        if recorded.kind == "existing":
            remove_routes_and_addresses(recorded.name, netns)
            done.append(f"removed routes and addresses from {recorded.name}")
    table = remove_table(netns)
    failed += [d.message for d in table.diagnostics]
    if table.removed:
        done.append("removed table inet policyc")
    elif not table.diagnostics:
        done.append("no table inet policyc to remove")
    removed = remove_interface(state)
    if removed is not None and removed.kind != "existing":
        done.append(f"removed interface {removed.name} ({removed.kind})")
    return done, failed

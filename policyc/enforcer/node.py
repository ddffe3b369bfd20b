"""Enforce one node's netmap: packet filter, then WireGuard peers, then revocation.

The order is the safety argument:

1. The nftables filter goes first. If it cannot be loaded the old table
   stays (nft transactions are atomic), and we must not widen reachability
   on top of it: peers the new netmap adds are NOT configured, only peers
   it drops are removed (taking access away is always safe). The node so
   fails closed: nothing becomes reachable that the last good filter and
   peer set did not already allow.
2. WireGuard peers next: keys of nodes that are no longer peers are removed,
   new peers added, changed allowed-ips replaced.
3. Conntrack entries the new filter no longer allows are flushed last, so
   an open connection that lost its permission dies instead of living on
   as "established".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from policyc.diagnostics.diagnostics import Diagnostic, Diagnostics, Severity
from policyc.diagnostics.source import NO_SPAN
from policyc.enforcer import nft
from policyc.enforcer.netns import interface_exists, netns_exists
from policyc.enforcer.wireguard import WgResult, apply_peers, configure_interface
from policyc.netmap import NodeNetmap


@dataclass(frozen=True, slots=True)
class EnforceResult:
    ok: bool
    filter_loaded: bool
    peers: WgResult
    revoked_flows: int = 0
    diagnostics: tuple[Diagnostic, ...] = ()

    def messages(self) -> list[str]:
        """One line per diagnostic, or a one-line summary when all went well."""
        if self.diagnostics:
            return [f"{d.severity.value}[{d.code}]: {d.message}" for d in self.diagnostics]
        return [f"filter loaded; peers +{len(self.peers.added)} -{len(self.peers.removed)} "
                f"~{len(self.peers.updated)}; {self.revoked_flows} revoked flow(s) flushed"]


def enforce(netmap: NodeNetmap, iface: str, *, netns: str | None = None,
            private_key_file: str | None = None, listen_port: int | None = None,
            routes: Sequence[str] = ()) -> EnforceResult:
    """Apply `netmap` on `iface` (in `netns`); never raises for bad input or state.

    `routes` are the routes this node serves (default: `netmap.routes`), so
    the filter also covers traffic it forwards. The private key, if given, is loaded from
    its file; its bytes never pass through policyc.
    """
    diagnostics: list[Diagnostic] = list(_preflight(iface, netns))
    if diagnostics:
        # No such namespace or interface: touch nothing, the running ruleset stays.
        return EnforceResult(False, False, WgResult(False), 0, tuple(diagnostics))
    interface = configure_interface(iface, netns=netns, private_key_file=private_key_file,
                                    listen_port=listen_port)
    diagnostics.extend(interface.diagnostics)
    if not interface.ok:
        return EnforceResult(False, False, WgResult(False), 0, tuple(diagnostics))
    # Revocation waits until the peers are settled (step 3), hence revoke=False.
    loaded = nft.enforce_netmap(netmap, iface, routes=tuple(routes), netns=netns, revoke=False)
    diagnostics.extend(loaded.diagnostics)
    peers = apply_peers(netmap, iface, netns=netns, removals_only=not loaded.ok)
    diagnostics.extend(peers.diagnostics)
    revoked = 0
    if loaded.ok:
        revocation = nft.revoke_disallowed_flows(
            netmap.packet_filter, iface, netns,
            served=nft.served_destinations(netmap, routes))
        diagnostics.extend(revocation.diagnostics)
        revoked = len(revocation.revoked)
    ok = not any(d.severity is Severity.ERROR for d in diagnostics)
    return EnforceResult(ok, loaded.ok, peers, revoked, tuple(diagnostics))


def _preflight(iface: str, netns: str | None) -> Diagnostics:
    """Errors that must stop enforcement before anything is changed."""
    diags = Diagnostics()
    if netns is not None and not netns_exists(netns):
        diags.error("N508", NO_SPAN, f"network namespace {netns!r} does not exist")
    elif not interface_exists(iface, netns):
        where = f" in namespace {netns!r}" if netns else ""
        diags.error("N503", NO_SPAN, f"interface {iface!r} does not exist{where}; "
                    "nothing was changed")
    return diags

"""The nftables enforcer's public API (what the CLI and the node agent call).

    render_ruleset(netmap, iface, *, routes=(), diagnostics=None) -> dict
        nft JSON replacing table `inet policyc` (pure; `policyc nft --json`)
    render_text(ruleset) -> str
        the same in nft syntax (`policyc nft`)
    apply_ruleset(ruleset, *, netns=None, iface=None) -> ApplyResult
        one atomic transaction + read-back verification; fail closed
    check_drift(expected, netns=None) -> DriftReport;  repair(expected, *, netns=None)
    remove_table(netns=None) -> TableRemoval
        delete table inet policyc, saying whether there was one (`policyc node down`)
    revoke_disallowed_flows(rules, iface, netns=None) -> RevokeResult
        delete conntrack entries the new filter no longer allows
    enforce_netmap(netmap, iface, *, routes=(), netns=None) -> EnforceResult
        validate, render, apply, then revoke: the whole update of one node

Stages live in nftsets (rules -> set elements), nftrender (JSON), nfttext
(text), nftapply (kernel), conntrack (revocation).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from policyc.diagnostics.diagnostics import Diagnostic, Diagnostics
from policyc.enforcer.conntrack import RevokeResult, revoke_disallowed_flows
from policyc.enforcer.nftapply import (
    ApplyResult,
    DriftReport,
    TableRemoval,
    apply_ruleset,
    check_drift,
    counter_packets,
    fail_closed_if_unfiltered,
    read_table,
    remove_table,
    repair,
)
from policyc.enforcer.nftrender import fail_closed_ruleset, render_ruleset
from policyc.enforcer.nftsets import filter_allows
from policyc.enforcer.nfttext import render_text
from policyc.netmap import NodeNetmap

__all__ = [
    "ApplyResult", "DriftReport", "EnforceResult", "RevokeResult", "TableRemoval", "apply_ruleset",
    "check_drift", "counter_packets", "enforce_netmap", "fail_closed_if_unfiltered",
    "fail_closed_ruleset", "filter_allows", "read_table", "remove_table", "render_ruleset",
    "render_text", "repair", "revoke_disallowed_flows", "served_destinations",
]


@dataclass(frozen=True, slots=True)
class EnforceResult:
    ok: bool
    diagnostics: tuple[Diagnostic, ...]
    apply: ApplyResult | None = None
    revoke: RevokeResult | None = None
    ruleset: dict[str, Any] | None = None


def enforce_netmap(netmap: NodeNetmap, iface: str, *, routes: Sequence[str] = (),
                   netns: str | None = None, revoke: bool = True) -> EnforceResult:
    """Validate and render `netmap`, load it, then cut flows it no longer allows.

    A netmap with errors (N507/N503) is never loaded: a table already in
    force stays as it is, and where none is, the fail-closed table goes in.
    Revocation only runs after a verified load.
    """
    diags = Diagnostics()
    ruleset = render_ruleset(netmap, iface, routes=routes, diagnostics=diags)
    if diags.has_errors:
        if not any(d.code == "N503" for d in diags.errors):  # the name is usable
            diags.extend(fail_closed_if_unfiltered(iface, netns=netns))
        return EnforceResult(False, tuple(diags), ruleset=ruleset)
    applied = apply_ruleset(ruleset, netns=netns, iface=iface)
    diags.extend(applied.diagnostics)
    revoked = None
    if applied.ok and revoke:
        revoked = revoke_disallowed_flows(netmap.packet_filter, iface, netns,
                                          served=served_destinations(netmap, routes))
        diags.extend(revoked.diagnostics)
    return EnforceResult(not diags.has_errors, tuple(diags), applied, revoked, ruleset)


def served_destinations(netmap: NodeNetmap, routes: Sequence[str] = ()) -> tuple[str, ...]:
    """What the table admits traffic to: the node's addresses and the routes
    it serves (`routes`, else the netmap's), as render_ruleset clips them."""
    return (*netmap.addresses, *(tuple(routes) or netmap.routes))

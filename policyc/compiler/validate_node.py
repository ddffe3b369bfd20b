"""Checks on one node that arrives alone (a node event), not in an inventory file.

The inventory loader reports the same problems with spans into its file
(`nodecheck.py`, whose predicates these share); an event has no file, so
`check_node` reports at the span the caller gives (the event), and
`node_problems` gives the errors as (code, message) pairs for the caller to
place. Uniqueness against the other nodes is the caller's (it holds them;
`uniqueness.node_conflicts` does it for an `Inventory`); undefined tags need
the policy (`crosscheck.check_node_against_policy`).
"""

from __future__ import annotations

from policyc.compiler.names import is_dns_name, suggest_dns_name
from policyc.compiler.nodecheck import (
    EXIT_ROUTES,
    OUTSIDE_NOTE,
    in_tailnet_range,
    is_tag,
    is_unusable_address,
    key_is_valid,
    outside_message,
    parse_endpoint,
    unusable_kind,
)
from policyc.compiler.nodes import Node
from policyc.diagnostics.diagnostics import Diagnostics, Severity
from policyc.diagnostics.source import NO_SPAN, Span

__all__ = ["check_node", "key_is_valid", "node_problems"]


def check_node(node: Node, diags: Diagnostics, span: Span = NO_SPAN) -> bool:
    """Report every problem of `node` at `span`; True when none is an error.
    Warnings (I402 for an address listed twice, I411) do not stop a node."""
    errors = len(diags.errors)
    it = f'node "{node.name}"'
    if not is_dns_name(node.name):
        diags.error("I408", span, f'node name "{node.name}" is not a DNS name',
                    suggestion=suggest_dns_name(node.name))
    for tag in node.tags:
        if not is_tag(tag):
            diags.error("I401", span, f'{it}: "{tag}" is not a tag (tag:NAME)')
    if not node.tags and node.user is None:
        diags.error("I406", span, f"{it} has neither a user nor tags: it belongs to nobody")
    if not node.tags and node.user is not None and "@" not in node.user:
        diags.error("I401", span, f'{it}: user "{node.user}" must contain @')
    if not node.ips:
        diags.error("I405", span, f"{it} has no addresses: it cannot be reached or matched")
    seen = set()
    for address in node.ips:
        if is_unusable_address(address):
            diags.error("I401", span, f"{it}: {address} is {unusable_kind(address)} address: "
                        "it cannot be a node's mesh address")
        elif address in seen:
            diags.warning("I402", span, f"{it}: address {address} is listed twice")
        elif not in_tailnet_range(address):
            diags.warning("I411", span, f"{it}: {outside_message(address)}",
                          notes=(OUTSIDE_NOTE,))
        seen.add(address)
    for route in node.routes:
        if route in EXIT_ROUTES:
            diags.error("I410", span, f"{it}: exit route {route} in routes; a Node says "
                        "exit_node=True instead")
    if node.key and not key_is_valid(node.key):
        diags.error("I403", span, f'{it}: key "{node.key}" is not 32 bytes of base64')
    if node.endpoint is not None and parse_endpoint(node.endpoint) != node.endpoint:
        diags.error("I409", span, f'{it}: endpoint "{node.endpoint}" is not IPv4:port or '
                    "[IPv6]:port in canonical form")
    return len(diags.errors) == errors


def node_problems(node: Node) -> list[tuple[str, str]]:
    """The errors of one node as (code, message), in field order (empty: fine)."""
    diags = Diagnostics()
    check_node(node, diags)
    return [(d.code, d.message) for d in diags if d.severity is Severity.ERROR]

"""Per-node capabilities from `nodeAttrs` (Tailscale's `SelfNode.CapMap`).

A node receives every `attr` and `app` of each `nodeAttrs` entry whose
`target` names it (users, groups, tags, autogroups, hosts, prefixes, `*`).
The result maps a capability name to a list of JSON values, or to None for
a bare attribute: `{"funnel": null, "tailscale.com/app-connectors": [{...}]}`.

Merging follows Tailscale's NodeCapMap (captured: union of names, a name
granted twice appears once, a bare attribute is `null`): `app` values of
the same name are appended in policy order; a bare `attr` adds the name
without values and never erases values an `app` entry gave it.
`ipPool` is an address-allocation matter, not a capability: it adds nothing.
The top-level `randomizeClientPort: true` gives every node
`randomize-client-port`, like the attribute of that name.

`NodeAttrCompiler` resolves each entry's targets once per (policy,
inventory); `for_node` is then a function of one node.
"""

from __future__ import annotations

import copy
from typing import Any

from policyc.compiler.resolve import Resolver
from policyc.policy.model import NodeAttr, Policy

RANDOMIZE_CLIENT_PORT = "randomize-client-port"


class NodeAttrCompiler:
    """The capability map of every node of one (policy, inventory)."""

    def __init__(self, policy: Policy, resolver: Resolver) -> None:
        self.entries: list[tuple[NodeAttr, frozenset[int]]] = [
            (entry, frozenset(i for a in entry.targets for i in resolver.alias_nodes(a)))
            for entry in policy.node_attrs
            if entry.attrs or entry.app
        ]
        self.randomize_client_port = policy.options.randomize_client_port

    def for_node(self, index: int) -> dict[str, Any]:
        """name -> list of JSON values, or None for an attribute without values."""
        caps: dict[str, Any] = {}
        if self.randomize_client_port:
            caps[RANDOMIZE_CLIENT_PORT] = None
        for entry, targets in self.entries:
            if index not in targets:
                continue
            for name in entry.attrs:
                caps.setdefault(name, None)
            for app in entry.app:
                values = app.values if isinstance(app.values, list) else []
                # Copies: each netmap owns its values (callers may serialise or edit them).
                caps[app.name] = (caps.get(app.name) or []) + copy.deepcopy(values)
        return caps

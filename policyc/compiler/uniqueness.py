"""Names, addresses and keys identify nodes, so no two nodes may share one.

Names compare case-insensitively: they are DNS names, and become file names
(`compile -o DIR`) on file systems that may fold case. The first node to claim
an identity keeps it; a later claimant is reported (I402, with a note on where
the first one is) and left out, so the inventory stays one-to-one.
"""

from __future__ import annotations

from collections.abc import Iterable

from policyc.compiler.nodes import Inventory, Node
from policyc.diagnostics.diagnostics import Diagnostics


def unique_nodes(nodes: Iterable[Node], diags: Diagnostics) -> list[Node]:
    """`nodes` without those whose name, address or key an earlier one holds."""
    claims = Claims()
    return [node for node in nodes if claims.claim(node, diags)]


def node_conflicts(node: Node, inventory: Inventory, diags: Diagnostics) -> bool:
    """For one node arriving (added or changed) into `inventory`: report each
    identity another node already holds; True when there is any. The node of the
    same name is the one being replaced, so it does not count."""
    claims = Claims()
    for other in inventory:
        if other.name != node.name:
            claims.claim(other, Diagnostics())
    return not claims.claim(node, diags)


class Claims:
    """Who holds each identity so far."""

    def __init__(self) -> None:
        self._holder: dict[tuple[str, object], Node] = {}

    def claim(self, node: Node, diags: Diagnostics) -> bool:
        """Take all of `node`'s identities, or report the ones held and take none."""
        wanted = node_identities(node)
        held = [(kind, value) for kind, value in wanted if (kind, value) in self._holder]
        for kind, value in held:
            first = self._holder[(kind, value)]
            what = (f'node name "{node.name}" is used twice' if kind == "name"
                    and first.name == node.name else
                    f'node name "{node.name}" differs from "{first.name}" only in case'
                    if kind == "name" else
                    f'node "{node.name}": {kind} {value} is already used by node '
                    f'"{first.name}"')
            diags.error("I402", node.where, what, notes=(_where(first),))
        if held:
            return False
        for identity in wanted:
            self._holder[identity] = node
        return True



def node_identities(node: Node) -> list[tuple[str, object]]:
    """What no two nodes may share: the name (case-insensitively), each address,
    the key."""
    out: list[tuple[str, object]] = [("name", node.name.lower())]
    out.extend(("address", ip) for ip in node.ips)
    if node.key:
        out.append(("key", node.key))
    return out

def _where(node: Node) -> str:
    if node.where.is_known:
        return (f'node "{node.name}" is at line {node.where.line}, '
                f"column {node.where.column}; it is kept")
    return f'node "{node.name}" is kept'

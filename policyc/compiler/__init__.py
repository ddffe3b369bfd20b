"""Policy + node inventory -> one `NodeNetmap` per node (peers, keys, packet filter, SSH).

Takes a `Policy` and an `Inventory`; gives netmaps in Tailscale's wire shapes,
all at once (`compile_policy`), one node at a time with node events
(`PolicyIndex`, see `index.py`), or one node alone (`node_netmap`, see
`onenode.py`: what `nft`, `enforce`, `drift` and `compile --node` use).

Names are imported on first use (PEP 562), so `import policyc.compiler.nodes`
does not pull in the whole compiler: commands import only what they use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from policyc.compiler.compiler import CompiledPolicy, compile_policy
    from policyc.compiler.crosscheck import (
        check_inventory_against_policy,
        check_node_against_policy,
    )
    from policyc.compiler.index import (
        Changes,
        EventRejected,
        NetmapChange,
        NodeAdded,
        NodeEvent,
        NodeRemoved,
        NodeUpdated,
        PeerDelta,
        PolicyIndex,
    )
    from policyc.compiler.inventory import load_inventory_file, load_inventory_text
    from policyc.compiler.nodecheck import validate_node_entry, validate_node_entry_text
    from policyc.compiler.nodes import Inventory, Node
    from policyc.compiler.onenode import node_netmap
    from policyc.compiler.uniqueness import node_conflicts
    from policyc.compiler.validate_node import check_node, node_problems

_WHERE = {
    "CompiledPolicy": "compiler", "compile_policy": "compiler",
    "Changes": "index", "EventRejected": "index", "NetmapChange": "index",
    "NodeAdded": "index", "NodeEvent": "index", "NodeRemoved": "index",
    "NodeUpdated": "index", "PeerDelta": "index", "PolicyIndex": "index",
    "load_inventory_file": "inventory", "load_inventory_text": "inventory",
    "Inventory": "nodes", "Node": "nodes", "node_netmap": "onenode",
    "check_inventory_against_policy": "crosscheck", "check_node_against_policy": "crosscheck",
    "validate_node_entry": "nodecheck", "validate_node_entry_text": "nodecheck",
    "node_conflicts": "uniqueness", "check_node": "validate_node",
    "node_problems": "validate_node",
}

__all__ = [
    "Changes", "CompiledPolicy", "EventRejected", "Inventory", "NetmapChange", "Node",
    "NodeAdded", "NodeEvent", "NodeRemoved", "NodeUpdated", "PeerDelta", "PolicyIndex",
    "check_inventory_against_policy", "check_node", "check_node_against_policy",
    "compile_policy", "load_inventory_file", "load_inventory_text", "node_conflicts",
    "node_netmap",
    "node_problems", "validate_node_entry", "validate_node_entry_text",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'policyc.compiler' has no attribute {name!r}")
    return getattr(importlib.import_module(f"policyc.compiler.{module}"), name)

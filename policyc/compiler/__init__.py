"""Policy + node inventory -> one `NodeNetmap` per node (peers, keys, packet filter, SSH).

Takes a `Policy` and an `Inventory`; gives netmaps in Tailscale's wire shapes,
all at once (`compile_policy`) or one node at a time with node events
(`PolicyIndex`, see `index.py`).

Names are imported on first use (PEP 562), so `import policyc.compiler.nodes`
does not pull in the whole compiler: commands import only what they use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from policyc.compiler.compiler import CompiledPolicy, compile_policy
    from policyc.compiler.index import (
        Changes,
        EventRejected,
        NetmapChange,
        NodeAdded,
        NodeEvent,
        NodeRemoved,
        NodeUpdated,
        PolicyIndex,
    )
    from policyc.compiler.inventory import load_inventory_file, load_inventory_text
    from policyc.compiler.nodes import Inventory, Node

_WHERE = {
    "CompiledPolicy": "compiler", "compile_policy": "compiler",
    "Changes": "index", "EventRejected": "index", "NetmapChange": "index",
    "NodeAdded": "index", "NodeEvent": "index", "NodeRemoved": "index",
    "NodeUpdated": "index", "PolicyIndex": "index",
    "load_inventory_file": "inventory", "load_inventory_text": "inventory",
    "Inventory": "nodes", "Node": "nodes",
}

__all__ = [
    "Changes", "CompiledPolicy", "EventRejected", "Inventory", "NetmapChange", "Node",
    "NodeAdded", "NodeEvent", "NodeRemoved", "NodeUpdated", "PolicyIndex", "compile_policy",
    "load_inventory_file", "load_inventory_text",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'policyc.compiler' has no attribute {name!r}")
    return getattr(importlib.import_module(f"policyc.compiler.{module}"), name)

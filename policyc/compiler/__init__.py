"""Policy + node inventory -> one `NodeNetmap` per node (peers, keys, packet filter, SSH).

Takes a `Policy` and an `Inventory`; gives netmaps in Tailscale's wire shapes.
"""

from policyc.compiler.compiler import CompiledPolicy, compile_policy
from policyc.compiler.inventory import load_inventory_file, load_inventory_text
from policyc.compiler.nodes import Inventory, Node

__all__ = ["CompiledPolicy", "Inventory", "Node", "compile_policy", "load_inventory_file",
           "load_inventory_text"]

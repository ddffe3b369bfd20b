"""A `NodeNetmap` -> the host: an nftables table of its own and the WireGuard peers.

Takes a netmap (never a policy); gives an enforced node or N5xx diagnostics.
"""

from policyc.enforcer.node import EnforceResult, enforce

__all__ = ["EnforceResult", "enforce"]

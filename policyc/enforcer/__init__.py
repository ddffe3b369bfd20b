"""A `NodeNetmap` -> the host: an nftables table of its own and the WireGuard peers.

Takes a netmap (never a policy); gives an enforced node or N5xx diagnostics.
`enforce` and `EnforceResult` are imported on first use: `policyc nft` renders
with nftrender and nfttext alone and need not load the kernel side (nftapply,
conntrack, wireguard).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from policyc.enforcer.node import EnforceResult, enforce

__all__ = ["EnforceResult", "enforce"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from policyc.enforcer import node

        return getattr(node, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

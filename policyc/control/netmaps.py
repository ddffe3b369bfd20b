"""The tailnet's netmaps: the one place control asks the compiler for them.

Today every change compiles the whole tailnet (`compile_policy`) and reports
every node as a candidate; the compiler's incremental index (build once,
node events -> exactly the changed netmaps) replaces the body of
`TailnetNetmaps` without changing its callers. Which candidates really
changed is decided by `netmap_digest`, which leaves out the policy version
stamp: a policy push re-signs only the nodes whose peers, filter, routes or
SSH policy differ.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from policyc.compiler.compiler import compile_policy
from policyc.compiler.nodes import Inventory
from policyc.netmap import NodeNetmap
from policyc.policy.model import Policy
from policyc.protocol.codec import canonical_json


def netmap_digest(netmap: NodeNetmap) -> str:
    content = netmap.to_json()
    content.pop("policy_version", None)
    return hashlib.sha256(canonical_json(content)).hexdigest()


class TailnetNetmaps:
    """Immutable: a change gives a new object, so a failed commit just drops it."""

    def __init__(self, policy: Policy, inventory: Inventory,
                 netmaps: Mapping[str, NodeNetmap]) -> None:
        self.policy = policy
        self.inventory = inventory
        self._netmaps = netmaps

    @classmethod
    def build(cls, policy: Policy, inventory: Inventory) -> TailnetNetmaps:
        return cls(policy, inventory, compile_policy(policy, inventory).netmaps)

    def netmap(self, name: str) -> NodeNetmap:
        return self._netmaps[name]

    def changed(self, policy: Policy, inventory: Inventory,
                ) -> tuple[TailnetNetmaps, frozenset[str]]:
        """The netmaps for (policy, inventory), and the nodes whose netmap may differ."""
        new = TailnetNetmaps.build(policy, inventory)
        return new, frozenset(n.name for n in inventory)

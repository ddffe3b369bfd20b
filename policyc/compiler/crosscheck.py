"""The inventory checked against the policy it is compiled with.

Tailscale never lets a node take a tag that `tagOwners` does not define, so
a node carrying one is described wrongly: every rule naming the tag would
miss it while the inventory says otherwise. Each such tag is an I407 warning
and the node is compiled without it (as Tailscale would have it). Called by
every front end once both files are loaded (the CLI's `load_files`, the
library, a control server), and per node by incremental callers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from itertools import zip_longest

from policyc.compiler.nodes import Inventory, Node
from policyc.diagnostics.diagnostics import Diagnostics, did_you_mean
from policyc.policy.model import Policy


def check_inventory_against_policy(policy: Policy, inventory: Inventory,
                                   diags: Diagnostics) -> Inventory:
    """`inventory` as the policy allows it: undefined tags reported and removed."""
    checked = [check_node_against_policy(policy, node, diags) for node in inventory]
    if all(new is old for new, old in zip(checked, inventory.nodes, strict=True)):
        return inventory
    return Inventory.of(checked, inventory.users)


def check_node_against_policy(policy: Policy, node: Node, diags: Diagnostics) -> Node:
    """`node` without the tags `policy.tagOwners` does not define (each an I407)."""
    defined = policy.tag_owners
    if all(tag in defined for tag in node.tags):
        return node
    kept, kept_spans = [], []
    for tag, span in zip_longest(node.tags, node.tag_spans[:len(node.tags)]):
        where = span if span is not None else node.where
        if tag in defined:
            kept.append(tag)
            kept_spans.append(where)
            continue
        notes = [f"Tailscale would not let a node take {tag}; rules naming it "
                 "do not reach this node"]
        remaining = [t for t in node.tags if t in defined]
        if not remaining:
            notes.append(_untagged_note(node))
        diags.warning("I407", where,
                      f'node "{node.name}": {tag} is not defined in tagOwners; '
                      "the node is compiled without it",
                      notes=notes, suggestion=_nearest(tag, defined))
    return dataclasses.replace(node, tags=tuple(kept), tag_spans=tuple(kept_spans))


def _untagged_note(node: Node) -> str:
    if node.user:
        return f"with no tag left it counts as {node.user}'s node"
    return ("with no tag left and no user it belongs to nobody: no user, group or "
            "tag rule reaches it")


def _nearest(tag: str, defined: Iterable[str]) -> str | None:
    """Compared without the shared `tag:`, which would make any two tags look alike."""
    guess = did_you_mean(tag.removeprefix("tag:"), [t.removeprefix("tag:") for t in defined])
    return f"tag:{guess}" if guess is not None else None

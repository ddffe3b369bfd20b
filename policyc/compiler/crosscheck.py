"""The inventory checked against the policy it is compiled with.

Tailscale never lets a node take a tag that `tagOwners` does not define, so
a node carrying one is described wrongly: every rule naming the tag would
miss it while the inventory says otherwise. Each such tag is an I407 warning
and the node is compiled without it (as Tailscale would have it). Domain
wildcards (`user:*@dom`, `localpart:*@dom`) must name the tailnet's domain. Called by
every front end once both files are loaded (the CLI's `load_files`, the
library, a control server), and per node by incremental callers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from itertools import zip_longest

from policyc.compiler.nodes import Inventory, Node
from policyc.diagnostics.diagnostics import Diagnostics, did_you_mean
from policyc.policy.build_rules import localpart_domain
from policyc.policy.model import Policy, UserRef
from policyc.policy.validate import placed_aliases


def check_inventory_against_policy(policy: Policy, inventory: Inventory,
                                   diags: Diagnostics) -> Inventory:
    """`inventory` as the policy allows it: undefined tags reported and removed;
    domain wildcards the tailnet cannot use are errors (`check_tailnet_domains`)."""
    check_tailnet_domains(policy, inventory, diags)
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


def check_tailnet_domains(policy: Policy, inventory: Inventory, diags: Diagnostics) -> None:
    """`user:*@DOMAIN` and `localpart:*@DOMAIN` must name the tailnet's own domain.

    Tailscale rejects any other ("example.org is not associated with this Tailnet",
    captured even for a domain some of the tailnet's users have). The tailnet's
    domain is its owner's: known only when the inventory lists users with roles.
    """
    domains = {u.login.rpartition("@")[2] for u in inventory.users or () if u.role == "owner"}
    if not domains:
        return
    for _, alias in placed_aliases(policy):
        login = alias.login.removeprefix("user:") if isinstance(alias, UserRef) else ""
        if login.startswith("*@") and login[2:] not in domains:
            diags.error("E109", alias.span, _not_associated(login[2:]))
    for rule in policy.ssh:
        for user in rule.users:
            domain = localpart_domain(user)
            if domain is not None and domain not in domains:
                diags.error("E109", rule.span, _not_associated(domain),
                            notes=[f'in users: "{user}"'])


def _not_associated(domain: str) -> str:
    return (f"{domain} is not associated with this Tailnet and cannot be used in "
            "user:*@<domain> expressions")


def _untagged_note(node: Node) -> str:
    if node.user:
        return f"with no tag left it counts as {node.user}'s node"
    return ("with no tag left and no user it belongs to nobody: no user, group or "
            "tag rule reaches it")


def _nearest(tag: str, defined: Iterable[str]) -> str | None:
    """Compared without the shared `tag:`, which would make any two tags look alike."""
    guess = did_you_mean(tag.removeprefix("tag:"), [t.removeprefix("tag:") for t in defined])
    return f"tag:{guess}" if guess is not None else None

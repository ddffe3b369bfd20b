"""Checks on one node that arrives alone (a node event), not in an inventory file.

The inventory loader reports the same problems with spans into its file; an
event has no file, so these return (code, message) pairs for the caller to
place. Uniqueness against the other nodes is the caller's (it holds them).
"""

from __future__ import annotations

import base64
import binascii

from policyc.compiler.nodes import Node
from policyc.policy.aliases import TAG_NAME


def key_is_valid(key: str) -> bool:
    """A WireGuard public key: 32 bytes of standard base64."""
    try:
        return len(base64.b64decode(key, validate=True)) == 32
    except (binascii.Error, ValueError):
        return False


def node_problems(node: Node) -> list[tuple[str, str]]:
    """I401/I403 problems of one node, in field order (empty: the node is fine)."""
    out: list[tuple[str, str]] = []
    if not node.name.strip() or node.name != node.name.strip():
        out.append(("I401", f'node name "{node.name}" must be non-empty, without outer spaces'))
    for tag in node.tags:
        if not (tag.startswith("tag:") and TAG_NAME.fullmatch(tag[4:])):
            out.append(("I401", f'node "{node.name}": "{tag}" is not a tag (tag:NAME)'))
    if not node.tags and node.user is not None and "@" not in node.user:
        out.append(("I401", f'node "{node.name}": user "{node.user}" must contain @'))
    if len(set(node.ips)) != len(node.ips):
        out.append(("I402", f'node "{node.name}" lists an address twice'))
    if node.key and not key_is_valid(node.key):
        out.append(("I403", f'node "{node.name}": key "{node.key}" is not 32 bytes of base64'))
    return out

"""Inventory types: the nodes a policy is compiled against.

The loader (`inventory.py`) turns `--nodes` files into these; the compiler
reads only these.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from policyc.diagnostics.source import NO_SPAN, Span
from policyc.policy.model import IPAddress, IPNetwork


@dataclass(frozen=True, slots=True)
class Node:
    name: str
    user: str | None  # owner login; None or ignored when tagged
    tags: tuple[str, ...]
    ips: tuple[IPAddress, ...]  # mesh addresses (one v4, one v6 usually)
    key: str = ""  # base64 X25519 WireGuard public key
    routes: tuple[IPNetwork, ...] = ()  # approved subnet routes, exit routes excluded
    exit_node: bool = False  # an exit route (0.0.0.0/0, ::/0) is approved
    endpoint: str | None = None
    span: Span = NO_SPAN

    @property
    def is_tagged(self) -> bool:
        return bool(self.tags)

    @property
    def owner(self) -> str | None:
        """The user this node counts as: nobody once it carries a tag."""
        return None if self.tags else self.user


@dataclass(frozen=True, slots=True)
class Inventory:
    nodes: tuple[Node, ...]
    by_name: Mapping[str, Node] = field(default_factory=dict, compare=False, hash=False)

    @classmethod
    def of(cls, nodes: tuple[Node, ...] | list[Node]) -> Inventory:
        ordered = tuple(nodes)
        return cls(ordered, {n.name: n for n in ordered})

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)

    def get(self, name: str) -> Node | None:
        return self.by_name.get(name)

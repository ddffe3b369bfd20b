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
    span: Span = NO_SPAN  # the whole entry in the inventory file
    # Where the name and each of `tags` were written, so later checks
    # (duplicates, tagOwners, output paths) point at the word at fault.
    tag_spans: tuple[Span, ...] = field(default=(), compare=False)
    name_span: Span = field(default=NO_SPAN, compare=False)

    @property
    def where(self) -> Span:
        """The name if its place is known, else the entry."""
        return self.name_span if self.name_span.is_known else self.span

    @property
    def is_tagged(self) -> bool:
        return bool(self.tags)

    @property
    def owner(self) -> str | None:
        """The user this node counts as: nobody once it carries a tag."""
        return None if self.tags else self.user


def login_selects(pattern: str, owner: str | None) -> bool:
    """Does a user alias written as `pattern` select the nodes of `owner`?

    A `user:` prefix is optional, and `user:*@DOMAIN` is every user of the
    domain: the compiler's `Resolver.user_nodes` reads user aliases the same
    way, and the reference evaluator and the review tools call this.
    """
    if owner is None:
        return False
    login = pattern.removeprefix("user:")
    if login.startswith("*@"):
        return owner.endswith(login[1:])
    return owner == login


def is_login_pattern(login: str) -> bool:
    """A user alias that is not one literal login (`user:...`, `*@DOMAIN`)."""
    return login.startswith(("user:", "*@"))


# Tailscale's user roles (the API's `role` values).
ROLES = frozenset({"owner", "admin", "member", "it-admin", "network-admin",
                   "billing-admin", "auditor"})
# The roles each role autogroup stands for. The owner counts as an admin: the
# SaaS capture nodeattrs-target-a10-autogroup-admin gives the owner's device an
# attribute targeted at autogroup:admin. The other role autogroups are the
# documented one role each (KB "User roles", "Autogroups").
ROLE_AUTOGROUPS: Mapping[str, frozenset[str]] = {
    "autogroup:admin": frozenset({"owner", "admin"}),
    "autogroup:owner": frozenset({"owner"}),
    "autogroup:it-admin": frozenset({"it-admin"}),
    "autogroup:network-admin": frozenset({"network-admin"}),
    "autogroup:billing-admin": frozenset({"billing-admin"}),
    "autogroup:auditor": frozenset({"auditor"}),
}


@dataclass(frozen=True, slots=True)
class User:
    """A tailnet user and its role (the inventory's optional `users` list)."""

    login: str
    role: str  # one of ROLES
    span: Span = NO_SPAN


@dataclass(frozen=True, slots=True)
class Inventory:
    nodes: tuple[Node, ...]
    by_name: Mapping[str, Node] = field(default_factory=dict, compare=False, hash=False)
    # None: the inventory says nothing about users, so roles are unknown (role
    # autogroups are undecidable); a tuple, even empty, is the whole user list.
    users: tuple[User, ...] | None = None

    @classmethod
    def of(cls, nodes: tuple[Node, ...] | list[Node],
           users: tuple[User, ...] | list[User] | None = None) -> Inventory:
        ordered = tuple(nodes)
        return cls(ordered, {n.name: n for n in ordered},
                   tuple(users) if users is not None else None)

    @property
    def knows_roles(self) -> bool:
        return self.users is not None

    def logins_with_role(self, autogroup: str) -> frozenset[str]:
        """The users a role autogroup (`autogroup:admin`, ...) names; empty if unknown."""
        roles = ROLE_AUTOGROUPS.get(autogroup, frozenset())
        return frozenset(u.login for u in self.users or () if u.role in roles)

    def role_nodes(self, autogroup: str) -> list[Node]:
        """The untagged nodes of the users a role autogroup names."""
        logins = self.logins_with_role(autogroup)
        return [n for n in self.nodes if n.owner is not None and n.owner in logins]

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)

    def get(self, name: str) -> Node | None:
        return self.by_name.get(name)

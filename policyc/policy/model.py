"""The typed policy: one immutable dataclass per construct, each with its span.

`build.py` makes a `Policy` from the HuJSON tree and reports what is wrong;
everything downstream (resolution, compiler, tests, explain) reads only
these types. Aliases are parsed once here, so later stages never re-parse
strings.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeAlias

from policyc.diagnostics.source import NO_SPAN, SourceFile, Span
from policyc.netmap import PortRange

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network

# --- aliases (selectors) ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Wildcard:
    """`*`."""

    span: Span = NO_SPAN

    def __str__(self) -> str:
        return "*"


@dataclass(frozen=True, slots=True)
class UserRef:
    """`alice@example.com`, `alice@`, `alice@github`: a login name."""

    login: str
    span: Span = NO_SPAN

    def __str__(self) -> str:
        return self.login


@dataclass(frozen=True, slots=True)
class GroupRef:
    name: str  # with its `group:` prefix
    span: Span = NO_SPAN

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class TagRef:
    name: str  # with its `tag:` prefix
    span: Span = NO_SPAN

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class AutoGroupRef:
    name: str  # with its `autogroup:` prefix, e.g. `autogroup:member`
    span: Span = NO_SPAN
    # How the file spelled it when that differs from `name`: the legacy
    # `autogroup:members` is `autogroup:member` in every other respect.
    spelled: str = field(default="", compare=False)

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class ServiceRef:
    """`svc:NAME`: a Tailscale Service (a virtual IP served by tagged hosts)."""

    name: str  # with its `svc:` prefix
    span: Span = NO_SPAN

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class HostRef:
    """A bare name defined in `hosts`."""

    name: str
    span: Span = NO_SPAN

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class IPSetRef:
    name: str  # with its `ipset:` prefix
    span: Span = NO_SPAN

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class PrefixAlias:
    """A literal address or CIDR; a bare address is a /32 or /128."""

    network: IPNetwork
    span: Span = NO_SPAN

    def __str__(self) -> str:
        n = self.network
        return str(n.network_address) if n.prefixlen == n.max_prefixlen else str(n)


@dataclass(frozen=True, slots=True)
class RangeAlias:
    """A literal inclusive range `first-last` of one address family."""

    first: IPAddress
    last: IPAddress
    span: Span = NO_SPAN

    def __str__(self) -> str:
        return f"{self.first}-{self.last}"


Alias: TypeAlias = (
    Wildcard | UserRef | GroupRef | TagRef | AutoGroupRef | HostRef | IPSetRef
    | PrefixAlias | RangeAlias | ServiceRef
)

# --- rules --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AclDestination:
    """One `dst` entry of an ACL: `ALIAS:PORTS`."""

    alias: Alias
    ports: tuple[PortRange, ...]
    span: Span = NO_SPAN


@dataclass(frozen=True, slots=True)
class AclRule:
    action: str  # always "accept" once validated
    sources: tuple[Alias, ...]
    destinations: tuple[AclDestination, ...]
    protocols: tuple[int, ...] = ()  # empty: the default set (proto omitted)
    src_posture: tuple[str, ...] = ()
    span: Span = NO_SPAN


@dataclass(frozen=True, slots=True)
class IPCapability:
    """One grant `ip` entry: `*`, `PORTS` or `PROTO:PORTS`."""

    protocols: tuple[int, ...]  # empty: no protocol named (default set / any)
    ports: tuple[PortRange, ...]
    any_protocol: bool = False  # the entry was `*`: every IP protocol
    span: Span = NO_SPAN


@dataclass(frozen=True, slots=True)
class AppCapability:
    name: str  # `domain/path`
    values: Any = field(hash=False, compare=False, default=None)  # JSON list or None
    span: Span = NO_SPAN


@dataclass(frozen=True, slots=True)
class GrantRule:
    sources: tuple[Alias, ...]
    destinations: tuple[Alias, ...]
    ip: tuple[IPCapability, ...] = ()
    app: tuple[AppCapability, ...] = ()
    via: tuple[TagRef, ...] = ()
    src_posture: tuple[str, ...] = ()
    span: Span = NO_SPAN


@dataclass(frozen=True, slots=True)
class SshRule:
    action: str  # "accept" | "check"
    sources: tuple[Alias, ...]
    destinations: tuple[Alias, ...]
    users: tuple[str, ...]  # local users, incl. `autogroup:nonroot`, `localpart:*@dom`
    check_period: timedelta | None = None  # None: default; timedelta.max: "always"
    accept_env: tuple[str, ...] = ()
    src_posture: tuple[str, ...] = ()
    span: Span = NO_SPAN
    recorder: tuple[Alias, ...] = ()  # session recorders: tags, hosts, addresses
    enforce_recorder: bool = False  # fail closed when no recorder takes the session


# --- definitions --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Group:
    name: str
    # The members' login names, as written less surrounding blanks. Kept as strings:
    # 10k dense has 200 groups of 2,500, and readers want only the names (where each
    # is written is in the value tree, for the builder's diagnostics).
    logins: tuple[str, ...]
    span: Span = NO_SPAN


@dataclass(frozen=True, slots=True)
class TagOwners:
    tag: str
    owners: tuple[Alias, ...]  # UserRef | GroupRef | TagRef | AutoGroupRef
    span: Span = NO_SPAN


@dataclass(frozen=True, slots=True)
class HostAlias:
    name: str
    network: IPNetwork
    span: Span = NO_SPAN


@dataclass(frozen=True, slots=True)
class IPSet:
    """A named address set built by operations processed in order (KB "IP sets":
    "Each named IP set can have one or more operations, which are processed in
    order"): `add X` (or plain `X`) adds X's addresses, `remove X` takes them
    out, so a later `add` can put back part of an earlier `remove`.

    `entries` and `removed` are the added and removed aliases; `steps` is the
    order. Built by hand without `steps`, the set is the entries minus the
    removed ones (every add before every remove)."""

    name: str
    entries: tuple[Alias, ...]  # PrefixAlias | RangeAlias | HostRef | IPSetRef | internet
    span: Span = NO_SPAN
    removed: tuple[Alias, ...] = ()
    steps: tuple[tuple[bool, Alias], ...] = ()  # (is an add, alias), in written order

    def operations(self) -> tuple[tuple[bool, Alias], ...]:
        """(is an add, alias) in the order they apply."""
        if self.steps:
            return self.steps
        return (*((True, a) for a in self.entries), *((False, a) for a in self.removed))


@dataclass(frozen=True, slots=True)
class RouteApprover:
    prefix: IPNetwork
    approvers: tuple[Alias, ...]
    span: Span = NO_SPAN


@dataclass(frozen=True, slots=True)
class ServiceApprover:
    """`autoApprovers.services`: who may advertise a service (`svc:NAME` or a tag's)."""

    service: str  # `svc:NAME` or `tag:NAME`
    approvers: tuple[Alias, ...]
    span: Span = NO_SPAN


@dataclass(frozen=True, slots=True)
class AutoApprovers:
    routes: tuple[RouteApprover, ...] = ()
    exit_node: tuple[Alias, ...] = ()
    span: Span = NO_SPAN
    services: tuple[ServiceApprover, ...] = ()


@dataclass(frozen=True, slots=True)
class NodeAttr:
    targets: tuple[Alias, ...]
    attrs: tuple[str, ...] = ()
    ip_pool: tuple[IPNetwork, ...] = ()
    app: tuple[AppCapability, ...] = ()
    span: Span = NO_SPAN


@dataclass(frozen=True, slots=True)
class Posture:
    name: str
    conditions: tuple[str, ...]
    span: Span = NO_SPAN


# --- tests --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TestTarget:
    """One `accept`/`deny` entry of a test: `ALIAS:PORT`."""

    alias: Alias
    port: int
    text: str
    span: Span = NO_SPAN


@dataclass(frozen=True, slots=True)
class PolicyTest:
    __test__ = False  # not a pytest class

    src: Alias
    src_text: str
    protocol: int | None  # None: default set
    accept: tuple[TestTarget, ...]
    deny: tuple[TestTarget, ...]
    span: Span = NO_SPAN


@dataclass(frozen=True, slots=True)
class SshTest:
    __test__ = False

    src: Alias
    src_text: str
    destinations: tuple[Alias, ...]
    accept: tuple[str, ...] = ()
    check: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()
    span: Span = NO_SPAN


# --- the policy ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TailnetOptions:
    disable_ipv4: bool = False
    randomize_client_port: bool = False
    one_cgnat_route: str = ""
    derp_map: Any = field(default=None, hash=False, compare=False)
    extra: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True, slots=True)
class Policy:
    """A whole, validated policy file.

    `acls`/`grants` are None when the key is absent: a policy with neither
    allows everything (Tailscale's default), while `"acls": []` denies all.
    """

    source: SourceFile
    groups: Mapping[str, Group] = field(default_factory=dict)
    tag_owners: Mapping[str, TagOwners] = field(default_factory=dict)
    hosts: Mapping[str, HostAlias] = field(default_factory=dict)
    ipsets: Mapping[str, IPSet] = field(default_factory=dict)
    postures: Mapping[str, Posture] = field(default_factory=dict)
    acls: tuple[AclRule, ...] | None = None
    grants: tuple[GrantRule, ...] | None = None
    ssh: tuple[SshRule, ...] = ()
    auto_approvers: AutoApprovers = AutoApprovers()
    node_attrs: tuple[NodeAttr, ...] = ()
    default_src_posture: tuple[str, ...] = ()
    tests: tuple[PolicyTest, ...] = ()
    ssh_tests: tuple[SshTest, ...] = ()
    options: TailnetOptions = TailnetOptions()

    @property
    def allows_all(self) -> bool:
        """Neither `acls` nor `grants` is present: Tailscale's allow-all default."""
        return self.acls is None and self.grants is None

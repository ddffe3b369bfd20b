"""A small, obviously-correct evaluator of a policy, written from POLICY-FORMAT.md.

It exists to cross-check the compiler and to answer `tests` and `explain`, so
it is deliberately independent of the compiler: no shared resolution code, no
interval arithmetic. Aliases are tested one address at a time with
`ipaddress` objects, and every question loops over the rules. Clarity beats
speed here. The one concession: an index (`permit_index.py`) in front of the
loops narrows which rules (and nodes) are looked at, so a 1 MB policy's own
`tests` do not cost tests x rules; it never decides anything, each rule
left is tested exactly as before, and `indexed=False` is the plain walk
(tests/analysis/test_permit_index.py checks the two agree).

Semantics (POLICY-FORMAT §3-§5):

* A rule says who may *initiate*: `src` -> `dst` on some protocols and ports.
* ACL rules use the default protocol set {TCP, UDP, ICMPv4, ICMPv6} when
  `proto` is omitted; a grant `ip` entry without a protocol does too, and so
  does the grant entry `*` (every port): the SaaS captures in
  /work/shared/conformance emit it without IPProto, whatever §3.2 says.
* A port is only compared when the question names one (`port=None` asks about
  a port-less protocol, or "any port").
* Identity aliases (users, groups, tags, autogroup:member/tagged) match the
  mesh addresses of their nodes; tags override ownership.
* `*` as a source is every Tailscale address plus every approved subnet route;
  as a destination it is every address.
* `autogroup:self` narrows per destination node: the source must be an
  untagged node of the same owner as the (untagged) destination node.
* Neither `acls` nor `grants` present: everything is allowed on the default
  protocol set (Tailscale's FilterAllowAll omits IPProto), and everyone sees
  everyone.
* `allowing_rules` answers the way Tailscale evaluates `tests`: against the
  rules alone. `allowed` adds that somebody must deliver the packet: the
  destination is a node address, lies in an approved subnet route, or is an
  Internet address and the tailnet has an exit node.

Role autogroups (`autogroup:admin` and friends) match the untagged nodes of
the inventory's users with that role; without a `users` list they match
nobody (the test runner reports such outcomes as undecidable).

Not modelled: device postures (`srcPosture` is ignored), and the Tailscale
client's leniency of admitting ICMP to any address with
some open port.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

from policyc.analysis.permit_index import PermitNarrowing
from policyc.compiler.nodes import (
    ROLE_AUTOGROUPS,
    Inventory,
    Node,
    is_login_pattern,
    login_selects,
)
from policyc.diagnostics.source import Span
from policyc.netmap import ALL_PORTS, DEFAULT_PROTOCOLS, PortRange
from policyc.policy.model import (
    AclRule,
    Alias,
    AutoGroupRef,
    GrantRule,
    GroupRef,
    HostRef,
    IPAddress,
    IPNetwork,
    IPSetRef,
    Policy,
    PrefixAlias,
    RangeAlias,
    TagRef,
    UserRef,
    Wildcard,
)

_net = ipaddress.ip_network

TAILSCALE_V4 = _net("100.64.0.0/10")
CHROMEOS_VM = _net("100.115.92.0/23")  # inside the CGNAT range but never a tailnet address
TAILSCALE_V6 = _net("fd7a:115c:a1e0::/48")

# autogroup:internet: all of IPv4 and global unicast IPv6, minus private,
# Tailscale and link-local space (the control plane's own construction).
INTERNET_INCLUDED = (_net("0.0.0.0/0"), _net("2000::/3"))
INTERNET_EXCLUDED = tuple(_net(t) for t in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7",
    "100.64.0.0/10", "fd7a:115c:a1e0::/48", "169.254.0.0/16", "fe80::/10",
))

RuleKind = Literal["acl", "grant", "default"]


def in_tailscale_range(ip: IPAddress) -> bool:
    """Is `ip` an address Tailscale could assign to a node?"""
    if ip in CHROMEOS_VM:
        return False
    return ip in TAILSCALE_V4 or ip in TAILSCALE_V6


def in_internet(ip: IPAddress) -> bool:
    """Is `ip` part of `autogroup:internet`?"""
    included = any(ip in net for net in INTERNET_INCLUDED if net.version == ip.version)
    return included and not any(ip in net for net in INTERNET_EXCLUDED
                                if net.version == ip.version)


def _overlaps(a: IPNetwork, b: IPNetwork) -> bool:
    return a.version == b.version and a.overlaps(b)


@dataclass(frozen=True, slots=True)
class RuleRef:
    """A rule that allows something: which section, which entry, where."""

    kind: RuleKind
    index: int  # position in `acls` or `grants`; -1 for the allow-all default
    entry: int  # position of the ACL dst entry or grant `ip` entry in its rule
    rule: AclRule | GrantRule | None = field(compare=False)
    span: Span = field(compare=False)  # the whole rule
    entry_span: Span = field(compare=False)  # the ACL dst entry or grant `ip` entry that matched

    def location(self) -> str:
        """`file:line`, for notes and explanations."""
        return f"{self.span.file}:{self.span.line}"

    @property
    def text(self) -> str:
        """The rule as written in the policy file."""
        return self.span.text

    def describe(self) -> str:
        if self.kind == "default":
            return "the default allow-all policy (neither `acls` nor `grants` is present)"
        return f"{self.kind}s[{self.index}] at {self.location()}"


@dataclass(frozen=True, slots=True)
class _Permit:
    """One rule flattened to one destination alias with its ports and protocols."""

    ref: RuleRef
    sources: tuple[Alias, ...]
    destination: Alias
    ports: tuple[PortRange, ...]
    protocols: frozenset[int] | None  # None: every IP protocol
    via: tuple[str, ...] = ()

    def matches_traffic(self, proto: int, port: int | None) -> bool:
        if self.protocols is not None and proto not in self.protocols:
            return False
        return port is None or any(r.first <= port <= r.last for r in self.ports)

    def matches_any(self, protocols: Iterable[int], port: int | None) -> bool:
        return any(self.matches_traffic(proto, port) for proto in protocols)


Permit = _Permit  # the flattened rule, as offline.py reads it


def _acl_permits(index: int, rule: AclRule) -> Iterator[_Permit]:
    protocols = frozenset(rule.protocols or DEFAULT_PROTOCOLS)
    for entry, dst in enumerate(rule.destinations):
        ref = RuleRef("acl", index, entry, rule, rule.span, dst.span)
        yield _Permit(ref, rule.sources, dst.alias, dst.ports, protocols)


def _grant_permits(index: int, rule: GrantRule) -> Iterator[_Permit]:
    via = tuple(tag.name for tag in rule.via)
    for entry, cap in enumerate(rule.ip):
        ref = RuleRef("grant", index, entry, rule, rule.span, cap.span)
        # `*` is "all ports" of the default set: SaaS captures emit it without
        # IPProto (tailcfg.ProtoPortRange: "* allows all TCP, UDP and ICMP").
        protocols = frozenset(cap.protocols or DEFAULT_PROTOCOLS)
        ports = (ALL_PORTS,) if cap.any_protocol else cap.ports
        for dst in rule.destinations:
            yield _Permit(ref, rule.sources, dst, ports, protocols, via)
    if rule.app:
        # App capabilities allow no packets, but they make the nodes peers (the
        # SaaS captures list CapGrant-only sources and destinations as peers).
        ref = RuleRef("grant", index, len(rule.ip), rule, rule.span, rule.span)
        for dst in rule.destinations:
            yield _Permit(ref, rule.sources, dst, (), frozenset(), via)


class ReferenceEvaluator:
    """Answers "may this address reach that one?" straight from the policy text."""

    def __init__(self, policy: Policy, inventory: Inventory, *, indexed: bool = True) -> None:
        self.policy = policy
        self.inventory = inventory
        self._permits = tuple(self._flatten())
        # Lookups asked once per (permit, address): index them, or a test on a
        # tailnet of a few thousand nodes takes minutes (rules x nodes x addresses).
        self._by_address: dict[IPAddress, Node] = {}
        for node in inventory:
            for ip in node.ips:
                self._by_address.setdefault(ip, node)
        self._routes = tuple(r for node in inventory for r in node.routes)
        self._has_exit = any(node.exit_node for node in inventory)
        self._from_cache: dict[IPAddress, tuple[int, ...]] = {}
        self._route_cache: dict[tuple[IPAddress, str, IPNetwork], bool] = {}
        self._roles_cache: dict[str, frozenset[str]] = {}
        self._group_cache: dict[str, frozenset[str]] = {}
        self._last_between: tuple[IPAddress, IPAddress, tuple[_Permit, ...]] | None = None
        # The index only narrows which rules and nodes the per-rule tests below
        # look at (see permit_index.py); `indexed=False` is the plain walk.
        self._index = PermitNarrowing(policy, inventory, self._permits) if indexed else None

    def _flatten(self) -> Iterator[_Permit]:
        for index, acl in enumerate(self.policy.acls or ()):
            yield from _acl_permits(index, acl)
        for index, grant in enumerate(self.policy.grants or ()):
            yield from _grant_permits(index, grant)

    @property
    def permits(self) -> tuple[_Permit, ...]:
        """Every rule flattened to (sources, one destination, ports, protocols)."""
        return self._permits

    # --- nodes -----------------------------------------------------------------

    def node_with_address(self, ip: IPAddress) -> Node | None:
        return self._by_address.get(ip)

    def nodes_of(self, alias: Alias) -> list[Node]:
        """The nodes an identity alias names; empty for address aliases."""
        candidates = self.inventory.nodes if self._index is None \
            else self._index.nodes_for(alias)
        return [n for n in candidates if self._node_matches(alias, n)]

    def _node_matches(self, alias: Alias, node: Node) -> bool:
        if isinstance(alias, UserRef):
            return login_selects(alias.login, node.owner)
        if isinstance(alias, GroupRef):
            logins = self._group_logins(alias.name)
            return node.owner in logins or any(  # `user:*@domain` members
                login_selects(m, node.owner) for m in logins if is_login_pattern(m))
        if isinstance(alias, TagRef):
            return alias.name in node.tags
        if isinstance(alias, AutoGroupRef):
            if alias.name == "autogroup:member":
                return not node.is_tagged
            if alias.name == "autogroup:tagged":
                return node.is_tagged
            if alias.name in ROLE_AUTOGROUPS:
                return node.owner is not None and node.owner in self._role_logins(alias.name)
        return False

    def _group_logins(self, name: str) -> frozenset[str]:
        """The logins a group lists; empty for an unknown group."""
        cached = self._group_cache.get(name)
        if cached is None:
            group = self.policy.groups.get(name)
            cached = frozenset(group.logins) if group is not None \
                else frozenset()
            self._group_cache[name] = cached
        return cached

    def _role_logins(self, autogroup: str) -> frozenset[str]:
        cached = self._roles_cache.get(autogroup)
        if cached is None:
            cached = self.inventory.logins_with_role(autogroup)
            self._roles_cache[autogroup] = cached
        return cached

    # --- aliases as address sets -----------------------------------------------

    def address_alias_contains(self, alias: Alias, ip: IPAddress,
                               seen: frozenset[str] = frozenset()) -> bool:
        """Membership for literal addresses, host aliases and ipsets."""
        if isinstance(alias, PrefixAlias):
            return ip.version == alias.network.version and ip in alias.network
        if isinstance(alias, RangeAlias):
            return ip.version == alias.first.version and alias.first <= ip <= alias.last  # type: ignore[operator]
        if isinstance(alias, HostRef):
            host = self.policy.hosts.get(alias.name)
            return host is not None and ip.version == host.network.version and ip in host.network
        if isinstance(alias, AutoGroupRef) and alias.name == "autogroup:internet":
            return in_internet(ip)  # inside an ipset
        if isinstance(alias, IPSetRef) and alias.name not in seen:
            ipset = self.policy.ipsets.get(alias.name)
            inner = seen | {alias.name}
            # Operations apply in order: the last one holding the address decides.
            return ipset is not None and next(
                (add for add, e in reversed(ipset.operations())
                 if self.address_alias_contains(e, ip, inner)), False)
        return False

    def ipset_networks(self, name: str, seen: frozenset[str] = frozenset()) -> list[IPNetwork]:
        """An ipset as CIDR blocks: its entries' blocks minus its removed ones."""
        ipset = self.policy.ipsets.get(name)
        if ipset is None or name in seen:
            return []
        inner = seen | {name}
        kept: list[IPNetwork] = []
        for add, entry in ipset.operations():  # in order: a later add restores
            if add:
                kept = _collapse([*kept, *self._networks(entry, inner)])
                continue
            for gone in self._networks(entry, inner):
                kept = _collapse(piece for net in kept for piece in _minus(net, gone))
        return kept

    def _networks(self, alias: Alias, seen: frozenset[str]) -> list[IPNetwork]:
        if isinstance(alias, PrefixAlias):
            return [alias.network]
        if isinstance(alias, HostRef):
            host = self.policy.hosts.get(alias.name)
            return [host.network] if host is not None else []
        if isinstance(alias, RangeAlias):
            return list(ipaddress.summarize_address_range(alias.first, alias.last))
        if isinstance(alias, AutoGroupRef) and alias.name == "autogroup:internet":
            return _internet_networks()
        if isinstance(alias, IPSetRef):
            return self.ipset_networks(alias.name, seen)
        return []

    def source_contains(self, alias: Alias, ip: IPAddress) -> bool:
        """Does `alias`, written in a rule's `src`, include address `ip`?"""
        if isinstance(alias, Wildcard):
            return in_tailscale_range(ip) or self.in_approved_route(ip)
        if isinstance(alias, AutoGroupRef) and alias.name == "autogroup:danger-all":
            return True
        if isinstance(alias, UserRef | GroupRef | TagRef | AutoGroupRef):
            node = self.node_with_address(ip)
            return node is not None and self._node_matches(alias, node)
        return self.address_alias_contains(alias, ip)

    def destination_contains(self, alias: Alias, src_ip: IPAddress, dst_ip: IPAddress) -> bool:
        """Does `alias`, written in a rule's `dst`, include `dst_ip` for traffic from `src_ip`?"""
        if isinstance(alias, Wildcard):
            return True
        if isinstance(alias, AutoGroupRef):
            if alias.name == "autogroup:internet":
                return in_internet(dst_ip)
            if alias.name == "autogroup:self":
                return self._same_owner(src_ip, dst_ip)
            if alias.name == "autogroup:danger-all":
                return False  # not valid as a destination
        return self.source_contains(alias, dst_ip)

    def _same_owner(self, src_ip: IPAddress, dst_ip: IPAddress) -> bool:
        src, dst = self.node_with_address(src_ip), self.node_with_address(dst_ip)
        if src is None or dst is None or dst.owner is None:
            return False
        return src.owner == dst.owner

    # --- delivery ----------------------------------------------------------------

    def in_approved_route(self, ip: IPAddress) -> bool:
        return any(ip in r for r in self._routes if r.version == ip.version)

    def has_exit_node(self) -> bool:
        return self._has_exit

    def deliverable(self, dst_ip: IPAddress) -> bool:
        """Would some node receive a packet for `dst_ip` (itself, as router, as exit)?"""
        if self.node_with_address(dst_ip) is not None or self.in_approved_route(dst_ip):
            return True
        return in_internet(dst_ip) and self.has_exit_node()

    def _via_serves(self, via: tuple[str, ...], src_ip: IPAddress, dst_ip: IPAddress) -> bool:
        """A grant with `via` applies only where traffic goes through a node carrying a
        via tag. From a node, that is the router of the most specific route holding
        `dst_ip` among those the node routes by: its own routes and the routes its
        peers carry for it, i.e. those of via-tagged routers and those some rule of
        the node's reaches (headscale's ViaRoutesForPeer withholds a non-via
        router's overlapping route unless a regular grant covers it; a peer's
        AllowedIPs then decide by longest prefix). Ties go to the via router. An
        address that is no node's (a host behind a router) is taken to reach every
        route. Outside every route, a via-tagged exit node serves the Internet."""
        sender = self.node_with_address(src_ip)
        best, through_via = -1, False
        for node in self.inventory:
            tagged = bool(set(via) & set(node.tags))
            for route in node.routes:
                if route.version != dst_ip.version or dst_ip not in route:
                    continue
                if not (sender is None or tagged or node is sender
                        or self._routes_to(src_ip, node, route)):
                    continue
                if route.prefixlen > best:
                    best, through_via = route.prefixlen, tagged
                elif route.prefixlen == best:
                    through_via = through_via or tagged
        if best >= 0:
            return through_via
        for node in self.inventory:
            if not set(via) & set(node.tags):
                continue
            if any(dst_ip in r for r in node.routes if r.version == dst_ip.version):
                return True
            if node.exit_node and in_internet(dst_ip):
                return True
        return False

    def _routes_to(self, src_ip: IPAddress, router: Node, route: IPNetwork) -> bool:
        """Does some rule from `src_ip` reach into `route` of `router` (a via rule only
        when the router carries one of its via tags)? Then the router is the
        source's peer with that route in its AllowedIPs."""
        key = (src_ip, router.name, route)
        found = self._route_cache.get(key)
        if found is None:
            found = any(
                (not p.via or bool(set(p.via) & set(router.tags)))
                and self._destination_overlaps(p.destination, route)
                for p in (self._permits[i] for i in self._permits_from(src_ip)))
            self._route_cache[key] = found
        return found

    def _destination_overlaps(self, alias: Alias, net: IPNetwork) -> bool:
        if isinstance(alias, Wildcard):
            return True
        if isinstance(alias, AutoGroupRef):
            if alias.name == "autogroup:internet":
                return _overlaps_internet(net)
            if alias.name in ("autogroup:self", "autogroup:danger-all"):
                return False
        if isinstance(alias, UserRef | GroupRef | TagRef | AutoGroupRef):
            return any(ip in net for n in self.nodes_of(alias) for ip in n.ips
                       if ip.version == net.version)
        return any(_overlaps(n, net) for n in self._networks(alias, frozenset()))

    # --- the questions -------------------------------------------------------------

    def _permits_from(self, src_ip: IPAddress) -> tuple[int, ...]:
        """Positions of the permits whose `src` includes `src_ip`, in policy order
        (memoised: a test or an explanation asks about one source against many
        destinations)."""
        cached = self._from_cache.get(src_ip)
        if cached is None:
            candidates = range(len(self._permits)) if self._index is None \
                else self._index.from_address(src_ip, self.node_with_address(src_ip))
            cached = tuple(i for i in candidates
                           if any(self.source_contains(s, src_ip)
                                  for s in self._permits[i].sources))
            self._from_cache[src_ip] = cached
        return cached

    def _permits_between(self, src_ip: IPAddress, dst_ip: IPAddress) -> tuple[_Permit, ...]:
        """The permits whose `src` includes `src_ip` and whose destination may
        include `dst_ip` (the caller decides), in policy order."""
        last = self._last_between  # a test asks one pair once per protocol in a row
        if last is not None and last[0] == src_ip and last[1] == dst_ip:
            return last[2]
        positions: Sequence[int] = self._permits_from(src_ip)
        if self._index is not None:
            positions = self._index.towards(positions, dst_ip, self.node_with_address(dst_ip))
        permits = tuple(self._permits[i] for i in positions)
        self._last_between = (src_ip, dst_ip, permits)
        return permits

    def candidate_permits(self, *, sources: Iterable[IPAddress] = (),
                          destinations: Iterable[IPAddress] = (),
                          role_sources: bool = False) -> list[_Permit]:
        """In policy order, the permits whose `src` may include one of `sources`,
        whose destination may include one of `destinations`, or (`role_sources`)
        whose `src` may name a role autogroup: a superset, for callers that
        then test each permit themselves. Every permit without the index."""
        if self._index is None:
            return list(self._permits)
        positions = self._index.candidates(
            [(ip, self.node_with_address(ip)) for ip in sources],
            [(ip, self.node_with_address(ip)) for ip in destinations], role_sources)
        return [self._permits[i] for i in positions]

    def allowing_rules(self, src_ip: IPAddress, dst_ip: IPAddress, proto: int,
                       port: int | None) -> list[RuleRef]:
        """Every rule entry that allows `src_ip` to initiate `proto`/`port` to `dst_ip`.

        Rules only: whether any node delivers `dst_ip` is `allowed`'s business.
        """
        if self.policy.allows_all:
            # Tailscale's FilterAllowAll: any source, any destination, any port, but
            # IPProto is omitted, so only the default protocol set.
            if proto not in DEFAULT_PROTOCOLS:
                return []
            whole = self.policy.source.whole()
            return [RuleRef("default", -1, -1, None, whole, whole)]
        found: list[RuleRef] = []
        seen: set[RuleRef] = set()  # a dense pair is allowed by dozens of entries
        for permit in self._permits_between(src_ip, dst_ip):
            if permit.ref in seen or not permit.matches_traffic(proto, port):
                continue
            if not self.destination_contains(permit.destination, src_ip, dst_ip):
                continue
            if permit.via and not self._via_serves(permit.via, src_ip, dst_ip):
                continue
            found.append(permit.ref)
            seen.add(permit.ref)
        return found

    def allowed(self, src_ip: IPAddress, dst_ip: IPAddress, proto: int,
                port: int | None) -> bool:
        """May `src_ip` open `proto`/`port` to `dst_ip`, and would a node deliver it?"""
        return self.deliverable(dst_ip) and bool(
            self.allowing_rules(src_ip, dst_ip, proto, port))

    def allowing_rules_any(self, src_ip: IPAddress, dst_ip: IPAddress,
                           protocols: Sequence[int], port: int | None) -> list[RuleRef]:
        """`allowing_rules` for each of `protocols` in turn, merged without repeats in
        that order (a test asks about the default set of four). The permits between
        the pair are matched against the addresses once, not once per protocol."""
        if self.policy.allows_all:
            merged = {r: None for proto in protocols
                      for r in self.allowing_rules(src_ip, dst_ip, proto, port)}
            return list(merged)
        applying = [p for p in self._permits_between(src_ip, dst_ip)
                    if p.matches_any(protocols, port)
                    and self.destination_contains(p.destination, src_ip, dst_ip)
                    and (not p.via or self._via_serves(p.via, src_ip, dst_ip))]
        found: dict[RuleRef, None] = {}
        for proto in protocols:
            for permit in applying:
                if permit.ref not in found and permit.matches_traffic(proto, port):
                    found[permit.ref] = None
        return list(found)

    def open_ports(self, src_ip: IPAddress, dst_ip: IPAddress, proto: int) -> list[PortRange]:
        """The port ranges of every rule entry allowing `proto` from src to dst."""
        ranges: set[PortRange] = set()
        for ref in self.allowing_rules(src_ip, dst_ip, proto, None):
            if ref.kind == "default":
                return [ALL_PORTS]
            ranges.update(self._ports_of(ref, src_ip, dst_ip, proto))
        return sorted(ranges)

    def _ports_of(self, ref: RuleRef, src_ip: IPAddress, dst_ip: IPAddress,
                  proto: int) -> Iterable[PortRange]:
        for permit in self._permits:
            if permit.ref == ref and permit.matches_traffic(proto, None) \
                    and self.destination_contains(permit.destination, src_ip, dst_ip):
                yield from permit.ports

    # --- peer visibility (§5.5) -------------------------------------------------------

    def may_see(self, a: Node, b: Node) -> bool:
        """Is `b` among `a`'s peers: may either initiate to the other?"""
        if a.name == b.name:
            return False
        if self.policy.allows_all:
            return True
        return self.may_initiate(a, b) or self.may_initiate(b, a)

    def may_initiate(self, a: Node, b: Node) -> bool:
        """Does some rule let `a` (or hosts behind its routes) reach `b` or what `b` serves?"""
        return any(self._permit_links(p, a, b) for p in self._permits)

    def _permit_links(self, permit: _Permit, a: Node, b: Node) -> bool:
        if not any(self._source_touches(s, a) for s in permit.sources):
            return False
        dst = permit.destination
        if isinstance(dst, AutoGroupRef) and dst.name == "autogroup:self":
            return a.owner is not None and a.owner == b.owner
        if permit.via:
            if not set(permit.via) & set(b.tags):
                return False
            # Through a via exit node: the Internet, or any Internet prefix (as
            # reduction keeps Internet-space entries on exit nodes).
            return self._reaches_served(dst, b) or (
                b.exit_node and self._has_internet_prefix(dst))
        reaches_node = any(self.destination_contains(dst, a_ip, b_ip)
                           for a_ip in a.ips for b_ip in b.ips)
        return reaches_node or self._reaches_served(dst, b)

    def _source_touches(self, alias: Alias, node: Node) -> bool:
        """The alias holds one of the node's addresses or overlaps its approved routes."""
        if any(self.source_contains(alias, ip) for ip in node.ips):
            return True
        return any(self._alias_overlaps(alias, route) for route in node.routes)

    def _reaches_served(self, dst: Alias, node: Node) -> bool:
        """The destination overlaps the node's routes, or is the Internet and it is an exit."""
        if any(self._alias_overlaps(dst, route) for route in node.routes):
            return True
        return node.exit_node and _covers_internet(dst)

    def _has_internet_prefix(self, alias: Alias, seen: frozenset[str] = frozenset()) -> bool:
        """Does an address alias hold a CIDR block made only of Internet addresses?"""
        if isinstance(alias, PrefixAlias):
            return _within_internet(alias.network)
        if isinstance(alias, HostRef):
            host = self.policy.hosts.get(alias.name)
            return host is not None and _within_internet(host.network)
        if isinstance(alias, RangeAlias):
            return any(_within_internet(n) for n in ipaddress.summarize_address_range(
                alias.first, alias.last))
        if isinstance(alias, IPSetRef) and alias.name not in seen:
            return any(_within_internet(n) for n in self.ipset_networks(alias.name))
        return False

    def _alias_overlaps(self, alias: Alias, net: IPNetwork) -> bool:
        """Does the alias share at least one address with `net`?"""
        if isinstance(alias, Wildcard):
            return True
        if isinstance(alias, AutoGroupRef):
            if alias.name == "autogroup:internet":
                return _overlaps_internet(net)
            if alias.name == "autogroup:danger-all":
                return True
        if isinstance(alias, PrefixAlias):
            return _overlaps(alias.network, net)
        if isinstance(alias, HostRef):
            host = self.policy.hosts.get(alias.name)
            return host is not None and _overlaps(host.network, net)
        if isinstance(alias, RangeAlias):
            return alias.first.version == net.version and not (
                alias.last < net.network_address or alias.first > net.broadcast_address)  # type: ignore[operator]
        if isinstance(alias, IPSetRef):
            return any(_overlaps(n, net) for n in self.ipset_networks(alias.name))
        return any(ip in net for n in self.nodes_of(alias) for ip in n.ips
                   if ip.version == net.version)


def _collapse(nets: Iterable[IPNetwork]) -> list[IPNetwork]:
    """Merge blocks per address family (collapse_addresses wants one family)."""
    items = list(nets)
    out: list[IPNetwork] = []
    for version in (4, 6):
        out.extend(ipaddress.collapse_addresses(  # type: ignore[type-var]
            n for n in items if n.version == version))
    return out


def _minus(net: IPNetwork, gone: IPNetwork) -> list[IPNetwork]:
    """`net` without the addresses of `gone`, as blocks."""
    if not _overlaps(net, gone):
        return [net]
    if net.subnet_of(gone):  # type: ignore[arg-type]
        return []
    return list(net.address_exclude(gone))  # type: ignore[arg-type]


def _internet_networks() -> list[IPNetwork]:
    """autogroup:internet as blocks: the included space minus the excluded."""
    kept = list(INTERNET_INCLUDED)
    for gone in INTERNET_EXCLUDED:
        kept = [piece for net in kept for piece in _minus(net, gone)]
    return _collapse(kept)


def _within_internet(net: IPNetwork) -> bool:
    """Is every address of `net` an Internet address?"""
    return any(net.version == inc.version and net.subnet_of(inc)  # type: ignore[arg-type]
               for inc in INTERNET_INCLUDED) and not any(
        _overlaps(net, exc) for exc in INTERNET_EXCLUDED)


def _covers_internet(alias: Alias) -> bool:
    """Is the alias the whole Internet: `*`, `autogroup:internet`, or a /0?"""
    if isinstance(alias, Wildcard):
        return True
    if isinstance(alias, AutoGroupRef):
        return alias.name == "autogroup:internet"
    return isinstance(alias, PrefixAlias) and alias.network.prefixlen == 0


def _overlaps_internet(net: IPNetwork) -> bool:
    """Does `net` hold an Internet address? (Not entirely inside excluded space.)"""
    if not any(_overlaps(net, inc) for inc in INTERNET_INCLUDED):
        return False
    return not any(net.version == exc.version and net.subnet_of(exc)  # type: ignore[arg-type]
                   for exc in INTERNET_EXCLUDED)


# --- SSH (§6) ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SshVerdict:
    """The first SSH rule that matches a connection, or none."""

    action: str | None  # "accept" | "check" | None: no rule matches
    index: int = -1  # position in `ssh`
    span: Span | None = None

    def describe(self) -> str:
        if self.action is None or self.span is None:
            return "no ssh rule matches"
        return f"ssh[{self.index}] at {self.span.file}:{self.span.line} decides {self.action}"


def ssh_user_matches(pattern: str, user: str, src: Node) -> bool:
    """Does an SSH rule `users` entry admit local `user` for a source node?"""
    if pattern == "autogroup:nonroot":
        return user != "root"
    if pattern.startswith("localpart:*@"):
        domain = pattern.removeprefix("localpart:*@")
        owner = src.owner or ""
        local, _, owner_domain = owner.partition("@")
        return bool(local) and owner_domain == domain and user == local
    return pattern == user


def _ssh_owner_ok(destination: Alias, src: Node, dst: Node) -> bool:
    """A user named as an SSH destination is reached from that user's own devices
    only (as the compiler lays it out: SSH into another user's device is never
    allowed, and SaaS accepts member/role sources beside the user)."""
    return not isinstance(destination, UserRef) or (
        not src.tags and src.owner is not None and src.owner == dst.owner)


def ssh_verdict(evaluator: ReferenceEvaluator, src: Node, dst: Node, user: str) -> SshVerdict:
    """First-match evaluation of the `ssh` rules for `src` -> `dst` as `user`."""
    for index, rule in enumerate(evaluator.policy.ssh):
        if not any(evaluator.source_contains(a, ip) for a in rule.sources for ip in src.ips):
            continue
        if not any(evaluator.destination_contains(a, s, d) and _ssh_owner_ok(a, src, dst)
                   for a in rule.destinations for s in src.ips for d in dst.ips):
            continue
        if any(ssh_user_matches(p, user, src) for p in rule.users):
            return SshVerdict(rule.action, index, rule.span)
    return SshVerdict(None)

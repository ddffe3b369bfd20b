"""What a policy allows, as a union of boxes over (source, destination, service).

A `Box` is every packet from an address of `src` to an address of `dst` whose
(protocol, port) is in `services`, and the rule entry that allows it. A policy
allows a packet exactly when some box holds it. The boxes follow the
reference evaluator's semantics (`reference.py`), not the compiler's wire
output, and answer the same question as `ReferenceEvaluator.allowing_rules`:
what the rules permit, whether or not some node delivers the destination (so
`10.20.0.0/16` counts even when no router serves it; `tests` judge that way).

Packets: a ported protocol (TCP, UDP, SCTP) carries a port; any other
protocol is one point per protocol, matched by a rule entry whatever ports it
names. Per-destination meanings become plain boxes: `autogroup:self` is one
box per owner (sources of that owner -> that owner's untagged nodes), and a
`via` grant's destinations are cut to what its via-tagged routers serve from each
source (the most specific route a source routes by decides, as in the reference).
The property tests in tests/analysis/test_diff.py hold this to the reference
evaluator on random policies, tailnets and packets.
"""

from __future__ import annotations

import bisect
import copy
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass

from policyc.analysis.reference import RuleRef
from policyc.analysis.services import DEFAULT_SERVICES, Services
from policyc.compiler.addrset import ALL, EMPTY, AddressSet, Interval, Intervals, union_all
from policyc.compiler.internet import INTERNET, TAILSCALE_RANGES
from policyc.compiler.nodes import ROLE_AUTOGROUPS, Inventory, is_login_pattern, login_selects
from policyc.compiler.resolve import Resolver
from policyc.netmap import ALL_PORTS, DEFAULT_PROTOCOLS, PortRange
from policyc.policy.model import (
    AclRule,
    Alias,
    AutoGroupRef,
    GrantRule,
    GroupRef,
    IPAddress,
    IPNetwork,
    Policy,
    TagRef,
    UserRef,
    Wildcard,
)

SELF = "autogroup:self"


@dataclass(frozen=True, slots=True)
class Box:
    """Every packet src x dst x services; `rule` is the entry that allows them."""

    src: AddressSet
    dst: AddressSet
    services: Services
    rule: RuleRef

    def contains(self, src: IPAddress, dst: IPAddress, proto: int, port: int | None) -> bool:
        return src in self.src and dst in self.dst and self.services.contains(proto, port)

    @property
    def key(self) -> tuple[AddressSet, AddressSet, Services]:
        """The packets, without the rule: equal keys allow the same packets."""
        return self.src, self.dst, self.services


@dataclass(frozen=True, slots=True)
class PolicyAccess:
    """A policy's access over one inventory: the union of its boxes."""

    policy: Policy
    inventory: Inventory
    boxes: tuple[Box, ...]

    def allows(self, src: IPAddress, dst: IPAddress, proto: int, port: int | None) -> bool:
        return any(b.contains(src, dst, proto, port) for b in self.boxes)

    def rules_for(self, src: IPAddress, dst: IPAddress, proto: int,
                  port: int | None) -> list[RuleRef]:
        out: list[RuleRef] = []
        for box in self.boxes:
            if box.contains(src, dst, proto, port) and box.rule not in out:
                out.append(box.rule)
        return out


def policy_access(policy: Policy, inventory: Inventory,
                  sets: AliasSets | None = None) -> PolicyAccess:
    """The boxes of `policy` over `inventory` (`sets`: its AliasSets, if already made)."""
    sets = AliasSets(policy, inventory) if sets is None else sets
    return PolicyAccess(policy, inventory, tuple(_boxes(policy, sets)))


@dataclass(frozen=True, slots=True)
class _Entry:
    """One ACL `dst` entry or one grant `ip` entry towards one destination alias."""

    ref: RuleRef
    sources: tuple[Alias, ...]
    destination: Alias
    services: Services
    via: tuple[str, ...] = ()


def _entries(policy: Policy) -> Iterator[_Entry]:
    for index, acl in enumerate(policy.acls or ()):
        yield from _acl_entries(index, acl)
    for index, grant in enumerate(policy.grants or ()):
        yield from _grant_entries(index, grant)


def _acl_entries(index: int, rule: AclRule) -> Iterator[_Entry]:
    protocols = rule.protocols or DEFAULT_PROTOCOLS
    for entry, dst in enumerate(rule.destinations):
        ref = RuleRef("acl", index, entry, rule, rule.span, dst.span)
        yield _Entry(ref, rule.sources, dst.alias, Services.of(protocols, dst.ports))


def _grant_entries(index: int, rule: GrantRule) -> Iterator[_Entry]:
    via = tuple(tag.name for tag in rule.via)
    for entry, cap in enumerate(rule.ip):
        ref = RuleRef("grant", index, entry, rule, rule.span, cap.span)
        # `*` is every port of the default set (see reference.py's _grant_permits).
        ports: tuple[PortRange, ...] = (ALL_PORTS,) if cap.any_protocol else cap.ports
        services = Services.of(cap.protocols or DEFAULT_PROTOCOLS, ports)
        for dst in rule.destinations:
            yield _Entry(ref, rule.sources, dst, services, via)
    # App capabilities allow no packets: no boxes (see _app_entries).


def _app_entries(policy: Policy) -> Iterator[_Entry]:
    """Grants' app capabilities as entries without services: they allow no packets
    but make peers, so they count for which routes a source routes by."""
    for index, grant in enumerate(policy.grants or ()):
        if grant.app:
            ref = RuleRef("grant", index, len(grant.ip), grant, grant.span, grant.span)
            via = tuple(tag.name for tag in grant.via)
            for dst in grant.destinations:
                yield _Entry(ref, grant.sources, dst, Services(()), via)


def _boxes(policy: Policy, sets: AliasSets) -> Iterator[Box]:
    if policy.allows_all:
        whole = policy.source.whole()
        yield Box(ALL, ALL, DEFAULT_SERVICES, RuleRef("default", -1, -1, None, whole, whole))
        return
    sources: dict[tuple[Alias, ...], AddressSet] = {}  # a rule's entries share its `src`
    for entry in _entries(policy):
        if not entry.services:
            continue
        src = sources.get(entry.sources)
        if src is None:
            src = sources[entry.sources] = union_all(sets.source(a) for a in entry.sources)
        if not src:
            continue
        parts = sets.via_parts(entry.via, src) if entry.via else [(src, ALL)]
        for part, served in parts:
            yield from _entry_boxes(entry, sets, part, served)


def _entry_boxes(entry: _Entry, sets: AliasSets, src: AddressSet,
                 served: AddressSet) -> Iterator[Box]:
    """The boxes of one entry from `src`, destinations cut to `served`."""
    if isinstance(entry.destination, AutoGroupRef) and entry.destination.name == SELF:
        # The source must be an untagged node of the destination node's owner:
        # one box per owner with a node among the sources.
        for mine, owned in sets.self_parts(src):
            dst = owned if served is ALL else owned & served
            if mine and dst:
                yield Box(mine, dst, entry.services, entry.ref)
        return
    dst = sets.destination(entry.destination)
    dst = dst if served is ALL else dst & served
    if dst:
        yield Box(src, dst, entry.services, entry.ref)


def _clip(small: AddressSet, big: AddressSet) -> AddressSet:
    """`small & big`, by bisection in `big`: an owner's few addresses cut out of a
    source of thousands (one per owner and self rule) cost O(few x log n), not O(n)."""
    return AddressSet(_clip_intervals(small.v4, big.v4), _clip_intervals(small.v6, big.v6))


def _clip_intervals(small: Intervals, big: Intervals) -> Intervals:
    out: list[Interval] = []
    for first, last in small:
        k = max(bisect.bisect_right(big, (first, first)) - 1, 0)  # the last start <= first
        while k < len(big) and big[k][0] <= last:
            low, high = max(first, big[k][0]), min(last, big[k][1])
            if low <= high:
                out.append((low, high))
            k += 1
    return tuple(out)


class AliasSets:
    """Aliases as address sets, with the reference evaluator's meanings.

    Address aliases (prefixes, ranges, hosts, ipsets) go through the compiler's
    resolver; identities are matched the way `ReferenceEvaluator._node_matches`
    does (a tagged node belongs to its tags, never to its user).
    """

    def __init__(self, policy: Policy, inventory: Inventory) -> None:
        self.policy = policy
        self.inventory = inventory
        self.resolver = Resolver(policy, inventory)
        addrs = self.resolver.node_addrs
        owned: dict[str, list[AddressSet]] = defaultdict(list)
        tagged: dict[str, list[AddressSet]] = defaultdict(list)
        for i, node in enumerate(inventory):
            if node.owner is not None:
                owned[node.owner].append(addrs[i])
            for tag in node.tags:
                tagged[tag].append(addrs[i])
        self.owned = {u: union_all(a) for u, a in owned.items()}
        self.tagged = {t: union_all(a) for t, a in tagged.items()}
        self.members = union_all(addrs[i] for i, n in enumerate(inventory) if not n.is_tagged)
        self.any_tagged = union_all(addrs[i] for i, n in enumerate(inventory) if n.is_tagged)
        self.routes = self.resolver.all_routes
        self._cache: dict[tuple[str, str], AddressSet] = {}
        self._users: dict[tuple[int, IPNetwork], AddressSet] | None = None
        self._self_parts: dict[int, tuple[AddressSet, list[tuple[AddressSet, AddressSet]]]] = {}

    def with_policy(self, policy: Policy) -> AliasSets:
        """The same inventory's sets for another policy, without rebuilding the indexes."""
        twin = copy.copy(self)
        twin.policy = policy
        twin.resolver = self.resolver.with_policy(policy)
        twin._cache = {key: found for key, found in self._cache.items()
                       if self._same_in(policy, key)}
        twin._users = None
        twin._self_parts = {}
        return twin

    def _same_in(self, policy: Policy, key: tuple[str, str]) -> bool:
        """Does the alias cached under `key` stand for the same addresses in `policy`?
        Identities other than groups depend on the inventory only; a group, on its
        members (a 10k dense diff re-made 200 unions of ~2,500 members otherwise)."""
        kind, name = key
        if kind == "GroupRef":
            old, new = self.policy.groups.get(name), policy.groups.get(name)
            return (old.logins if old else None) == (new.logins if new else None)
        return kind in ("UserRef", "TagRef", "AutoGroupRef", "Wildcard")

    def source(self, alias: Alias) -> AddressSet:
        """The addresses `alias` includes when written in a rule's `src`."""
        key = (type(alias).__name__, str(alias))
        found = self._cache.get(key)
        if found is None:
            found = self._source(alias)
            self._cache[key] = found
        return found

    def _source(self, alias: Alias) -> AddressSet:
        if isinstance(alias, Wildcard):
            return TAILSCALE_RANGES | self.routes
        if isinstance(alias, UserRef):
            return self._owned_by(alias.login)
        if isinstance(alias, GroupRef):
            group = self.policy.groups.get(alias.name)
            logins = set(group.logins) if group else set()
            return union_all(self._owned_by(login) for login in logins)
        if isinstance(alias, TagRef):
            return self.tagged.get(alias.name, EMPTY)
        if isinstance(alias, AutoGroupRef):
            if alias.name in ROLE_AUTOGROUPS:  # untagged nodes of users with the role
                roles = self.inventory.logins_with_role(alias.name)
                return union_all(self.owned.get(login, EMPTY) for login in roles)
            return {"autogroup:member": self.members, "autogroup:tagged": self.any_tagged,
                    "autogroup:danger-all": ALL}.get(alias.name, EMPTY)
        return self.resolver.alias(alias)

    def _owned_by(self, login: str) -> AddressSet:
        """The untagged nodes' addresses a user alias selects (`user:*@domain`: many)."""
        if not is_login_pattern(login):
            return self.owned.get(login, EMPTY)
        return union_all(a for owner, a in self.owned.items() if login_selects(login, owner))

    def owners_in(self, addrs: AddressSet) -> list[str]:
        """Owners of the untagged nodes with an address in `addrs`, each once, sorted."""
        nodes = self.resolver.nodes
        return sorted({owner for i in self.resolver.nodes_in(addrs)
                       if (owner := nodes[i].owner) is not None})

    def self_parts(self, src: AddressSet) -> list[tuple[AddressSet, AddressSet]]:
        """(the owner's addresses in `src`, all the owner's addresses) for each owner of
        an untagged node in `src`, by owner. Memoised per source object: a dense policy's
        dozens of `autogroup:member -> autogroup:self` rules share one source of
        thousands of owners (the set is kept with its parts, so its id stays its own)."""
        found = self._self_parts.get(id(src))
        if found is None or found[0] is not src:
            parts = [(_clip(self.owned[owner], src), self.owned[owner])
                     for owner in self.owners_in(src)]
            found = self._self_parts[id(src)] = (src, parts)
        return found[1]

    def destination(self, alias: Alias) -> AddressSet:
        """The addresses `alias` includes in a `dst` (autogroup:self is the caller's)."""
        if isinstance(alias, Wildcard):
            return ALL
        if isinstance(alias, AutoGroupRef):
            if alias.name == "autogroup:internet":
                return INTERNET
            if alias.name in ("autogroup:danger-all", SELF):
                return EMPTY
        return self.source(alias)

    def via_parts(self, via: tuple[str, ...], src: AddressSet,
                  ) -> list[tuple[AddressSet, AddressSet]]:
        """`src` split by what a via grant reaches from it: (sources, destinations).

        As `ReferenceEvaluator._via_serves`: from a node address, the most specific
        route it routes by decides (its node's own routes, via-tagged routers'
        routes and the routes some rule of its reaches; ties to the via router);
        other addresses are taken to reach every route.
        """
        r = self.resolver
        by_region: dict[AddressSet, list[AddressSet]] = {}
        nodes = r.nodes_in(src)
        rest = src - union_all(r.node_addrs[i] for i in nodes)
        if rest:
            by_region.setdefault(self._via_region(via, None, None), []).append(rest)
        for i in nodes:
            for ip in r.nodes[i].ips:
                if ip in src:
                    region = self._via_region(via, i, ip)
                    by_region.setdefault(region, []).append(AddressSet.of_address(ip))
        return [(union_all(parts), region) for region, parts in by_region.items()]

    def _via_region(self, via: tuple[str, ...], sender: int | None,
                    ip: IPAddress | None) -> AddressSet:
        """Where a via grant reaches from `ip` (an address of node `sender`; None: an
        address that is no node's, which reaches every route): paint the
        routes it routes by from the least to the most specific (at one length the
        via routers' last), via routers' routes in, others out; then the Internet
        outside every such route if a via-tagged exit node exists."""
        routes: list[tuple[int, bool, AddressSet]] = []
        exits = False
        users = self._route_users()
        for p, node in enumerate(self.inventory):
            tagged = bool(set(via) & set(node.tags))
            exits = exits or (tagged and node.exit_node)
            for route in node.routes:
                if sender is None or tagged or p == sender \
                        or (ip is not None and ip in users.get((p, route), EMPTY)):
                    routes.append((route.prefixlen, tagged, AddressSet.of_network(route)))
        region = EMPTY
        for _, tagged, addrs in sorted(routes, key=lambda c: (c[0], c[1])):
            region = region | addrs if tagged else region - addrs
        if exits:
            region = region | (INTERNET - union_all(addrs for _, _, addrs in routes))
        return region

    def _route_users(self) -> dict[tuple[int, IPNetwork], AddressSet]:
        """(router, route) -> the sources some rule (app-only grants too) lets into the
        route: the rule's destination overlaps it, and a via rule's tags are the
        router's. Those sources have the router as a peer carrying the route."""
        if self._users is None:
            found: dict[tuple[int, IPNetwork], list[AddressSet]] = defaultdict(list)
            routers = [(p, node, route) for p, node in enumerate(self.inventory)
                       for route in node.routes]
            for entry in (*_entries(self.policy), *_app_entries(self.policy)):
                dst = self.destination(entry.destination)
                src = union_all(self.source(a) for a in entry.sources)
                for p, node, route in routers:
                    if (not entry.via or set(entry.via) & set(node.tags)) \
                            and dst.overlaps(AddressSet.of_network(route)):
                        found[(p, route)].append(src)
            self._users = {key: union_all(srcs) for key, srcs in found.items()}
        return self._users

    def delivered(self) -> AddressSet:
        """Addresses some node receives: node addresses, routes, the Internet via exits."""
        nodes = union_all(self.resolver.node_addrs)
        exits = INTERNET if any(n.exit_node for n in self.inventory) else EMPTY
        return nodes | self.routes | exits

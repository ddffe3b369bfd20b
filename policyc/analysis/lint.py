"""Warnings that need the inventory: dead rules, shadowed rules, unused tags.

W201 a rule's sources or destinations match no node and no approved route;
W203 everything a rule allows is allowed by one other rule (checked per
     destination entry: a sufficient, not a necessary, condition);
W205 a tag in `tagOwners` that no rule, tag owner, approver or node uses.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import chain

from policyc.compiler.addrset import ALL, AddressSet, union_all
from policyc.compiler.grants import is_self
from policyc.compiler.nodes import Inventory
from policyc.compiler.resolve import DANGER_ALL, INTERNET_GROUP, Resolver
from policyc.diagnostics.diagnostics import Diagnostics
from policyc.diagnostics.source import Span
from policyc.netmap import ALL_PORTS, DEFAULT_PROTOCOLS, PortRange
from policyc.policy.model import (
    Alias,
    AutoGroupRef,
    IPCapability,
    Policy,
    TagRef,
    Wildcard,
)
from policyc.policy.walk import routing_aliases, rule_aliases


@dataclass(frozen=True, slots=True)
class Access:
    """What one policy rule allows: sources x (destinations, protocols, ports)."""

    span: Span
    src: AddressSet
    entries: tuple[tuple[AddressSet, frozenset[int], PortRange], ...]
    has_self: bool

    def covers(self, other: Access) -> bool:
        return other.src.issubset(self.src) and self.covers_entries(other)

    def covers_entries(self, other: Access) -> bool:
        """`covers` for a rule whose sources are known to lie within this one's."""
        if self.has_self or other.has_self:
            return False
        return all(self._covers_entry(e) for e in other.entries)

    def _covers_entry(self, entry: tuple[AddressSet, frozenset[int], PortRange]) -> bool:
        dst, protos, ports = entry
        reach = union_all(
            d for d, p, r in self.entries
            if protos <= p and r.first <= ports.first and ports.last <= r.last
        )
        return dst.issubset(reach)


def lint_policy(policy: Policy, inventory: Inventory, diags: Diagnostics) -> None:
    resolver = Resolver(policy, inventory)
    accesses = [_access(resolver, rule) for rule in _rules(policy)]
    for access, (src_ok, dst_ok) in zip(accesses, _liveness(resolver, policy), strict=True):
        if not src_ok:
            diags.warning("W201", access.span, "this rule's sources match no node or route")
        elif not dst_ok:
            diags.warning("W201", access.span, "this rule's destinations match no node or route")
    _shadowed(accesses, diags)
    _unused_tags(policy, inventory, diags)


# --- rules -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Rule:
    """A policy rule as (sources, destinations x capabilities)."""

    span: Span
    sources: tuple[Alias, ...]
    destinations: tuple[Alias, ...]
    pairs: tuple[tuple[Alias, IPCapability], ...]
    opaque: bool  # self / via / app: per-node meaning, never compared for W203


def _rules(policy: Policy) -> list[_Rule]:
    out = [
        _Rule(g.span, g.sources, g.destinations,
              tuple((d, c) for d in g.destinations for c in g.ip),
              bool(g.via or g.app) or any(is_self(d) for d in g.destinations))
        for g in policy.grants or ()
    ]
    for acl in policy.acls or ():
        dsts = tuple(d.alias for d in acl.destinations)
        pairs = tuple((d.alias, IPCapability(acl.protocols, d.ports)) for d in acl.destinations)
        out.append(_Rule(acl.span, acl.sources, dsts, pairs, any(is_self(d) for d in dsts)))
    return out


def _access(r: Resolver, rule: _Rule) -> Access:
    entries = [
        (_dst(r, alias), _protocols(cap), p)
        for alias, cap in rule.pairs for p in cap.ports or (ALL_PORTS,)
    ]
    return Access(rule.span, _src(r, rule.sources), tuple(entries), rule.opaque)


def _protocols(cap: IPCapability) -> frozenset[int]:
    # A grant's `*` compiles without IPProto, like an omitted protocol: the default
    # set, not every protocol (docs/conformance.md).
    return frozenset(cap.protocols or DEFAULT_PROTOCOLS)


def _src(r: Resolver, aliases: Iterable[Alias]) -> AddressSet:
    out = union_all(r.alias(a) for a in aliases)
    if any(isinstance(a, Wildcard) for a in aliases):
        out = out | r.all_routes
    return out


def _dst(r: Resolver, alias: Alias) -> AddressSet:
    return ALL if isinstance(alias, Wildcard) else r.alias(alias)


# --- W201 ------------------------------------------------------------------------


def _liveness(r: Resolver, policy: Policy) -> Iterator[tuple[bool, bool]]:
    for rule in _rules(policy):
        yield (_matches_any(r, rule.sources), _matches_any(r, rule.destinations))


def _matches_any(r: Resolver, aliases: tuple[Alias, ...]) -> bool:
    for alias in aliases:
        if isinstance(alias, Wildcard):
            return bool(r.nodes)
        if isinstance(alias, AutoGroupRef):
            if alias.name == DANGER_ALL:
                return bool(r.nodes)
            if alias.name == INTERNET_GROUP:
                if r.exit_nodes:
                    return True
                continue
            if is_self(alias):
                if r.members:
                    return True
                continue
        addrs = r.alias(alias)
        if r.nodes_in(addrs) or r.routers_overlapping(addrs):
            return True
    return False


# --- W203 ------------------------------------------------------------------------


def _within(accesses: list[Access]) -> list[frozenset[int]]:
    """For each rule, the rules whose source set holds its source set. Decided once per
    pair of distinct source sets: a dense policy has ~1,000 rules over ~250 sources,
    and the per-rule-pair subset tests were most of `check`'s time."""
    distinct = list(dict.fromkeys(a.src for a in accesses))
    rules_of: dict[AddressSet, list[int]] = {}
    for j, a in enumerate(accesses):
        rules_of.setdefault(a.src, []).append(j)
    holders = {s: frozenset(j for t in distinct if s.issubset(t) for j in rules_of[t])
               for s in distinct}
    return [holders[a.src] for a in accesses]


def _shadowed(accesses: list[Access], diags: Diagnostics) -> None:
    within = _within(accesses)
    for i, rule in enumerate(accesses):
        if not rule.entries or not rule.src or not any(dst for dst, _, _ in rule.entries):
            continue  # allows nothing: W201's business, not "already allowed"
        # `within` decided the sources: both `covers` below test the entries only
        # (a dense rule's source is hundreds of intervals, and `*` holds every one).
        for j in sorted(within[i]):  # in policy order: the first covering rule is named
            other = accesses[j]
            if i == j or not other.covers_entries(rule):
                continue
            # Two identical rules: only the later one is redundant.
            if j > i and i in within[j] and rule.covers_entries(other):
                continue
            diags.warning("W203", rule.span,
                          f"everything this rule allows is already allowed by the rule at "
                          f"{other.span.location()}")
            break


# --- W205 ------------------------------------------------------------------------


def _unused_tags(policy: Policy, inventory: Inventory, diags: Diagnostics) -> None:
    used = {t for node in inventory for t in node.tags}
    used.update(_tag_names(chain(rule_aliases(policy), routing_aliases(policy))))
    for name, owners in policy.tag_owners.items():
        if name not in used:
            diags.warning("W205", owners.span, f'tag "{name}" is defined but never used')


def _tag_names(aliases: Iterable[Alias]) -> set[str]:
    return {a.name for a in aliases if isinstance(a, TagRef)}


"""Addresses the reference evaluator cannot tell apart: a policy test asks once per class.

A dense tailnet's test `group:g0 -> tag:t1:443` stands for ~600 source and
~40 destination addresses, 24,000 pairs, each a walk over the dozens of rules
that allow it: ~15 s of a 1k dense `check`. But the evaluator
(`reference.py`) reads an address only through

* the node holding it (`node_with_address`), and of that node only what its
  identity aliases ask: the owner and the tags (`_node_matches`; the owner
  also decides `autogroup:self` and SSH's `localpart:`);
* whether the address lies in each alias that is not an identity: `*`,
  prefixes, ranges, hosts, ipsets (`source_contains`), and, as a
  destination, `autogroup:internet`.

Two addresses that agree on all of that (one class) get the same answer
against any other address, as a source and as a destination, so the
evaluator is asked about one pair of representatives per pair of classes.
An address that a single-address alias names is its own class (so a 1 MB
policy's ~1,000 host aliases are one dict lookup per address, not 1,000
tests). A grant with `via` makes every address its own class: which router
serves a destination depends on the exact addresses and the sender node
(`_via_serves`).

The evaluator stays the per-pair oracle; tests/analysis/test_address_classes.py
checks on random tailnets that addresses of one class get the same answers
and that test reports are the same with and without classes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Iterable, Sequence

from policyc.analysis.offline import ssh_role_reason
from policyc.analysis.permit_index import alias_key, single_address_hosts
from policyc.analysis.reference import (
    ReferenceEvaluator,
    RuleRef,
    SshVerdict,
    in_internet,
    ssh_verdict,
)
from policyc.compiler.nodes import Node
from policyc.diagnostics.source import NO_SPAN
from policyc.policy.model import Alias, AutoGroupRef, GroupRef, IPAddress, TagRef, UserRef

_IDENTITY = (UserRef, GroupRef, TagRef, AutoGroupRef)  # decided by the node's owner and tags
_INTERNET = "autogroup:internet"

PairKey = tuple[Hashable, Hashable, tuple[int, ...], int | None]


def _address_aliases(ev: ReferenceEvaluator) -> Iterable[Alias]:
    """Every alias the evaluator may test an address against: rules' and SSH rules'."""
    for permit in ev.permits:
        yield from permit.sources
        yield permit.destination
    for rule in ev.policy.ssh:
        yield from rule.sources
        yield from rule.destinations


class AddressClasses:
    """Memoised evaluator answers, asked once per class of addresses (or of nodes).

    `grouped=False` asks the evaluator about every pair as it comes, without
    classes or memos: the oracle the property tests compare with.
    """

    def __init__(self, ev: ReferenceEvaluator, *, grouped: bool = True) -> None:
        self.ev = ev
        self.grouped = grouped
        self._each_alone = any(p.via for p in ev.permits)
        hosts = single_address_hosts(ev.policy.hosts)
        singles: set[IPAddress] = set()
        spread: dict[Alias, None] = {}  # multi-address aliases, without spans, in order
        internet = False
        for alias in _address_aliases(ev):
            if isinstance(alias, AutoGroupRef) and alias.name == _INTERNET:
                internet = True
            elif isinstance(alias, _IDENTITY):
                continue
            key = alias_key(alias, hosts)
            if key is not None and key[0] == "ip":
                singles.add(key[1])  # type: ignore[arg-type]
            elif not isinstance(alias, AutoGroupRef):
                spread[dataclasses.replace(alias, span=NO_SPAN)] = None
        self._singles = singles
        self._spread = tuple(spread)
        self._internet = internet
        self._owners: dict[str | None, list[Node]] = {}
        for node in ev.inventory:
            self._owners.setdefault(node.owner, []).append(node)
        self._class: dict[IPAddress, Hashable] = {}
        self._node_class: dict[int, tuple[Node, Hashable]] = {}  # by id(), node kept
        self._pairs: dict[PairKey, list[RuleRef]] = {}
        self._merged: dict[tuple[Hashable, tuple[Hashable, ...], tuple[int, ...], int | None],
                           tuple[RuleRef, ...]] = {}
        self._ssh: dict[tuple[Hashable, Hashable, str], SshVerdict] = {}
        self._ssh_roles: dict[tuple[Hashable, Hashable, str], str | None] = {}

    # --- classes ------------------------------------------------------------------

    def of(self, ip: IPAddress) -> Hashable:
        """The address's class: equal for addresses the evaluator cannot tell apart."""
        found = self._class.get(ip)
        if found is None:
            found = self._class[ip] = self._classify(ip)
        return found

    def _classify(self, ip: IPAddress) -> Hashable:
        if self._each_alone or ip in self._singles:
            return ip
        node = self.ev.node_with_address(ip)
        identity = None if node is None else (node.owner, node.tags)
        facts = tuple(self.ev.source_contains(a, ip) for a in self._spread)
        return (identity, facts, self._internet and in_internet(ip))

    def node_class(self, node: Node) -> Hashable:
        """A node's class for SSH: its owner and tags, and its addresses' classes
        (memoised per node: an SSH test asks per source x destination pair)."""
        found = self._node_class.get(id(node))
        if found is None or found[0] is not node:
            key = (node.owner, node.tags, tuple(self.of(ip) for ip in node.ips))
            found = self._node_class[id(node)] = (node, key)
        return found[1]

    def nodes_owned_by(self, owner: str) -> list[Node]:
        """The nodes that count as `owner`'s, in inventory order."""
        return self._owners.get(owner, [])

    def first_of_each(self, ips: Iterable[IPAddress]) -> tuple[IPAddress, ...]:
        """The first address of each class among `ips`, in order."""
        if not self.grouped:
            return tuple(ips)
        seen: dict[Hashable, IPAddress] = {}
        for ip in ips:
            seen.setdefault(self.of(ip), ip)
        return tuple(seen.values())

    # --- memoised questions ---------------------------------------------------------

    def allowing_rules_any(self, src: IPAddress, dst: IPAddress, protocols: tuple[int, ...],
                           port: int | None) -> list[RuleRef]:
        """`ev.allowing_rules_any`, asked once per pair of classes."""
        if not self.grouped:
            return self.ev.allowing_rules_any(src, dst, protocols, port)
        key = (self.of(src), self.of(dst), protocols, port)
        found = self._pairs.get(key)
        if found is None:
            found = self._pairs[key] = self.ev.allowing_rules_any(src, dst, protocols, port)
        return found

    def merged_allowing(self, src: IPAddress, destinations: Sequence[IPAddress],
                        protocols: tuple[int, ...], port: int | None) -> tuple[RuleRef, ...]:
        """The rules allowing `src` to each of `destinations` in turn, merged without
        repeats in that order. `destinations` should be `first_of_each`'s: a later
        address of a class already met adds nothing new."""
        if not self.grouped:
            return self._merge(src, destinations, protocols, port)
        key = (self.of(src), tuple(self.of(d) for d in destinations), protocols, port)
        found = self._merged.get(key)
        if found is None:
            found = self._merged[key] = self._merge(src, destinations, protocols, port)
        return found

    def _merge(self, src: IPAddress, destinations: Sequence[IPAddress],
               protocols: tuple[int, ...], port: int | None) -> tuple[RuleRef, ...]:
        refs: dict[RuleRef, None] = {}
        for dst in destinations:
            refs.update(dict.fromkeys(self.allowing_rules_any(src, dst, protocols, port)))
        return tuple(refs)

    def ssh_role_reason(self, src: Node, dst: Node, user: str) -> str | None:
        """`offline.ssh_role_reason`, asked once per pair of node classes."""
        if not self.grouped:
            return ssh_role_reason(self.ev, src, dst, user)
        key = (self.node_class(src), self.node_class(dst), user)
        if key not in self._ssh_roles:
            self._ssh_roles[key] = ssh_role_reason(self.ev, src, dst, user)
        return self._ssh_roles[key]

    def ssh_verdict(self, src: Node, dst: Node, user: str) -> SshVerdict:
        """`reference.ssh_verdict`, asked once per pair of node classes."""
        if not self.grouped:
            return ssh_verdict(self.ev, src, dst, user)
        key = (self.node_class(src), self.node_class(dst), user)
        found = self._ssh.get(key)
        if found is None:
            found = self._ssh[key] = ssh_verdict(self.ev, src, dst, user)
        return found

"""Names for address sets: "group:dev", "tag:prod", "alice@example.com, 10.20.0.0/16".

The diff, verify and the access map speak about who and where in the
policy's own words. An address set is named by the policy names whose
addresses it holds entirely: `*`, the member/tagged autogroups, groups and
tags (largest first), then the leftover nodes by owner (a user when all of
their untagged nodes are in), then node names, then hosts and CIDR blocks
for space that belongs to no node. The name is for reading; the exact set
travels next to it in the machine formats.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

from policyc.analysis.access import AliasSets
from policyc.compiler.addrset import ALL, EMPTY, AddressSet, union_all
from policyc.compiler.internet import INTERNET, TAILSCALE_RANGES
from policyc.compiler.nodes import Node
from policyc.policy.model import GroupRef, TagRef

MAX_PARTS = 6


@dataclass(frozen=True, slots=True)
class Name:
    """A readable name for an address set and how many nodes it holds."""

    text: str
    parts: tuple[str, ...]
    nodes: tuple[str, ...]  # names of the nodes with an address in the set

    def __str__(self) -> str:
        return self.text


class Namer:
    """Names address sets with one policy's groups, tags and hosts over its inventory.

    Identities are unions of whole nodes, so "does group:dev fit in this set"
    is asked of node indexes, not of address intervals: a set is named in time
    proportional to the nodes it holds, however many groups the policy has.
    """

    def __init__(self, sets: AliasSets) -> None:
        self.sets = sets
        policy, r = sets.policy, sets.resolver
        candidates: list[tuple[str, AddressSet]] = [
            ("autogroup:member", sets.members), ("autogroup:tagged", sets.any_tagged)]
        for group in sorted(policy.groups):
            candidates.append((group, sets.source(GroupRef(group))))
        for tag in sorted(set(policy.tag_owners) | set(sets.tagged)):
            candidates.append((tag, sets.source(TagRef(tag))))
        with_nodes = [(n, a, frozenset(r.nodes_in(a))) for n, a in candidates if a]
        # Largest first, so one name covers what it can before smaller ones try.
        self._identities = sorted(with_nodes, key=lambda c: (-len(c[2]), c[0]))
        self._by_node: dict[int, list[int]] = {}
        for k, (_, _, nodes) in enumerate(self._identities):
            for i in nodes:
                self._by_node.setdefault(i, []).append(k)
        self._owned_nodes: dict[str, frozenset[int]] = {}
        for i, node in enumerate(r.nodes):
            if node.owner is not None:
                self._owned_nodes[node.owner] = self._owned_nodes.get(
                    node.owner, frozenset()) | {i}
        self._index = _NodeIndex(r.nodes)
        self._exact: dict[AddressSet, str] = {}
        for name, addrs, _ in reversed(self._identities):
            self._exact[addrs] = name  # the largest, then alphabetically first, wins
        self._exact[TAILSCALE_RANGES | sets.routes] = "*"
        self._exact[INTERNET] = "autogroup:internet"
        self._exact[ALL] = "*"
        self._hosts = sorted((h.name, AddressSet.of_network(h.network))
                             for h in policy.hosts.values())
        self._cache: dict[AddressSet, Name] = {}

    def name(self, addrs: AddressSet) -> Name:
        found = self._cache.get(addrs)
        if found is None:
            found = self._name(addrs)
            self._cache[addrs] = found
        return found

    def _name(self, addrs: AddressSet) -> Name:
        r = self.sets.resolver
        inside, entire, only_nodes = self._index.members(addrs)
        node_names = tuple(r.nodes[i].name for i in inside)
        exact = self._exact.get(addrs)
        if exact is not None:
            return Name(exact, (exact,), node_names)
        if not inside:  # address space: "office-lan except office-nas"?
            for name, whole in self._hosts:
                if addrs != whole and addrs.issubset(whole):
                    missing = self._exact_or_host(whole - addrs)
                    if missing is not None:
                        return Name(f"{name} except {missing}", (name,), node_names)
        parts, covered = self._identities_in(entire)
        parts.extend(self._nodes(inside, entire, covered, addrs))
        if only_nodes and len(entire) == len(inside):
            rest = EMPTY  # nothing but whole nodes: no subtraction needed
        else:
            rest = addrs - union_all(r.node_addrs[i] for i in inside)
        if rest:
            hosts = self._hosts_in(rest)
            parts.extend(name for name, _ in hosts)
            rest = rest - union_all(network for _, network in hosts)
        parts.extend(rest.texts())
        shown = parts if len(parts) <= MAX_PARTS else [
            *parts[:MAX_PARTS - 1], f"and {len(parts) - MAX_PARTS + 1} more"]
        return Name(", ".join(shown) or "nothing", tuple(parts), node_names)

    def _identities_in(self, entire: set[int]) -> tuple[list[str], set[int]]:
        """Groups, tags and autogroups all of whose nodes are in `entire`, largest first,
        each adding nodes the ones before it did not name."""
        hits: dict[int, int] = {}
        for i in entire:
            for k in self._by_node.get(i, ()):
                hits[k] = hits.get(k, 0) + 1
        parts: list[str] = []
        covered: set[int] = set()
        for k in sorted(k for k, n in hits.items() if n == len(self._identities[k][2])):
            name, _, nodes = self._identities[k]
            if not nodes <= covered:
                parts.append(name)
                covered |= nodes
        return parts, covered

    def _hosts_in(self, rest: AddressSet) -> list[tuple[str, AddressSet]]:
        """Hosts inside `rest`, leaving out those inside another one (the NAS in the LAN)."""
        found = [(k, h) for k, h in enumerate(self._hosts) if h[1].issubset(rest)]
        return [h for k, h in found if not any(
            j != k and h[1].issubset(o[1]) and (o[1] != h[1] or j < k) for j, o in found)]

    def _exact_or_host(self, addrs: AddressSet) -> str | None:
        found = self._exact.get(addrs)
        return found if found is not None else next(
            (name for name, net in self._hosts if net == addrs), None)

    def _nodes(self, inside: list[int], entire: set[int], covered: set[int],
               addrs: AddressSet) -> list[str]:
        """Nodes no identity named: a user when all their untagged nodes are in, else
        the node's name (and which of its addresses, when only some are in)."""
        r = self.sets.resolver
        out: list[str] = []
        seen_users: set[str] = set()
        for i in inside:
            if i in covered:
                continue
            node = r.nodes[i]
            owner = node.owner
            mine = self._owned_nodes.get(owner) if owner is not None else None
            if owner is not None and mine is not None and mine <= entire - covered:
                if owner not in seen_users:
                    seen_users.add(owner)
                    out.append(owner)
            elif i in entire:
                out.append(node.name)
            else:  # only some of the node's addresses
                out.extend(f"{node.name} ({text})"
                           for text in (addrs & r.node_addrs[i]).texts())
        return out


class _NodeIndex:
    """Node addresses sorted per family: which nodes a set touches, which it holds
    entirely, and how many node addresses it holds, in one bisection per interval."""

    def __init__(self, nodes: Sequence[Node]) -> None:
        self.sizes = [len(n.ips) for n in nodes]
        self.families: list[tuple[list[int], list[int], dict[int, int]]] = []
        for version in (4, 6):
            pairs = sorted((int(a), i) for i, n in enumerate(nodes) for a in n.ips
                           if a.version == version)
            self.families.append(([a for a, _ in pairs], [i for _, i in pairs], dict(pairs)))

    def members(self, addrs: AddressSet) -> tuple[list[int], set[int], bool]:
        """(nodes touched, nodes held entirely, whether the set is node addresses only)."""
        counts: dict[int, int] = {}
        hits = size = 0
        for intervals, (keys, owners, single) in zip((addrs.v4, addrs.v6), self.families,
                                                     strict=True):
            for first, last in intervals:
                size += last - first + 1
                if first == last:  # most intervals are one node address: no bisection
                    i = single.get(first)
                    if i is not None:
                        hits += 1
                        counts[i] = counts.get(i, 0) + 1
                    continue
                lo = bisect.bisect_left(keys, first)
                hi = bisect.bisect_right(keys, last, lo)
                hits += hi - lo
                for i in owners[lo:hi]:
                    counts[i] = counts.get(i, 0) + 1
        entire = {i for i, n in counts.items() if n == self.sizes[i]}
        return sorted(counts), entire, hits == size

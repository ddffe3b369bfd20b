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

from dataclasses import dataclass

from policyc.analysis.access import AliasSets
from policyc.compiler.addrset import ALL, AddressSet, union_all
from policyc.compiler.internet import INTERNET, TAILSCALE_RANGES
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
    """Names address sets with one policy's groups, tags and hosts over its inventory."""

    def __init__(self, sets: AliasSets) -> None:
        self.sets = sets
        policy, r = sets.policy, sets.resolver
        candidates: list[tuple[str, AddressSet]] = [
            ("autogroup:member", sets.members), ("autogroup:tagged", sets.any_tagged)]
        for group in sorted(policy.groups):
            candidates.append((group, sets.source(GroupRef(group))))
        for tag in sorted(set(policy.tag_owners) | set(sets.tagged)):
            candidates.append((tag, sets.source(TagRef(tag))))
        # Largest first, so one name covers what it can before smaller ones try.
        self._identities = sorted(((n, s) for n, s in candidates if s),
                                  key=lambda c: (-len(r.nodes_in(c[1])), c[0]))
        self._exact: dict[AddressSet, str] = {}
        for name, addrs in reversed(self._identities):
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
        node_names = tuple(r.nodes[i].name for i in r.nodes_in(addrs))
        exact = self._exact.get(addrs)
        if exact is not None:
            return Name(exact, (exact,), node_names)
        for name, whole in self._hosts:  # "office-lan except office-nas"
            if addrs != whole and addrs.issubset(whole):
                missing = self._exact_or_host(whole - addrs)
                if missing is not None:
                    return Name(f"{name} except {missing}", (name,), node_names)
        parts: list[str] = []
        covered: list[AddressSet] = []
        for name, members in self._identities:
            if members.issubset(addrs) and not members.issubset(union_all(covered)):
                parts.append(name)
                covered.append(members)
        rest = addrs - union_all(covered)
        parts.extend(self._nodes(rest))
        rest = rest - union_all(r.node_addrs[i] for i in r.nodes_in(rest))
        for host, network in self._hosts:
            if rest and network.issubset(rest):
                parts.append(host)
                rest = rest - network
        parts.extend(rest.texts())
        shown = parts if len(parts) <= MAX_PARTS else [
            *parts[:MAX_PARTS - 1], f"and {len(parts) - MAX_PARTS + 1} more"]
        return Name(", ".join(shown) or "nothing", tuple(parts), node_names)

    def _exact_or_host(self, addrs: AddressSet) -> str | None:
        found = self._exact.get(addrs)
        return found if found is not None else next(
            (name for name, net in self._hosts if net == addrs), None)

    def _nodes(self, rest: AddressSet) -> list[str]:
        """Leftover nodes: a user when all their untagged nodes are in, else node names."""
        r = self.sets.resolver
        out: list[str] = []
        seen_users: set[str] = set()
        for i in r.nodes_in(rest):
            node = r.nodes[i]
            owner = node.owner
            mine = self.sets.owned.get(owner) if owner is not None else None
            if owner is not None and mine is not None and mine.issubset(rest):
                if owner not in seen_users:
                    seen_users.add(owner)
                    out.append(owner)
            elif r.node_addrs[i].issubset(rest):
                out.append(node.name)
            else:  # only some of the node's addresses
                out.extend(f"{node.name} ({text})"
                           for text in (rest & r.node_addrs[i]).texts())
        return out

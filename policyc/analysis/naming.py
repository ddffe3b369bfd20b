"""Names for address sets: "group:dev", "tag:prod", "alice@example.com, 10.20.0.0/16".

The diff, verify and the access map speak about who and where in the
policy's own words. An address set is named by the policy names whose
addresses it holds entirely: `*`, the member/tagged autogroups, groups and
tags (largest first), then the leftover nodes by owner (a user when all of
their untagged nodes are in), then node names, then hosts and CIDR blocks
for space that belongs to no node. The name is for reading; the exact set
travels next to it in the machine formats.

A diff names thousands of sets that are unions of a few thousand atoms
(atoms.py): `name_mask` sums per-atom tables (the nodes an atom holds, how
many nodes of each identity, its non-node addresses) instead of walking
every address of every set, finds exact names by mask, and memoises the
naming of non-node space per combination of atoms. It gives the names
`name` gives for the same set (tests/analysis/test_diff.py checks that).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from policyc.analysis.access import AliasSets
from policyc.analysis.atoms import Atoms, bits
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
        # Each identity's nodes as a bitmask (bit i: node i), for name_mask's "which
        # identities lie whole in this set" in one AND per identity.
        self._identity_bits = [(k, _node_bits(nodes))
                               for k, (_, _, nodes) in enumerate(self._identities) if nodes]
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
        self._host_index: list[tuple[list[int], list[tuple[int, int]]]] = []
        for family in ("v4", "v6"):
            spans = sorted((getattr(net, family)[0], k) for k, (_, net) in enumerate(self._hosts)
                           if getattr(net, family))
            self._host_index.append(([first for (first, _), _ in spans],
                                     [(last, k) for (_, last), k in spans]))
        self._node_names = [n.name for n in r.nodes]
        self._all_node_addrs = union_all(r.node_addrs)
        self._cache: dict[AddressSet, Name] = {}
        self._tables: tuple[Atoms, _AtomTables, dict[int, str],
                            dict[int, Name]] | None = None

    def name(self, addrs: AddressSet) -> Name:
        found = self._cache.get(addrs)
        if found is None:
            inside, entire, only_nodes = self._index.members(addrs)
            r = self.sets.resolver

            def rest() -> AddressSet:
                if only_nodes and len(entire) == len(inside):
                    return EMPTY  # nothing but whole nodes: no subtraction needed
                return addrs - union_all(r.node_addrs[i] for i in inside)

            found = self._name(lambda: addrs, self._exact.get(addrs), inside, entire,
                               lambda: self._rest_parts(rest()), None)
            self._cache[addrs] = found
        return found

    def name_mask(self, mask: int, atoms: Atoms) -> Name:
        """The name of `atoms.to_set(mask)`, found from per-atom tables: the nodes
        and identities of a set are summed over its atoms (node-classes), not
        looked up address by address."""
        tables, exact, cache = self._tables_for(atoms)
        found = cache.get(mask)
        if found is None:
            entire: list[int] = []
            entire_bits = 0  # the same nodes as a bitmask (atoms hold disjoint nodes)
            partial: dict[int, int] = {}
            residuals: list[int] = []  # atoms with addresses that are no node's
            for atom in bits(mask):
                table = tables[atom]
                entire.extend(table.whole)
                entire_bits |= table.whole_bits
                for i, n in table.partial:
                    partial[i] = partial.get(i, 0) + n
                if table.residual:
                    residuals.append(atom)
            sizes = self._index.sizes
            for i, n in partial.items():  # a node split over atoms: whole in the set?
                if n == sizes[i]:
                    entire.append(i)
                    entire_bits |= 1 << i
            inside = sorted([*entire, *(i for i, n in partial.items() if n != sizes[i])])
            whole = [k for k, nodes in self._identity_bits if not nodes & ~entire_bits]
            found = self._name(
                lambda: atoms.to_set(mask), exact.get(mask), inside, set(entire),
                lambda: self._atoms_rest_parts(tuple(residuals), tables), whole)
            cache[mask] = found
        return found

    def _tables_for(self, atoms: Atoms) -> tuple[_AtomTables, dict[int, str], dict[int, Name]]:
        """Per atom its nodes (made when first asked); the exact names of the sets that
        are unions of atoms, by mask; the names found so far, by mask. Once per `atoms`."""
        if self._tables is None or self._tables[0] is not atoms:
            exact: dict[int, str] = {}
            for addrs, name in self._exact.items():
                mask = atoms.exact_mask(addrs)
                if mask is not None:
                    exact[mask] = name
            self._tables = (atoms, _AtomTables(atoms, self), exact, {})
        return self._tables[1:]

    def _atoms_rest_parts(self, residuals: tuple[int, ...], tables: _AtomTables) -> list[str]:
        """`_rest_parts` of the non-node addresses of these atoms (memoised: a few atoms,
        such as the Tailscale range minus the nodes, are in many sets)."""
        found = tables.rest_parts.get(residuals)
        if found is None:
            found = tables.rest_parts[residuals] = self._rest_parts(
                union_all(tables[atom].residual for atom in residuals))
        return found

    def _rest_parts(self, rest: AddressSet) -> list[str]:
        """Names for addresses that are no node's: hosts, then CIDR blocks and ranges."""
        if not rest:
            return []
        hosts = self._hosts_in(rest)
        rest = rest - union_all(network for _, network in hosts)
        return [*(name for name, _ in hosts), *rest.texts()]

    def _atom_nodes(self, addrs: AddressSet) -> _AtomNodes:
        """The nodes of one atom (`addrs`), and its addresses that are no node's."""
        sizes = self._index.sizes
        counts, only_nodes = self._index.counts(addrs)
        whole = tuple(sorted(i for i, n in counts.items() if n == sizes[i]))
        residual = EMPTY if only_nodes else addrs - self._all_node_addrs
        return _AtomNodes(whole, _node_bits(whole),
                          tuple((i, n) for i, n in counts.items() if n != sizes[i]), residual)

    def _name(self, addrs: Callable[[], AddressSet], exact: str | None, inside: list[int],
              entire: set[int], rest_parts: Callable[[], list[str]],
              identities: list[int] | None) -> Name:
        """`addrs`: the set (made when needed); `exact`: its exact name if it has one;
        `inside`: the nodes touched, in order; `entire`: those held whole;
        `rest_parts`: the names of its addresses that are no node's; `identities`: the
        identities all of whose nodes are in `entire`, in order (found here if None)."""
        node_names = tuple(map(self._node_names.__getitem__, inside))
        if exact is not None:
            return Name(exact, (exact,), node_names)
        if not inside:  # address space: "office-lan except office-nas"?
            whole_set = addrs()
            for name, whole in self._hosts:
                if whole_set != whole and whole_set.issubset(whole):
                    missing = self._exact_or_host(whole - whole_set)
                    if missing is not None:
                        return Name(f"{name} except {missing}", (name,), node_names)
        parts, covered = self._identities_in(entire, identities)
        parts.extend(self._nodes(inside, entire, covered, addrs))
        parts.extend(rest_parts())
        shown = parts if len(parts) <= MAX_PARTS else [
            *parts[:MAX_PARTS - 1], f"and {len(parts) - MAX_PARTS + 1} more"]
        return Name(", ".join(shown) or "nothing", tuple(parts), node_names)

    def _identities_in(self, entire: set[int], whole: list[int] | None,
                       ) -> tuple[list[str], set[int]]:
        """Groups, tags and autogroups all of whose nodes are in `entire` (`whole`, if
        known), largest first, each adding nodes the ones before it did not name."""
        if whole is None:
            hits: dict[int, int] = {}
            for i in entire:
                for k in self._by_node.get(i, ()):
                    hits[k] = hits.get(k, 0) + 1
            whole = sorted(k for k, n in hits.items() if n == len(self._identities[k][2]))
        parts: list[str] = []
        covered: set[int] = set()
        for k in whole:
            name, _, nodes = self._identities[k]
            if not nodes <= covered:
                parts.append(name)
                covered |= nodes
        return parts, covered

    def _hosts_in(self, rest: AddressSet) -> list[tuple[str, AddressSet]]:
        """Hosts inside `rest`, leaving out those inside another one (the NAS in the LAN)
        and all but the first (by name) of hosts with the same network. Hosts are one
        interval each, found by bisection per interval of `rest`."""
        found: dict[tuple[int, int, int], int] = {}  # (family, first, last) -> first host
        for family, intervals in enumerate((rest.v4, rest.v6)):
            starts, spans = self._host_index[family]
            for first, last in intervals:
                for k in range(bisect.bisect_left(starts, first),
                               bisect.bisect_right(starts, last)):
                    host_last, host = spans[k]
                    if host_last <= last:
                        key = (family, starts[k], host_last)
                        found[key] = min(found.get(key, host), host)
        kept: list[int] = []
        reach = (-1, -1)  # (family, furthest last) of the hosts before, in address order
        for (family, _, last), host in sorted(found.items(), key=lambda f: (f[0][:2], -f[0][2])):
            if reach[0] == family and reach[1] >= last:
                continue  # inside an earlier (so larger or equal-start) host
            kept.append(host)
            reach = (family, last) if reach[0] != family or last > reach[1] else reach
        return [self._hosts[k] for k in sorted(kept)]

    def _exact_or_host(self, addrs: AddressSet) -> str | None:
        found = self._exact.get(addrs)
        return found if found is not None else next(
            (name for name, net in self._hosts if net == addrs), None)

    def _nodes(self, inside: list[int], entire: set[int], covered: set[int],
               addrs: Callable[[], AddressSet]) -> list[str]:
        """Nodes no identity named: a user when all their untagged nodes are in, else
        the node's name (and which of its addresses, when only some are in)."""
        r = self.sets.resolver
        out: list[str] = []
        seen_users: set[str] = set()
        unnamed = entire - covered
        for i in inside:
            if i in covered:
                continue
            node = r.nodes[i]
            owner = node.owner
            mine = self._owned_nodes.get(owner) if owner is not None else None
            if owner is not None and mine is not None and mine <= unnamed:
                if owner not in seen_users:
                    seen_users.add(owner)
                    out.append(owner)
            elif i in entire:
                out.append(node.name)
            else:  # only some of the node's addresses
                out.extend(f"{node.name} ({text})"
                           for text in (addrs() & r.node_addrs[i]).texts())
        return out


@dataclass(frozen=True, slots=True)
class _AtomNodes:
    """One atom's nodes: those it holds whole (also as a bitmask), (node, addresses
    held) for the others, and the addresses that are no node's."""

    whole: tuple[int, ...]
    whole_bits: int  # `whole` as a bitmask
    partial: tuple[tuple[int, int], ...]
    residual: AddressSet  # the atom's addresses that are no node's


class _AtomTables:
    """`_AtomNodes` per atom number, made on first use (a small diff names few atoms)."""

    def __init__(self, atoms: Atoms, namer: Namer) -> None:
        self._atoms, self._namer = atoms, namer
        self._made: dict[int, _AtomNodes] = {}
        self.rest_parts: dict[tuple[int, ...], list[str]] = {}

    def __getitem__(self, atom: int) -> _AtomNodes:
        found = self._made.get(atom)
        if found is None:
            found = self._made[atom] = self._namer._atom_nodes(self._atoms.to_set(1 << atom))
        return found


def _node_bits(nodes: Iterable[int]) -> int:
    """Node numbers as a bitmask: bit i set for node i."""
    return sum(1 << i for i in set(nodes))


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
        counts, only_nodes = self.counts(addrs)
        entire = {i for i, n in counts.items() if n == self.sizes[i]}
        return sorted(counts), entire, only_nodes

    def counts(self, addrs: AddressSet) -> tuple[dict[int, int], bool]:
        """(node -> how many of its addresses the set holds, whether the set is node
        addresses only)."""
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
        return counts, hits == size

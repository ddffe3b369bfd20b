"""Resolution: aliases -> address sets against one inventory.

Indexes (user -> nodes, tag -> nodes, sorted node addresses) are built once
per (policy, inventory) so each lookup costs O(result). Results are cached
per alias, so a group used by a thousand rules is resolved once.
"""

from __future__ import annotations

import bisect
import copy
from collections import defaultdict
from collections.abc import Iterable, Sequence
from itertools import chain, compress, repeat
from operator import attrgetter
from typing import Protocol

from policyc.compiler.addrset import (
    ALL,
    EMPTY,
    AddressSet,
    interval_text,
    of_points,
    union_all,
)
from policyc.compiler.internet import INTERNET, TAILSCALE_RANGES
from policyc.compiler.nodes import ROLE_AUTOGROUPS, Inventory, Node
from policyc.netmap import address_text
from policyc.policy.model import (
    Alias,
    AutoGroupRef,
    GroupRef,
    HostRef,
    IPSetRef,
    Policy,
    PrefixAlias,
    RangeAlias,
    ServiceRef,
    TagRef,
    UserRef,
    Wildcard,
)

SELF = "autogroup:self"
INTERNET_GROUP = "autogroup:internet"
DANGER_ALL = "autogroup:danger-all"
_IPS = attrgetter("ips")
MEMBER = "autogroup:member"
TAGGED = "autogroup:tagged"


class KeptSet(Protocol):
    """An alias's set kept by its owner (the index's atoms)."""

    @property
    def addrs(self) -> AddressSet: ...


class Resolver:
    """Resolves aliases of one policy against one inventory."""

    def __init__(self, policy: Policy, inventory: Inventory) -> None:
        self.policy = policy
        self.inventory = inventory
        self.nodes: tuple[Node, ...] = inventory.nodes
        self.node_addrs: tuple[AddressSet, ...] = tuple(
            AddressSet.of_addresses(n.ips) for n in self.nodes
        )
        self._points4 = [tuple(int(a) for a in n.ips if a.version == 4) for n in self.nodes]
        self._points6 = [tuple(int(a) for a in n.ips if a.version == 6) for n in self.nodes]
        self.node_routes: tuple[AddressSet, ...] = tuple(
            AddressSet.of_networks(n.routes) for n in self.nodes
        )
        self.by_user: dict[str, list[int]] = defaultdict(list)
        self.by_tag: dict[str, list[int]] = defaultdict(list)
        self.members: list[int] = []
        self.tagged: list[int] = []
        for index, node in enumerate(self.nodes):
            for tag in node.tags:
                self.by_tag[tag].append(index)
            if node.tags:
                self.tagged.append(index)
            elif node.user is not None:
                self.by_user[node.user].append(index)
                self.members.append(index)
        self.routers = tuple(i for i, n in enumerate(self.nodes) if n.routes)
        self.exit_nodes = tuple(i for i, n in enumerate(self.nodes) if n.exit_node)
        # Every approved subnet route, in inventory order, each once: `*` as a
        # source lists them one by one (10.33.0.0/16 is kept next to 10.0.0.0/8).
        seen: dict[str, AddressSet] = {}
        for node in self.nodes:
            for route in node.routes:
                seen.setdefault(str(route), AddressSet.of_network(route))
        self.route_texts: tuple[str, ...] = tuple(seen)
        self.all_routes = union_all(seen.values())
        self._address_index = _AddressIndex(self.nodes)
        self._cache: dict[tuple[str, str], AddressSet] = {}
        # Sets kept up to date elsewhere (the index patches its aliases' sets in
        # place), read from there when asked and not in the cache.
        self.kept: dict[tuple[str, str], KeptSet] = {}
        self._texts: dict[AddressSet, tuple[str, ...]] = {}
        self._nodes_in: dict[AddressSet, tuple[int, ...]] = {}
        self._ip_parts: list[tuple[tuple[str, AddressSet], ...] | None] = [None] * len(self.nodes)
        self._ip_texts: list[tuple[str, ...] | None] = [None] * len(self.nodes)
        # Sets that are exactly the addresses of these nodes (identity aliases,
        # when no two nodes share an address).
        self._made_of: dict[AddressSet, list[int]] = {}
        self._ordered_texts: tuple[list[str], list[tuple[int, ...]]] | None = None

    def with_policy(self, policy: Policy) -> Resolver:
        """The same inventory's indexes for another policy (its own alias cache):
        comparing two policies over one inventory builds the indexes once."""
        twin = copy.copy(self)
        twin.policy = policy
        twin._cache = {}
        twin.kept = {}
        return twin

    # --- aliases -----------------------------------------------------------------

    def alias(self, alias: Alias) -> AddressSet:
        """The addresses an alias stands for (`*` as a source, without routes)."""
        key = (type(alias).__name__, str(alias))
        cached = self._cache.get(key)
        if cached is None:
            kept = self.kept.get(key)
            cached = kept.addrs if kept is not None else self._resolve(alias, frozenset())
            self._cache[key] = cached
        return cached

    def alias_nodes(self, alias: Alias) -> list[int]:
        """Indexes of nodes an identity alias names (users, groups, tags, autogroups)."""
        match alias:
            case UserRef(login=login):
                return self.user_nodes(login)
            case GroupRef(name=name):
                group = self.policy.groups.get(name)
                # C-level passes: dense tailnets have groups of thousands of logins.
                members = list(map(str.removeprefix, group.logins, repeat("user:"))
                               ) if group else []
                found = list(filter(None, map(self.by_user.get, members)))
                if "\0*@" in "\0" + "\0".join(members):  # user:*@domain: every user of it
                    found += [self.user_nodes(x) for x in members if x.startswith("*@")]
                return sorted(set(chain.from_iterable(found)))
            case TagRef(name=name):
                return list(self.by_tag.get(name, ()))
            case AutoGroupRef(name=name) if name == MEMBER:
                return list(self.members)
            case AutoGroupRef(name=name) if name == TAGGED:
                return list(self.tagged)
            case AutoGroupRef(name=name) if name in ROLE_AUTOGROUPS:
                logins = self.inventory.logins_with_role(name)
                return sorted(i for login in logins for i in self.by_user.get(login, ()))
            case Wildcard():
                return list(range(len(self.nodes)))
        return self.nodes_in(self.alias(alias))

    def user_nodes(self, login: str) -> list[int]:
        """Untagged nodes of a login; `user:*@domain` means every user of the domain."""
        login = login.removeprefix("user:")
        if not login.startswith("*@"):
            return list(self.by_user.get(login, ()))
        domain = login[1:]
        return sorted(i for user, nodes in self.by_user.items() if user.endswith(domain)
                      for i in nodes)

    def _resolve(self, alias: Alias, visiting: frozenset[str]) -> AddressSet:
        match alias:
            case Wildcard():
                return TAILSCALE_RANGES
            case PrefixAlias(network=network):
                return AddressSet.of_network(network)
            case RangeAlias(first=first, last=last):
                return AddressSet.of_range(first, last)
            case HostRef(name=name):
                host = self.policy.hosts.get(name)
                return AddressSet.of_network(host.network) if host else EMPTY
            case IPSetRef(name=name):
                return self._ipset(name, visiting)
            case ServiceRef():
                return EMPTY  # service VIPs are not in the inventory (W207)
            case AutoGroupRef(name=name) if name == INTERNET_GROUP:
                return INTERNET
            case AutoGroupRef(name=name) if name == DANGER_ALL:
                return ALL
            case AutoGroupRef(name=name) if name not in (MEMBER, TAGGED, *ROLE_AUTOGROUPS):
                # autogroup:self is per destination (the compiler's business).
                return EMPTY
        nodes = self.alias_nodes(alias)
        addrs = self.addresses_of(nodes)
        if self._address_index.unique:
            # No address is shared between nodes: the nodes in these addresses are
            # exactly the named ones that have any, so nodes_in need not search.
            with_ips = compress(nodes, map(_IPS, map(self.nodes.__getitem__, nodes)))
            self._nodes_in.setdefault(addrs, tuple(sorted(with_ips)))
            self._made_of.setdefault(addrs, nodes)
        return addrs

    def _ipset(self, name: str, visiting: frozenset[str]) -> AddressSet:
        ipset = self.policy.ipsets.get(name)
        if ipset is None or name in visiting:
            return EMPTY
        inner = visiting | {name}
        if not any(add for add, _ in ipset.operations()[len(ipset.entries):]):
            # Every add before every remove (the usual file): one union each.
            added = union_all(self._resolve(entry, inner) for entry in ipset.entries)
            return added - union_all(self._resolve(entry, inner) for entry in ipset.removed)
        result = EMPTY
        for add, entry in ipset.operations():  # in order: a later add restores
            addresses = self._resolve(entry, inner)
            result = result | addresses if add else result - addresses
        return result

    # --- nodes <-> addresses -------------------------------------------------------

    def addresses_of(self, indexes: Iterable[int]) -> AddressSet:
        """The mesh addresses of these nodes (each node's are single addresses:
        one sort of integers instead of a merge of many interval sets)."""
        chosen = indexes if isinstance(indexes, (list, tuple)) else list(indexes)
        if len(chosen) == 1:
            return self.node_addrs[chosen[0]]  # the node's own object: caches key by it
        v4, v6 = self._points4, self._points6
        return of_points(chain.from_iterable(map(v4.__getitem__, chosen)),
                         chain.from_iterable(map(v6.__getitem__, chosen)))

    def ip_texts(self, i: int) -> tuple[str, ...]:
        """Node `i`'s addresses as text, in inventory order (made once per address)."""
        texts = self._ip_texts[i]
        if texts is None:
            index = self._address_index
            texts = self._ip_texts[i] = tuple(
                (index.v6_text if ip.version == 6 else index.v4_text)[int(ip)]
                for ip in self.nodes[i].ips)
        return texts

    def _text_order(self) -> tuple[list[str], list[tuple[int, ...]]]:
        """Every node address text in string order, and each node's texts as
        positions in it: a set of node addresses is then written out by sorting
        integers, not strings."""
        if self._ordered_texts is None:
            ordered = sorted({t for i in range(len(self.nodes)) for t in self.ip_texts(i)})
            position = {t: k for k, t in enumerate(ordered)}
            ranks = [tuple(position[t] for t in self.ip_texts(i)) for i in range(len(self.nodes))]
            self._ordered_texts = (ordered, ranks)
        return self._ordered_texts

    def ip_parts(self, i: int) -> tuple[tuple[str, AddressSet], ...]:
        """Node `i`'s addresses as (text, one-address set), in inventory order."""
        parts = self._ip_parts[i]
        if parts is None:
            parts = self._ip_parts[i] = tuple(
                (text, AddressSet.of_address(ip))
                for text, ip in zip(self.ip_texts(i), self.nodes[i].ips, strict=True))
        return parts

    def texts(self, addrs: AddressSet) -> list[str]:
        """SrcIPs text: node addresses one by one, other space as CIDR or range.

        Cached per set: a group used as the source of a thousand rules, or one
        user's devices in every autogroup:self rule, is written out once.
        """
        cached = self._texts.get(addrs)
        if cached is None:
            nodes = self._made_of.get(addrs)
            if nodes is not None:  # exactly these nodes' addresses: their texts, sorted
                ordered, ranks = self._text_order()
                positions = set(chain.from_iterable(map(ranks.__getitem__, nodes)))
                cached = tuple(map(ordered.__getitem__, sorted(positions)))
            else:
                cached = tuple(self._address_index.texts(addrs))
            self._texts[addrs] = cached
        return list(cached)

    def nodes_in(self, addrs: AddressSet) -> list[int]:
        """Nodes with at least one mesh address in `addrs`, in inventory order."""
        cached = self._nodes_in.get(addrs)
        if cached is None:
            cached = tuple(self._address_index.nodes_in(addrs))
            self._nodes_in[addrs] = cached
        return list(cached)

    def routers_overlapping(self, addrs: AddressSet) -> list[int]:
        """Nodes with an approved subnet route that overlaps `addrs`."""
        if not addrs.overlaps(self.all_routes):
            return []
        return [i for i in self.routers if self.node_routes[i].overlaps(addrs)]


class _AddressIndex:
    """Sorted node addresses per family, to find nodes in a set by bisection, and
    each node address's text, made once."""

    def __init__(self, nodes: Sequence[Node]) -> None:
        v4 = sorted((int(a), i) for i, n in enumerate(nodes) for a in n.ips if a.version == 4)
        v6 = sorted((int(a), i) for i, n in enumerate(nodes) for a in n.ips if a.version == 6)
        self.v4_keys = [a for a, _ in v4]
        self.v4_nodes = [i for _, i in v4]
        self.v6_keys = [a for a, _ in v6]
        self.v6_nodes = [i for _, i in v6]
        self.v4_exact: dict[int, list[int]] = defaultdict(list)
        self.v6_exact: dict[int, list[int]] = defaultdict(list)
        for exact, pairs in ((self.v4_exact, v4), (self.v6_exact, v6)):
            for address, i in pairs:
                exact[address].append(i)
        # Distinct node addresses, sorted, and their texts.
        self.v4_unique = sorted(self.v4_exact)
        self.v6_unique = sorted(self.v6_exact)
        self.unique = (len(self.v4_unique) == len(self.v4_keys)
                       and len(self.v6_unique) == len(self.v6_keys))
        self.v4_text = dict(zip(self.v4_unique, map(address_text, self.v4_unique,
                                                    repeat(False)), strict=True))
        self.v6_text = dict(zip(self.v6_unique, map(address_text, self.v6_unique,
                                                    repeat(True)), strict=True))

    def texts(self, addrs: AddressSet) -> list[str]:
        out: list[str] = []
        families = ((False, addrs.v4, self.v4_unique, self.v4_text),
                    (True, addrs.v6, self.v6_unique, self.v6_text))
        for v6, intervals, keys, text in families:
            for first, last in intervals:
                if first == last:  # one address reads the same, node or not
                    known = text.get(first)
                    out.append(known if known is not None else interval_text(first, first, v6))
                    continue
                lo = bisect.bisect_left(keys, first)
                hi = bisect.bisect_right(keys, last)
                if hi - lo == last - first + 1:  # every address is a node's: one by one
                    out += map(text.__getitem__, keys[lo:hi])
                else:
                    out.append(interval_text(first, last, v6))
        out.sort()
        return out

    def nodes_in(self, addrs: AddressSet) -> list[int]:
        found: set[int] = set()
        for intervals, keys, nodes, exact in (
            (addrs.v4, self.v4_keys, self.v4_nodes, self.v4_exact),
            (addrs.v6, self.v6_keys, self.v6_nodes, self.v6_exact),
        ):
            for first, last in intervals:
                if first == last:  # scattered node addresses: a dict, not two bisects
                    if first in exact:
                        found.update(exact[first])
                    continue
                lo = bisect.bisect_left(keys, first)
                hi = bisect.bisect_right(keys, last)
                found.update(nodes[lo:hi])
        return sorted(found)

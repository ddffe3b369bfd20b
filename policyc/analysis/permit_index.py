"""Which rules could concern an address: an index in front of the reference evaluator.

The reference evaluator (`reference.py`) answers every question by walking
every rule, which is what makes it an obviously-correct oracle, and also
what made a policy's own `tests` cost O(tests x rules): ~100 s for a 1 MB
policy. This index only *narrows* the walk: given an address, it returns
the positions of the rules (or nodes) that could possibly match it, in
policy order, and the evaluator then applies its unchanged per-rule test to
those. Its one promise is to be a superset: it never leaves out a rule the
plain walk would have matched (tests/analysis/test_permit_index.py checks
the indexed answers against the plain walk).

How: an alias that selects nodes by identity (a user, group, tag, or one of
the node-selecting autogroups) or names a single address is filed under a
key; a node's address has the keys of the identities that node carries
(its owner, the owner's groups, its tags, member/tagged/role autogroups)
and the address itself. Every other alias (`*`, prefixes, ranges, ipsets,
`autogroup:self`, `autogroup:internet` ...) is "unkeyed": the rules holding
one are candidates for every address.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

from policyc.compiler.nodes import (
    ROLE_AUTOGROUPS,
    Inventory,
    Node,
    is_login_pattern,
    login_selects,
)
from policyc.policy.model import (
    Alias,
    AutoGroupRef,
    Group,
    GroupRef,
    HostAlias,
    HostRef,
    IPAddress,
    Policy,
    PrefixAlias,
    RangeAlias,
    TagRef,
    UserRef,
)

# ("user", login), ("group", name), ("tag", name), ("autogroup", name) or ("ip", address).
Key = tuple[str, object]

NODE_AUTOGROUPS = frozenset({"autogroup:member", "autogroup:tagged", *ROLE_AUTOGROUPS})


def alias_key(alias: Alias, single_hosts: Mapping[str, IPAddress]) -> Key | None:
    """The one key an alias is filed under, or None when it has none (unkeyed).

    `single_hosts`: the hosts that are one address (`single_address_hosts`).
    """
    if isinstance(alias, UserRef):  # `user:*@domain` selects many owners: unkeyed
        return None if is_login_pattern(alias.login) else ("user", alias.login)
    if isinstance(alias, GroupRef):
        return ("group", alias.name)
    if isinstance(alias, TagRef):
        return ("tag", alias.name)
    if isinstance(alias, AutoGroupRef):
        return ("autogroup", alias.name) if alias.name in NODE_AUTOGROUPS else None
    if isinstance(alias, HostRef):
        address = single_hosts.get(alias.name)
        return None if address is None else ("ip", address)
    if isinstance(alias, PrefixAlias) and alias.network.num_addresses == 1:
        return ("ip", alias.network.network_address)
    if isinstance(alias, RangeAlias) and alias.first == alias.last:
        return ("ip", alias.first)
    return None


def single_address_hosts(hosts: Mapping[str, HostAlias]) -> dict[str, IPAddress]:
    """host name -> its address, for the hosts that are a single address."""
    return {name: host.network.network_address for name, host in hosts.items()
            if host.network.num_addresses == 1}


def groups_by_login(groups: Mapping[str, Group]) -> dict[str, list[str]]:
    """login -> the names of the groups listing it."""
    found: dict[str, list[str]] = {}
    for name, group in groups.items():
        for login in group.logins:
            found.setdefault(login, []).append(name)
    return found


def node_keys(node: Node, groups_of: Mapping[str, Sequence[str]],
              patterns: Sequence[tuple[str, Sequence[str]]] = ()) -> list[Key]:
    """Every key an identity alias matching `node` could be filed under. `patterns`:
    the `user:*@domain`-style members of `groups_of`, with their groups."""
    keys: list[Key] = [("tag", tag) for tag in node.tags]
    keys.append(("autogroup", "autogroup:tagged" if node.is_tagged else "autogroup:member"))
    owner = node.owner
    if owner is not None:
        keys.append(("user", owner))
        keys.extend(("group", name) for name in groups_of.get(owner, ()))
        for member, names in patterns:
            if login_selects(member, owner):
                keys.extend(("group", name) for name in names)
        keys.extend(("autogroup", name) for name in ROLE_AUTOGROUPS)
    return keys


class KeyIndex:
    """Positions of items (rules, nodes) by the keys of their aliases.

    An item with several aliases is filed under each alias's key; one with
    an unkeyed alias is a candidate for every address.
    """

    def __init__(self, items: Iterable[Iterable[Key | None]]) -> None:
        self._by_key: dict[Key, list[int]] = {}
        self._always: list[int] = []
        for position, keys in enumerate(items):
            filed: set[Key] = set()
            for key in keys:
                if key is None:
                    self._always.append(position)
                    break
                filed.add(key)
            else:
                for key in filed:
                    self._by_key.setdefault(key, []).append(position)

    def candidates(self, keys: Iterable[Key]) -> list[int]:
        """Sorted positions of the items filed under any of `keys`, or unkeyed."""
        found = set(self._always)
        for key in keys:
            found.update(self._by_key.get(key, ()))
        return sorted(found)


def address_keys(ip: IPAddress, node: Node | None, groups_of: Mapping[str, Sequence[str]],
                 patterns: Sequence[tuple[str, Sequence[str]]] = ()) -> list[Key]:
    """The keys under which an alias containing `ip` may be filed."""
    keys: list[Key] = [("ip", ip)]
    if node is not None:
        keys.extend(node_keys(node, groups_of, patterns))
    return keys


class FlatPermit(Protocol):
    """What the index reads of the reference evaluator's flattened rules."""

    @property
    def sources(self) -> tuple[Alias, ...]: ...

    @property
    def destination(self) -> Alias: ...


ROLE_KEYS: tuple[Key, ...] = tuple(("autogroup", name) for name in ROLE_AUTOGROUPS)


class PermitNarrowing:
    """The evaluator's rules and nodes, indexed by source keys and destination key."""

    def __init__(self, policy: Policy, inventory: Inventory,
                 permits: Sequence[FlatPermit]) -> None:
        hosts = single_address_hosts(policy.hosts)
        self._groups_of = groups_by_login(policy.groups)
        self._patterns = [(m, names) for m, names in self._groups_of.items()
                          if is_login_pattern(m)]
        self._nodes = inventory.nodes
        self._by_source = KeyIndex([alias_key(s, hosts) for s in p.sources] for p in permits)
        self._destination_keys = [alias_key(p.destination, hosts) for p in permits]
        self._by_destination = KeyIndex([key] for key in self._destination_keys)
        self._by_node = KeyIndex(node_keys(n, self._groups_of, self._patterns)
                                 for n in inventory.nodes)
        self._hosts = hosts
        self._keys_cache: dict[IPAddress, frozenset[Key]] = {}
        self._from_cache: dict[IPAddress, list[int]] = {}

    def _keys(self, ip: IPAddress, node: Node | None) -> frozenset[Key]:
        """The keys of `ip` (held by `node`), memoised: tests ask per address again and again."""
        keys = self._keys_cache.get(ip)
        if keys is None:
            keys = frozenset(address_keys(ip, node, self._groups_of, self._patterns))
            self._keys_cache[ip] = keys
        return keys

    def nodes_for(self, alias: Alias) -> list[Node]:
        """The nodes an identity alias may match (no node for an address alias)."""
        key = alias_key(alias, self._hosts)
        if key is None:
            return list(self._nodes)
        return [self._nodes[i] for i in self._by_node.candidates([key])]

    def from_address(self, ip: IPAddress, node: Node | None) -> list[int]:
        """Positions of the permits whose `src` may include `ip` (held by `node`)."""
        found = self._from_cache.get(ip)
        if found is None:
            found = self._from_cache[ip] = self._by_source.candidates(self._keys(ip, node))
        return found

    def towards(self, positions: Iterable[int], ip: IPAddress,
                node: Node | None) -> list[int]:
        """Those of `positions` whose destination may include `ip` (held by `node`)."""
        keys = self._keys(ip, node)
        dst = self._destination_keys
        return [i for i in positions if dst[i] is None or dst[i] in keys]

    def candidates(self, sources: Iterable[tuple[IPAddress, Node | None]],
                   destinations: Iterable[tuple[IPAddress, Node | None]],
                   role_sources: bool) -> list[int]:
        """Sorted positions: sources from `sources`, destinations among
        `destinations`, or (`role_sources`) sources naming a role autogroup."""
        found: set[int] = set()
        for ip, node in sources:
            found.update(self.from_address(ip, node))
        for ip, node in destinations:
            found.update(self._by_destination.candidates(self._keys(ip, node)))
        if role_sources:
            found.update(self._by_source.candidates(ROLE_KEYS))
        return sorted(found)

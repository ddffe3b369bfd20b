"""Which of the live stage's alias atoms name a node, found by its tags and owner.

A node event splices the event node's addresses into the identity aliases that
name it before or after. Asking each of a dense tailnet's ~220 atoms
(`livestage.identity_match`, twice per event) cost more than the splices of a
leave; here the atoms are sorted once by what decides them (a tag, the owner,
nothing) and a node's are looked up: the groups naming an owner by the bit of
one of the owner's other devices in each group's atom (no login set made: those
cost the first event ~45 ms at 10k dense), or, for an owner with no such device,
by one C-level pass of membership tests over the groups' login sets; the rest
with `identity_match` itself.

`AtomMatcher.named(node)` equals `{key: identity_match(atom.alias, node, r)}`
over the atoms whose alias is an identity alias; `others` are the atoms that
are not (their sets do not depend on who a node is: ipsets, hosts, prefixes,
`*`), which the patch looks at every event.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import compress, repeat

from policyc.compiler.livestage import GHOST, AliasKey, Logins, _group_logins, identity_match
from policyc.compiler.livetable import Atom
from policyc.compiler.nodes import Node
from policyc.compiler.resolve import TAGGED, Resolver
from policyc.policy.model import Alias, AutoGroupRef, GroupRef, TagRef

OWNERS_KEPT = 4096  # owners whose atoms are remembered (cleared beyond: a bound, not a policy)


class AtomMatcher:
    """The identity atoms of one set of atoms, sorted by what decides whether they
    name a node; made again when atoms are added (`size`)."""

    __slots__ = ("_by_owner", "_by_tag", "_groups", "_logins", "_owned", "_r", "_tagged",
                 "others", "size")

    def __init__(self, atoms: Mapping[AliasKey, Atom], r: Resolver) -> None:
        self.size = len(atoms)
        self._r = r
        self._by_tag: dict[str, list[AliasKey]] = {}
        self._tagged: list[AliasKey] = []
        self._groups: list[tuple[AliasKey, Atom, GroupRef]] = []
        # The groups' login sets, made only when an owner has no device to go by
        # (`_by_logins`): exact groups' keys and sets (tested in C), then the others.
        self._logins: tuple[list[AliasKey], list[Logins], list[tuple[AliasKey, GroupRef]]] \
            | None = None
        self._owned: list[tuple[AliasKey, Alias]] = []  # other owner-decided aliases
        self._by_owner: dict[str, frozenset[AliasKey]] = {}
        others: list[AliasKey] = []
        for key, atom in atoms.items():
            alias = atom.alias
            if alias is None or identity_match(alias, GHOST, r) is None:
                others.append(key)
            elif isinstance(alias, TagRef):
                self._by_tag.setdefault(alias.name, []).append(key)
            elif isinstance(alias, AutoGroupRef) and alias.name == TAGGED:
                self._tagged.append(key)
            elif isinstance(alias, GroupRef):
                self._groups.append((key, atom, alias))
            else:  # users, autogroup:member, role autogroups
                self._owned.append((key, alias))
        self.others = frozenset(others)

    def named(self, node: Node, slot: int = -1) -> frozenset[AliasKey]:
        """The identity atoms whose alias names `node` (`slot`: the event node's,
        whose bits in the atoms are not yet patched)."""
        if node.tags:  # a tagged node has no owner: only tags and autogroup:tagged
            found = [key for tag in node.tags for key in self._by_tag.get(tag, ())]
            return frozenset(found + self._tagged)
        if node.user is None:
            return frozenset()
        return self._owner(node.user, slot)

    def _owner(self, owner: str, slot: int) -> frozenset[AliasKey]:
        found = self._by_owner.get(owner)
        if found is None:
            probe = Node("", owner, (), ())
            device = self._device(owner, slot)
            groups = self._by_logins(owner) if device is None else self._by_device(device)
            found = frozenset((
                *groups,
                *(key for key, alias in self._owned if identity_match(alias, probe, self._r))))
            if len(self._by_owner) >= OWNERS_KEPT:
                self._by_owner.clear()
            self._by_owner[owner] = found
        return found

    def _device(self, owner: str, slot: int) -> int | None:
        """One of the owner's devices whose bit in a group's atom says whether the group
        names the owner: untagged (it is in `by_user`), not `slot`, with addresses and
        no routes (an atom's bits also hold the routers overlapping its set), and no
        address shared with another node (a group's set is its members' addresses)."""
        r = self._r
        if not r._address_index.unique:
            return None
        for i in r.by_user.get(owner, ()):
            node = r.nodes[i]
            if i != slot and node.ips and not node.routes and not node.exit_node:
                return i
        return None

    def _by_device(self, i: int) -> list[AliasKey]:
        """The groups whose atom holds device `i` (the atoms are current but for the
        event node): no login set is made (200 of ~2,500 logins at 10k dense cost the
        first event ~45 ms)."""
        bit = 1 << i
        if 2 * i > len(self._r.nodes):  # see `peers.HIGH`
            return [key for key, atom, _ in self._groups if atom.bits >> i & 1]
        return [key for key, atom, _ in self._groups if atom.bits & bit]

    def _by_logins(self, owner: str) -> list[AliasKey]:
        """The groups listing `owner`, from their login sets (one C-level pass of
        membership tests over the exact groups'; `*@domain` ones one by one)."""
        if self._logins is None:
            policy = self._r.policy
            exact_keys: list[AliasKey] = []
            exact: list[Logins] = []
            domains: list[tuple[AliasKey, GroupRef]] = []
            for key, _, alias in self._groups:
                logins, suffixes = _group_logins(policy, alias.name)
                if suffixes:
                    domains.append((key, alias))
                else:
                    exact_keys.append(key)
                    exact.append(logins)
            self._logins = (exact_keys, exact, domains)
        exact_keys, exact, domains = self._logins
        probe = Node("", owner, (), ())
        found = list(compress(exact_keys, map(dict.__contains__, exact, repeat(owner))))
        found += [key for key, alias in domains if identity_match(alias, probe, self._r)]
        return found

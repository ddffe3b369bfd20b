"""Which of the live stage's alias atoms name a node, found by its tags and owner.

A node event splices the event node's addresses into the identity aliases that
name it before or after. Asking each of a dense tailnet's ~220 atoms
(`livestage.identity_match`, twice per event) cost more than the splices of a
leave; here the atoms are sorted once by what decides them (a tag, the owner,
nothing) and a node's are looked up: groups by one C-level pass of membership
tests over their login sets, the rest with `identity_match` itself.

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

    __slots__ = ("_by_owner", "_by_tag", "_group_keys", "_group_logins", "_owned", "_r",
                 "_tagged", "others", "size")

    def __init__(self, atoms: Mapping[AliasKey, Atom], r: Resolver) -> None:
        self.size = len(atoms)
        self._r = r
        self._by_tag: dict[str, list[AliasKey]] = {}
        self._tagged: list[AliasKey] = []
        self._group_keys: list[AliasKey] = []  # groups of exact logins, membership tested in C
        self._group_logins: list[Logins] = []
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
            elif isinstance(alias, GroupRef) and not _group_logins(r.policy, alias.name)[1]:
                self._group_keys.append(key)
                self._group_logins.append(_group_logins(r.policy, alias.name)[0])
            else:  # users, autogroup:member, role autogroups, groups naming `*@domain`
                self._owned.append((key, alias))
        self.others = frozenset(others)

    def named(self, node: Node) -> frozenset[AliasKey]:
        """The identity atoms whose alias names `node`."""
        if node.tags:  # a tagged node has no owner: only tags and autogroup:tagged
            found = [key for tag in node.tags for key in self._by_tag.get(tag, ())]
            return frozenset(found + self._tagged)
        if node.user is None:
            return frozenset()
        return self._owner(node.user)

    def _owner(self, owner: str) -> frozenset[AliasKey]:
        found = self._by_owner.get(owner)
        if found is None:
            probe = Node("", owner, (), ())
            found = frozenset((
                *compress(self._group_keys,
                          map(dict.__contains__, self._group_logins, repeat(owner))),
                *(key for key, alias in self._owned if identity_match(alias, probe, self._r))))
            if len(self._by_owner) >= OWNERS_KEPT:
                self._by_owner.clear()
            self._by_owner[owner] = found
        return found

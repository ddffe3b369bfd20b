"""The compiled-policy index's state: built once, then patched by node events.

Nodes live in slots: an event updates a node's slot in place, a join appends
one, a leave turns the slot into a tombstone (`GHOST`, a node with no name,
owner, tags or addresses, which no alias names and nobody peers with). Bit
positions therefore never move, so every node bitset (peers, rule holders)
stays valid across events; the index compacts by rebuilding once tombstones
are a large share of the slots.

A node event E (`patch`) touches only what depends on E:
- the resolver's indexes (user, tag, member lists; sorted addresses);
- the identity aliases E matches before or after (users, groups, tags,
  autogroups): their address sets, SrcIPs texts and DstPorts prefixes are
  spliced at E's addresses (`addrpatch.py`), and E's bit is set or cleared in
  every alias's node bitset;
- the units (grants, ACL destinations) naming a changed alias are refreshed
  with the patched aliases' texts and blocks, or recompiled when that would not
  be exact (`livepatch._refreshed`), then re-merged (by SrcIPs identity; merged
  groups none of whose aliases changed are kept);
- E's owners' autogroup:self rules, the SSH rules and nodeAttrs naming E,
  the via units whose sources name E (their rules on the routers, with the new
  SrcIPs; `via_made`), E's views (mesh addresses, peer entry) and E's column of
  usable routes.

`livepatch.patchable(old, new)` says when that is exact; other events (a
node gaining or losing routes or exit approval, any event of a router or exit
node when the policy has `via` grants, a node address inside an approved route
or in Internet space) rebuild the stage.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from itertools import chain, repeat
from typing import TYPE_CHECKING, Any

from policyc.collector import paused_collector
from policyc.compiler.addrpatch import IntervalParts, Part, bits_of
from policyc.compiler.addrset import ALL, EMPTY, AddressSet, union_all
from policyc.compiler.chunks import Seq, flat
from policyc.compiler.compiler import (
    ALLOW_ALL,
    base_peer,
    policy_version,
    routed_peer,
    served_routes,
)
from policyc.compiler.grants import (
    INTERNET_PREFIXES,
    CompiledUnit,
    SelfPart,
    Unit,
    UnitCompiler,
    ViaPart,
    expand_units,
    is_self,
)
from policyc.compiler.internet import INTERNET
from policyc.compiler.livefilter import FilterMemo, memo_filter
from policyc.compiler.livetable import (
    Atom,
    Block,
    CapShape,
    Edge,
    IpShape,
    MergeKey,
    Shape,
    SrcKey,
    Table,
)
from policyc.compiler.nodeattrs import NodeAttrCompiler
from policyc.compiler.nodes import ROLE_AUTOGROUPS, Inventory, Node, User, login_selects
from policyc.compiler.peers import add_usable_routes, bits_to_indexes, peer_bitsets_of
from policyc.compiler.pernode import NodeView, OwnerSources, self_rules, via_rules, via_served
from policyc.compiler.resolve import INTERNET_GROUP, MEMBER, TAGGED, Resolver
from policyc.compiler.rules import Rule
from policyc.compiler.sshpolicy import SshCompiler
from policyc.netmap import ALL_PORTS, FilterRule, NodeNetmap, Peer
from policyc.policy.model import (
    Alias,
    AutoGroupRef,
    GroupRef,
    IPCapability,
    Policy,
    TagRef,
    UserRef,
    Wildcard,
)

if TYPE_CHECKING:
    from policyc.compiler.livematch import AtomMatcher

GHOST = Node("", None, (), ())
AliasKey = tuple[str, str]


def alias_key(alias: Alias) -> AliasKey:
    return (type(alias).__name__, str(alias))


# A set of logins as a dict's keys: as fast to make and ask as a frozenset, and about
# half its memory (dense tailnets have 200 groups of ~2,500 logins: ~15 MB less).
Logins = dict[str, None]

# (id(policy), group) -> (that policy, exact logins, `*@domain` suffixes); the policy is
# held so its id is not reused while the entry exists.
_GROUP_LOGINS: dict[tuple[int, str], tuple[Policy, Logins, tuple[str, ...]]] = {}


def _group_logins(policy: Policy, name: str) -> tuple[Logins, tuple[str, ...]]:
    """A group's member logins, and the `*@domain` suffixes it names (cached)."""
    key = (id(policy), name)
    found = _GROUP_LOGINS.get(key)
    if found is None or found[0] is not policy:
        group = policy.groups.get(name)
        # C-level passes (one join, one dict, a map only for `user:` prefixes): the
        # first event asks for every group, and dense tailnets have 200 groups of
        # thousands of logins (the map and a frozenset made that ~50 ms, now ~35).
        logins = group.logins if group else ()
        joined = "\0" + "\0".join(logins)
        if "\0user:" in joined:
            logins = tuple(map(str.removeprefix, logins, repeat("user:")))
            joined = "\0" + "\0".join(logins)
        domains = tuple(x[1:] for x in logins if x.startswith("*@")) if "\0*@" in joined else ()
        exact = dict.fromkeys(logins)
        for domain in domains:
            exact.pop("*" + domain, None)
        found = (policy, exact, domains)
        if len(_GROUP_LOGINS) > 4096:
            _GROUP_LOGINS.clear()
        _GROUP_LOGINS[key] = found
    return found[1], found[2]


def identity_match(alias: Alias, node: Node, r: Resolver) -> bool | None:
    """Does an identity alias name `node` (as `Resolver.alias_nodes` decides)?
    None: not an identity alias (its set does not depend on nodes)."""
    owner = None if node.tags or node.user is None else node.user
    match alias:
        case UserRef(login=login):
            return login_selects(login, owner)
        case GroupRef(name=name):
            if owner is None:
                return False
            exact, domains = _group_logins(r.policy, name)
            return owner in exact or any(owner.endswith(d) for d in domains)
        case TagRef(name=name):
            return name in node.tags
        case AutoGroupRef(name=name) if name == MEMBER:
            return owner is not None
        case AutoGroupRef(name=name) if name == TAGGED:
            return bool(node.tags)
        case AutoGroupRef(name=name) if name in ROLE_AUTOGROUPS:
            return owner is not None and owner in r.inventory.logins_with_role(name)
    return None


@dataclass(frozen=True, slots=True)
class ViaMade:
    """One via unit on the routers serving it: its SrcIPs, each router's rules, the
    edges from its sources to each router."""

    src_ips: tuple[str, ...]
    rules: dict[int, list[Rule]]
    edges: list[Edge]
    targets: list[tuple[int, AddressSet, bool]]  # (router, what it serves, Internet)


class LiveStage:
    """Shared state of one (policy, slots); `patch` applies one ordinary node event."""

    def __init__(self, policy: Policy, slots: tuple[Node, ...],
                 users: tuple[User, ...] | None) -> None:
        with paused_collector():  # an acyclic graph of small objects (collector.py)
            self._build(policy, slots, users)

    def _build(self, policy: Policy, slots: tuple[Node, ...],
               users: tuple[User, ...] | None) -> None:
        self.policy = policy
        self.users = users
        self.version = policy_version(policy)
        self.r = r = Resolver(policy, Inventory.of(slots, users))
        self.units: list[Unit] = expand_units(policy)
        self.cunits = [CompiledUnit(k, u.span) for k, u in enumerate(self.units)]
        self.has_via = any(u.via for u in self.units)
        self.atoms: dict[AliasKey, Atom] = {}
        self._blocks: dict[tuple[int, tuple[Any, ...]], Block] = {}
        self.unit_atoms: dict[AliasKey, set[int]] = defaultdict(set)
        self.unit_facts: dict[int, tuple[bool, frozenset[AliasKey]]] = {}  # livepatch's
        self.matcher: AtomMatcher | None = None  # livepatch's, made on the first event
        self.exit_bits = bits_of(r.exit_nodes)
        self.all_atom = self._atom_of(("*all", ""), ALL)
        self.internet_atom = self._atom_of(("*internet", ""), INTERNET)
        # Per slot, lists: an event sets its slot in place (appends for a join), where a
        # tuple was copied whole (~1 ms per copy at 100k slots, cold). `names` is
        # versioned (a report reads the one of its event): copied before a slot is
        # replaced, appended to in place (earlier reports read only their slots).
        self.views = [NodeView(i, r.node_addrs[i], r.node_routes[i], n.exit_node, n.ips)
                      for i, n in enumerate(r.nodes)]
        self.base_peers = [base_peer(n, r.ip_texts(i)) for i, n in enumerate(r.nodes)]
        self.names = [n.name for n in r.nodes]  # per slot ("" for a tombstone)
        self.ghost_bits = bits_of(i for i, n in enumerate(r.nodes) if n is GHOST)
        self.routed = frozenset(i for i, n in enumerate(r.nodes) if n.routes or n.exit_node)
        self._rank: list[int] | None = None
        self.via_extras: dict[int, list[Rule]] = defaultdict(list)
        self.via_edges: list[Edge] = []
        self.via_made: dict[int, ViaMade] = {}  # per via unit (livepatch redoes some)
        self.owner_rules: dict[str, list[Rule]] = {}
        self.owner_edges: dict[str, list[Edge]] = {}
        self._owner_keys: dict[str, set[MergeKey]] = {}
        self._key_owners: dict[MergeKey, set[str]] = defaultdict(set)
        self.unit_anon: dict[int, list[Atom]] = {}
        self.partial_internet = 0
        # Interval -> prefix parts, shared while building (dropped after: events
        # patch parts locally, and the cache would only grow).
        self._parts_cache: IntervalParts | None = IntervalParts()
        self._plan: tuple[Table, list[tuple[int, SelfPart, int, int]]] | None = None
        # Units with an autogroup:self destination, and each one's shape id (what
        # decides its rules besides the sources: fixed by the policy).
        self._self_units = tuple(k for k, u in enumerate(self.units)
                                 if any(is_self(d) for d in u.destinations))
        self._self_shapes: dict[int, int] = {}
        self._self_shape_ids: dict[tuple[object, ...], int] = {}
        if policy.allows_all:
            self.table = Table([], [], self.exit_bits)
            self.fixed_edges = self.allow_all_edges()
        else:
            compiler = UnitCompiler(r)
            shapes: list[tuple[Shape, ...]] = []
            parts: list[SelfPart | None] = []
            for k in range(len(self.units)):
                made, part = self._compile(k, compiler)
                shapes.append(made)
                parts.append(part)
            self.table = Table(shapes, parts, self.exit_bits)
            self.partial_internet = sum(
                1 for made in shapes for s in made if isinstance(s, IpShape) and any(
                    not b.star and b.atom.addrs.overlaps(INTERNET)
                    and not INTERNET.issubset(b.atom.addrs) for b in s.blocks))
            sources = OwnerSources(r)
            inside: dict[AddressSet, frozenset[int]] = {}
            for owner in r.by_user:
                self._owner_self(owner, sources, inside)
            self._via(compiler)
            self.fixed_edges = self.via_edges
        self.ssh = SshCompiler(policy, r)
        self.attrs = NodeAttrCompiler(policy, r)
        # fixed_edges (the list it was made from), those to many nodes, those to one
        self._fixed_index: tuple[list[Edge], list[Edge], dict[int, list[Edge]]] | None = None
        self.usable = self._usable_routes()
        self._peer_bitsets: list[int] | None = None
        self._parts_cache = None
        # Per slot, what its last filter was made of (`livefilter.py`), when the
        # index's owner reuses filters (None: each filter is made afresh).
        self.filter_memos: dict[int, FilterMemo] | None = None

    # --- atoms -------------------------------------------------------------------------

    def _atom_of(self, key: AliasKey, addrs: AddressSet, alias: Alias | None = None) -> Atom:
        atom = Atom(key, addrs, alias)
        self._set_bits(atom)
        return atom

    def _set_bits(self, atom: Atom) -> None:
        r = self.r
        atom.bits = bits_of(r.nodes_in(atom.addrs) + r.routers_overlapping(atom.addrs))
        atom.set_internet()
        atom.holders = atom.bits | (self.exit_bits if atom.internet else 0)

    def live_bits(self) -> int:
        """Every slot holding a node (`*` rules concern all of them)."""
        return ((1 << len(self.r.nodes)) - 1) & ~self.ghost_bits

    def allow_all_edges(self) -> list[Edge]:
        """`PeerGraph.add_rule(ALL, ALL, True)` of a policy that allows everything."""
        bits = self.all_atom.bits
        return [Edge(bits, bits | self.exit_bits, (ALL,), True)] if bits else []

    def anonymous_atoms(self) -> Iterator[Atom]:
        """Atoms of one rule's own set (several sources together, CapGrant sets)."""
        for atoms in self.unit_anon.values():
            yield from atoms
        yield self.all_atom
        yield self.internet_atom

    def _anon(self, k: int, addrs: AddressSet) -> Atom:
        atom = self._atom_of(("*set", ""), addrs)
        self.unit_anon.setdefault(k, []).append(atom)
        return atom

    def key_owners(self, keys: Iterable[MergeKey]) -> set[str]:
        """Owners with an autogroup:self rule merging under one of `keys`."""
        return {owner for key in keys for owner in self._key_owners.get(key, ())}

    def atom(self, alias: Alias, unit: int) -> Atom:
        key = alias_key(alias)
        self.unit_atoms[key].add(unit)
        found = self.atoms.get(key)
        if found is None:
            found = self.atoms[key] = self._atom_of(key, self.r.alias(alias), alias)
        return found

    def texts(self, atom: Atom) -> tuple[Seq[str], SrcKey]:
        if atom.texts is None or atom.src_key is None:
            atom.texts = tuple(self.r.texts(atom.addrs))
            atom.src_key = SrcKey(atom.texts)
        return atom.texts, atom.src_key

    def block(self, atom: Atom, ports: tuple[Any, ...]) -> Block:
        """The block of (atom, ports), shared by the rules naming both (until the
        atom's prefixes change)."""
        parts4, parts6 = atom.get_parts(self._parts_cache)
        key = (id(atom), ports)
        found = self._blocks.get(key)
        if found is None or found.parts4 is not parts4 or found.parts6 is not parts6 \
                or found.atom is not atom:
            found = self._blocks[key] = Block(atom, False, parts4, parts6, ports)
        return found

    # --- units -------------------------------------------------------------------------

    def _compile(self, k: int, uc: UnitCompiler) -> tuple[tuple[Shape, ...], SelfPart | None]:
        """`UnitCompiler.compile` of unit `k`, as shapes over atoms."""
        unit = self.units[k]
        self.unit_anon.pop(k, None)
        if not unit.sources or not unit.destinations or unit.via:
            return (), None
        src_aliases = [a for a in unit.sources if not is_self(a)]
        atoms = [self.atom(a, k) for a in src_aliases]
        resolved = [(a, atom.addrs) for a, atom in zip(src_aliases, atoms, strict=True)]
        merged = union_all(s for _, s in resolved)
        if not merged and not unit.app:
            return (), None
        one = src_aliases[0] if len(unit.sources) == 1 and src_aliases else None
        if one is not None and not isinstance(one, Wildcard) and not (
                isinstance(one, AutoGroupRef) and one.name == "autogroup:danger-all"):
            src_atom = atoms[0]
            src_ips, key = self.texts(src_atom)
        else:
            src_ips, src = uc._sources(unit.sources, resolved, merged)
            src_atom = self._anon(k, src)
            key = SrcKey(src_ips)
        others = tuple(d for d in unit.destinations if not is_self(d))
        for alias in others:  # registered: an event changing one recompiles this unit
            if not isinstance(alias, Wildcard):
                self.atom(alias, k)
        out: list[Shape] = []
        seq = 0
        if others:
            for cap in unit.ip:
                shape = self._ip_shape(k, (k, seq), len(out), src_ips, key, src_atom, others, cap)
                seq += 1
                if shape is not None:
                    out.append(shape)
            if unit.app:
                # The CapGrant rule's own sets are its aliases' when it names one each:
                # their kept atoms (a set's nodes looked up anew was ~10 ms per event
                # for a group at 10k); companion rules (drive, relay) have their own.
                named = (self.atoms.get(alias_key(others[0])) if len(others) == 1
                         and not isinstance(others[0], Wildcard) else None)
                rules = uc._app_rules(unit, (k, seq), flat(src_ips), src_atom.addrs, resolved,
                                      others)
                for j, rule in enumerate(rules):
                    main = j == 0
                    cap_src = src_atom if main and rule.src is src_atom.addrs else self._anon(
                        k, rule.src)
                    cap_dst = (named if main and named is not None
                               else self._anon(k, rule.dst_addrs))
                    out.append(CapShape((k, len(out)), rule, cap_src, cap_dst))
        self_part = None
        if any(is_self(d) for d in unit.destinations):
            self_part = SelfPart(merged, unit.ip, tuple((c.name, c.values) for c in unit.app))
        return tuple(out), self_part

    def _ip_shape(self, k: int, order: tuple[int, int], n: int, src_ips: Seq[str],
                  key: SrcKey, src: Atom, dsts: tuple[Alias, ...], cap: IPCapability
                  ) -> IpShape | None:
        """`UnitCompiler._ip_rule`: one block per destination alias."""
        ports = cap.ports or (ALL_PORTS,)
        blocks: list[Block] = []
        internet = False
        for alias in dsts:
            if isinstance(alias, Wildcard):
                blocks.append(Block(self.all_atom, True, (), (), ports))
            elif isinstance(alias, AutoGroupRef) and alias.name == INTERNET_GROUP:
                internet = True
                blocks.append(Block(self.internet_atom, False, *_internet_parts(), ports))
            else:
                block = self.block(self.atom(alias, k), ports)
                if block.parts4 or block.parts6:
                    blocks.append(block)
        if not src_ips or not (blocks or internet):
            return None
        merge_key: MergeKey = (key, tuple(cap.protocols))
        inet = tuple(b.atom.addrs for b in blocks if b.atom.addrs.overlaps(INTERNET))
        covers = any(INTERNET.issubset(one) for one in inet)
        return IpShape((k, n), order, src_ips, merge_key, src, tuple(blocks), internet, inet,
                       covers)

    def _self_plan(self) -> list[tuple[int, SelfPart, int, int]]:
        """The table's autogroup:self parts (most units have none), made once per
        table, each with two small ids: its shape (what decides its rules besides
        the sources) and its class (shape and sources: parts of one class give an
        owner the same rules, restamped). Every event makes a table: only the units
        with a self destination are looked at, their shapes known from the first."""
        table = self.table
        if self._plan is None or self._plan[0] is not table:
            # Sources by identity: units naming the same alias share its set object,
            # and hashing a changed autogroup:member set every event cost ~0.8 ms
            # (equal sets in distinct objects only make two classes of one).
            classes: dict[tuple[int, int], int] = {}
            items: list[tuple[int, SelfPart, int, int]] = []
            for k in self._self_units:
                part = table.self_parts[k]
                if part is None:
                    continue
                shape = self._self_shape(k, part)
                items.append((k, part, shape,
                              classes.setdefault((shape, id(part.sources)), len(classes))))
            self._plan = (table, items)
        return self._plan[1]

    def _self_shape(self, k: int, part: SelfPart) -> int:
        """Unit `k`'s self part's shape id (its ports and capabilities, the unit's)."""
        found = self._self_shapes.get(k)
        if found is None:
            ids = self._self_shape_ids
            key = (tuple((c.protocols, c.ports) for c in part.ip), repr(part.app))
            found = self._self_shapes[k] = ids.setdefault(key, len(ids))
        return found

    def _owner_self(self, owner: str, sources: OwnerSources | None = None,
                    inside: dict[AddressSet, frozenset[int]] | None = None) -> None:
        """`Compilation._self_rules` for one owner's devices (rules and peer edges).
        `sources` and `inside` (a self part's sources -> the nodes in them): pieces
        shared across owners while building (not across events: they are keyed by
        slots, whose nodes an event changes)."""
        r = self.r
        sources = sources or OwnerSources(r)
        user_nodes = list(r.by_user.get(owner, ()))
        rules_out: list[Rule] = []
        edges: list[Edge] = []
        keys: set[MergeKey] = set()
        # (shape, the owner's devices among the sources) -> (rules, has CapGrant rules)
        memo: dict[tuple[int, tuple[int, ...]], tuple[list[Rule], bool]] = {}
        by_class: dict[int, tuple[list[Rule], bool] | None] = {}
        edge_srcs: set[tuple[int, ...]] = set()
        devices, dst = 0, (EMPTY,)
        for k, part, shape, cls in self._self_plan() if user_nodes else ():
            if cls in by_class:
                found = by_class[cls]
                if found is None:
                    continue
            else:
                srcs = self._owner_sources(user_nodes, part.sources, inside)
                found = memo.get((shape, srcs)) if srcs else None
                by_class[cls] = found
                if found is None and srcs:
                    made = self_rules(self.cunits[k], part, user_nodes, srcs, sources)
                    memo[(shape, srcs)] = by_class[cls] = (
                        made, any(rule.merge_key is None for rule in made))
                    if srcs not in edge_srcs and any(rule.dst or rule.caps for rule in made):
                        # One edge per set of sending devices (equal edges add nothing).
                        edge_srcs.add(srcs)
                        if not devices:
                            devices = bits_of(user_nodes)
                            dst = (sources.addresses(tuple(user_nodes)),)
                        sent = devices if len(srcs) == len(user_nodes) else bits_of(srcs)
                        edges.append(Edge(sent, devices, dst, False))
                    rules_out.extend(made)
                    # Later uses repeat these keys (a restamp keeps SrcIPs and proto).
                    keys.update((SrcKey(rule.src_ips), rule.proto) for rule in made
                                if rule.merge_key is not None)
                    continue
                if found is None:
                    continue
            made, restamp = found
            if restamp:  # CapGrant rules never merge: each unit's copy keeps its order
                span = self.cunits[k].span
                rules_out.extend(
                    rule if rule.merge_key is not None
                    else replace(rule, order=(k, rule.order[1]), span=span) for rule in made)
            else:
                rules_out.extend(made)
        for old_key in self._owner_keys.pop(owner, ()):
            self._key_owners[old_key].discard(owner)
        if rules_out or edges:
            self.owner_rules[owner] = rules_out
            self.owner_edges[owner] = edges
            self._owner_keys[owner] = keys
            for new_key in keys:
                self._key_owners[new_key].add(owner)
        else:
            self.owner_rules.pop(owner, None)
            self.owner_edges.pop(owner, None)

    def _owner_sources(self, user_nodes: list[int], part_sources: AddressSet,
                       inside: dict[AddressSet, frozenset[int]] | None) -> tuple[int, ...]:
        """The owner's devices with an address among a self part's sources."""
        if inside is None:
            node_addrs = self.r.node_addrs
            return tuple(i for i in user_nodes if node_addrs[i].overlaps(part_sources))
        members = inside.get(part_sources)
        if members is None:
            members = inside[part_sources] = frozenset(self.r.nodes_in(part_sources))
        return tuple(i for i in user_nodes if i in members)

    def _via(self, uc: UnitCompiler) -> None:
        """`Compilation._via_rules`: via grants' rules on the routers serving them."""
        self.via_made = {}
        for k in range(len(self.units)):
            made = self.via_unit(k, uc)
            if made is not None:
                self.via_made[k] = made
        self.join_via()

    def via_unit(self, k: int, uc: UnitCompiler, was: ViaMade | None = None) -> ViaMade | None:
        """Via unit `k`'s rules on the routers serving it, and its edges to them.
        `was`: the unit as made before a node event that changed neither the routers
        nor what they serve (`livepatch.patchable`): its rules get the new sources."""
        r, unit = self.r, self.units[k]
        if not unit.via or not unit.sources or not unit.destinations:
            return None
        one = self._via_source(unit)
        if was is not None and one is not None:  # the kept atom: no texts made anew
            atom = self.atom(one, k)
            if not atom.addrs:
                return None
            texts = tuple(self.texts(atom)[0])
            return ViaMade(
                texts,
                {i: [Rule(texts, atom.addrs, x.order, x.dst, x.proto, x.caps, x.internet,
                          x.span, x.dst_sets) for x in rules]  # `replace` was 4x slower
                 for i, rules in was.rules.items()},
                [Edge(atom.bits, 1 << i, (dst,), internet) for i, dst, internet in was.targets
                 ] if atom.bits else [], was.targets)
        if one is not None:
            self.atom(one, k)  # kept up to date by node events from now on
        resolved = [(a, r.alias(a)) for a in unit.sources if not is_self(a)]
        via: ViaPart | None = uc._via(unit, resolved, union_all(s for _, s in resolved))
        if via is None:
            return None
        src_bits = self._atom_of(("*set", ""), via.src).bits
        if was is not None:
            return ViaMade(
                tuple(via.src_ips),
                {i: [replace(rule, src_ips=via.src_ips, src=via.src) for rule in rules]
                 for i, rules in was.rules.items()},
                [Edge(src_bits, 1 << i, (dst,), internet) for i, dst, internet in was.targets
                 ] if src_bits else [], was.targets)
        rules: dict[int, list[Rule]] = {}
        edges: list[Edge] = []
        targets: list[tuple[int, AddressSet, bool]] = []
        # Only routers carrying a via tag serve it (was: every slot, per unit).
        routers = sorted({i for t in via.tags for i in r.by_tag.get(t, ())})
        for view in map(self.views.__getitem__, routers):
            served = via_served(via, view, r.nodes[view.index].tags)
            if not served:
                continue
            rules[view.index] = via_rules(self.cunits[k], via, served)
            internet = via.internet or (
                view.is_exit and any(a.issubset(INTERNET) for _, a in served))
            targets.append((view.index, union_all(a for _, a in served), internet))
            if src_bits:
                edges.append(Edge(src_bits, 1 << view.index, (targets[-1][1],), internet))
        return ViaMade(tuple(via.src_ips), rules, edges, targets)

    @staticmethod
    def _via_source(unit: Unit) -> Alias | None:
        """A via unit's one source alias, when its SrcIPs are that alias's texts."""
        if len(unit.sources) != 1:
            return None
        one = unit.sources[0]
        if is_self(one) or isinstance(one, Wildcard) or (
                isinstance(one, AutoGroupRef) and one.name == "autogroup:danger-all"):
            return None
        return one

    def join_via(self) -> None:
        """`via_extras` and `via_edges` from the units' parts, in unit order (new
        objects: an event's report compares with the ones it replaced)."""
        extras: dict[int, list[Rule]] = defaultdict(list)
        edges: list[Edge] = []
        for k in sorted(self.via_made):
            made = self.via_made[k]
            for i, rules in made.rules.items():
                extras[i].extend(rules)
            edges.extend(made.edges)
        self.via_extras, self.via_edges = extras, edges

    # --- peers ---------------------------------------------------------------------------

    def edges_of(self, i: int) -> Iterator[Edge]:
        yield from self.table.edges
        yield from self.fixed_edges
        owner = self.r.nodes[i].owner
        if owner is not None:
            yield from self.owner_edges.get(owner, ())

    def all_edges(self) -> Iterator[Edge]:
        yield from self.table.edges
        yield from self.fixed_edges
        for edges in self.owner_edges.values():
            yield from edges

    def peer_bits(self, i: int) -> int:
        """Node `i`'s peers as a bitset (never itself)."""
        bit = 1 << i
        bits = 0
        if 2 * i > len(self.r.nodes):  # see `peers.HIGH`: `>>` reads the digits above i
            for edge in self.edges_of(i):
                if edge.src_bits >> i & 1:
                    bits |= edge.dst_bits
                if edge.dst_bits >> i & 1:
                    bits |= edge.src_bits
        else:
            for edge in self.edges_of(i):
                if edge.src_bits & bit:
                    bits |= edge.dst_bits
                if edge.dst_bits & bit:
                    bits |= edge.src_bits
        return bits & ~bit

    def peer_bitsets(self) -> list[int]:
        """Every slot's peers, computed together by identity class (`PeerGraph`)."""
        if self._peer_bitsets is not None:
            return self._peer_bitsets
        out = peer_bitsets_of(self.all_edges(), len(self.r.nodes))
        self._peer_bitsets = out
        return out

    def _usable_routes(self) -> dict[tuple[int, int], int]:
        """`PeerGraph.usable_routes`: (router, route number) -> nodes that may use it."""
        out: dict[tuple[int, int], int] = defaultdict(int)
        for p in sorted(self.routed):
            self._usable_row(p, out)
        return out

    def _usable_row(self, p: int, out: dict[tuple[int, int], int]) -> None:
        node = self.r.nodes[p]
        edges: Iterable[Edge] = chain(self.table.edges, self._fixed_reaching(p))
        if node.owner is not None:
            edges = chain(edges, self.owner_edges.get(node.owner, ()))
        add_usable_routes(node, p, edges, out)

    def _fixed_reaching(self, p: int) -> list[Edge]:
        """The fixed edges that may reach router `p`: those to many nodes and those to
        `p` alone (a via grant adds one per router it reaches: 10k grants ~20,000, which
        every router read in turn). Remade when `fixed_edges` is replaced."""
        index = self._fixed_index
        if index is None or index[0] is not self.fixed_edges:
            many: list[Edge] = []
            one: dict[int, list[Edge]] = defaultdict(list)
            for edge in self.fixed_edges:
                bits = edge.dst_bits
                if bits & (bits - 1):
                    many.append(edge)
                else:
                    one[bits.bit_length() - 1].append(edge)
            index = self._fixed_index = (self.fixed_edges, many, one)
        return [*index[1], *index[2].get(p, ())]

    @property
    def rank(self) -> list[int]:
        if self._rank is None:
            nodes = self.r.nodes
            rank = [0] * len(nodes)
            for position, i in enumerate(sorted(range(len(nodes)), key=lambda i: nodes[i].name)):
                rank[i] = position
            self._rank = rank
        return self._rank

    def peer_view(self, me: int, p: int) -> Peer:
        """Peer `p` as node `me` lists it: with the routes `me` may send into."""
        base = self.base_peers[p]
        if p not in self.routed:
            return base
        return routed_peer(base, self.r.nodes[p], me, p, self.usable)

    # --- per node ----------------------------------------------------------------------

    def extras(self, i: int) -> list[Rule]:
        owner = self.r.nodes[i].owner
        own = self.owner_rules.get(owner, []) if owner is not None else []
        via = self.via_extras.get(i)
        return own + via if via else own

    def filter_of(self, i: int) -> tuple[FilterRule, ...]:
        if self.policy.allows_all:
            return (ALLOW_ALL,)
        memos = self.filter_memos
        if memos is None:
            return tuple(self.table.filter_of(i, self.views[i], self.extras(i)))
        made, memos[i] = memo_filter(self.table, i, self.views[i], self.extras(i), memos.get(i))
        return made

    def rest(self, i: int) -> tuple[object, ...]:
        """Node `i`'s netmap apart from its peers and the version stamp, to compare
        (its filter as `Table.filter_key`: rule texts maybe chunked)."""
        node = self.r.nodes[i]
        rules = ((ALLOW_ALL,) if self.policy.allows_all
                 else tuple(self.table.filter_key(i, self.views[i], self.extras(i))))
        return (rules, self.ssh.for_node(i), self.attrs.for_node(i), node.ips,
                served_routes(node))

    def netmap_of(self, i: int, peers: list[int] | None = None) -> NodeNetmap:
        if peers is None:
            peers = bits_to_indexes(self.peer_bits(i))
        node = self.r.nodes[i]
        rank = self.rank
        ordered = sorted(peers, key=rank.__getitem__)
        base, routed = self.base_peers, self.routed
        return NodeNetmap(
            node=node.name,
            addresses=tuple(str(ip) for ip in node.ips),
            peers=tuple(base[p] if p not in routed else self.peer_view(i, p) for p in ordered),
            packet_filter=self.filter_of(i),
            ssh_policy=self.ssh.for_node(i),
            policy_version=self.version,
            routes=served_routes(node),
            cap_map=self.attrs.for_node(i),
        )

    def iter_netmaps(self, slots: Iterable[int]) -> Iterator[tuple[int, NodeNetmap]]:
        bitsets = self.peer_bitsets()
        for i in slots:
            yield i, self.netmap_of(i, bits_to_indexes(bitsets[i]))


@functools.lru_cache(maxsize=1 << 16)
def _base_peer(n: Node) -> Peer:
    """A node as its peers list it (no routes), for an event's node: cached, since
    events name the same nodes again."""
    return base_peer(n, tuple(str(ip) for ip in n.ips))


def _internet_parts() -> tuple[tuple[Part, ...], tuple[Part, ...]]:
    v4 = tuple((str(p), AddressSet.of_network(p)) for p in INTERNET_PREFIXES if p.version == 4)
    v6 = tuple((str(p), AddressSet.of_network(p)) for p in INTERNET_PREFIXES if p.version == 6)
    return v4, v6

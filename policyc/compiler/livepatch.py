"""One node event applied to a `LiveStage` in place, and what it changed.

`patch(stage, slot, old, new)` updates only what depends on the node E in
`slot` (see livestage.py) and derives the changed netmaps structurally:

- *certain*: the holders of every rule whose SrcIPs changed (a rule's text
  names E's addresses, so each netmap holding it differs), and the nodes that
  start or stop seeing E as a peer;
- *compared*: nodes whose filter may change in a way that is not certain — the
  nodes next to E's addresses in a changed destination (the prefix cover
  around E can merge or split), holders of rules whose merged neighbours
  changed, E's owner's devices (autogroup:self), nodes merging their own rules
  into a rule whose key appeared or vanished, SSH destinations of rules naming
  E. Their old and new filters (or SSH policies) are computed and compared;
- E itself: compared whole; E's peers see E's new entry (key, endpoint,
  addresses, usable routes) when it differs.

Peer sets change only in pairs that include E: each peer edge joins node sets
chosen by the aliases' addresses, which change only at E's addresses.
"""

from __future__ import annotations

import bisect
import copy
from dataclasses import dataclass
from typing import Any

from policyc.compiler.addrpatch import (
    PointEdit,
    bits_of,
    edit_families,
    patch_parts,
    patch_texts,
)
from policyc.compiler.addrset import AddressSet, Interval, merge
from policyc.compiler.grants import SelfPart, UnitCompiler, is_self
from policyc.compiler.internet import INTERNET
from policyc.compiler.livematch import AtomMatcher
from policyc.compiler.livestage import (
    GHOST,
    AliasKey,
    LiveStage,
    _base_peer,
    alias_key,
    identity_match,
)
from policyc.compiler.livetable import (
    EVERYONE,
    Atom,
    IpShape,
    MergeKey,
    Shape,
    SrcKey,
    Table,
)
from policyc.compiler.nodeattrs import NodeAttrCompiler
from policyc.compiler.nodes import Node
from policyc.compiler.peers import bits_to_indexes
from policyc.compiler.pernode import NodeView
from policyc.compiler.resolve import Resolver
from policyc.compiler.sshpolicy import SshCompiler
from policyc.policy.model import AutoGroupRef, IPSetRef, Wildcard


@dataclass(frozen=True, slots=True)
class Delta:
    """What one patched event changed, by slot bitsets."""

    changed: int  # slots (other than E) whose netmap differs
    peers_before: int  # E's peers before and after
    peers_after: int
    view_changed: int  # slots whose entry for peer E differs (both before and after)
    own_changed: bool  # E's own netmap differs (E present before and after)
    own_peers_changed: int  # E's peers whose entry in E's netmap differs (routes)
    refreshed: tuple[int, ...] = ()  # units refreshed in place, not recompiled (tests)


def patchable(stage: LiveStage, old: Node | None, new: Node | None) -> bool:
    """Whether `patch` is exact for this event (else: rebuild and compare)."""
    o, n = old or GHOST, new or GHOST
    if stage.partial_internet > 1:
        return False
    if stage.has_via and (o.routes or n.routes or o.exit_node or n.exit_node):
        return False  # E may serve via grants: its rules as a router are not redone
    if o.routes != n.routes or o.exit_node != n.exit_node:
        return False
    addrs = AddressSet.of_addresses(o.ips) | AddressSet.of_addresses(n.ips)
    return not (addrs.overlaps(stage.r.all_routes) or addrs.overlaps(INTERNET))


def patch(stage: LiveStage, slot: int, old: Node | None, new: Node | None) -> Delta:
    o, n = old or GHOST, new or GHOST
    bit = 1 << slot
    r = stage.r
    # --- before: E as it was -----------------------------------------------------------
    peers_before = stage.peer_bits(slot) if old is not None else 0
    # E's own netmap before, to compare with after (a leave has no after).
    own_before = _own(stage, slot, peers_before) if old is not None and new is not None else None
    row_before = _row(stage, slot)
    old_table, old_ssh, old_via = stage.table, stage.ssh, stage.via_extras
    # The owners whose autogroup:self rules the event redoes, as they were.
    old_owner_rules = {x: stage.owner_rules.get(x, []) for x in (o.owner, n.owner)
                       if x is not None}
    old_devices = list(r.by_user.get(o.owner, ())) if o.owner else []
    # --- the resolver and the per-slot views --------------------------------------------
    _patch_resolver(r, slot, o, n)
    view = NodeView(slot, r.node_addrs[slot], r.node_routes[slot], n.exit_node, n.ips)
    _put_list(stage.views, slot, view)
    _put_list(stage.base_peers, slot, _base_peer(n))
    if slot < len(stage.names):  # earlier reports keep the names they were made with
        stage.names = list(stage.names)
    _put_list(stage.names, slot, n.name)
    if new is None:
        stage.ghost_bits |= bit
        if stage.filter_memos is not None:  # a tombstone has no filter
            stage.filter_memos.pop(slot, None)
    if o.name != n.name:
        stage._rank = None
    stage._peer_bitsets = None
    # --- aliases -------------------------------------------------------------------------
    changed_keys, sensitive, region, flipped = _patch_atoms(stage, slot, o, n)
    # --- units, merged rules, autogroup:self ------------------------------------------------
    recompiled = sorted({k for key in changed_keys for k in stage.unit_atoms.get(key, ())}
                        | sensitive)
    units = list(old_table.units)
    parts: list[SelfPart | None] = list(old_table.self_parts)
    compiler = UnitCompiler(r)
    refreshed_units: list[int] = []
    for k in recompiled:
        refreshed = _refreshed(stage, k, units[k], changed_keys, sensitive)
        if refreshed is not None:
            units[k] = refreshed
            refreshed_units.append(k)
        else:
            units[k], parts[k] = stage._compile(k, compiler)
    stage.table = table = Table(units, parts, stage.exit_bits, old_table, frozenset(flipped))
    if stage.policy.allows_all:
        stage.fixed_edges = stage.allow_all_edges()
    owners = {x for x in (o.owner, n.owner) if x is not None}
    for owner in owners:
        stage._owner_self(owner)
    via_changed = _patch_via(stage, o, n, compiler) if stage.has_via else 0
    # --- SSH, nodeAttrs ------------------------------------------------------------------------
    ssh_compare, ssh_touched = _patch_ssh(stage, o, n)
    ssh_memo: dict[tuple[int, int], tuple[object, object, bool]] = {}
    if stage.policy.node_attrs:
        stage.attrs = NodeAttrCompiler(stage.policy, r)
    # --- usable routes: E's column (and E's row if E is a router) ---------------------------
    _patch_usable(stage, slot)
    row_after = _row(stage, slot)
    # --- what changed --------------------------------------------------------------------------
    # Units share destination atoms (a group reaches ~20 tags in ~300 rules): each
    # atom's holders are OR-ed once.
    certain, compare = _Holders(), _Holders()
    for k in recompiled:
        before, after = old_table.units[k], units[k]
        if _texts(before) != _texts(after):
            for shape in (*before, *after):
                (certain if isinstance(shape, IpShape) else compare).add(shape)
        elif len(before) != len(after):
            for shape in (*before, *after):
                compare.add(shape)
    moved = set(recompiled)
    touched: set[MergeKey] = set()
    # Groups kept from the old table are the same rules: only the new groups and the
    # vanished ones can differ.
    for key, was, now in [*((g.key, old_table.by_key.get(g.key), g) for g in table.fresh),
                          *((g.key, g, None) for g in table.gone)]:
        if was is not None and now is not None and _same(was.parts, now.parts):
            continue
        touched.add(key)
        for group in (was, now):
            if group is not None:
                for shape in group.parts:
                    if shape.pos[0] not in moved:
                        compare.add(shape)
    owners_bits = bits_of(old_devices) | bits_of(r.by_user.get(n.owner, ()) if n.owner else ())
    for owner in stage.key_owners(touched):
        owners_bits |= bits_of(r.by_user.get(owner, ()))
    peers_after = stage.peer_bits(slot) if new is not None else 0
    common = peers_before & peers_after
    view_changed = 0
    if old is not None and new is not None and _base_peer(o) != stage.base_peers[slot]:
        view_changed = common
    elif row_before != row_after:
        view_changed = common & _row_flips(row_before, row_after)
    live = stage.live_bits()
    changed = (certain.bits() | (peers_before ^ peers_after) | view_changed | via_changed) & live
    compare_bits = compare.bits() | region | owners_bits | ssh_compare
    for i in bits_to_indexes(compare_bits & live & ~changed & ~bit):
        extras_before = _old_extras(stage, i, old_owner_rules, old_via)
        if (old_table.filter_key(i, stage.views[i], extras_before)
                != table.filter_key(i, stage.views[i], stage.extras(i))
                or (ssh_compare >> i & 1
                    and _ssh_differs(old_ssh, stage.ssh, i, ssh_touched, ssh_memo))):
            changed |= 1 << i
    own_changed, own_peers_changed = False, 0
    if own_before is not None and new is not None:
        own_after = _own(stage, slot, peers_after)
        own_changed = own_before != own_after
        views_before, views_after = dict(own_before[-1]), dict(own_after[-1])  # type: ignore[call-overload]
        for p in views_before.keys() & views_after.keys():
            if views_before[p] != views_after[p]:
                own_peers_changed |= 1 << p
    return Delta(changed & ~bit, peers_before, peers_after, view_changed & ~bit, own_changed,
                 own_peers_changed, tuple(refreshed_units))


# --- pieces -----------------------------------------------------------------------------------


class _Holders:
    """The OR of some rules' holders (CapGrants: their destinations), each atom's
    bitset taken once however many rules name it."""

    __slots__ = ("_atoms", "_bits")

    def __init__(self) -> None:
        self._atoms: dict[int, Atom] = {}
        self._bits = 0

    def add(self, shape: Shape) -> None:
        if isinstance(shape, IpShape):
            for block in shape.blocks:
                if block.star:
                    self._bits = EVERYONE
                else:
                    self._atoms[id(block.atom)] = block.atom
        else:
            self._bits |= shape.dst.bits

    def bits(self) -> int:
        bits = self._bits
        for atom in self._atoms.values():
            bits |= atom.holders
        return bits


def _refreshed(stage: LiveStage, k: int, shapes: tuple[Shape, ...],
               changed_keys: set[AliasKey], sensitive: set[int]) -> tuple[Shape, ...] | None:
    """Unit `k`'s shapes after its atoms were patched, without recompiling it: the
    same rules with the source's current SrcIPs and the destination atoms' current
    prefix blocks. None when that is not what `_compile` would give: a unit with
    CapGrants or autogroup:self, whose rules or blocks were dropped for an empty set
    (or would be now), or whose own source set (several sources, `*`) changed.

    The rest of a shape stands: its Internet flags and sets depend only on the
    aliases' Internet space, which a patched event never touches (`patchable`)."""
    unit = stage.units[k]
    plain, source_keys = _unit_facts(stage, k)
    if not plain or len(shapes) != len(unit.ip):
        return None
    dsts = len(unit.destinations)
    own_source_changed = k in sensitive or not changed_keys.isdisjoint(source_keys)
    out: list[Shape] = []
    for shape in shapes:
        if not isinstance(shape, IpShape) or len(shape.blocks) != dsts:
            return None
        src = shape.src
        if src.alias is not None:  # one alias: its atom's texts were patched
            if not src.has_addresses():
                return None
            texts, key = stage.texts(src)
            merge_key: MergeKey = (key, shape.key[1])
        elif own_source_changed:  # the unit's own set (its bits were patched)
            return None
        else:
            texts, merge_key = shape.src_ips, shape.key
        blocks = []
        for block in shape.blocks:
            if not block.star and block.atom.alias is not None:
                block = stage.block(block.atom, block.ports)
                if not (block.parts4 or block.parts6):
                    return None
            blocks.append(block)
        out.append(IpShape(shape.pos, shape.order, texts, merge_key, src,
                           tuple(blocks), shape.internet, shape.inet_sets, shape.covers))
    return tuple(out)


def _unit_facts(stage: LiveStage, k: int) -> tuple[bool, frozenset[AliasKey]]:
    """Whether unit `k` is plain (no CapGrants, via or autogroup:self) and its
    sources' keys: fixed for a policy, and read for ~400 units per join."""
    found = stage.unit_facts.get(k)
    if found is None:
        unit = stage.units[k]
        plain = not (unit.app or unit.via or any(is_self(d) for d in unit.destinations))
        found = stage.unit_facts[k] = (plain, frozenset(alias_key(a) for a in unit.sources))
    return found


def _put(items: tuple, slot: int, value: object) -> tuple:  # type: ignore[type-arg]
    """`items` with `value` in `slot` (one past the end: appended), in the fewest copies
    of a 10,000-slot tuple (one to append, two to replace)."""
    if slot == len(items):
        return items + (value,)  # noqa: RUF005 (the unpacked form copies twice)
    out = list(items)
    out[slot] = value
    return tuple(out)


def _own(stage: LiveStage, i: int, peers: int) -> tuple[object, ...]:
    """E's netmap content: its rest, its peers and how it sees the routed ones."""
    routed = tuple((p, stage.peer_view(i, p)) for p in sorted(stage.routed) if peers >> p & 1)
    return (*stage.rest(i), peers, routed)


def _row(stage: LiveStage, slot: int) -> dict[tuple[int, int], int]:
    return {k: v for k, v in stage.usable.items() if k[0] == slot}


def _row_flips(before: dict[tuple[int, int], int], after: dict[tuple[int, int], int]) -> int:
    flips = 0
    for k in set(before) | set(after):
        flips |= before.get(k, 0) ^ after.get(k, 0)
    return flips


def _texts(shapes: tuple[Shape, ...]) -> list[object]:
    return [s.key if isinstance(s, IpShape) else s.rule.src_ips for s in shapes]


def _same(a: tuple[IpShape, ...], b: tuple[IpShape, ...]) -> bool:
    """The same unit rules merged in the same order (their own content aside: a
    recompiled rule with unchanged SrcIPs is judged by its destinations)."""
    return len(a) == len(b) and all(x.pos == y.pos for x, y in zip(a, b, strict=True))


def _old_extras(stage: LiveStage, i: int, owner_rules: dict[str, list],  # type: ignore[type-arg]
                old_via: dict[int, list]) -> list:  # type: ignore[type-arg]
    """Node `i`'s own rules before the event (`owner_rules`: the owners it redid;
    `old_via`: the via rules as they were)."""
    owner = stage.r.nodes[i].owner
    own = (owner_rules[owner] if owner in owner_rules else stage.owner_rules.get(owner, [])
           ) if owner is not None else []
    via = old_via.get(i)
    return own + via if via else own


def _patch_resolver(r: Resolver, slot: int, o: Node, n: Node) -> None:
    """The resolver's node indexes with slot `slot` holding `n` instead of `o`."""
    r.nodes = _put(r.nodes, slot, n)
    r.node_addrs = _put(r.node_addrs, slot, AddressSet.of_addresses(n.ips))
    r.node_routes = _put(r.node_routes, slot, AddressSet.of_networks(n.routes))
    for node, add in ((o, False), (n, True)):
        lists = [r.by_tag[t] for t in node.tags]
        if node.tags:
            lists.append(r.tagged)
        elif node.user is not None:
            lists += [r.by_user[node.user], r.members]
        for items in lists:
            if add:
                bisect.insort(items, slot)
            else:
                items.remove(slot)
    # Only E's old and new tags and owners can have emptied (or been made, empty).
    for mapping, names in ((r.by_tag, (*o.tags, *n.tags)), (r.by_user, (o.user, n.user))):
        for name in names:
            if name in mapping and not mapping[name]:
                del mapping[name]
    index = r._address_index
    for node, add in ((o, False), (n, True)):
        for ip in node.ips:
            v6 = ip.version == 6
            keys = index.v6_keys if v6 else index.v4_keys
            nodes = index.v6_nodes if v6 else index.v4_nodes
            exact = index.v6_exact if v6 else index.v4_exact
            unique = index.v6_unique if v6 else index.v4_unique
            text = index.v6_text if v6 else index.v4_text
            a = int(ip)
            k = bisect.bisect_left(keys, a)
            while k < len(keys) and keys[k] == a and nodes[k] < slot:
                k += 1
            if add:
                keys.insert(k, a)
                nodes.insert(k, slot)
                if a not in exact:
                    bisect.insort(unique, a)
                    text[a] = str(ip)
                bisect.insort(exact[a], slot)
            else:
                del keys[k]
                del nodes[k]
                exact[a].remove(slot)
                if not exact[a]:
                    del exact[a]
                    del unique[bisect.bisect_left(unique, a)]
                    del text[a]
    index.unique = (len(index.v4_unique) == len(index.v4_keys)
                    and len(index.v6_unique) == len(index.v6_keys))
    # Per-node caches of this slot, and every cache keyed by a set (their answers
    # may name the slot): recomputed on demand.
    r._points4 = _put_list(r._points4, slot, tuple(int(a) for a in n.ips if a.version == 4))
    r._points6 = _put_list(r._points6, slot, tuple(int(a) for a in n.ips if a.version == 6))
    r._ip_parts = _put_list(r._ip_parts, slot, None)
    r._ip_texts = _put_list(r._ip_texts, slot, None)
    r._made_of = {}
    r._ordered_texts = None
    r._texts = {}
    r._nodes_in = {}


def _put_list(items: list, slot: int, value: object) -> list:  # type: ignore[type-arg]
    if slot == len(items):
        items.append(value)
    else:
        items[slot] = value
    return items


def _inside_range(addrs: AddressSet, points: list[tuple[int, bool]], limit: int) -> bool:
    """Is one of the points inside an interval of `addrs` longer than one address but
    short enough to be all node addresses (SrcIPs then lists it address by address, so
    its text depends on which of its addresses are nodes')?"""
    for point, v6 in points:
        family = addrs.v6 if v6 else addrs.v4
        k = bisect.bisect_right(family, (point, 1 << 130)) - 1
        if k >= 0 and family[k][0] <= point <= family[k][1] \
                and 0 < family[k][1] - family[k][0] <= limit:
            return True
    return False


def _patch_atoms(stage: LiveStage, slot: int, o: Node, n: Node
                 ) -> tuple[set[tuple[str, str]], set[int], int, set[int]]:
    """Patch every alias atom for E: (keys whose content or text changed, units whose
    own sets' text may change, nodes next to E's addresses in a changed set, ids of
    the atoms whose addresses, texts or node bits changed)."""
    r = stage.r
    bit = 1 << slot
    o_points = [(int(ip), ip.version == 6) for ip in o.ips]
    n_points = [(int(ip), ip.version == 6) for ip in n.ips]
    limit = 2 * len(r.nodes) + 2
    sends = AddressSet.of_addresses(n.ips)
    routes = r.node_routes[slot]
    changed: set[tuple[str, str]] = set()
    flipped: set[int] = set()
    near: tuple[list[Interval], list[Interval]] = ([], [])  # per family, merged once
    matcher = _matcher(stage)
    was, now = matcher.named(o, slot), matcher.named(n, slot)
    # An identity atom naming E neither before nor after keeps its set, texts and
    # (E routing nothing) E's bit clear: only E's atoms and the others are looked at.
    keys = stage.atoms.keys() if routes else (*(was | now), *matcher.others)
    for key in keys:
        atom = stage.atoms[key]
        alias = atom.alias
        member: bool | None = None
        if isinstance(alias, IPSetRef):
            r._cache.pop(key, None)
            addrs = r.alias(alias)
            if addrs != atom.addrs:
                atom.addrs = addrs
                atom.texts = atom.src_key = atom.parts = None
                stage._set_bits(atom)
                changed.add(key)
                flipped.add(id(atom))
                near[0].extend(addrs.v4)
                near[1].extend(addrs.v6)
                continue
            m_old = m_new = None  # not an identity alias: same addresses, maybe other text
        elif alias is not None:
            identity = key not in matcher.others
            m_old = (key in was) if identity else None
            m_new = (key in now) if identity else None
            if m_new is not None and not routes:  # addresses are unique: E's are in it iff
                member = bool(m_new and sends)     # the alias names E
        else:
            m_old = m_new = False
        if m_old is None:
            if _inside_range(atom.addrs, o_points + n_points, limit):
                atom.texts = atom.src_key = None
                changed.add(key)
        elif (m_old or m_new) and not (m_old and m_new and o.ips == n.ips):
            _edit_identity(atom, r, o_points if m_old else [], n_points if m_new else [], near)
            changed.add(key)
        if _set_bit(atom, bit, sends, routes, stage.exit_bits, member) or key in changed:
            flipped.add(id(atom))
    sensitive: set[int] = set()
    for k, atoms in stage.unit_anon.items():
        for atom in atoms:
            if _inside_range(atom.addrs, o_points + n_points, limit):
                sensitive.add(k)
                flipped.add(id(atom))
            if _set_bit(atom, bit, sends, routes, stage.exit_bits):
                flipped.add(id(atom))
    for atom in (stage.all_atom, stage.internet_atom):
        if _set_bit(atom, bit, sends, routes, stage.exit_bits):
            flipped.add(id(atom))
    region = AddressSet(merge(near[0]), merge(near[1]))
    return (changed, sensitive, bits_of(r.nodes_in(region) + r.routers_overlapping(region)),
            flipped)


def _edit_identity(atom: Atom, r: Resolver, removed: list[tuple[int, bool]],
                   added: list[tuple[int, bool]], near: tuple[list[Interval], list[Interval]]
                   ) -> None:
    """E's addresses out of (`removed`) and into (`added`) an identity alias's set,
    its SrcIPs texts and its DstPorts prefixes (those made), spliced locally; the
    intervals around each address before and after go to `near` (v4, v6)."""
    families, edits = atom.families(), list[PointEdit]()
    if removed:
        families = edit_families(families, removed, False, edits)
    if added:
        families = edit_families(families, added, True, edits)
    if atom.texts is not None:
        atom.texts = patch_texts(atom.texts, edits, r.texts)
        atom.src_key = SrcKey(atom.texts)
    if atom.parts is not None:
        atom.parts = patch_parts(*atom.parts, edits)
    atom.set_families(families)
    r._cache.pop(atom.key, None)  # the resolver reads the atom's set when asked
    r.kept[atom.key] = atom
    for edit in edits:
        near[1 if edit.v6 else 0].extend(edit.old_near)
        near[1 if edit.v6 else 0].extend(edit.new_near)


def _matcher(stage: LiveStage) -> AtomMatcher:
    """The stage's atom matcher, made again when the stage has new atoms."""
    matcher = stage.matcher
    if matcher is None or matcher.size != len(stage.atoms):
        matcher = stage.matcher = AtomMatcher(stage.atoms, stage.r)
    return matcher


def _set_bit(atom: Atom, bit: int, sends: AddressSet, routes: AddressSet, exits: int,
             member: bool | None = None) -> bool:
    """E's bit in the atom's node bitset (`member`: already known); whether it flipped."""
    if member is None:
        member = atom.addrs.overlaps(sends) or (bool(routes) and atom.addrs.overlaps(routes))
    bits = (atom.bits | bit) if member else (atom.bits & ~bit)
    if bits == atom.bits:
        return False
    atom.bits = bits
    atom.holders = bits | (exits if atom.internet else 0)
    return True


def _patch_via(stage: LiveStage, o: Node, n: Node, uc: UnitCompiler) -> int:
    """Redo the via units whose sources name E; the routers whose via rules changed.

    E routes nothing (`patchable`), so it serves no via grant and the routers each
    unit reaches, and what they serve, stay: only a unit's SrcIPs and its sources'
    bits (E's, in its edges) change. A router holding a unit whose SrcIPs changed
    now lists or drops E's addresses: its netmap differs."""
    r = stage.r
    addrs = AddressSet.of_addresses(o.ips) | AddressSet.of_addresses(n.ips)
    made = dict(stage.via_made)
    changed = 0
    for k, unit in enumerate(stage.units):
        if not unit.via:
            continue
        sources = [a for a in unit.sources if not is_self(a)]
        if not any(_names(a, o, n, addrs, r) for a in sources):
            continue
        for alias in sources:  # no atom keeps an alias only via grants name
            r._cache.pop(alias_key(alias), None)
        before = made.pop(k, None)
        after = stage.via_unit(k, uc, before)
        if after is not None:
            made[k] = after
        if (before and before.src_ips) != (after and after.src_ips) or (
                before and before.rules.keys()) != (after and after.rules.keys()):
            changed |= bits_of(before.rules if before else ()) | bits_of(
                after.rules if after else ())
    stage.via_made = made
    stage.join_via()
    stage.fixed_edges = stage.via_edges
    return changed


def _ssh_differs(old: SshCompiler, new: SshCompiler, i: int, touched: list[int],
                 memo: dict[tuple[int, int], tuple[object, object, bool]]) -> bool:
    """Whether node `i`'s SSH policy differs. The rules not re-resolved are the same
    objects before and after: if the re-resolved ones alone give `i` the same rules,
    so does the whole policy; only otherwise is it compared whole. Principal lists
    are shared by the destinations of a rule, so each pair is compared once (an
    autogroup:member rule lists thousands: compared per node, one 1k event took
    minutes)."""
    if not _rules_differ(old.for_node(i, touched), new.for_node(i, touched), memo):
        return False
    return _rules_differ(old.for_node(i), new.for_node(i), memo)


def _rules_differ(a: dict[str, Any], b: dict[str, Any],
                  memo: dict[tuple[int, int], tuple[object, object, bool]]) -> bool:
    ra, rb = a["rules"], b["rules"]
    if len(ra) != len(rb):
        return True
    for x, y in zip(ra, rb, strict=True):
        px, py = x["principals"], y["principals"]
        if px is not py:
            found = memo.get((id(px), id(py)))
            if found is None:  # keeps both lists alive: their ids stay theirs
                found = memo[(id(px), id(py))] = (px, py, px == py)
            if not found[2]:
                return True
        if x.keys() != y.keys() or any(x[k] != y[k] for k in x if k != "principals"):
            return True
    return False


def _patch_ssh(stage: LiveStage, o: Node, n: Node) -> tuple[int, list[int]]:
    """Re-resolve the SSH rules naming E; the slots whose SSH policy may differ.

    Beside a rule's destinations (they list its sources): with autogroup:self or a
    user as destination only the devices of E's owners (before and after) list
    principals of their owner's sources, and a localpart source that is no
    destination names only itself, so of the sources only E (not all of them: an
    allow-all tailnet's default SSH rule has every member device as a source) can
    differ there. (Before: the sources of self and localpart rules, and no owner's
    device for a user destination, whose SSH policy a retag can change alone.)"""
    policy, r = stage.policy, stage.r
    if not policy.ssh:
        return 0, []
    addrs = AddressSet.of_addresses(o.ips) | AddressSet.of_addresses(n.ips)
    fresh = copy.copy(stage.ssh)
    fresh.rules = list(stage.ssh.rules)
    owners = bits_of(i for x in {o.owner, n.owner} if x is not None
                     for i in r.by_user.get(x, ()))  # E itself is compared whole
    compare = 0
    touched: list[int] = []
    for k, rule in enumerate(policy.ssh):
        aliases = (*rule.sources, *rule.destinations, *rule.recorder)
        if not any(_names(a, o, n, addrs, r) for a in aliases):
            continue
        touched.append(k)
        before = fresh.rules[k]
        fresh.rules[k] = after = fresh._resolve(rule)
        for resolved in (before, after):
            compare |= bits_of(resolved.destinations) | owners
    stage.ssh = fresh
    return compare, touched


def _names(alias: object, o: Node, n: Node, addrs: AddressSet, r: Resolver) -> bool:
    if isinstance(alias, Wildcard):
        return True
    if isinstance(alias, AutoGroupRef) and alias.name == "autogroup:self":
        return False
    matched = [identity_match(alias, node, r) for node in (o, n)]  # type: ignore[arg-type]
    if matched[0] is None:
        return bool(r.alias(alias).overlaps(addrs))  # type: ignore[arg-type]
    return any(matched)


def _patch_usable(stage: LiveStage, slot: int) -> None:
    """E's bit in every usable route (E as a source), and E's own row if it routes."""
    usable = stage.usable
    bit = 1 << slot
    high = 2 * slot > len(stage.r.nodes)  # see `peers.HIGH`
    for key in list(usable):
        if key[0] == slot:
            del usable[key]
        elif (usable[key] >> slot & 1) if high else (usable[key] & bit):
            usable[key] &= ~bit
    routed_bits = bits_of(stage.routed)
    # Each router's routes as sets, made once: E is a source of thousands of edges
    # to single routers when the policy has via grants.
    route_sets: dict[int, list[AddressSet]] = {}
    for edge in stage.edges_of(slot):
        if not ((edge.src_bits >> slot & 1) if high else (edge.src_bits & bit)):
            continue
        reached = edge.dst_bits & routed_bits
        for p in ((reached.bit_length() - 1,) if reached & (reached - 1) == 0 and reached
                  else bits_to_indexes(reached)):
            if p == slot:
                continue
            node = stage.r.nodes[p]
            sets = route_sets.get(p)
            if sets is None:
                sets = route_sets[p] = [AddressSet.of_network(r) for r in node.routes]
            for k, one in enumerate(sets):
                if any(d.overlaps(one) for d in edge.dst):
                    usable[(p, k)] = usable.get((p, k), 0) | bit
            if node.exit_node and edge.internet:
                usable[(p, len(node.routes))] = usable.get((p, len(node.routes)), 0) | bit
    if slot in stage.routed:
        stage._usable_row(slot, usable)

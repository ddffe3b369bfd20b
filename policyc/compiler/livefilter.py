"""A node's packet filter from the index's rule table, reusing what was made for the
node's previous filter (for a caller that asks for each changed netmap after every
event: the control server, `PolicyIndex.build(..., reuse_filters=True)`).

On a dense tailnet a join changes ~every node's filter, yet for most of a node's
~40 rules only the sources change (the rule's source group gained the new node),
and remaking every filter from the table (`Table.filter_of`: each rule's DstPorts
entries bisected out of its blocks, the node's own autogroup:self rules merged
and reduced) was half of a join's server time. Here, per node, from the last
filter made for it while its view was the same object (an event replaces only
its own node's view, and a rebuild every view):

- a merged group's entries for the node, by the group's `Dests` object: the
  entries are a function of it and the view alone (`Dests.entries_of`), and a
  group remade under a new key with the same blocks and holders keeps it;
- the node's own rules merged and reduced, while they are the very same rules;
- the `FilterRule` made for a group, while its sources, entries and protocols
  are the very same objects: a caller that compares or hashes filters (control's
  digests and deltas) can go by identity for the rules that did not change.

The result equals `Table.filter_of` (the property test in tests/compiler/
test_livefilter.py runs random events and compares the two after each).
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import NamedTuple

from policyc.compiler.chunks import flat
from policyc.compiler.livetable import EXTRA, Dests, Group, MergeKey, Position, SrcKey, Table
from policyc.compiler.pernode import NodeView, _reduce_extra, entry_concerns, reduce_caps
from policyc.compiler.rules import Order, Rule, merge_rules
from policyc.netmap import FilterRule, NetPortRange

_PLACE = operator.itemgetter(0, 1)  # (order, position): unique per rule of a filter


class OwnRule(NamedTuple):
    """One of the node's own rules (merged as `merge_rules` does), reduced to it."""

    rule: Rule
    key: MergeKey | None  # what it merges into a shared group under (None: never)
    kept: tuple[NetPortRange, ...]  # its entries for the node, when merged into a group
    alone: FilterRule | None  # the rule reduced, when it stands alone (None: nothing)


@dataclass(frozen=True, slots=True)
class FilterMemo:
    """What one node's last filter was made of (valid while `view` is its view)."""

    view: NodeView
    entries: dict[Dests, tuple[NetPortRange, ...]]
    rules: dict[Dests, FilterRule]
    extras: tuple[Rule, ...]  # the node's own rules it was made for (held: compared by id)
    own: tuple[OwnRule, ...]


def memo_filter(table: Table, i: int, view: NodeView, extras: list[Rule],
                memo: FilterMemo | None) -> tuple[tuple[FilterRule, ...], FilterMemo]:
    """Node `i`'s filter (`Table.filter_of`), and the memo for its next one."""
    valid = memo is not None and memo.view is view
    old_entries = memo.entries if memo is not None and valid else {}
    old_rules = memo.rules if memo is not None and valid else {}
    if memo is not None and valid and _same_rules(memo.extras, extras):
        own = memo.own
    else:
        own = _own_rules(extras, view)
    bit = 1 << i
    ordinary = not view.routes and not view.is_exit
    chosen: dict[MergeKey, tuple[Group, tuple[NetPortRange, ...]]] = {}
    entries_by: dict[Dests, tuple[NetPortRange, ...]] = {}
    for group in table.groups:
        h = group.holders  # see `peers.HIGH`: the test reading fewer digits
        if not ((h >> i & 1) if 2 * i > h.bit_length() else (h & bit)):
            continue
        dests = group.dests
        entries = old_entries.get(dests)
        if entries is None:
            entries = tuple(dests.entries_of(bit, view, ordinary))
        entries_by[dests] = entries
        chosen[group.key] = (group, entries)
    # The node's own rules: merged into the shared group of their key (held or not:
    # `Table._rules` does the same), else alone after every shared rule.
    added: dict[MergeKey, tuple[list[NetPortRange], Order]] = {}
    items: list[tuple[Order, Position, FilterRule]] = []
    for k, mine in enumerate(own):
        merged = table.by_key.get(mine.key) if mine.key is not None else None
        if merged is None:
            if mine.alone is not None:
                items.append((mine.rule.order, (EXTRA, k), mine.alone))
        elif mine.kept:
            if merged.key not in chosen:
                chosen[merged.key] = (merged, ())
            more, order = added.get(merged.key, ([], merged.first.order))
            more.extend(mine.kept)
            added[merged.key] = (more, min(order, mine.rule.order))
    rules_by: dict[Dests, FilterRule] = {}
    for key, (group, entries) in chosen.items():
        first = group.first
        extra = added.get(key)
        if extra is not None:
            items.append((extra[1], first.pos,
                          FilterRule(flat(first.src_ips), entries + tuple(extra[0]), key[1])))
            continue
        if not entries:
            continue
        src = flat(first.src_ips)
        rule = old_rules.get(group.dests)
        if rule is None or rule.src_ips is not src or rule.dst_ports is not entries \
                or rule.ip_proto != key[1]:
            rule = FilterRule(src, entries, key[1])
        rules_by[group.dests] = rule
        items.append((first.order, first.pos, rule))
    for cap, holders in zip(table.caps, table.cap_holders, strict=True):
        if holders & bit:
            reduced = reduce_caps(cap.rule.caps, view)
            if reduced:
                items.append((cap.rule.order, cap.pos, cap.rule.to_wire(caps=reduced)))
    items.sort(key=_PLACE)
    made = tuple(rule for _, _, rule in items)
    return made, FilterMemo(view, entries_by, rules_by, tuple(extras), own)


def _same_rules(a: tuple[Rule, ...], b: list[Rule]) -> bool:
    return len(a) == len(b) and all(map(operator.is_, a, b))


def _own_rules(extras: list[Rule], view: NodeView) -> tuple[OwnRule, ...]:
    """The node's own rules merged, each reduced to the node both ways it may be
    used (merged into a shared group, or alone), as `Table._rules` reduces them."""
    out: list[OwnRule] = []
    for rule in merge_rules(extras):
        if rule.merge_key is None:  # CapGrant rules: never merged
            out.append(OwnRule(rule, None, (), _reduce_extra(rule, view)))
            continue
        # `_reduce_extra`, with the entries reduced once for both uses.
        entries = [e for e in rule.dst if entry_concerns(e.addrs, view)]
        out.append(OwnRule(rule, (SrcKey(rule.src_ips), rule.proto),
                           tuple(e.to_wire() for e in entries),
                           rule.to_wire(dst=entries) if entries else None))
    return tuple(out)

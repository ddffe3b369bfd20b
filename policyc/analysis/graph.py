"""`policyc graph`: who can reach what, as one self-contained HTML page.

Columns are destinations (tags, hosts, autogroup:member/tagged/internet); rows
are sources (groups, users, tags), and sources whose every cell is the same
share one row (on the sample, `group:dev` with `alice@` and `bob@`). Each cell
holds the protocols and ports the row may open towards the column and the
rules that allow them. A cell follows `explain ROW COL[:PORT]`: `full` is what
EVERY address of the row may open to SOME address of the column that a node
delivers (explain's ALLOWED), `some` what at least one address of the row may
(explain's "allowed from").

The cells are exact, not sampled, and computed per class, not per pair
(graph_classes.py). A page stores each rule once, and a cell's rules as the
union of what the boxes' sources touching its row allow towards its column,
so its size follows rows x (columns + sources) + rules, not cells x rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from policyc.analysis.access import AliasSets, policy_access
from policyc.analysis.atoms import bits
from policyc.analysis.diff import rule_label
from policyc.analysis.graph_classes import Reach, RowReach
from policyc.analysis.reference import RuleRef
from policyc.analysis.services import EMPTY_SERVICES, Services
from policyc.analysis.testrunner import synthetic_inventory
from policyc.compiler.addrset import AddressSet
from policyc.compiler.internet import INTERNET
from policyc.compiler.nodes import Inventory
from policyc.policy.model import AutoGroupRef, GroupRef, HostRef, Policy, TagRef, UserRef

RULE_TEXT_LIMIT = 400  # characters of a rule's text the page keeps (a rule can be huge)


@dataclass(frozen=True, slots=True)
class Cell:
    full: Services  # every source address may open these to some destination address
    some: Services  # at least one source address may
    rule_mask: int  # bit k: AccessMap.rules[k] allows some of it


@dataclass(frozen=True, slots=True)
class Endpoint:
    name: str
    kind: str  # group | user | tag | host | autogroup
    addrs: AddressSet
    nodes: int


@dataclass(frozen=True, slots=True)
class AccessMap:
    rows: tuple[tuple[Endpoint, ...], ...]  # sources with equal cells share a row
    columns: tuple[Endpoint, ...]
    cells: dict[tuple[int, int], Cell]  # only cells where something is allowed
    rules: tuple[RuleRef, ...]  # each rule once (by section and index), in policy order
    row_sources: tuple[tuple[int, ...], ...]  # per row, the boxes' sources touching it
    source_rules: tuple[dict[int, int], ...]  # per source, column -> rule mask
    synthetic: bool
    policy_name: str

    def cell_rules(self, cell: Cell) -> tuple[RuleRef, ...]:
        return tuple(self.rules[k] for k in bits(cell.rule_mask))

    def to_json(self) -> dict[str, Any]:
        """The page's data. Cells are `[row, col, full, some]`, `full` and `some`
        indexes into `services`. A cell's rules are not stored with it: they are the
        union over its row's sources of `sourceRules[source][col]`, an index into
        `ruleLists`, whose entries index `rules` (so the page is O(rows x sources +
        sources x columns + rules), not O(cells x rules)). A row's sources, ascending,
        are written as gaps (`rowSources`: the first, then each minus the one before):
        a user's hundred groups are small numbers apart."""
        services: dict[Services, int] = {EMPTY_SERVICES: 0}
        cells = [[r, c, services.setdefault(cell.full, len(services)),
                  services.setdefault(cell.some, len(services))]
                 for (r, c), cell in sorted(self.cells.items())]
        lists: dict[int, int] = {}
        source_rules = [{str(c): lists.setdefault(mask, len(lists)) for c, mask in by_col.items()}
                        for by_col in self.source_rules]
        return {
            "policy": self.policy_name, "synthetic": self.synthetic,
            "rows": [[_endpoint_json(e) for e in row] for row in self.rows],
            "columns": [_endpoint_json(e) for e in self.columns],
            "services": [{"text": s.text() if s else "", "ranges": _ranges(s)}
                         for s in services],
            "rules": [_rule_json(ref) for ref in self.rules],
            "ruleLists": [list(bits(mask)) for mask in lists],
            "rowSources": [_gaps(sources) for sources in self.row_sources],
            "sourceRules": source_rules,
            "cells": cells,
        }


def _gaps(ascending: tuple[int, ...]) -> list[int]:
    return [b - a for a, b in zip((0, *ascending), ascending, strict=False)]


def _endpoint_json(e: Endpoint) -> dict[str, Any]:
    return {"name": e.name, "kind": e.kind, "nodes": e.nodes}


def _rule_json(ref: RuleRef) -> dict[str, Any]:
    text = ref.describe() if ref.kind == "default" else " ".join(ref.text.split())
    if len(text) > RULE_TEXT_LIMIT:
        text = text[:RULE_TEXT_LIMIT - 1] + "…"
    return {"kind": ref.kind, "index": ref.index, "location": ref.location(),
            "label": rule_label(ref), "text": text}


def _ranges(services: Services) -> dict[str, list[list[int]]]:
    return {str(p): [[r.first, r.last] for r in ranges]
            for p, ranges in services.by_protocol().items()}


def access_map(policy: Policy, inventory: Inventory | None) -> AccessMap:
    nodes = synthetic_inventory(policy) if inventory is None else inventory
    sets = AliasSets(policy, nodes)
    boxes = policy_access(policy, nodes, sets).boxes
    delivered = sets.delivered()
    endpoints = _rows(policy, sets)
    columns = _columns(policy, sets)
    reach = Reach(boxes, [e.addrs for e in endpoints], [c.addrs & delivered for c in columns])
    by_cells: dict[RowReach, list[Endpoint]] = {}
    for endpoint in endpoints:  # equal cells: one row, named by its first source
        by_cells.setdefault(reach.row(endpoint.addrs), []).append(endpoint)
    cells: dict[tuple[int, int], Cell] = {}
    for r, row in enumerate(by_cells):
        for c, (full, some, rules) in enumerate(row):
            if rules:
                cells[(r, c)] = Cell(reach.services(full), reach.services(some), rules)
    rows = tuple(tuple(e) for e in by_cells.values())
    return AccessMap(rows, columns, cells, reach.rules,
                     tuple(reach.sources(row[0].addrs) for row in rows),
                     tuple(reach.source_rules()), inventory is None, policy.source.name)


def _endpoint(sets: AliasSets, name: str, kind: str, addrs: AddressSet) -> Endpoint | None:
    count = len(sets.resolver.nodes_in(addrs))
    return Endpoint(name, kind, addrs, count) if addrs else None


def _rows(policy: Policy, sets: AliasSets) -> tuple[Endpoint, ...]:
    found = [_endpoint(sets, g, "group", sets.source(GroupRef(g))) for g in sorted(policy.groups)]
    found += [_endpoint(sets, u, "user", sets.source(UserRef(u))) for u in sorted(sets.owned)]
    found += [_endpoint(sets, t, "tag", sets.source(TagRef(t)))
              for t in sorted(set(policy.tag_owners) | set(sets.tagged))]
    return tuple(e for e in found if e is not None)


def _columns(policy: Policy, sets: AliasSets) -> tuple[Endpoint, ...]:
    found = [_endpoint(sets, t, "tag", sets.source(TagRef(t)))
             for t in sorted(set(policy.tag_owners) | set(sets.tagged))]
    found += [_endpoint(sets, h, "host", sets.source(HostRef(h))) for h in sorted(policy.hosts)]
    found += [_endpoint(sets, a, "autogroup", sets.destination(AutoGroupRef(a)))
              for a in ("autogroup:member", "autogroup:tagged")]
    found.append(Endpoint("autogroup:internet", "autogroup", INTERNET, 0))
    return tuple(e for e in found if e is not None)

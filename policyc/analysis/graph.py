"""`policyc graph`: who can reach what, as one self-contained HTML page.

Rows are sources (groups, users, tags), columns destinations (tags, hosts,
autogroup:member/tagged/internet); each cell holds the protocols and ports
the row may open towards the column and the rules that allow them. A cell
follows `explain ROW COL[:PORT]`: `full` is what EVERY address of the row may
open to SOME address of the column that a node delivers (explain's ALLOWED),
`some` what at least one address of the row may (explain's "allowed from").
Both come from the policy's boxes (access.py) by the same source-class split
as the diff, so they are exact, not sampled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from policyc.analysis.access import AliasSets, Box, policy_access
from policyc.analysis.atoms import sweep
from policyc.analysis.diff import rule_json
from policyc.analysis.reference import RuleRef
from policyc.analysis.services import EMPTY_SERVICES, Services
from policyc.analysis.testrunner import synthetic_inventory
from policyc.compiler.addrset import AddressSet
from policyc.compiler.internet import INTERNET
from policyc.compiler.nodes import Inventory
from policyc.policy.model import AutoGroupRef, GroupRef, HostRef, Policy, TagRef, UserRef


@dataclass(frozen=True, slots=True)
class Cell:
    full: Services  # every source address may open these to some destination address
    some: Services  # at least one source address may
    rules: tuple[RuleRef, ...]


@dataclass(frozen=True, slots=True)
class Endpoint:
    name: str
    kind: str  # group | user | tag | host | autogroup
    addrs: AddressSet
    nodes: int


@dataclass(frozen=True, slots=True)
class AccessMap:
    rows: tuple[Endpoint, ...]
    columns: tuple[Endpoint, ...]
    cells: dict[tuple[int, int], Cell]  # only cells where something is allowed
    synthetic: bool
    policy_name: str

    def to_json(self) -> dict[str, Any]:
        def endpoint(e: Endpoint) -> dict[str, Any]:
            return {"name": e.name, "kind": e.kind, "nodes": e.nodes}

        return {
            "policy": self.policy_name, "synthetic": self.synthetic,
            "rows": [endpoint(e) for e in self.rows],
            "columns": [endpoint(e) for e in self.columns],
            "cells": [{"row": r, "col": c, "full": cell.full.text() if cell.full else "",
                       "some": cell.some.text(), "fullSet": _ranges(cell.full),
                       "someSet": _ranges(cell.some),
                       "rules": [rule_json(ref) for ref in cell.rules]}
                      for (r, c), cell in sorted(self.cells.items())],
        }


def _ranges(services: Services) -> dict[str, list[list[int]]]:
    return {str(p): [[r.first, r.last] for r in ranges]
            for p, ranges in services.by_protocol().items()}


def access_map(policy: Policy, inventory: Inventory | None) -> AccessMap:
    nodes = synthetic_inventory(policy) if inventory is None else inventory
    sets = AliasSets(policy, nodes)
    boxes = policy_access(policy, nodes).boxes
    delivered = sets.delivered()
    rows = _rows(policy, sets)
    columns = _columns(policy, sets)
    targets = [c.addrs & delivered for c in columns]
    cells: dict[tuple[int, int], Cell] = {}
    for r, row in enumerate(rows):
        for c, cell in _row_cells(row.addrs, boxes, targets).items():
            cells[(r, c)] = cell
    return AccessMap(rows, columns, cells, inventory is None, policy.source.name)


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


def _row_cells(row: AddressSet, boxes: tuple[Box, ...],
               targets: list[AddressSet]) -> dict[int, Cell]:
    """Split the row's addresses by which boxes cover them; a column's `full` is
    what every such class reaches, its `some` what any class does.

    Boxes are grouped by their source set (a dense policy has ~18,000 boxes over
    ~250 sources): intersections, the sweep and the unions run per distinct source,
    and per distinct set of reaching sources a class holds (set algebra: same cells)."""
    touching = {s: s.overlaps(row) for s in dict.fromkeys(b.src for b in boxes)}
    mine = [b for b in boxes if touching[b.src]]
    srcs = list(dict.fromkeys(b.src for b in mine))
    src_id = {s: k for k, s in enumerate(srcs)}
    inputs = [row] + [s & row for s in srcs]
    classes: set[frozenset[int]] = set()
    for family in ("v4", "v6"):
        for members, _, _ in sweep([getattr(s, family) for s in inputs]):
            if 0 in members:
                classes.add(frozenset(m - 1 for m in members if m))
    out: dict[int, Cell] = {}
    for c, target in enumerate(targets):
        reaching = [b for b in mine if b.dst.overlaps(target)]
        if not reaching:
            continue
        by_src: dict[int, Services] = {}
        for b in reaching:
            k = src_id[b.src]
            by_src[k] = by_src[k] | b.services if k in by_src else b.services
        full: Services | None = None
        some = EMPTY_SERVICES
        for held in {members.intersection(by_src) for members in classes}:
            reached = EMPTY_SERVICES
            for k in held:
                reached = reached | by_src[k]
            some = some | reached
            full = reached if full is None else full & reached
        rules = tuple(dict.fromkeys(b.rule for b in reaching))
        out[c] = Cell(full or EMPTY_SERVICES, some, rules)
    return out

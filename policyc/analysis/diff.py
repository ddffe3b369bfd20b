"""Semantic policy diff: the access a change gains and loses, not the lines it moves.

Library API (the CLI's `policyc diff` and `policyc apply` both use it):

    from policyc.analysis.diff import access_diff, render_text, render_markdown
    diff = access_diff(old_policy, new_policy, inventory)   # inventory may be None
    diff.changed            # False when both allow exactly the same packets
    render_text(diff)       # "+ group:dev gained tag:prod tcp/5432 (3 nodes) ..."
    render_markdown(diff)   # a pull-request comment
    diff.to_json()          # plain JSON-able data

`old_policy` and `new_policy` are loaded `Policy` objects (e.g. from
`policyc.policy.load.load_policy_text`); the caller checks their diagnostics.
Without an inventory both are compared over the synthetic tailnet `check`
uses (one node per user and per tag either policy mentions); with one, the
diff also lists the changes node by node.

Access means what the rules permit, as `tests` judge it (see `access.py`):
a packet is in `gained` exactly when NEW allows it and OLD does not, which
tests/analysis/test_diff.py checks against the reference evaluator on
random policy pairs and packets. The computation is exact set arithmetic
(`region.py`), not sampling.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from policyc.analysis.access import AliasSets, policy_access
from policyc.analysis.naming import Name, Namer
from policyc.analysis.reference import RuleRef
from policyc.analysis.region import Piece, subtract
from policyc.analysis.services import Services
from policyc.analysis.testrunner import synthetic_inventory
from policyc.compiler.addrset import AddressSet, merge, union_all
from policyc.compiler.nodes import Inventory
from policyc.policy.model import IPAddress, Policy

Kind = Literal["gained", "lost"]


@dataclass(frozen=True, slots=True)
class Change:
    """`who` gained (or lost) `what` towards `where`, because of `rules`."""

    kind: Kind
    src: AddressSet
    dst: AddressSet
    services: Services
    rules: tuple[RuleRef, ...]  # rules of NEW (gained) or OLD (lost) that allow it
    who: Name
    where: Name

    def contains(self, src: IPAddress, dst: IPAddress, proto: int, port: int | None) -> bool:
        return src in self.src and dst in self.dst and self.services.contains(proto, port)

    def summary(self) -> str:
        """`group:dev gained tag:prod tcp/5432 (3 nodes)`."""
        count = len(self.where.nodes)
        nodes = f" ({count} node{'s' if count != 1 else ''})" if count else ""
        return f"{self.who} {self.kind} {self.where} {self.services}{nodes}"

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "who": self.who.text, "where": self.where.text,
            "services": self.services.text(), "protocols": self.services.to_json(),
            "src": self.src.texts(), "dst": self.dst.texts(),
            "src_nodes": list(self.who.nodes), "dst_nodes": list(self.where.nodes),
            "rules": [rule_json(r) for r in self.rules],
        }


@dataclass(frozen=True, slots=True)
class NodeChanges:
    """The changes one node of the inventory takes part in."""

    node: str
    inbound: tuple[Change, ...]  # the node is among the destinations
    outbound: tuple[Change, ...]  # the node is among the sources


@dataclass(frozen=True, slots=True)
class AccessDiff:
    gained: tuple[Change, ...]
    lost: tuple[Change, ...]
    synthetic: bool  # compared over the synthetic inventory (no --nodes)
    node_count: int
    per_node: tuple[NodeChanges, ...] = ()  # only with a real inventory

    @property
    def changed(self) -> bool:
        return bool(self.gained or self.lost)

    def gains(self, src: IPAddress, dst: IPAddress, proto: int, port: int | None) -> bool:
        """Does NEW allow this packet while OLD does not?"""
        return any(c.contains(src, dst, proto, port) for c in self.gained)

    def loses(self, src: IPAddress, dst: IPAddress, proto: int, port: int | None) -> bool:
        return any(c.contains(src, dst, proto, port) for c in self.lost)

    def to_json(self) -> dict[str, Any]:
        return {
            "changed": self.changed,
            "inventory": "synthetic" if self.synthetic else "given",
            "nodes": self.node_count,
            "gained": [c.to_json() for c in self.gained],
            "lost": [c.to_json() for c in self.lost],
            "per_node": [{"node": n.node,
                          "inbound": [_node_entry(c) for c in n.inbound],
                          "outbound": [_node_entry(c) for c in n.outbound]}
                         for n in self.per_node],
        }


def rule_json(ref: RuleRef) -> dict[str, Any]:
    return {"kind": ref.kind, "index": ref.index, "location": ref.location(),
            "label": rule_label(ref)}


def rule_label(ref: RuleRef) -> str:
    return "default allow-all" if ref.kind == "default" else f"{ref.kind}s[{ref.index}]"


def _node_entry(change: Change) -> dict[str, Any]:
    return {"kind": change.kind, "who": change.who.text, "where": change.where.text,
            "services": change.services.text()}


def access_diff(old: Policy, new: Policy, inventory: Inventory | None = None) -> AccessDiff:
    """What `new` allows that `old` does not (gained), and the reverse (lost)."""
    synthetic = inventory is None
    nodes = synthetic_inventory(old, new) if inventory is None else inventory
    old_sets = AliasSets(old, nodes)
    new_sets = old_sets.with_policy(new)
    old_access = policy_access(old, nodes, old_sets)
    new_access = policy_access(new, nodes, new_sets)
    gained = _changes("gained", subtract(new_access.boxes, old_access.boxes), Namer(new_sets))
    lost = _changes("lost", subtract(old_access.boxes, new_access.boxes), Namer(old_sets))
    per_node = () if synthetic else _per_node(gained + lost)
    return AccessDiff(gained, lost, synthetic, len(nodes), per_node)


# --- shaping pieces into readable changes ------------------------------------------------


def _changes(kind: Kind, pieces: list[Piece], namer: Namer) -> tuple[Change, ...]:
    merged = _merge(pieces)
    out = [Change(kind, p.src, p.dst, p.services, p.rules, namer.name(p.src),
                  namer.name(p.dst)) for p in merged]
    out.sort(key=lambda c: (c.who.text, c.where.text, c.services.intervals))
    return tuple(out)


def _merge(pieces: list[Piece]) -> list[Piece]:
    """Join pieces that share two of the three axes; the union stays exactly the same."""
    pieces = _join(pieces, lambda p: (p.dst, p.services), _with_src)
    pieces = _join(pieces, lambda p: (p.src, p.services), _with_dst)
    return _join(pieces, lambda p: (p.src, p.dst), _with_services)


def _join(pieces: list[Piece], key: Callable[[Piece], Hashable],
          combine: Callable[[Sequence[Piece]], Piece]) -> list[Piece]:
    groups: dict[Hashable, list[Piece]] = {}
    for piece in pieces:
        groups.setdefault(key(piece), []).append(piece)
    return [group[0] if len(group) == 1 else combine(group) for group in groups.values()]


def _rules(group: Sequence[Piece]) -> tuple[RuleRef, ...]:
    out: list[RuleRef] = []
    for piece in group:
        out.extend(r for r in piece.rules if r not in out)
    return tuple(sorted(out, key=lambda r: (r.kind, r.index, r.entry)))


def _with_src(group: Sequence[Piece]) -> Piece:
    first = group[0]
    return Piece(union_all(p.src for p in group), first.dst, first.services, _rules(group))


def _with_dst(group: Sequence[Piece]) -> Piece:
    first = group[0]
    return Piece(first.src, union_all(p.dst for p in group), first.services, _rules(group))


def _with_services(group: Sequence[Piece]) -> Piece:
    first = group[0]
    services = Services(merge(i for p in group for i in p.services.intervals))
    return Piece(first.src, first.dst, services, _rules(group))


def _per_node(changes: tuple[Change, ...]) -> tuple[NodeChanges, ...]:
    inbound: dict[str, list[Change]] = {}
    outbound: dict[str, list[Change]] = {}
    for change in changes:
        for name in change.where.nodes:
            inbound.setdefault(name, []).append(change)
        for name in change.who.nodes:
            outbound.setdefault(name, []).append(change)
    return tuple(NodeChanges(name, tuple(inbound.get(name, ())), tuple(outbound.get(name, ())))
                 for name in sorted(set(inbound) | set(outbound)))


# The renderers live in diff_render.py; re-exported so callers need one import.
from policyc.analysis.diff_render import render_json, render_markdown, render_text  # noqa: E402

__all__ = ["AccessDiff", "Change", "NodeChanges", "access_diff", "render_json",
           "render_markdown", "render_text"]

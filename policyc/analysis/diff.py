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

from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from policyc.analysis.access import AliasSets, policy_access
from policyc.analysis.atoms import Atoms
from policyc.analysis.naming import Name, Namer
from policyc.analysis.reference import RuleRef
from policyc.analysis.region import MaskPiece, operands, subtract_operands
from policyc.analysis.services import Services
from policyc.analysis.testrunner import synthetic_inventory
from policyc.compiler.addrset import AddressSet, merge
from policyc.compiler.nodes import Inventory
from policyc.policy.model import IPAddress, Policy

Kind = Literal["gained", "lost"]


@dataclass(frozen=True, slots=True)
class Change:
    """`who` gained (or lost) `what` towards `where`, because of `rules`.

    The exact addresses are kept as masks over the diff's atoms and made into
    `AddressSet`s (`src`, `dst`) only when asked: a text or Markdown report
    needs the names alone, and a big diff has millions of node addresses."""

    kind: Kind
    src_atoms: int  # the sources, as a mask over `atoms`
    dst_atoms: int
    services: Services
    rules: tuple[RuleRef, ...]  # rules of NEW (gained) or OLD (lost) that allow it
    who: Name
    where: Name
    atoms: Atoms = field(repr=False, compare=False)

    @property
    def src(self) -> AddressSet:
        return self.atoms.to_set(self.src_atoms)

    @property
    def dst(self) -> AddressSet:
        return self.atoms.to_set(self.dst_atoms)

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
            "per_node": self._per_node_json(),
        }

    def _per_node_json(self) -> list[dict[str, Any]]:
        # One entry object per change, shared by every node it concerns: a big diff
        # lists each change under thousands of nodes.
        entries: dict[int, dict[str, Any]] = {}

        def entry(change: Change) -> dict[str, Any]:
            found = entries.get(id(change))
            if found is None:
                found = entries[id(change)] = _node_entry(change)
            return found

        return [{"node": n.node, "inbound": [entry(c) for c in n.inbound],
                 "outbound": [entry(c) for c in n.outbound]} for n in self.per_node]


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
    old_access = policy_access(old, nodes, old_sets)
    old_namer = Namer(old_sets)
    # Made after old's sets are: it keeps those that mean the same in `new` (every
    # identity but a changed group), so a small edit does not re-make them all.
    new_sets = old_sets.with_policy(new)
    new_access = policy_access(new, nodes, new_sets)
    # One partition of the address space for both directions and the naming, made of
    # the boxes the subtractions will look at (few, for a small change).
    gaining = operands(new_access.boxes, old_access.boxes)
    losing = operands(old_access.boxes, new_access.boxes)
    atoms = Atoms(s for boxes in (*gaining, *losing) for box in boxes for s in (box.src, box.dst))
    gained = _changes("gained", subtract_operands(*gaining, atoms), Namer(new_sets))
    lost = _changes("lost", subtract_operands(*losing, atoms), old_namer)
    per_node = () if synthetic else _per_node(gained + lost)
    return AccessDiff(gained, lost, synthetic, len(nodes), per_node)


# --- shaping pieces into readable changes ------------------------------------------------


def _changes(kind: Kind, found: tuple[Atoms, list[MaskPiece]] | None,
             namer: Namer) -> tuple[Change, ...]:
    if found is None:
        return ()
    atoms, pieces = found
    merged = _merge(pieces)
    out = [Change(kind, p.src, p.dst, p.services, p.rules, namer.name_mask(p.src, atoms),
                  namer.name_mask(p.dst, atoms), atoms)
           for p in merged]
    out.sort(key=lambda c: (c.who.text, c.where.text, c.services.intervals))
    return tuple(out)


def _merge(pieces: list[MaskPiece]) -> list[MaskPiece]:
    """Join pieces that share two of the three axes; the union stays exactly the same
    (addresses are atom masks: a union is an or)."""
    pieces = _join(pieces, lambda p: (p.dst, p.services), _with_src)
    pieces = _join(pieces, lambda p: (p.src, p.services), _with_dst)
    return _join(pieces, lambda p: (p.src, p.dst), _with_services)


def _join(pieces: list[MaskPiece], key: Callable[[MaskPiece], Hashable],
          combine: Callable[[Sequence[MaskPiece]], MaskPiece]) -> list[MaskPiece]:
    groups: dict[Hashable, list[MaskPiece]] = {}
    for piece in pieces:
        groups.setdefault(key(piece), []).append(piece)
    return [group[0] if len(group) == 1 else combine(group) for group in groups.values()]


def _rules(group: Sequence[MaskPiece]) -> tuple[RuleRef, ...]:
    out: list[RuleRef] = []
    for piece in group:
        out.extend(r for r in piece.rules if r not in out)
    return tuple(sorted(out, key=lambda r: (r.kind, r.index, r.entry)))


def _with_src(group: Sequence[MaskPiece]) -> MaskPiece:
    first = group[0]
    return MaskPiece(_or(p.src for p in group), first.dst, first.services, _rules(group))


def _with_dst(group: Sequence[MaskPiece]) -> MaskPiece:
    first = group[0]
    return MaskPiece(first.src, _or(p.dst for p in group), first.services, _rules(group))


def _with_services(group: Sequence[MaskPiece]) -> MaskPiece:
    first = group[0]
    services = Services(merge(i for p in group for i in p.services.intervals))
    return MaskPiece(first.src, first.dst, services, _rules(group))


def _or(masks: Iterable[int]) -> int:
    out = 0
    for mask in masks:
        out |= mask
    return out


def _per_node(changes: tuple[Change, ...]) -> tuple[NodeChanges, ...]:
    inbound: defaultdict[str, list[Change]] = defaultdict(list)
    outbound: defaultdict[str, list[Change]] = defaultdict(list)
    to_node, from_node = inbound.__getitem__, outbound.__getitem__
    for change in changes:
        for name in change.where.nodes:
            to_node(name).append(change)
        for name in change.who.nodes:
            from_node(name).append(change)
    return tuple(NodeChanges(name, tuple(inbound.get(name, ())), tuple(outbound.get(name, ())))
                 for name in sorted(set(inbound) | set(outbound)))


# The renderers live in diff_render.py; re-exported so callers need one import.
from policyc.analysis.diff_render import render_json, render_markdown, render_text  # noqa: E402

__all__ = ["AccessDiff", "Change", "NodeChanges", "access_diff", "render_json",
           "render_markdown", "render_text"]

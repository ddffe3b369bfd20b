"""The rule IR: unreduced filter rules with their address sets and spans.

A `Rule` is one `tailcfg.FilterRule` before per-node reduction, carrying the
parsed address sets next to the wire text so reduction and peer computation
never re-parse strings, and the span of the policy rule it came from.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from policyc.compiler.addrset import AddressSet, union_all
from policyc.diagnostics.source import NO_SPAN, Span
from policyc.netmap import CapGrant, FilterRule, NetPortRange, PortRange
from policyc.policy.model import IPNetwork

# Capabilities for which Tailscale adds a reversed companion rule.
COMPANION_CAPS: dict[str, str] = {
    "tailscale.com/cap/drive": "tailscale.com/cap/drive-sharer",
    "tailscale.com/cap/relay": "tailscale.com/cap/relay-target",
}

Order = tuple[int, int]  # (policy unit index, sequence within the unit)


@dataclass(frozen=True, slots=True)
class DstEntry:
    """One `DstPorts` entry: wire text, its addresses, one port range."""

    ip: str
    addrs: AddressSet
    ports: PortRange

    def to_wire(self) -> NetPortRange:
        return NetPortRange(self.ip, self.ports)


@dataclass(frozen=True, slots=True)
class CapEntry:
    """One `CapGrant`: destination prefixes and the capability map."""

    prefixes: tuple[IPNetwork, ...]
    cap_map: tuple[tuple[str, Any], ...]
    # The set the prefixes cover, when the maker has it (a tag's few hundred
    # node addresses are otherwise remade from their prefixes on every read).
    known: AddressSet | None = field(default=None, compare=False, repr=False)

    @property
    def addrs(self) -> AddressSet:
        return self.known if self.known is not None else AddressSet.of_networks(self.prefixes)

    def to_wire(self) -> CapGrant:
        return CapGrant(tuple(str(p) for p in self.prefixes), self.cap_map)


@dataclass(frozen=True, slots=True)
class Rule:
    """An unreduced filter rule.

    `src` is the meaning of `src_ips`; `internet` records an
    `autogroup:internet` destination, which has no `DstPorts` entry but makes
    exit nodes reachable (peers).
    """

    src_ips: tuple[str, ...]
    src: AddressSet
    order: Order
    dst: tuple[DstEntry, ...] = ()
    proto: tuple[int, ...] = ()
    caps: tuple[CapEntry, ...] = ()
    internet: bool = False
    span: Span = NO_SPAN
    # Sets whose union is the DstPorts entries' addresses, when the maker knows
    # them (the destination aliases' sets): unioning thousands of one-prefix sets
    # is slow, and the peer graph only needs each set's nodes.
    dst_sets: tuple[AddressSet, ...] | None = field(default=None, compare=False, repr=False)

    @property
    def merge_key(self) -> tuple[tuple[str, ...], tuple[int, ...]] | None:
        """Rules with equal SrcIPs and IPProto merge; CapGrant rules never do."""
        return None if self.caps else (self.src_ips, self.proto)

    @property
    def dst_addrs(self) -> AddressSet:
        if self.dst_sets is not None and not self.caps:
            return union_all(self.dst_sets)
        return union_all([e.addrs for e in self.dst] + [c.addrs for c in self.caps])

    def to_wire(self, dst: Iterable[DstEntry] | None = None,
                caps: Iterable[CapEntry] | None = None) -> FilterRule:
        entries = self.dst if dst is None else tuple(dst)
        cap_entries = self.caps if caps is None else tuple(caps)
        return FilterRule(
            src_ips=self.src_ips,
            dst_ports=tuple(e.to_wire() for e in entries),
            ip_proto=self.proto,
            cap_grant=tuple(c.to_wire() for c in cap_entries),
            src_ranges=(self.src.v4, self.src.v6),  # `src` is what `src_ips` means
        )


def merge_rules(rules: Iterable[Rule]) -> list[Rule]:
    """Tailscale's merge: same SrcIPs and IPProto -> one rule, DstPorts appended.

    The merged rule sits where its first part was; DstPorts keep duplicates.
    """
    out: list[Rule] = []
    where: dict[object, int] = {}
    for rule in rules:
        key = rule.merge_key
        if key is None or key not in where:
            if key is not None:
                where[key] = len(out)
            out.append(rule)
            continue
        first = out[where[key]]
        out[where[key]] = Rule(
            first.src_ips, first.src, first.order, first.dst + rule.dst, first.proto,
            internet=first.internet or rule.internet, span=first.span,
            dst_sets=(first.dst_sets + rule.dst_sets
                      if first.dst_sets is not None and rule.dst_sets is not None else None),
        )
    return out


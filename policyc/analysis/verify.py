"""`policyc verify`: assertions proven over every packet, or one counterexample.

Each assertion (assertions.py) is a question about the policy's boxes
(access.py) answered by set arithmetic over the whole address, protocol and
port space (region.py), not by sampling:

* `deny S -> D Q` holds when no box meets S x D x Q;
* `allow S -> D Q` holds when the boxes cover S x D x Q entirely;
* `isolated X` holds when no box meets (not X) x X or X x (not X), any protocol.

A failure is one diagnostic on the assertion with one concrete packet
(preferring node addresses, named) and, for a `deny` or `isolated`, the rule
that allows it with `file:line`, as the reference evaluator names it.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from policyc.analysis.access import AliasSets, PolicyAccess, policy_access
from policyc.analysis.assertions import Assertion
from policyc.analysis.reference import ReferenceEvaluator, RuleRef
from policyc.analysis.region import covers, intersecting
from policyc.analysis.services import ANY_SERVICES, Services, protocol_name
from policyc.analysis.testrunner import synthetic_inventory
from policyc.compiler.addrset import ALL, AddressSet, union_all
from policyc.compiler.internet import TAILSCALE_RANGES
from policyc.compiler.nodes import Inventory
from policyc.diagnostics.diagnostics import Diagnostics
from policyc.policy.model import IPAddress, Policy

CODES = {"deny": "V602", "allow": "V603", "isolated": "V604"}


@dataclass(frozen=True, slots=True)
class Packet:
    """One concrete packet, with the nodes its addresses belong to (if any)."""

    src: IPAddress
    dst: IPAddress
    proto: int
    port: int | None
    src_node: str | None = None
    dst_node: str | None = None

    def __str__(self) -> str:
        src = f"{self.src_node} ({self.src})" if self.src_node else str(self.src)
        dst = f"{self.dst_node} ({self.dst})" if self.dst_node else str(self.dst)
        what = protocol_name(self.proto) + (f"/{self.port}" if self.port is not None else "")
        return f"{src} -> {dst} {what}"


@dataclass(frozen=True, slots=True)
class Outcome:
    assertion: Assertion
    holds: bool
    vacuous: bool = False  # nothing to prove: the source or destination is empty
    counterexample: Packet | None = None
    rules: tuple[RuleRef, ...] = ()  # what allows the counterexample (deny/isolated)


@dataclass(frozen=True, slots=True)
class VerifyReport:
    outcomes: tuple[Outcome, ...]
    synthetic: bool

    @property
    def failed(self) -> int:
        return sum(1 for o in self.outcomes if not o.holds)

    def summary(self) -> str:
        where = " (synthetic inventory)" if self.synthetic else ""
        proven = len(self.outcomes) - self.failed
        return f"{proven} assertion(s) proven, {self.failed} failed{where}"


def verify(policy: Policy, inventory: Inventory | None, assertions: tuple[Assertion, ...],
           diags: Diagnostics) -> VerifyReport:
    """Prove each assertion; append one diagnostic per failure (and per vacuous one)."""
    nodes = synthetic_inventory(policy) if inventory is None else inventory
    prover = _Prover(policy, nodes)
    outcomes = tuple(prover.prove(a) for a in assertions)
    for outcome in outcomes:
        _report(outcome, diags)
    return VerifyReport(outcomes, inventory is None)


class _Prover:
    def __init__(self, policy: Policy, inventory: Inventory) -> None:
        self.sets = AliasSets(policy, inventory)
        self.access: PolicyAccess = policy_access(policy, inventory, self.sets)
        self.reference = ReferenceEvaluator(policy, inventory)

    def prove(self, a: Assertion) -> Outcome:
        src = union_all(self.sets.source(s) for s in a.sources)
        if a.kind == "isolated":
            if not src:
                return Outcome(a, True, vacuous=True)
            outside = ALL - src
            outward = self._none_allowed(a, src, outside, ANY_SERVICES)
            return outward if not outward.holds else self._none_allowed(
                a, outside, src, ANY_SERVICES)
        dst = union_all(self.sets.destination(d) for d in a.destinations)
        if not (src and dst):
            return Outcome(a, True, vacuous=True)
        if a.kind == "deny":
            return self._none_allowed(a, src, dst, a.services)
        missing = covers(self.access.boxes, src, dst, a.services)
        if not missing:
            return Outcome(a, True)
        piece = missing[0]
        return Outcome(a, False, counterexample=self._packet(piece.src, piece.dst,
                                                             piece.services))

    def _none_allowed(self, a: Assertion, src: AddressSet, dst: AddressSet,
                      services: Services) -> Outcome:
        box = intersecting(self.access.boxes, src, dst, services)
        if box is None:
            return Outcome(a, True)
        packet = self._packet(box.src & src, box.dst & dst, box.services & services)
        rules = self.reference.allowing_rules(packet.src, packet.dst, packet.proto, packet.port)
        return Outcome(a, False, counterexample=packet, rules=tuple(rules) or (box.rule,))

    def _packet(self, src: AddressSet, dst: AddressSet, services: Services) -> Packet:
        proto, port = services.sample()
        src_ip, src_node = self._address(src)
        dst_ip, dst_node = self._address(dst)
        return Packet(src_ip, dst_ip, proto, port, src_node, dst_node)

    def _address(self, addrs: AddressSet) -> tuple[IPAddress, str | None]:
        """A node's address if the set holds one, else a tailnet address, else the first."""
        r = self.sets.resolver
        for i in r.nodes_in(addrs):
            for ip in r.nodes[i].ips:
                if ip in addrs:
                    return ip, r.nodes[i].name
        for part in (addrs & TAILSCALE_RANGES, addrs):
            if part:
                return _first(part), None
        raise ValueError("no address in an empty set")


def _first(addrs: AddressSet) -> IPAddress:
    if addrs.v4:
        return ipaddress.IPv4Address(addrs.v4[0][0])
    return ipaddress.IPv6Address(addrs.v6[0][0])


def _report(outcome: Outcome, diags: Diagnostics) -> None:
    a = outcome.assertion
    if outcome.vacuous:
        diags.warning("V605", a.span, f"{a.text}: the source or destination names no "
                      "address in this inventory, so the assertion proves nothing")
        return
    if outcome.holds or outcome.counterexample is None:
        return
    packet = outcome.counterexample
    notes = [f"counterexample: {packet}"]
    if a.kind == "allow":
        notes.append("no rule allows it")
        message = f"{a.text} does not hold: a packet it covers is denied"
    else:
        message = f"{a.text} does not hold: a packet it covers is allowed"
        for ref in outcome.rules:
            notes.append(f"allowed by {_describe(ref)}: {' '.join(ref.text.split())[:120]}")
    diags.error(CODES[a.kind], a.span, message, notes=notes)


def _describe(ref: RuleRef) -> str:
    if ref.kind == "default":
        return "the default allow-all policy (no `acls` or `grants`)"
    return f"{ref.kind}s[{ref.index}] at {ref.location()}"


__all__ = ["Outcome", "Packet", "VerifyReport", "verify"]

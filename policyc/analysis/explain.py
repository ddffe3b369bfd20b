"""`policyc explain`: may SRC reach DST[:PORT], and which rules say so.

SRC and DST may be node names, addresses, users, groups, tags, host aliases
or `autogroup:member`/`autogroup:tagged`; a node name wins over anything else.
They stand for every mesh address they name. The verdict follows the
`tests` convention: allowed when EVERY source address may reach SOME
destination address, and the explanation says which source addresses may.
The answers come from the reference evaluator (`reference.py`), so they
follow the policy text, not the compiler. Unlike `tests`, a destination
must also be delivered by some node (its own address, an approved route,
or the Internet through an exit node).
"""

from __future__ import annotations

from dataclasses import dataclass

from policyc.analysis.reference import ReferenceEvaluator, RuleRef
from policyc.analysis.testrunner import literal_network, protocol_text
from policyc.compiler.nodes import Inventory
from policyc.diagnostics.diagnostics import Diagnostics, did_you_mean
from policyc.diagnostics.source import NO_SPAN
from policyc.netmap import DEFAULT_PROTOCOLS, PortRange
from policyc.policy.aliases import parse_alias, parse_protocol
from policyc.policy.model import (
    Alias,
    AutoGroupRef,
    GroupRef,
    IPAddress,
    Policy,
    TagRef,
    UserRef,
)

PORTED = frozenset({6, 17, 132})
MAX_ADDRESSES = 256


class ExplainError(ValueError):
    """SRC, DST or the protocol cannot be understood; the CLI reports a usage error."""


@dataclass(frozen=True, slots=True)
class Path:
    """One source address to one destination address."""

    src: IPAddress
    dst: IPAddress
    rules: tuple[RuleRef, ...]  # every rule entry allowing it (any requested protocol)
    delivered: bool  # some node receives traffic for `dst`
    open_ports: tuple[tuple[int, tuple[PortRange, ...]], ...] = ()  # when no port was asked

    @property
    def allowed(self) -> bool:
        return self.delivered and bool(self.rules)


@dataclass(frozen=True, slots=True)
class Explanation:
    src_text: str
    dst_text: str
    port: int | None
    protocols: tuple[int, ...]
    sources: tuple[IPAddress, ...]
    destinations: tuple[IPAddress, ...]
    paths: tuple[Path, ...]

    def source_allowed(self, src: IPAddress) -> bool:
        return any(p.allowed for p in self.paths if p.src == src)

    @property
    def allowed(self) -> bool:
        return all(self.source_allowed(s) for s in self.sources)

    def rules(self) -> list[RuleRef]:
        """Every distinct rule entry that allows some path, in policy order."""
        seen: list[RuleRef] = []
        for path in self.paths:
            if path.allowed:
                seen.extend(r for r in path.rules if r not in seen)
        return seen


def explain(policy: Policy, inventory: Inventory, src: str, dst: str, port: int | None,
            proto: str | None) -> Explanation:
    """Explain whether `src` may reach `dst` on `port` (any port when None) over `proto`."""
    ev = ReferenceEvaluator(policy, inventory)
    protocols = _protocols(proto)
    if port is not None and proto is None:
        # A port question is about the port-carrying protocols of the default set.
        protocols = tuple(p for p in protocols if p in PORTED)
    if port is not None and not 0 <= port <= 65535:
        raise ExplainError(f"port {port} is out of range (0-65535)")
    sources = resolve_endpoint(ev, src, "SRC")
    destinations = resolve_endpoint(ev, dst, "DST")
    paths = tuple(_path(ev, s, d, protocols, port) for s in sources for d in destinations)
    return Explanation(src, dst, port, protocols, tuple(sources), tuple(destinations), paths)


def _protocols(proto: str | None) -> tuple[int, ...]:
    if proto is None or not proto.strip():
        return DEFAULT_PROTOCOLS
    diags = Diagnostics()
    number = parse_protocol(proto, NO_SPAN, diags)
    if number is None:
        raise ExplainError(diags.items[0].message if diags.items else f"bad protocol {proto!r}")
    return (number,)


def _path(ev: ReferenceEvaluator, src: IPAddress, dst: IPAddress, protocols: tuple[int, ...],
          port: int | None) -> Path:
    rules: list[RuleRef] = []
    opened: list[tuple[int, tuple[PortRange, ...]]] = []
    for proto in protocols:
        proto_port = port if proto in PORTED else None
        found = ev.allowing_rules(src, dst, proto, proto_port)
        rules.extend(r for r in found if r not in rules)
        if port is None and found:
            opened.append((proto, tuple(ev.open_ports(src, dst, proto)) if proto in PORTED
                           else ()))
    return Path(src, dst, tuple(rules), ev.deliverable(dst), tuple(opened))


# --- SRC / DST -----------------------------------------------------------------------


def resolve_endpoint(ev: ReferenceEvaluator, text: str, role: str) -> list[IPAddress]:
    """The addresses SRC or DST names; raises ExplainError when it names none."""
    name = text.strip()
    node = ev.inventory.get(name)
    if node is not None:
        return list(node.ips)
    diags = Diagnostics()
    alias = parse_alias(name, NO_SPAN, diags, position=role)
    if alias is None:
        raise ExplainError(f"{role} {text!r}: {diags.items[0].message if diags.items else ''}")
    _check_defined(ev.policy, alias, role)
    if isinstance(alias, UserRef | GroupRef | TagRef | AutoGroupRef):
        addresses = [ip for n in ev.nodes_of(alias) for ip in n.ips]
    else:
        addresses = _literal_addresses(ev, alias)
    if not addresses:
        raise ExplainError(f"{role} {text!r} matches no node or address in the inventory")
    return addresses


def _check_defined(policy: Policy, alias: Alias, role: str) -> None:
    if isinstance(alias, GroupRef) and alias.name not in policy.groups:
        hint = did_you_mean(alias.name, policy.groups)
        raise ExplainError(f"{role}: group {alias.name!r} is not defined"
                           + (f" (did you mean {hint!r}?)" if hint else ""))
    if isinstance(alias, TagRef) and alias.name not in policy.tag_owners:
        hint = did_you_mean(alias.name, policy.tag_owners)
        raise ExplainError(f"{role}: tag {alias.name!r} is not defined"
                           + (f" (did you mean {hint!r}?)" if hint else ""))
    if isinstance(alias, AutoGroupRef) and alias.name not in (
            "autogroup:member", "autogroup:tagged"):
        raise ExplainError(f"{role}: {alias.name} does not name specific addresses")


def _literal_addresses(ev: ReferenceEvaluator, alias: Alias) -> list[IPAddress]:
    network = literal_network(ev, alias)
    if network is None:
        return []
    if network.num_addresses > MAX_ADDRESSES:
        raise ExplainError(f"{network} is too large to explain address by address; "
                           "name a single address")
    if network.num_addresses == 1:
        return [network.network_address]
    return list(network)


# --- rendering ---------------------------------------------------------------------------


def render_explanation(expl: Explanation) -> str:
    """Human text for the CLI: the verdict, then why."""
    lines = [_headline(expl)]
    allowed_src = [s for s in expl.sources if expl.source_allowed(s)]
    denied_src = [s for s in expl.sources if not expl.source_allowed(s)]
    if allowed_src and denied_src:
        lines.append(f"  allowed from: {_join(allowed_src)}")
        lines.append(f"  denied from:  {_join(denied_src)}")
    rules = expl.rules()
    if rules:
        lines.append("  allowed by:")
        for ref in rules:
            lines.append(f"    {ref.location()}: {_rule_label(ref)}: {_one_line(ref.text)}")
            if ref.kind != "default" and ref.entry_span.text:
                field = "dst" if ref.kind == "acl" else "ip"
                lines.append(f"      via {field} entry {ref.entry_span.text}")
    if expl.port is None and allowed_src:
        lines.append(f"  open: {_open_summary(expl)}")
    for src in denied_src:
        lines.append(f"  {_denial_reason(expl, src)}")
    return "\n".join(lines)


def _headline(expl: Explanation) -> str:
    verdict = "ALLOWED" if expl.allowed else "DENIED"
    what = f"port {expl.port}" if expl.port is not None else "any port"
    return (f"{verdict}: {expl.src_text} -> {expl.dst_text} {what} "
            f"({protocol_text(expl.protocols)})")


def _rule_label(ref: RuleRef) -> str:
    return "default" if ref.kind == "default" else f"{ref.kind}s[{ref.index}]"


def _open_summary(expl: Explanation) -> str:
    by_proto: dict[int, set[PortRange]] = {}
    for path in expl.paths:
        if path.allowed:
            for proto, ranges in path.open_ports:
                by_proto.setdefault(proto, set()).update(ranges)
    parts = []
    for proto in expl.protocols:
        if proto in by_proto:
            ports = ",".join(str(r) for r in sorted(by_proto[proto]))
            parts.append(f"{protocol_text((proto,))} {ports}".rstrip())
    return "; ".join(parts)


def _denial_reason(expl: Explanation, src: IPAddress) -> str:
    paths = [p for p in expl.paths if p.src == src]
    undelivered = [p.dst for p in paths if p.rules and not p.delivered]
    what = f"{protocol_text(expl.protocols)}/{expl.port if expl.port is not None else '*'}"
    if undelivered:
        return (f"rules allow {what} from {src} to {_join(undelivered)}, but no node "
                "receives that traffic (not a node address, no approved route, no exit node)")
    return f"no rule allows {what} from {src} to {_join(expl.destinations)}"


def _join(addresses: list[IPAddress] | tuple[IPAddress, ...], limit: int = 6) -> str:
    shown = ", ".join(str(a) for a in addresses[:limit])
    more = len(addresses) - limit
    return shown + (f" and {more} more" if more > 0 else "")


def _one_line(text: str, limit: int = 120) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


"""The assertions file of `policyc verify` (HuJSON): universal statements about access.

    {
      // No contractor packet of any protocol reaches production.
      "deny":  [{"src": "group:contractors", "dst": "tag:prod", "ports": "*"}],
      // SRE reaches ssh on every production node, from every SRE device.
      "allow": [{"src": "group:sre", "dst": "tag:prod", "ports": "22", "proto": "tcp"}],
      // PCI nodes talk only among themselves, in both directions.
      "isolated": ["tag:pci"],
    }

`src` and `dst` are one alias or a list of aliases, read as in rules.
`ports` defaults to `*`. `proto` is a protocol name or number, or a list of
them. Without `proto`, a `deny` covers every IP protocol when `ports` is `*`
and TCP, UDP and SCTP on specific ports; an `allow` covers what an ACL
without `proto` grants: TCP and UDP on the ports, plus ICMP and ICMPv6.
Problems are V601 diagnostics (and the policy's own codes for bad aliases).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from policyc.analysis.services import ANY_SERVICES, Services
from policyc.diagnostics.diagnostics import Diagnostics, did_you_mean
from policyc.diagnostics.source import SourceFile, Span
from policyc.grammar.cst import JArray, JString, JValue
from policyc.grammar.hujson import parse
from policyc.netmap import ALL_PORTS, DEFAULT_PROTOCOLS, PortRange
from policyc.policy.aliases import PORTED_PROTOCOLS, parse_alias, parse_ports, parse_protocol
from policyc.policy.jsonread import Reader
from policyc.policy.model import Alias, AutoGroupRef, GroupRef, Policy, TagRef

AssertionKind = Literal["deny", "allow", "isolated"]
ENTRY_FIELDS = frozenset({"src", "dst", "ports", "proto"})


@dataclass(frozen=True, slots=True)
class Assertion:
    """One universal statement; `services` is already the protocol x port set it covers."""

    kind: AssertionKind
    sources: tuple[Alias, ...]
    destinations: tuple[Alias, ...]  # empty for `isolated`
    services: Services
    text: str  # a short rendering for messages
    span: Span


def load_assertions(source: SourceFile, policy: Policy, diags: Diagnostics
                    ) -> tuple[Assertion, ...]:
    """Parse an assertions file; every problem is a diagnostic, the rest still load."""
    tree = parse(source, diags)
    if tree is None:
        return ()
    r = Reader(diags, unknown_code="V601", wrong_type_code="V601", missing_code="V601")
    top = r.obj(tree, "assertions")
    if top is None:
        return ()
    fields = r.fields(top, "assertions", frozenset({"deny", "allow", "isolated"}))
    out: list[Assertion] = []
    for kind in ("deny", "allow"):
        array = r.arr(fields[kind], kind) if kind in fields else None
        for item in array.items if array is not None else ():
            found = _entry(r, policy, kind, item)
            if found is not None:
                out.append(found)
    if "isolated" in fields:
        for item in r.strings(fields["isolated"], "isolated"):
            alias = _alias(r, policy, item, "isolated")
            if alias is not None:
                out.append(Assertion("isolated", (alias,), (), ANY_SERVICES,
                                     f"isolated {item.value}", item.span))
    if not out and not diags.has_errors:
        diags.warning("V601", top.span, "the assertions file asserts nothing")
    return tuple(out)


def _entry(r: Reader, policy: Policy, kind: AssertionKind, value: JValue) -> Assertion | None:
    obj = r.obj(value, kind)
    if obj is None:
        return None
    f = r.fields(obj, kind, ENTRY_FIELDS, required=("src", "dst"))
    errors = len(r.diags.errors)
    sources = _aliases(r, policy, f.get("src"), f"{kind}.src")
    destinations = _aliases(r, policy, f.get("dst"), f"{kind}.dst")
    ports_value = f.get("ports")
    ports: tuple[PortRange, ...] = (ALL_PORTS,)
    if ports_value is not None:
        text = r.string(ports_value, f"{kind}.ports")
        ports = parse_ports(text.value, text.span, r.diags) if text is not None else ()
    protocols = _protocols(r, f.get("proto"), kind)
    if len(r.diags.errors) > errors or not sources or not destinations or not ports:
        return None
    services = _services(kind, protocols, ports)
    label = (f"{kind} {', '.join(map(str, sources))} -> {', '.join(map(str, destinations))}"
             f" {services}")
    return Assertion(kind, sources, destinations, services, label, obj.span)


def _services(kind: AssertionKind, protocols: tuple[int, ...] | None,
              ports: tuple[PortRange, ...]) -> Services:
    if protocols is not None:
        return Services.of(protocols, ports)
    if kind == "allow":
        return Services.of(DEFAULT_PROTOCOLS, ports)  # what an ACL without proto grants
    if ports == (ALL_PORTS,):
        return ANY_SERVICES
    return Services.of(sorted(PORTED_PROTOCOLS), ports)


def _protocols(r: Reader, value: JValue | None, kind: str) -> tuple[int, ...] | None:
    if value is None:
        return None
    items = (value,) if isinstance(value, JString) else (
        value.items if isinstance(value, JArray) else None)
    if items is None:
        r.wrong_type(value, f"{kind}.proto", "a protocol or an array of protocols")
        return ()
    out: list[int] = []
    for item in items:
        text = r.string(item, f"{kind}.proto")
        number = parse_protocol(text.value, text.span, r.diags) if text is not None else None
        if number is not None:
            out.append(number)
    return tuple(out)


def _aliases(r: Reader, policy: Policy, value: JValue | None, what: str) -> tuple[Alias, ...]:
    if value is None:
        return ()
    strings = (value,) if isinstance(value, JString) else r.strings(value, what)
    found = (_alias(r, policy, s, what) for s in strings)
    return tuple(a for a in found if a is not None)


def _alias(r: Reader, policy: Policy, item: JString, what: str) -> Alias | None:
    alias = parse_alias(item.value, item.span, r.diags, position=what)
    if isinstance(alias, GroupRef) and alias.name not in policy.groups:
        hint = did_you_mean(alias.name, policy.groups)
        r.diags.error("E104", item.span, f"{what}: group {alias.name!r} is not defined",
                      suggestion=hint)
        return None
    if isinstance(alias, TagRef) and alias.name not in policy.tag_owners:
        hint = did_you_mean(alias.name, policy.tag_owners)
        r.diags.error("E105", item.span, f"{what}: tag {alias.name!r} is not defined",
                      suggestion=hint)
        return None
    if isinstance(alias, AutoGroupRef) and alias.name == "autogroup:self":
        r.diags.error("V601", item.span, f"{what}: autogroup:self means nothing in an "
                      "assertion (it is relative to each destination); name the users")
        return None
    return alias

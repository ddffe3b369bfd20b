"""Parsing of the small string languages inside a policy.

Aliases (`tag:web`, `alice@example.com`, `10.0.0.0/8`, ...), destinations
(`ALIAS:PORTS`), port lists, protocols and grant `ip` entries. Only syntax is
checked here; whether a group or tag is defined, and whether an autogroup is
allowed where it appears, is `validate.py`'s job.

Every function reports problems to the collector and returns None (or an
empty result) instead of raising, so one run reports every bad string.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import timedelta

from policyc.diagnostics.diagnostics import Diagnostics, did_you_mean
from policyc.diagnostics.source import Span
from policyc.netmap import ALL_PORTS, PortRange
from policyc.policy.model import (
    AclDestination,
    Alias,
    AutoGroupRef,
    GroupRef,
    HostRef,
    IPAddress,
    IPCapability,
    IPNetwork,
    IPSetRef,
    PrefixAlias,
    RangeAlias,
    ServiceRef,
    TagRef,
    UserRef,
    Wildcard,
)

# Tailscale's protocol names (POLICY-FORMAT §3.9); lookups are case-insensitive.
PROTOCOLS: dict[str, int] = {
    "icmp": 1, "igmp": 2, "ipv4": 4, "ip-in-ip": 4, "tcp": 6, "egp": 8, "igp": 9,
    "udp": 17, "gre": 47, "esp": 50, "ah": 51, "ipv6-icmp": 58, "sctp": 132, "fc": 133,
}
PORTED_PROTOCOLS = frozenset({6, 17, 132})  # the only ones with port numbers

KNOWN_AUTOGROUPS = frozenset({
    "autogroup:member", "autogroup:tagged", "autogroup:self", "autogroup:internet",
    "autogroup:danger-all", "autogroup:nonroot", "autogroup:admin", "autogroup:owner",
    "autogroup:it-admin", "autogroup:network-admin", "autogroup:billing-admin",
    "autogroup:auditor", "autogroup:shared",
})

# The legacy spelling of autogroup:member, still accepted by Tailscale
# (KB "Targets and selectors" lists autogroup:member; older policies and
# generated files use autogroup:members).
MEMBER = "autogroup:member"
LEGACY_MEMBERS = "autogroup:members"
SERVICE_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
# Tailscale's tailcfg.CheckTag: ASCII letters, digits and dashes, starting with a
# letter (SaaS answers a bad tagOwners key in CheckTag's words, captured).
TAG_NAME = re.compile(r"[A-Za-z][A-Za-z0-9-]*")
GROUP_NAME = re.compile(r"[^\s:@]+")
# A bare name that is plainly a (bad) address attempt rather than a host alias.
ADDRESS_LIKE = re.compile(r"[0-9./]+|.*[/:].*")


def parse_network(text: str) -> IPNetwork | None:
    """An address or CIDR as a network (host bits masked, like `netip.Prefix.Masked`)."""
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None


def parse_address(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def parse_alias(text: str, span: Span, diags: Diagnostics, *, position: str) -> Alias | None:
    """One alias in the order of POLICY-FORMAT §3.3; `position` names the field for messages."""
    text = text.strip()
    if not text:
        diags.error("E117", span, f"{position}: empty alias")
        return None
    network = parse_network(text) if _may_be_address(text) else None
    if network is not None:
        return PrefixAlias(network, span)
    if text == "*":
        return Wildcard(span)
    if "@" in text:
        return UserRef(text, span)
    if text.startswith("group:"):
        return _group(text, span, diags, position)
    if text.startswith("tag:"):
        return _tag(text, span, diags, position)
    if text.startswith("autogroup:"):
        return _autogroup(text, span, diags, position)
    if text.startswith("ipset:"):
        return _ipset(text, span, diags, position)
    if text.startswith("svc:"):
        return _service(text, span, diags, position)
    if text.startswith("host:"):
        return _host(text, span, diags, position)
    if _is_range_attempt(text):
        return _range(text, span, diags, position)
    if ADDRESS_LIKE.fullmatch(text):
        diags.error("E110", span, f"{position}: {text!r}: invalid IP address or prefix")
        return None
    return HostRef(text, span)


# Prefixes no IP address can start with ('g', 't', 'u', 'i', 's', 'h' are not hex digits).
_NAMED = ("group:", "tag:", "autogroup:", "ipset:", "svc:", "host:")


def _may_be_address(text: str) -> bool:
    # Cheap filter so names like "web" or "tag:web" never reach the ipaddress
    # module (a failed parse raises, which costs more than the parse: a 1 MB
    # policy spent a quarter of its build time there).
    return bool(text) and (text[0].isdigit() or ":" in text) and "@" not in text \
        and not text.startswith(_NAMED)


def _group(text: str, span: Span, diags: Diagnostics, position: str) -> Alias | None:
    if not GROUP_NAME.fullmatch(text.removeprefix("group:")):
        diags.error("E116", span, f"{position}: invalid group name {text!r}")
        return None
    return GroupRef(text, span)


def _tag(text: str, span: Span, diags: Diagnostics, position: str) -> Alias | None:
    name = text.removeprefix("tag:")
    if not TAG_NAME.fullmatch(name):
        why = ("tag names can only contain numbers, letters, or dashes"
               if name[:1].isascii() and name[:1].isalpha() else
               "tag names must start with a letter, after 'tag:'")
        diags.error("E116", span, f"{position}: {text!r}: {why}")
        return None
    return TagRef(text, span)


def _autogroup(text: str, span: Span, diags: Diagnostics, position: str) -> Alias | None:
    if text == LEGACY_MEMBERS:
        return AutoGroupRef(MEMBER, span, spelled=text)
    if text not in KNOWN_AUTOGROUPS:
        guess = did_you_mean(text, KNOWN_AUTOGROUPS)
        diags.error("E113", span, f"{position}: unknown autogroup {text!r}",
                    suggestion=guess)
        return None
    return AutoGroupRef(text, span)


def _service(text: str, span: Span, diags: Diagnostics, position: str) -> Alias | None:
    if not SERVICE_NAME.fullmatch(text.removeprefix("svc:")):
        diags.error("E116", span, f"{position}: invalid service name {text!r} "
                    "(svc: then a DNS label: letters, digits and inner hyphens)")
        return None
    return ServiceRef(text, span)


def _host(text: str, span: Span, diags: Diagnostics, position: str) -> Alias | None:
    """`host:NAME` is the `hosts` entry NAME, as Tailscale writes it in IP sets and
    grants (blog "New options for granular network policy", 2024: `"remove
    host:prod"` in an ipset, `"dst": ["host:prod"]` in a grant)."""
    name = text.removeprefix("host:")
    if not GROUP_NAME.fullmatch(name):
        diags.error("E116", span, f"{position}: invalid host name {text!r}")
        return None
    return HostRef(name, span)


def _ipset(text: str, span: Span, diags: Diagnostics, position: str) -> Alias | None:
    if not GROUP_NAME.fullmatch(text.removeprefix("ipset:")):
        diags.error("E116", span, f"{position}: invalid ipset name {text!r}")
        return None
    return IPSetRef(text, span)


def _is_range_attempt(text: str) -> bool:
    """`a-b` where either side is an address; "db-primary" is a host name."""
    first, dash, last = text.partition("-")
    return bool(dash) and any(_may_be_address(side) and parse_address(side) is not None
                              for side in (first, last))


def _range(text: str, span: Span, diags: Diagnostics, position: str) -> Alias | None:
    first_text, _, last_text = text.partition("-")
    first, last = parse_address(first_text), parse_address(last_text)
    if first is None or last is None or int(first) > int(last) or first.version != last.version:
        diags.error("E110", span, f"{position}: {text!r}: invalid IP address range")
        return None
    return RangeAlias(first, last, span)


def parse_ports(text: str, span: Span, diags: Diagnostics, *,
                zero_ok: bool = False) -> tuple[PortRange, ...]:
    """`*`, `22`, `80,443`, `8000-8100` or a mix; empty tuple after an error.

    `zero_ok` admits a lone port 0, which port-less test entries use
    (`"proto": "icmp", "accept": ["tag:x:0"]`)."""
    text = text.strip()
    if text == "*":
        return (ALL_PORTS,)
    ranges: list[PortRange] = []
    for part in text.split(","):
        port_range = _port_range(part, span, diags, zero_ok=zero_ok)
        if port_range is None:
            return ()
        ranges.append(port_range)
    return tuple(ranges)


def _port_range(part: str, span: Span, diags: Diagnostics, *,
                zero_ok: bool = False) -> PortRange | None:
    first_text, dash, last_text = part.partition("-")
    first = _port_number(first_text)
    if first is None:
        diags.error("E111", span, f'port range "{part}": invalid first integer')
        return None
    last = _port_number(last_text) if dash else first
    if last is None:
        diags.error("E111", span, f'port range "{part}": invalid last integer')
        return None
    if first > 65535 or last > 65535:
        diags.error("E111", span, f'port range "{part}": port number out of range')
        return None
    if not dash and first == 0 and not zero_ok:
        diags.error("E111", span,
                    f"port range \"{part}\": first port must be >0, or use '*' for wildcard")
        return None
    if first > last:
        diags.error("E111", span, f'port range "{part}": first port is greater than last port')
        return None
    return PortRange(first, last)


def _port_number(text: str) -> int | None:
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 6 else None


def parse_protocol(text: str, span: Span, diags: Diagnostics) -> int | None:
    """A protocol name (any case) or IANA number 1-255 without leading zeros."""
    name = text.strip().lower()
    if name in PROTOCOLS:
        return PROTOCOLS[name]
    if name.isascii() and name.isdigit():
        if name.startswith("0"):
            diags.error("E112", span, f"protocol {text!r}: leading 0 not permitted")
            return None
        if not 1 <= int(name) <= 255:
            diags.error("E112", span, f"protocol number {text!r} out of range (1-255)")
            return None
        return int(name)
    diags.error("E112", span,
                f"proto name {text!r} not known; use protocol number 1-255 or protocol name "
                "(icmp, tcp, udp, etc.)")
    return None


def check_ports_allowed(protocol: int | None, ports: tuple[PortRange, ...], text: str,
                        span: Span, diags: Diagnostics) -> bool:
    """Specific ports only make sense for TCP, UDP and SCTP (E118)."""
    if protocol is None or protocol in PORTED_PROTOCOLS or all(p.is_all for p in ports):
        return True
    diags.error("E118", span,
                f'protocol does not support specific ports: "{text}", only "*" is allowed')
    return False


def split_host_port(text: str) -> tuple[str, str] | None:
    """Split `ALIAS:PORTS` at the last colon, honouring `[v6]:ports` brackets."""
    if text.startswith("["):
        close = text.find("]")
        if close < 0 or text[close + 1 : close + 2] not in (":", "/"):
            return None
        host, rest = text[1:close], text[close + 1 :]
        suffix, colon, ports = rest.rpartition(":")
        address = parse_address(host)
        if not colon or address is None or address.version != 6:
            return None  # brackets are only for IPv6 literals
        return host + suffix, ports
    alias, colon, ports = text.rpartition(":")
    return (alias, ports) if colon else None


def parse_destination(text: str, span: Span, diags: Diagnostics, *,
                      position: str = "dst", zero_port_ok: bool = False) -> AclDestination | None:
    """An ACL `dst` entry `ALIAS:PORTS`; the span is the whole string."""
    text = text.strip()
    split = split_host_port(text)
    if split is None:
        diags.error("E111", span, f'{position}="{text}": hostport must contain a colon')
        return None
    alias_text, ports_text = split
    if not alias_text or not ports_text:
        diags.error("E111", span, f'{position}="{text}": empty host or port part')
        return None
    ports = parse_ports(ports_text, span, diags, zero_ok=zero_port_ok)
    if not ports:
        return None
    alias = parse_alias(alias_text, span, diags, position=position)
    return AclDestination(alias, ports, span) if alias is not None else None


def parse_ip_capability(text: str, span: Span, diags: Diagnostics) -> IPCapability | None:
    """A grant `ip` entry: `*`, `PORTS` or `PROTO:PORTS`."""
    text = text.strip()
    if text == "*":
        return IPCapability((), (ALL_PORTS,), any_protocol=True, span=span)
    proto_text, colon, ports_text = text.rpartition(":")
    if colon and ":" in proto_text:
        diags.error("E111", span, f'ip "{text}": expected PROTO:PORTS')
        return None
    if proto_text.strip() == "*":
        # `*:8096`: any protocol, these ports (seen in real policies Tailscale
        # accepts); the same as the bare `8096`.
        colon = ""
    protocol = parse_protocol(proto_text, span, diags) if colon else None
    if colon and protocol is None:
        return None
    ports = parse_ports(ports_text, span, diags)
    if not ports or not check_ports_allowed(protocol, ports, text, span, diags):
        return None
    protocols = (protocol,) if protocol is not None else ()
    return IPCapability(protocols, ports, span=span)


# Go's time.ParseDuration syntax: a sequence of decimal numbers with units.
_DURATION = re.compile(r"([-+]?)((?:(?:\d+\.?\d*|\.\d+)(?:ns|us|µs|ms|s|m|h))+|0)")
_DURATION_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0,
                 "h": 3600.0}
MAX_CHECK_PERIOD = timedelta(hours=168)


def parse_go_duration(text: str) -> timedelta | None:
    """`12h`, `1h30m`, `-1m`, `0`; None when it is not Go duration syntax."""
    match = _DURATION.fullmatch(text)
    if match is None:
        return None
    seconds = sum(float(number) * _UNIT_SECONDS[unit]
                  for number, unit in _DURATION_PART.findall(match.group(2)))
    return timedelta(seconds=-seconds if match.group(1) == "-" else seconds)


def parse_check_period(text: str, span: Span, diags: Diagnostics) -> timedelta | None:
    """An SSH `checkPeriod`: `always` (timedelta.max) or a duration in [0, 168h].

    Tailscale accepts `0s` (and `30s`) though its message says "positive" (captured).
    """
    if text == "always":
        return timedelta.max
    period = parse_go_duration(text)
    if period is None:
        diags.error("E124", span, f'checkPeriod: time: invalid duration "{text}"')
    elif period < timedelta(0):
        diags.error("E124", span, f"checkPeriod {text} must be a positive duration")
    elif period > MAX_CHECK_PERIOD:
        diags.error("E124", span, f"checkPeriod {text} is above the max (168h)")
    else:
        return period
    return None

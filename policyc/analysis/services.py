"""Sets of (protocol, port) pairs: the third axis of the access space.

Every (protocol, port) pair is a point on one integer line,
`protocol * 65536 + port`, so a set of services is a tuple of sorted,
disjoint intervals and reuses the address sets' interval algebra. A protocol
without ports (ICMP, GRE, ...) is always present with its whole port range:
the reference evaluator matches such packets whatever ports a rule names.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from policyc.compiler.addrset import (
    Intervals,
    intersect_intervals,
    intervals_overlap,
    intervals_subset,
    merge,
    subtract_intervals,
)
from policyc.netmap import ALL_PORTS, DEFAULT_PROTOCOLS, PortRange
from policyc.policy.aliases import PORTED_PROTOCOLS, PROTOCOLS

PORTS = 1 << 16
PROTOCOL_COUNT = 256
WELL_KNOWN_PORTS = (22, 443, 80)
NAMES: dict[int, str] = {number: name for name, number in reversed(PROTOCOLS.items())}


def protocol_name(proto: int) -> str:
    return NAMES.get(proto, f"proto-{proto}")


@dataclass(frozen=True, slots=True)
class Services:
    """A set of (protocol, port) pairs as intervals on `protocol * 65536 + port`."""

    intervals: Intervals = ()

    @classmethod
    def of(cls, protocols: Iterable[int], ports: Iterable[PortRange]) -> Services:
        """What a rule entry allows: `ports` of each ported protocol, all of the others."""
        port_list = tuple(ports)
        out: list[tuple[int, int]] = []
        for proto in protocols:
            base = proto * PORTS
            if proto in PORTED_PROTOCOLS:
                out.extend((base + r.first, base + r.last) for r in port_list)
            else:
                out.append((base, base + PORTS - 1))
        return cls(merge(out))

    # --- algebra -----------------------------------------------------------------

    def __or__(self, other: Services) -> Services:
        return Services(merge(self.intervals + other.intervals))

    def __and__(self, other: Services) -> Services:
        return Services(intersect_intervals(self.intervals, other.intervals))

    def __sub__(self, other: Services) -> Services:
        return Services(subtract_intervals(self.intervals, other.intervals))

    def __bool__(self) -> bool:
        return bool(self.intervals)

    def overlaps(self, other: Services) -> bool:
        return intervals_overlap(self.intervals, other.intervals)

    def issubset(self, other: Services) -> bool:
        return intervals_subset(self.intervals, other.intervals)

    def contains(self, proto: int, port: int | None) -> bool:
        """Does the set hold this packet? A portless protocol's port is ignored."""
        offset = (port or 0) if proto in PORTED_PROTOCOLS else 0
        point = proto * PORTS + offset
        return any(first <= point <= last for first, last in self.intervals)

    # --- reading it back -----------------------------------------------------------

    def by_protocol(self) -> dict[int, tuple[PortRange, ...]]:
        """Protocol -> its port ranges (the whole range for portless protocols)."""
        out: dict[int, list[PortRange]] = {}
        for first, last in self.intervals:
            for proto in range(first // PORTS, last // PORTS + 1):
                low = max(first, proto * PORTS) - proto * PORTS
                high = min(last, proto * PORTS + PORTS - 1) - proto * PORTS
                out.setdefault(proto, []).append(PortRange(low, high))
        return {p: tuple(r) for p, r in out.items()}

    def sample(self) -> tuple[int, int | None]:
        """One concrete (protocol, port) of a non-empty set: TCP first, a well-known
        port if there is one, else the lowest port above 0."""
        tcp = self & Services.of((6,), (ALL_PORTS,))
        chosen = tcp or self
        for port in WELL_KNOWN_PORTS:
            for proto in (6, 17):
                if chosen.contains(proto, port):
                    return proto, port
        first, last = chosen.intervals[0]
        proto = first // PORTS
        if proto not in PORTED_PROTOCOLS:
            return proto, None
        port = first % PORTS
        return proto, (port + 1 if port == 0 and last > first else port)

    def text(self) -> str:
        """Short human form: `*`, `22,443` (an ACL's ports without proto), `tcp/5432 icmp`."""
        if self == DEFAULT_SERVICES:
            return "*"
        if self == ANY_SERVICES:
            return "any protocol"
        protocols = self.by_protocol()
        parts: list[str] = []
        tcp, udp = protocols.get(6), protocols.get(17)
        if tcp is not None and tcp == udp and 1 in protocols and 58 in protocols:
            parts.append(_ports_text(tcp))  # the default set on these ports
            protocols = {p: r for p, r in protocols.items() if p not in (6, 17, 1, 58)}
        ported: dict[tuple[PortRange, ...], list[str]] = {}
        for proto, ranges in sorted(protocols.items()):
            if proto in PORTED_PROTOCOLS:  # tcp,udp/5432: same ports, one part
                ported.setdefault(ranges, []).append(protocol_name(proto))
        parts.extend(f"{','.join(names)}/{_ports_text(ranges)}"
                     for ranges, names in ported.items())
        for proto, ranges in sorted(protocols.items()):
            if proto in PORTED_PROTOCOLS:
                continue
            if ranges == (ALL_PORTS,):
                parts.append(protocol_name(proto))
            else:  # part of a portless protocol: only reachable through broken input
                parts.append(f"{protocol_name(proto)}/{_ports_text(ranges)}")
        return " ".join(parts)

    def to_json(self) -> list[dict[str, object]]:
        return [{"proto": p, "name": protocol_name(p),
                 "ports": [str(r) for r in ranges] if p in PORTED_PROTOCOLS else None}
                for p, ranges in sorted(self.by_protocol().items())]

    def __str__(self) -> str:
        return self.text()


def _ports_text(ranges: tuple[PortRange, ...]) -> str:
    return ",".join(str(r) for r in ranges)


EMPTY_SERVICES = Services()
ANY_SERVICES = Services(((0, PROTOCOL_COUNT * PORTS - 1),))
DEFAULT_SERVICES = Services.of(DEFAULT_PROTOCOLS, (ALL_PORTS,))

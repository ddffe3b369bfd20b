"""Wire types a node receives, in Tailscale's shape (tailcfg.FilterRule).

Kept tiny and dependency-free, like tailscale's `filtertype` package: the
compiler produces these, the enforcer and the control server consume them.
`to_json` gives exactly the wire JSON (Tailscale key names, omitted empties).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from typing import Any

DEFAULT_PROTOCOLS: tuple[int, ...] = (6, 17, 1, 58)  # TCP, UDP, ICMPv4, ICMPv6


def canonical_address(text: str) -> tuple[int, int] | None:
    """(IP version, integer) of one address written in canonical form (as
    `str(ipaddress.ip_address(...))` writes it), read by the C parser; None for
    any other text, which `ipaddress` should then judge. Only a text that reads
    back identically is taken, so this accepts nothing `ipaddress` rejects and
    gives the same integer (readers of 10,000-node inventories and filters)."""
    family = socket.AF_INET6 if ":" in text else socket.AF_INET
    try:
        packed = socket.inet_pton(family, text)
    except OSError:
        return None
    if socket.inet_ntop(family, packed) != text:
        return None
    return (6 if family == socket.AF_INET6 else 4), int.from_bytes(packed, "big")
def address_text(value: int, v6: bool) -> str:
    """`str(ipaddress.ip_address(value))` of an IPv4 or IPv6 address, written by
    the C formatter (the compiler writes tens of thousands of node addresses, the
    enforcer its set elements). It writes an IPv6 address whose first 96 bits are
    zero, or 80 zeros and ffff, with a dotted IPv4 tail where `ipaddress` writes
    hextets: those go through `ipaddress`."""
    if not v6:
        return socket.inet_ntop(socket.AF_INET, value.to_bytes(4, "big"))
    if value >> 32 in (0, 0xFFFF):
        import ipaddress  # rare: kept off the import path

        return str(ipaddress.IPv6Address(value))
    return socket.inet_ntop(socket.AF_INET6, value.to_bytes(16, "big"))


ALL_PORTS_FIRST, ALL_PORTS_LAST = 0, 65535


@dataclass(frozen=True, slots=True, order=True)
class PortRange:
    """Inclusive port range; (0, 65535) means any port."""

    first: int
    last: int

    @property
    def is_all(self) -> bool:
        return self.first == ALL_PORTS_FIRST and self.last == ALL_PORTS_LAST

    def __str__(self) -> str:
        if self.is_all:
            return "*"
        return str(self.first) if self.first == self.last else f"{self.first}-{self.last}"

    def to_json(self) -> dict[str, int]:
        return {"First": self.first, "Last": self.last}


ALL_PORTS = PortRange(ALL_PORTS_FIRST, ALL_PORTS_LAST)


@dataclass(frozen=True, slots=True)
class NetPortRange:
    """A destination: `ip` is an address, a CIDR, a range `a-b`, or `*`."""

    ip: str
    ports: PortRange

    def to_json(self) -> dict[str, Any]:
        return {"IP": self.ip, "Ports": self.ports.to_json()}


@dataclass(frozen=True, slots=True)
class CapGrant:
    dsts: tuple[str, ...]  # prefixes with explicit /len
    cap_map: tuple[tuple[str, Any], ...]  # (capability name, JSON value list or None)

    def to_json(self) -> dict[str, Any]:
        return {"Dsts": list(self.dsts), "CapMap": dict(self.cap_map)}


@dataclass(frozen=True, slots=True)
class FilterRule:
    """One rule of a node's packet filter (tailcfg.FilterRule).

    `ip_proto` empty means the default set (TCP, UDP, ICMPv4, ICMPv6).
    `DstPorts` and `CapGrant` are exclusive within a rule.
    `src_ranges`: what `src_ips` means, as sorted, merged, non-adjacent integer
    intervals (IPv4, IPv6), when the compiler knows it: readers may take it
    instead of parsing thousands of texts. Not on the wire, not compared.
    """

    src_ips: tuple[str, ...]
    dst_ports: tuple[NetPortRange, ...] = ()
    ip_proto: tuple[int, ...] = ()
    cap_grant: tuple[CapGrant, ...] = ()
    src_ranges: tuple[tuple[tuple[int, int], ...], tuple[tuple[int, int], ...]] | None = field(
        default=None, compare=False, repr=False)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"SrcIPs": list(self.src_ips)}
        if self.dst_ports:
            out["DstPorts"] = [d.to_json() for d in self.dst_ports]
        if self.ip_proto:
            out["IPProto"] = list(self.ip_proto)
        if self.cap_grant:
            out["CapGrant"] = [c.to_json() for c in self.cap_grant]
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FilterRule:
        return cls(
            src_ips=tuple(data.get("SrcIPs") or ()),
            dst_ports=tuple(
                NetPortRange(d["IP"], PortRange(d["Ports"]["First"], d["Ports"]["Last"]))
                for d in data.get("DstPorts") or ()
            ),
            ip_proto=tuple(data.get("IPProto") or ()),
            cap_grant=tuple(
                CapGrant(tuple(c["Dsts"]), tuple(sorted(c["CapMap"].items())))
                for c in data.get("CapGrant") or ()
            ),
        )


@dataclass(frozen=True, slots=True)
class Peer:
    name: str
    key: str  # base64 WireGuard public key
    addresses: tuple[str, ...]  # mesh IPs, no prefix length
    allowed_ips: tuple[str, ...]  # CIDRs: its /32 and /128 plus the routes this node may use
    endpoint: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "key": self.key, "addresses": list(self.addresses),
            "allowed_ips": list(self.allowed_ips), "endpoint": self.endpoint,
        }


@dataclass(frozen=True, slots=True)
class NodeNetmap:
    """Everything one node needs: its peers (and so keys) and its filter."""

    node: str
    addresses: tuple[str, ...]
    peers: tuple[Peer, ...]
    packet_filter: tuple[FilterRule, ...]
    # tailcfg.SSHPolicy JSON: {"rules": [{"principals", "sshUsers", "action", "acceptEnv"}]}
    ssh_policy: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    policy_version: str = ""
    routes: tuple[str, ...] = ()  # routes this node serves: approved subnets, exit routes
    # nodeAttrs (SelfNode.CapMap): capability -> list of JSON values, or None when bare
    cap_map: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "addresses": list(self.addresses),
            "peers": [p.to_json() for p in self.peers],
            "packet_filter": [r.to_json() for r in self.packet_filter],
            "ssh_policy": self.ssh_policy,
            "policy_version": self.policy_version,
            "routes": list(self.routes),
            "cap_map": self.cap_map,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NodeNetmap:
        return cls(
            node=data["node"],
            addresses=tuple(data.get("addresses") or ()),
            peers=tuple(
                Peer(p["name"], p["key"], tuple(p.get("addresses") or ()),
                     tuple(p.get("allowed_ips") or ()), p.get("endpoint"))
                for p in data.get("peers") or ()
            ),
            packet_filter=tuple(FilterRule.from_json(r) for r in data.get("packet_filter") or ()),
            ssh_policy=dict(data.get("ssh_policy") or {}),
            policy_version=str(data.get("policy_version") or ""),
            routes=tuple(data.get("routes") or ()),
            cap_map=dict(data.get("cap_map") or {}),
        )

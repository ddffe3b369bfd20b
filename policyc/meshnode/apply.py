"""Enforce one verified netmap on this host, in the order that keeps it safe.

1. `policyc.enforcer.node.enforce`: the nftables filter first (fail closed), then
   the WireGuard peers (only removals if the filter did not load), then
   revocation of flows the new filter no longer allows.
2. Only after a loaded filter: the interface's addresses become exactly the ones
   control assigned, the link goes up, and the routes over the interface become
   exactly the peers' allowed IPs (exit routes excepted: sending all of the host's
   traffic to an exit node is a separate decision this agent does not take).
3. When control approved routes this node serves, IP forwarding is switched on
   (and never off: other software on the host may rely on it).

Every address and prefix is re-parsed with `ipaddress` before it reaches `ip`:
netmaps come from the network, and a string from the network is never a word
on a command line unless it is a canonical address.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
from dataclasses import dataclass

from policyc.enforcer.netns import run_in_netns
from policyc.enforcer.node import EnforceResult, enforce
from policyc.enforcer.wireguard import peer_allowed_ips
from policyc.meshnode.iface import ip_command
from policyc.netmap import NodeNetmap

ROUTE_PROTO = "static"  # routes this agent installs carry this protocol; others are left alone
_EXIT_ROUTES = frozenset({"0.0.0.0/0", "::/0"})


@dataclass(frozen=True, slots=True)
class HostNetwork:
    """What step 2 and 3 set on the host for a netmap (compared between applies)."""

    addresses: tuple[str, ...]
    routes: frozenset[str]
    served: tuple[str, ...]  # routes this node serves (forwarding)

    @classmethod
    def of(cls, netmap: NodeNetmap) -> HostNetwork:
        return cls(netmap.addresses, wanted_routes(netmap), netmap.routes)


@dataclass(frozen=True, slots=True)
class ApplyOutcome:
    ok: bool
    enforce: EnforceResult
    problems: tuple[str, ...] = ()
    host: HostNetwork | None = None  # set on the host, when it all worked

    def summary(self) -> str:
        lines = self.enforce.messages() + list(self.problems)
        return "; ".join(lines)


def apply_netmap(netmap: NodeNetmap, iface: str, *, netns: str | None,
                 private_key_file: str | None, listen_port: int | None,
                 host_in_force: HostNetwork | None = None) -> ApplyOutcome:
    """Filter, peers, revocation, then addresses, routes and forwarding.

    `host_in_force`: what the previous successful apply of this agent set. Addresses,
    routes and forwarding the new netmap wants unchanged are not read back again:
    most pushes change filters only, a join changes routes only, and each `ip` call
    is a process start that a loaded host schedules late. (The agent owns these
    routes; one deleted by hand comes back with the next netmap that changes them,
    or a restart.)
    """
    result = enforce(netmap, iface, netns=netns, private_key_file=private_key_file,
                     listen_port=listen_port, routes=netmap.routes)
    if not result.filter_loaded:
        return ApplyOutcome(False, result)
    wanted = HostNetwork.of(netmap)
    known = host_in_force
    problems: list[str] = []
    if known is None or known.addresses != wanted.addresses:
        problems += set_addresses(iface, netns, netmap.addresses)
    if known is None or known.routes != wanted.routes:  # e.g. a peer joined or left
        problems += set_routes(iface, netns, wanted.routes)
    if netmap.routes and (known is None or known.served != wanted.served):
        problems += enable_forwarding(netns, netmap.routes)
    return ApplyOutcome(result.ok and not problems, result, tuple(problems),
                        None if problems else wanted)


def wanted_routes(netmap: NodeNetmap) -> frozenset[str]:
    """Canonical prefixes to route over the mesh: every peer's allowed IPs."""
    return frozenset(cidr for peer in netmap.peers for cidr in peer_allowed_ips(peer)
                     if cidr not in _EXIT_ROUTES)


def _ip(netns: str | None, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(ip_command(netns, *args), capture_output=True, text=True,
                          check=False, timeout=10)


def _ip_json(netns: str | None, *args: str) -> list[dict[str, object]]:
    proc = _ip(netns, "-j", *args)
    if proc.returncode != 0 or not proc.stdout.strip():
        return []
    value = json.loads(proc.stdout)
    return value if isinstance(value, list) else []


def _host_prefix(address: str) -> str | None:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    return f"{ip}/{ip.max_prefixlen}"


def set_addresses(iface: str, netns: str | None, addresses: tuple[str, ...]) -> list[str]:
    """Make the interface's global addresses exactly `addresses` (host prefixes), link up."""
    wanted = {p for p in map(_host_prefix, addresses) if p is not None}
    problems = [f"address {a!r} in the netmap is not an IP address"
                for a in addresses if _host_prefix(a) is None]
    current: set[str] = set()
    for link in _ip_json(netns, "addr", "show", "dev", iface):
        infos = link.get("addr_info")
        for info in infos if isinstance(infos, list) else []:
            if info.get("scope") == "global":
                current.add(f"{info['local']}/{info['prefixlen']}")
    for prefix in sorted(current - wanted):
        _ip(netns, "addr", "del", prefix, "dev", iface)
    for prefix in sorted(wanted - current):
        extra = ["nodad"] if ":" in prefix else []
        proc = _ip(netns, "addr", "add", prefix, "dev", iface, *extra)
        if proc.returncode != 0:
            problems.append(f"cannot add address {prefix}: {proc.stderr.strip()}")
    proc = _ip(netns, "link", "set", iface, "up")
    if proc.returncode != 0:
        problems.append(f"cannot bring {iface} up: {proc.stderr.strip()}")
    return problems


def _installed_routes(iface: str, netns: str | None) -> set[str]:
    found: set[str] = set()
    for family in ("-4", "-6"):
        for route in _ip_json(netns, family, "route", "show", "dev", iface, "proto", ROUTE_PROTO):
            dst = str(route.get("dst", ""))
            if dst == "default":
                dst = "0.0.0.0/0" if family == "-4" else "::/0"
            elif "/" not in dst:
                dst = f"{dst}/{32 if family == '-4' else 128}"
            found.add(str(ipaddress.ip_network(dst, strict=False)))
    return found


def set_routes(iface: str, netns: str | None, wanted: frozenset[str]) -> list[str]:
    """Make this agent's routes over `iface` exactly `wanted`."""
    problems: list[str] = []
    current = _installed_routes(iface, netns)
    for prefix in sorted(current - wanted):
        _ip(netns, "route", "del", prefix, "dev", iface, "proto", ROUTE_PROTO)
    for prefix in sorted(wanted - current):
        proc = _ip(netns, "route", "replace", prefix, "dev", iface, "proto", ROUTE_PROTO)
        if proc.returncode != 0:
            problems.append(f"cannot route {prefix} over {iface}: {proc.stderr.strip()}")
    return problems


def enable_forwarding(netns: str | None, routes: tuple[str, ...]) -> list[str]:
    """Switch on forwarding for the families of the routes this node serves."""
    families = set()
    for route in routes:
        try:
            families.add(ipaddress.ip_network(route, strict=False).version)
        except ValueError:
            continue
    paths = {4: "/proc/sys/net/ipv4/ip_forward", 6: "/proc/sys/net/ipv6/conf/all/forwarding"}

    def write() -> list[str]:
        failed = []
        for family in sorted(families):
            try:
                with open(paths[family], "w") as knob:  # net sysctls follow the thread's netns
                    knob.write("1\n")
            except OSError as err:
                failed.append(f"cannot enable IPv{family} forwarding: {err.strerror or err}")
        return failed

    return run_in_netns(netns, write)


def remove_routes_and_addresses(iface: str, netns: str | None) -> None:
    """What `node down` undoes on an interface it does not own (routes first)."""
    set_routes(iface, netns, frozenset())
    set_addresses(iface, netns, ())

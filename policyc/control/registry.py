"""Turning what a node or an admin sends into validated registry values.

Hostnames, routes, endpoints, tags and durations arrive from the network:
each is checked here and refused with a ControlError (400) before it can
reach the database or the compiler. Addresses are derived from a counter
that never goes back, so they are unique and stable across restarts and
never reused after a removal.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import secrets
from collections.abc import Container

from policyc.compiler.nodes import Node
from policyc.control.errors import ControlError
from policyc.control.store import NodeRecord

IPV4_POOL = ipaddress.IPv4Network("100.64.0.0/10")
IPV6_POOL = ipaddress.IPv6Network("fd7a:115c:a1e0::/48")
EXIT_ROUTES = frozenset({"0.0.0.0/0", "::/0"})
MAX_ROUTES = 64
MAX_TAGS = 32
AUTH_KEY_PREFIX = "pk-"
_TAG = re.compile(r"^tag:[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")
_LOGIN = re.compile(r"^[^\s@]{1,128}@[^\s@]{0,128}$")
_DURATION = re.compile(r"^(\d{1,9})([smhd])$")
_DURATION_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def node_name(hostname: str) -> str:
    """A DNS label made from what the node calls itself ("node" if nothing is left)."""
    label = re.sub(r"[^a-z0-9-]+", "-", hostname.lower()).strip("-")
    return re.sub(r"-{2,}", "-", label)[:55].rstrip("-") or "node"


def addresses(offset: int) -> tuple[str, str]:
    """The IPv4 and IPv6 mesh address of the node with address counter `offset`."""
    if not 0 < offset < IPV4_POOL.num_addresses - 1:
        raise ControlError(503, "addresses-exhausted", "the tailnet address pool is exhausted")
    return str(IPV4_POOL[offset]), str(IPV6_POOL[offset])


def parse_routes(routes: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Canonical CIDRs (host bits must be zero), sorted and without duplicates."""
    if len(routes) > MAX_ROUTES:
        raise ControlError(400, "bad-route", f"at most {MAX_ROUTES} routes")
    out = set()
    for text in routes:
        try:
            network = ipaddress.ip_network(text, strict=True)
        except ValueError:
            raise ControlError(400, "bad-route", f"{text!r} is not a CIDR prefix") from None
        out.add(str(network))
    return tuple(sorted(out))


def parse_endpoint(text: str | None) -> str | None:
    """`IP:PORT` or `[IPv6]:PORT`, the only endpoint shapes a peer can dial."""
    if text is None:
        return None
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d{1,5})|([0-9.]+):(\d{1,5})", text)
    if match is None:
        raise ControlError(400, "bad-endpoint", "endpoint must be IP:PORT or [IPv6]:PORT")
    host = match.group(1) or match.group(3)
    port = int(match.group(2) or match.group(4))
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ControlError(400, "bad-endpoint", f"{host!r} is not an IP address") from None
    if not 0 < port < 65536:
        raise ControlError(400, "bad-endpoint", "port out of range")
    return f"[{address}]:{port}" if address.version == 6 else f"{address}:{port}"


def check_tags(tags: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    if len(tags) > MAX_TAGS or not all(_TAG.match(t) for t in tags):
        raise ControlError(400, "bad-tag", "tags must look like tag:name")
    return tuple(sorted(set(tags)))


def check_login(login: str) -> str:
    if not _LOGIN.match(login):
        raise ControlError(400, "bad-user", "a user is a login such as alice@example.com")
    return login


def parse_duration(text: str) -> int:
    """`90s`, `30m`, `12h`, `90d` -> seconds."""
    match = _DURATION.match(text)
    if match is None or int(match.group(1)) == 0:
        raise ControlError(400, "bad-duration", f"{text!r} is not a duration like 90d or 12h")
    return int(match.group(1)) * _DURATION_SECONDS[match.group(2)]


def new_auth_key() -> str:
    return AUTH_KEY_PREFIX + secrets.token_urlsafe(32)


def auth_key_digest(key: str) -> str:
    """Keys are stored as this digest only: the database never holds a usable key."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def inventory_node(record: NodeRecord) -> Node:
    """The compiler's view of a registered node."""
    routes = tuple(ipaddress.ip_network(r) for r in record.approved_routes
                   if r not in EXIT_ROUTES)
    return Node(
        name=record.name, user=record.user, tags=record.tags,
        ips=(ipaddress.IPv4Address(record.ipv4), ipaddress.IPv6Address(record.ipv6)),
        key=record.node_key, routes=routes,
        exit_node=set(record.approved_routes) >= EXIT_ROUTES, endpoint=record.endpoint)


def node_json(record: NodeRecord, now: float, defined_tags: Container[str],
              ) -> dict[str, object]:
    """A node as the admin API shows it: the inventory shape plus registry fields.

    `invalid_tags`: the node's tags the live policy no longer defines in tagOwners.
    The node keeps them (as in Tailscale) and gets no access through them.
    """
    return {
        "name": record.name, "user": record.user, "tags": list(record.tags),
        "ips": [record.ipv4, record.ipv6], "key": record.node_key,
        "routes": [r for r in record.approved_routes if r not in EXIT_ROUTES],
        "exit_node": set(record.approved_routes) >= EXIT_ROUTES,
        "endpoint": record.endpoint, "advertised_routes": list(record.advertised_routes),
        "approved_routes": list(record.approved_routes), "created_at": record.created_at,
        "expires_at": record.expires_at, "expired": record.expired(now),
        "netmap_version": record.netmap_version,
        "invalid_tags": [t for t in record.tags if t not in defined_tags],
    }

"""One node entry -> a checked `Node`, or diagnostics saying why not.

`validate_node_entry` judges one entry as written, whether it came from an
inventory file or, one at a time, from the network as JSON (node
registration); `validate_node.check_node` applies the same predicates (below)
to a `Node` built in code, such as a node event of the incremental index.
Each checks the node alone; what needs the other nodes (duplicates:
`uniqueness.py`) or the policy (tags: `crosscheck.py`) is done where those are
known. Any error means no `Node`: a node that cannot be right is never
compiled half-formed.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress

from policyc.compiler.names import is_dns_name, suggest_dns_name
from policyc.compiler.nodefields import READERS, NodeFields, NodeShape, inventory_reader
from policyc.compiler.nodes import Node
from policyc.diagnostics.diagnostics import Diagnostics, did_you_mean
from policyc.diagnostics.source import SourceFile
from policyc.grammar.cst import JObject, JString, JValue
from policyc.grammar.hujson import parse
from policyc.netmap import canonical_address
from policyc.policy.aliases import TAG_NAME, parse_address, parse_network
from policyc.policy.jsonread import Reader
from policyc.policy.model import IPAddress, IPNetwork

EXIT_ROUTES = (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0"))
# The ranges Tailscale assigns node addresses from (CGNAT and its ULA).
TAILNET_RANGES = (ipaddress.ip_network("100.64.0.0/10"),
                  ipaddress.ip_network("fd7a:115c:a1e0::/48"))
WIREGUARD_PORT = 41641  # Tailscale's default, offered when a port is missing


def validate_node_entry(value: JValue, diags: Diagnostics, *, shape: NodeShape = "nodes",
                        ) -> Node | None:
    """Check one entry of `shape`; the `Node`, or None when it has an error."""
    return entry_node(inventory_reader(diags), value, shape)


def entry_node(r: Reader, value: JValue, shape: NodeShape) -> Node | None:
    """Read and check one entry; None after any error, in reading (a wrong
    type) or in judging."""
    errors = len(r.diags.errors)
    fields = READERS[shape](r, value)
    node = check_node_fields(r, fields) if fields is not None else None
    return node if len(r.diags.errors) == errors else None


def validate_node_entry_text(text: str, name: str = "<node>", *,
                             shape: NodeShape = "nodes") -> tuple[Node | None, Diagnostics]:
    """One entry as JSON/HuJSON text (e.g. a node event from the network)."""
    diags = Diagnostics()
    tree = parse(SourceFile(name, text), diags)
    node = validate_node_entry(tree, diags, shape=shape) if tree is not None else None
    return node, diags


def is_tag(text: str) -> bool:
    return text.startswith("tag:") and TAG_NAME.fullmatch(text[4:]) is not None


def is_unusable_address(address: IPAddress) -> bool:
    """Addresses no node can have as its mesh address."""
    return address.is_unspecified or address.is_loopback or address.is_multicast


def unusable_kind(address: IPAddress) -> str:
    return ("an unspecified" if address.is_unspecified
            else "a loopback" if address.is_loopback else "a multicast")


_TAILNET_BOUNDS = {net.version: (int(net.network_address), int(net.broadcast_address))
                   for net in TAILNET_RANGES}


def in_tailnet_range(address: IPAddress) -> bool:
    low, high = _TAILNET_BOUNDS[address.version]  # one range per version
    return low <= int(address) <= high


def read_address(text: str) -> IPAddress | None:
    """`parse_address`, with canonical text read by the C parser first (an
    inventory lists thousands of addresses)."""
    found = canonical_address(text)
    if found is None:
        return parse_address(text)
    return ipaddress.IPv4Address(found[1]) if found[0] == 4 else ipaddress.IPv6Address(found[1])


def key_is_valid(key: str) -> bool:
    """A WireGuard public key: 32 bytes of standard base64."""
    try:
        return len(base64.b64decode(key, validate=True)) == 32
    except (binascii.Error, ValueError):
        return False


OUTSIDE_NOTE = ("policies written for Tailscale will not expect it; check it is not a "
                "LAN or public address")


def check_node_fields(r: Reader, f: NodeFields) -> Node | None:
    errors = len(r.diags.errors)
    name = _name(r, f)
    tags = _tags(r, f.tags)
    user = _user(r, f, tagged=bool(tags) or _has_items(f.tags), name=name)
    ips = _ips(r, f, name)
    routes = _routes(r, f)
    exit_node = f.exit_node or any(route in EXIT_ROUTES for route in routes)
    _compare_approved(r, f, routes, exit_node)
    key = _key(r, f)
    endpoint = _endpoint(r, f.endpoint)
    if name is None or len(r.diags.errors) > errors:
        return None
    return Node(name, user, tuple(t.value for t in tags), ips, key,
                tuple(route for route in routes if route not in EXIT_ROUTES), exit_node,
                endpoint, f.entry.span, tuple(t.span for t in tags),
                f.name.span if f.name is not None else f.entry.span)


def _has_items(value: JValue | None) -> bool:
    items = getattr(value, "items", None)
    return bool(items)


def _name(r: Reader, f: NodeFields) -> str | None:
    """The node's name: ours as written, a device's first label (its machine name)."""
    if f.name is None:
        return None
    text = f.name.value
    full = text.removesuffix(".") if f.shape == "devices" else text
    if not is_dns_name(full):
        what = "host name" if f.shape == "devices" else "node name"
        r.diags.error("I408", f.name.span,
                      f'{what} "{text}" is not a DNS name (letters, digits and inner '
                      'hyphens, dot-separated labels of at most 63 characters)',
                      suggestion=suggest_dns_name(full))
        return None
    return full.split(".", 1)[0] if f.shape == "devices" else full


def _tags(r: Reader, value: JValue | None) -> tuple[JString, ...]:
    tags = r.strings(value, "tags") if value is not None else ()
    for tag in tags:
        if not is_tag(tag.value):
            guess = "tag:" + tag.value if TAG_NAME.fullmatch(tag.value) else None
            r.diags.error("I401", tag.span, f'"{tag.value}" is not a tag (tag:NAME)',
                          suggestion=guess)
    return tags


def _user(r: Reader, f: NodeFields, *, tagged: bool, name: str | None) -> str | None:
    """The owner's login. A tagged node belongs to its tags, so its `user` is
    ignored; Tailscale reports such nodes' user as "tagged-devices" (no @)."""
    text = r.string(f.user, "user") if f.user is not None else None
    if tagged:
        return text.value if text is not None and "@" in text.value else None
    if text is None:
        if f.user is None:
            r.diags.error("I406", f.entry.span,
                          f'{f.names.entry} "{name or "?"}" has neither a user nor tags: '
                          "it belongs to nobody",
                          notes=('give it its owner\'s login ("user": "name@domain") '
                                 'or tags ("tags": ["tag:NAME"])',))
        return None
    if "@" not in text.value:
        r.diags.error("I401", text.span, f'user "{text.value}" must contain @')
    return text.value


def _ips(r: Reader, f: NodeFields, name: str | None) -> tuple[IPAddress, ...]:
    field = f.names.ips
    out: list[IPAddress] = []
    for text in r.strings(f.ips, field) if f.ips is not None else ():
        address = read_address(text.value.strip())
        if address is None:
            r.diags.error("I401", text.span, f'"{text.value}" is not an IP address')
        elif not in_tailnet_range(address) and is_unusable_address(address):
            r.diags.error("I401", text.span,
                          f"{address} is {unusable_kind(address)} address: "
                          "it cannot be a node's mesh address")
        elif address in out:
            r.diags.warning("I402", text.span, f"address {address} is listed twice")
        else:
            if not in_tailnet_range(address):
                r.diags.warning("I411", text.span, outside_message(address),
                                notes=(OUTSIDE_NOTE,))
            out.append(address)
    if not out and _missing(f.ips):
        r.diags.error("I405", f.ips.span if f.ips is not None else f.entry.span,
                      f'{f.names.entry} "{name or "?"}" has no "{field}": '
                      "a node without mesh addresses cannot be reached or matched",
                      notes=_misspelt(f.entry, field))
    return tuple(out)


def _missing(value: JValue | None) -> bool:
    """No field, or an empty array (other types were reported as wrong)."""
    return value is None or getattr(value, "items", None) == ()


def _misspelt(entry: JObject, field: str) -> tuple[str, ...]:
    """A note on the key probably meant as `field` (devices ignore unknown keys)."""
    key = did_you_mean(field, [m.key.value for m in entry.members if m.key.value != field])
    return (f'"{key}" is not read: is it a misspelling of "{field}"?',) if key else ()


def _routes(r: Reader, f: NodeFields) -> tuple[IPNetwork, ...]:
    out = []
    field = f.names.routes
    for text in r.strings(f.routes, field) if f.routes is not None else ():
        network = parse_network(text.value.strip())
        if network is None:
            r.diags.error("I401", text.span, f'route "{text.value}" is not a CIDR prefix')
            continue
        if str(network) != text.value.strip() and "/" in text.value:
            r.diags.warning("I413", text.span,
                            f'route "{text.value}" has host bits set; it is read as {network}',
                            suggestion=str(network))
        if network in EXIT_ROUTES and f.shape == "nodes":
            r.diags.warning("I410", text.span,
                            f'route {network} is an exit route: the node is made an exit '
                            'node; say so with "exit_node": true and keep "routes" for '
                            "subnets")
        out.append(network)
    return tuple(out)


def _compare_approved(r: Reader, f: NodeFields, routes: tuple[IPNetwork, ...],
                      exit_node: bool) -> None:
    """`approved_routes` (the conformance cases' field) is not read; say so when
    it disagrees with what is, or someone will think they approved a route."""
    if f.approved_routes is None:
        return
    approved = {net for text in r.strings(f.approved_routes, "approved_routes")
                if (net := parse_network(text.value.strip())) is not None}
    subnets = {net for net in routes if net not in EXIT_ROUTES}
    extra = sorted(map(str, approved - subnets - set(EXIT_ROUTES)))
    missing = sorted(map(str, subnets - approved))
    exit_differs = exit_node != bool(approved & set(EXIT_ROUTES))
    if not (extra or missing or exit_differs):
        return
    notes = []
    if extra:
        notes.append(f"approved here but not in \"routes\": {', '.join(extra)}")
    if missing:
        notes.append(f"in \"routes\" but not approved here: {', '.join(missing)}")
    if exit_differs:
        notes.append('"exit_node" is true but no exit route is approved here' if exit_node
                     else '"exit_node" is false but exit routes are approved here')
    r.diags.warning("I414", f.approved_routes.span,
                    '"approved_routes" is not read and disagrees with "routes"/"exit_node", '
                    "which say what is approved", notes=notes)


def _key(r: Reader, f: NodeFields) -> str:
    """Keys are optional; a given one must be a WireGuard public key."""
    if f.key is None or not f.key.value:
        return ""
    text = f.key.value
    if text.startswith("nodekey:"):
        as_base64 = _nodekey_base64(text)
        if f.shape == "devices" and as_base64:
            return as_base64
        if f.shape == "devices":
            r.diags.error("I403", f.key.span,
                          f'nodeKey "{text}" is not "nodekey:" and 64 hex digits')
        else:
            r.diags.error("I403", f.key.span,
                          '"key" is base64, not the Tailscale API\'s "nodekey:<hex>" form',
                          suggestion=as_base64)
        return ""
    if not key_is_valid(text):
        r.diags.error("I403", f.key.span, f'key "{text}" is not 32 bytes of base64')
        return ""
    return text


def _nodekey_base64(text: str) -> str | None:
    try:
        raw = bytes.fromhex(text.removeprefix("nodekey:"))
    except ValueError:
        return None
    return base64.b64encode(raw).decode() if len(raw) == 32 else None


def outside_message(address: IPAddress) -> str:
    return (f"address {address} is outside {TAILNET_RANGES[0]} and {TAILNET_RANGES[1]}: "
            "Tailscale never assigns it")


def _endpoint(r: Reader, value: JString | None) -> str | None:
    """`IPv4:port` or `[IPv6]:port`, nothing else: the text reaches `wg set` and
    a WireGuard config line, so a hostname or any extra word is refused."""
    if value is None:
        return None
    text = value.value
    parsed = parse_endpoint(text)
    if parsed is None:
        guess = (f"{text}:{WIREGUARD_PORT}" if parse_address(text) and "." in text
                 else f"[{text}]:{WIREGUARD_PORT}" if parse_address(text) else None)
        r.diags.error("I409", value.span,
                      f'endpoint "{text}" is not IPv4:port or [IPv6]:port',
                      notes=_endpoint_notes(text), suggestion=guess)
        return None
    return parsed


def _endpoint_notes(text: str) -> tuple[str, ...]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or parse_address(text) is not None:
        return ()
    if not 0 < int(port) < 65536:
        return ("the port must be 1-65535",)
    if parse_address(host.strip("[]")) is None and " " not in text:
        return ("host names are not resolved: give the address",)
    return ()


def parse_endpoint(text: str) -> str | None:
    """The endpoint in canonical form, or None when it is not an address and port."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isascii() or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    bracketed = host.startswith("[") and host.endswith("]")
    address = parse_address(host[1:-1] if bracketed else host)
    if address is None or (address.version == 6) != bracketed or "%" in host:
        return None
    return f"[{address}]:{int(port)}" if bracketed else f"{address}:{int(port)}"


"""The node inventory (`--nodes FILE`) -> `Inventory`.

Three shapes are accepted, all JSON or HuJSON:
  * ours: `{"nodes": [{"name", "user", "tags", "ips", "key", "routes",
    "exit_node", "endpoint"}]}` (the conformance cases' extra
    `advertised_routes`/`approved_routes` are ignored);
  * a bare array of such nodes;
  * the Tailscale API device list `{"devices": [{"name": "host.tailnet.ts.net",
    "user", "tags", "addresses", "nodeKey": "nodekey:<hex>", "enabledRoutes",
    ...}]}`.
Either object shape may carry a `users` list: `[{"login", "role"}]` (the
conformance cases' shape) or the Tailscale API's users (`loginName`, `role`,
other keys ignored). Roles are Tailscale's (owner, admin, member, it-admin,
network-admin, billing-admin, auditor); role autogroups (`autogroup:admin`
...) resolve from them. Without a `users` list roles are unknown.
Problems are I4xx diagnostics with spans; a bad node or user is reported and
skipped, the rest still load.
"""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from policyc.compiler.nodes import ROLES, Inventory, Node, User
from policyc.compiler.validate_node import key_is_valid
from policyc.diagnostics.diagnostics import Diagnostics
from policyc.diagnostics.source import SourceFile, Span
from policyc.grammar.cst import JNull, JObject, JString, JValue
from policyc.grammar.hujson import parse
from policyc.policy.aliases import TAG_NAME, parse_address, parse_network
from policyc.policy.jsonread import Reader
from policyc.policy.load import load_file
from policyc.policy.model import IPAddress, IPNetwork

EXIT_ROUTES = (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0"))
NODE_FIELDS = frozenset({"name", "user", "tags", "ips", "key", "routes", "exit_node",
                         "endpoint", "advertised_routes", "approved_routes"})


@dataclass(frozen=True, slots=True)
class _Fields:
    """One node's raw values, whichever input shape they came from."""

    span: Span
    name: JString | None
    user: JValue | None
    tags: JValue | None
    ips: JValue | None
    key: str
    key_span: Span
    routes: JValue | None
    exit_node: bool
    endpoint: JValue | None = None


def load_inventory(source: SourceFile, diags: Diagnostics) -> Inventory:
    """Parse and check an inventory file; best effort, callers check `diags`."""
    return build_inventory(parse(source, diags), diags)


def build_inventory(tree: JValue | None, diags: Diagnostics) -> Inventory:
    r = Reader(diags, unknown_code="I401", wrong_type_code="I401", missing_code="I401")
    if tree is None:
        return Inventory.of([])
    items, read = _shape(r, tree)
    nodes = [node for item in items if (node := _node(r, read(r, item))) is not None]
    _check_duplicates(nodes, diags)
    users = _users(r, tree.get("users")) if isinstance(tree, JObject) else None
    return Inventory.of(nodes, users)


Read = Callable[[Reader, JValue], "_Fields | None"]


def _shape(r: Reader, tree: JValue) -> tuple[tuple[JValue, ...], Read]:
    """The node entries and the reader for their shape."""
    if isinstance(tree, JObject):
        f = r.fields(tree, "inventory", frozenset({"nodes", "devices", "users"}))
        if "devices" in f:
            array = r.arr(f["devices"], "devices")
            return (array.items if array else ()), _device_fields
        if "nodes" in f:
            array = r.arr(f["nodes"], "nodes")
            return (array.items if array else ()), _node_fields
        if "users" not in f:
            r.diags.error("I401", tree.span,
                          'inventory: expected a "nodes" or "devices" array')
        return (), _node_fields
    array = r.arr(tree, "inventory", 'an object with "nodes" or an array of nodes')
    return (array.items if array else ()), _node_fields


def _node_fields(r: Reader, value: JValue) -> _Fields | None:
    obj = r.obj(value, "node")
    if obj is None:
        return None
    f = r.fields(obj, "node", NODE_FIELDS, required=("name",))
    key = r.string(f["key"], "key") if "key" in f and not isinstance(f["key"], JNull) else None
    exit_node = r.boolean(f["exit_node"], "exit_node") if "exit_node" in f else False
    name = r.string(f["name"], "name") if "name" in f else None
    return _Fields(obj.span, name, f.get("user"), f.get("tags"), f.get("ips"),
                   key.value if key else "", key.span if key else obj.span,
                   f.get("routes"), exit_node, f.get("endpoint"))


def _device_fields(r: Reader, value: JValue) -> _Fields | None:
    """A Tailscale API device; keys we do not need are ignored, not errors."""
    obj = r.obj(value, "device")
    if obj is None:
        return None
    raw = obj.get("name") or obj.get("hostname")
    name = r.string(raw, "name") if raw is not None else None
    if name is None and raw is None:
        r.diags.error("I401", obj.span, 'device: missing required field "name"')
    if name is not None:  # MagicDNS FQDN -> its first label, the machine name
        name = JString(name.value.split(".", 1)[0], name.span)
    key_value = obj.get("nodeKey")
    key = r.string(key_value, "nodeKey") if key_value is not None else None
    return _Fields(obj.span, name, obj.get("user"), obj.get("tags"), obj.get("addresses"),
                   _node_key_base64(key.value) if key else "", key.span if key else obj.span,
                   obj.get("enabledRoutes"), False)


def _users(r: Reader, value: JValue | None) -> tuple[User, ...] | None:
    """The `users` list; None when absent (roles unknown)."""
    if value is None:
        return None
    array = r.arr(value, "users")
    out: dict[str, User] = {}
    for item in array.items if array else ():
        obj = r.obj(item, "user")
        if obj is None:
            continue
        raw = obj.get("login") or obj.get("loginName")
        login = r.string(raw, "login") if raw is not None else None
        role_value = obj.get("role")
        role = r.string(role_value, "role") if role_value is not None else None
        if raw is None:
            r.diags.error("I401", obj.span, 'user: missing required field "login"')
        if login is None:
            continue
        if "@" not in login.value:
            r.diags.error("I401", login.span, f'user "{login.value}" must contain @')
            continue
        if role is not None and role.value not in ROLES:
            r.diags.error("I401", role.span, f'user "{login.value}": unknown role '
                          f'"{role.value}" (one of {", ".join(sorted(ROLES))})')
            continue
        if login.value in out:
            r.diags.error("I402", obj.span, f'user "{login.value}" is listed twice')
            continue
        out[login.value] = User(login.value, role.value if role else "member", obj.span)
    return tuple(out.values())


def _node_key_base64(text: str) -> str:
    """`nodekey:<hex>` as WireGuard's base64; other text is kept for the key check."""
    if not text.startswith("nodekey:"):
        return text
    try:
        return base64.b64encode(bytes.fromhex(text.removeprefix("nodekey:"))).decode()
    except ValueError:
        return text


def _node(r: Reader, f: _Fields | None) -> Node | None:
    if f is None or f.name is None:
        return None
    errors = len(r.diags.errors)
    if not f.name.value.strip():
        r.diags.error("I401", f.name.span, "node name must not be empty")
    tags = _tags(r, f.tags)
    user = _user(r, f.user, tagged=bool(tags))
    ips = _ips(r, f.ips)
    routes = _routes(r, f.routes)
    exit_node = f.exit_node or any(route in EXIT_ROUTES for route in routes)
    _check_key(r, f.key, f.key_span)
    endpoint = (r.string(f.endpoint, "endpoint")
                if f.endpoint is not None and not isinstance(f.endpoint, JNull) else None)
    if len(r.diags.errors) > errors:
        return None
    return Node(f.name.value.strip(), user, tags, ips, f.key,
                tuple(route for route in routes if route not in EXIT_ROUTES), exit_node,
                endpoint.value if endpoint else None, f.span)


def _user(r: Reader, value: JValue | None, *, tagged: bool) -> str | None:
    """The owner's login. A tagged node belongs to its tags, so its `user` is
    ignored; Tailscale reports such nodes' user as "tagged-devices" (no @)."""
    if value is None or isinstance(value, JNull):
        return None
    text = r.string(value, "user")
    if text is None:
        return None
    if "@" not in text.value:
        if tagged:
            return None
        r.diags.error("I401", text.span, f'user "{text.value}" must contain @')
    return text.value


def _tags(r: Reader, value: JValue | None) -> tuple[str, ...]:
    tags = r.strings(value, "tags") if value is not None and not isinstance(value, JNull) else ()
    for tag in tags:
        if not (tag.value.startswith("tag:") and TAG_NAME.fullmatch(tag.value[4:])):
            r.diags.error("I401", tag.span, f'"{tag.value}" is not a tag (tag:NAME)')
    return tuple(t.value for t in tags)


def _ips(r: Reader, value: JValue | None) -> tuple[IPAddress, ...]:
    out = []
    for text in r.strings(value, "ips") if value is not None else ():
        address = parse_address(text.value.strip())
        if address is None:
            r.diags.error("I401", text.span, f'"{text.value}" is not an IP address')
        else:
            out.append(address)
    return tuple(out)


def _routes(r: Reader, value: JValue | None) -> tuple[IPNetwork, ...]:
    out = []
    items = r.strings(value, "routes") if value is not None and not isinstance(
        value, JNull) else ()
    for text in items:
        network = parse_network(text.value.strip())
        if network is None:
            r.diags.error("I401", text.span, f'route "{text.value}" is not a CIDR prefix')
        else:
            out.append(network)
    return tuple(out)


def _check_key(r: Reader, key: str, span: Span) -> None:
    """Keys are optional (empty); a given key must be 32 bytes of base64."""
    if key and not key_is_valid(key):
        r.diags.error("I403", span, f'key "{key}" is not 32 bytes of base64')


def _check_duplicates(nodes: list[Node], diags: Diagnostics) -> None:
    """Names, addresses and keys identify nodes, so each must be unique."""
    names: set[str] = set()
    owner_of: dict[tuple[str, object], str] = {}
    for node in nodes:
        if node.name in names:
            diags.error("I402", node.span, f'node name "{node.name}" is used twice')
        names.add(node.name)
        identities: list[tuple[str, object]] = [("address", ip) for ip in node.ips]
        if node.key:
            identities.append(("key", node.key))
        for kind, identity in identities:
            other = owner_of.setdefault((kind, identity), node.name)
            if other != node.name:
                diags.error("I402", node.span,
                            f'node "{node.name}": {kind} {identity} is already used by '
                            f'node "{other}"')


def load_inventory_text(text: str, name: str = "<string>") -> tuple[Inventory, Diagnostics]:
    diags = Diagnostics()
    return load_inventory(SourceFile(name, text), diags), diags


def load_inventory_file(path: str | Path) -> tuple[Inventory | None, Diagnostics]:
    """The inventory at `path`; None (with a P006) when the file cannot be read."""
    return load_file(path, load_inventory)

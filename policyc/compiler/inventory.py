"""The node inventory (`--nodes FILE`) -> `Inventory`.

Three shapes are accepted, all JSON or HuJSON: ours (`{"nodes": [...]}`), a
bare array of our nodes, and the Tailscale API device list
(`{"devices": [...]}`); `nodefields.py` reads an entry of either kind and
`nodecheck.py` judges it. Either object shape may carry a `users` list:
`[{"login", "role"}]` (the conformance cases' shape) or the Tailscale API's
users (`loginName`, `role`, other keys ignored). Roles are Tailscale's (owner,
admin, member, it-admin, network-admin, billing-admin, auditor); role
autogroups (`autogroup:admin` ...) resolve from them. Without a `users` list
roles are unknown. Problems are I4xx diagnostics with spans; a bad node or
user is reported and skipped, the rest still load. What needs the policy
(tags that `tagOwners` does not define) is `crosscheck.py`'s.
"""

from __future__ import annotations

from pathlib import Path

from policyc.compiler.inventory_fast import fast_inventory
from policyc.compiler.nodecheck import entry_node
from policyc.compiler.nodefields import NodeShape, inventory_reader
from policyc.compiler.nodes import ROLES, Inventory, User
from policyc.compiler.uniqueness import unique_nodes
from policyc.diagnostics.diagnostics import Diagnostics
from policyc.diagnostics.source import SourceFile
from policyc.grammar.cst import JObject, JValue
from policyc.grammar.hujson import parse
from policyc.policy.jsonread import Reader
from policyc.policy.load import load_file

TOP_LEVEL_FIELDS = frozenset({"nodes", "devices", "users"})


def load_inventory(source: SourceFile, diags: Diagnostics) -> Inventory:
    """Parse and check an inventory file; best effort, callers check `diags`.
    A clean JSON file is read without the value tree (`inventory_fast.py`);
    anything it cannot vouch for is walked here, with locations."""
    fast = fast_inventory(source)
    if fast is not None:
        return fast
    return build_inventory(parse(source, diags), diags)


def build_inventory(tree: JValue | None, diags: Diagnostics) -> Inventory:
    if tree is None:
        return Inventory.of([])
    r = inventory_reader(diags)
    items, shape = _entries(r, tree)
    nodes = [node for item in items if (node := entry_node(r, item, shape)) is not None]
    users = _users(r, tree.get("users")) if isinstance(tree, JObject) else None
    return Inventory.of(unique_nodes(nodes, diags), users)


def _entries(r: Reader, tree: JValue) -> tuple[tuple[JValue, ...], NodeShape]:
    """The node entries and their shape."""
    if not isinstance(tree, JObject):
        array = r.arr(tree, "inventory", 'an object with "nodes" or an array of nodes')
        return (array.items if array else ()), "nodes"
    f = r.fields(tree, "inventory", TOP_LEVEL_FIELDS)
    if "devices" in f and "nodes" in f:
        r.diags.error("I401", tree.span,
                      'inventory: both "nodes" and "devices": give one list of nodes '
                      "(neither is read)")
        return (), "nodes"
    shape: NodeShape = "devices" if "devices" in f else "nodes"
    if shape not in f:
        if "users" not in f:
            r.diags.error("I401", tree.span,
                          'inventory: expected a "nodes" or "devices" array')
        return (), shape
    array = r.arr(f[shape], shape)
    return (array.items if array else ()), shape


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


def load_inventory_text(text: str, name: str = "<string>") -> tuple[Inventory, Diagnostics]:
    diags = Diagnostics()
    return load_inventory(SourceFile(name, text), diags), diags


def load_inventory_file(path: str | Path) -> tuple[Inventory | None, Diagnostics]:
    """The inventory at `path`; None (with a P006) when the file cannot be read."""
    return load_file(path, load_inventory)

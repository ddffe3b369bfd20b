"""One inventory entry's raw values, read from either input shape.

Ours: `{"name", "user", "tags", "ips", "key", "routes", "exit_node",
"endpoint"}` (the conformance cases' extra `advertised_routes` and
`approved_routes` are accepted but not read: `routes` and `exit_node` say what
is approved, and a disagreeing `approved_routes` is an I414 warning). The
Tailscale API's device:
`{"name": "host.tailnet.ts.net", "user", "tags", "addresses",
"nodeKey": "nodekey:<hex>", "enabledRoutes", ...}`, where the many keys we do
not need are ignored, not errors. Reading only checks JSON types (I401);
`nodecheck.py` judges the values.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from policyc.diagnostics.diagnostics import Diagnostics
from policyc.grammar.cst import JNull, JObject, JString, JValue
from policyc.policy.jsonread import Reader

NodeShape = Literal["nodes", "devices"]

NODE_FIELDS = frozenset({"name", "user", "tags", "ips", "key", "routes", "exit_node",
                         "endpoint", "advertised_routes", "approved_routes"})


@dataclass(frozen=True, slots=True)
class FieldNames:
    """What each field is called in one shape, so messages use the user's words."""

    entry: str
    ips: str
    key: str
    routes: str


FIELD_NAMES: dict[NodeShape, FieldNames] = {
    "nodes": FieldNames("node", "ips", "key", "routes"),
    "devices": FieldNames("device", "addresses", "nodeKey", "enabledRoutes"),
}


@dataclass(frozen=True, slots=True)
class NodeFields:
    """One entry's values as written; None where a field is absent or null."""

    shape: NodeShape
    entry: JObject
    name: JString | None
    user: JValue | None
    tags: JValue | None
    ips: JValue | None
    key: JString | None
    routes: JValue | None
    exit_node: bool
    endpoint: JString | None
    approved_routes: JValue | None = None  # ours only; compared, never read

    @property
    def names(self) -> FieldNames:
        return FIELD_NAMES[self.shape]


def inventory_reader(diags: Diagnostics) -> Reader:
    """The policy's typed JSON reader, reporting with the inventory's code."""
    return Reader(diags, unknown_code="I401", wrong_type_code="I401", missing_code="I401")


def read_node(r: Reader, value: JValue) -> NodeFields | None:
    """An entry of our shape; unknown fields are errors (with a did-you-mean)."""
    obj = r.obj(value, "node")
    if obj is None:
        return None
    f = r.fields(obj, "node", NODE_FIELDS, required=("name",))
    exit_node = (r.boolean(f["exit_node"], "exit_node")
                 if _present(f.get("exit_node")) else False)
    name = r.string(f["name"], "name") if "name" in f else None  # null is no name: I401
    return NodeFields("nodes", obj, name, _given(f.get("user")),
                      _given(f.get("tags")), _given(f.get("ips")),
                      _string(r, f.get("key"), "key"), _given(f.get("routes")), exit_node,
                      _string(r, f.get("endpoint"), "endpoint"), _given(f.get("approved_routes")))


def read_device(r: Reader, value: JValue) -> NodeFields | None:
    """A Tailscale API device; `hostname` stands in for a missing `name`."""
    obj = r.obj(value, "device")
    if obj is None:
        return None
    raw_name = _given(obj.get("name")) or _given(obj.get("hostname"))
    if raw_name is None:
        r.diags.error("I401", obj.span, 'device: missing required field "name"')
    return NodeFields("devices", obj, _string(r, raw_name, "name"), _given(obj.get("user")),
                      _given(obj.get("tags")), _given(obj.get("addresses")),
                      _string(r, obj.get("nodeKey"), "nodeKey"),
                      _given(obj.get("enabledRoutes")), False, None)


READERS: dict[NodeShape, Callable[[Reader, JValue], NodeFields | None]] = {
    "nodes": read_node,
    "devices": read_device,
}


def _present(value: JValue | None) -> bool:
    return value is not None and not isinstance(value, JNull)


def _given(value: JValue | None) -> JValue | None:
    """null reads as absent: `"tags": null` and no `tags` mean the same."""
    return value if _present(value) else None


def _string(r: Reader, value: JValue | None, what: str) -> JString | None:
    return r.string(value, what) if value is not None and _present(value) else None

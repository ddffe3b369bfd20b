"""inventory.py: the three inventory shapes, and I4xx checks with spans."""

from __future__ import annotations

import base64
import ipaddress
import json
from pathlib import Path
from typing import Any

import pytest

from policyc.compiler.inventory import load_inventory_file, load_inventory_text

KEY = base64.b64encode(bytes(range(32))).decode()
KEY2 = base64.b64encode(bytes(range(1, 33))).decode()


def node(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"name": "web-1", "user": "a@x.com", "tags": [],
                            "ips": ["100.64.0.10", "fd7a:115c:a1e0::a"], "key": KEY}
    base.update(overrides)
    return base


def codes(*nodes: dict[str, Any]) -> list[str]:
    _, diags = load_inventory_text(json.dumps({"nodes": list(nodes)}))
    return [d.code for d in diags.errors]


def test_our_shape() -> None:
    text = json.dumps({"nodes": [node(tags=["tag:web"], routes=["10.0.0.0/16"],
                                      endpoint="192.0.2.1:41641", exit_node=False)]})
    inventory, diags = load_inventory_text(text)
    assert not diags.items
    web = inventory.get("web-1")
    assert web is not None and web.tags == ("tag:web",) and web.owner is None
    assert web.routes == (ipaddress.ip_network("10.0.0.0/16"),)
    assert web.endpoint == "192.0.2.1:41641" and web.key == KEY
    assert web.span.text.startswith("{")


def test_hujson_with_comments_and_bare_list() -> None:
    inventory, diags = load_inventory_text(
        '[ // one node\n {"name": "a", "user": "a@x.com", "ips": ["100.64.0.1"]},\n]')
    assert not diags.items and [n.name for n in inventory] == ["a"]


def test_conformance_node_shape_loads() -> None:
    extra = node(key=None, advertised_routes=["0.0.0.0/0"], approved_routes=["0.0.0.0/0"],
                 exit_node=True)
    inventory, diags = load_inventory_text(json.dumps({"nodes": [extra]}))
    assert not diags.items and inventory.nodes[0].exit_node and inventory.nodes[0].key == ""


def test_exit_routes_move_to_exit_node() -> None:
    text = json.dumps({"nodes": [node(routes=["10.1.0.0/16", "0.0.0.0/0", "::/0"])]})
    inventory, _ = load_inventory_text(text)
    only = inventory.nodes[0]
    assert only.exit_node and only.routes == (ipaddress.ip_network("10.1.0.0/16"),)


def test_tailscale_api_devices() -> None:
    devices = {"devices": [{
        "name": "laptop.tail1234.ts.net", "hostname": "Laptop", "user": "a@x.com",
        "tags": ["tag:ci"], "addresses": ["100.64.0.1", "fd7a:115c:a1e0::1"],
        "nodeKey": "nodekey:" + bytes(range(32)).hex(), "os": "linux",
        "advertisedRoutes": ["10.0.0.0/8", "0.0.0.0/0"],
        "enabledRoutes": ["10.0.0.0/8", "0.0.0.0/0"],
    }]}
    inventory, diags = load_inventory_text(json.dumps(devices))
    assert not diags.items, [str(d) for d in diags]
    laptop = inventory.get("laptop")
    assert laptop is not None and laptop.key == KEY and laptop.exit_node
    assert laptop.routes == (ipaddress.ip_network("10.0.0.0/8"),)


@pytest.mark.parametrize(("bad", "code"), [
    ({"name": ""}, "I408"),
    ({"ips": ["100.64.0.999"]}, "I401"),
    ({"ips": ["100.64.0.0/24"]}, "I401"),
    ({"tags": ["web"]}, "I401"),
    ({"user": "alice"}, "I401"),
    ({"routes": ["10.0.0.0/33"]}, "I401"),
    ({"ips": "100.64.0.1"}, "I401"),
    ({"key": "not base64!"}, "I403"),
    ({"key": base64.b64encode(b"short").decode()}, "I403"),
    ({"nmae": "x"}, "I401"),
])
def test_bad_nodes(bad: dict[str, Any], code: str) -> None:
    assert code in codes(node(**bad))


def test_missing_name() -> None:
    entry = node()
    del entry["name"]
    assert codes(entry) == ["I401"]


@pytest.mark.parametrize("second", [
    node(ips=["100.64.0.99"], key=KEY2),
    node(name="web-2", key=KEY2),
    node(name="web-2", ips=["100.64.0.99"]),
])
def test_duplicates(second: dict[str, Any]) -> None:
    assert set(codes(node(), second)) == {"I402"}


def test_bad_node_skipped_rest_loaded_with_spans() -> None:
    text = ('{"nodes": [\n {"name": "a", "tags": ["tag:a"], "ips": ["x"]},\n'
            ' {"name": "b", "tags": ["tag:b"], "ips": ["100.64.0.2"]}\n]}')
    inventory, diags = load_inventory_text(text, "nodes.json")
    assert [n.name for n in inventory] == ["b"]
    assert [(d.code, d.span.line, d.span.column) for d in diags] == [("I401", 2, 43)]


def test_wrong_top_level() -> None:
    _, diags = load_inventory_text('{"hosts": []}')
    assert [d.code for d in diags.errors] == ["I401", "I401"]


def test_missing_file_is_io_error(tmp_path: Path) -> None:
    inventory, diags = load_inventory_file(tmp_path / "absent.json")
    assert inventory is None and [d.code for d in diags] == ["P006"]


def test_sample_inventory_loads() -> None:
    sample = Path(__file__).resolve().parents[2] / "samples" / "nodes.json"
    if not sample.exists():
        pytest.skip("samples/nodes.json not present")
    inventory, diags = load_inventory_file(sample)
    assert inventory is not None and len(inventory) > 0 and not diags.errors

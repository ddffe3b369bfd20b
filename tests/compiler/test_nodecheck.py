"""validate_node (one entry, either shape), names, endpoints, uniqueness, tagOwners."""

from __future__ import annotations

import base64
import ipaddress
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from policyc.compiler.crosscheck import check_inventory_against_policy
from policyc.compiler.inventory import load_inventory_text
from policyc.compiler.names import contained_path, is_dns_name, suggest_dns_name
from policyc.compiler.nodecheck import parse_endpoint, validate_node_entry_text
from policyc.compiler.nodes import Node
from policyc.compiler.uniqueness import node_conflicts
from policyc.compiler.validate_node import check_node, node_problems
from policyc.diagnostics.diagnostics import Diagnostics
from policyc.policy.load import load_policy_text

GOOD = {"name": "web-1", "user": "a@x.com", "ips": ["100.64.0.10"]}


def one(entry: dict[str, Any], shape: str = "nodes") -> tuple[list[str], bool]:
    node, diags = validate_node_entry_text(json.dumps(entry), shape=shape)  # type: ignore[arg-type]
    return [d.code for d in diags], node is not None


def test_validate_node_accepts_a_good_entry_and_keeps_spans() -> None:
    node, diags = validate_node_entry_text(json.dumps({**GOOD, "tags": ["tag:web"]}), "event")
    assert not diags.items and node is not None
    assert node.name == "web-1" and node.name_span.text == '"web-1"'
    assert [s.text for s in node.tag_spans] == ['"tag:web"']


def test_validate_node_device_shape() -> None:
    device = {"name": "laptop.tail1234.ts.net.", "user": "a@x.com",
              "addresses": ["100.64.0.1"], "nodeKey": "nodekey:" + "ab" * 32}
    node, diags = validate_node_entry_text(json.dumps(device), shape="devices")
    assert not diags.items and node is not None and node.name == "laptop"


def test_validate_node_entry_text_that_does_not_parse() -> None:
    node, diags = validate_node_entry_text('{"name": ')
    assert node is None and [d.code for d in diags] == ["P001"]


@pytest.mark.parametrize(("entry", "want", "loads"), [
    ({"name": "a", "user": "a@x.com"}, ["I405"], False),
    ({**GOOD, "ips": []}, ["I405"], False),
    ({"name": "a", "ips": ["100.64.0.1"]}, ["I406"], False),
    ({"name": "a", "user": None, "ips": ["100.64.0.1"]}, ["I406"], False),
    ({**GOOD, "name": "../x"}, ["I408"], False),
    ({**GOOD, "name": None}, ["I401"], False),
    ({**GOOD, "endpoint": "1.2.3.4:5 allowed-ips 0.0.0.0/0"}, ["I409"], False),
    ({**GOOD, "routes": ["::/0"]}, ["I410"], True),
    ({**GOOD, "ips": ["10.0.0.1"]}, ["I411"], True),
    ({**GOOD, "routes": ["10.0.0.1/8"]}, ["I413"], True),
    ({**GOOD, "ips": ["127.0.0.1"]}, ["I401"], False),
    ({**GOOD, "ips": ["100.64.0.1", "100.64.0.1"]}, ["I402"], True),
    ({**GOOD, "key": "nodekey:" + "ab" * 32}, ["I403"], False),
])
def test_validate_node_table(entry: dict[str, Any], want: list[str], loads: bool) -> None:
    assert one(entry) == (want, loads)


@pytest.mark.parametrize(("name", "ok"), [
    ("web-1", True), ("a", True), ("A1.example.com", True), ("x" * 63, True),
    ("x" * 64, False), ("", False), ("..", False), ("../x", False), ("a/b", False),
    ("-a", False), ("a-", False), ("a..b", False), ("a.", False), ("a_b", False),
    ("a b", False), ("ä", False), (".".join(["abc"] * 62) + ".ab", True),
    (".".join(["abc"] * 64), False),
])
def test_dns_names(name: str, ok: bool) -> None:
    assert is_dns_name(name) is ok


@pytest.mark.parametrize(("name", "guess"), [
    ("Bob's Laptop", "bob-s-laptop"), ("../x", "x"), ("web_1", "web-1"), ("web-1", None),
    ("../..", None),
])
def test_name_suggestions(name: str, guess: str | None) -> None:
    assert suggest_dns_name(name) == guess


@pytest.mark.parametrize(("text", "canonical"), [
    ("192.0.2.1:41641", "192.0.2.1:41641"), ("[fd00::0:1]:51820", "[fd00::1]:51820"),
    ("192.0.2.1", None), ("192.0.2.1:0", None), ("192.0.2.1:65536", None),
    ("fd00::1:51820", None), ("[192.0.2.1]:1", None), ("host.example:1", None),
    ("1.2.3.4:5 allowed-ips 0.0.0.0/0", None), ("1.2.3.4:5\nEndpoint", None),
    ("[fe80::1%eth0]:1", None), ("1.2.3.4:+5", None), ("1.2.3.4:\u0665", None),
])
def test_endpoints(text: str, canonical: str | None) -> None:
    assert parse_endpoint(text) == canonical


def test_contained_path(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    assert contained_path(out, "web-1.json") == out.resolve() / "web-1.json"
    for bad in ("../x.json", "..", ".", "", "a/b.json", "/etc/passwd", "a\0.json"):
        assert contained_path(out, bad) is None, bad
    (out / "planted.json").symlink_to(tmp_path / "elsewhere.json")
    assert contained_path(out, "planted.json") is None


def test_node_conflicts_for_one_arriving_node() -> None:
    text = json.dumps({"nodes": [GOOD, {**GOOD, "name": "web-2", "ips": ["100.64.0.11"]}]})
    inventory, diags = load_inventory_text(text)
    assert not diags.items
    changed, _ = validate_node_entry_text(json.dumps({**GOOD, "ips": ["100.64.0.12"]}))
    assert changed is not None and not node_conflicts(changed, inventory, Diagnostics())
    clash, _ = validate_node_entry_text(
        json.dumps({**GOOD, "name": "Web-2", "ips": ["100.64.0.11"]}))
    found = Diagnostics()
    assert clash is not None and node_conflicts(clash, inventory, found)
    assert [d.code for d in found] == ["I402", "I402"]


def test_undefined_tag_is_a_warning_and_the_node_loses_it() -> None:
    policy, pdiags = load_policy_text('{"tagOwners": {"tag:web": ["a@x.com"]}}')
    assert not pdiags.items
    text = json.dumps({"nodes": [{**GOOD, "tags": ["tag:web", "tag:wbe", "tag:db"]}]})
    inventory, diags = load_inventory_text(text)
    checked = check_inventory_against_policy(policy, inventory, diags)
    assert [(d.code, d.severity.value, d.span.text, d.suggestion) for d in diags] == [
        ("I407", "warning", '"tag:wbe"', "tag:web"), ("I407", "warning", '"tag:db"', None)]
    (node,) = checked.nodes
    assert node.tags == ("tag:web",) and [s.text for s in node.tag_spans] == ['"tag:web"']
    assert inventory.nodes[0].tags == ("tag:web", "tag:wbe", "tag:db")  # input untouched


def test_all_tags_undefined_leaves_an_owned_or_ownerless_node() -> None:
    policy, _ = load_policy_text("{}")
    text = json.dumps({"nodes": [{**GOOD, "tags": ["tag:x"]},
                                 {"name": "b", "tags": ["tag:x"], "ips": ["100.64.0.2"]}]})
    inventory, diags = load_inventory_text(text)
    checked = check_inventory_against_policy(policy, inventory, diags)
    assert [(n.tags, n.owner) for n in checked] == [((), "a@x.com"), ((), None)]
    assert ["a@x.com" in d.notes[-1] for d in diags] == [True, False]


def built(**changes: Any) -> Node:
    base = Node("web-1", "a@x.com", (), (ipaddress.ip_address("100.64.0.10"),),
                key=base64.b64encode(bytes(32)).decode(), endpoint="192.0.2.1:41641")
    return replace(base, **changes)


@pytest.mark.parametrize(("changes", "errors", "warnings"), [
    ({}, [], []),
    ({"name": "../x"}, ["I408"], []),
    ({"user": None}, ["I406"], []),
    ({"user": "alice"}, ["I401"], []),
    ({"tags": ("web",)}, ["I401"], []),
    ({"ips": ()}, ["I405"], []),
    ({"ips": (ipaddress.ip_address("0.0.0.0"),)}, ["I401"], []),
    ({"ips": (ipaddress.ip_address("10.0.0.1"),)}, [], ["I411"]),
    ({"ips": (ipaddress.ip_address("100.64.0.1"),) * 2}, [], ["I402"]),
    ({"routes": (ipaddress.ip_network("0.0.0.0/0"),)}, ["I410"], []),
    ({"key": "short"}, ["I403"], []),
    ({"endpoint": "192.0.2.1:41641\nEndpoint = x"}, ["I409"], []),
])
def test_check_node_on_a_built_node(changes: dict[str, Any], errors: list[str],
                                    warnings: list[str]) -> None:
    node = built(**changes)
    diags = Diagnostics()
    assert check_node(node, diags) is (not errors)
    assert [d.code for d in diags.errors] == errors
    assert [d.code for d in diags.warnings] == warnings
    assert [code for code, _ in node_problems(node)] == errors

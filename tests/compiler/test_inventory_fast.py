"""inventory_fast.py: a file it reads gives exactly the checked path's nodes and
spans with nothing to report; everything else is left to the checked path."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from policyc.compiler.inventory import build_inventory, load_inventory_text
from policyc.compiler.inventory_fast import fast_inventory
from policyc.compiler.nodes import Inventory
from policyc.diagnostics.diagnostics import Diagnostics
from policyc.diagnostics.source import SourceFile, Span
from policyc.grammar.hujson import parse

ROOT = Path(__file__).resolve().parents[2]

# Values a field may take besides a node's own good ones: some fine, most for
# one check or another to refuse.
OTHER_VALUES: dict[str, list[Any]] = {
    "name": ["Web-1", "db.prod", "n0", "N1", "", "bad name", "x" * 64, "-x", None, 7],
    "user": ["b@x.com", "alice", "tagged-devices", "br{ace@x.com", 'q"@x.com',
             "caf\u00e9@x.com", "colon:@x.com", None, 3],
    "tags": [[], ["tag:web", "tag:db"], ["web"], ["tag:1x"], [1], "tag:web", None],
    "ips": [[" 100.64.9.3 "], ["100.64.0.1"], ["100.64.9.1", "100.64.9.1"], ["10.0.0.1"],
            ["100.64.0.999"], [], ["FD7A:115C:A1E0::4"], ["fd7a:115c:a1e0:0::5"],
            ["127.0.0.1"], ["::ffff:100.64.0.6"], "100.64.0.7", [None], None],
    "key": ["", "nodekey:" + "00" * 32, "A" * 43 + "==", "short", None],
    "routes": [[], ["10.0.0.1/24"], ["10.1.0.0/16", "192.168.0.0/24"], ["0.0.0.0/0"],
               ["::/0"], ["10.0.0.0/33"], ["10.2.0.1"], None],
    "exit_node": [True, None, "yes", 0],
    "endpoint": ["[2001:db8::1]:41641", "192.0.2.1", "host:1", None],
    "advertised_routes": [["10.0.0.0/24"], [1.5], [{"x": 1}], None],
    "approved_routes": [None, [], ["10.0.0.0/24"]],
    "nmae": ["x"],
    "hostname": ["h"],
}
OPTIONAL = ["tags", "key", "routes", "exit_node", "endpoint", "advertised_routes"]


def own(key: str, i: int) -> Any:
    """Node i's good value of a field: unique where nodes must differ."""
    return {"name": f"n{i}", "user": "a@x.com", "tags": ["tag:web"],
            "ips": [f"100.64.0.{i + 1}", f"fd7a:115c:a1e0::{i + 1:x}"],
            "key": base64.b64encode(bytes([i]) * 32).decode(), "routes": ["10.0.0.0/24"],
            "exit_node": False, "endpoint": "192.0.2.1:41641",
            "advertised_routes": ["10.0.0.0/24"]}[key]


@st.composite
def entries(draw: st.DrawFn, i: int) -> list[tuple[str, Any]]:
    """Node i's entry as (key, value) pairs (so a key may repeat), good but for
    now and then one field."""
    picked = ["name", "ips"] + (["user"] if draw(st.integers(0, 5)) else [])
    picked += draw(st.lists(st.sampled_from(OPTIONAL), max_size=4, unique=True))
    pairs = [(key, own(key, i)) for key in picked]
    change = draw(st.integers(0, 3))
    if change == 1:
        key = draw(st.sampled_from(sorted(OTHER_VALUES)))
        value = draw(st.sampled_from(OTHER_VALUES[key]))
        pairs = [(k, v) for k, v in pairs if k != key] + [(key, value)]
    elif change == 2 and draw(st.integers(0, 3)) == 0:
        pairs.append(draw(st.sampled_from(pairs)))  # a repeated key
    elif change == 2:
        pairs = [p for p in pairs if p[0] != "name"]
    return pairs


def render(value: Any, gap: str, ensure_ascii: bool) -> str:
    """JSON text with `gap` around every token; pairs lists are objects."""
    if isinstance(value, list) and value and all(isinstance(v, tuple) for v in value):
        members = [f"{gap}{json.dumps(k)}{gap}:{gap}{render(v, gap, ensure_ascii)}"
                   for k, v in value]
        return "{" + ",".join(members) + gap + "}"
    return json.dumps(value, ensure_ascii=ensure_ascii)


@st.composite
def inventory_texts(draw: st.DrawFn) -> str:
    count = draw(st.integers(0, 6))
    nodes = [draw(entries(i)) for i in range(count)]
    gap = draw(st.sampled_from(["", " ", "\n  ", "\t"]))
    ensure_ascii = draw(st.booleans())  # escapes (\u00e9) where the text has any
    body = "[" + ",".join(gap + render(n, gap, ensure_ascii) for n in nodes) + gap + "]"
    top = draw(st.sampled_from(["nodes"] * 4 + ["bare", "users", "devices", "comment"]))
    if top == "bare":
        return body
    if top == "comment":
        return "// the fleet\n" + body
    if top == "users":
        return '{"nodes": ' + body + ', "users": [{"login": "a@x.com", "role": "admin"}]}'
    return "{" + gap + json.dumps(top) + ":" + gap + body + "}"


def checked(source: SourceFile) -> tuple[Inventory, Diagnostics]:
    diags = Diagnostics()
    return build_inventory(parse(source, diags), diags), diags


def where(span: Span) -> tuple[object, int, int]:
    return span.source, span.start, span.end


def assert_same(fast: Inventory, slow: Inventory) -> None:
    assert fast.nodes == slow.nodes and fast.users == slow.users
    for a, b in zip(fast.nodes, slow.nodes, strict=True):
        assert where(a.span) == where(b.span) and where(a.name_span) == where(b.name_span)
        assert list(map(where, a.tag_spans)) == list(map(where, b.tag_spans))
        assert [type(ip) for ip in a.ips] == [type(ip) for ip in b.ips]


@settings(max_examples=600, deadline=None)
@given(inventory_texts())
def test_fast_path_is_the_checked_path_when_it_answers(text: str) -> None:
    source = SourceFile("nodes.json", text)
    slow, diags = checked(source)
    fast = fast_inventory(source)
    if fast is None:
        return
    assert not diags.items, [str(d) for d in diags]
    assert_same(fast, slow)


def test_clean_inventories_take_the_fast_path() -> None:
    """The files the tests and benchmarks use are read fast (the property test
    alone could pass with a reader that always gave up)."""
    from benchmarks.dense_gen import generate

    sample = (ROOT / "samples" / "nodes.json").read_text()
    dense = json.dumps(generate(300)[1], indent=1)
    for text in (sample, dense, "[]", '{"nodes": []}'):
        source = SourceFile("nodes.json", text)
        fast = fast_inventory(source)
        assert fast is not None
        assert_same(fast, checked(source)[0])


def test_a_bad_node_is_reported_where_it_is_written() -> None:
    """One bad address among clean nodes: the checked path's located error."""
    nodes = [{"name": f"n{i}", "user": "a@x.com", "ips": [f"100.64.0.{i + 1}"]}
             for i in range(50)]
    nodes[40]["ips"] = ["100.64.0.300"]
    text = json.dumps({"nodes": nodes}, indent=1)
    inventory, diags = load_inventory_text(text, "nodes.json")
    assert len(inventory) == 49
    (error,) = diags.errors
    assert error.code == "I401" and error.span.text == '"100.64.0.300"'

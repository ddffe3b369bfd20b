"""Robustness: mangled policies give a Policy or diagnostics, never a traceback.

Seeds are the sample policy and a spread of conformance policies; mutations
work on the text (delete, insert, replace characters, drop colons) and on
the JSON structure (swap a value for one of another type, rename or drop a
key).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policyc.compiler.inventory import load_inventory_text
from policyc.diagnostics.diagnostics import Diagnostics
from policyc.policy.load import load_policy_text
from policyc.policy.model import Policy


def _seeds() -> list[str]:
    here = Path(__file__).resolve()
    seeds = []
    sample = here.parents[2] / "samples" / "policy.hujson"
    if sample.exists():
        seeds.append(sample.read_text())
    for parent in here.parents:
        cases = parent / "shared" / "conformance" / "tailscale"
        if cases.is_dir():
            files = sorted(cases.glob("*.json"))[::15]  # a spread across categories
            seeds += [json.loads(f.read_text())["policy"] for f in files]
            break
    seeds.append('{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}]}')
    return seeds


SEEDS = _seeds()
PIECES = [*'{}[]:,"\\/*@- \n', "tag:", "group:", "autogroup:self", "//", "/*", "null", "true",
          "0", "-1", "1e999", "\u0000", "é", "[fd7a::1]"]
SETTINGS = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def check(policy: Policy, diags: Diagnostics, text: str) -> None:
    assert isinstance(policy, Policy)
    for diag in diags:
        assert 0 <= diag.span.start <= diag.span.end <= max(len(text), diag.span.end)
        str(diag)  # renders without error


@st.composite
def text_mutations(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, len(text)))
        kind = draw(st.sampled_from(["delete", "insert", "replace", "drop-colons"]))
        if kind == "delete":
            text = text[:position] + text[position + draw(st.integers(1, 8)):]
        elif kind == "insert":
            text = text[:position] + draw(st.sampled_from(PIECES)) + text[position:]
        elif kind == "replace":
            text = text[:position] + draw(st.sampled_from(PIECES)) + text[position + 1:]
        else:
            text = text.replace(":", "", draw(st.integers(1, 3)))
    return text


@given(text_mutations())
@SETTINGS
def test_text_mutations_never_raise(text: str) -> None:
    policy, diags = load_policy_text(text, "mutant.hujson")
    check(policy, diags, text)


OTHER_VALUES: list[Any] = [None, True, 0, -1, 3.5, "", "*", "tag:x", "autogroup:self:*", [],
                           [1], ["group:nope"], {}, {"a": 1}, [[]], [{}]]


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            out += _paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            out += _paths(item, (*path, index))
    return out


def _parent_and_key(root: Any, path: tuple[Any, ...]) -> tuple[Any, Any]:
    parent = root
    for step in path[:-1]:
        parent = parent[step]
    return parent, path[-1]


@st.composite
def structure_mutations(draw: st.DrawFn) -> str:
    import json5  # HuJSON seeds (comments, trailing commas) are JSON5

    root = json5.loads(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(root) if p]
        if not paths:
            break
        parent, key = _parent_and_key(root, draw(st.sampled_from(paths)))
        kind = draw(st.sampled_from(["swap", "rename", "drop"]))
        if kind == "swap":
            parent[key] = copy.deepcopy(draw(st.sampled_from(OTHER_VALUES)))
        elif kind == "rename" and isinstance(parent, dict):
            parent[key.swapcase() or "x"] = parent.pop(key)
        elif isinstance(parent, dict):
            del parent[key]
        else:
            parent.pop(key)
    return json.dumps(root, indent=1)


@given(structure_mutations())
@SETTINGS
def test_structure_mutations_never_raise(text: str) -> None:
    policy, diags = load_policy_text(text, "mutant.hujson")
    check(policy, diags, text)


INVENTORY = json.dumps({"nodes": [
    {"name": "a", "user": "a@x.com", "tags": [], "ips": ["100.64.0.1"], "key": "",
     "routes": ["10.0.0.0/8"], "exit_node": False, "endpoint": None},
    {"name": "b", "user": None, "tags": ["tag:x"], "ips": ["100.64.0.2"], "key": ""},
]})


@given(st.lists(st.tuples(st.integers(0, len(INVENTORY)), st.sampled_from(PIECES)), max_size=4))
@SETTINGS
def test_inventory_mutations_never_raise(edits: list[tuple[int, str]]) -> None:
    text = INVENTORY
    for position, piece in edits:
        text = text[:position] + piece + text[position + 1:]
    inventory, diags = load_inventory_text(text, "nodes.json")
    assert len(inventory) <= 2 and all(d.code.startswith(("I", "P")) for d in diags)

"""Front-end review regressions: HuJSON values Go reads, inventory shapes, spans."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policyc.compiler.inventory import load_inventory_text
from policyc.diagnostics.render import render_full, render_json, render_sarif
from policyc.grammar.hujson import parse_text
from policyc.policy.load import load_policy_text


@pytest.mark.parametrize("digits", [4301, 5000, 20000])
def test_huge_integer_is_a_p004_not_a_crash(digits: int) -> None:
    text = '{"acls": 1' + "0" * (digits - 1) + "}"
    _, diags = load_policy_text(text)
    assert [d.code for d in diags] == ["P004"]
    assert diags.items[0].span.start == len('{"acls": ')
    assert diags.items[0].span.end == len(text) - 1


def test_integers_python_can_convert_are_kept_exactly() -> None:
    text = "-1" + "0" * 4299
    value, diags = parse_text(text)
    assert not diags.items
    assert value is not None and value.value == -(10 ** 4299)


@pytest.mark.parametrize("text", ["1e999", "-1e999", "1" + "0" * 400 + ".5"])
def test_float_out_of_range_is_rejected_like_go(text: str) -> None:
    value, diags = parse_text(f"[{text}]")
    assert value is None
    assert [d.code for d in diags] == ["P004"]


@settings(max_examples=60, deadline=None)
@given(st.integers(0xD800, 0xDFFF))
def test_escaped_lone_surrogate_reads_as_replacement_character(code: int) -> None:
    # Go's encoding/json turns an unpaired \uD800 into U+FFFD; a Python str
    # holding the surrogate itself cannot be encoded for output at all.
    value, diags = parse_text(f'["a\\u{code:04x}b"]')
    assert not diags.items
    assert value is not None
    assert json.loads(json.dumps([value.items[0].value])) == ["a\ufffdb"]  # type: ignore[union-attr]
    value.items[0].value.encode("utf-8")  # type: ignore[union-attr]


def test_surrogate_pairs_still_combine() -> None:
    value, _ = parse_text('["\\ud83d\\ude00"]')
    assert value is not None and value.items[0].value == "\U0001f600"  # type: ignore[union-attr]


def test_diagnostic_quoting_a_lone_surrogate_renders_as_utf8() -> None:
    _, diags = load_policy_text('{"acls": [{"action": "\\ud800", "src": [], "dst": []}]}')
    assert [d.code for d in diags] == ["E115"]
    for text in (render_full(diags), render_json(diags), render_sarif(diags)):
        text.encode("utf-8")


# --- inventory -----------------------------------------------------------------


@pytest.mark.parametrize("user", ["tagged-devices", ""])
def test_tagged_node_with_a_non_login_user_loads(user: str) -> None:
    # DESIGN.md: `user` is ignored for tagged nodes; Tailscale's own views
    # show tagged devices' user as "tagged-devices".
    devices = {"devices": [{"name": "srv.example.ts.net", "user": user, "tags": ["tag:server"],
                            "addresses": ["100.64.0.2"]}]}
    nodes = {"nodes": [{"name": "srv", "user": user, "tags": ["tag:server"],
                        "ips": ["100.64.0.2"]}]}
    for shape in (devices, nodes):
        inventory, diags = load_inventory_text(json.dumps(shape))
        assert not diags.items, [str(d) for d in diags]
        (node,) = list(inventory)
        assert node.name == "srv" and node.tags == ("tag:server",) and node.user is None


def test_untagged_node_still_needs_a_login() -> None:
    text = json.dumps({"nodes": [{"name": "a", "user": "tagged-devices", "ips": ["100.64.0.1"]}]})
    inventory, diags = load_inventory_text(text)
    assert [d.code for d in diags] == ["I401"]
    assert diags.items[0].span.text == '"tagged-devices"'
    assert not list(inventory)


# --- spans -----------------------------------------------------------------------


def test_undefined_default_src_posture_points_at_the_name() -> None:
    text = ('{\n  "postures": {"posture:mac": ["node:os == \'macos\'"]},\n'
            '  "defaultSrcPosture": ["posture:mac", "posture:macc"],\n  "acls": []\n}\n')
    _, diags = load_policy_text(text)
    assert [d.code for d in diags] == ["E126"]
    (diag,) = diags.items
    assert diag.span.text == '"posture:macc"'
    assert (diag.span.line, diag.suggestion) == (3, "posture:mac")


def test_default_src_posture_without_postures_is_reported_once() -> None:
    _, diags = load_policy_text('{"defaultSrcPosture": ["posture:a", 1]}')
    assert sorted(d.code for d in diags) == ["E102", "E126"]


def test_bad_ssh_user_autogroup_points_at_the_user() -> None:
    # Tailscale maps "autogroup:member" as a literal login (captured): a warning, located.
    text = ('{"ssh": [{"action": "accept", "src": ["a@b.c"], "dst": ["a@b.c"],\n'
            '          "users": ["root", "autogroup:member"]}]}')
    _, diags = load_policy_text(text)
    assert [d.code for d in diags] == ["W209"]
    assert diags.items[0].span.text == '"autogroup:member"'

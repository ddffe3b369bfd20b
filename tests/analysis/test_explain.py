"""`explain`: resolution of SRC/DST, verdicts, deciding rules and rendering."""

from __future__ import annotations

import pytest
from strategies import example_inventory, load

from policyc.analysis.explain import ExplainError, explain, render_explanation

POLICY = """{
  "groups": {"group:eng": ["alice@example.com", "bob@example.com"]},
  "tagOwners": {"tag:web": ["alice@example.com"], "tag:db": ["alice@example.com"],
                "tag:router": ["bob@example.com"], "tag:exit": ["bob@example.com"]},
  "hosts": {"lan": "10.1.0.0/16"},
  "acls": [
    {"action": "accept", "src": ["tag:web"], "dst": ["tag:db:5432"]},
    {"action": "accept", "src": ["100.64.0.1"], "dst": ["tag:db:22,80-90"], "proto": "tcp"},
    {"action": "accept", "src": ["group:eng"], "dst": ["lan:443"]},
  ],
  "grants": [{"src": ["tag:web"], "dst": ["tag:db"], "ip": ["udp:53"]}],
}"""

INV = example_inventory()
POL = load(POLICY)


def test_allowed_by_one_rule_with_file_and_line() -> None:
    expl = explain(POL, INV, "web", "db", 5432, "tcp")
    assert expl.allowed
    (ref,) = expl.rules()
    assert (ref.kind, ref.index) == ("acl", 0)
    text = render_explanation(expl)
    assert text.startswith("ALLOWED")
    line = POLICY[: POLICY.index('{"action"')].count("\n") + 1
    assert f"policy.hujson:{line}:" in text and '"tag:db:5432"' in text


def test_denied_names_no_rule() -> None:
    expl = explain(POL, INV, "tag:db", "tag:web", 5432, None)
    assert not expl.allowed and not expl.rules()
    text = render_explanation(expl)
    assert text.startswith("DENIED") and "no rule allows" in text


def test_multi_address_source_says_which_addresses_are_allowed() -> None:
    # Only laptop-a's IPv4 is named by the second rule.
    expl = explain(POL, INV, "alice@example.com", "db", 22, "tcp")
    assert not expl.allowed
    allowed = [str(s) for s in expl.sources if expl.source_allowed(s)]
    assert allowed == ["100.64.0.1"]
    text = render_explanation(expl)
    assert "allowed from: 100.64.0.1" in text and "denied from:" in text


def test_any_port_lists_the_open_ports_per_protocol() -> None:
    expl = explain(POL, INV, "100.64.0.1", "db", None, "tcp")
    assert expl.allowed
    assert "open: tcp 22,80-90" in render_explanation(expl)
    both = explain(POL, INV, "web", "db", None, None)
    assert "tcp 5432; udp 53,5432; icmp; ipv6-icmp" in render_explanation(both)
    assert {(r.kind, r.index) for r in both.rules()} == {("acl", 0), ("grant", 0)}


def test_port_without_protocol_asks_about_tcp_and_udp_only() -> None:
    expl = explain(POL, INV, "web", "db", 53, None)
    assert expl.protocols == (6, 17) and expl.allowed
    assert [(r.kind, r.index) for r in expl.rules()] == [("grant", 0)]


def test_route_destination_and_undelivered_address() -> None:
    assert explain(POL, INV, "laptop-b", "10.1.2.3", 443, "tcp").allowed
    routeless = load(POLICY.replace('"lan": "10.1.0.0/16"', '"lan": "10.9.0.0/16"'))
    expl = explain(routeless, INV, "laptop-b", "10.9.0.1", 443, "tcp")
    assert expl.rules() == [] and not expl.allowed
    assert "no node receives" in render_explanation(expl)


def test_node_names_win_over_aliases_and_users_groups_tags_resolve() -> None:
    assert len(explain(POL, INV, "group:eng", "db", None, None).sources) == 6  # 3 devices
    assert len(explain(POL, INV, "tag:web", "db", 5432, None).sources) == 2


@pytest.mark.parametrize(("src", "dst", "proto"), [
    ("group:engg", "db", None),  # undefined group
    ("tag:nope", "db", None),  # undefined tag
    ("carol@example.com", "db", None),  # a user without nodes
    ("web", "autogroup:internet", None),  # not specific addresses
    ("web", "db", "bogus"),  # unknown protocol
])
def test_unresolvable_inputs_raise_explain_error(src: str, dst: str, proto: str | None) -> None:
    with pytest.raises(ExplainError):
        explain(POL, INV, src, dst, 22, proto)


def test_did_you_mean_for_a_misspelt_group() -> None:
    with pytest.raises(ExplainError, match="group:eng"):
        explain(POL, INV, "group:engg", "db", 22, None)

"""`access_diff`: gained and lost access, held to the reference evaluator."""

from __future__ import annotations

import ipaddress
import json
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import INTERNET_PROBES, ROUTE_PROBES, example_inventory, load, policies, tailnets

from policyc.analysis.access import AliasSets, policy_access
from policyc.analysis.diff import access_diff, render_json, render_markdown, render_text
from policyc.analysis.naming import Namer
from policyc.analysis.reference import ReferenceEvaluator
from policyc.compiler.inventory import load_inventory_file
from policyc.compiler.nodes import Inventory

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
PROTOCOLS = (6, 17, 1, 58, 47, 132, 2)
PORTS = (22, 53, 80, 443, 1000, 1500, 2000, 2001, 8050, 9, 5)


def _addresses(inventory: Inventory) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    probes = (*ROUTE_PROBES, *INTERNET_PROBES, "100.100.1.1", "fd7a:115c:a1e0::99", "10.1.0.6")
    return [ip for n in inventory for ip in n.ips] + [ipaddress.ip_address(p) for p in probes]


def _packets(rnd: random.Random, inventory: Inventory, count: int):  # type: ignore[no-untyped-def]
    addresses = _addresses(inventory)
    for _ in range(count):
        proto = rnd.choice(PROTOCOLS)
        port = rnd.choice(PORTS) if proto in (6, 17, 132) else None
        yield rnd.choice(addresses), rnd.choice(addresses), proto, port


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policies(), policies(), tailnets(), st.randoms(use_true_random=False))
def test_gained_exactly_when_new_allows_and_old_does_not(
        old_text: str, new_text: str, inventory: Inventory, rnd: random.Random) -> None:
    old, new = load(old_text, "old.hujson"), load(new_text, "new.hujson")
    diff = access_diff(old, new, inventory)
    ev_old, ev_new = ReferenceEvaluator(old, inventory), ReferenceEvaluator(new, inventory)
    for src, dst, proto, port in _packets(rnd, inventory, 80):
        before = bool(ev_old.allowing_rules(src, dst, proto, port))
        after = bool(ev_new.allowing_rules(src, dst, proto, port))
        assert diff.gains(src, dst, proto, port) == (after and not before), (src, dst, proto, port)
        assert diff.loses(src, dst, proto, port) == (before and not after), (src, dst, proto, port)
    assert diff.changed or not (diff.gained or diff.lost)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policies(), policies(), tailnets())
def test_names_from_atoms_are_the_names_of_the_address_sets(
        old_text: str, new_text: str, inventory: Inventory) -> None:
    # The diff names its sets from per-atom tables; a fresh Namer asked with the
    # AddressSet itself (node by node) must say exactly the same.
    old, new = load(old_text, "old.hujson"), load(new_text, "new.hujson")
    diff = access_diff(old, new, inventory)
    old_sets = AliasSets(old, inventory)
    namers = {"gained": Namer(old_sets.with_policy(new)), "lost": Namer(old_sets)}
    for change in (*diff.gained, *diff.lost):
        namer = namers[change.kind]
        assert change.who == namer.name(change.src)
        assert change.where == namer.name(change.dst)


@settings(max_examples=100, deadline=None)
@given(policies(), tailnets(), st.randoms(use_true_random=False))
def test_boxes_allow_what_the_reference_allows(text: str, inventory: Inventory,
                                               rnd: random.Random) -> None:
    policy = load(text)
    access = policy_access(policy, inventory)
    ev = ReferenceEvaluator(policy, inventory)
    for src, dst, proto, port in _packets(rnd, inventory, 80):
        assert access.allows(src, dst, proto, port) == bool(
            ev.allowing_rules(src, dst, proto, port)), (src, dst, proto, port)


@settings(max_examples=40, deadline=None)
@given(policies(), tailnets())
def test_a_policy_against_itself_changes_nothing(text: str, inventory: Inventory) -> None:
    # Parsed twice: different sources and spans, the same access.
    assert not access_diff(load(text, "a.hujson"), load(text, "b.hujson"), inventory).changed


def _sample_pair(edit: str, replacement: str) -> tuple[object, object]:
    text = (SAMPLES / "policy.hujson").read_text()
    assert edit in text
    return load(text, "old.hujson"), load(text.replace(edit, replacement), "new.hujson")


def _inventory() -> Inventory:
    inventory, diags = load_inventory_file(SAMPLES / "nodes.json")
    assert inventory is not None and not diags.has_errors
    return inventory


def test_a_new_port_is_gained_by_who_and_where() -> None:
    old, new = _sample_pair('"tag:prod:22,443,8080"', '"tag:prod:22,443,8080,5432"')
    diff = access_diff(old, new, _inventory())  # type: ignore[arg-type]
    assert not diff.lost
    (change,) = diff.gained
    assert (change.who.text, change.where.text, change.services.text()) == (
        "group:dev", "tag:prod", "tcp,udp/5432")
    assert len(change.where.nodes) == 4
    assert [r.location() for r in change.rules] == ["new.hujson:48"]
    nodes = {n.node for n in diff.per_node}
    assert {"alice-laptop", "bob-laptop", "prod-db"} <= nodes and "carol-laptop" not in nodes
    assert "group:dev gained tag:prod tcp,udp/5432 (4 nodes)" in render_text(diff)


@pytest.mark.parametrize(("names", "counted"), [
    (["alice-laptop"], "1 node"), (["alice-laptop", "alice-desktop"], "2 nodes")])
def test_counts_of_nodes_agree_with_their_noun(names: list[str], counted: str) -> None:
    old, new = _sample_pair('"dst": ["office-lan:22"]', '"dst": ["office-lan:22,23"]')
    inventory = Inventory.of([n for n in _inventory().nodes if n.name in names])
    diff = access_diff(old, new, inventory)  # type: ignore[arg-type]
    assert render_text(diff).startswith(
        f"access changes: 1 gained, 0 lost (inventory of {counted})\n")
    markdown = render_markdown(diff)
    assert f"(inventory of {counted})" in markdown
    assert f"<summary>{counted} affected</summary>" in markdown
    same = access_diff(old, old, inventory)  # type: ignore[arg-type]
    assert render_text(same) == f"no access changes (inventory of {counted})"


def test_a_removed_subnet_rule_is_lost_without_an_inventory() -> None:
    old, new = _sample_pair('"dst": ["office-lan:22"]', '"dst": ["office-nas:22"]')
    diff = access_diff(old, new)  # type: ignore[arg-type]
    assert diff.synthetic and not diff.per_node and not diff.gained
    (change,) = diff.lost
    assert change.who.text == "group:dev"
    # The whole /24 but the NAS, which stays reachable.
    assert change.where.text == "office-lan except office-nas"
    assert change.dst.texts() == ["198.19.20.0-198.19.20.19", "198.19.20.21-198.19.20.255"]
    assert change.services.text() == "tcp/22"


def test_reordering_and_splitting_rules_is_no_change() -> None:
    old, new = _sample_pair(
        '{"action": "accept", "src": ["group:dev"], "dst": ["tag:prod:22,443,8080", '
        '"tag:staging:*"]},',
        '{"action": "accept", "src": ["bob@acme.example"], "dst": ["tag:staging:*"]},\n'
        '{"action": "accept", "src": ["group:dev"], "dst": ["tag:prod:443,22"]},\n'
        '{"action": "accept", "src": ["alice@acme.example", "group:dev"], '
        '"dst": ["tag:prod:8080", "tag:staging:*"]},')
    diff = access_diff(old, new, _inventory())  # type: ignore[arg-type]
    assert not diff.changed
    assert render_text(diff).startswith("no access changes")


def test_machine_formats_carry_the_sets_and_markdown_escapes_names() -> None:
    old, new = _sample_pair('"group:sre":       ["carol@acme.example"],',
                            '"group:sre":       ["carol@acme.example"], '
                            '"group:a|b`c": ["dave@acme.example"],')
    new_text = new.source.text.replace(  # type: ignore[attr-defined]
        '"dst": ["tag:staging:22"]},', '"dst": ["tag:staging:22"]},\n'
        '{"action": "accept", "src": ["group:a|b`c"], "dst": ["tag:db:80"]},')
    diff = access_diff(old, load(new_text, "new.hujson"))  # type: ignore[arg-type]
    data = json.loads(render_json(diff))
    (gained,) = data["gained"]
    assert gained["who"] == "group:a|b`c" and gained["where"] == "tag:db"
    assert gained["src"] == ["100.64.0.4", "fd7a:115c:a1e0::4"]
    assert gained["rules"][0]["location"] == "new.hujson:68"
    markdown = render_markdown(diff)
    row = next(line for line in markdown.splitlines() if line.startswith("| + gained"))
    assert "`group:a\\|b'c`" in row and row.count(" | ") == 5


def test_self_rules_from_different_sources_keep_their_own_owners() -> None:
    """Self boxes are cut per source set once (AliasSets.self_parts): a rule from
    alice must not inherit the owners of a rule from every member."""
    policy = load(json.dumps({"acls": [
        {"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self:22"]},
        {"action": "accept", "src": ["alice@acme.example"], "dst": ["autogroup:self:443"]},
        {"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self:80"]},
    ]}))
    inventory = _inventory()
    access = policy_access(policy, inventory)
    ev = ReferenceEvaluator(policy, inventory)
    addresses = [ip for n in inventory for ip in n.ips]
    for src in addresses:
        for dst in addresses:
            for port in (22, 80, 443):
                assert access.rules_for(src, dst, 6, port) == \
                    ev.allowing_rules(src, dst, 6, port), (src, dst, port)


def test_an_edited_group_or_host_is_made_again_for_the_new_policy() -> None:
    """The new policy's AliasSets keep the old one's sets that mean the same
    (`with_policy`): an edited group or host must not be among them."""
    def policy(eng: list[str], nas: str) -> object:
        return load(json.dumps({
            "groups": {"group:eng": eng}, "hosts": {"nas": nas},
            "tagOwners": {"tag:web": ["alice@example.com"]},
            "acls": [{"action": "accept", "src": ["group:eng"], "dst": ["tag:web:22", "nas:22"]}],
        }))
    inventory = example_inventory()
    ip = {n.name: n.ips[0] for n in inventory}
    diff = access_diff(policy(["alice@example.com"], "10.1.2.3"),  # type: ignore[arg-type]
                       policy(["alice@example.com", "bob@example.com"], "10.1.2.4"), inventory)
    assert diff.gains(ip["laptop-b"], ip["web"], 6, 22)
    assert not diff.gains(ip["laptop-a"], ip["web"], 6, 22)
    assert diff.gains(ip["laptop-a"], ipaddress.ip_address("10.1.2.4"), 6, 22)
    assert diff.loses(ip["laptop-a"], ipaddress.ip_address("10.1.2.3"), 6, 22)

"""Address classes (address_classes.py) against the per-pair reference evaluator.

Two addresses of one class must get the same `allowing_rules_any` answer
against every address, as source and as destination, and two nodes of one
class the same SSH verdicts; and policy tests must report the same verdicts
and diagnostics asked once per class pair as asked for every address pair.
"""

from __future__ import annotations

import ipaddress
import itertools
import json
from collections import defaultdict
from collections.abc import Hashable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import (
    DST_ALIASES,
    INTERNET_PROBES,
    ROUTE_PROBES,
    SSH_PROBE_USERS,
    USERS,
    load,
    node,
    policies,
    ssh_rules,
    tailnets,
)

from policyc.analysis.address_classes import AddressClasses
from policyc.analysis.reference import ReferenceEvaluator, ssh_verdict
from policyc.analysis.testrunner import run_policy_tests
from policyc.compiler.nodes import Inventory, Node
from policyc.diagnostics.diagnostics import Diagnostics
from policyc.policy.model import IPAddress

SETTINGS = settings(max_examples=80, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
PROTOCOL_SETS = ((6, 17, 1, 58), (6,), (17,), (1, 58))
# No autogroup: Tailscale takes none as a tests/sshTests src (policyc: E114).
TEST_SOURCES = (*USERS, "tag:web", "tag:db", "group:eng", "group:ops", "nas", "100.64.0.1",
                "fd7a:115c:a1e0::2", "10.1.2.3")
TEST_DESTINATIONS = (*USERS, "tag:web", "tag:db", "tag:router", "group:eng", "autogroup:member",
                     "autogroup:tagged", "autogroup:self", "nas", "dns", "100.64.0.2",
                     "10.1.2.3", "8.8.8.8", "fd7a:115c:a1e0::1")
SSH_TEST_SOURCES = (*USERS, "group:eng", "group:ops", "tag:web", "tag:db")
SSH_TEST_DESTINATIONS = ("tag:web", "tag:db", "tag:router", "autogroup:self",
                         "autogroup:member", *USERS)


@st.composite
def twin_tailnets(draw: st.DrawFn) -> Inventory:
    """A random tailnet plus devices that share an owner and tags with another node
    (the classes the dense tailnets are made of)."""
    inventory = draw(tailnets())
    nodes = list(inventory.nodes)
    for k in range(draw(st.integers(1, 3))):
        twin = draw(st.sampled_from(nodes))
        routes = tuple(str(r) for r in twin.routes)
        nodes.append(node(f"twin{k}", twin.user, twin.tags, 60 + k, routes=routes,
                          exit_node=twin.exit_node))
    return Inventory.of(nodes)


@st.composite
def policies_with_all_tests(draw: st.DrawFn) -> str:
    """A random policy with `tests`, SSH rules and `sshTests`."""
    document = json.loads(draw(policies()).removeprefix("// generated\n")[:-3] + "}")
    tests = []
    for _ in range(draw(st.integers(1, 3))):
        entry: dict[str, object] = {"src": draw(st.sampled_from(TEST_SOURCES))}
        for kind, least in (("accept", 1), ("deny", 0)):
            targets = draw(st.lists(st.sampled_from(TEST_DESTINATIONS), min_size=least,
                                    max_size=2))
            # One destination on several ports: the pair memo must keep ports apart.
            entry[kind] = [f"{t}:{port}" for t in targets
                           for port in draw(st.lists(st.sampled_from(("22", "443", "53")),
                                                     min_size=1, max_size=2, unique=True))]
        if draw(st.booleans()):
            entry["proto"] = draw(st.sampled_from(("tcp", "udp")))
        tests.append(entry)
    document["tests"] = tests
    document["ssh"] = draw(st.lists(ssh_rules(), max_size=3))
    document["sshTests"] = [
        {"src": draw(st.sampled_from(SSH_TEST_SOURCES)),
         "dst": draw(st.lists(st.sampled_from(SSH_TEST_DESTINATIONS), min_size=1, max_size=2)),
         draw(st.sampled_from(("accept", "check", "deny"))):
             draw(st.lists(st.sampled_from(SSH_PROBE_USERS), min_size=1, max_size=2,
                           unique=True))}
        for _ in range(draw(st.integers(0, 2)))]
    if draw(st.booleans()):  # rules the classes must tell apart: the Internet, one user
        document.setdefault("acls", []).append(
            {"action": "accept", "src": [draw(st.sampled_from(("*", *USERS)))],
             "dst": [f"{draw(st.sampled_from(('autogroup:internet', *USERS)))}:443"]})
    if "acls" in document and draw(st.booleans()):  # a rule naming a role (undecidable)
        document["acls"].append({"action": "accept", "src": ["autogroup:admin"],
                                 "dst": [f"{draw(st.sampled_from(DST_ALIASES))}:22"]})
    return json.dumps(document)


def _probes(inventory: Inventory) -> list[IPAddress]:
    found = [ip for n in inventory for ip in n.ips]
    return found + [ipaddress.ip_address(t) for t in (*ROUTE_PROBES, *INTERNET_PROBES)]


def _by_class(items: list[IPAddress], classes: AddressClasses) -> list[list[IPAddress]]:
    groups: dict[Hashable, list[IPAddress]] = defaultdict(list)
    for ip in items:
        groups[classes.of(ip)].append(ip)
    return [g for g in groups.values() if len(g) > 1]


@settings(SETTINGS, max_examples=40)  # probes x probes x 12 kinds of traffic each
@given(policies_with_all_tests(), twin_tailnets())
def test_addresses_of_one_class_get_the_same_answers(text: str, inventory: Inventory) -> None:
    ev = ReferenceEvaluator(load(text), inventory)
    classes = AddressClasses(ev)
    probes = _probes(inventory)
    for same in _by_class(probes, classes):
        first = same[0]
        for other, probe, protocols, port in itertools.product(
                same[1:], probes, PROTOCOL_SETS, (22, 443, None)):
            assert ev.allowing_rules_any(first, probe, protocols, port) == \
                ev.allowing_rules_any(other, probe, protocols, port), (first, other, probe)
            assert ev.allowing_rules_any(probe, first, protocols, port) == \
                ev.allowing_rules_any(probe, other, protocols, port), (probe, first, other)


@SETTINGS
@given(policies_with_all_tests(), twin_tailnets())
def test_nodes_of_one_class_get_the_same_ssh_verdicts(text: str, inventory: Inventory) -> None:
    ev = ReferenceEvaluator(load(text), inventory)
    classes = AddressClasses(ev)
    groups: dict[Hashable, list[Node]] = defaultdict(list)
    for n in inventory:
        groups[classes.node_class(n)].append(n)
    for same in (g for g in groups.values() if len(g) > 1):
        for other in same[1:]:
            for peer in inventory:
                for user in SSH_PROBE_USERS:
                    assert ssh_verdict(ev, same[0], peer, user) == \
                        ssh_verdict(ev, other, peer, user), (same[0].name, other.name, user)
                    assert ssh_verdict(ev, peer, same[0], user) == \
                        ssh_verdict(ev, peer, other, user), (same[0].name, other.name, user)


def _run(text: str, inventory: Inventory | None, grouped: bool) -> tuple[object, list[str]]:
    diags = Diagnostics()
    report = run_policy_tests(load(text), inventory, diags, grouped=grouped)
    return report, [f"{d}\n{d.notes}" for d in diags]


@SETTINGS
@given(policies_with_all_tests(), st.one_of(st.none(), twin_tailnets()))
def test_policy_tests_report_the_same_as_asked_per_pair(text: str,
                                                       inventory: Inventory | None) -> None:
    """Verdicts, T305 reasons and every diagnostic (notes name sources one by one)."""
    assert _run(text, inventory, True) == _run(text, inventory, False)


# --- pointed cases: what a class must keep apart ---------------------------------------

TAILNET = Inventory.of([
    node("laptop-a", "alice@example.com", (), 1), node("phone-a", "alice@example.com", (), 2),
    node("laptop-b", "bob@example.com", (), 3),
    node("router", "bob@example.com", ("tag:router",), 20, routes=("10.1.0.0/16",)),
    node("web-router", "bob@example.com", ("tag:web",), 21, routes=("10.1.2.0/24",)),
])
TAG_OWNERS = {t: ["alice@example.com"] for t in ("tag:router", "tag:web")}


def _verdicts(document: dict[str, object]) -> list[tuple[str, str, bool]]:
    """(kind, entry, passed) per test entry; grouped and per pair must agree."""
    text = json.dumps({"tagOwners": TAG_OWNERS, **document})
    grouped, per_pair = _run(text, TAILNET, True), _run(text, TAILNET, False)
    assert grouped == per_pair
    return [(o.kind, o.text, o.passed) for o in grouped[0].outcomes]  # type: ignore[attr-defined]


def test_one_destination_on_two_ports_is_asked_twice() -> None:
    assert _verdicts({
        "acls": [{"action": "accept", "src": ["*"], "dst": ["tag:web:22"]}],
        "tests": [{"src": "alice@example.com", "accept": ["tag:web:22", "tag:web:443"]}],
    }) == [("accept", "tag:web:22", True), ("accept", "tag:web:443", False)]


def test_every_class_of_a_destination_adds_its_rules() -> None:
    """bob's node is reached only by a rule naming bob: alice's nodes first add nothing."""
    verdicts = _verdicts({
        "groups": {"group:eng": ["alice@example.com", "bob@example.com"]},
        "acls": [{"action": "accept", "src": ["alice@example.com"],
                  "dst": ["bob@example.com:22"]}],
        "tests": [{"src": "alice@example.com", "deny": ["group:eng:22"]}],
    })
    assert verdicts == [("deny", "group:eng:22", False)]


def test_internet_and_private_addresses_are_apart() -> None:
    assert _verdicts({
        "acls": [{"action": "accept", "src": ["alice@example.com"],
                  "dst": ["autogroup:internet:443"]}],
        "tests": [{"src": "alice@example.com", "accept": ["1.1.1.1:443"],
                   "deny": ["10.3.0.1:443"]}],
    }) == [("accept", "1.1.1.1:443", True), ("deny", "10.3.0.1:443", True)]


def test_a_via_grant_tells_every_address_apart() -> None:
    """10.1.2.3 goes through web-router's more specific route (a plain rule reaches
    it), 10.1.5.5 through the via router: the same rules name both addresses."""
    assert _verdicts({
        "acls": [{"action": "accept", "src": ["alice@example.com"], "dst": ["10.1.0.0/16:22"]}],
        "grants": [{"src": ["alice@example.com"], "dst": ["10.1.0.0/16"], "ip": ["*"],
                    "via": ["tag:router"]}],
        "tests": [{"src": "alice@example.com", "accept": ["10.1.2.3:443", "10.1.5.5:443"]}],
    }) == [("accept", "10.1.2.3:443", False), ("accept", "10.1.5.5:443", True)]

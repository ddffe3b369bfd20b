"""The reference evaluator's index only narrows: indexed answers equal the plain walk.

`ReferenceEvaluator(..., indexed=False)` walks every rule for every question
(the simple oracle); the default consults `permit_index.py` first. For random
policies, tailnets and policy `tests`, both must give the same allowing rules,
the same nodes per alias, and the same test report and diagnostics, offline
(synthetic tailnet) and against an inventory.
"""

from __future__ import annotations

import ipaddress
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import (
    DST_ALIASES,
    INTERNET_PROBES,
    ROUTE_PROBES,
    SRC_ALIASES,
    USERS,
    alias,
    load,
    policies,
    tailnets,
)

from policyc.analysis.offline import _free
from policyc.analysis.reference import ReferenceEvaluator
from policyc.analysis.testrunner import run_policy_tests
from policyc.compiler.nodes import Inventory
from policyc.diagnostics.diagnostics import Diagnostics
from policyc.policy.model import IPAddress, IPNetwork

SETTINGS = settings(max_examples=120, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
TRAFFIC = ((6, 22), (6, 443), (17, 53), (1, None), (47, None), (6, None))
# Test sources and destinations: identities, roles, hosts, literal addresses.
# No autogroup: Tailscale takes none as a test src (policyc: E114).
TEST_SOURCES = (*USERS, "tag:web", "tag:db", "group:eng", "group:ops", "nas", "100.64.0.1",
                "100.64.0.3", "fd7a:115c:a1e0::2", "10.1.2.3", "stranger@example.com")
TEST_DESTINATIONS = (*USERS, "tag:web", "tag:db", "tag:router", "group:eng", "autogroup:member",
                     "autogroup:tagged", "autogroup:self", "nas", "dns", "v6box",
                     "100.64.0.2", "100.64.0.5", "10.1.2.3", "8.8.8.8", "fd7a:115c:a1e0::1")
TEST_PORTS = ("22", "53", "443", "1500")


@st.composite
def policies_with_tests(draw: st.DrawFn) -> str:
    """A random policy (tests/strategies.py) with 1-4 random `tests` entries."""
    tests = []
    for _ in range(draw(st.integers(1, 4))):
        entry: dict[str, object] = {"src": draw(st.sampled_from(TEST_SOURCES))}
        for kind, least in (("accept", 1), ("deny", 0)):
            targets = draw(st.lists(st.sampled_from(TEST_DESTINATIONS), min_size=least,
                                    max_size=2))
            entry[kind] = [f"{t}:{draw(st.sampled_from(TEST_PORTS))}" for t in targets]
        if draw(st.integers(0, 3)) == 0:
            entry["proto"] = draw(st.sampled_from(("tcp", "udp", "sctp")))
        tests.append(entry)
    text = draw(policies())
    # policies() writes "// generated\n" + JSON with a trailing comma; read it back.
    document = json.loads(text.removeprefix("// generated\n")[:-3] + "}")
    document["tests"] = tests
    if "acls" in document and draw(st.booleans()):  # a rule naming a role (undecidable)
        document["acls"].append({"action": "accept", "src": ["autogroup:admin"],
                                 "dst": [f"{draw(st.sampled_from(DST_ALIASES))}:22"]})
    return json.dumps(document)


def _probes(inventory: Inventory) -> list[IPAddress]:
    found = [ip for node in inventory for ip in node.ips]
    found += [ipaddress.ip_address(t) for t in (*ROUTE_PROBES, *INTERNET_PROBES)]
    return found


@SETTINGS
@given(policies(), tailnets())
def test_allowing_rules_and_nodes_equal_the_plain_walk(text: str, inventory: Inventory) -> None:
    policy = load(text)
    indexed = ReferenceEvaluator(policy, inventory)
    plain = ReferenceEvaluator(policy, inventory, indexed=False)
    for name in {*SRC_ALIASES, *DST_ALIASES, "autogroup:self", "autogroup:admin"}:
        assert indexed.nodes_of(alias(name)) == plain.nodes_of(alias(name)), name
    probes = _probes(inventory)
    for src in probes:
        for dst in probes:
            for proto, port in TRAFFIC:
                assert indexed.allowing_rules(src, dst, proto, port) == \
                    plain.allowing_rules(src, dst, proto, port), (src, dst, proto, port)


PROTOCOL_SETS = ((6, 17, 1, 58), (6,), (17, 6), (1, 58), (47, 6))


@SETTINGS
@given(policies(), tailnets(), st.sampled_from(PROTOCOL_SETS), st.sampled_from((22, 443, None)))
def test_allowing_rules_any_merges_allowing_rules_per_protocol(
        text: str, inventory: Inventory, protocols: tuple[int, ...], port: int | None) -> None:
    """What a policy test asks per address pair: the rules `allowing_rules` gives for
    each protocol in turn, first appearance kept (both evaluators)."""
    policy = load(text)
    for ev in (ReferenceEvaluator(policy, inventory),
               ReferenceEvaluator(policy, inventory, indexed=False)):
        probes = _probes(inventory)
        for src in probes:
            for dst in probes:
                merged: list[object] = []
                for proto in protocols:
                    merged += [r for r in ev.allowing_rules(src, dst, proto, port)
                               if r not in merged]
                assert ev.allowing_rules_any(src, dst, protocols, port) == merged, (src, dst)


def _run(text: str, inventory: Inventory | None, indexed: bool) -> tuple[object, list[str]]:
    diags = Diagnostics()
    report = run_policy_tests(load(text), inventory, diags, indexed=indexed)
    return report, [f"{d}\n{d.notes}" for d in diags]


@SETTINGS
@given(policies_with_tests(), st.one_of(st.none(), tailnets()))
def test_policy_tests_report_the_same_as_the_plain_walk(text: str,
                                                        inventory: Inventory | None) -> None:
    """Verdicts, T305 reasons (offline.undecided_reason) and every diagnostic."""
    assert _run(text, inventory, True) == _run(text, inventory, False)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 300), st.integers(0, 40)), max_size=6),
       st.sampled_from(("100.64.0.0", "fd7a:115c:a1e0::")))
def test_free_addresses_skip_exactly_the_taken_blocks(blocks: list[tuple[int, int]],
                                                      base_text: str) -> None:
    """offline._free (one pass over merged blocks) against "in no block", address by address."""
    base = ipaddress.ip_address(base_text)
    taken: list[IPNetwork] = []
    for offset, size in blocks:
        first, last = base + offset, base + offset + size
        taken.extend(ipaddress.summarize_address_range(first, last))  # type: ignore[arg-type]
    taken.append(ipaddress.ip_network("10.0.0.0/30"))  # another family or range: ignored
    free = _free(base, taken)
    expected = (a for a in (base + k for k in range(1, 400))
                if not any(a in b for b in taken if b.version == a.version))
    for want in expected:
        assert next(free) == want

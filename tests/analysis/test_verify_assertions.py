"""`policyc verify`: assertions proven by set arithmetic, failures with a real counterexample."""

from __future__ import annotations

import ipaddress
import json
import random
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import DST_ALIASES, SRC_ALIASES, load, policies, tailnets

from policyc.analysis.access import AliasSets
from policyc.analysis.assertions import Assertion, load_assertions
from policyc.analysis.reference import ReferenceEvaluator
from policyc.analysis.verify import verify
from policyc.compiler.addrset import AddressSet
from policyc.compiler.inventory import load_inventory_file
from policyc.compiler.nodes import Inventory
from policyc.diagnostics.diagnostics import Diagnostics
from policyc.diagnostics.source import SourceFile
from policyc.policy.model import Policy

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
PORTS = (0, 1, 22, 53, 80, 443, 999, 1000, 2000, 5432, 8080, 65535)


def _assertions(policy: Policy, text: str) -> tuple[tuple[Assertion, ...], Diagnostics]:
    diags = Diagnostics()
    return load_assertions(SourceFile("assert.hujson", text), policy, diags), diags


def _sample_inventory() -> Inventory:
    inventory, diags = load_inventory_file(SAMPLES / "nodes.json")
    assert inventory is not None and not diags.has_errors
    return inventory


def _run(text: str) -> Diagnostics:
    policy = load((SAMPLES / "policy.hujson").read_text(), "samples/policy.hujson")
    assertions, diags = _assertions(policy, text)
    assert not diags.has_errors, [str(d) for d in diags]
    verify(policy, _sample_inventory(), assertions, diags)
    return diags


def test_sample_intentions_are_proven() -> None:
    diags = _run("""{
      "deny": [{"src": "group:marketing", "dst": "prod-db-host", "ports": "*"},
               {"src": "group:qa", "dst": ["tag:prod", "prod-db-host"]}],
      "allow": [{"src": "group:sre", "dst": "*", "ports": "*", "proto": ["tcp", "udp"]},
                {"src": "group:dev", "dst": "tag:prod", "ports": "22,443,8080"}],
    }""")
    assert not diags.items, [str(d) for d in diags]


def test_a_failing_deny_names_a_packet_and_the_rule_that_allows_it() -> None:
    diags = _run('{"deny": [{"src": "group:dev", "dst": "tag:prod", "ports": "8000-8100"}]}')
    (d,) = diags.items
    assert d.code == "V602" and d.span.location() == "assert.hujson:1:11"
    assert d.notes[0].startswith("counterexample: alice-")
    assert "tcp/8080" in d.notes[0]
    assert d.notes[1].startswith("allowed by acls[1] at samples/policy.hujson:48")


def test_a_failing_allow_names_a_denied_packet() -> None:
    diags = _run('{"allow": [{"src": "group:qa", "dst": "tag:staging", "ports": "22-80", '
                 '"proto": "tcp"}]}')
    (d,) = diags.items
    assert d.code == "V603" and d.notes == (
        "counterexample: dave-laptop (100.64.0.15) -> staging-web (100.64.0.113) tcp/23",
        "no rule allows it")


def test_isolation_checks_both_directions() -> None:
    diags = _run('{"isolated": ["tag:db", "tag:router"]}')
    codes = [(d.code, d.span.text) for d in diags.items]
    # Everyone's SRE rule reaches tag:db; tag:router initiates nothing but is reached too.
    assert codes == [("V604", '"tag:db"'), ("V604", '"tag:router"')]
    assert "carol-" in diags.items[0].notes[0]


def test_vacuous_and_malformed_assertions() -> None:
    policy = load((SAMPLES / "policy.hujson").read_text())
    _, diags = _assertions(policy, '{"deny": [{"src": "group:dve", "dst": "tag:prod", '
                                   '"port": "22"}], "isolate": []}')
    codes = sorted((d.code, d.suggestion) for d in diags.items)
    assert codes == [("E104", "group:dev"), ("V601", "isolated"), ("V601", "ports")]
    assertions, diags = _assertions(policy, '{"deny": [{"src": "nobody@acme.example", '
                                            '"dst": "tag:prod"}]}')
    verify(policy, _sample_inventory(), assertions, diags)
    assert [d.code for d in diags.items] == ["V605"] and not diags.has_errors


# --- property: a proof is never contradicted, a counterexample is always real ---------


def _addresses(sets: AliasSets, addrs: AddressSet, rnd: random.Random, k: int
               ) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """Some members of a set: node addresses in it, and a few arbitrary ones."""
    out = [ip for n in sets.inventory for ip in n.ips if ip in addrs]
    for first, last in rnd.sample(addrs.v4, min(2, len(addrs.v4))):
        out.append(ipaddress.IPv4Address(rnd.randint(first, last)))
    for first, last in rnd.sample(addrs.v6, min(2, len(addrs.v6))):
        out.append(ipaddress.IPv6Address(rnd.randint(first, last)))
    return rnd.sample(out, min(k, len(out)))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policies(), tailnets(), st.sampled_from(("deny", "allow")),
       st.sampled_from(SRC_ALIASES), st.sampled_from(DST_ALIASES),
       st.sampled_from(('"*"', '"22"', '"80,443"', '"1000-2000"')),
       st.sampled_from(("", ', "proto": "tcp"', ', "proto": ["udp", "icmp"]')),
       st.randoms(use_true_random=False))
def test_verdicts_agree_with_the_reference(text: str, inventory: Inventory, kind: str,
                                           src: str, dst: str, ports: str, proto: str,
                                           rnd: random.Random) -> None:
    policy = load(text)
    if dst == "autogroup:internet" and src == "autogroup:danger-all":
        return
    entry = json.dumps({"src": src, "dst": dst})[:-1] + f', "ports": {ports}{proto}}}'
    assertions, diags = _assertions(policy, f'{{"{kind}": [{entry}]}}')
    if diags.has_errors:  # an alias the random policy does not define
        return
    report = verify(policy, inventory, assertions, diags)
    (outcome,) = report.outcomes
    a = outcome.assertion
    ev = ReferenceEvaluator(policy, inventory)
    if outcome.counterexample is not None:
        p = outcome.counterexample
        allowed = bool(ev.allowing_rules(p.src, p.dst, p.proto, p.port))
        assert allowed == (kind == "deny")
        assert a.services.contains(p.proto, p.port)
        return
    assert outcome.holds
    sets = AliasSets(policy, inventory)
    srcs = _addresses(sets, sets.source(a.sources[0]), rnd, 6)
    dsts = _addresses(sets, sets.destination(a.destinations[0]), rnd, 6)
    for s in srcs:
        for d in dsts:
            for proto_number in (6, 17, 1, 58, 47, 132):
                for port in rnd.sample(PORTS, 3) if proto_number in (6, 17, 132) else [None]:
                    if a.services.contains(proto_number, port):
                        allowed = bool(ev.allowing_rules(s, d, proto_number, port))
                        assert allowed == (kind == "allow"), (s, d, proto_number, port)

"""`tests` and `sshTests`: passing and failing entries, codes, spans and notes."""

from __future__ import annotations

import ipaddress

from strategies import example_inventory, load

from policyc.analysis.offline import synthetic_inventory
from policyc.analysis.testrunner import TestReport, run_policy_tests
from policyc.diagnostics.diagnostics import Diagnostics

HEADER = """
  "groups": {"group:eng": ["alice@example.com", "bob@example.com"]},
  "tagOwners": {"tag:web": ["alice@example.com"], "tag:db": ["alice@example.com"],
                "tag:router": ["bob@example.com"], "tag:exit": ["bob@example.com"]},
  "hosts": {"db-ip": "100.64.0.11", "lan": "10.1.0.0/16", "lan-host": "10.1.2.3"},
"""


def run(body: str, *, inventory: bool = True) -> tuple[TestReport, Diagnostics, str]:
    text = "{" + HEADER + body + "}"
    pol = load(text)
    diags = Diagnostics()
    report = run_policy_tests(pol, example_inventory() if inventory else None, diags)
    return report, diags, text


def codes(diags: Diagnostics) -> list[str]:
    return [d.code for d in diags]


EX8 = """
  "acls": [{"action": "accept", "src": ["tag:web"], "dst": ["tag:db:5432"]}],
  "tests": [
    {"src": "tag:web", "accept": ["tag:db:5432"], "deny": ["tag:db:22"]},
    {"src": "alice@example.com", "accept": ["tag:db:5432"]},
  ],
"""


def test_ex8_second_test_fails_with_t301_on_its_accept_entry() -> None:
    report, diags, text = run(EX8)
    assert (report.passed, report.failed) == (2, 1)
    assert codes(diags) == ["T301"]
    (diag,) = diags
    assert diag.span.text == '"tag:db:5432"'
    assert diag.span.start == text.rindex('"tag:db:5432"')
    # alice's two untagged devices, v4 and v6 each: four addresses, none allowed.
    assert len(diag.notes) == 4
    assert any("100.64.0.1 " in note and "100.64.0.11" in note for note in diag.notes)


def test_deny_entry_that_is_allowed_is_t302_naming_the_rule_with_file_line() -> None:
    body = """
  "acls": [
    {"action": "accept", "src": ["group:eng"], "dst": ["tag:db:*"]},
  ],
  "tests": [{"src": "bob@example.com", "deny": ["tag:db:22"]}],
"""
    report, diags, text = run(body)
    assert report.failed == 1
    assert codes(diags) == ["T302"]
    (diag,) = diags
    assert diag.span.text == '"tag:db:22"'
    rule_line = text[: text.index('{"action"')].count("\n") + 1
    assert any(f"policy.hujson:{rule_line}" in note and "acls[0]" in note for note in diag.notes)


def test_every_source_address_must_be_allowed() -> None:
    body = """
  "acls": [{"action": "accept", "src": ["100.64.0.1"], "dst": ["tag:db:22"]}],
  "tests": [{"src": "alice@example.com", "accept": ["tag:db:22"]}],
"""
    report, diags, _ = run(body)
    assert report.failed == 1 and codes(diags) == ["T301"]
    assert len(diags.items[0].notes) == 3  # laptop-a's v6, phone-a's v4 and v6


def test_reaching_any_destination_address_is_enough() -> None:
    body = """
  "acls": [{"action": "accept", "src": ["tag:web"], "dst": ["100.64.0.11:22"]}],
  "tests": [{"src": "tag:web", "accept": ["tag:db:22", "db-ip:22"]}],
"""
    report, diags, _ = run(body)
    # Only db's IPv4 is a destination; like Tailscale, families are not paired up.
    assert report.ok and not diags.items


def test_protocol_of_a_test_narrows_the_check() -> None:
    body = """
  "acls": [{"action": "accept", "src": ["tag:web"], "dst": ["tag:db:53"], "proto": "udp"}],
  "tests": [
    {"src": "tag:web", "proto": "udp", "accept": ["tag:db:53"]},
    {"src": "tag:web", "proto": "tcp", "deny": ["tag:db:53"]},
    {"src": "tag:web", "accept": ["tag:db:53"]},
  ],
"""
    report, diags, _ = run(body)
    assert report.ok, [str(d) for d in diags]


def test_icmp_test_matches_on_addresses_and_protocol_not_port() -> None:
    # Real policy applied through Tailscale GitOps (rajsinghtech/kubernetes-manifests)
    # tests ICMP as `"proto": "icmp", "accept": ["tag:x:0"]`; ICMP has no ports, so a
    # rule's port list does not matter, its protocols do.
    body = """
  "acls": [{"action": "accept", "src": ["tag:web"], "dst": ["tag:db:5432"]},
           {"action": "accept", "src": ["tag:web"], "dst": ["tag:router:22"], "proto": "tcp"}],
  "tests": [
    {"src": "tag:web", "proto": "icmp", "accept": ["tag:db:0"], "deny": ["tag:router:0"]},
  ],
"""
    report, diags, _ = run(body)
    assert report.ok, [str(d) for d in diags]
    failing = body.replace('"accept": ["tag:db:0"], "deny": ["tag:router:0"]',
                           '"accept": ["tag:router:0"]')
    report, diags, _ = run(failing)
    assert not report.ok and "T301" in codes(diags)


def test_unknown_user_has_no_access_and_unresolvable_destination_is_t303() -> None:
    body = """
  "acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}],
  "tests": [
    {"src": "carol@example.com", "accept": ["tag:db:22"], "deny": ["tag:web:22"]},
    {"src": "tag:web", "accept": ["carol@example.com:22"]},
  ],
"""
    report, diags, _ = run(body)
    assert (report.passed, report.failed) == (1, 2)  # carol's deny entry holds
    assert codes(diags) == ["T301", "T303"]
    assert "unknown user has no access" in diags.items[0].message
    assert diags.items[0].span.text == '"tag:db:22"'
    assert diags.items[1].span.text == '"carol@example.com:22"'  # carol has no nodes


def test_addresses_behind_routes_are_judged_on_rules() -> None:
    body = """
  "acls": [{"action": "accept", "src": ["group:eng"], "dst": ["lan:443"]}],
  "tests": [{"src": "group:eng", "accept": ["lan-host:443"], "deny": ["lan-host:80"]}],
"""
    report, diags, _ = run(body)
    assert report.ok, [str(d) for d in diags]


def test_autogroup_self_destination_is_the_sources_own_devices() -> None:
    body = """
  "acls": [{"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self:22"]}],
  "tests": [
    {"src": "alice@example.com", "accept": ["autogroup:self:22", "100.64.0.2:22"]},
    {"src": "bob@example.com", "deny": ["alice@example.com:22"]},
  ],
"""
    report, diags, _ = run(body)
    assert report.ok, [str(d) for d in diags]


def test_allow_all_policy_passes_accepts_and_fails_denies() -> None:
    body = """
  "tests": [{"src": "alice@example.com", "accept": ["tag:db:22"], "deny": ["tag:web:80"]}],
"""
    report, diags, _ = run(body)
    assert (report.passed, report.failed) == (1, 1)
    assert codes(diags) == ["T302"]
    assert any("allow-all" in note for note in diags.items[0].notes)


SSH = """
  "acls": [{"action": "accept", "src": ["*"], "dst": ["*:22"]}],
  "ssh": [
    {"action": "check", "src": ["group:eng"], "dst": ["tag:web"], "users": ["root"]},
    {"action": "accept", "src": ["group:eng"], "dst": ["tag:web", "autogroup:self"],
     "users": ["autogroup:nonroot", "root"]},
    {"action": "accept", "src": ["autogroup:member"], "dst": ["tag:db"],
     "users": ["localpart:*@example.com"]},
  ],
"""


def test_ssh_tests_pass_on_first_match_semantics() -> None:
    body = SSH + """
  "sshTests": [
    {"src": "alice@example.com", "dst": ["tag:web"], "accept": ["ubuntu", "root"],
     "check": ["root"]},
    {"src": "bob@example.com", "dst": ["autogroup:self"], "accept": ["bob"]},
    {"src": "alice@example.com", "dst": ["tag:db"], "accept": ["alice"], "deny": ["bob"]},
  ],
"""
    report, diags, _ = run(body)
    assert report.ok and report.passed == 6, [str(d) for d in diags]


def test_ssh_test_failures_are_t304_on_the_user_string() -> None:
    body = SSH + """
  "sshTests": [
    {"src": "alice@example.com", "dst": ["tag:web"], "check": ["ubuntu"], "deny": ["root"]},
  ],
"""
    report, diags, text = run(body)
    assert (report.passed, report.failed) == (0, 2)
    assert codes(diags) == ["T304", "T304"]
    ubuntu, root = diags.items
    assert ubuntu.span.text == '"ubuntu"'
    assert root.span.start == text.rindex('"root"')
    assert any("ssh[0]" in note and "check" in note for note in root.notes)


def test_ssh_test_with_no_source_nodes_is_t303() -> None:
    body = SSH + """
  "sshTests": [{"src": "carol@example.com", "dst": ["tag:web"], "accept": ["root"]}],
"""
    report, diags, _ = run(body)
    assert report.failed == 1 and codes(diags) == ["T303"]


def test_without_inventory_tests_run_against_virtual_nodes() -> None:
    report, diags, _ = run(EX8, inventory=False)
    assert report.synthetic
    assert (report.passed, report.failed) == (2, 1)
    assert codes(diags) == ["T301"]
    assert "synthetic" in report.summary()


def test_synthetic_inventory_is_deterministic_and_covers_users_and_tags() -> None:
    pol = load("{" + HEADER + EX8 + "}")
    inventory = synthetic_inventory(pol)
    assert synthetic_inventory(pol) == inventory
    names = [n.name for n in inventory]
    assert names == ["virtual:alice@example.com", "virtual:bob@example.com",
                     "virtual:tag:db", "virtual:tag:exit", "virtual:tag:router",
                     "virtual:tag:web"]
    first = inventory.nodes[0]
    assert first.ips == (ipaddress.ip_address("100.64.0.1"),
                         ipaddress.ip_address("fd7a:115c:a1e0::1"))
    assert inventory.nodes[2].tags == ("tag:db",) and inventory.nodes[2].owner is None


def test_tests_on_a_large_tailnet_pass_and_fail_as_written() -> None:
    # Every (source address, rule) pair used to scan the whole inventory to find
    # the node of an address: two test entries on 3,000 nodes took over 30 s.
    from dataclasses import replace

    from strategies import acl, policy

    from policyc.compiler.nodes import Inventory, Node
    from policyc.policy.model import (
        Group,
        GroupRef,
        PolicyTest,
        TagOwners,
        TagRef,
        TestTarget,
    )

    users = [f"u{k}@example.com" for k in range(1000)]
    nodes = [Node(f"n{i}", users[i % 1000] if i % 3 else None,
                  () if i % 3 else (f"tag:t{i // 3 % 30}",),
                  (ipaddress.ip_address(0x64400000 + 1 + i),
                   ipaddress.ip_address((0xFD7A115CA1E0 << 80) + 1 + i)))
             for i in range(3000)]
    groups = {f"group:g{g}": Group(f"group:g{g}", tuple(users[g::50][:20]))
              for g in range(50)}
    tags = {f"tag:t{t}": TagOwners(f"tag:t{t}", ()) for t in range(30)}
    acls = [acl([f"group:g{k % 50}"], [f"tag:t{k % 30}:{22 + k}"]) for k in range(600)]
    acls += [acl([f"tag:t{k % 30}"], [f"tag:t{(k + 1) % 30}:5432"]) for k in range(300)]
    test = PolicyTest(GroupRef("group:g0"), "group:g0", None,
                      (TestTarget(TagRef("tag:t0"), 22, "tag:t0:22"),),
                      (TestTarget(TagRef("tag:t1"), 23, "tag:t1:23"),))
    pol = replace(policy(acls=acls), groups=groups, tag_owners=tags, tests=(test,))
    report = run_policy_tests(pol, Inventory.of(nodes), Diagnostics())
    assert report.passed == 2

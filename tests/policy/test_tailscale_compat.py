"""Constructs Tailscale accepts that real policy files use (issue 8), both ways.

Each construct is accepted where Tailscale accepts it and rejected, with a
located error, where Tailscale rejects it. Evidence per construct is in
docs/conformance.md ("captured", "documented", "inferred").
"""

from __future__ import annotations

import ipaddress
import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from strategies import example_inventory, policies, tailnets

from policyc.analysis.reference import ReferenceEvaluator
from policyc.compiler.addrset import AddressSet, union_all
from policyc.compiler.compiler import compile_policy
from policyc.compiler.nodes import Inventory, Node
from policyc.diagnostics.diagnostics import Diagnostic, Severity
from policyc.policy.load import load_policy_text
from policyc.policy.model import IPSetRef, Policy

BASE: dict[str, object] = {
    "groups": {"group:dev": ["alice@example.com"]},
    "tagOwners": {"tag:server": ["alice@example.com"], "tag:rec": ["alice@example.com"]},
}


def check(**sections: object) -> list[Diagnostic]:
    """Every diagnostic but the unused-group/host notices BASE itself causes."""
    _, diags = load_policy_text(json.dumps({**BASE, **sections}, indent=1), "p.hujson")
    return [d for d in diags.items if d.code not in ("W202", "W204")]


def codes(**sections: object) -> list[str]:
    return [d.code for d in check(**sections)]


def errors(**sections: object) -> list[Diagnostic]:
    return [d for d in check(**sections) if d.severity is Severity.ERROR]


def loaded(**sections: object) -> Policy:
    policy, diags = load_policy_text(json.dumps({**BASE, **sections}, indent=1), "p.hujson")
    assert not diags.has_errors, [str(d) for d in diags.errors]
    return policy


# --- 1. autogroup:members -------------------------------------------------------------

MEMBERS_PLACES: list[dict[str, object]] = [
    {"acls": [{"action": "accept", "src": ["autogroup:members"], "dst": ["tag:server:22"]}]},
    {"acls": [{"action": "accept", "src": ["tag:server"], "dst": ["autogroup:members:22"]}]},
    {"grants": [{"src": ["autogroup:members"], "dst": ["tag:server"], "ip": ["22"]}]},
    {"ssh": [{"action": "accept", "src": ["autogroup:members"], "dst": ["tag:server"],
              "users": ["root"]}]},
    {"tagOwners": {"tag:server": ["autogroup:members"]}},
    {"autoApprovers": {"routes": {"10.0.0.0/8": ["autogroup:members"]},
                       "exitNode": ["autogroup:members"]}},
    {"nodeAttrs": [{"target": ["autogroup:members"], "attr": ["funnel"]}]},
]


@pytest.mark.parametrize("sections", MEMBERS_PLACES)
def test_members_is_accepted_wherever_member_is(sections: dict[str, object]) -> None:
    found = check(**sections)
    assert not [d for d in found if d.severity is Severity.ERROR], [str(d) for d in found]
    legacy = [d for d in found if d.code == "W206"]
    assert legacy and all("autogroup:members" in d.span.text for d in legacy)
    assert legacy[0].suggestion == "autogroup:member"


def test_both_spellings_in_one_file_are_accepted_with_a_warning_on_the_legacy_one() -> None:
    """Files applied to Tailscale mix them (lordmuffin/homelab, nefum/doppelganger
    in tests/corpus/realworld): E129 is retired; each legacy use still gets W206."""
    found = check(acls=[
        {"action": "accept", "src": ["autogroup:member"], "dst": ["tag:server:22"]},
        {"action": "accept", "src": ["autogroup:members"], "dst": ["tag:server:80"]}])
    assert [d.code for d in found] == ["W206"], [str(d) for d in found]
    assert found[0].span.text == '"autogroup:members"' and found[0].span.line > 1


def test_members_is_not_a_prefix_wildcard() -> None:
    assert "E113" in codes(acls=[{"action": "accept", "src": ["autogroup:memberz"],
                                   "dst": ["tag:server:22"]}])


def _members(text: str) -> str:
    return re.sub(r"autogroup:member(?!s)", "autogroup:members", text)


def _compiled(text: str, inventory: Inventory) -> dict[str, object]:
    policy, diags = load_policy_text(text)
    assert not diags.has_errors, [str(d) for d in diags.errors]
    out = compile_policy(policy, inventory)
    return {name: ([r.to_json() for r in m.packet_filter], [p.name for p in m.peers])
            for name, m in out.netmaps.items()}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=policies(), inventory=tailnets())
def test_members_and_member_compile_identically(text: str, inventory: Inventory) -> None:
    assert _compiled(_members(text), inventory) == _compiled(text, inventory)


# --- 3. Tailscale Services ------------------------------------------------------------


def test_service_destination_is_accepted_with_a_warning() -> None:
    found = check(grants=[{"src": ["group:dev"], "dst": ["svc:web"], "ip": ["tcp:443"]}])
    assert [d.code for d in found] == ["W207"] and found[0].span.text == '"svc:web"'


def test_service_destination_compiles_to_nothing() -> None:
    policy = loaded(grants=[{"src": ["*"], "dst": ["svc:web"], "ip": ["*"]}])
    netmaps = compile_policy(policy, example_inventory()).netmaps
    assert all(not m.packet_filter for m in netmaps.values())


def test_service_auto_approvers_take_service_and_tag_keys() -> None:
    policy = loaded(autoApprovers={"services": {"svc:web": ["tag:server"],
                                                "tag:server": ["group:dev"]}})
    assert [(s.service, [str(a) for a in s.approvers])
            for s in policy.auto_approvers.services] == [
        ("svc:web", ["tag:server"]), ("tag:server", ["group:dev"])]


@pytest.mark.parametrize(("sections", "code"), [
    ({"grants": [{"src": ["svc:web"], "dst": ["*"], "ip": ["*"]}]}, "E117"),
    ({"grants": [{"src": ["*"], "dst": ["svc:-bad-"], "ip": ["*"]}]}, "E116"),
    ({"autoApprovers": {"services": {"group:dev": ["tag:server"]}}}, "E123"),
    ({"autoApprovers": {"services": {"tag:nope": ["tag:server"]}}}, "E105"),
    ({"autoApprovers": {"services": {"svc:web": ["*"]}}}, "E123"),
])
def test_services_rejected_where_tailscale_rejects(sections: dict[str, object],
                                                   code: str) -> None:
    found = errors(**sections)
    assert code in [d.code for d in found] and all(d.span.line > 1 for d in found)


# --- 4. first-party capabilities and app connectors -----------------------------------


@pytest.mark.parametrize("cap", ["drive", "kubernetes", "relay", "webui", "golink", "tsidp",
                                 "secrets", "pam", "tailsql", "databases"])
def test_allowed_tailscale_caps(cap: str) -> None:
    assert not errors(grants=[{"src": ["*"], "dst": ["tag:server"],
                               "app": {f"tailscale.com/cap/{cap}": [{}]}}])


@pytest.mark.parametrize("cap", ["funnel", "ingress", "relay-target", "made-up"])
def test_other_tailscale_caps_are_rejected(cap: str) -> None:
    found = errors(grants=[{"src": ["*"], "dst": ["tag:server"],
                            "app": {f"tailscale.com/cap/{cap}": [{}]}}])
    assert [d.code for d in found] == ["E128"]


APP_CONNECTOR = {"name": "github", "connectors": ["tag:server"],
                 "domains": ["github.com", "*.github.com"], "presetAppID": "github"}


def test_app_connectors_node_attr_is_accepted() -> None:
    found = check(nodeAttrs=[{"target": ["*"],
                              "app": {"tailscale.com/app-connectors": [APP_CONNECTOR]}}])
    assert found == []


def test_app_connector_needs_tag_connectors() -> None:
    bad = {**APP_CONNECTOR, "connectors": ["alice@example.com"]}
    found = errors(nodeAttrs=[{"target": ["*"],
                               "app": {"tailscale.com/app-connectors": [bad]}}])
    assert [d.code for d in found] == ["E127"] and "alice@example.com" in found[0].span.text


def test_undocumented_app_connector_field_is_a_warning() -> None:
    odd = {**APP_CONNECTOR, "color": "blue"}
    assert codes(nodeAttrs=[{"target": ["*"],
                             "app": {"tailscale.com/app-connectors": [odd]}}]) == ["W207"]


def test_rejected_app_entry_does_not_cascade() -> None:
    found = check(nodeAttrs=[{"target": ["*"], "app": {"tailscale.com/cap/funnel": [{}]}}])
    assert [d.code for d in found] == ["E128"]


def test_target_only_node_attr_is_a_warning_not_an_error() -> None:
    assert codes(nodeAttrs=[{"target": ["*"]}]) == ["W208"]


# --- 5. tag ownership cycles ------------------------------------------------------------


@pytest.mark.parametrize("owners", [
    {"tag:k8s": ["tag:k8s"]},
    {"tag:a": ["tag:b"], "tag:b": ["tag:a"]},
])
def test_tag_ownership_cycles_are_accepted(owners: dict[str, list[str]]) -> None:
    assert not errors(tagOwners=owners)


def test_undefined_owner_tag_is_still_rejected() -> None:
    assert "E105" in codes(tagOwners={"tag:a": ["tag:missing"]})


# --- 6/7. tests `allow`, sshTests IP src -------------------------------------------------


def test_tests_allow_is_accept() -> None:
    policy = loaded(acls=[{"action": "accept", "src": ["group:dev"], "dst": ["tag:server:22"]}],
                    tests=[{"src": "alice@example.com", "allow": ["tag:server:22"]}])
    assert [t.text for t in policy.tests[0].accept] == ["tag:server:22"]
    assert "W206" in codes(tests=[{"src": "alice@example.com", "allow": ["tag:server:22"]}])


def test_tests_allow_entries_are_still_checked() -> None:
    found = errors(tests=[{"src": "alice@example.com", "allow": ["tag:server:notaport"]}])
    assert [d.code for d in found] == ["E111"]


def test_tests_user_is_src() -> None:
    """`user` is the original name of a test's `src` (Tailscale's API client,
    tailscale-client-go-v2 ACLTest, still carries it beside `src`)."""
    policy = loaded(acls=[{"action": "accept", "src": ["group:dev"], "dst": ["tag:server:22"]}],
                    tests=[{"user": "alice@example.com", "allow": ["tag:server:22"]}])
    assert str(policy.tests[0].src) == "alice@example.com"
    found = check(tests=[{"User": "alice@example.com", "Allow": ["tag:server:22"]}])
    assert {d.code for d in found} == {"W206"} and any('"user"' in d.message for d in found)
    assert [d.code for d in errors(tests=[{"accept": ["tag:server:22"]}])] == ["E103"]
    assert [d.code for d in errors(tests=[{"user": "group:nope", "deny": ["tag:server:22"]}])
            ] == ["E104"]


@pytest.mark.parametrize("autogroup", ["autogroup:member", "autogroup:tagged",
                                       "autogroup:admin", "autogroup:owner"])
def test_autogroup_test_sources_are_refused(autogroup: str) -> None:
    """SaaS fails a test whose src is an autogroup ("user or host is invalid:
    unknown user or host", tailscale/tailscale#12370; FR #4416 open) and
    refuses one in sshTests ("SSH tests src contains disallowed element",
    #14102); every capture with an autogroup test src is a 400."""
    rules = {"acls": [{"action": "accept", "src": ["*"], "dst": ["tag:server:22"]}]}
    [found] = errors(**rules, tests=[{"src": autogroup, "accept": ["tag:server:22"]}])
    assert found.code == "E114" and found.span.text == f'"{autogroup}"'
    assert "unknown user or host" in found.message
    [found] = errors(sshTests=[{"src": autogroup, "dst": ["tag:server"], "accept": ["root"]}])
    assert found.message == f'SSH tests src contains disallowed element "{autogroup}"'
    assert not errors(**rules, tests=[{"src": "group:dev", "accept": ["tag:server:22"]}])


def test_ssh_check_action_refuses_tagged_sources() -> None:
    """KB policy syntax: "An SSH access rule from a tagged device cannot be in
    check mode"; SaaS says '"check" action does not support tags in src'."""
    rule = {"action": "check", "dst": ["tag:server"], "users": ["root"]}
    for src in ("tag:rec", "autogroup:tagged"):
        [found] = errors(ssh=[{**rule, "src": ["alice@example.com", src]}])
        assert found.code == "E120" and found.span.text == f'"{src}"'
        assert "does not support tags in src" in found.message
    assert errors(ssh=[{**rule, "src": ["group:dev", "autogroup:member"]}]) == []
    assert errors(ssh=[{**rule, "action": "accept", "src": ["tag:rec"]}]) == []


def test_ssh_test_ip_source_is_accepted() -> None:
    assert not errors(sshTests=[{"src": "100.64.0.1", "dst": ["tag:server"],
                                 "accept": ["root"]}])


def test_ssh_test_without_dst_is_rejected() -> None:
    """headscale's policy v2 refuses an sshTests entry with no dst at parse ("SSH
    tests entry must have at least one dst", types.go ErrSSHTestEmptyDst), beside
    the dst checks whose words match SaaS's captures; no capture or document
    says SaaS accepts one (tristanheaven/tailscale-config has one, in
    tests/corpus/realworld-invalid)."""
    [found] = errors(sshTests=[{"src": "tag:server", "deny": ["root"]}])
    assert found.code == "E103" and 'missing required field "dst"' in found.message
    assert not errors(sshTests=[{"src": "tag:server", "dst": ["tag:server"],
                                 "deny": ["root"]}])


def test_ssh_test_prefix_source_is_rejected() -> None:
    found = errors(sshTests=[{"src": "100.64.0.0/24", "dst": ["tag:server"],
                              "accept": ["root"]}])
    assert [d.code for d in found] == ["E125"]


# --- 8. ipsets add / remove ----------------------------------------------------------------

IPSETS = {"ipset:lan": ["10.0.0.0/8", "remove 10.1.0.0/16", "add 192.168.0.0/24"],
          "ipset:web": ["ipset:lan", "remove 10.2.0.0/16", "autogroup:internet"]}


SERVERS = Inventory.of([
    Node("srv", None, ("tag:server",), (ipaddress.ip_address("100.64.0.9"),)),
    Node("laptop", "alice@example.com", (), (ipaddress.ip_address("100.64.0.1"),))])


def test_ipset_add_and_remove() -> None:
    policy = loaded(ipsets=IPSETS, acls=[{"action": "accept", "src": ["ipset:web"],
                                          "dst": ["tag:server:443"]}])
    ev = ReferenceEvaluator(policy, SERVERS)
    rules = compile_policy(policy, SERVERS).netmaps["srv"].packet_filter
    compiled = union_all(AddressSet.parse(t) for r in rules for t in r.to_json()["SrcIPs"])
    inside = ["10.0.0.1", "10.3.0.1", "192.168.0.9", "8.8.8.8"]
    outside = ["10.1.2.3", "10.2.0.1", "192.168.1.1", "100.64.0.1"]
    for text, expected in [(a, True) for a in inside] + [(a, False) for a in outside]:
        address = ipaddress.ip_address(text)
        assert ev.address_alias_contains(IPSetRef("ipset:web"), address) is expected, text
        assert (address in compiled) is expected, text


# KB "IP sets": "Each named IP set can have one or more operations, which are
# processed in order": a later add puts back part of an earlier remove, and a
# remove before the add it would trim removes nothing.
@pytest.mark.parametrize(("entries", "inside", "outside"), [
    (["10.0.0.0/8", "remove 10.1.0.0/16", "add 10.1.2.0/24"],
     ["10.0.0.1", "10.1.2.3"], ["10.1.3.1", "10.1.0.1"]),
    (["remove 10.1.0.0/16", "add 10.0.0.0/8"], ["10.1.0.1", "10.200.0.1"], ["11.0.0.1"]),
    (["add 10.0.0.0/8", "remove ipset:inner", "add 10.1.1.1"],
     ["10.1.1.1", "10.9.0.1"], ["10.1.1.2"]),
])
def test_ipset_operations_apply_in_order(entries: list[str], inside: list[str],
                                         outside: list[str]) -> None:
    policy = loaded(ipsets={"ipset:x": entries, "ipset:inner": ["10.1.0.0/16"]},
                    acls=[{"action": "accept", "src": ["ipset:x"], "dst": ["tag:server:443"]}])
    ev = ReferenceEvaluator(policy, SERVERS)
    rules = compile_policy(policy, SERVERS).netmaps["srv"].packet_filter
    compiled = union_all(AddressSet.parse(t) for r in rules for t in r.to_json()["SrcIPs"])
    blocks = ev.ipset_networks("ipset:x")
    for text, expected in [(a, True) for a in inside] + [(a, False) for a in outside]:
        address = ipaddress.ip_address(text)
        assert ev.address_alias_contains(IPSetRef("ipset:x"), address) is expected, text
        assert (address in compiled) is expected, text
        assert any(address in block for block in blocks) is expected, text


def test_via_empty_or_null_is_no_via_and_only_tags_otherwise() -> None:
    """KB "Route filtering with Via": omit `via` "(or set it to [] or null)" for any
    router; "You can only use tags within the via field" (so not even `*`, which
    Tailscale's 2024 announcement only used to explain the default)."""
    grant = {"src": ["group:dev"], "dst": ["192.168.0.0/24"], "ip": ["22"]}
    for via in ([], None):
        policy = loaded(grants=[{**grant, "via": via}])
        assert policy.grants is not None and policy.grants[0].via == ()
    # Other optional rule fields set to null are left out too (Go's decoder).
    assert not errors(grants=[{**grant, "srcPosture": None, "app": None},
                              {"src": ["*"], "dst": ["tag:server"], "ip": None,
                               "app": {"example.com/cap/x": [{}]}}],
                      acls=[{"action": "accept", "src": ["*"], "dst": ["tag:server:22"],
                             "proto": None, "srcPosture": None}])
    for bad in ("*", "group:dev", "autogroup:tagged"):
        [found] = errors(grants=[{**grant, "via": [bad]}])
        assert found.code == "E119" and "via can only be a tag" in found.message


def test_a_null_section_is_a_section_left_out() -> None:
    """SaaS decodes null as Go's zero value (captured: ssh-users-null is "users must
    be specified", ssh-acceptenv-null and ssh-checkperiod-null equal the field
    omitted), so a section set to null is absent: `"acls": null` with no grants is
    the allow-all default, as if `acls` were not written."""
    nulls = {key: None for key in ("acls", "grants", "ssh", "hosts", "ipsets", "postures",
                                   "autoApprovers", "nodeAttrs", "tests", "sshTests",
                                   "defaultSrcPosture", "derpMap", "disableIPv4")}
    policy = loaded(**nulls)
    assert policy.allows_all and policy.ssh == () and policy.tests == ()
    assert not loaded(acls=None, grants=[{"src": ["*"], "dst": ["*"], "ip": ["22"]}]).allows_all


@pytest.mark.parametrize(("tag", "why"), [
    ("tag:my_tag", "can only contain numbers, letters, or dashes"),
    ("tag:web.prod", "can only contain numbers, letters, or dashes"),
    ("tag:1web", "must start with a letter"),
])
def test_tag_names_are_letters_digits_and_dashes(tag: str, why: str) -> None:
    """Tailscale's tailcfg.CheckTag (whose words SaaS gives for a bad tagOwners key,
    captured ssh-unicode-cyrillic-tag): a letter, then letters, digits or dashes."""
    [found] = errors(tagOwners={tag: ["autogroup:admin"]})
    assert found.code == "E116" and why in found.message and found.span.text == f'"{tag}"'
    assert not errors(tagOwners={"tag:Web-2-": ["autogroup:admin"]})


def test_host_prefix_names_a_host_in_ipsets_and_rules() -> None:
    """Tailscale's IP-sets announcement writes `"remove host:prod"` in an ipset and
    `"dst": ["host:prod"]` in a grant: `host:NAME` is the hosts entry NAME."""
    hosts = {"prod": "100.64.0.9", "lan": "10.2.3.0/24"}
    ipsets = {"ipset:corp": ["add lan", "remove host:prod"],
              "ipset:corp-bare": ["add lan", "remove prod"]}
    prefixed = loaded(hosts=hosts, ipsets=ipsets, grants=[
        {"src": ["group:dev"], "dst": ["host:prod"], "ip": ["22"]},
        {"src": ["ipset:corp"], "dst": ["host:prod"], "ip": ["443"]}])
    bare = loaded(hosts=hosts, ipsets=ipsets, grants=[
        {"src": ["group:dev"], "dst": ["prod"], "ip": ["22"]},
        {"src": ["ipset:corp-bare"], "dst": ["prod"], "ip": ["443"]}])
    def maps(policy: Policy) -> object:
        return {n: m.packet_filter for n, m in compile_policy(policy, SERVERS).netmaps.items()}
    assert maps(prefixed) == maps(bare) and maps(prefixed)["srv"]
    ev = ReferenceEvaluator(prefixed, SERVERS)
    assert ev.address_alias_contains(IPSetRef("ipset:corp"), ipaddress.ip_address("10.2.3.4"))
    assert not ev.address_alias_contains(IPSetRef("ipset:corp"),
                                         ipaddress.ip_address("100.64.0.9"))
    assert [d.code for d in errors(hosts=hosts, grants=[
        {"src": ["group:dev"], "dst": ["host:nope"], "ip": ["22"]}])] == ["E106"]
    assert [d.code for d in errors(grants=[
        {"src": ["group:dev"], "dst": ["host:"], "ip": ["22"]}])] == ["E116"]


@pytest.mark.parametrize(("entries", "code"), [
    (["remove 10.0.0.0/33"], "E110"),
    (["add autogroup:member"], "E114"),
    (["remove tag:server"], "E117"),
    (["subtract 10.0.0.0/8"], "E110"),
])
def test_bad_ipset_entries(entries: list[str], code: str) -> None:
    found = errors(ipsets={"ipset:x": entries},
                   acls=[{"action": "accept", "src": ["ipset:x"], "dst": ["tag:server:22"]}])
    assert code in [d.code for d in found] and all(d.span.line > 1 for d in found)


# --- 9. grant ip "*:PORTS" -----------------------------------------------------------------


def test_star_protocol_ports_compile_as_bare_ports() -> None:
    def filters(ip: str) -> object:
        policy = loaded(grants=[{"src": ["group:dev"], "dst": ["tag:server"], "ip": [ip]}])
        return [r.to_json() for r in compile_policy(policy, SERVERS).netmaps["srv"].packet_filter]

    assert filters("*:8096") == filters("8096") and filters("*:8096") != []


def test_star_protocol_bad_ports_rejected() -> None:
    found = errors(grants=[{"src": ["*"], "dst": ["tag:server"], "ip": ["*:abc"]}])
    assert [d.code for d in found] == ["E111"]


# --- 10. ipPool ------------------------------------------------------------------------------


@pytest.mark.parametrize(("pool", "expected"), [
    ("100.100.100.0/24", ["E127"]),   # captured: network within reserved range
    ("100.100.0.0/24", ["E127"]),
    ("100.100.100.128/25", ["E127"]),
    ("100.100.0.0/16", ["W207"]),     # overlaps, not within: a warning
    ("100.81.0.0/16", []),            # captured 200
])
def test_ip_pool(pool: str, expected: list[str]) -> None:
    assert codes(nodeAttrs=[{"target": ["group:dev"], "ipPool": [pool]}]) == expected


@pytest.mark.parametrize("value", ["", 1, True, None, ["x"], {"k": "v"}])
def test_grant_app_values_are_any_json(value: object) -> None:
    """Capability values are tailcfg.RawMessage: SaaS applied
    `"tailscale.com/cap/relay": [""]` (ponomarev-studio/VPN, tests/corpus)."""
    grant = {"src": ["*"], "dst": ["*"], "app": {"tailscale.com/cap/relay": [value]}}
    assert errors(grants=[grant]) == []


def test_grant_app_value_must_still_be_an_array() -> None:
    grant = {"src": ["*"], "dst": ["*"], "app": {"example.com/cap/x": {"k": "v"}}}
    assert [d.code for d in errors(grants=[grant])] == ["E102"]


def test_autogroup_tagged_approves_routes_and_exit_nodes() -> None:
    """SaaS applied `autogroup:tagged` as an exitNode and route approver
    (ponomarev-studio/VPN, tests/corpus)."""
    assert errors(autoApprovers={"exitNode": ["autogroup:tagged"],
                                 "routes": {"0.0.0.0/0": ["autogroup:tagged"],
                                            "::/0": ["autogroup:tagged"]}}) == []


# KB policy syntax, "Autogroups": each of these is allowed "As a `src` or
# `dst`, `tagOwner`, or `autoApprover`".
OWNING_AUTOGROUPS = ["autogroup:owner", "autogroup:admin", "autogroup:member",
                     "autogroup:tagged", "autogroup:auditor", "autogroup:billing-admin",
                     "autogroup:it-admin", "autogroup:network-admin"]


@pytest.mark.parametrize("autogroup", OWNING_AUTOGROUPS)
def test_documented_autogroups_own_tags_and_approve_routes(autogroup: str) -> None:
    assert errors(tagOwners={"tag:x": [autogroup]}) == []
    assert errors(tagOwners={"tag:x": []}, autoApprovers={
        "routes": {"10.0.0.0/8": [autogroup]}, "exitNode": [autogroup]}) == []


@pytest.mark.parametrize("autogroup", ["autogroup:self", "autogroup:internet",
                                       "autogroup:danger-all", "autogroup:shared",
                                       "autogroup:nonroot"])
def test_other_autogroups_still_own_no_tag(autogroup: str) -> None:
    assert "E114" in codes(tagOwners={"tag:x": [autogroup]})
    assert "E114" in codes(autoApprovers={"exitNode": [autogroup]})


def test_test_src_posture_attrs_are_accepted_with_a_warning() -> None:
    """Tailscale tests may give the source's posture attributes; a policy using
    them was applied through gitops-acl-action (HomeScaleCloud, tests/corpus).
    Postures are not modelled: a W207 says the test runs without them."""
    test = {"src": "alice@example.com", "accept": ["tag:server:22"],
            "srcPostureAttrs": {"node:os": "windows", "node:tsVersion": 1.8, "custom:ok": True}}
    found = check(tagOwners={"tag:server": ["alice@example.com"]},
                  acls=[{"action": "accept", "src": ["*"], "dst": ["tag:server:22"]}],
                  tests=[test])
    assert [d.code for d in found] == ["W207"], [str(d) for d in found]
    bad = {**test, "srcPostureAttrs": {"node:os": ["windows"]}}
    assert "E125" in codes(tagOwners={"tag:server": ["alice@example.com"]}, tests=[bad])
    assert "E102" in codes(tagOwners={"tag:server": ["alice@example.com"]},
                           tests=[{**test, "srcPostureAttrs": ["node:os"]}])

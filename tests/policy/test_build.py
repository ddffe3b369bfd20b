"""build.py and aliases.py: every section into the model, every shape error reported."""

from __future__ import annotations

import ipaddress
from datetime import timedelta

import pytest

from policyc.diagnostics.diagnostics import Diagnostic, Diagnostics
from policyc.diagnostics.source import NO_SPAN, SourceFile
from policyc.grammar.cst import JArray, JObject
from policyc.grammar.hujson import parse
from policyc.grammar.hujson_fast import MIN_RUN
from policyc.grammar.hujson_lark import parse_with_lark
from policyc.netmap import ALL_PORTS, PortRange
from policyc.policy.aliases import (
    parse_alias,
    parse_destination,
    parse_go_duration,
    parse_ip_capability,
    parse_ports,
    parse_protocol,
)
from policyc.policy.build import build_policy
from policyc.policy.load import load_policy_text
from policyc.policy.model import (
    AutoGroupRef,
    GroupRef,
    HostRef,
    IPSetRef,
    Policy,
    PrefixAlias,
    RangeAlias,
    TagRef,
    UserRef,
    Wildcard,
)

OWNERS = '"tagOwners": {"tag:web": ["a@x.com"], "tag:db": ["a@x.com"]}'


def build(text: str) -> tuple[Policy, Diagnostics]:
    diags = Diagnostics()
    source = SourceFile("p.hujson", text)
    return build_policy(parse(source, diags), source, diags), diags


def codes(text: str) -> list[str]:
    return [d.code for d in build(text)[1].errors]


def first(text: str, code: str) -> Diagnostic:
    return next(d for d in build(text)[1] if d.code == code)


def acl(*dst: str, src: str = '"*"', extra: str = "") -> str:
    dsts = ", ".join(f'"{d}"' for d in dst)
    return f'{{"acls": [{{"action": "accept", "src": [{src}], "dst": [{dsts}]{extra}}}]}}'


# --- aliases ------------------------------------------------------------------

@pytest.mark.parametrize(("text", "kind"), [
    ("*", Wildcard), ("alice@example.com", UserRef), ("alice@", UserRef),
    ("user:*@example.com", UserRef), ("group:eng", GroupRef), ("tag:web", TagRef),
    ("autogroup:member", AutoGroupRef), ("ipset:office", IPSetRef), ("db-primary", HostRef),
    ("subnet_a", HostRef), ("100.64.0.1", PrefixAlias), ("10.0.0.0/8", PrefixAlias),
    ("fd7a:115c:a1e0::1", PrefixAlias), ("10.0.0.1-10.0.0.20", RangeAlias),
    ("  tag:web  ", TagRef),
])
def test_alias_kinds(text: str, kind: type) -> None:
    diags = Diagnostics()
    assert isinstance(parse_alias(text, NO_SPAN, diags, position="src"), kind)
    assert not diags.errors


@pytest.mark.parametrize(("text", "code"), [
    ("tag:1web", "E116"), ("tag:", "E116"), ("autogroup:everyone", "E113"),
    ("10.0.0.256", "E110"), ("10.0.0.5-10.0.0.1", "E110"), ("10.0.0.1-fd00::1", "E110"),
    ("", "E117"), ("fd7a::zz", "E110"),
])
def test_bad_aliases(text: str, code: str) -> None:
    diags = Diagnostics()
    assert parse_alias(text, NO_SPAN, diags, position="src") is None
    assert [d.code for d in diags.errors] == [code]


def test_cidr_with_host_bits_is_masked() -> None:
    alias = parse_alias("10.0.0.1/8", NO_SPAN, Diagnostics(), position="dst")
    assert isinstance(alias, PrefixAlias)
    assert alias.network == ipaddress.ip_network("10.0.0.0/8")


@pytest.mark.parametrize(("text", "ports"), [
    ("*", (ALL_PORTS,)), ("22", (PortRange(22, 22),)),
    ("22,80,8000-8100", (PortRange(22, 22), PortRange(80, 80), PortRange(8000, 8100))),
    ("0-100", (PortRange(0, 100),)), ("65535", (PortRange(65535, 65535),)),
])
def test_ports(text: str, ports: tuple[PortRange, ...]) -> None:
    diags = Diagnostics()
    assert parse_ports(text, NO_SPAN, diags) == ports
    assert not diags.errors


@pytest.mark.parametrize("text", ["0", "65536", "90-80", "ssh", "", "22,", "1-", "-5", "٣"])
def test_bad_ports(text: str) -> None:
    diags = Diagnostics()
    assert parse_ports(text, NO_SPAN, diags) == ()
    assert [d.code for d in diags.errors] == ["E111"]


def test_named_port_message_matches_saas() -> None:
    diags = Diagnostics()
    parse_ports("ssh", NO_SPAN, diags)
    assert diags.errors[0].message == 'port range "ssh": invalid first integer'


@pytest.mark.parametrize(("text", "number"), [
    ("tcp", 6), ("TCP", 6), ("Udp", 17), ("icmp", 1), ("ipv6-icmp", 58), ("sctp", 132),
    ("1", 1), ("47", 47), ("255", 255),
])
def test_protocols(text: str, number: int) -> None:
    assert parse_protocol(text, NO_SPAN, Diagnostics()) == number


@pytest.mark.parametrize("text", ["*", "0", "256", "06", "bogus", ""])
def test_bad_protocols(text: str) -> None:
    diags = Diagnostics()
    assert parse_protocol(text, NO_SPAN, diags) is None
    assert [d.code for d in diags.errors] == ["E112"]


@pytest.mark.parametrize(("text", "alias", "ports"), [
    ("tag:web:443", "tag:web", "443"),
    ("fd7a::1:80", "fd7a::1", "80"),
    ("[fd7a::1]:80", "fd7a::1", "80"),
    ("[fd7a::1]/128:80,443", "fd7a::1", "80,443"),
    ("2001:db8::/32:443", "2001:db8::/32", "443"),
    ("*:*", "*", "*"),
])
def test_destinations(text: str, alias: str, ports: str) -> None:
    diags = Diagnostics()
    destination = parse_destination(text, NO_SPAN, diags)
    assert destination is not None, [str(d) for d in diags]
    assert str(destination.alias) == alias
    assert ",".join(str(p) for p in destination.ports) == ports


@pytest.mark.parametrize("text", ["webserver", "tag:web:", ":80", "[10.0.0.1]:80", "[fd7a::1]"])
def test_bad_destinations(text: str) -> None:
    diags = Diagnostics()
    assert parse_destination(text, NO_SPAN, diags) is None
    assert diags.has_errors


@pytest.mark.parametrize(("text", "protocols", "any_protocol"), [
    ("*", (), True), ("22", (), False), ("tcp:22", (6,), False), ("icmp:*", (1,), False),
    ("47", (), False),
])
def test_ip_capabilities(text: str, protocols: tuple[int, ...], any_protocol: bool) -> None:
    capability = parse_ip_capability(text, NO_SPAN, Diagnostics())
    assert capability is not None
    assert (capability.protocols, capability.any_protocol) == (protocols, any_protocol)


@pytest.mark.parametrize(("text", "code"), [
    ("icmp", "E111"), ("tcp:0", "E111"), ("icmp:22", "E118"), ("bogus:22", "E112"),
])
def test_bad_ip_capabilities(text: str, code: str) -> None:
    diags = Diagnostics()
    assert parse_ip_capability(text, NO_SPAN, diags) is None
    assert [d.code for d in diags.errors] == [code]


@pytest.mark.parametrize(("text", "seconds"), [
    ("12h", 43200), ("1h30m", 5400), ("90s", 90), ("1.5h", 5400), ("-1m", -60), ("0", 0),
])
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_go_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["abc", "12", "h", "1d", ""])
def test_bad_go_durations(text: str) -> None:
    assert parse_go_duration(text) is None


# --- whole policies ------------------------------------------------------------

def test_empty_file_allows_all() -> None:
    policy, diags = build("  // nothing here\n")
    assert policy.allows_all and not diags.items


def test_empty_acls_denies_all() -> None:
    policy, diags = build('{"acls": []}')
    assert policy.acls == () and not policy.allows_all and not diags.items


def test_every_section_is_built() -> None:
    policy, diags = build("""{
      "groups": {"group:eng": ["a@x.com"]},
      "tagOwners": {"tag:web": ["group:eng"]},
      "hosts": {"db": "100.64.0.5", "lan": "10.0.0.0/8"},
      "ipsets": {"ipset:office": ["10.0.0.0/8", "db"]},
      "postures": {"posture:mac": ["node:os == 'macos'"]},
      "defaultSrcPosture": ["posture:mac"],
      "autoApprovers": {"routes": {"10.0.0.0/8": ["tag:web"]}, "exitNode": ["tag:web"]},
      "acls": [{"action": "accept", "src": ["group:eng"], "proto": "tcp",
                "dst": ["tag:web:80,443"], "srcPosture": ["posture:mac"]}],
      "grants": [{"src": ["*"], "dst": ["tag:web"], "ip": ["tcp:22", "icmp:*"],
                  "app": {"example.com/cap/x": [{"k": 1}]}, "via": ["tag:web"]}],
      "ssh": [{"action": "check", "src": ["group:eng"], "dst": ["tag:web"],
               "users": ["root"], "checkPeriod": "12h", "acceptEnv": ["GIT_*"]}],
      "nodeAttrs": [{"target": ["*"], "attr": ["funnel"], "ipPool": ["100.80.0.0/16"]}],
      "tests": [{"src": "a@x.com", "proto": "tcp", "accept": ["tag:web:80"],
                 "deny": ["db:22"]}],
      "sshTests": [{"src": "a@x.com", "dst": ["tag:web"], "check": ["root"]}],
      "disableIPv4": true, "randomizeClientPort": true, "OneCGNATRoute": "mac-always",
      "derpMap": {"Regions": {}}, "attrConfig": {"x": 1},
    }""")
    assert not diags.items, [str(d) for d in diags]
    assert list(policy.groups["group:eng"].logins) == ["a@x.com"]
    assert policy.hosts["lan"].network == ipaddress.ip_network("10.0.0.0/8")
    assert policy.acls and policy.acls[0].protocols == (6,)
    assert policy.acls[0].destinations[0].ports == (PortRange(80, 80), PortRange(443, 443))
    assert policy.grants and [str(v) for v in policy.grants[0].via] == ["tag:web"]
    assert policy.grants[0].app[0].values == [{"k": 1}]
    assert policy.ssh[0].check_period == timedelta(hours=12)
    assert policy.node_attrs[0].ip_pool == (ipaddress.ip_network("100.80.0.0/16"),)
    assert policy.tests[0].accept[0].port == 80 and policy.tests[0].protocol == 6
    assert policy.ssh_tests[0].check == ("root",)
    assert [str(a) for a in policy.auto_approvers.exit_node] == ["tag:web"]
    assert policy.options.disable_ipv4 and policy.options.one_cgnat_route == "mac-always"
    assert policy.options.extra == {"attrConfig": {"x": 1}}
    assert policy.default_src_posture == ("posture:mac",)


def test_spans_point_at_the_json_values() -> None:
    text = ('{\n  "acls": [\n    {"action": "accept", "src": ["tag:web"], '
            '"dst": ["tag:db:5432"]}\n  ]\n}')
    policy, _ = build(text)
    assert policy.acls
    rule = policy.acls[0]
    assert (rule.span.line, rule.span.column) == (3, 5)
    assert rule.sources[0].span.text == '"tag:web"'
    assert rule.destinations[0].span.text == '"tag:db:5432"'


def test_unknown_section_suggests_the_right_one() -> None:
    diag = first('{"tagOwnrs": {}}', "E101")
    assert diag.suggestion == "tagOwners"
    assert (diag.span.line, diag.span.column) == (1, 2)


def test_unknown_rule_field() -> None:
    assert first(acl("*:*", extra=', "dts": []'), "E101").suggestion == "dst"


def test_field_names_match_in_any_case_with_a_warning() -> None:
    """Tailscale's decoder matches field names case-insensitively (headscale mirrors
    it with json.MatchCaseInsensitiveNames); `"ACLs"`/`"Action"` are its early docs'
    spelling and jtcressy-home/tailnet-config applied `"Groups"` (tests/corpus)."""
    policy, diags = build('{"ACLs": [{"Action": "accept", "SRC": ["*"], "Dst": ["*:22"]}],'
                          ' "TagOwners": {"tag:a": []}}')
    assert [d.code for d in diags] == ["W206"] * 5, [str(d) for d in diags]
    assert sorted(str(d.suggestion) for d in diags) == ["acls", "action", "dst", "src",
                                                         "tagOwners"]
    assert policy.acls is not None and len(policy.acls) == 1 and "tag:a" in policy.tag_owners
    # Map keys are data, not fields: a group name keeps its case.
    policy, _ = build('{"Groups": {"group:Eng": ["a@example.com"]}}')
    assert list(policy.groups) == ["group:Eng"]


def test_a_field_given_twice_in_different_cases_is_an_error() -> None:
    _, diags = build('{"acls": [], "ACLs": []}')
    assert [d.code for d in diags] == ["E101"]
    assert 'repeats field "acls"' in diags.items[0].message
    _, diags = build('{"Acls": [], "ACLs": []}')
    assert [d.code for d in diags] == ["W206", "E101"]


@pytest.mark.parametrize(("text", "code"), [
    ('{"acls": {}}', "E102"),
    ('{"groups": {"group:a": "a@x.com"}}', "E102"),
    ('{"acls": [{"action": "accept", "src": "*", "dst": ["*:*"]}]}', "E102"),
    ('{"acls": [{"action": "accept", "src": [1], "dst": ["*:*"]}]}', "E102"),
    ('{"disableIPv4": "yes"}', "E102"),
    ('[]', "E102"),
])
def test_wrong_types(text: str, code: str) -> None:
    assert code in codes(text)


def test_wrong_type_message_names_both_types() -> None:
    diag = first('{"acls": [{"action": "accept", "src": {}, "dst": ["*:*"]}]}', "E102")
    assert "array of strings" in diag.message and "object" in diag.message


@pytest.mark.parametrize("text", [
    '{"acls": [{"src": ["*"], "dst": ["*:*"]}]}',
    '{"acls": [{"action": "accept", "dst": ["*:*"]}]}',
    '{"grants": [{"src": ["*"], "ip": ["*"]}]}',
    '{"ssh": [{"action": "accept", "src": ["a@x.com"], "dst": ["a@x.com"]}]}',
    '{"tests": [{"accept": ["1.2.3.4:22"]}]}',
    '{"nodeAttrs": [{"attr": ["x"]}]}',
])
def test_missing_fields(text: str) -> None:
    assert "E103" in codes(text)


def test_legacy_users_and_ports_names() -> None:
    policy, diags = build('{"acls": [{"action": "accept", "users": ["*"], "ports": ["*:22"]}]}')
    assert not diags.items and policy.acls and policy.acls[0].destinations[0].ports[0].first == 22


def test_all_errors_reported_and_good_rules_kept() -> None:
    policy, diags = build("""{"acls": [
        {"action": "deny", "src": ["*"], "dst": ["*:*"]},
        {"action": "accept", "src": ["*"], "dst": ["tag:web:ssh"]},
        {"action": "accept", "src": ["*"], "dst": ["*:22"]},
        {"action": "accept", "src": ["*"], "proto": "icmp", "dst": ["*:22"]},
    ]}""")
    assert [d.code for d in diags.errors] == ["E115", "E111", "E118"]
    # Rules with errors stay in the (rejected) policy so validation sees them too.
    assert policy.acls is not None and len(policy.acls) == 4
    assert policy.acls[2].destinations[0].ports[0].first == 22


def test_undefined_names_in_a_broken_rule_are_reported_too() -> None:
    text = """{"acls": [
        {"action": "allow", "src": ["group:nope"], "dst": ["tag:nope:22", "x:99999"]},
    ]}"""
    _, diags = load_policy_text(text)
    assert sorted(d.code for d in diags.errors) == ["E104", "E105", "E111", "E115"]


def test_error_line_and_column() -> None:
    diag = first('{\n "acls": [{"action": "accept", "src": ["*"],\n   "dst": ["x:0"]}]}', "E111")
    assert (diag.span.line, diag.span.column) == (3, 12)


@pytest.mark.parametrize(("text", "code"), [
    ('{"groups": {"eng": []}}', "E116"),
    ('{"groups": {"group:a": ["group:b"]}}', "E108"),
    ('{"groups": {"group:a": ["alice"]}}', "E109"),
    ('{"groups": {"group:a": ["tag:x"]}}', "E109"),
    ('{"tagOwners": {"web": []}}', "E116"),
    ('{"tagOwners": {"tag:9": []}}', "E116"),
    ('{"hosts": {"db": "not-an-ip"}}', "E110"),
    ('{"hosts": {"a:b": "1.2.3.4"}}', "E116"),
    ('{"ipsets": {"office": []}}', "E116"),
    ('{"postures": {"mac": []}}', "E126"),
    ('{"autoApprovers": {"routes": {"10.0.0.0/33": []}}}', "E110"),
    ('{"autoApprovers": {"route": {}}}', "E101"),
    ('{"nodeAttrs": [{"target": ["*"], "ipPool": ["x"]}]}', "E110"),
])
def test_definition_errors(text: str, code: str) -> None:
    assert code in codes(text)


@pytest.mark.parametrize("bad", ["group:b", "alice", " tag:x "])
def test_big_group_member_errors_keep_their_place(bad: str) -> None:
    """A group long enough for the parser's compact form (its strings' spans found
    only when a diagnostic asks): the same logins and diagnostics, at the same place,
    as lark's tree gives."""
    members = [f"u{i}@x.com" for i in range(3 * MIN_RUN)]
    members[MIN_RUN + 1] = bad
    body = "".join(f'  "{m}", /* "{i}" */\n' for i, m in enumerate(members))
    text = '{"groups": {"group:a": [ // "members"\n' + body + ']}}'
    source, diags = SourceFile("p.hujson", text), Diagnostics()
    tree = parse(source, diags)
    assert isinstance(tree, JObject) and isinstance(tree.members[0].value, JObject)
    array = tree.members[0].value.members[0].value
    assert isinstance(array, JArray) and array._items is None  # compact: no JString yet
    policy = build_policy(tree, source, diags)
    source, lark_diags = SourceFile("p.hujson", text), Diagnostics()
    lark_policy = build_policy(parse_with_lark(source, text, lark_diags), source, lark_diags)
    located = [(d.code, d.span.line, d.span.column, d.span.end_position) for d in diags]
    assert located == [(d.code, d.span.line, d.span.column, d.span.end_position)
                       for d in lark_diags]
    assert located[0][1:3] == (MIN_RUN + 3, 3)
    assert policy.groups["group:a"].logins == lark_policy.groups["group:a"].logins
    assert len(policy.groups["group:a"].logins) == 3 * MIN_RUN - 1


@pytest.mark.parametrize(("grant", "code"), [
    ('"ip": []', "E119"),
    ('"app": {}', "E119"),
    ('"ip": ["*"], "via": ["autogroup:tagged"]', "E119"),
    ('"app": {"https://example.com/cap": [{}]}', "E128"),
    ('"app": {"tailscale.com/cap/funnel": [{}]}', "E128"),
    ('"app": {"example.com": [{}]}', "E128"),
    ('"ip": ["icmp:22"]', "E118"),
])
def test_grant_errors(grant: str, code: str) -> None:
    assert code in codes(f'{{"grants": [{{"src": ["*"], "dst": ["*"], {grant}}}]}}')


def test_allow_listed_tailscale_capability() -> None:
    assert not codes('{"grants": [{"src": ["*"], "dst": ["*"], '
                     '"app": {"tailscale.com/cap/drive": [{}]}}]}')


@pytest.mark.parametrize(("rule", "code"), [
    ('"action": "ACCEPT", "users": ["root"]', "E115"),
    ('"action": "", "users": ["root"]', "E115"),
    ('"action": "accept", "users": []', "E120"),
    ('"action": "accept", "users": ["*"]', "E120"),
    ('"action": "accept", "users": [""]', "E120"),
    ('"action": "accept", "users": ["root"], "acceptEnv": [""]', "E120"),
    ('"action": "check", "users": ["root"], "checkPeriod": "-1m"', "E124"),
    ('"action": "check", "users": ["root"], "checkPeriod": "200h"', "E124"),
    ('"action": "check", "users": ["root"], "checkPeriod": "abc"', "E124"),
])
def test_ssh_rule_errors(rule: str, code: str) -> None:
    text = f'{{"ssh": [{{"src": ["a@x.com"], "dst": ["a@x.com"], {rule}}}]}}'
    assert code in codes(text)


def test_check_period_always() -> None:
    policy, diags = build('{"ssh": [{"action": "check", "src": ["a@x.com"], "dst": ["a@x.com"],'
                          ' "users": ["root"], "checkPeriod": "always"}]}')
    assert not diags.errors and policy.ssh[0].check_period == timedelta.max


@pytest.mark.parametrize(("test", "code"), [
    ('"src": "a@x.com"', "E125"),
    ('"src": "a@x.com", "accept": ["tag:web:*"]', "E125"),
    ('"src": "a@x.com", "accept": ["tag:web:22,80"]', "E125"),
    ('"src": "a@x.com", "accept": ["10.0.0.0/8:22"]', "E125"),
    ('"src": "a@x.com", "accept": ["autogroup:internet:443"]', "E125"),
    ('"src": "a@x.com", "accept": ["1.2.3.4:0"]', "E111"),
    ('"src": "a@x.com", "proto": "tcp", "accept": ["1.2.3.4:0"]', "E111"),
    ('"src": "a@x.com", "proto": "bogus", "accept": ["1.2.3.4:22"]', "E112"),
    ('"src": ["a@x.com"], "accept": ["1.2.3.4:22"]', "E102"),
])
def test_test_entry_errors(test: str, code: str) -> None:
    assert code in codes(f'{{{OWNERS}, "tests": [{{{test}}}]}}')


def test_port_less_test_protocol_accepts_port_zero() -> None:
    # Tailscale accepts `"proto": "icmp"` tests with an `ALIAS:0` entry (seen in a
    # policy kept applied through GitOps for months); the port carries no meaning.
    policy, diags = build(f'{{{OWNERS}, "tests": [{{"src": "a@x.com", "proto": "icmp", '
                          '"accept": ["1.2.3.4:0"], "deny": ["1.2.3.5:22"]}]}')
    assert not diags.errors, [str(d) for d in diags]
    assert policy.tests[0].protocol == 1
    assert [t.port for t in policy.tests[0].accept] == [0]


def test_ssh_test_dst_cidr_rejected() -> None:
    assert "E125" in codes('{"sshTests": [{"src": "a@x.com", "dst": ["100.64.0.0/24"], '
                           '"accept": ["root"]}]}')

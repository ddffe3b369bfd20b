"""validate.py: cross-references, placement and rule-level checks, by code."""

from __future__ import annotations

import pytest

from policyc.diagnostics.diagnostics import Diagnostic
from policyc.policy.load import load_policy_text

HEADER = """
  "groups": {"group:dev": ["a@x.com"], "group:ops": ["b@x.com"]},
  "tagOwners": {"tag:web": ["group:dev"], "tag:db": ["group:ops"], "tag:router": ["a@x.com"]},
  "hosts": {"db1": "100.64.0.5", "lan": "10.0.0.0/8"},
"""
# Uses both hosts (tagOwners already use both groups), so nothing warns.
USES = """
  "ipsets": {"ipset:all": ["db1", "lan"]},
"""


def run(body: str, *, header: str = HEADER) -> list[Diagnostic]:
    _, diags = load_policy_text("{" + header + body + "}", "p.hujson")
    return diags.items


def codes(body: str, **kwargs: str) -> list[str]:
    return [d.code for d in run(body, **kwargs)]


def test_clean_policy_has_no_diagnostics() -> None:
    assert run(USES) == []


def test_undefined_group_suggests_the_closest() -> None:
    body = '"acls": [{"action": "accept", "src": ["group:devz"], "dst": ["*:*"]}]'
    diag = next(d for d in run(USES + body) if d.code == "E104")
    assert diag.suggestion == "group:dev"
    assert diag.message == 'group "group:devz" is not defined'  # the hint is rendered once
    assert diag.span.text == '"group:devz"'
    assert (diag.span.line, diag.span.column) == (7, 39)


@pytest.mark.parametrize("body", [
    '"acls": [{"action": "accept", "src": ["tag:nope"], "dst": ["*:*"]}]',
    '"acls": [{"action": "accept", "src": ["*"], "dst": ["tag:nope:22"]}]',
    '"grants": [{"src": ["*"], "dst": ["10.0.0.0/8"], "ip": ["*"], "via": ["tag:nope"]}]',
    '"ssh": [{"action": "accept", "src": ["tag:nope"], "dst": ["tag:web"], "users": ["u"]}]',
    '"tests": [{"src": "tag:nope", "accept": ["1.2.3.4:22"]}]',
    '"tests": [{"src": "a@x.com", "accept": ["tag:nope:22"]}]',
    '"sshTests": [{"src": "a@x.com", "dst": ["tag:nope"], "accept": ["u"]}]',
    '"autoApprovers": {"routes": {"10.0.0.0/8": ["tag:nope"]}, "exitNode": []}',
    '"nodeAttrs": [{"target": ["tag:nope"], "attr": ["x"]}]',
])
def test_undefined_tag_anywhere(body: str) -> None:
    assert "E105" in codes(USES + body)


def test_tag_owned_by_undefined_tag() -> None:
    header = HEADER.replace('"tag:router": ["a@x.com"]', '"tag:router": ["tag:nope"]')
    assert "E105" in codes(USES, header=header)


@pytest.mark.parametrize(("body", "code"), [
    ('"acls": [{"action": "accept", "src": ["nohost"], "dst": ["*:*"]}]', "E106"),
    ('"acls": [{"action": "accept", "src": ["*"], "dst": ["ipset:none:*"]}]', "E107"),
    ('"ipsets": {"ipset:a": ["ipset:b"]}', "E107"),
    ('"ipsets": {"ipset:a": ["nohost"]}', "E106"),
])
def test_undefined_hosts_and_ipsets(body: str, code: str) -> None:
    assert code in codes(body)


def test_undefined_host_suggests() -> None:
    diag = next(d for d in run(USES + '"tests": [{"src": "db2", "accept": ["db1:22"]}]')
                if d.code == "E106")
    assert diag.suggestion == "db1"


@pytest.mark.parametrize(("src", "dst"), [
    ("autogroup:self", "*:*"), ("autogroup:internet", "*:*"), ("*", "autogroup:danger-all:*"),
    ("autogroup:nonroot", "*:*"), ("*", "autogroup:shared:22"),
])
def test_misplaced_autogroups(src: str, dst: str) -> None:
    body = f'"acls": [{{"action": "accept", "src": ["{src}"], "dst": ["{dst}"]}}]'
    assert "E114" in codes(USES + body)


def test_self_src_message_matches_saas() -> None:
    body = '"acls": [{"action": "accept", "src": ["autogroup:self"], "dst": ["*:*"]}]'
    diag = next(d for d in run(USES + body) if d.code == "E114")
    assert diag.message == '"autogroup:self" not valid on the src side of a rule'


@pytest.mark.parametrize("src", ["tag:web", "db1", "100.64.0.1", "autogroup:tagged",
                                 "10.0.0.1-10.0.0.9"])
def test_self_needs_user_sources_in_acls(src: str) -> None:
    body = f'"acls": [{{"action": "accept", "src": ["{src}"], "dst": ["autogroup:self:*"]}}]'
    assert "E121" in codes(USES + body)


@pytest.mark.parametrize("src", ["*", "a@x.com", "group:dev", "autogroup:member"])
def test_self_with_user_sources_in_acls(src: str) -> None:
    body = f'"acls": [{{"action": "accept", "src": ["{src}"], "dst": ["autogroup:self:*"]}}]'
    assert "E121" not in codes(USES + body)


def test_self_with_wildcard_in_grants() -> None:
    body = '"grants": [{"src": ["*"], "dst": ["autogroup:self"], "ip": ["*"]}]'
    assert "E121" in codes(USES + body)


@pytest.mark.parametrize("grant", [
    '"src": ["*"], "dst": ["0.0.0.0/0"], "ip": ["*"]',
    '"src": ["*"], "dst": ["::/0"], "ip": ["*"]',
    '"src": ["*"], "dst": ["autogroup:internet"], "app": {"example.com/cap/x": [{}]}',
])
def test_grant_rules(grant: str) -> None:
    assert "E119" in codes(USES + f'"grants": [{{{grant}}}]')


@pytest.mark.parametrize("rule", [
    '"src": ["tag:web"], "dst": ["autogroup:self"]',
    '"src": ["tag:web"], "dst": ["a@x.com"]',
    '"src": ["autogroup:tagged"], "dst": ["autogroup:member"]',
    '"src": ["b@x.com"], "dst": ["a@x.com"]',
    '"src": ["a@x.com"], "dst": ["*"]',
    '"src": ["a@x.com"], "dst": ["db1"]',
    '"src": ["*"], "dst": ["tag:web"]',
    '"src": ["100.64.0.1"], "dst": ["tag:web"]',
])
def test_ssh_source_destination_rules(rule: str) -> None:
    body = f'"ssh": [{{"action": "accept", {rule}, "users": ["root"]}}]'
    assert "E120" in codes(USES + body)


# Decided with evidence (docs/policy-reference.md, Compatibility notes): the KB
# allows autogroup:self only "if the source contains only users or groups" and
# a user dst only "if the source contains only the same named user"; SaaS
# applied two wider shapes (davidpius95/guildcloud-console, tests/corpus), kept
# apart below: autogroup:tagged beside autogroup:self, and member/role
# autogroups beside the destination user itself.
@pytest.mark.parametrize(("rule", "message"), [
    ('"src": ["tag:web"], "dst": ["autogroup:self"]',
     "tags in SSH source cannot access user-owned devices"),
    ('"src": ["a@x.com", "tag:web"], "dst": ["autogroup:self"]',
     "tags in SSH source cannot access user-owned devices"),
    # A user dst from a tag: SaaS's own words (headscale#3010; azigler/dotfiles,
    # whose 2026-05-24 revisions record each message the policy editor gave).
    ('"src": ["autogroup:tagged"], "dst": ["a@x.com"]',
     "users in dst are only allowed from the same user"),
    ('"src": ["tag:web"], "dst": ["a@x.com"]',
     "users in dst are only allowed from the same user"),
    ('"src": ["tag:web"], "dst": ["group:dev"]',
     "groups are not allowed dst"),
    ('"src": ["autogroup:member"], "dst": ["a@x.com"]',
     "users in dst are only allowed from the same user"),
    ('"src": ["autogroup:admin"], "dst": ["a@x.com"]',
     "users in dst are only allowed from the same user"),
    ('"src": ["a@x.com", "group:dev"], "dst": ["a@x.com"]',
     "users in dst are only allowed from the same user"),
    ('"src": ["a@x.com", "b@x.com"], "dst": ["a@x.com"]',
     "users in dst are only allowed from the same user"),
])
def test_ssh_user_owned_destinations_need_user_sources(rule: str, message: str) -> None:
    body = f'"ssh": [{{"action": "accept", {rule}, "users": ["root"]}}]'
    found = [d for d in run(USES + body) if d.code == "E120"]
    assert len(found) == 1 and message in found[0].message, found
    destination = rule.rsplit('"dst": [', 1)[1].rstrip("]")
    assert found[0].span.text == destination  # located at the destination


@pytest.mark.parametrize("rule", [
    '"src": ["autogroup:member", "autogroup:admin", "autogroup:tagged"],'
    ' "dst": ["autogroup:self", "autogroup:tagged"]',
    '"src": ["autogroup:member", "autogroup:admin", "a@x.com"],'
    ' "dst": ["autogroup:tagged", "a@x.com", "autogroup:self"]',
    '"src": ["a@x.com", "autogroup:owner"], "dst": ["a@x.com"]',
])
def test_ssh_shapes_saas_applied_are_accepted(rule: str) -> None:
    """davidpius95/guildcloud-console's two SSH rules, applied through the API."""
    body = f'"ssh": [{{"action": "accept", {rule}, "users": ["root"]}}]'
    assert [c for c in codes(USES + body) if c.startswith("E")] == []


def test_ssh_user_may_reach_own_devices() -> None:
    body = '"ssh": [{"action": "accept", "src": ["a@x.com"], "dst": ["a@x.com"], "users": ["u"]}]'
    assert codes(USES + body) == []


def test_ssh_check_period_needs_check() -> None:
    body = ('"ssh": [{"action": "accept", "src": ["a@x.com"], "dst": ["a@x.com"],'
            ' "users": ["u"], "checkPeriod": "1h"}]')
    assert "E120" in codes(USES + body)


def test_ssh_users_autogroups() -> None:
    ok = ('"ssh": [{"action": "accept", "src": ["group:dev"], "dst": ["autogroup:self"],'
          ' "users": ["autogroup:nonroot"]}]')
    assert codes(USES + ok) == []
    # Tailscale takes any other autogroup as a literal login name (captured): a warning.
    literal = USES + ok.replace("autogroup:nonroot", "autogroup:member")
    assert codes(literal) == ["W209"]


def test_tag_owner_cycle_is_accepted() -> None:
    """SaaS accepts a two-tag ownership cycle (captured 200), so we do too."""
    header = HEADER.replace('"tag:web": ["group:dev"]', '"tag:web": ["tag:db"]').replace(
        '"tag:db": ["group:ops"]', '"tag:db": ["tag:web"]')
    assert codes(USES, header=header) == ["W202", "W202"]  # the groups own nothing now


def test_self_owned_tag_is_accepted() -> None:
    """`"tag:k8s": ["tag:k8s"]` (the Kubernetes operator's pattern): captured 200."""
    header = HEADER.replace('"tag:router": ["a@x.com"]', '"tag:router": ["tag:router"]')
    assert codes(USES, header=header) == []


@pytest.mark.parametrize("owner", ["*", "10.0.0.1", "db1", "autogroup:self"])
def test_invalid_owners(owner: str) -> None:
    header = HEADER.replace('"tag:router": ["a@x.com"]', f'"tag:router": ["{owner}"]')
    found = codes(USES, header=header)
    assert "E123" in found or "E114" in found


def test_invalid_approver() -> None:
    assert "E123" in codes(USES + '"autoApprovers": {"routes": {"10.0.0.0/8": ["*"]}}')


@pytest.mark.parametrize("entry", [
    '"target": ["*"], "ipPool": ["100.100.100.0/24"]',
    '"target": ["%bogus%"], "attr": ["x"]',
])
def test_node_attr_rules(entry: str) -> None:
    assert "E127" in codes(USES + f'"nodeAttrs": [{{{entry}}}]')


def test_target_only_node_attr_is_a_warning() -> None:
    """SaaS accepts `{"target": ["*"]}` (captured nodeattrs-error-e1-empty: 200)."""
    assert codes(USES + '"nodeAttrs": [{"target": ["*"]}]') == ["W208"]


def test_undefined_posture() -> None:
    body = ('"postures": {"posture:mac": []},'
            ' "acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"],'
            ' "srcPosture": ["posture:macc"]}]')
    diag = next(d for d in run(USES + body) if d.code == "E126")
    assert diag.suggestion == "posture:mac"


def test_test_destination_must_be_single_host() -> None:
    body = '"tests": [{"src": "a@x.com", "accept": ["lan:22"]}]'
    assert "E125" in codes(USES + body)
    assert "E125" not in codes(USES + body.replace("lan:22", "db1:22"))


def test_unused_group_and_host_warn() -> None:
    found = run('"acls": []', header=HEADER.replace('"tag:db": ["group:ops"]', '"tag:db": []'))
    assert {d.code for d in found} == {"W202", "W204"}
    assert all(d.severity.value == "warning" for d in found)
    assert sorted(d.message for d in found) == [
        'group "group:ops" is never used', 'host "db1" is never used',
        'host "lan" is never used']


def test_group_used_only_by_tag_owners_counts_as_used() -> None:
    # group:dev owns tag:web, group:ops owns tag:db: both used though no rule names them.
    assert "W202" not in codes('"acls": []')

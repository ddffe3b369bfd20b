"""Static cross-checks of a built `Policy` (POLICY-FORMAT §3, §6, §8).

`build.py` checked that every string is well formed; this stage checks
that the pieces fit together: every group, tag, host and ipset used is
defined; each alias kind and autogroup appears only where Tailscale allows
it; rule-level constraints (autogroup:self sources, grants, SSH rules); and
it warns about groups and hosts nobody uses.

Validation is static: users that own no node are not errors, and tags need
only be declared, not in use.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from policyc.diagnostics.diagnostics import Diagnostics, did_you_mean
from policyc.policy.model import (
    AclRule,
    Alias,
    AutoGroupRef,
    GrantRule,
    GroupRef,
    HostRef,
    IPSetRef,
    Policy,
    PrefixAlias,
    RangeAlias,
    ServiceRef,
    SshRule,
    TagRef,
    UserRef,
    Wildcard,
)
from policyc.policy.validate_rules import check_rules

ROLE_AUTOGROUPS = frozenset({
    "autogroup:admin", "autogroup:owner", "autogroup:it-admin", "autogroup:network-admin",
    "autogroup:billing-admin", "autogroup:auditor",
})
MEMBERSHIP = frozenset({"autogroup:member", "autogroup:tagged"})
ADDRESSES: frozenset[type] = frozenset({HostRef, IPSetRef, PrefixAlias, RangeAlias})
IDENTITIES: frozenset[type] = frozenset({UserRef, GroupRef, TagRef, AutoGroupRef})


@dataclass(frozen=True, slots=True)
class Place:
    """Where an alias appears, and what may appear there."""

    label: str
    code: str  # reported when an alias of a kind not in `kinds` appears here
    kinds: frozenset[type]
    autogroups: frozenset[str]


EVERYTHING = ADDRESSES | IDENTITIES | {Wildcard}
SRC = Place("src", "E117", EVERYTHING,
            MEMBERSHIP | ROLE_AUTOGROUPS | {"autogroup:danger-all", "autogroup:shared"})
# `svc:NAME` (Tailscale Services) is a destination only (KB "Tailscale Services").
# Role autogroups as a destination (the role holders' devices): public policies
# applied through gitops-acl-action keep `"dst": ["autogroup:owner"]` in grants
# and ACLs for weeks of applies (tests/corpus/realworld/bdsqqq__dots__...).
DST = Place("dst", "E117", EVERYTHING | {ServiceRef},
            MEMBERSHIP | ROLE_AUTOGROUPS | {"autogroup:self", "autogroup:internet"})
VIA = Place("via", "E119", frozenset({TagRef}), frozenset())
SSH_SRC = Place("ssh src", "E120", IDENTITIES, MEMBERSHIP | ROLE_AUTOGROUPS)
SSH_DST = Place("ssh dst", "E120", IDENTITIES - {GroupRef}, MEMBERSHIP | {"autogroup:self"})
# Session recorders are nodes: a tag, or one address given literally or as a host.
SSH_RECORDER = Place("ssh recorder", "E120", frozenset({TagRef, HostRef, PrefixAlias}),
                     frozenset())
# KB policy syntax, "Autogroups": owner, admin, member, tagged, auditor,
# billing-admin, it-admin and network-admin are each allowed "As a `src` or
# `dst`, `tagOwner`, or `autoApprover`". autogroup:tagged as an approver was
# also applied by SaaS (ponomarev-studio/VPN, tests/corpus).
OWNER = Place("tagOwners", "E123", IDENTITIES, MEMBERSHIP | ROLE_AUTOGROUPS)
APPROVER = Place("autoApprovers", "E123", OWNER.kinds, OWNER.autogroups)
NODE_ATTR = Place("nodeAttrs target", "E127", IDENTITIES | {Wildcard, PrefixAlias, HostRef},
                  MEMBERSHIP | ROLE_AUTOGROUPS)
# No autogroup is a test source: SaaS fails such a test ("user or host is
# invalid: unknown user or host: \"autogroup:member\"", tailscale/tailscale#12370;
# the feature request #4416 is open) and refuses one in sshTests ("SSH tests src
# contains disallowed element \"autogroup:admin\"", #14102); every capture with
# an autogroup test src is a 400.
TEST_SRC = Place("test src", "E125", (IDENTITIES | ADDRESSES) - {IPSetRef}, frozenset())
TEST_DST = Place("test destination", "E125", (IDENTITIES | ADDRESSES | {ServiceRef}) - {IPSetRef},
                 MEMBERSHIP | {"autogroup:self"})
# An IP address (or a host alias to one) as sshTests src: captured 200
# (sshtest-ip-literal-src); it stands for the node holding that address.
SSH_TEST_SRC = Place("sshTest src", "E125", IDENTITIES | {PrefixAlias, HostRef}, frozenset())
SSH_TEST_DST = Place("sshTest dst", "E125", IDENTITIES | {PrefixAlias, HostRef},
                     MEMBERSHIP | {"autogroup:self"})
# KB "IP sets": addresses, CIDRs, ranges, hosts, other ipsets, and of the
# autogroups only autogroup:internet (the one that is an address range).
IPSET = Place("ipsets", "E117", frozenset({HostRef, IPSetRef, PrefixAlias, RangeAlias,
                                           AutoGroupRef}), frozenset({"autogroup:internet"}))

# SaaS's own words for the autogroup placements people get wrong most.
AUTOGROUP_MESSAGES = {
    ("src", "autogroup:self"): '"autogroup:self" not valid on the src side of a rule',
    ("src", "autogroup:internet"): "autogroup:internet can only be used in ACL destinations",
    ("dst", "autogroup:danger-all"): "cannot use autogroup:danger-all as a dst",
}


def placed_aliases(policy: Policy) -> Iterator[tuple[Place, Alias]]:
    """Every alias in the policy with the place it appears in."""
    for acl in policy.acls or ():
        yield from ((SRC, a) for a in acl.sources)
        yield from ((DST, d.alias) for d in acl.destinations)
    for grant in policy.grants or ():
        yield from ((SRC, a) for a in grant.sources)
        yield from ((DST, a) for a in grant.destinations)
        yield from ((VIA, a) for a in grant.via)
    for rule in policy.ssh:
        yield from ((SSH_SRC, a) for a in rule.sources)
        yield from ((SSH_DST, a) for a in rule.destinations)
        yield from ((SSH_RECORDER, a) for a in rule.recorder)
    for owners in policy.tag_owners.values():
        yield from ((OWNER, a) for a in owners.owners)
    for route in policy.auto_approvers.routes:
        yield from ((APPROVER, a) for a in route.approvers)
    yield from ((APPROVER, a) for a in policy.auto_approvers.exit_node)
    for service in policy.auto_approvers.services:
        yield from ((APPROVER, a) for a in service.approvers)
    for attr in policy.node_attrs:
        yield from ((NODE_ATTR, a) for a in attr.targets)
    for test in policy.tests:
        yield TEST_SRC, test.src
        yield from ((TEST_DST, t.alias) for t in (*test.accept, *test.deny))
    for ssh_test in policy.ssh_tests:
        yield SSH_TEST_SRC, ssh_test.src
        yield from ((SSH_TEST_DST, a) for a in ssh_test.destinations)
    for ipset in policy.ipsets.values():
        yield from ((IPSET, a) for a in (*ipset.entries, *ipset.removed))


def validate_policy(policy: Policy, diags: Diagnostics) -> None:
    """Append every cross-reference and placement problem of `policy` to `diags`."""
    placed = list(placed_aliases(policy))
    for place, alias in placed:
        _check_defined(policy, place, alias, diags)
        _check_placement(place, alias, diags)
    check_rules(policy, diags)
    _check_member_spellings([alias for _, alias in placed], diags)
    _check_service_keys(policy, diags)
    _warn_services_not_compiled(placed, diags)
    _check_postures(policy, diags)
    _warn_unused(policy, [alias for _, alias in placed], diags)


def _check_defined(policy: Policy, place: Place, alias: Alias, diags: Diagnostics) -> None:
    if isinstance(alias, GroupRef):
        _require(alias.name, policy.groups, "E104", "group", alias, diags)
    elif isinstance(alias, TagRef) and place is SSH_TEST_DST:
        if alias.name not in policy.tag_owners:  # Tailscale's words for this place
            diags.error("E105", alias.span, f'SSH tests dst contains unknown tag "{alias.name}"',
                        suggestion=did_you_mean(alias.name, policy.tag_owners))
    elif isinstance(alias, TagRef):
        _require(alias.name, policy.tag_owners, "E105", "tag", alias, diags,
                 where=" in tagOwners")
    elif isinstance(alias, HostRef) and place is NODE_ATTR:
        # A target that is no defined host is taken as an address, Tailscale's words.
        if alias.name not in policy.hosts:
            diags.error("E127", alias.span, f'"{alias.name}": invalid address')
    elif isinstance(alias, HostRef):
        _require(alias.name, policy.hosts, "E106", "host", alias, diags)
    elif isinstance(alias, IPSetRef):
        _require(alias.name, policy.ipsets, "E107", "ipset", alias, diags)


def _require(name: str, defined: Mapping[str, object], code: str, kind: str, alias: Alias,
             diags: Diagnostics, *, where: str = "") -> None:
    if name in defined:
        return
    guess = did_you_mean(name, defined)
    diags.error(code, alias.span, f'{kind} "{name}" is not defined{where}',
                suggestion=guess)


def _check_placement(place: Place, alias: Alias, diags: Diagnostics) -> None:
    if isinstance(alias, AutoGroupRef):
        if alias.name not in place.autogroups:
            message = AUTOGROUP_MESSAGES.get((place.label, alias.name),
                                             f'"{alias.name}" cannot be used in {place.label}')
            if place is TEST_SRC:  # SaaS's words (tailscale/tailscale#12370)
                message = (f'test src "{alias.name}": user or host is invalid: unknown user '
                           "or host (Tailscale tests take a user, group, tag, host or IP "
                           "as src, not an autogroup)")
            elif place is SSH_TEST_SRC:  # SaaS's words (tailscale/tailscale#14102)
                message = f'SSH tests src contains disallowed element "{alias.name}"'
            diags.error("E114", alias.span, message)
    elif type(alias) not in place.kinds:
        message = (f'"{alias}": invalid address' if place is NODE_ATTR
                   else f'"{alias}" cannot be used in {place.label}')
        if place is SSH_DST and isinstance(alias, GroupRef):
            # SaaS's words (azigler/dotfiles a8b2508 -> c051ff2, 2026-05-24)
            message = (f'ssh dst "{alias}": groups are not allowed dst (name a tag, '
                       "autogroup:self, or the source's own user)")
        diags.error(place.code, alias.span, message)


def _check_member_spellings(aliases: list[Alias], diags: Diagnostics) -> None:
    """`autogroup:members` is the legacy spelling of `autogroup:member`: accepted
    with a warning. Both spellings in one file are accepted too (E129 retired):
    files applied to Tailscale mix them (lordmuffin/homelab, pushed by
    gitops-acl-action, and edited again months later)."""
    for alias in aliases:
        if isinstance(alias, AutoGroupRef) and alias.name == "autogroup:member" and alias.spelled:
            diags.warning("W206", alias.span,
                          '"autogroup:members" is the legacy spelling of "autogroup:member"',
                          suggestion="autogroup:member")


def _check_service_keys(policy: Policy, diags: Diagnostics) -> None:
    for service in policy.auto_approvers.services:
        if service.service.startswith("tag:") and service.service not in policy.tag_owners:
            diags.error("E105", service.span,
                        f'tag "{service.service}" is not defined in tagOwners',
                        suggestion=did_you_mean(service.service, policy.tag_owners))


def _warn_services_not_compiled(placed: list[tuple[Place, Alias]], diags: Diagnostics) -> None:
    for place, alias in placed:
        if isinstance(alias, ServiceRef) and place is DST:
            diags.warning("W207", alias.span,
                          f'"{alias}": Tailscale Services are accepted but not compiled: '
                          "the inventory has no service addresses, so this destination "
                          "allows nothing in policyc's netmaps")


def _check_postures(policy: Policy, diags: Diagnostics) -> None:
    rules: list[AclRule | GrantRule | SshRule] = [
        *(policy.acls or ()), *(policy.grants or ()), *policy.ssh]
    # defaultSrcPosture is checked by build.py, which has each name's span.
    references = [(name, rule.span) for rule in rules for name in rule.src_posture]
    for name, span in references:
        if name not in policy.postures:
            guess = did_you_mean(name, policy.postures)
            diags.error("E126", span, f'posture "{name}" is not defined', suggestion=guess)


def _warn_unused(policy: Policy, used: list[Alias], diags: Diagnostics) -> None:
    groups = {a.name for a in used if isinstance(a, GroupRef)}
    hosts = {a.name for a in used if isinstance(a, HostRef)}
    for name, group in policy.groups.items():
        if name not in groups:
            diags.warning("W202", group.span, f'group "{name}" is never used')
    for name, host in policy.hosts.items():
        if name not in hosts:
            diags.warning("W204", host.span, f'host "{name}" is never used')

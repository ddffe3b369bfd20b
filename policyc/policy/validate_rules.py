"""Rule-level static checks: constraints that involve more than one alias.

`validate.py` checks each alias on its own (is it defined, may it appear
here); this module checks combinations inside one rule: autogroup:self with
sources it cannot narrow, grants' destination and capability rules, SSH
source/destination ownership, nodeAttrs pools and test destinations.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from policyc.diagnostics.diagnostics import Diagnostics
from policyc.diagnostics.source import Span
from policyc.policy.model import (
    Alias,
    AutoGroupRef,
    GrantRule,
    HostRef,
    IPSetRef,
    Policy,
    PrefixAlias,
    RangeAlias,
    SshRule,
    TagRef,
    UserRef,
    Wildcard,
)

# Sources autogroup:self cannot narrow to "the same user": they are not users.
NOT_USERS: tuple[type, ...] = (TagRef, HostRef, IPSetRef, PrefixAlias, RangeAlias)
NOT_USER_AUTOGROUPS = frozenset({"autogroup:tagged", "autogroup:danger-all"})
SELF_MESSAGE = "autogroup:self can only be used with users, groups, or supported autogroups"
ALL_V4, ALL_V6 = ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")
# Addresses Tailscale keeps for itself: Quad100's /24, 100.100.0.0/24 (the
# issue's list; Tailscale's own service addresses), ChromeOS's VM range and
# the IPv6 Quad100 address.
RESERVED_POOLS = tuple(ipaddress.ip_network(n) for n in (
    "100.100.100.0/24", "100.100.0.0/24", "100.115.92.0/23", "fd7a:115c:a1e0::53/128"))


def check_rules(policy: Policy, diags: Diagnostics) -> None:
    for acl in policy.acls or ():
        _check_self(acl.sources, [d.alias for d in acl.destinations], diags, wildcard_ok=True)
    for grant in policy.grants or ():
        _check_self(grant.sources, grant.destinations, diags, wildcard_ok=False)
        _check_grant(grant, diags)
    for rule in policy.ssh:
        _check_ssh(policy, rule, diags)
    _check_node_attrs(policy, diags)
    _check_test_hosts(policy, diags)


def _is(alias: Alias, autogroup: str) -> bool:
    return isinstance(alias, AutoGroupRef) and alias.name == autogroup


def _check_self(sources: Sequence[Alias], destinations: Sequence[Alias], diags: Diagnostics,
                *, wildcard_ok: bool) -> None:
    """autogroup:self means "the same user's devices"; every source must be a user."""
    if not any(_is(d, "autogroup:self") for d in destinations):
        return
    for source in sources:
        bad = (isinstance(source, NOT_USERS)
               or (isinstance(source, AutoGroupRef) and source.name in NOT_USER_AUTOGROUPS)
               or (isinstance(source, Wildcard) and not wildcard_ok))
        if bad:
            diags.error("E121", source.span, f'"{source}": {SELF_MESSAGE}')


def _check_grant(grant: GrantRule, diags: Diagnostics) -> None:
    for alias in grant.destinations:
        if isinstance(alias, PrefixAlias) and alias.network in (ALL_V4, ALL_V6):
            diags.error("E119", alias.span, f'dst "{alias.network}": to allow all IP '
                        'addresses, use "*" or "autogroup:internet"')
        if grant.app and _is(alias, "autogroup:internet"):
            diags.error("E119", alias.span, "cannot use app grants with autogroup:internet")


def _is_tagged(alias: Alias) -> bool:
    return isinstance(alias, TagRef) or _is(alias, "autogroup:tagged")


# Sources SaaS takes beside a user destination, or beside autogroup:self, without
# a tag among them: davidpius95/guildcloud-console applied (API, 2026-08-07) ssh
# rules `src: [autogroup:member, autogroup:admin, USER] -> dst: [USER, ...]` and
# `src: [autogroup:member, autogroup:admin, autogroup:tagged] -> dst:
# [autogroup:self, autogroup:tagged]`; the compiler gives a user-owned device
# only its owner's own devices as principals, so the extra sources add nothing.
USER_DST_AUTOGROUPS = frozenset({"autogroup:member"}) | frozenset(
    {"autogroup:admin", "autogroup:owner", "autogroup:it-admin", "autogroup:network-admin",
     "autogroup:billing-admin", "autogroup:auditor"})


def _same_user_source(source: Alias, login: str) -> bool:
    return (isinstance(source, UserRef) and source.login == login) or (
        isinstance(source, AutoGroupRef) and source.name in USER_DST_AUTOGROUPS)


def _check_ssh(policy: Policy, rule: SshRule, diags: Diagnostics) -> None:
    _check_recorders(policy, rule, diags)
    tag_source = any(isinstance(s, TagRef) for s in rule.sources)
    tagged_source = tag_source or any(_is(s, "autogroup:tagged") for s in rule.sources)
    for dst in rule.destinations:
        user_owned = isinstance(dst, UserRef) or _is(dst, "autogroup:self") or _is(
            dst, "autogroup:member")
        # autogroup:tagged beside autogroup:self was applied by SaaS (above); an
        # explicit tag there is refused (tailscale/tailscale#10374, the KB).
        refused = tag_source if _is(dst, "autogroup:self") else tagged_source
        if refused and user_owned and not isinstance(dst, UserRef):
            diags.error("E120", dst.span,
                        f'ssh dst "{dst}": tags in SSH source cannot access user-owned devices')
        elif isinstance(dst, UserRef) and not (
                all(_same_user_source(s, dst.login) for s in rule.sources)
                and any(isinstance(s, UserRef) for s in rule.sources)):
            # SaaS's message, for a tag source too (quoted in juanfont/headscale#3010;
            # azigler/dotfiles 1662cdd -> 1bb13c2); the KB: a user dst only "if the
            # source contains only the same named user".
            diags.error("E120", dst.span,
                        f'ssh dst "{dst}": users in dst are only allowed from the same user '
                        "(every src must be that user; use autogroup:self for each user's "
                        "own devices)")
    if rule.action == "check":
        # KB policy syntax, SSH: "An SSH access rule from a tagged device cannot
        # be in check mode"; SaaS's message (tailscale/tailscale#5027).
        for source in rule.sources:
            if _is_tagged(source):
                diags.error("E120", source.span,
                            f'ssh src "{source}": "check" action does not support tags in src '
                            '(a tagged device has no user to re-authenticate; use "accept")')
    if rule.check_period is not None and rule.action != "check":
        diags.error("E120", rule.span, 'checkPeriod is only valid with action "check"')


def _check_recorders(policy: Policy, rule: SshRule, diags: Diagnostics) -> None:
    """A recorder is a node: an address, not a prefix, whether literal or a host alias."""
    for alias in rule.recorder:
        host = policy.hosts.get(alias.name) if isinstance(alias, HostRef) else None
        network = alias.network if isinstance(alias, PrefixAlias) else (
            host.network if host is not None else None)
        if network is not None and network.num_addresses != 1:
            diags.error("E120", alias.span,
                        f'ssh recorder "{alias}": a recorder is one address, not a prefix')


def _check_node_attrs(policy: Policy, diags: Diagnostics) -> None:
    for attr in policy.node_attrs:
        for pool in attr.ip_pool:
            # SaaS rejects a pool inside a reserved range with this message
            # (captured: 100.100.100.0/24); one that only overlaps is not
            # captured, so it is a warning.
            if any(pool.version == r.version and pool.subnet_of(r)  # type: ignore[arg-type]
                   for r in RESERVED_POOLS):
                diags.error("E127", attr.span,
                            f"IPPool({pool}): network within reserved range")
            elif any(pool.version == r.version and pool.overlaps(r) for r in RESERVED_POOLS):
                diags.warning("W207", attr.span,
                              f"IPPool({pool}) overlaps a reserved range; Tailscale "
                              "will not hand out the reserved addresses")


def _check_test_hosts(policy: Policy, diags: Diagnostics) -> None:
    """A test destination must be one address; a host alias to a prefix is several.

    The same holds for an address as an sshTests `src`: it names one node.
    """
    for ssh_test in policy.ssh_tests:
        network = (ssh_test.src.network if isinstance(ssh_test.src, PrefixAlias) else
                   policy.hosts[ssh_test.src.name].network
                   if isinstance(ssh_test.src, HostRef) and ssh_test.src.name in policy.hosts
                   else None)
        if network is not None and network.num_addresses > 1:
            diags.error("E125", ssh_test.src.span,
                        f'sshTest src "{ssh_test.src_text}": an address src must be a single '
                        "address (one node)")
    for test in policy.tests:
        for target in (*test.accept, *test.deny):
            host = policy.hosts.get(target.alias.name) if isinstance(
                target.alias, HostRef) else None
            if host is not None and host.network.num_addresses > 1:
                _multi_address(target.text, target.span, diags)


def _multi_address(text: str, span: Span, diags: Diagnostics) -> None:
    diags.error("E125", span,
                f'test destination "{text}": host alias is a prefix, not a single host')

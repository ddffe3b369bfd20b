"""Policy tests without the tailnet: the made-up inventory and what it cannot decide.

Tailscale runs `tests` against the live tailnet. `policyc check` without
`--nodes` has no tailnet, so it makes one up (`synthetic_inventory`) and says
which outcomes that made-up tailnet cannot settle:

* one untagged node per user the policy mentions (tests included), one node
  per tag in `tagOwners`,
  and, for each group used as a test `src`, one node of a representative
  member (a user who is in the group and nothing else: Tailscale's docs read
  a group source as a representative member). A user only the tests name
  may not be in the tailnet, and a user who is not has no access: an outcome
  that gives such a user access is undecidable (one that denies is not);
* node addresses avoid every address the policy writes literally, so a
  literal IP is never mistaken for a made-up node; a destination (or source)
  given as an IP, CIDR or host is decided by the rules that name addresses;
  when only a rule naming identities (a user, group, tag or autogroup that
  must own that IP) could decide it, the outcome is undecidable offline,
  unless the IP lies outside Tailscale's ranges (no node can hold it);
* role autogroups (autogroup:admin ...) need users' roles: without the
  inventory's `users` list, an outcome that hinges on a role is undecidable
  (not one between tagged devices: a tagged device holds no role).

Undecidable outcomes are T305 warnings with the reason, never failures.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Sequence
from dataclasses import replace
from weakref import WeakKeyDictionary

from policyc.analysis.reference import (
    Permit,
    ReferenceEvaluator,
    in_tailscale_range,
    ssh_user_matches,
)
from policyc.compiler.nodes import ROLE_AUTOGROUPS, Inventory, Node
from policyc.policy.model import (
    Alias,
    AutoGroupRef,
    GroupRef,
    HostRef,
    IPAddress,
    IPNetwork,
    IPSetRef,
    Policy,
    PrefixAlias,
    RangeAlias,
    TagRef,
    UserRef,
)
from policyc.policy.walk import policy_test_aliases, rule_aliases

SYNTHETIC_V4_BASE = ipaddress.IPv4Address("100.64.0.0")
SYNTHETIC_V6_BASE = ipaddress.IPv6Address("fd7a:115c:a1e0::")
REPRESENTATIVE = "{group}.member@representative.invalid"  # never a real login
IDENTITY_TYPES = (UserRef, GroupRef, TagRef, AutoGroupRef)
ADDRESS_ONLY_AUTOGROUPS = frozenset({"autogroup:internet", "autogroup:danger-all"})
LITERAL_LIMIT = 1 << 16  # bigger literal blocks (a /10) cannot be avoided, nor need be


def representative(group: str) -> str:
    """The made-up login standing for a representative member of `group`."""
    return REPRESENTATIVE.format(group=group.removeprefix("group:"))


def with_representatives(policy: Policy) -> Policy:
    """The policy with each group that is a test source given its representative member."""
    wanted = {t.src.name for t in policy.tests if isinstance(t.src, GroupRef)}
    wanted |= {t.src.name for t in policy.ssh_tests if isinstance(t.src, GroupRef)}
    if not wanted:
        return policy
    groups = dict(policy.groups)
    for name in wanted & set(groups):
        group = groups[name]
        groups[name] = replace(group, logins=(*group.logins, representative(name)))
    return replace(policy, groups=groups)


def synthetic_inventory(policy: Policy, *more: Policy) -> Inventory:
    """A made-up tailnet for `policyc check` without `--nodes` (see the module doc).

    Users first, then representatives, then tags, each block sorted; node i
    gets the i-th free address from 100.64.0.1 and fd7a:115c:a1e0::1, free
    meaning outside every literal address block of the policy, so the same
    policy always yields the same addresses. With `more` policies (`policyc
    diff`), one tailnet for all of them: what any of them mentions.
    """
    policies = (policy, *more)
    users = sorted(set().union(*(_mentioned_users(p) for p in policies)))
    representatives = sorted({login for p in policies for g in p.groups.values()
                              for login in g.logins
                              if login.endswith("@representative.invalid")})
    tags = sorted(set().union(*(p.tag_owners for p in policies)))
    owners: list[tuple[str | None, tuple[str, ...], str]] = (
        [(u, (), u) for u in users] + [(u, (), u) for u in representatives]
        + [(None, (t,), t) for t in tags])
    taken = [block for p in policies for block in _literal_blocks(p)]
    v4, v6 = _free(SYNTHETIC_V4_BASE, taken), _free(SYNTHETIC_V6_BASE, taken)
    nodes = [Node(f"virtual:{label}", user, node_tags, (next(v4), next(v6)))
             for user, node_tags, label in owners]
    return Inventory.of(nodes)


def _free(base: IPAddress, taken: list[IPNetwork]) -> Iterator[IPAddress]:
    """Addresses from base + 1 upwards that lie in none of the `taken` blocks.

    The blocks are merged into sorted intervals and passed over once, as the
    addresses only grow (a check of every block per address was O(nodes x
    blocks): 28 s for a 1 MB policy).
    """
    intervals = sorted((int(b.network_address), int(b.broadcast_address))
                       for b in taken if b.version == base.version)
    ahead = iter(intervals)
    block = next(ahead, None)
    address = base + 1
    while True:
        value = int(address)
        while block is not None and block[1] < value:
            block = next(ahead, None)  # every block ending below is behind us
        if block is not None and block[0] <= value:
            address = type(base)(block[1]) + 1  # jump past the block
            continue
        yield address
        address += 1


def _literal_blocks(policy: Policy) -> list[IPNetwork]:
    blocks: list[IPNetwork] = [h.network for h in policy.hosts.values()]
    for alias in _all_aliases(policy):
        if isinstance(alias, PrefixAlias):
            blocks.append(alias.network)
        elif isinstance(alias, RangeAlias):
            blocks.extend(ipaddress.summarize_address_range(alias.first, alias.last))
    return [b for b in blocks if b.num_addresses <= LITERAL_LIMIT]


def _all_aliases(policy: Policy) -> Iterator[Alias]:
    """Every alias the made-up tailnet must give meaning to: rules, ipsets, tests
    (not `via` or nodeAttrs targets: they pick nodes, they are not members)."""
    yield from rule_aliases(policy)
    for ipset in policy.ipsets.values():
        yield from ipset.entries
        yield from ipset.removed
    yield from policy_test_aliases(policy)


def _mentioned_users(policy: Policy) -> set[str]:
    """Every user the policy names. A user only the tests name gets a node too:
    public policies test their owner, whom no rule names (autogroup:member
    covers them), and offline there is no way to tell that user does not exist."""
    users = {a.login for a in _all_aliases(policy) if isinstance(a, UserRef)}
    users.update(login for g in policy.groups.values() for login in g.logins
                 if not login.endswith("@representative.invalid"))
    return users


# --- what the made-up tailnet cannot decide -----------------------------------------


def is_identity(alias: Alias) -> bool:
    """Does the alias select nodes by who owns them (so an IP's owner matters)?"""
    if isinstance(alias, AutoGroupRef):
        return alias.name not in ADDRESS_ONLY_AUTOGROUPS
    return isinstance(alias, IDENTITY_TYPES)


def is_address(alias: Alias) -> bool:
    return isinstance(alias, PrefixAlias | RangeAlias | HostRef | IPSetRef)


def is_role(alias: Alias) -> bool:
    return isinstance(alias, AutoGroupRef) and alias.name in ROLE_AUTOGROUPS


def undecided_reason(ev: ReferenceEvaluator, src_alias: Alias, dst_alias: Alias,
                     sources: list[IPAddress], destinations: list[IPAddress],
                     protocols: tuple[int, ...], port: int, *, synthetic: bool) -> str | None:
    """Why a denied outcome might be allowed in the real tailnet, or None if it is settled.

    Asked only when the rules did not allow every source: a rule naming a role
    (roles unknown) or, offline, a rule naming identities where the test names
    an address could still allow it.
    """
    roles_known = ev.inventory.knows_roles
    literal_src = synthetic and is_address(src_alias) and _node_addressable(sources)
    literal_dst = synthetic and is_address(dst_alias) and _node_addressable(destinations)
    for permit in _candidates(ev, sources, destinations, literal_src, literal_dst):
        if permit.matches_any(protocols, port):
            reason = _permit_reason(ev, permit, src_alias, dst_alias, sources, destinations,
                                    roles_known, literal_src, literal_dst)
            if reason is not None:
                return reason
    return _via_reason(ev, sources, destinations, protocols, port) if synthetic else None


def _via_reason(ev: ReferenceEvaluator, sources: list[IPAddress],
                destinations: list[IPAddress], protocols: tuple[int, ...],
                port: int) -> str | None:
    """A grant with `via` applies only where a node carrying a via tag routes the
    destination, and the made-up tailnet routes nothing: offline, such a grant
    that would otherwise allow the entry leaves it undecided (nlopez/tailnet
    tests `tag:work` -> 1.1.1.1:53, allowed only `via: tag:exit`)."""
    for permit in ev.candidate_permits(sources=sources):
        if permit.via and permit.matches_any(protocols, port) and any(
                ev.source_contains(s, ip) for s in permit.sources for ip in sources) and any(
                ev.destination_contains(permit.destination, s, d)
                for s in sources for d in destinations):
            return (f"{permit.ref.describe()} allows it through a node tagged "
                    f"{', '.join(permit.via)}, and which nodes route it needs the "
                    "inventory (--nodes)")
    return None


def _node_addressable(addresses: list[IPAddress]) -> bool:
    """Could a node hold one of these literal addresses? Only inside Tailscale's
    ranges (100.64.0.0/10, fd7a:115c:a1e0::/48): a tag, user or group names its
    nodes' Tailscale addresses, never a LAN address behind them (rajsinghtech/
    kubernetes-manifests tests tag:robbinsdale against 192.168.50.1:443)."""
    return any(in_tailscale_range(address) for address in addresses)


def _candidates(ev: ReferenceEvaluator, sources: list[IPAddress],
                destinations: list[IPAddress], literal_src: bool,
                literal_dst: bool) -> Sequence[Permit]:
    """Only rules that could meet one of `_permit_reason`'s conditions: those whose
    src may name a role, may hold a test source, or whose dst may hold a test
    destination (the evaluator's index). Every rule when both ends are literal
    (a rule between two identities could hold both) or when a destination names a
    role nobody's holders are known for."""
    role_dst = not ev.inventory.knows_roles and _names_role_destination(ev)
    if (literal_src and literal_dst) or role_dst:
        return ev.permits
    return ev.candidate_permits(sources=sources if literal_dst else (),
                                destinations=destinations if literal_src else (),
                                role_sources=not ev.inventory.knows_roles)


_ROLE_DESTINATIONS: WeakKeyDictionary[ReferenceEvaluator, bool] = WeakKeyDictionary()


def _names_role_destination(ev: ReferenceEvaluator) -> bool:
    """Does any rule allow a role as a destination? Once per evaluator: asked for
    every undecided test entry (a 1 MB policy's 1,742 of them x 26,760 rules was
    ~4 s of its `check`)."""
    found = _ROLE_DESTINATIONS.get(ev)
    if found is None:
        found = _ROLE_DESTINATIONS[ev] = any(is_role(p.destination) for p in ev.permits)
    return found


def _permit_reason(ev: ReferenceEvaluator, permit: Permit, src_alias: Alias,
                   dst_alias: Alias, sources: list[IPAddress], destinations: list[IPAddress],
                   roles_known: bool, literal_src: bool, literal_dst: bool) -> str | None:
    def src_may() -> bool:  # may the permit's src hold a test source? (lazy: costly)
        return (literal_src and any(is_identity(s) for s in permit.sources)) or any(
            ev.source_contains(s, ip) for s in permit.sources for ip in sources)

    def dst_may() -> bool:  # ... and its destination a test destination?
        return (literal_dst and is_identity(permit.destination)) or any(
            ev.destination_contains(permit.destination, s, d)
            for s in sources for d in destinations)

    role_sources = [s for s in permit.sources if is_role(s)]
    if not _may_hold_role(ev, sources):
        role_sources = []
    if not roles_known and role_sources and (literal_dst or dst_may()):
        return (f"{permit.ref.describe()} allows {role_sources[0]}, and who holds that "
                "role is unknown: give the inventory a users list with roles")
    if not roles_known and is_role(permit.destination) and (
            _may_hold_role(ev, destinations)) and (role_sources or src_may()):
        return (f"{permit.ref.describe()} allows {permit.destination} as a destination, and "
                "who holds that role is unknown: give the inventory a users list with roles")
    if literal_dst and is_identity(permit.destination) and src_may():
        return (f"{permit.ref.describe()} allows {permit.destination}, and whether "
                f"{dst_alias} is one of its nodes needs the inventory (--nodes)")
    if literal_src and any(is_identity(s) for s in permit.sources) and dst_may():
        return (f"{permit.ref.describe()} allows sources by identity, and whose node "
                f"{src_alias} is needs the inventory (--nodes)")
    return None


def _may_hold_role(ev: ReferenceEvaluator, addresses: list[IPAddress]) -> bool:
    """Is one of `addresses` an untagged device's, so a role autogroup may name it?
    A tagged device holds no user's identity (KB "Tags": it is no longer owned
    by the user who tagged it), and an address written literally is left to the
    identity checks below (offline, any device may have it)."""
    return any(node is not None and not node.is_tagged
               for node in map(ev.node_with_address, addresses))


def test_only_users(policy: Policy) -> frozenset[str]:
    """Users only the tests name: offline, nobody can tell whether they exist."""
    in_tests = {id(a) for t in policy.tests for a in (t.src, *(x.alias for x in t.accept),
                                                     *(x.alias for x in t.deny))}
    in_tests |= {id(a) for t in policy.ssh_tests for a in (t.src, *t.destinations)}
    named = {a.login for a in _all_aliases(policy)
             if isinstance(a, UserRef) and id(a) not in in_tests}
    named.update(login for g in policy.groups.values() for login in g.logins)
    tested = {a.login for a in _all_aliases(policy) if isinstance(a, UserRef)}
    return frozenset(tested - named)


def unknown_user_reason(src: Alias) -> str:
    return (f"{src} is named only by the tests: whether that user is in the tailnet is "
            "unknown offline, and a user who is not has no access")


def ssh_role_reason(ev: ReferenceEvaluator, src: Node, dst: Node, user: str) -> str | None:
    """An SSH rule naming a role could decide `src` -> `dst` as `user`, and roles are unknown."""
    if ev.inventory.knows_roles or src.is_tagged:  # a tagged device holds no role
        return None
    for index, rule in enumerate(ev.policy.ssh):
        roles = [a for a in rule.sources if is_role(a)]
        if roles and any(ssh_user_matches(p, user, src) for p in rule.users) and any(
                ev.destination_contains(a, s, d) for a in rule.destinations
                for s in src.ips for d in dst.ips):
            return (f"ssh[{index}] allows {roles[0]}, and who holds that role is unknown: "
                    "give the inventory a users list with roles")
    return None

"""Walks over every alias a policy names, for analyses that ask "is X used?".

One walker for the sections every such question shares (rules, tag owners,
auto-approvers); callers chain the sections only they care about, so adding a
section that names aliases means adding it here once.
"""

from __future__ import annotations

from collections.abc import Iterator

from policyc.policy.model import Alias, Policy


def rule_aliases(policy: Policy) -> Iterator[Alias]:
    """Aliases named by ACLs, grants (sources and destinations), SSH rules, tag
    owners and auto-approvers."""
    for acl in policy.acls or ():
        yield from acl.sources
        yield from (d.alias for d in acl.destinations)
    for grant in policy.grants or ():
        yield from grant.sources
        yield from grant.destinations
    for ssh in policy.ssh:
        yield from ssh.sources
        yield from ssh.destinations
    for owners in policy.tag_owners.values():
        yield from owners.owners
    for route in policy.auto_approvers.routes:
        yield from route.approvers
    yield from policy.auto_approvers.exit_node


def routing_aliases(policy: Policy) -> Iterator[Alias]:
    """Aliases that pick nodes without granting access: grant `via` routers and
    nodeAttrs targets."""
    for grant in policy.grants or ():
        yield from grant.via
    for attr in policy.node_attrs:
        yield from attr.targets


def policy_test_aliases(policy: Policy) -> Iterator[Alias]:
    """Aliases named by the policy's own `tests` and `sshTests`."""
    for test in policy.tests:
        yield test.src
        yield from (t.alias for t in (*test.accept, *test.deny))
    for ssh_test in policy.ssh_tests:
        yield ssh_test.src
        yield from ssh_test.destinations

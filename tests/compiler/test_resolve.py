"""Resolution of aliases against an inventory (POLICY-FORMAT §3.3, §4.3)."""

from __future__ import annotations

import ipaddress

from policyc.compiler.addrset import AddressSet
from policyc.compiler.internet import INTERNET, TAILSCALE_RANGES
from policyc.compiler.nodes import Inventory, Node
from policyc.compiler.resolve import Resolver
from policyc.diagnostics.source import UNKNOWN_SOURCE
from policyc.policy.model import (
    AutoGroupRef,
    Group,
    GroupRef,
    HostAlias,
    HostRef,
    IPSet,
    IPSetRef,
    Policy,
    PrefixAlias,
    RangeAlias,
    TagRef,
    UserRef,
    Wildcard,
)


def node(name: str, user: str | None, tags: tuple[str, ...], n: int,
         routes: tuple[str, ...] = ()) -> Node:
    return Node(name, user, tags, (ipaddress.ip_address(f"100.64.0.{n}"),
                                   ipaddress.ip_address(f"fd7a:115c:a1e0::{n}")),
                routes=tuple(ipaddress.ip_network(r) for r in routes))


INVENTORY = Inventory.of([
    node("a1", "alice@example.com", (), 1),
    node("a2", "alice@example.com", (), 2),
    node("b1", "bob@example.org", (), 3),
    node("web", "alice@example.com", ("tag:web",), 10),
    node("router", None, ("tag:router",), 20, ("10.1.0.0/16",)),
])

POLICY = Policy(
    UNKNOWN_SOURCE,
    groups={"group:eng": Group("group:eng", ("alice@example.com", "nobody@example.com"))},
    hosts={"lan": HostAlias("lan", ipaddress.ip_network("192.168.0.0/16"))},
    ipsets={"ipset:x": IPSet("ipset:x", (HostRef("lan"), IPSetRef("ipset:x"),
                                         PrefixAlias(ipaddress.ip_network("8.8.8.8/32"))))},
)

R = Resolver(POLICY, INVENTORY)


def names(indexes: list[int]) -> list[str]:
    return [INVENTORY.nodes[i].name for i in indexes]


def test_user_matches_untagged_nodes_only_both_families() -> None:
    s = R.alias(UserRef("alice@example.com"))
    assert names(R.nodes_in(s)) == ["a1", "a2"]
    assert s.contains(ipaddress.ip_address("fd7a:115c:a1e0::1"))
    assert not s.contains(ipaddress.ip_address("100.64.0.10"))


def test_group_unions_members_and_ignores_unknown_users() -> None:
    assert names(R.alias_nodes(GroupRef("group:eng"))) == ["a1", "a2"]


def test_tags_and_autogroups() -> None:
    assert names(R.alias_nodes(TagRef("tag:web"))) == ["web"]
    assert names(R.alias_nodes(AutoGroupRef("autogroup:member"))) == ["a1", "a2", "b1"]
    assert names(R.alias_nodes(AutoGroupRef("autogroup:tagged"))) == ["web", "router"]
    assert not R.alias(AutoGroupRef("autogroup:admin"))
    assert R.alias(AutoGroupRef("autogroup:internet")) == INTERNET
    assert R.alias(AutoGroupRef("autogroup:danger-all")).is_all


def test_user_domain_wildcard() -> None:
    assert names(R.alias_nodes(UserRef("user:*@example.com"))) == ["a1", "a2"]


def test_address_aliases_are_literal() -> None:
    assert R.alias(HostRef("lan")) == AddressSet.parse("192.168.0.0/16")
    one = R.alias(PrefixAlias(ipaddress.ip_network("100.64.0.1/32")))
    assert one.texts() == ["100.64.0.1"]  # no v6 sibling added
    rng = RangeAlias(ipaddress.ip_address("10.0.0.1"), ipaddress.ip_address("10.0.0.5"))
    assert len(R.alias(rng)) == 5


def test_ipset_resolves_entries_and_survives_self_reference() -> None:
    s = R.alias(IPSetRef("ipset:x"))
    assert s == AddressSet.parse("192.168.0.0/16") | AddressSet.parse("8.8.8.8")


def test_wildcard_source_is_tailscale_ranges_and_routes_are_indexed() -> None:
    assert R.alias(Wildcard()) == TAILSCALE_RANGES
    assert R.route_texts == ("10.1.0.0/16",)
    assert names(R.routers_overlapping(AddressSet.parse("10.1.2.3"))) == ["router"]
    assert R.routers_overlapping(AddressSet.parse("10.2.0.0/16")) == []


def test_texts_list_node_addresses_one_by_one() -> None:
    s = R.alias(UserRef("alice@example.com"))
    assert R.texts(s) == ["100.64.0.1", "100.64.0.2", "fd7a:115c:a1e0::1", "fd7a:115c:a1e0::2"]
    assert R.texts(TAILSCALE_RANGES) == TAILSCALE_RANGES.texts()


def test_reduction_answers_for_each_set_even_when_sets_are_made_per_call() -> None:
    # Regression: Reduction cached by id(addrs); a rule's dst_addrs is a new set on
    # every call, so a freed set's id was reused and answered for another set
    # (found as autogroup:members vs autogroup:member compiling differently).
    from policyc.compiler.pernode import Reduction

    reduction = Reduction([], R, [])
    documentation = AddressSet.of_network(ipaddress.ip_network("192.0.2.0/24"))

    def answer(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> tuple[frozenset[int], ...]:
        made_per_call = AddressSet.of_network(ipaddress.ip_network(ip)) | documentation
        expected = frozenset(R.nodes_in(made_per_call))
        return reduction._nodes_for(made_per_call, R, internet=False), expected

    for node in INVENTORY.nodes:
        for ip in node.ips:
            # Asked twice: the resolver keeps the first set (its own cache key), the
            # second one, equal but new, is freed on return as a dst_addrs is.
            for _ in range(2):
                got, expected = answer(ip)
                assert got == expected, ip

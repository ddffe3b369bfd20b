"""The reference evaluator on the worked examples of POLICY-FORMAT §9 and edge cases."""

from __future__ import annotations

import itertools

import pytest
from strategies import acl, example_inventory, grant, ip, policy

from policyc.analysis.reference import ReferenceEvaluator, in_internet
from policyc.compiler.nodes import Inventory

INV = example_inventory()
TCP, UDP, ICMP, GRE = 6, 17, 1, 47


def evaluator(**kwargs: object) -> ReferenceEvaluator:
    return ReferenceEvaluator(policy(**kwargs), INV)  # type: ignore[arg-type]


def peers(ev: ReferenceEvaluator, inventory: Inventory = INV) -> dict[str, set[str]]:
    return {a.name: {b.name for b in inventory if ev.may_see(a, b)} for a in inventory}


def addr(name: str, family: int = 4) -> str:
    node = INV.get(name)
    assert node is not None
    return str(next(a for a in node.ips if a.version == family))


def test_ex1_no_rules_allows_everything_and_everyone_sees_everyone() -> None:
    ev = evaluator()
    assert ev.allowed(ip(addr("laptop-a")), ip(addr("db")), UDP, 9)
    assert not ev.allowed(ip(addr("laptop-a")), ip(addr("db")), GRE, None)  # FilterAllowAll
    assert ev.allowing_rules(ip("1.2.3.4"), ip("5.6.7.8"), TCP, 1)[0].kind == "default"
    assert all(len(seen) == 6 for seen in peers(ev).values())


def test_ex2_empty_acls_deny_everything() -> None:
    ev = evaluator(acls=[])
    for a, b in itertools.permutations(INV, 2):
        assert not ev.allowed(a.ips[0], b.ips[0], TCP, 22)
    assert all(not seen for seen in peers(ev).values())


def test_ex3_tag_to_tag_on_one_port() -> None:
    ev = evaluator(acls=[acl(["tag:web"], ["tag:db:5432"])])
    web, db = ip(addr("web")), ip(addr("db"))
    assert ev.allowed(web, db, TCP, 5432)
    assert ev.allowed(ip(addr("web", 6)), ip(addr("db", 6)), UDP, 5432)
    assert not ev.allowed(web, db, TCP, 22)
    assert not ev.allowed(db, web, TCP, 5432)  # rules say who may initiate
    assert not ev.allowed(ip(addr("laptop-a")), db, TCP, 5432)  # alice's laptop is not tag:web
    assert not ev.allowed(web, db, GRE, None)  # not in the default protocol set
    assert ev.allowed(web, db, ICMP, None)
    assert peers(ev) == {"laptop-a": set(), "phone-a": set(), "laptop-b": set(),
                         "web": {"db"}, "db": {"web"}, "router": set(), "exit": set()}


def test_ex4_group_to_user_counts_only_untagged_devices() -> None:
    ev = evaluator(acls=[acl(["group:eng"], ["alice@example.com:22"])])
    for src, dst in itertools.product(["laptop-a", "phone-a", "laptop-b"], ["laptop-a", "phone-a"]):
        assert ev.allowed(ip(addr(src)), ip(addr(dst)), TCP, 22)
    assert not ev.allowed(ip(addr("web")), ip(addr("laptop-a")), TCP, 22)
    assert not ev.allowed(ip(addr("laptop-a")), ip(addr("web")), TCP, 22)  # web is a tag's
    assert peers(ev)["laptop-b"] == {"laptop-a", "phone-a"}
    assert peers(ev)["laptop-a"] == {"phone-a", "laptop-b"}
    assert peers(ev)["web"] == set()


def test_ex5_autogroup_self_narrows_to_the_same_owner() -> None:
    ev = evaluator(acls=[acl(["autogroup:member"], ["autogroup:self:*"])])
    assert ev.allowed(ip(addr("laptop-a")), ip(addr("phone-a", 6)), TCP, 443)
    assert ev.allowed(ip(addr("laptop-b")), ip(addr("laptop-b")), TCP, 443)
    assert not ev.allowed(ip(addr("laptop-b")), ip(addr("laptop-a")), TCP, 443)
    assert not ev.allowed(ip(addr("laptop-a")), ip(addr("web")), TCP, 443)  # tagged: no self
    assert peers(ev) == {"laptop-a": {"phone-a"}, "phone-a": {"laptop-a"}, "laptop-b": set(),
                         "web": set(), "db": set(), "router": set(), "exit": set()}


def test_ex6_wildcard_source_reaches_a_subnet_route() -> None:
    ev = evaluator(acls=[acl(["*"], ["10.1.0.0/16:443"])])
    assert ev.allowed(ip(addr("laptop-b", 6)), ip("10.1.2.3"), TCP, 443)
    assert ev.allowed(ip("10.1.9.9"), ip("10.1.2.3"), TCP, 443)  # `*` holds approved routes
    assert not ev.allowed(ip("192.168.1.1"), ip("10.1.2.3"), TCP, 443)
    assert not ev.allowed(ip(addr("laptop-b")), ip("10.1.2.3"), TCP, 80)
    seen = peers(ev)
    assert seen["router"] == {n.name for n in INV} - {"router"}
    assert seen["laptop-a"] == {"router"}


def test_ex7_internet_through_the_exit_node() -> None:
    ev = evaluator(acls=[acl(["group:eng"], ["autogroup:internet:*"])])
    assert ev.allowed(ip(addr("laptop-a")), ip("8.8.8.8"), TCP, 53)
    assert ev.allowed(ip(addr("laptop-b", 6)), ip("2606:4700::1111"), UDP, 443)
    assert not ev.allowed(ip(addr("laptop-a")), ip(addr("exit")), TCP, 22)  # not a node address
    assert not ev.allowed(ip(addr("laptop-a")), ip("10.1.2.3"), TCP, 22)  # private, not internet
    assert not ev.allowed(ip(addr("web")), ip("8.8.8.8"), TCP, 53)
    seen = peers(ev)
    assert seen["exit"] == {"laptop-a", "phone-a", "laptop-b"}
    assert seen["laptop-a"] == {"exit"}


def test_internet_needs_an_exit_node_to_be_delivered() -> None:
    no_exit = Inventory.of([n for n in INV if n.name != "exit"])
    ev = ReferenceEvaluator(policy(acls=[acl(["*"], ["*:*"])]), no_exit)
    src = ip(addr("laptop-a"))
    assert ev.allowing_rules(src, ip("8.8.8.8"), TCP, 80)
    assert not ev.allowed(src, ip("8.8.8.8"), TCP, 80)


def test_grant_star_and_bare_ports_use_the_default_protocol_set() -> None:
    ev = evaluator(grants=[grant(["tag:web"], ["tag:db"], ["*"]),
                           grant(["tag:db"], ["tag:web"], ["443"])])
    web, db = ip(addr("web")), ip(addr("db"))
    assert ev.allowed(web, db, UDP, 9)
    assert not ev.allowed(web, db, GRE, None)  # as SaaS captures: IPProto omitted
    assert not ev.allowed(web, db, 132, 9)
    assert ev.allowed(db, web, UDP, 443)
    assert not ev.allowed(db, web, GRE, None)
    assert not ev.allowed(db, web, 132, 443)  # sctp is not in the default set


def test_protocol_and_ports_must_both_match() -> None:
    ev = evaluator(acls=[acl(["tag:web"], ["tag:db:80,443,1000-2000"], proto="tcp")])
    web, db = ip(addr("web")), ip(addr("db"))
    assert [ev.allowed(web, db, TCP, p) for p in (80, 443, 1000, 1500, 2000, 2001, 22)] == [
        True, True, True, True, True, False, False]
    assert not ev.allowed(web, db, UDP, 80)
    assert ev.open_ports(web, db, TCP)[0].first == 80


def test_hosts_and_prefixes_do_not_expand_to_the_other_family() -> None:
    ev = evaluator(acls=[acl(["box"], ["tag:db:22"])], hosts={"box": "100.64.0.1"})
    assert ev.allowed(ip(addr("laptop-a")), ip(addr("db")), TCP, 22)
    assert not ev.allowed(ip(addr("laptop-a", 6)), ip(addr("db")), TCP, 22)


def test_allowing_rules_names_every_matching_entry() -> None:
    pol = policy(acls=[acl(["group:eng"], ["tag:db:22", "*:22"]), acl(["*"], ["tag:web:*"])])
    ev = ReferenceEvaluator(pol, INV)
    refs = ev.allowing_rules(ip(addr("laptop-a")), ip(addr("db")), TCP, 22)
    assert [(r.kind, r.index) for r in refs] == [("acl", 0), ("acl", 0)]


def test_subnet_router_sees_what_its_hosts_may_reach() -> None:
    # Hosts behind the router (10.1.0.0/16) may reach db: router and db are peers.
    ev = evaluator(acls=[acl(["10.1.0.0/24"], ["tag:db:5432"])])
    assert peers(ev)["router"] == {"db"}


@pytest.mark.parametrize(("text", "expected"), [
    ("8.8.8.8", True), ("10.0.0.1", False), ("100.100.100.100", False),
    ("172.31.0.1", False), ("2606:4700::1111", True), ("fd7a:115c:a1e0::1", False),
    ("fe80::1", False), ("169.254.1.1", False),
])
def test_internet_membership(text: str, expected: bool) -> None:
    assert in_internet(ip(text)) is expected


def test_user_domain_wildcard_selects_the_domains_users_as_the_compiler_does() -> None:
    # `user:*@DOMAIN` (and a group listing it) is every user of the domain; the
    # compiler's Resolver reads it so, and the reference (indexed or not) agrees.
    from strategies import load, node

    from policyc.analysis.access import policy_access
    from policyc.compiler.compiler import compile_policy

    inventory = Inventory.of([node("a", "alice@example.com", (), 1),
                              node("d", "dave@example.org", (), 2),
                              node("srv", None, ("tag:srv",), 3)])
    text = """{"groups": {"group:org": ["user:*@example.org"]},
               "tagOwners": {"tag:srv": []},
               "acls": [{"action": "accept", "src": ["user:*@example.com"], "dst": ["tag:srv:22"]},
                        {"action": "accept", "src": ["group:org"], "dst": ["tag:srv:80"]}]}"""
    pol = load(text)
    srv, alice, dave = ip("100.64.0.3"), ip("100.64.0.1"), ip("100.64.0.2")
    compiled = compile_policy(pol, inventory).netmaps["srv"].packet_filter
    for indexed in (True, False):
        ev = ReferenceEvaluator(pol, inventory, indexed=indexed)
        assert ev.allowed(alice, srv, TCP, 22) and not ev.allowed(dave, srv, TCP, 22)
        assert ev.allowed(dave, srv, TCP, 80) and not ev.allowed(alice, srv, TCP, 80)
        assert [n.name for n in ev.nodes_of(pol.acls[0].sources[0])] == ["a"]
    by_port = {r.dst_ports[0].ports.first: r.src_ips for r in compiled}
    assert by_port == {22: ("100.64.0.1", "fd7a:115c:a1e0::1"),
                       80: ("100.64.0.2", "fd7a:115c:a1e0::2")}
    access = policy_access(pol, inventory)
    assert access.allows(alice, srv, TCP, 22) and not access.allows(dave, srv, TCP, 22)
    assert access.allows(dave, srv, TCP, 80) and not access.allows(alice, srv, TCP, 80)

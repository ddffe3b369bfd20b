"""`AtomMatcher` against the question it stands in for: `identity_match` per atom."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import OTHER_DOMAIN_USER, TAGS, USERS, load, node, policies, tailnets

from policyc.compiler.index import PolicyIndex
from policyc.compiler.livematch import AtomMatcher
from policyc.compiler.livestage import LiveStage, identity_match
from policyc.compiler.nodes import Inventory, Node, User


def expected(stage: LiveStage, probe: Node) -> tuple[frozenset[object], frozenset[object]]:
    """(the atoms naming `probe`, the atoms that are not identity aliases)."""
    named, others = set(), set()
    for key, atom in stage.atoms.items():
        found = identity_match(atom.alias, probe, stage.r) if atom.alias is not None else None
        if found is None:
            others.add(key)
        elif found:
            named.add(key)
    return frozenset(named), frozenset(others)


def probes() -> st.SearchStrategy[Node]:
    owners = st.sampled_from((*USERS, OTHER_DOMAIN_USER, "zed@example.net", None))
    tags = st.sets(st.sampled_from((*TAGS, "tag:router", "tag:other")), max_size=2)
    return st.builds(lambda user, tags: node("probe", user, tuple(sorted(tags)), 70),
                     owners, tags)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=policies(), inventory=tailnets(), extra=st.lists(probes(), max_size=4))
def test_the_atoms_named_are_those_identity_match_names(
        text: str, inventory: Inventory, extra: list[Node]) -> None:
    stage = PolicyIndex.build(load(text), inventory)._stage
    matcher = AtomMatcher(stage.atoms, stage.r)
    for probe in (*inventory.nodes, *extra, *extra):  # twice: the owner cache answers
        named, others = expected(stage, probe)
        assert matcher.named(probe) == named, probe
        assert matcher.others == others


def test_role_autogroups_and_domain_groups_follow_the_owner() -> None:
    text = """{
      "groups": {"group:org": ["user:*@example.org"], "group:one": ["bob@example.com"]},
      "tagOwners": {"tag:web": ["alice@example.com"]},
      "acls": [{"action": "accept",
                "src": ["autogroup:admin", "group:org", "group:one", "carol@example.com"],
                "dst": ["tag:web:*", "autogroup:tagged:22"]}],
    }"""
    inventory = Inventory.of([node("web", None, ("tag:web",), 1),
                              node("laptop", "alice@example.com", (), 2)],
                             users=(User("alice@example.com", "admin"),))
    stage = PolicyIndex.build(load(text), inventory)._stage
    matcher = AtomMatcher(stage.atoms, stage.r)
    assert {key[1] for key in matcher.named(node("a", "alice@example.com", (), 3))} == {
        "autogroup:admin"}
    assert {key[1] for key in matcher.named(node("d", OTHER_DOMAIN_USER, (), 4))} == {
        "group:org"}
    assert {key[1] for key in matcher.named(node("b", "bob@example.com", (), 5))} == {
        "group:one"}
    assert {key[1] for key in matcher.named(node("t", "bob@example.com", ("tag:web",), 6))} \
        == {"tag:web", "autogroup:tagged"}
    for probe in (node("c", "carol@example.com", (), 7), node("z", None, (), 8)):
        assert matcher.named(probe) == expected(stage, probe)[0]


BOBS = """{
  "groups": {"group:bobs": ["bob@example.com"]},
  "tagOwners": {"tag:web": ["alice@example.com"]},
  "acls": [{"action": "accept", "src": ["group:bobs"], "dst": ["tag:web:22"]}],
}"""


def test_an_owner_s_router_or_shared_address_does_not_say_which_groups_name_the_owner(
) -> None:
    """The groups naming an owner are read from one of the owner's devices' bits in
    the groups' atoms; an atom also holds the routers whose routes overlap its set,
    and every node at one of its addresses: such a device of alice's says nothing
    about alice (she is in no group here), so the login sets answer."""
    bob = node("bob-laptop", "bob@example.com", (), 1)
    router = node("alice-router", "alice@example.com", (), 2, routes=("100.64.0.0/24",))
    shared = replace(node("alice-laptop", "alice@example.com", (), 3), ips=bob.ips)
    for inventory in (Inventory.of([bob, router]), Inventory.of([bob, shared])):
        stage = PolicyIndex.build(load(BOBS), inventory)._stage
        matcher = AtomMatcher(stage.atoms, stage.r)
        assert [key[1] for key, atom in stage.atoms.items()
                if atom.bits >> 1 & 1 and key[1] == "group:bobs"] == ["group:bobs"]
        for probe in (node("alice-phone", "alice@example.com", (), 9),
                      node("bob-phone", "bob@example.com", (), 8)):
            assert matcher.named(probe) == expected(stage, probe)[0], probe.name

"""The compiled-policy index against from-scratch compiles.

Property: after any random sequence of node events (and policy pushes), every
netmap the index gives equals `compile_policy` of the same policy and
inventory, and each reported change set is exactly the nodes whose netmap
differs (policy_version aside), with peer deltas that say what differs.
Bad events are rejected with a diagnostic and change nothing.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
from collections.abc import Iterator
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import (
    EXIT_TAG,
    NODE_ROUTES,
    ROUTER_TAG,
    ROUTES,
    TAGS,
    USERS,
    load,
    near_addresses,
    node,
    policies,
    tailnets,
)

from policyc.compiler import (
    EventRejected,
    NodeAdded,
    NodeEvent,
    NodeRemoved,
    NodeUpdated,
    PeerDelta,
    PolicyIndex,
    chunks,
    compile_policy,
)
from policyc.compiler.addrset import union_all
from policyc.compiler.grants import UnitCompiler
from policyc.compiler.internet import INTERNET
from policyc.compiler.livetable import IpShape, Shape, Table
from policyc.compiler.nodes import Inventory, Node, User
from policyc.netmap import NodeNetmap
from policyc.policy.model import Policy

SSH_RULES = [
    {"action": "accept", "src": ["group:eng"], "dst": ["autogroup:self"], "users": ["root"]},
    {"action": "check", "src": ["autogroup:member"], "dst": ["tag:web", "tag:db"],
     "users": ["autogroup:nonroot"]},
    {"action": "accept", "src": ["tag:ci"], "dst": ["tag:web"], "users": ["deploy"]},
]


# nodeAttrs that node events move nodes in and out of (tags, owners, addresses).
NODE_ATTRS = [
    {"target": ["tag:web"], "attr": ["funnel"]},
    {"target": ["alice@example.com", "100.64.0.1/32"], "attr": ["drive:share"],
     "app": {"example.com/cap/x": [{"n": 1}]}},
]


@pytest.fixture(autouse=True, scope="module")
def small_chunks() -> Iterator[None]:
    """Patched texts and prefixes are chunked (chunks.py); on these small tailnets a
    group spans several chunks only if chunks are tiny, so every edit here crosses
    chunk boundaries as a 10,000-node group's do."""
    was, chunks.CHUNK = chunks.CHUNK, 2
    yield
    chunks.CHUNK = was


def content(netmap: NodeNetmap) -> tuple[object, ...]:
    return (replace(netmap, policy_version=""), netmap.ssh_policy, netmap.cap_map)


def expected(policy: Policy, inventory: Inventory) -> dict[str, NodeNetmap]:
    return dict(compile_policy(policy, inventory).netmaps)


def assert_matches_fresh_compile(index: PolicyIndex, policy: Policy) -> dict[str, NodeNetmap]:
    fresh = expected(policy, index.inventory())
    assert index.names() == list(fresh)
    for name, netmap in fresh.items():
        got = index.netmap(name)
        assert got == netmap, name
        assert got.ssh_policy == netmap.ssh_policy, name
        assert got.cap_map == netmap.cap_map, name
    return fresh


def key_for(text: str) -> str:
    return base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


# --- random events ----------------------------------------------------------------------


ANY_ROUTES = ROUTES + NODE_ROUTES


def index_tailnets() -> st.SearchStrategy[Inventory]:
    """Tailnets numbered 1, 2, 3..., or spread over neighbours and boundaries with
    routes over node addresses."""
    return st.one_of(tailnets(), tailnets(spread=True, route_choices=ANY_ROUTES))


@st.composite
def new_addresses(draw: st.DrawFn, index: PolicyIndex, fresh: int, name: str,
                  near: bool = False) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...]:
    """Addresses for a joining or moving node: fresh ones (far from every node's) or
    next to other nodes' (prefix covers split and merge there; always, if `near`)."""
    far = node("x", None, (), fresh).ips
    kind = "near" if near else draw(st.sampled_from(("far", "v4", "v6", "near", "near")))
    if kind != "near":
        return far if kind == "far" else far[:1] if kind == "v4" else far[1:]
    others = [n for n in map(index.node, index.names()) if n is not None and n.name != name]
    return draw(near_addresses(others, far))


@st.composite
def node_changes(draw: st.DrawFn, current: Node, fresh: int, index: PolicyIndex,
                 fields: tuple[str, ...] | None = None, near: bool = False) -> Node:
    """`current` with one or more of its fields changed."""
    changed = current
    for field in draw(st.sets(st.sampled_from(
            fields or ("tags", "user", "ips", "routes", "exit", "key", "endpoint")),
            min_size=1)):
        if field == "tags":
            tags = draw(st.sets(st.sampled_from((*TAGS, ROUTER_TAG, EXIT_TAG)), max_size=2))
            changed = replace(changed, tags=tuple(sorted(tags)))
        elif field == "user":
            changed = replace(changed, user=draw(st.sampled_from(USERS)))
        elif field == "ips":
            changed = replace(changed, ips=draw(st.one_of(
                new_addresses(index, fresh, current.name, near), st.just(changed.ips[:1]))))
        elif field == "routes":
            routes = draw(st.sets(st.sampled_from(ANY_ROUTES), max_size=2))
            changed = replace(changed, routes=tuple(ipaddress.ip_network(r)
                                                    for r in sorted(routes)))
        elif field == "exit":
            changed = replace(changed, exit_node=not changed.exit_node)
        elif field == "key":
            changed = replace(changed, key=key_for(f"{changed.key}-{fresh}"))
        else:
            changed = replace(changed, endpoint=draw(st.sampled_from(
                (None, "198.18.0.1:41641", f"198.18.0.{fresh % 250 + 2}:41641"))))
    return changed


ORDINARY_FIELDS = ("tags", "user", "ips", "key", "endpoint")


@st.composite
def events(draw: st.DrawFn, index: PolicyIndex, fresh: int,
           ordinary: bool = False, near: bool = False) -> NodeEvent:
    """A random event; `ordinary`: joins without routes, and changes of anything but
    routes and exit approval (the events the index patches in place); `near`: joins
    and moves always next to other nodes' addresses."""
    names = index.names()
    kind = draw(st.sampled_from(("add", "remove", "update", "update")) if names
                else st.just("add"))
    if kind == "add":
        user = draw(st.sampled_from(USERS))
        tags = tuple(sorted(draw(st.sets(st.sampled_from(TAGS), max_size=2))))
        ips = draw(new_addresses(index, fresh, "", near))
        if ordinary:
            return NodeAdded(replace(node(f"new{fresh}", user, tags, fresh), ips=ips))
        routes = tuple(draw(st.sets(st.sampled_from(ANY_ROUTES), max_size=1)))
        return NodeAdded(replace(node(f"new{fresh}", user, tags, fresh, routes=routes,
                                      exit_node=draw(st.booleans()) and not routes), ips=ips))
    name = draw(st.sampled_from(names))
    if kind == "remove":
        return NodeRemoved(name)
    current = index.node(name)
    assert current is not None
    return NodeUpdated(draw(node_changes(current, fresh, index,
                                         ORDINARY_FIELDS if ordinary else None, near)))


DENSE_SOURCES = ("group:eng", "group:ops", "autogroup:member", "autogroup:tagged", *TAGS,
                 *USERS, "100.64.0.1-100.64.0.3", "100.64.0.0/29")
DENSE_DESTINATIONS = (*DENSE_SOURCES, "*", "autogroup:internet")


@st.composite
def dense_policies(draw: st.DrawFn) -> str:
    """Policies of identity aliases reaching identity aliases (most nodes see most
    others, rules merge on shared sources, autogroup:self next to them), with the
    small address ranges whose SrcIPs text depends on which addresses are nodes'."""
    acls = []
    for _ in range(draw(st.integers(1, 6))):
        src = draw(st.lists(st.sampled_from(DENSE_SOURCES), min_size=1, max_size=2))
        dst = draw(st.lists(st.sampled_from(DENSE_DESTINATIONS), min_size=1, max_size=2))
        port = draw(st.sampled_from(("*", "22", "443", "80,443")))
        rule: dict[str, object] = {"action": "accept", "src": src,
                                   "dst": [f"{d}:{port}" for d in dst]}
        if draw(st.booleans()):
            rule["proto"] = "tcp"
        acls.append(rule)
    if draw(st.booleans()):
        acls.append({"action": "accept", "src": ["autogroup:member"],
                     "dst": [f"autogroup:self:{draw(st.sampled_from(('*', '22')))}"]})
    doc = {
        "groups": {"group:eng": sorted(draw(st.sets(st.sampled_from(USERS), max_size=3))),
                   "group:ops": sorted(draw(st.sets(st.sampled_from(USERS), max_size=3)))},
        "tagOwners": {t: ["alice@example.com"] for t in (*TAGS, ROUTER_TAG, EXIT_TAG)},
        "acls": acls,
    }
    return json.dumps(doc, indent=2)[:-2] + ",\n}"


def with_ssh(text: str, rules: list[dict[str, object]]) -> str:
    head = text.rstrip()[:-1]  # drop the closing brace; the text ends with ",\n}"
    return head + f'"ssh": {json.dumps(rules)},\n"nodeAttrs": {json.dumps(NODE_ATTRS)}\n}}'


EVENT_SETTINGS = settings(max_examples=120, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])


@EVENT_SETTINGS
@given(text=policies(), inventory=index_tailnets(), ssh=st.booleans(), data=st.data())
def test_events_keep_the_index_equal_to_a_fresh_compile(
        text: str, inventory: Inventory, ssh: bool, data: st.DataObject) -> None:
    check_events(text, inventory, ssh, data, ordinary=False)


@EVENT_SETTINGS
@given(text=st.one_of(policies(), dense_policies()), inventory=index_tailnets(), ssh=st.booleans(),
       data=st.data())
def test_ordinary_events_patched_in_place_equal_a_fresh_compile(
        text: str, inventory: Inventory, ssh: bool, data: st.DataObject) -> None:
    """Joins, leaves and changes of tags, owner, addresses, key or endpoint are patched
    into the index (livepatch.py), not rebuilt: the same property must hold."""
    check_events(text, inventory, ssh, data, ordinary=True)


# Rules from some nodes to others: a destination's nodes need not be each other's
# peers, so a node next to E may see E's move only in its own filter's prefix.
REGION_SOURCES = ("group:eng", "alice@example.com", "tag:ci", "autogroup:member",
                  "100.64.0.0/29", "100.64.1.0-100.64.1.2", "fd7a:115c:a1e0::/125")
REGION_DESTINATIONS = ("tag:web", "tag:db", "autogroup:tagged", "bob@example.com",
                       "group:ops", "100.64.0.0/30", "100.64.0.255-100.64.1.1",
                       "fd7a:115c:a1e0::/126", "fd7a:115c:a1e0::fffe-fd7a:115c:a1e0::1:1")


@st.composite
def region_policies(draw: st.DrawFn) -> str:
    acls = [{"action": "accept",
             "src": draw(st.lists(st.sampled_from(REGION_SOURCES), min_size=1, max_size=2)),
             "dst": [f"{d}:{draw(st.sampled_from(('22', '*')))}" for d in draw(st.lists(
                 st.sampled_from(REGION_DESTINATIONS), min_size=1, max_size=2))]}
            for _ in range(draw(st.integers(1, 3)))]
    doc = {"groups": {"group:eng": ["alice@example.com"],
                      "group:ops": sorted(draw(st.sets(st.sampled_from(USERS), max_size=2)))},
           "tagOwners": {t: ["alice@example.com"] for t in (*TAGS, ROUTER_TAG, EXIT_TAG)},
           "acls": acls}
    return json.dumps(doc, indent=2)[:-2] + ",\n}"


@EVENT_SETTINGS
@given(text=region_policies(), data=st.data(),
       inventory=tailnets(spread=True, tag_sets=(
           (), ("tag:web",), ("tag:web",), ("tag:web",), ("tag:db",), ("tag:db", "tag:web"))))
def test_events_next_to_other_nodes_equal_a_fresh_compile(
        text: str, inventory: Inventory, data: st.DataObject) -> None:
    """Joins and moves next to other nodes' addresses, among nodes clustered across
    prefix boundaries: the prefix covering a neighbour merges or splits though the
    neighbour may not see E at all (the region `livepatch` compares)."""
    check_events(text, inventory, False, data, ordinary=True, near=True)


def check_events(text: str, inventory: Inventory, ssh: bool, data: st.DataObject,
                 ordinary: bool, near: bool = False) -> None:
    policy = load(with_ssh(text, SSH_RULES) if ssh else text)
    index = PolicyIndex.build(policy, inventory)
    before = assert_matches_fresh_compile(index, policy)
    for step in range(data.draw(st.integers(1, 6), label="events")):
        if data.draw(st.integers(0, 9), label="policy push?") == 0:
            policy = load(data.draw(policies(), label="new policy"))
            changes = index.set_policy(policy)
        else:
            changes = index.apply(data.draw(events(index, 60 + step, ordinary, near),
                                            label="event"))
        after = assert_matches_fresh_compile(index, policy)
        differ = {n for n in after if n not in before or content(before[n]) != content(after[n])}
        differ |= set(before) - set(after)
        assert changes.names == differ
        # The grouped report says for each changed node, once, what its record says.
        grouped = [(n, d.peers_added, d.peers_removed, d.peers_changed, d.removed)
                   for d in changes.deltas for n in d.nodes]
        assert sorted(grouped) == sorted((c.node, c.peers_added, c.peers_removed,
                                          c.peers_changed, c.removed) for c in changes)
        for change in changes:
            if change.removed:
                assert change.node not in after and change.netmap() is None
                continue
            assert change.netmap() == after[change.node]
            old = {p.name: p for p in before[change.node].peers} if change.node in before else {}
            new = {p.name: p for p in after[change.node].peers}
            assert set(change.peers_added) == set(new) - set(old)
            assert set(change.peers_removed) == set(old) - set(new)
            assert set(change.peers_changed) == {p for p in set(old) & set(new)
                                                 if old[p] != new[p]}
        before = after


# --- the patch's shortcuts against the code they stand in for ---------------------------


def shape_content(shape: Shape) -> tuple[object, ...]:
    """What a filter, the merging and the peer edges read of a unit's rule."""
    if not isinstance(shape, IpShape):
        return (shape.pos, shape.rule, shape.src.addrs, shape.dst.addrs)
    blocks = tuple((b.star, b.atom.key, b.atom.addrs, tuple(t for t, _ in b.parts4),
                    tuple(t for t, _ in b.parts6), b.ports) for b in shape.blocks)
    return (shape.pos, shape.order, shape.src_ips, shape.key, shape.src.key,
            shape.src.addrs, blocks, shape.internet, shape.covers,
            INTERNET.issubset(union_all(shape.inet_sets)) if shape.inet_sets else None)


def table_content(table: Table) -> tuple[object, ...]:
    groups = tuple((g.key, tuple(s.pos for s in g.parts), g.part_holders, g.holders)
                   for g in table.groups)
    edges = tuple((e.src_bits, e.dst_bits, tuple(getattr(d, "addrs", d) for d in e.dst),
                   e.internet) for e in table.edges)
    return groups, edges


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.one_of(dense_policies(), policies()), inventory=index_tailnets(), data=st.data())
def test_units_refreshed_in_place_equal_recompiled_units(
        text: str, inventory: Inventory, data: st.DataObject) -> None:
    """After each patched event, every unit the patch refreshed instead of recompiling
    (`livepatch._refreshed`) equals the unit compiled from the patched aliases, and the
    table (which keeps the groups an event did not touch) equals one built afresh."""
    index = PolicyIndex.build(load(text), inventory)
    for step in range(data.draw(st.integers(1, 5), label="events")):
        index._last = None
        old = index._stage.table
        index.apply(data.draw(events(index, 60 + step, ordinary=True), label="event"))
        if index._last is None:  # rebuilt, not patched
            continue
        stage = index._stage
        fresh = Table(stage.table.units, stage.table.self_parts, stage.exit_bits)
        assert table_content(stage.table) == table_content(fresh)  # groups kept are current
        # What the patch compares instead of every key: the groups made anew, and the
        # old ones whose key is gone.
        kept = {id(g) for g in old.groups}
        assert [g for g in stage.table.groups if id(g) not in kept] == stage.table.fresh
        assert [g.key for g in old.groups if g.key not in stage.table.by_key] == \
            [g.key for g in stage.table.gone]
        compiler = UnitCompiler(stage.r)
        for k in index._last.refreshed:
            anon = stage.unit_anon.get(k)
            compiled, _ = stage._compile(k, compiler)
            if anon is not None:  # the stage keeps patching the atoms it had
                stage.unit_anon[k] = anon
            assert [shape_content(s) for s in stage.table.units[k]] == \
                [shape_content(s) for s in compiled], k


def test_group_and_wildcard_rules_are_refreshed_not_recompiled_after_a_join() -> None:
    """The shortcut is taken (the property above is not vacuous for the common case)."""
    text = POLICY_TEXT.replace(
        '"acls": [', '"acls": [{"action": "accept", "src": ["*"], "dst": ["group:eng:22"]},\n')
    index = PolicyIndex.build(load(text), Inventory.of([
        node("laptop", "alice@example.com", (), 1), node("web", None, ("tag:web",), 3)]))
    index.apply(NodeAdded(node("phone", "bob@example.com", (), 2)))
    assert index._last is not None and index._last.refreshed == (0, 1)
    shape = index._stage.table.units[1][0]
    assert isinstance(shape, IpShape) and shape.src_ips == ("100.64.0.1", "100.64.0.2",
                                                            "fd7a:115c:a1e0::1",
                                                            "fd7a:115c:a1e0::2")



@pytest.mark.parametrize("event", [NodeRemoved("n2"), NodeAdded(node("n9", None, ("tag:web",), 3)),
                                   NodeUpdated(node("n2", None, ("tag:web",), 9))],
                         ids=["leave", "join", "move"])
def test_an_ipset_range_is_rewritten_when_a_node_address_in_it_comes_or_goes(
        event: NodeEvent) -> None:
    """An ipset's short range is listed address by address while every address in it is
    a node's; a node leaving it (or joining it) changes the text though not the set
    (hypothesis found this: the index kept the old text)."""
    text = """{
      "tagOwners": {"tag:web": ["alice@example.com"]},
      "ipsets": {"ipset:office": ["10.1.2.0/24", "100.64.0.3-100.64.0.5"]},
      "grants": [{"src": ["ipset:office"], "dst": ["alice@example.com"], "ip": ["*"]}],
    }"""
    nodes = [node(f"n{i}", "alice@example.com", (), i + 1) for i in range(5)]
    if isinstance(event, NodeAdded):
        del nodes[2]
    index = PolicyIndex.build(load(text), Inventory.of(nodes))
    index.apply(event)
    fresh = assert_matches_fresh_compile(index, load(text))
    assert fresh["n0"].packet_filter[0].src_ips[:2] == (
        ("10.1.2.0/24", "100.64.0.3") if isinstance(event, NodeAdded)
        else ("10.1.2.0/24", "100.64.0.3-100.64.0.5"))

def test_an_own_rule_merged_before_a_join_and_alone_after_it_is_no_change() -> None:
    """n0's autogroup:self rule merges into the shared alice-only rule before bob's
    device joins (same SrcIPs) and stands alone after it (that rule's SrcIPs now name
    bob's device too): the same wire rule made two ways, so n0's netmap is unchanged
    (the filters compared before/after once told them apart; hypothesis found it)."""
    text = """{
      "tagOwners": {"tag:web": ["alice@example.com"]},
      "acls": [{"action": "accept", "src": ["alice@example.com", "bob@example.com"],
                "dst": ["autogroup:self:*", "tag:web:*"]}],
      "grants": [{"src": ["alice@example.com"], "dst": ["autogroup:self"], "ip": ["*"]}],
    }"""
    index = PolicyIndex.build(load(text), Inventory.of([
        node("n0", "alice@example.com", (), 1), node("n1", "alice@example.com", ("tag:web",), 2)]))
    before = assert_matches_fresh_compile(index, load(text))
    changes = index.apply(NodeAdded(node("new60", "bob@example.com", (), 60)))
    after = assert_matches_fresh_compile(index, load(text))
    assert before["n0"] == after["n0"]
    assert changes.names == {"n1", "new60"}


def test_a_device_leaving_its_owner_changes_the_owners_other_devices_self_rules() -> None:
    """The phone is tagged: the laptop's autogroup:self rule no longer names it, though
    the two stay peers (`*`): only comparing the laptop's own rules before and after
    the event finds that change."""
    text = """{
      "tagOwners": {"tag:web": ["alice@example.com"]},
      "acls": [{"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self:22"]},
               {"action": "accept", "src": ["*"], "dst": ["*:443"]}],
    }"""
    index = PolicyIndex.build(load(text), Inventory.of([
        node("laptop", "alice@example.com", (), 1), node("phone", "alice@example.com", (), 2)]))
    before = assert_matches_fresh_compile(index, load(text))
    changes = index.apply(NodeUpdated(node("phone", "alice@example.com", ("tag:web",), 2)))
    after = assert_matches_fresh_compile(index, load(text))
    assert before["laptop"].peers == after["laptop"].peers
    assert changes.names == {"laptop", "phone"}


def test_a_capgrant_to_a_group_names_the_device_that_joined_it() -> None:
    """CapGrant rules are recompiled, reading the group's set through the resolver,
    which the index keeps patched (its cache of the build-time set must not answer)."""
    text = """{
      "groups": {"group:eng": ["alice@example.com", "bob@example.com"]},
      "tagOwners": {"tag:web": ["alice@example.com"]},
      "grants": [{"src": ["tag:web"], "dst": ["group:eng"], "app": {"example.com/cap/x": [{}]}},
                 {"src": ["tag:web"], "dst": ["group:eng"], "ip": ["22"]}],
    }"""
    index = PolicyIndex.build(load(text), Inventory.of([
        node("web", None, ("tag:web",), 1), node("laptop", "alice@example.com", (), 2)]))
    changes = index.apply(NodeAdded(node("phone", "bob@example.com", (), 3)))
    assert_matches_fresh_compile(index, load(text))
    assert {"phone", "web"} <= changes.names


def test_a_neighbour_whose_prefix_splits_when_a_node_leaves_is_reported() -> None:
    """web1 and web2 are adjacent: tag:web is written 100.64.0.2/31 in each one's
    filter; when web1 leaves, web2's entry becomes 100.64.0.3 though the two never
    were peers (only the nodes next to the leaving address see that)."""
    text = """{
      "groups": {"group:eng": ["alice@example.com"]},
      "tagOwners": {"tag:web": ["alice@example.com"]},
      "acls": [{"action": "accept", "src": ["group:eng"], "dst": ["tag:web:22"]}],
    }"""
    index = PolicyIndex.build(load(text), Inventory.of([
        node("laptop", "alice@example.com", (), 1), node("web1", None, ("tag:web",), 2),
        node("web2", None, ("tag:web",), 3)]))
    assert "100.64.0.2/31" in str(index.netmap("web2").packet_filter)
    changes = index.apply(NodeRemoved("web1"))
    assert_matches_fresh_compile(index, load(text))
    assert changes.names == {"laptop", "web1", "web2"}


# --- bad events ---------------------------------------------------------------------------

POLICY_TEXT = """{
  "groups": {"group:eng": ["alice@example.com", "bob@example.com"]},
  "tagOwners": {"tag:web": ["alice@example.com"]},
  "acls": [{"action": "accept", "src": ["group:eng"], "dst": ["tag:web:443"]}],
}"""


@pytest.fixture
def index() -> PolicyIndex:
    return PolicyIndex.build(load(POLICY_TEXT), Inventory.of([
        node("laptop", "alice@example.com", (), 1),
        node("phone", "bob@example.com", (), 2),
        node("web", None, ("tag:web",), 3),
    ]))


def snapshot(index: PolicyIndex) -> tuple[object, ...]:
    return (index.inventory().nodes,
            tuple(content(index.netmap(name)) for name in index.names()))


@pytest.mark.parametrize(("event", "code", "words"), [
    (NodeRemoved("ghost"), "I404", 'unknown node "ghost"'),
    (NodeUpdated(node("ghost", "alice@example.com", (), 9)), "I404", 'unknown node "ghost"'),
    (NodeAdded(node("laptop", "alice@example.com", (), 9)), "I402", "already used"),
    (NodeAdded(replace(node("tablet", "alice@example.com", (), 9),
                       ips=node("x", None, (), 2).ips[:1])), "I402", "100.64.0.2"),
    (NodeUpdated(replace(node("laptop", "alice@example.com", (), 1),
                         ips=node("x", None, (), 3).ips)), "I402", 'node "web"'),
    (NodeAdded(replace(node("tablet", "alice@example.com", (), 9),
                       key=node("phone", None, (), 2).key)), "I402", "key"),
    (NodeAdded(replace(node("tablet", "alice@example.com", (), 9), key="not-a-key")),
     "I403", "not 32 bytes"),
    (NodeUpdated(replace(node("web", None, ("tag:web",), 3), key=key_for("k")[:-4])),
     "I403", "not 32 bytes"),
    (NodeUpdated(node("web", None, ("web",), 3)), "I401", "is not a tag"),
    (NodeAdded(node("LAPTOP", "alice@example.com", (), 9)), "I402", "only in case"),
])
def test_bad_events_are_rejected_and_change_nothing(
        index: PolicyIndex, event: NodeEvent, code: str,
        words: str) -> None:
    before = snapshot(index)
    with pytest.raises(EventRejected) as raised:
        index.apply(event)
    codes = [d.code for d in raised.value.diagnostics.errors]
    assert code in codes
    assert any(words in d.message for d in raised.value.diagnostics.errors)
    assert snapshot(index) == before


def test_a_join_reports_the_peers_that_now_see_the_new_node(index: PolicyIndex) -> None:
    changes = index.apply(NodeAdded(node("tablet", "alice@example.com", (), 4)))
    by_name = {c.node: c for c in changes}
    assert set(by_name) == {"tablet", "web"}  # laptop and phone do not see each other
    assert by_name["web"].peers_added == ("tablet",)
    assert by_name["tablet"].peers_added == ("web",)
    web = by_name["web"].netmap()
    assert web is not None and "100.64.0.4" in web.packet_filter[0].src_ips


def test_nodes_that_gain_the_same_peer_share_one_delta(index: PolicyIndex) -> None:
    """`deltas` groups nodes by delta: both group:eng devices gain the new web server."""
    changes = index.apply(NodeAdded(node("web2", None, ("tag:web",), 5)))
    assert sorted(changes.deltas) == sorted([
        PeerDelta(("web2",), ("laptop", "phone"), (), (), False),
        PeerDelta(("laptop", "phone"), ("web2",), (), (), False),
    ])


def test_a_report_read_after_later_events_names_the_nodes_of_its_own(
        index: PolicyIndex) -> None:
    """Reports are made on first use from the slot names of their event: a later
    leave (its slot renamed "") or join (a slot appended) must not show through."""
    joined = index.apply(NodeAdded(node("tablet", "alice@example.com", (), 4)))
    index.apply(NodeRemoved("web"))
    index.apply(NodeAdded(node("web2", None, ("tag:web",), 5)))
    assert sorted(n for d in joined.deltas for n in d.nodes) == ["tablet", "web"]
    assert sorted(c.node for c in joined.changed) == ["tablet", "web"]


def test_a_key_change_is_a_peer_change_for_those_who_see_the_node(index: PolicyIndex) -> None:
    current = index.node("laptop")
    assert current is not None
    changes = index.apply(NodeUpdated(replace(current, key=key_for("rotated"))))
    by_name = {c.node: c for c in changes}
    assert set(by_name) == {"web"}
    assert by_name["web"].peers_changed == ("laptop",)
    assert by_name["web"].peers_added == by_name["web"].peers_removed == ()


def test_a_policy_push_changing_only_node_attributes_reports_those_nodes(
        index: PolicyIndex) -> None:
    pushed = POLICY_TEXT.replace(
        '"acls":', '"nodeAttrs": [{"target": ["tag:web"], "attr": ["funnel"]}],\n  "acls":')
    changes = index.set_policy(load(pushed))
    assert [c.node for c in changes] == ["web"]
    web = index.netmap("web")
    assert web is not None and web.cap_map == {"funnel": None}


def test_a_new_user_list_rebuilds_and_reports_role_changes() -> None:
    text = POLICY_TEXT.replace('"src": ["group:eng"]', '"src": ["autogroup:admin"]')
    policy = load(text)
    inventory = Inventory.of([node("laptop", "alice@example.com", (), 1),
                              node("web", None, ("tag:web",), 3)], users=())
    index = PolicyIndex.build(policy, inventory)
    assert index.netmap("web").peers == ()
    changes = index.set_users((User("alice@example.com", "admin"),))
    assert changes.names == {"laptop", "web"}
    fresh = compile_policy(policy, index.inventory()).netmaps
    assert index.netmap("web") == fresh["web"] and index.netmap("web").peers
    assert not index.set_users((User("alice@example.com", "admin"),)).names

"""Test helpers: tiny model builders, the §9 inventory, and hypothesis strategies.

The builders make model objects straight from short strings so unit tests of
the reference evaluator do not depend on the parser. The strategies produce
random small tailnets and random policies as HuJSON *text*, so property tests
exercise the parser and builder too.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
from dataclasses import replace

from hypothesis import strategies as st

from policyc.compiler.nodes import Inventory, Node
from policyc.diagnostics.source import SourceFile
from policyc.netmap import ALL_PORTS, PortRange
from policyc.policy.model import (
    AclDestination,
    AclRule,
    Alias,
    AutoGroupRef,
    GrantRule,
    Group,
    GroupRef,
    HostAlias,
    HostRef,
    IPCapability,
    Policy,
    PrefixAlias,
    TagOwners,
    TagRef,
    UserRef,
    Wildcard,
)

# --- builders --------------------------------------------------------------------

PROTOS = {"tcp": 6, "udp": 17, "icmp": 1, "ipv6-icmp": 58, "sctp": 132, "gre": 47}


def alias(text: str) -> Alias:
    if text == "*":
        return Wildcard()
    if text.startswith("group:"):
        return GroupRef(text)
    if text.startswith("tag:"):
        return TagRef(text)
    if text.startswith("autogroup:"):
        return AutoGroupRef(text)
    if "@" in text:
        return UserRef(text)
    try:
        return PrefixAlias(ipaddress.ip_network(text, strict=False))
    except ValueError:
        return HostRef(text)


def ports(text: str) -> tuple[PortRange, ...]:
    if text == "*":
        return (ALL_PORTS,)
    out = []
    for part in text.split(","):
        first, _, last = part.partition("-")
        out.append(PortRange(int(first), int(last or first)))
    return tuple(out)


def acl(src: list[str], dst: list[str], proto: str | None = None) -> AclRule:
    dests = []
    for entry in dst:
        head, _, tail = entry.rpartition(":")
        dests.append(AclDestination(alias(head), ports(tail)))
    protocols = (PROTOS[proto],) if proto else ()
    return AclRule("accept", tuple(alias(s) for s in src), tuple(dests), protocols)


def ip_cap(text: str) -> IPCapability:
    if text == "*":
        return IPCapability((), (ALL_PORTS,), any_protocol=True)
    if ":" in text:
        proto, _, port_text = text.partition(":")
        return IPCapability((PROTOS[proto],), ports(port_text))
    return IPCapability((), ports(text))


def grant(src: list[str], dst: list[str], ip: list[str]) -> GrantRule:
    return GrantRule(tuple(alias(s) for s in src), tuple(alias(d) for d in dst),
                     tuple(ip_cap(i) for i in ip))


EXAMPLE_GROUPS = {"group:eng": ["alice@example.com", "bob@example.com"]}
EXAMPLE_TAGS = ["tag:web", "tag:db", "tag:router", "tag:exit"]


def policy(acls: list[AclRule] | None = None, grants: list[GrantRule] | None = None,
           hosts: dict[str, str] | None = None,
           groups: dict[str, list[str]] | None = None) -> Policy:
    """A model policy with the §9 common header (groups, tagOwners)."""
    group_map = EXAMPLE_GROUPS if groups is None else groups
    return Policy(
        source=SourceFile("test.hujson", ""),
        groups={g: Group(g, tuple(ms)) for g, ms in group_map.items()},
        tag_owners={t: TagOwners(t, ()) for t in EXAMPLE_TAGS},
        hosts={h: HostAlias(h, ipaddress.ip_network(v)) for h, v in (hosts or {}).items()},
        acls=None if acls is None else tuple(acls),
        grants=None if grants is None else tuple(grants),
    )


def node(name: str, user: str | None, tags: tuple[str, ...], n: int,
         routes: tuple[str, ...] = (), exit_node: bool = False) -> Node:
    """A node with addresses 100.64.0.N and fd7a:115c:a1e0::N (hex)."""
    v4 = ipaddress.ip_address(f"100.64.0.{n}")
    v6 = ipaddress.ip_address(f"fd7a:115c:a1e0::{n:x}")
    key = base64.b64encode(hashlib.sha256(name.encode()).digest()).decode()
    return Node(name, user, tags, (v4, v6), key=key,
                routes=tuple(ipaddress.ip_network(r) for r in routes), exit_node=exit_node)


def example_inventory() -> Inventory:
    """The inventory of POLICY-FORMAT §9."""
    return Inventory.of([
        node("laptop-a", "alice@example.com", (), 1),
        node("phone-a", "alice@example.com", (), 2),
        node("laptop-b", "bob@example.com", (), 3),
        node("web", "alice@example.com", ("tag:web",), 10),
        node("db", "alice@example.com", ("tag:db",), 11),
        node("router", "bob@example.com", ("tag:router",), 20, routes=("10.1.0.0/16",)),
        node("exit", "bob@example.com", ("tag:exit",), 30, exit_node=True),
    ])


def load(text: str, name: str = "policy.hujson") -> Policy:
    """Parse and build a policy through the real front end; fail on any error."""
    try:
        from policyc.policy.load import load_policy_text
    except ImportError:  # the loader lands separately; the builder is enough
        load_policy_text = None
    if load_policy_text is not None:
        built, diags = load_policy_text(text, name)
    else:
        from policyc.diagnostics.diagnostics import Diagnostics
        from policyc.grammar.hujson import parse
        from policyc.policy.build import build_policy

        source, diags = SourceFile(name, text), Diagnostics()
        built = build_policy(parse(source, diags), source, diags)
    assert built is not None and not diags.has_errors, [str(d) for d in diags]
    return built


def ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


# --- hypothesis: random tailnets and policies --------------------------------------

USERS = ("alice@example.com", "bob@example.com", "carol@example.com")
# A user of another domain, so `user:*@example.com` is not just autogroup:member.
OTHER_DOMAIN_USER = "dave@example.org"
DOMAIN_WILDCARDS = ("user:*@example.com", "user:*@example.org")
TAGS = ("tag:web", "tag:db", "tag:ci")
ROUTER_TAG, EXIT_TAG = "tag:router", "tag:exit"
ROUTES = ("10.1.0.0/16", "10.1.2.0/24", "10.2.0.0/24", "192.168.7.0/24", "fd00:1::/64")
# Destinations outside the tailnet the property tests probe.
ROUTE_PROBES = ("10.1.2.3", "10.1.255.1", "10.2.0.9", "192.168.7.7", "10.3.0.1", "10.1.0.7",
                "fd00:1::5")
INTERNET_PROBES = ("8.8.8.8", "1.1.1.1", "2606:4700::1111")
HOSTS = {"nas": "10.1.2.3", "lan": "10.1.0.0/16", "dns": "8.8.8.8", "v6box": "fd7a:115c:a1e0::3",
         "v6net": "fd7a:115c:a1e0::/120"}
IPSETS = {"ipset:office": ["10.1.2.0/24", "nas", "100.64.0.3-100.64.0.5", "fd7a:115c:a1e0::4"]}


# --- hypothesis: node addresses next to each other ---------------------------------

V4_BASE = int(ipaddress.IPv4Address("100.64.0.0"))
V6_BASE = int(ipaddress.IPv6Address("fd7a:115c:a1e0::"))
# Address offsets (from the bases above) where prefix covers split and merge: the
# first addresses, both sides of a /24 and a /16 (v4), of 16 and 32 bits (v6).
SPREAD4 = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 254, 255, 256, 257, 0xFFFE, 0xFFFF, 0x10000)
SPREAD6 = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0xFFFE, 0xFFFF, 0x10000, 0x10001, 0xFFFFFFFF,
           0x100000000)
# Where a spread tailnet's nodes cluster: 8 addresses from one of these (straddling a
# boundary for all but the first).
CLUSTERS4 = (0, 252, 0xFFFC)
CLUSTERS6 = (0, 0xFFFC, 0xFFFFFFFC)
# Ways from an address to one near it: both neighbours, two away, its /31 (/127)
# partner and the rest of its /30 and /29, the next /30 and /29 up, the one before its
# /30 (what it merges with into a larger prefix, or what splits one).
NEAR = (lambda a: a - 1, lambda a: a + 1, lambda a: a - 2, lambda a: a + 2,
        lambda a: a ^ 1, lambda a: a ^ 2, lambda a: a ^ 3, lambda a: a ^ 4, lambda a: a ^ 7,
        lambda a: (a | 3) + 1, lambda a: (a | 7) + 1, lambda a: (a & ~3) - 1)
FRESH_BAND = range(60, 80)  # offsets the index tests give fresh nodes (60 + step)
# Approved routes over node addresses (a router's own among them).
NODE_ROUTES = ("100.64.0.0/30", "100.64.0.4/31", "100.64.0.32/27", "100.64.1.0/24",
               "fd7a:115c:a1e0::/126", "fd7a:115c:a1e0::8/125")


def addresses(v4: int | None, v6: int | None) -> tuple[ipaddress.IPv4Address
                                                     | ipaddress.IPv6Address, ...]:
    """A node's addresses at these offsets from the tailnet bases (None: not that family)."""
    out: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
    if v4 is not None:
        out.append(ipaddress.IPv4Address(V4_BASE + v4))
    if v6 is not None:
        out.append(ipaddress.IPv6Address(V6_BASE + v6))
    return tuple(out)


def offsets(nodes: list[Node], v6: bool) -> set[int]:
    base = V6_BASE if v6 else V4_BASE
    return {int(a) - base for n in nodes for a in n.ips if (a.version == 6) == v6}


@st.composite
def near_offset(draw: st.DrawFn, taken: set[int], v6: bool) -> int | None:
    """A free address offset next to (or a few bits from) a taken one or a boundary;
    None when the one drawn is taken (or in the fresh band: a later join's)."""
    boundaries = SPREAD6 if v6 else SPREAD4
    anchor = draw(st.sampled_from(sorted(taken)) | st.sampled_from(boundaries) if taken
                  else st.sampled_from(boundaries))
    found = draw(st.sampled_from(NEAR))(anchor)
    top = (1 << 80) if v6 else (1 << 22)
    if found in taken or found in FRESH_BAND or not 0 <= found < top:
        return None
    return found


@st.composite
def near_addresses(draw: st.DrawFn, nodes: list[Node],
                   fallback: tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...]
                   ) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...]:
    """Addresses for a node joining or moving among `nodes` (its own excluded by the
    caller), next to theirs: one or both families; `fallback` if none drawn is free."""
    family = draw(st.sampled_from(("both", "both", "v4", "v6")))
    v4 = draw(near_offset(offsets(nodes, False), False)) if family != "v6" else None
    v6 = draw(near_offset(offsets(nodes, True), True)) if family != "v4" else None
    found = addresses(v4, v6)
    return found if found else fallback


@st.composite
def clustered(draw: st.DrawFn, bases4: tuple[int, ...], bases6: tuple[int, ...]
              ) -> list[tuple[int, int]]:
    """(v4, v6) offsets of 3-8 nodes, most among 8 addresses from one base per family
    (each taken or not: runs, gaps of one, aligned blocks or not), one maybe at a
    boundary further off."""
    base4, base6 = draw(st.sampled_from(bases4)), draw(st.sampled_from(bases6))
    taken = st.sampled_from((True, True, True, False))
    v4 = [base4 + k for k, on in enumerate(draw(st.lists(taken, min_size=8, max_size=8)))
          if on][:7]
    far4 = draw(st.sampled_from(SPREAD4))
    if far4 not in v4 and (len(v4) < 3 or draw(st.booleans())):
        v4.append(far4)
    v4 = (v4 + [k for k in SPREAD4 if k not in v4])[:max(3, len(v4))]
    v6 = [base6 + k for k in draw(st.permutations(range(8)))]
    if draw(st.booleans()):  # one further off
        far6 = draw(st.sampled_from(SPREAD6))
        v6 = [*[x for x in v6 if x != far6][:len(v4) - 1], far6]
    v6 = v6[:len(v4)]
    return list(zip(draw(st.permutations(v4)), v6, strict=True))


@st.composite
def tailnets(draw: st.DrawFn, with_exit: bool | None = None, spread: bool = False,
             route_choices: tuple[str, ...] = ROUTES,
             tag_sets: tuple[tuple[str, ...], ...] | None = None) -> Inventory:
    """2-8 nodes: users' devices, tagged servers, maybe a subnet router and an exit node.

    `with_exit` forces the exit node in (True) or out (False); None draws it.
    `spread`: the users' and servers' addresses cluster next to each other (runs with
    gaps, across /31 to /16 boundaries; `clustered`), not 1, 2, 3...; routers approve routes
    drawn from `route_choices`; `tag_sets`: the users' and servers' tags are one of
    these (by default any of `TAGS`).
    """
    places = draw(clustered(CLUSTERS4, CLUSTERS6)) if spread else None
    count = len(places) if places is not None else draw(st.integers(2, 6))
    nodes: list[Node] = []
    for i in range(count):
        user = draw(st.sampled_from((*USERS, *USERS, OTHER_DOMAIN_USER)))
        tags = tuple(sorted(draw(st.sets(st.sampled_from(TAGS), max_size=3)
                                 if tag_sets is None else st.sampled_from(tag_sets))))
        made = node(f"n{i}", user, tags, i + 1)
        if places is not None:
            made = replace(made, ips=addresses(*places[i]))
        family = draw(st.sampled_from(("both", "both", "v4", "v6")))  # single-stack nodes too
        if family != "both":
            made = replace(made, ips=made.ips[:1] if family == "v4" else made.ips[1:])
        nodes.append(made)
    for k in range(draw(st.integers(0, 2))):  # subnet routers, maybe overlapping
        routes = tuple(sorted(draw(st.sets(st.sampled_from(route_choices), min_size=1,
                                           max_size=2))))
        tag = draw(st.sampled_from((ROUTER_TAG, "tag:web")))
        nodes.append(node("router" if k == 0 else f"router{k}", draw(st.sampled_from(USERS)),
                          (tag,), 40 + k, routes=routes))
    if with_exit if with_exit is not None else draw(st.booleans()):
        nodes.append(node("exit", draw(st.sampled_from(USERS)), (EXIT_TAG,), 50,
                          exit_node=True))
    return Inventory.of(nodes)


SRC_ALIASES = (*USERS, *DOMAIN_WILDCARDS, *TAGS, ROUTER_TAG, EXIT_TAG, "group:eng", "group:ops",
               "group:empty", "*", "autogroup:member", "autogroup:tagged", "nas", "lan", "v6box",
               "100.64.0.1", "10.1.0.0/16", "fd7a:115c:a1e0::2", "ipset:office",
               "100.64.0.1-100.64.0.3", "10.1.0.5-10.1.0.9", "v6net", "autogroup:danger-all",
               "fd00:1::5")
DST_ALIASES = (*USERS, *DOMAIN_WILDCARDS, *TAGS, ROUTER_TAG, EXIT_TAG, "group:eng", "group:ops",
               "*", "autogroup:member", "autogroup:tagged", "autogroup:internet", "nas", "lan",
               "dns", "v6box", "100.64.0.2", "10.2.0.0/24", "192.168.7.0/25", "8.8.8.0/24",
               "fd7a:115c:a1e0::1", "ipset:office", "100.64.0.1-100.64.0.3",
               "10.1.0.5-10.1.0.9", "v6net", "fd00:1::/64")
SELF_SOURCES = (*USERS, "user:*@example.com", "group:eng", "group:ops", "autogroup:member",
                "*")
PORT_TEXTS = ("*", "22", "80,443", "1000-2000", "22,8000-8100", "53")
ACL_PROTOS = (None, "tcp", "udp", "icmp", "ipv6-icmp", "sctp", "gre", "6", "17", "47", "igmp",
              "132")
GRANT_IPS = ("*", "22", "tcp:443", "udp:53", "icmp:*", "tcp:1000-2000", "gre:*", "80,443",
             "sctp:9", "47:*", "6:22", "igmp:*", "17:53")
PORTLESS_PROTOS = frozenset({"icmp", "ipv6-icmp", "gre", "47", "igmp"})
VIA_TAGS = (ROUTER_TAG, EXIT_TAG, "tag:web")


@st.composite
def acl_rules(draw: st.DrawFn) -> dict[str, object]:
    proto = draw(st.sampled_from(ACL_PROTOS))
    self_rule = draw(st.integers(0, 5)) == 0
    if self_rule:
        src = draw(st.lists(st.sampled_from(SELF_SOURCES), min_size=1, max_size=2))
        dst_aliases = ["autogroup:self"]
        if draw(st.booleans()):  # self next to an ordinary destination
            dst_aliases.append(draw(st.sampled_from(DST_ALIASES)))
    else:
        src = draw(st.lists(st.sampled_from(SRC_ALIASES), min_size=1, max_size=3))
        dst_aliases = draw(st.lists(st.sampled_from(DST_ALIASES), min_size=1, max_size=3))
    dst = []
    for dst_alias in dst_aliases:
        port_text = "*" if proto in PORTLESS_PROTOS else draw(st.sampled_from(PORT_TEXTS))
        dst.append(f"{dst_alias}:{port_text}")
    rule: dict[str, object] = {"action": "accept", "src": src, "dst": dst}
    if proto is not None:
        rule["proto"] = proto
    return rule


@st.composite
def grant_rules(draw: st.DrawFn) -> dict[str, object]:
    kind = draw(st.integers(0, 6))  # 0: self, 1: via, 2: app, else plain
    if kind == 0:
        src = draw(st.lists(st.sampled_from(SELF_SOURCES[:-1]), min_size=1, max_size=2))
        dst = ["autogroup:self"]
    else:
        src = draw(st.lists(st.sampled_from(SRC_ALIASES), min_size=1, max_size=3))
        dst = draw(st.lists(st.sampled_from(DST_ALIASES), min_size=1, max_size=3))
    ips = draw(st.lists(st.sampled_from(GRANT_IPS), min_size=1, max_size=2, unique=True))
    rule: dict[str, object] = {"src": src, "dst": dst, "ip": ips}
    if kind == 1:
        rule["via"] = draw(st.lists(st.sampled_from(VIA_TAGS), min_size=1, max_size=2,
                                    unique=True))
    if kind == 2:
        rule["app"] = {"example.com/cap/x": [{}]}
        rule["dst"] = [d for d in dst if d != "autogroup:internet"] or ["*"]
        if draw(st.booleans()):
            del rule["ip"]
    return rule


@st.composite
def policies(draw: st.DrawFn) -> str:
    """A random, valid policy as HuJSON text (with a comment and a trailing comma)."""
    doc: dict[str, object] = {
        "groups": {
            "group:eng": sorted(draw(st.sets(st.sampled_from(USERS), max_size=2))),
            "group:ops": sorted(draw(st.sets(st.sampled_from((*USERS, DOMAIN_WILDCARDS[1])),
                                             max_size=2))),
            "group:empty": [],
        },
        "tagOwners": {t: ["alice@example.com"] for t in (*TAGS, ROUTER_TAG, EXIT_TAG)},
        "hosts": HOSTS,
        "ipsets": IPSETS,
    }
    shape = draw(st.sampled_from(("acls", "grants", "both", "none", "empty")))
    if shape in ("acls", "both"):
        doc["acls"] = draw(st.lists(acl_rules(), min_size=1, max_size=4))
    if shape in ("grants", "both"):
        doc["grants"] = draw(st.lists(grant_rules(), min_size=1, max_size=3))
    if shape == "empty":
        doc["acls"] = []
    text = json.dumps(doc, indent=2)
    # HuJSON extras, so the parser's comment and trailing-comma paths run too.
    return "// generated\n" + text[:-2] + ",\n}"


# --- hypothesis: SSH rules --------------------------------------------------------------

SSH_USER_SOURCES = (*USERS, "group:eng", "group:ops", "group:empty", "autogroup:member")
SSH_TAG_SOURCES = (*TAGS, ROUTER_TAG, "autogroup:tagged")
SSH_TAG_DESTINATIONS = (*TAGS, ROUTER_TAG, EXIT_TAG, "autogroup:tagged")
SSH_LOGINS = ("root", "autogroup:nonroot", "ubuntu", "alice", "localpart:*@example.com")
# Local users the property tests ask for: the named ones, localparts, and strangers.
SSH_PROBE_USERS = ("root", "ubuntu", "alice", "bob", "carol", "deploy")


@st.composite
def ssh_rules(draw: st.DrawFn) -> dict[str, object]:
    """A valid SSH rule: tagged sources reach only tagged destinations, and only
    with "accept" (§6)."""
    tagged = draw(st.booleans())
    if tagged:
        src = draw(st.lists(st.sampled_from(SSH_TAG_SOURCES), min_size=1, max_size=2))
        dst = draw(st.lists(st.sampled_from(SSH_TAG_DESTINATIONS), min_size=1, max_size=2))
    else:
        src = draw(st.lists(st.sampled_from(SSH_USER_SOURCES), min_size=1, max_size=2))
        choices = [*SSH_TAG_DESTINATIONS, "autogroup:self", "autogroup:member"]
        if len(src) == 1 and src[0] in USERS:
            choices.append(src[0])  # a user destination needs that same user as source
        dst = draw(st.lists(st.sampled_from(choices), min_size=1, max_size=2))
    # A check rule may not have tagged sources (KB: "An SSH access rule from a
    # tagged device cannot be in check mode").
    actions = ("accept",) if tagged else ("accept", "check")
    rule: dict[str, object] = {
        "action": draw(st.sampled_from(actions)), "src": src, "dst": dst,
        "users": draw(st.lists(st.sampled_from(SSH_LOGINS), min_size=1, max_size=3,
                               unique=True)),
    }
    if draw(st.integers(0, 3)) == 0:
        rule["acceptEnv"] = ["GIT_*"]
    return rule


@st.composite
def ssh_policies(draw: st.DrawFn) -> str:
    """A valid policy with 1-4 SSH rules (and an allow-all grant, so TCP/22 is open)."""
    doc: dict[str, object] = {
        "groups": {
            "group:eng": sorted(draw(st.sets(st.sampled_from(USERS), max_size=2))),
            "group:ops": sorted(draw(st.sets(st.sampled_from(USERS), max_size=2))),
            "group:empty": [],
        },
        "tagOwners": {t: ["alice@example.com"] for t in (*TAGS, ROUTER_TAG, EXIT_TAG)},
        "grants": [{"src": ["*"], "dst": ["*"], "ip": ["*"]}],
        "ssh": draw(st.lists(ssh_rules(), min_size=1, max_size=4)),
    }
    return json.dumps(doc, indent=2)

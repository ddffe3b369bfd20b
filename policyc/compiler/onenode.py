"""One node's netmap without compiling the tailnet (`nft`, `enforce`, `drift`,
`compile --node`).

`node_netmap(policy, inventory, name)` equals `compile_policy(policy,
inventory).netmaps[name]` (wire bytes, SSH policy, cap map: the property tests
compare them for every node of random tailnets), but builds only what node N's
netmap reads:

- its filter: the rules whose destinations concern N, each with only the
  DstPorts entries reduction keeps for N (found from N's addresses: for an
  identity alias, the run of member addresses around N's address, so a
  3,000-node group is not split into prefixes), plus the rules with the same
  SrcIPs and protocols elsewhere in the policy, which decide where a merged
  rule sits (found by a membership signature over sample nodes, then text);
  its autogroup:self and via rules;
- its peers: the other side of every rule N is a source or destination of
  (node bitsets per alias, skipped once N already sees every node), its
  owner's autogroup:self edges, via routers; the routes N may use through a
  routed peer from the destination sets of the rules N is a source of;
- its SSH policy and capabilities (`SshCompiler`, `NodeAttrCompiler`).

Membership of N in an identity alias (users, groups, tags, autogroups) is a
test on N alone (`livestage.identity_match`); other aliases are resolved.
The leaf functions are `compile_policy`'s: alias resolution, `UnitCompiler`
for SrcIPs and CapGrant rules, `interval_parts` for prefixes, `self_rules`,
`via_rules`, `merge_rules`, `Reduction`/`node_filter`, `add_usable_routes`,
`routed_peer`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field

from policyc.collector import paused_collector
from policyc.compiler.addrpatch import bits_of
from policyc.compiler.addrset import ALL, AddressSet, Interval, interval_parts, union_all
from policyc.compiler.compiler import (
    ALLOW_ALL,
    base_peer,
    policy_version,
    routed_peer,
    served_routes,
)
from policyc.compiler.grants import (
    INTERNET_PREFIXES,
    CompiledUnit,
    SelfPart,
    Unit,
    UnitCompiler,
    expand_units,
    is_self,
)
from policyc.compiler.internet import INTERNET
from policyc.compiler.livestage import identity_match
from policyc.compiler.nodeattrs import NodeAttrCompiler
from policyc.compiler.nodes import Inventory
from policyc.compiler.peers import Edge, PeerGraph, add_usable_routes, bits_to_indexes
from policyc.compiler.pernode import (
    NodeView,
    OwnerSources,
    Reduction,
    entry_concerns,
    node_filter,
    owner_self_rules,
    via_rules,
    via_served,
)
from policyc.compiler.resolve import DANGER_ALL, INTERNET_GROUP, Resolver
from policyc.compiler.rules import DstEntry, Rule, merge_rules
from policyc.compiler.sshpolicy import NO_CONTROL_URL, SshCompiler
from policyc.netmap import ALL_PORTS, FilterRule, NodeNetmap, PortRange
from policyc.policy.model import Alias, AutoGroupRef, IPAddress, Policy, Wildcard

EVERYONE = -1  # a destination bitset holding every node (see `_route_edges`)
SAMPLES = 48  # nodes whose membership signs a source set (more: fewer text compares)
SCAN_MISSING = 512  # test an identity alias on the nodes N does not peer with yet, up to this
MergeKey = tuple[tuple[str, ...], tuple[int, ...]]


def node_netmap(policy: Policy, inventory: Inventory, name: str, *,
                control_url: str = NO_CONTROL_URL) -> NodeNetmap:
    """`compile_policy(policy, inventory).netmaps[name]`, computing only that node.
    KeyError for a name the inventory does not hold."""
    position = _position(inventory, name)
    with paused_collector():  # an acyclic graph of small objects (collector.py)
        return OneNode(policy, inventory, position, control_url).netmap()


@dataclass(frozen=True, slots=True)
class NodeFilter:
    """The filter side of `node_netmap`: what enforcing it reads (`nft`, `drift`)."""

    node: str
    addresses: tuple[str, ...]
    routes: tuple[str, ...]
    packet_filter: tuple[FilterRule, ...]


def node_packet_filter(policy: Policy, inventory: Inventory, name: str) -> NodeFilter:
    """`node_netmap`'s node, addresses, routes and packet filter, without working out
    its peers (a member of a dense tailnet's big groups has thousands), SSH policy
    or capabilities. KeyError for a name the inventory does not hold."""
    position = _position(inventory, name)
    with paused_collector():
        one = OneNode(policy, inventory, position, peers=False)
        return NodeFilter(one.node.name, one.addresses(), served_routes(one.node),
                          one.packet_filter())


def _position(inventory: Inventory, name: str) -> int:
    position = next((i for i, n in enumerate(inventory.nodes) if n.name == name), None)
    if position is None:
        raise KeyError(name)
    return position


def _is(alias: Alias, name: str) -> bool:
    return isinstance(alias, AutoGroupRef) and alias.name == name


@dataclass(slots=True)
class _Unit:
    """One non-via unit as node N sees it."""

    k: int
    unit: Unit
    sources: list[Alias]  # without autogroup:self
    others: tuple[Alias, ...]  # destinations other than autogroup:self
    src_touch: bool  # N can send from the sources
    internet: bool  # autogroup:internet is a destination
    kept: list[list[DstEntry]] = field(default_factory=list)  # per ip cap, N's entries


class OneNode:
    """What node `me`'s netmap needs of one (policy, inventory)."""

    def __init__(self, policy: Policy, inventory: Inventory, me: int,
                 control_url: str = NO_CONTROL_URL, samples: int = SAMPLES,
                 scan_missing: int = SCAN_MISSING, *, peers: bool = True) -> None:
        self.policy = policy
        self.r = r = Resolver(policy, inventory)
        self.me = me
        self.node = node = r.nodes[me]
        self.view = NodeView(me, r.node_addrs[me], r.node_routes[me], node.exit_node, node.ips)
        self.uc = UnitCompiler(r)
        self.graph = PeerGraph(r)
        self.control_url = control_url
        self.n = len(r.nodes)
        self.everyone_else = ((1 << self.n) - 1) & ~(1 << me)
        self.exit_bits = bits_of(r.exit_nodes)
        ips = [int(ip) for n in r.nodes for ip in n.ips]
        # Identity aliases are sets of node addresses: with no address shared and
        # N without routes or exit approval, N's membership is a test on N alone.
        self.unique = len(ips) == len(set(ips))
        # Other nodes with an address N's DstPorts entries may hold (in its routes,
        # or Internet space on an exit node).
        self.near = [i for i in (r.nodes_in(self.view.routes) if node.routes else [])
                     + (r.nodes_in(INTERNET) if node.exit_node else []) if i != me]
        # No node address lies in an approved route: an identity alias's nodes are
        # exactly its members with addresses (no router overlaps their addresses).
        self.by_node = self.unique and not r.nodes_in(r.all_routes)
        self.owner_of: dict[tuple[int, int], int] = {
            (ip.version, int(ip)): i for i, n in enumerate(r.nodes) for ip in n.ips}
        self._touch: dict[tuple[str, str], bool] = {}
        self._bits: dict[tuple[str, str], int] = {}
        self._sig: dict[tuple[str, str], int] = {}
        self.with_ips = [i for i, n in enumerate(r.nodes) if n.ips]
        self.samples = self._samples(samples)
        self.scan_missing = scan_missing
        self.want_peers = peers  # False: the filter alone (no entry depends on peers)
        self.peers = 0
        self.route_sets: dict[int, AddressSet] = {}  # what N may send to, by identity
        self.route_internet = False  # N may send to the Internet (exit nodes)
        self.extra_edges: list[Edge] = []  # via and autogroup:self edges N is part of

    # --- aliases -----------------------------------------------------------------------

    def touches(self, alias: Alias) -> bool:
        """Is N in `src_bits` of the alias's set (an address in it, or a route
        overlapping it)? `*` here is its source meaning (Tailscale's ranges)."""
        key = (type(alias).__name__, str(alias))
        found = self._touch.get(key)
        if found is None:
            if self.named(alias, self.me) is not None:
                routes = self.view.routes
                found = bool(self.named(alias, self.me) and self.node.ips) or any(
                    self.named(alias, i) and routes.overlaps(self.r.node_addrs[i])
                    for i in self.near)
            else:
                found = self._overlaps_me(self.r.alias(alias))
            self._touch[key] = found
        return found

    def named(self, alias: Alias, i: int) -> bool | None:
        """Does an identity alias name node `i` (None: not an identity alias, or
        addresses are shared, so sets are not decided node by node)?"""
        return identity_match(alias, self.r.nodes[i], self.r) if self.unique else None

    def _member_addresses(self, alias: Alias) -> Iterator[tuple[int, int]]:
        """(version, address) of the identity alias's members that concern N: its
        own addresses, addresses in its routes and, on an exit node, Internet ones."""
        r = self.r
        if self.named(alias, self.me):
            yield from ((ip.version, int(ip)) for ip in self.node.ips)
        for i in self.near:
            if self.named(alias, i):
                yield from ((ip.version, int(ip)) for ip in r.nodes[i].ips
                            if self.concerns_me(ip))

    def concerns_me(self, ip: IPAddress) -> bool:
        """Would a DstPorts entry holding only `ip` concern N?"""
        return entry_concerns(AddressSet.of_address(ip), self.view)

    def _overlaps_me(self, addrs: AddressSet) -> bool:
        return addrs.overlaps(self.view.addrs) or addrs.overlaps(self.view.routes)

    def add_peers(self, alias: Alias, *, destination: bool = False) -> None:
        """OR `PeerGraph.src_bits` of the alias's set into N's peers (as a
        `destination`, `*` is every address and autogroup:internet the Internet).

        Once few nodes are left to find, an identity alias is tested on those
        nodes alone instead of being resolved (a dense tailnet's groups hold
        thousands of nodes, and the last peers come from its last rules)."""
        if not self.want_peers or self.sees_all():
            return
        if destination and (isinstance(alias, Wildcard) or _is(alias, INTERNET_GROUP)):
            self.peers |= self.graph.src_bits(ALL if isinstance(alias, Wildcard) else INTERNET)
            return
        key = (type(alias).__name__, str(alias))
        found = self._bits.get(key)
        if found is None:
            if not self.by_node or self.named(alias, self.me) is None:
                found = self.graph.src_bits(self.r.alias(alias))
            else:
                missing = self.everyone_else & ~self.peers
                if missing.bit_count() <= self.scan_missing:
                    self.peers |= bits_of(j for j in bits_to_indexes(missing)
                                          if self.named(alias, j) and self.r.nodes[j].ips)
                    return
                nodes = self.r.nodes
                found = bits_of(i for i in self.r.alias_nodes(alias) if nodes[i].ips)
            self._bits[key] = found
        self.peers |= found

    def dst_set(self, alias: Alias) -> AddressSet:
        if isinstance(alias, Wildcard):
            return ALL
        if _is(alias, INTERNET_GROUP):
            return INTERNET
        return self.r.alias(alias)

    def dst_touches(self, alias: Alias) -> bool:
        if isinstance(alias, Wildcard):
            return self._overlaps_me(ALL)
        if _is(alias, INTERNET_GROUP):
            return self._overlaps_me(INTERNET)
        return self.touches(alias)

    # --- source signatures (which units may share a SrcIPs text) ------------------------

    def _samples(self, count: int) -> list[int]:
        step = max(1, len(self.with_ips) // count)
        return self.with_ips[::step][:count]

    def _alias_sig(self, alias: Alias) -> int:
        key = (type(alias).__name__, str(alias))
        found = self._sig.get(key)
        if found is None:
            r = self.r
            if self.unique and identity_match(alias, r.nodes[0], r) is not None:
                found = bits_of(k for k, i in enumerate(self.samples)
                                if identity_match(alias, r.nodes[i], r))
            else:
                found = self.set_sig(r.alias(alias))
            self._sig[key] = found
        return found

    def set_sig(self, addrs: AddressSet) -> int:
        """Which sample nodes have an address in `addrs`."""
        node_addrs = self.r.node_addrs
        return bits_of(k for k, i in enumerate(self.samples) if node_addrs[i].overlaps(addrs))

    def unit_sig(self, unit: Unit) -> int:
        """`set_sig` of the unit's SrcIPs meaning (`UnitCompiler._sources`)."""
        if any(_is(a, DANGER_ALL) for a in unit.sources):
            return self.set_sig(ALL)
        sig = 0
        for alias in unit.sources:
            if not is_self(alias):
                sig |= self._alias_sig(alias)
        if any(isinstance(a, Wildcard) for a in unit.sources):
            sig |= self.set_sig(self.r.all_routes)
        return sig

    def sources(self, unit: Unit) -> tuple[tuple[str, ...], AddressSet]:
        """The unit's SrcIPs text and meaning, as `UnitCompiler.compile` makes them."""
        resolved = [(a, self.r.alias(a)) for a in unit.sources if not is_self(a)]
        return self.uc._sources(unit.sources, resolved, union_all(s for _, s in resolved))

    # --- N's DstPorts entries ------------------------------------------------------------

    def kept_entries(self, others: tuple[Alias, ...], ports: tuple[PortRange, ...]
                     ) -> list[DstEntry]:
        """The entries of `UnitCompiler._ip_rule` that reduction keeps for N, in order."""
        out: list[DstEntry] = []
        for alias in others:
            if isinstance(alias, Wildcard):
                out.extend(DstEntry("*", AddressSet.parse("*"), p) for p in ports)
            elif _is(alias, INTERNET_GROUP):
                out.extend(DstEntry(str(prefix), one, p) for prefix in INTERNET_PREFIXES
                           if entry_concerns(one := AddressSet.of_network(prefix), self.view)
                           for p in ports)
            else:
                for v6, interval in self._intervals(alias):
                    for text, one in self._parts(interval, v6):
                        if entry_concerns(one, self.view):
                            out.extend(DstEntry(text, one, p) for p in ports)
        return out

    def _parts(self, interval: Interval, v6: bool) -> tuple[tuple[str, AddressSet], ...]:
        return interval_parts(*interval, v6, self.uc._parts)

    def _intervals(self, alias: Alias) -> Iterator[tuple[bool, Interval]]:
        """The alias's intervals whose prefixes may concern N, v4 then v6, ascending."""
        if self.named(alias, self.me) is not None:
            # A set of member addresses: its intervals are runs of consecutive ones.
            yield from sorted({(version == 6, self._run(alias, version, address))
                               for version, address in self._member_addresses(alias)})
            return
        addrs = self.r.alias(alias)
        mine = (self.view.addrs, self.view.routes) + ((INTERNET,) if self.node.exit_node else ())
        for v6, intervals in ((False, addrs.v4), (True, addrs.v6)):
            for interval in intervals:
                one = AddressSet((), (interval,)) if v6 else AddressSet((interval,))
                if any(one.overlaps(m) for m in mine):
                    yield v6, interval

    def _run(self, alias: Alias, version: int, address: int) -> Interval:
        """The interval of an identity alias's set holding N's `address`: the run of
        consecutive addresses of nodes the alias names (`Resolver.addresses_of`)."""
        def member(a: int) -> bool:
            i = self.owner_of.get((version, a))
            return i is not None and bool(identity_match(alias, self.r.nodes[i], self.r))

        lo = hi = address
        while member(lo - 1):
            lo -= 1
        while member(hi + 1):
            hi += 1
        return lo, hi

    # --- the netmap --------------------------------------------------------------------

    def packet_filter(self) -> tuple[FilterRule, ...]:
        """N's filter (and, as the rules are read, its peers)."""
        if self.policy.allows_all:
            self._allow_all()
            return (ALLOW_ALL,)
        return tuple(self._filter())

    def addresses(self) -> tuple[str, ...]:
        return tuple(str(ip) for ip in self.node.ips)

    def netmap(self) -> NodeNetmap:
        node, r = self.node, self.r
        packet_filter = self.packet_filter()
        usable = self._usable_routes()
        base = {p: base_peer(r.nodes[p], r.ip_texts(p)) for p in bits_to_indexes(self.peers)}
        ordered = sorted(base, key=lambda p: r.nodes[p].name)
        me = self.me
        peers = tuple(routed_peer(base[p], r.nodes[p], me, p, usable) for p in ordered)
        return NodeNetmap(
            node=node.name,
            addresses=self.addresses(),
            peers=peers,
            packet_filter=packet_filter,
            ssh_policy=SshCompiler(self.policy, r, self.control_url, one_node=True).for_node(me),
            policy_version=policy_version(self.policy),
            routes=served_routes(node),
            cap_map=NodeAttrCompiler(self.policy, r).for_node(me),
        )

    def _allow_all(self) -> None:
        """`PeerGraph.add_rule(ALL, ALL, True)`: everyone reaches everyone."""
        src = self.graph.src_bits(ALL)
        dst = src | self.exit_bits
        if src >> self.me & 1:
            self.peers |= dst
            self.route_sets[id(ALL)] = ALL
            self.route_internet = True
        if src and dst >> self.me & 1:
            self.peers |= src
        self.peers &= self.everyone_else

    def _filter(self) -> list[FilterRule]:
        units = expand_units(self.policy)
        cunits = [CompiledUnit(k, u.span) for k, u in enumerate(units)]
        seen = [self._see(k, u) for k, u in enumerate(units)]
        extras = self._self_rules(units, cunits) + self._via(units, cunits)
        shared = self._shared_rules(units, [s for s in seen if s is not None], extras)
        self._internet_groups([s for s in seen if s is not None])
        self.peers &= self.everyone_else
        reduction = Reduction(merge_rules(shared), self.r, [self.view])
        return node_filter(reduction, self.view, extras)

    def _see(self, k: int, unit: Unit) -> _Unit | None:
        """A non-via unit's part in N's netmap: its peers now, its entries for later."""
        if not unit.sources or not unit.destinations or unit.via:
            return None
        sources = [a for a in unit.sources if not is_self(a)]
        others = tuple(d for d in unit.destinations if not is_self(d))
        wildcard = any(isinstance(a, Wildcard) for a in unit.sources)
        src_touch = any(self.touches(a) for a in sources) or (wildcard and bool(self.node.routes))
        seen = _Unit(k, unit, sources, others, src_touch,
                     any(_is(d, INTERNET_GROUP) for d in others))
        if not others or not unit.ip:
            return seen
        if src_touch:
            for alias in others:
                self.add_peers(alias, destination=True)
                self._may_send(alias)
        if any(self.dst_touches(d) for d in others):
            self._add_sources(sources, wildcard)
        seen.kept = [self.kept_entries(others, cap.ports or (ALL_PORTS,)) for cap in unit.ip]
        return seen

    def sees_all(self) -> bool:
        """N already peers with every node: no rule can add one."""
        return self.peers & self.everyone_else == self.everyone_else

    def _add_sources(self, sources: list[Alias], wildcard: bool) -> None:
        """N's peers gain the nodes that can send from a unit's SrcIPs."""
        for alias in sources:
            self.add_peers(alias)
        if wildcard:
            self.peers |= self.graph.src_bits(self.r.all_routes)

    def _may_send(self, alias: Alias) -> None:
        """Record a destination N may send to, for the routes it may use (an identity
        alias only when some node address lies in an approved route)."""
        if not (self.by_node and self.named(alias, self.me) is not None):
            addrs = self.dst_set(alias)
            self.route_sets.setdefault(id(addrs), addrs)

    # --- rules -------------------------------------------------------------------------

    def _shared_rules(self, units: list[Unit], seen: list[_Unit], extras: list[Rule]
                      ) -> list[Rule]:
        """The shared rules N keeps entries of, and every other rule with the same
        SrcIPs and protocols (they decide where the merged rule sits), in unit order;
        CapGrant rules of units N is part of."""
        wanted: dict[int, dict[int, list[DstEntry]]] = {}  # unit -> cap -> entries
        keys: dict[MergeKey, AddressSet] = {}
        for s in seen:
            for seq, entries in enumerate(s.kept):
                if entries:
                    texts, src = self.sources(s.unit)
                    if texts:
                        wanted.setdefault(s.k, {})[seq] = entries
                        keys[(texts, tuple(s.unit.ip[seq].protocols))] = src
        for rule in extras:
            if rule.merge_key is not None:
                keys.setdefault(rule.merge_key, rule.src)
        by_sig: dict[int, list[MergeKey]] = {}
        for key, src in keys.items():
            by_sig.setdefault(self.set_sig(src), []).append(key)
        out: list[Rule] = []
        for s in seen:
            candidates = by_sig.get(self.unit_sig(s.unit)) if s.others else None
            mine = wanted.get(s.k, {})
            if candidates or mine:
                out.extend(self._unit_rules(s, mine, set(candidates or ())))
            if s.unit.app and s.others:
                out.extend(self._cap_rules(s))
        return out

    def _unit_rules(self, s: _Unit, mine: dict[int, list[DstEntry]],
                    candidates: set[MergeKey]) -> Iterator[Rule]:
        texts, src = self.sources(s.unit)
        if not texts or not self._has_entries(s):
            return
        for seq, cap in enumerate(s.unit.ip):
            proto = tuple(cap.protocols)
            if seq in mine or (texts, proto) in candidates:
                yield Rule(texts, src, (s.k, seq), tuple(mine.get(seq, ())), proto,
                           internet=s.internet, span=s.unit.span)

    def _has_entries(self, s: _Unit) -> bool:
        """Does `UnitCompiler._ip_rule` make a rule (some destination entry)?"""
        return any(isinstance(d, Wildcard) or _is(d, INTERNET_GROUP) or self._nonempty(d)
                   for d in s.others)

    def _nonempty(self, alias: Alias) -> bool:
        if self.by_node and self.named(alias, self.me) is not None:
            found = self._bits.get((type(alias).__name__, str(alias)))
            if found is not None:  # its members with addresses
                return bool(found)
            # The first member with an address will do (groups hold thousands).
            return any(self.named(alias, j) for j in self.with_ips)
        return bool(self.r.alias(alias))

    def _cap_rules(self, s: _Unit) -> list[Rule]:
        """A unit's CapGrant rules (never merged) when N is on either side of them;
        their peer edges go through a graph of their own."""
        if not self.node.exit_node and all(self.named(a, self.me) is not None
                                           and not self.touches(a)
                                           for a in (*s.sources, *s.others)):
            return []  # identity aliases only, none naming N
        texts, src = self.sources(s.unit)
        resolved = [(a, self.r.alias(a)) for a in s.sources]
        rules = self.uc._app_rules(s.unit, (s.k, len(s.unit.ip)), texts, src, resolved,
                                   s.others)
        graph = PeerGraph(self.r)
        for rule in rules:
            graph.add_rule(rule.src, rule.dst_addrs, rule.internet)
        self.peers |= graph.peer_bits(self.me)
        self.extra_edges.extend(e for e in graph.edges if e.src_bits >> self.me & 1)
        return rules

    def _internet_groups(self, seen: list[_Unit]) -> None:
        """Merged rules reaching the Internet (autogroup:internet, or destinations
        covering it, alone or together) also reach every exit node."""
        parts: dict[MergeKey, list[tuple[_Unit, list[AddressSet]]]] = {}
        for s in seen:
            if not s.others or not s.unit.ip:
                continue
            sets = [self.dst_set(d) for d in s.others if self._may_be_internet(d)]
            if not (s.internet or sets) or not self._has_entries(s):
                continue
            texts, _ = self.sources(s.unit)
            if texts:
                for cap in s.unit.ip:
                    parts.setdefault((texts, tuple(cap.protocols)), []).append((s, sets))
        for group in parts.values():
            sets = [one for _, made in group for one in made if one.overlaps(INTERNET)]
            reaches = any(s.internet for s, _ in group) or any(
                INTERNET.issubset(one) for one in sets) or (
                bool(sets) and INTERNET.issubset(union_all(sets)))
            if not reaches:
                continue
            first = group[0][0]
            if first.src_touch:
                self.peers |= self.exit_bits
                self.route_internet = True
            if self.node.exit_node:
                wildcard = any(isinstance(a, Wildcard) for a in first.unit.sources)
                self._add_sources(first.sources, wildcard)

    def _may_be_internet(self, alias: Alias) -> bool:
        """Can the alias's set overlap Internet space? (Node addresses rarely do.)"""
        if isinstance(alias, Wildcard) or _is(alias, INTERNET_GROUP):
            return True
        r = self.r
        if self.unique and identity_match(alias, self.node, r) is not None and \
                not r.nodes_in(INTERNET):
            return False
        return r.alias(alias).overlaps(INTERNET)

    def _self_rules(self, units: list[Unit], cunits: list[CompiledUnit]) -> list[Rule]:
        """N's owner's autogroup:self rules, and the peer edges among its devices."""
        owner, r = self.node.owner, self.r
        if owner is None:
            return []
        user_nodes = list(r.by_user.get(owner, ()))
        plan: list[tuple[CompiledUnit, SelfPart, tuple[int, ...]]] = []
        for k, unit in enumerate(units):
            if unit.via or not unit.sources or not any(is_self(d) for d in unit.destinations):
                continue
            resolved = [r.alias(a) for a in unit.sources if not is_self(a)]
            merged = union_all(resolved)
            if not merged and not unit.app:
                continue
            part = SelfPart(merged, unit.ip, tuple((c.name, c.values) for c in unit.app))
            srcs = tuple(i for i in user_nodes if r.node_addrs[i].overlaps(merged))
            plan.append((cunits[k], part, srcs))
        sources = OwnerSources(r)
        rules, made = owner_self_rules(plan, user_nodes, sources)
        for srcs, made_rules in made:
            if any(rule.dst or rule.caps for rule in made_rules):
                self._edge(bits_of(srcs), bits_of(user_nodes),
                           sources.addresses(tuple(user_nodes)), False)
        return rules

    def _via(self, units: list[Unit], cunits: list[CompiledUnit]) -> list[Rule]:
        """`via` grants: N's rules as a router serving them, and the edges between
        their sources and the routers."""
        r, out = self.r, []
        unions: dict[tuple[str, ...], AddressSet] = {}  # exit nodes serve alike
        for k, unit in enumerate(units):
            if not unit.via or not unit.sources or not unit.destinations:
                continue
            sources = [a for a in unit.sources if not is_self(a)]
            wildcard = any(isinstance(a, Wildcard) for a in unit.sources)
            mine = any(self.touches(a) for a in sources) or (wildcard and bool(self.node.routes))
            tags = {t.name for t in unit.via}
            if not mine and not tags.intersection(self.node.tags):
                continue
            resolved = [(a, r.alias(a)) for a in sources]
            via = self.uc._via(unit, resolved, union_all(s for _, s in resolved))
            if via is None:
                continue
            src_bits = self.graph.src_bits(via.src)
            # Not a source: only N's own edge as a via router can concern N.
            routers = sorted({i for t in tags for i in r.by_tag.get(t, ())}) if mine else [self.me]
            for i in routers:
                view = NodeView(i, r.node_addrs[i], r.node_routes[i], r.nodes[i].exit_node,
                                r.nodes[i].ips)
                served = via_served(via, view, r.nodes[i].tags)
                if not served:
                    continue
                if i == self.me:
                    out.extend(via_rules(cunits[k], via, served))
                internet = via.internet or (
                    view.is_exit and any(a.issubset(INTERNET) for _, a in served))
                key = tuple(text for text, _ in served)
                dst = unions.get(key)
                if dst is None:
                    dst = unions[key] = union_all(a for _, a in served)
                self._edge(src_bits, 1 << i, dst, internet)
        return out

    def _edge(self, src_bits: int, dst_bits: int, dst: AddressSet, internet: bool) -> None:
        """`PeerGraph.add_edge`, kept only when N is on either side."""
        if not (src_bits and dst_bits):
            return
        me = 1 << self.me
        if src_bits & me:
            self.peers |= dst_bits
            self.extra_edges.append(Edge(me, dst_bits, (dst,), internet))
        if dst_bits & me:
            self.peers |= src_bits

    # --- routes ------------------------------------------------------------------------

    def _usable_routes(self) -> dict[tuple[int, int], int]:
        """`PeerGraph.usable_routes` for N as the sender, over N's routed peers. The
        rules N is a source of reach every router whose route their destinations
        overlap, and every exit node when they reach the Internet: one edge to
        EVERYONE stands for them all."""
        edges = [Edge(1 << self.me, EVERYONE, tuple(self.route_sets.values()),
                      self.route_internet)]
        # Via grants add one edge per router they reach (thousands): each router
        # reads only its own, not every edge.
        to_one: dict[int, list[Edge]] = defaultdict(list)
        for edge in dict.fromkeys(self.extra_edges):
            bits = edge.dst_bits
            if bits & (bits - 1):
                edges.append(edge)
            else:
                to_one[bits.bit_length() - 1].append(edge)
        usable: dict[tuple[int, int], int] = defaultdict(int)
        for p in bits_to_indexes(self.peers):
            node = self.r.nodes[p]
            if node.routes or node.exit_node:
                add_usable_routes(node, p, [*edges, *to_one.get(p, ())], usable)
        return usable

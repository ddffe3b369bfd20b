"""ACLs and grants -> unreduced rules (POLICY-FORMAT §3.1-3.2, §5.2, §5.4).

Every ACL becomes one grant per `dst` entry (non-self entries first when the
ACL names anything but autogroups, as Tailscale orders them). Each grant
compiles once into the rules every node shares; `autogroup:self` and `via`
parts are kept as `SelfPart` / `ViaPart` for the per-node stage.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from policyc.compiler.addrset import (
    ALL,
    EMPTY,
    AddressSet,
    Interval,
    PartsCache,
    interval_parts,
    union_all,
)
from policyc.compiler.internet import INTERNET
from policyc.compiler.resolve import DANGER_ALL, INTERNET_GROUP, SELF, Resolver
from policyc.compiler.rules import COMPANION_CAPS, CapEntry, DstEntry, Order, Rule
from policyc.diagnostics.source import NO_SPAN, Span
from policyc.netmap import ALL_PORTS, PortRange
from policyc.policy.model import (
    AclRule,
    Alias,
    AppCapability,
    AutoGroupRef,
    IPCapability,
    IPNetwork,
    Policy,
    TagRef,
    Wildcard,
)


@dataclass(frozen=True, slots=True)
class Unit:
    """One grant, or one `dst` entry of an ACL seen as a grant."""

    sources: tuple[Alias, ...]
    destinations: tuple[Alias, ...]
    ip: tuple[IPCapability, ...] = ()
    app: tuple[AppCapability, ...] = ()
    via: tuple[TagRef, ...] = ()
    span: Span = NO_SPAN


@dataclass(frozen=True, slots=True)
class SelfPart:
    """autogroup:self destinations: expanded per destination user later."""

    sources: AddressSet  # all resolved sources, merged
    ip: tuple[IPCapability, ...]
    app: tuple[tuple[str, object], ...]


@dataclass(frozen=True, slots=True)
class ViaPart:
    """A `via` grant: rules only on via-tagged routers serving the dst."""

    tags: frozenset[str]
    src_ips: tuple[str, ...]
    src: AddressSet
    dst_prefixes: tuple[AddressSet, ...]
    dst_texts: tuple[str, ...]
    internet: bool
    ip: tuple[IPCapability, ...]


@dataclass(slots=True)
class CompiledUnit:
    index: int
    span: Span
    rules: list[Rule] = field(default_factory=list)
    self_part: SelfPart | None = None
    via: ViaPart | None = None


def is_self(alias: Alias) -> bool:
    return isinstance(alias, AutoGroupRef) and alias.name == SELF


def _is_autogroup(alias: Alias, name: str) -> bool:
    return isinstance(alias, AutoGroupRef) and alias.name == name


def expand_units(policy: Policy) -> list[Unit]:
    """Grants first, then ACLs, each ACL split per destination."""
    units = [
        Unit(g.sources, g.destinations, g.ip, g.app, g.via, g.span) for g in policy.grants or ()
    ]
    for acl in policy.acls or ():
        units.extend(_acl_units(acl))
    return units


def _acl_units(acl: AclRule) -> list[Unit]:
    dsts = list(acl.destinations)
    if any(not isinstance(d.alias, AutoGroupRef) for d in dsts):
        dsts = [d for d in dsts if not is_self(d.alias)] + [d for d in dsts if is_self(d.alias)]
    return [
        Unit(acl.sources, (d.alias,), (IPCapability(acl.protocols, d.ports, span=d.span),),
             span=acl.span)
        for d in dsts
    ]


class UnitCompiler:
    """Compiles units against one resolver; shared rules are built once."""

    def __init__(self, resolver: Resolver) -> None:
        self.r = resolver
        self._entries: dict[tuple[AddressSet, tuple[PortRange, ...]], tuple[DstEntry, ...]] = {}
        self._parts: PartsCache = {}
        # (ports, is IPv6) -> interval -> its entries
        self._interval_entries: dict[tuple[tuple[PortRange, ...], bool],
                                     dict[Interval, tuple[DstEntry, ...]]] = {}
        self._source_texts: dict[tuple[object, ...], tuple[tuple[str, ...], AddressSet]] = {}
        self._prefix_cache: dict[AddressSet, tuple[IPNetwork, ...]] = {}

    def compile(self, index: int, unit: Unit) -> CompiledUnit:
        out = CompiledUnit(index, unit.span)
        if not unit.sources or not unit.destinations:
            return out  # literally empty src or dst: nothing at all
        resolved = [(a, self.r.alias(a)) for a in unit.sources if not is_self(a)]
        merged = union_all(s for _, s in resolved)
        if unit.via:
            out.via = self._via(unit, resolved, merged)
            return out
        if not merged and not unit.app:
            return out
        src_ips, src = self._sources(unit.sources, resolved, merged)
        others = tuple(d for d in unit.destinations if not is_self(d))
        seq = 0
        if others:
            for cap in unit.ip:
                rule = self._ip_rule(unit, (index, seq), src_ips, src, others, cap)
                seq += 1
                if rule is not None:
                    out.rules.append(rule)
            if unit.app:
                out.rules.extend(self._app_rules(unit, (index, seq), src_ips, src, resolved,
                                                 others))
        if any(is_self(d) for d in unit.destinations):
            app = tuple((c.name, c.values) for c in unit.app)
            out.self_part = SelfPart(merged, unit.ip, app)
        return out

    # --- sources -----------------------------------------------------------------

    def _sources(self, aliases: tuple[Alias, ...], resolved: list[tuple[Alias, AddressSet]],
                 merged: AddressSet) -> tuple[tuple[str, ...], AddressSet]:
        """SrcIPs text and its meaning: `*` adds every approved route, one by one.

        Cached per source list: many rules share their sources (a group).
        """
        key = (bool(resolved), *((type(a).__name__, str(a)) for a in aliases))
        cached = self._source_texts.get(key)
        if cached is None:
            cached = self._source_texts[key] = self._make_sources(aliases, resolved, merged)
        return cached

    def _make_sources(self, aliases: tuple[Alias, ...], resolved: list[tuple[Alias, AddressSet]],
                      merged: AddressSet) -> tuple[tuple[str, ...], AddressSet]:
        if any(_is_autogroup(a, DANGER_ALL) for a in aliases):
            return ("*",), AddressSet.parse("*")
        if not merged:
            return (), EMPTY
        wildcard = any(isinstance(a, Wildcard) for a in aliases)
        if len(resolved) == 1 and not wildcard:
            # One set's texts come sorted and distinct (most rules name one group).
            return tuple(self.r.texts(merged)), merged
        texts = set(self.r.texts(merged))
        src = merged
        if wildcard:
            texts.update(self.r.route_texts)
            src = src | self.r.all_routes
            # Tailscale keeps explicit sources next to the wildcard ranges.
            for alias, addrs in resolved:
                if not isinstance(alias, Wildcard):
                    texts.update(self.r.texts(addrs))
        return tuple(sorted(texts)), src

    # --- ip -> DstPorts ------------------------------------------------------------

    def _ip_rule(self, unit: Unit, order: Order, src_ips: tuple[str, ...], src: AddressSet,
                 dsts: tuple[Alias, ...], cap: IPCapability) -> Rule | None:
        ports = cap.ports or (ALL_PORTS,)
        entries: list[DstEntry] = []
        sets: list[AddressSet] = []  # what the entries cover, for Rule.dst_sets
        internet = False
        for alias in dsts:
            if isinstance(alias, Wildcard):
                entries.extend(DstEntry("*", AddressSet.parse("*"), p) for p in ports)
                sets.append(ALL)
            elif _is_autogroup(alias, INTERNET_GROUP):
                # Delivered to exit nodes only (POLICY-FORMAT 5.3): the public
                # Internet prefixes, which reduction keeps for approved exits.
                internet = True
                entries.extend(DstEntry(str(p), AddressSet.of_network(p), port)
                               for p in INTERNET_PREFIXES for port in ports)
                sets.append(INTERNET)
            else:
                addrs = self.r.alias(alias)
                entries.extend(self._prefix_entries(addrs, ports))
                sets.append(addrs)
        if not src_ips or not (entries or internet):
            return None
        return Rule(src_ips, src, order, tuple(entries), tuple(cap.protocols),
                    internet=internet, span=unit.span, dst_sets=tuple(sets))

    def _prefix_entries(self, addrs: AddressSet, ports: tuple[PortRange, ...]) -> list[DstEntry]:
        """DstPorts entries for a set, shared by every rule naming the same set and
        ports (a tag reached by a hundred rules is split into prefixes once)."""
        key = (addrs, ports)
        cached = self._entries.get(key)
        if cached is None:
            # One object per prefix across all sets (so later stages can key by
            # identity), and the entries of an interval made once per port list:
            # groups share most of their intervals.
            out: list[DstEntry] = []
            parts = self._parts
            for v6, intervals in ((False, addrs.v4), (True, addrs.v6)):
                table = self._interval_entries.setdefault((ports, v6), {})
                for interval in intervals:
                    made = table.get(interval)
                    if made is None:
                        made = table[interval] = tuple(
                            DstEntry(text, one, p)
                            for text, one in interval_parts(*interval, v6, parts) for p in ports)
                    out += made
            cached = self._entries[key] = tuple(out)
        return list(cached)

    # --- app -> CapGrant -------------------------------------------------------------

    def _app_rules(self, unit: Unit, order: Order, src_ips: tuple[str, ...], src: AddressSet,
                   resolved: list[tuple[Alias, AddressSet]],
                   dsts: tuple[Alias, ...]) -> list[Rule]:
        cap_map = tuple((c.name, c.values) for c in unit.app)
        caps = [CapEntry(self._prefixes(addrs), cap_map, addrs)
                for addrs in map(self.r.alias, dsts)]
        rules = [Rule(src_ips, src, order, caps=tuple(caps), span=unit.span)]
        names = {name for name, _ in cap_map}
        if names.intersection(COMPANION_CAPS):  # only drive/relay reverse the grant
            dst_texts = [t for alias in dsts for t in self.r.texts(self.r.alias(alias))]
            if any(isinstance(a, Wildcard) for a in dsts):
                dst_texts.extend(self.r.route_texts)
            src_prefixes = tuple(p for _, addrs in resolved for p in addrs.to_prefixes())
            rules.extend(companion_rules(order, dst_texts, src_prefixes, names, unit.span))
        return rules

    def _prefixes(self, addrs: AddressSet) -> tuple[IPNetwork, ...]:
        """A CapGrant destination's prefixes, made once per set (a tag named by a
        hundred app grants has a few hundred node addresses)."""
        made = self._prefix_cache.get(addrs)
        if made is None:
            made = self._prefix_cache[addrs] = tuple(addrs.to_prefixes())
        return made

    # --- via ---------------------------------------------------------------------------

    def _via(self, unit: Unit, resolved: list[tuple[Alias, AddressSet]],
             merged: AddressSet) -> ViaPart | None:
        if not (unit.ip or unit.app) or not merged:
            return None
        src_ips, src = self._sources(unit.sources, [], merged)
        prefixes: list[AddressSet] = []
        texts: list[str] = []
        internet = False
        for alias in unit.destinations:
            if _is_autogroup(alias, INTERNET_GROUP):
                internet = True
                continue
            if isinstance(alias, Wildcard):
                # `*` is every address: through the via routers, every route they
                # serve and, on via exit nodes, the Internet. (`self.r.alias(*)` is
                # the source meaning, Tailscale's own ranges, which no route holds.)
                internet = True
                for text in self.r.route_texts:
                    prefixes.append(AddressSet.parse(text))
                    texts.append(text)
                continue
            for prefix in self.r.alias(alias).to_prefixes():
                prefixes.append(AddressSet.of_network(prefix))
                texts.append(str(prefix))
        return ViaPart(frozenset(t.name for t in unit.via), src_ips, src, tuple(prefixes),
                       tuple(texts), internet, unit.ip)


def companion_rules(order: Order, dst_texts: list[str], src_prefixes: tuple[IPNetwork, ...],
                    cap_names: set[str], span: Span) -> list[Rule]:
    """Reversed rules for drive/relay: the destinations get the companion cap."""
    out: list[Rule] = []
    texts = tuple(sorted(set(dst_texts)))
    src = union_all(AddressSet.parse(t) for t in texts)
    for name in sorted(cap_names):
        companion = COMPANION_CAPS.get(name)
        if companion is None:
            continue
        cap = CapEntry(src_prefixes, ((companion, None),))
        out.append(Rule(texts, src, order, caps=(cap,), span=span))
    return out


INTERNET_PREFIXES = tuple(INTERNET.to_prefixes())

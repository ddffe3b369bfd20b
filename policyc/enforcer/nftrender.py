"""NodeNetmap -> the nftables JSON of table `inet policyc` (pure, deterministic).

Layout (see docs/enforcement.md): a two-stage lookup. Sources are grouped
into classes (nftsets); the class decides on (destination, protocol, port).
Each class is written in the layout that loads cheapest:

* direct (direct_classes: S source intervals x E entries <= S + E +
  DIRECT_SLACK): its S x E (source . destination . protocol [. port])
  elements go into two shared sets per direction and family, looked up in
  the mesh chain; no map entry, chain or set of its own;
* otherwise the source map jumps to a class chain, where entries are plain
  rules (`ip daddr D tcp dport P accept`, `ip daddr D meta l4proto 47
  accept`) as far as the INLINE_RULES budget goes (inline_kinds), and a
  kind that does not fit is a named set keyed without the source.

    table inet policyc
      counter in_dropped, fwd_dropped
      set in4_direct_ports  ipv4_addr . ipv4_addr . inet_proto . inet_service (interval)
      set in4_direct_proto  ipv4_addr . ipv4_addr . inet_proto                 (interval)
      map in_src4   ipv4_addr : verdict (interval)   source -> jump in4_cN
      set in4_cN_ports  ipv4_addr . inet_proto . inet_service  (interval)  large classes only
      set in4_cN_proto  ipv4_addr . inet_proto                 (interval)  large classes only
      in6_*, fwd4_*, fwd6_* likewise
      chain input   (hook input)   iifname IFACE jump mesh_in
      chain forward (hook forward) iifname IFACE jump mesh_fwd; oifname IFACE <pickup reject>
      chain output  (hook output)  oifname IFACE <pickup reject>
      chain mesh_in / mesh_fwd: established accept, [ND], invalid drop,
            direct lookups (v4, v6), ip saddr vmap @in_src4, ip6 saddr vmap @in_src6,
            log, count, drop
      chain in4_cN: plain rules and/or set lookups, accept (marking the conntrack entry)

Why: nft and the kernel find a named set by walking a list, so thousands of
per-class sets (anonymous `{ }` sets too) load in time quadratic in the
class count; direct elements and plain rules need no set per class. Per
packet: at most two direct lookups, the source map, and INLINE_RULES + 1
rules in a class chain.

A class chain is entered with `jump`, so a packet that matches none of its
rules returns to mesh_in and is logged, counted and dropped there.

The expressions are written in the form `nft -j list` prints them (nftapply
also normalises the one re-spelling it knows), so a read-back compares
equal rule by rule.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from policyc.diagnostics.diagnostics import Diagnostics
from policyc.diagnostics.source import NO_SPAN
from policyc.enforcer.nftsets import (
    MAX_ADDR,
    ClassSets,
    FamilySets,
    Iv,
    ParsedFilter,
    address_set,
    build_family_sets,
    parse_filter,
)
from policyc.netmap import FilterRule, address_text

FAMILY, TABLE = "inet", "policyc"
# The bit policyc ORs into the conntrack mark of flows its sets admitted, so
# revocation can tell mesh-inbound flows from the node's own. One bit, kept
# clear of the low bits other software (kube-proxy, Tailscale) uses.
MESH_MARK = 0x20000000
LOG_RATE_PER_SECOND, LOG_BURST = 10, 20
# Per class chain: at most this many entries are written as plain rules; a
# lookup kind (ports, protocols) that does not fit becomes a named set.
INLINE_RULES = 8
# A class chain costs about as much to load as this many set elements (see
# direct_classes).
DIRECT_SLACK = 16
_PORT_PAYLOAD = {6: "tcp", 17: "udp", 132: "sctp"}
_ADDR_TYPE = {4: "ipv4_addr", 6: "ipv6_addr"}
_IP_PAYLOAD = {4: "ip", 6: "ip6"}
Json = dict[str, Any]


def _table() -> Json:
    return {"family": FAMILY, "name": TABLE}


def _obj(**fields: Any) -> Json:
    return {"family": FAMILY, "table": TABLE, **fields}


def _match(left: Json, right: Any, op: str = "==") -> Json:
    return {"match": {"op": op, "left": left, "right": right}}


def _payload(protocol: str, field: str) -> Json:
    return {"payload": {"protocol": protocol, "field": field}}


def _meta(key: str) -> Json:
    return {"meta": {"key": key}}


def _ct(key: str) -> Json:
    return {"ct": {"key": key}}


# --- set elements ---------------------------------------------------------------


def _addr(fam: int, iv: Iv) -> Any:
    """An address interval as nft JSON: address, prefix, or range."""
    lo, hi = iv
    v6 = fam == 6
    if lo == hi:
        return address_text(lo, v6)
    size = hi - lo + 1
    if size & (size - 1) == 0 and lo % size == 0:
        length = MAX_ADDR[fam].bit_length() - (size.bit_length() - 1)
        return {"prefix": {"addr": address_text(lo, v6), "len": length}}
    return {"range": [address_text(lo, v6), address_text(hi, v6)]}


def _port(iv: Iv) -> Any:
    return iv[0] if iv[0] == iv[1] else {"range": [iv[0], iv[1]]}


def _set(name: str, fam: int, with_port: bool, elems: list[Json], *,
         with_source: bool = False) -> Json:
    key = [_ADDR_TYPE[fam]] * (2 if with_source else 1) + ["inet_proto"]
    if with_port:
        key.append("inet_service")
    body = _obj(name=name, type=key, flags=["interval"])
    if elems:
        body["elem"] = elems
    return {"add": {"set": body}}


def _source_map(name: str, fam: int, sources: list[tuple[Iv, str]]) -> Json:
    body = _obj(name=name, type=_ADDR_TYPE[fam], map="verdict", flags=["interval"])
    if sources:
        body["elem"] = [[_addr(fam, iv), {"jump": {"target": chain}}] for iv, chain in sources]
    return {"add": {"map": body}}


def source_map_name(prefix: str, fam: int) -> str:
    return f"{prefix}_src{fam}"


def class_chain_name(prefix: str, fam: int, number: int) -> str:
    return f"{prefix}{fam}_c{number}"


def direct_set_name(prefix: str, fam: int, with_port: bool) -> str:
    return f"{prefix}{fam}_direct_{'ports' if with_port else 'proto'}"


@dataclass
class _Objects:
    """Commands by kind, emitted in dependency order (chains before the map
    elements that jump to them, sets and maps before the rules using them)."""

    chains: list[Json] = field(default_factory=list)
    sets: list[Json] = field(default_factory=list)
    rules: list[Json] = field(default_factory=list)
    # per direction prefix: the direct lookups, placed in the mesh chain
    direct: dict[str, list[list[Json]]] = field(default_factory=dict)


def _family_objects(out: _Objects, prefix: str, fam: int, sets: FamilySets) -> None:
    """Direct sets, source map, class chains and class sets of one direction and family."""
    direct = direct_classes(sets)
    chains: dict[int, str] = {}
    for number in range(len(sets.classes)):
        if not direct[number]:
            chains[number] = class_chain_name(prefix, fam, len(chains))
    direct_ports = [{"concat": [_addr(fam, iv), _addr(fam, d), p, _port(r)]}
                    for iv, n in sets.sources if direct[n] for d, p, r in sets.classes[n].ports]
    direct_protocols = [{"concat": [_addr(fam, iv), _addr(fam, d), p]}
                        for iv, n in sets.sources if direct[n]
                        for d, p in sets.classes[n].protocols]
    for with_port, elems in ((True, direct_ports), (False, direct_protocols)):
        if elems:
            name = direct_set_name(prefix, fam, with_port)
            out.sets.append(_set(name, fam, with_port, elems, with_source=True))
            out.direct.setdefault(prefix, []).append(
                _lookup(fam, name, with_port, with_source=True))
    out.sets.append(_source_map(source_map_name(prefix, fam), fam, [
        (iv, chains[n]) for iv, n in sets.sources if not direct[n]]))
    for number, chain in chains.items():
        cls = sets.classes[number]
        out.chains.append(_regular_chain(chain))
        inline_ports, inline_protocols = inline_kinds(cls)
        if inline_ports:
            out.rules += [_rule(chain, *_inline_port(fam, d, p, r)) for d, p, r in cls.ports]
        elif cls.ports:
            out.sets.append(_set(f"{chain}_ports", fam, True, [
                {"concat": [_addr(fam, d), p, _port(r)]} for d, p, r in cls.ports]))
            out.rules.append(_rule(chain, *_lookup(fam, f"{chain}_ports", True)))
        if inline_protocols:
            out.rules += [_rule(chain, *_inline_protocol(fam, d, p)) for d, p in cls.protocols]
        elif cls.protocols:
            out.sets.append(_set(f"{chain}_proto", fam, False, [
                {"concat": [_addr(fam, d), p]} for d, p in cls.protocols]))
            out.rules.append(_rule(chain, *_lookup(fam, f"{chain}_proto", False)))


def direct_classes(sets: FamilySets) -> tuple[bool, ...]:
    """Per class: whether its sources are written directly into the shared
    (source . destination . protocol [. port]) sets instead of a class chain.

    A class with S source intervals and E entries costs S x E direct
    elements, or S map elements + a chain + E entries. A chain costs about
    as much to load as DIRECT_SLACK elements, so a class goes direct when
    S x E <= S + E + DIRECT_SLACK: one source with a few ports, a few
    sources with one port. Wide classes (many sources and many entries)
    keep the two-stage lookup, so the element count stays about S + P.
    """
    intervals = Counter(n for _, n in sets.sources)
    out = []
    for number, cls in enumerate(sets.classes):
        s, e = intervals[number], len(cls.ports) + len(cls.protocols)
        out.append(s * e <= s + e + DIRECT_SLACK)
    return tuple(out)


def inline_kinds(cls: ClassSets) -> tuple[bool, bool]:
    """(ports inline, protocols inline): which lookups become plain rules.

    The smaller kind is offered the budget of INLINE_RULES first, the other
    gets what is left, so a chain has at most INLINE_RULES plain rules plus
    one set lookup, or two set lookups. Empty kinds count as inline (no set).
    """
    ports, protocols = len(cls.ports), len(cls.protocols)
    if protocols <= ports:
        protocols_inline = protocols <= INLINE_RULES
        ports_inline = ports <= INLINE_RULES - (protocols if protocols_inline else 0)
    else:
        ports_inline = ports <= INLINE_RULES
        protocols_inline = protocols <= INLINE_RULES - (ports if ports_inline else 0)
    return ports_inline, protocols_inline


# --- chains ---------------------------------------------------------------------


def _rule(chain: str, *expr: Json) -> Json:
    return {"add": {"rule": _obj(chain=chain, expr=list(expr))}}


def _mark_accept() -> list[Json]:
    mark = {"mangle": {"key": _ct("mark"), "value": {"|": [_ct("mark"), MESH_MARK]}}}
    return [mark, {"accept": None}]


def _inline_port(fam: int, dst: Iv, proto: int, ports: Iv) -> list[Json]:
    """`ip daddr D tcp dport P`: nft adds the `meta l4proto tcp` dependency
    itself (so the port is never read from another protocol) and lists the
    rule back in this form."""
    return [_match(_payload(_IP_PAYLOAD[fam], "daddr"), _addr(fam, dst)),
            _match(_payload(_PORT_PAYLOAD[proto], "dport"), _port(ports)), *_mark_accept()]


def _inline_protocol(fam: int, dst: Iv, proto: int) -> list[Json]:
    return [_match(_payload(_IP_PAYLOAD[fam], "daddr"), _addr(fam, dst)),
            _match(_meta("l4proto"), proto), *_mark_accept()]


def _lookup(fam: int, set_name: str, with_port: bool, *, with_source: bool = False
            ) -> list[Json]:
    key = [_payload(_IP_PAYLOAD[fam], "daddr"), _meta("l4proto")]
    if with_source:
        key.insert(0, _payload(_IP_PAYLOAD[fam], "saddr"))
    guard: list[Json] = []
    if with_port:
        # th dport is only meaningful for port-bearing protocols.
        guard = [_match(_meta("l4proto"), {"set": [6, 17, 132]})]
        key.append(_payload("th", "dport"))
    return [*guard, _match({"concat": key}, f"@{set_name}"), *_mark_accept()]


def _mesh_chain(chain: str, prefix: str, counter: str, direct: list[list[Json]], *,
                local: bool) -> list[Json]:
    rules = [_rule(chain, _match(_ct("state"), ["established", "related"], "in"),
                   {"accept": None})]
    if local:
        # Neighbour discovery: never seen on WireGuard (L3, no link layer),
        # but needed when the mesh runs over an L2 link. Hop limit 255
        # proves the sender is on-link (RFC 4861); conntrack does not track
        # ND, so this must come before the invalid drop.
        rules.append(_rule(
            chain,
            _match(_payload("icmpv6", "type"),
                   {"set": ["nd-neighbor-solicit", "nd-neighbor-advert"]}),
            _match(_payload("ip6", "hoplimit"), 255), {"accept": None}))
    rules.append(_rule(chain, _match(_ct("state"), "invalid", "in"), {"drop": None}))
    rules += [_rule(chain, *lookup) for lookup in direct]
    for fam in (4, 6):
        rules.append(_rule(chain, {"vmap": {"key": _payload(_IP_PAYLOAD[fam], "saddr"),
                                            "data": f"@{source_map_name(prefix, fam)}"}}))
    rules.append(_rule(
        chain,
        {"limit": {"rate": LOG_RATE_PER_SECOND, "burst": LOG_BURST, "per": "second"}},
        {"log": {"prefix": f"policyc {prefix} drop: ", "level": "info"}}))
    rules.append(_rule(chain, {"counter": counter}, {"drop": None}))
    return rules


def _pickup_reject(chain: str, iface: str) -> Json:
    """Refuse a TCP mid-stream pickup leaving towards the mesh.

    After revocation deletes a flow's conntrack entry, the local side's next
    segment would otherwise create a fresh entry whose replies count as
    established, reopening the revoked flow. Legitimate new connections
    start with a bare SYN, so nothing else matches.
    """
    flags = {"&": [_payload("tcp", "flags"), ["syn", "ack"]]}
    return _rule(chain, _match(_meta("oifname"), iface),
                 _match(_ct("state"), "new", "in"), _match(flags, "syn", "!="),
                 {"reject": {"type": "tcp reset"}})


def _base_chain(name: str, hook: str) -> Json:
    return {"add": {"chain": _obj(name=name, type="filter", hook=hook, prio=0,
                                  policy="accept")}}


def _regular_chain(name: str) -> Json:
    return {"add": {"chain": _obj(name=name)}}


def _replace_table() -> list[Json]:
    """add + delete + add: atomic replace that also works with no table yet."""
    return [{"add": {"table": _table()}}, {"delete": {"table": _table()}},
            {"add": {"table": _table()}}]


def render_filter(filt: ParsedFilter, iface: str, *, local: Sequence[str] = (),
                  routes: Sequence[str] = ()) -> Json:
    """The ruleset for an already parsed filter.

    `local` are the node's own addresses; input lookups only admit
    destinations in local + routes, forward lookups only destinations in
    routes (as Tailscale drops packets for destinations it does not serve).
    """
    local_set = address_set([*local, *routes])
    route_set = address_set(routes)
    objects = _Objects()
    for prefix, clip in (("in", local_set), ("fwd", route_set)):
        for fam in (4, 6):
            _family_objects(objects, prefix, fam, build_family_sets(filt, fam, clip.family(fam)))
    commands = _replace_table()
    commands.append({"add": {"counter": _obj(name="in_dropped")}})
    commands.append({"add": {"counter": _obj(name="fwd_dropped")}})
    for name, hook in (("input", "input"), ("forward", "forward"), ("output", "output")):
        commands.append(_base_chain(name, hook))
    commands += [_regular_chain("mesh_in"), _regular_chain("mesh_fwd")]
    commands += objects.chains + objects.sets
    commands.append(_rule("input", _match(_meta("iifname"), iface),
                          {"jump": {"target": "mesh_in"}}))
    commands.append(_rule("forward", _match(_meta("iifname"), iface),
                          {"jump": {"target": "mesh_fwd"}}))
    commands.append(_pickup_reject("forward", iface))
    commands.append(_pickup_reject("output", iface))
    commands += _mesh_chain("mesh_in", "in", "in_dropped", objects.direct.get("in", []),
                            local=True)
    commands += _mesh_chain("mesh_fwd", "fwd", "fwd_dropped", objects.direct.get("fwd", []),
                            local=False)
    commands += objects.rules
    return {"nftables": commands}


class FilterSide(Protocol):
    """What the ruleset is made from: a `NodeNetmap`'s addresses, routes and filter
    (`nft` and `drift` get just these from the compiler, not its peers)."""

    @property
    def addresses(self) -> tuple[str, ...]: ...
    @property
    def routes(self) -> tuple[str, ...]: ...
    @property
    def packet_filter(self) -> tuple[FilterRule, ...]: ...


def render_ruleset(netmap: FilterSide, iface: str, *, routes: Sequence[str] = (),
                   diagnostics: Diagnostics | None = None) -> Json:
    """The nftables JSON that enforces `netmap.packet_filter` on `iface`.

    `routes` are the subnet/exit routes this node serves (forward chain);
    they default to the netmap's own `routes`. Malformed rule entries are
    reported to `diagnostics` (N507, N506 warnings) and left out; do not
    apply the result when errors were reported. Deterministic: the same
    input gives byte-identical JSON.
    """
    diags = diagnostics if diagnostics is not None else Diagnostics()
    routes = tuple(routes) or netmap.routes
    bad: list[str] = []
    address_set([*netmap.addresses, *routes], bad)
    for text in bad:
        diags.error("N507", NO_SPAN, f"node address or route {text!r} is malformed")
    if not iface or len(iface) > 15 or "/" in iface or iface.strip() != iface:
        diags.error("N503", NO_SPAN, f"{iface!r} is not a valid interface name")
    filt = parse_filter(netmap.packet_filter, diags)
    return render_filter(filt, iface, local=netmap.addresses, routes=routes)


def fail_closed_ruleset(iface: str) -> Json:
    """The minimal table installed when the real one cannot be loaded.

    Replies to the node's own flows still pass; nothing new gets in or
    through from the mesh.
    """
    commands = _replace_table()
    for name, hook, jump in (("input", "input", "closed_in"),
                             ("forward", "forward", "closed_fwd")):
        commands.append(_base_chain(name, hook))
        commands.append(_regular_chain(jump))
        commands.append(_rule(name, _match(_meta("iifname"), iface),
                              {"jump": {"target": jump}}))
        commands.append(_rule(jump, _match(_ct("state"), ["established", "related"], "in"),
                              {"accept": None}))
        commands.append(_rule(jump, {"drop": None}))
    return {"nftables": commands}


def ruleset_interface(ruleset: Json) -> str | None:
    """The mesh interface a rendered ruleset is hooked on."""
    for command in ruleset.get("nftables", ()):
        rule = command.get("add", {}).get("rule")
        if rule and rule.get("chain") == "input":
            for expr in rule["expr"]:
                match = expr.get("match", {})
                if match.get("left") == _meta("iifname"):
                    return str(match["right"])
    return None

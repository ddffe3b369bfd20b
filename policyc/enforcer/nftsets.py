"""FilterRules -> canonical, non-overlapping set elements; and the matcher.

Tailscale's client semantics (wgengine/filter, runIn4/runIn6), which both the
nftables sets and `filter_allows` follow:

* TCP, UDP, SCTP: allowed when some rule lists the protocol, its SrcIPs
  contain the source, and one of its DstPorts contains the destination
  address and port.
* ICMP of the packet's family (1 on IPv4, 58 on IPv6): allowed when some
  rule's SrcIPs contain the source and one of its DstPorts contains the
  destination, whatever the rule's protocols and ports ("if any port is open
  to an IP, allow ICMP to it").
* Any other protocol: the rule must list it and the DstPorts entry must
  cover all ports (0-65535).

Set algebra runs on sorted integer intervals. Elements are built in two
stages, so a rule with S sources and P port ranges costs about S + P
elements, not S x P:

* Source classes: a sweep over source addresses splits each family into
  atoms, maximal intervals on which the same rules' SrcIPs apply. Atoms
  whose rules grant the same (destination, protocol, port) entries form one
  class; adjacent atoms of one class merge. Each interval belongs to one
  class. (How a class is written to nft, as direct source . destination
  elements, a chain of plain rules or a chain with named sets, is
  nftrender's choice.)
* Per class: the union of its rules' entries, keyed without the source. A
  sweep over destination addresses finds the segments on which the same
  entries apply and merges their port ranges; adjacent segments with equal
  contents are merged.

nft rejects overlapping elements in a concatenated interval set, and a
partition is also the smallest set this decomposition can produce. Classes
are numbered in source-address order of their first interval, so the output
does not depend on rule order.
"""

from __future__ import annotations

import ipaddress
import itertools
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

from policyc.diagnostics.diagnostics import Diagnostics
from policyc.diagnostics.source import NO_SPAN
from policyc.netmap import DEFAULT_PROTOCOLS, FilterRule, canonical_address

Iv = tuple[int, int]  # inclusive integer interval
K = TypeVar("K", bound=Hashable)
R = TypeVar("R")

MAX_ADDR = {4: 2**32 - 1, 6: 2**128 - 1}
ALL_PORTS: Iv = (0, 65535)
PORT_PROTOCOLS = (6, 17, 132)  # TCP, UDP, SCTP: the protocols Tailscale matches by port
ICMP_OF_FAMILY = {4: 1, 6: 58}
FOREIGN_ICMP = {4: 58, 6: 1}  # ICMPv6 in IPv4 and vice versa never matches


@dataclass(frozen=True, slots=True)
class AddrSet:
    """Addresses as merged, sorted intervals per family."""

    v4: tuple[Iv, ...] = ()
    v6: tuple[Iv, ...] = ()

    def family(self, fam: int) -> tuple[Iv, ...]:
        return self.v4 if fam == 4 else self.v6

    def contains(self, fam: int, addr: int) -> bool:
        return any(lo <= addr <= hi for lo, hi in self.family(fam))


@dataclass(frozen=True, slots=True)
class ParsedDst:
    addrs: AddrSet
    ports: Iv


@dataclass(frozen=True, slots=True)
class ParsedRule:
    src: AddrSet
    protocols: frozenset[int]
    dsts: tuple[ParsedDst, ...]


@dataclass(frozen=True, slots=True)
class ParsedFilter:
    """A node's packet filter, validated and in interval form."""

    rules: tuple[ParsedRule, ...]


@dataclass(frozen=True, slots=True)
class ClassSets:
    """What the sources of one class may reach (keyed without the source).

    `ports`: (dst, protocol, port range) for TCP/UDP/SCTP.
    `protocols`: (dst, protocol) for the portless protocols.
    """

    ports: tuple[tuple[Iv, int, Iv], ...]
    protocols: tuple[tuple[Iv, int], ...]


@dataclass(frozen=True, slots=True)
class FamilySets:
    """One family's two-stage lookup.

    `sources`: disjoint, sorted source intervals, each with the index of its
    class in `classes`. Addresses in no interval match no rule.
    """

    sources: tuple[tuple[Iv, int], ...]
    classes: tuple[ClassSets, ...]

    @property
    def element_count(self) -> int:
        return len(self.sources) + sum(len(c.ports) + len(c.protocols)
                                       for c in self.classes)


# --- parsing ---------------------------------------------------------------


def merge_intervals(ivs: Iterable[Iv]) -> tuple[Iv, ...]:
    """Sorted, disjoint, non-adjacent intervals covering the same integers."""
    out: list[Iv] = []
    for lo, hi in sorted(ivs):
        if out and lo <= out[-1][1] + 1:
            if hi > out[-1][1]:
                out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return tuple(out)


def intersect_intervals(a: Sequence[Iv], b: Sequence[Iv]) -> tuple[Iv, ...]:
    """Intersection of two merged interval lists."""
    out: list[Iv] = []
    i = j = 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if lo <= hi:
            out.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return tuple(out)


def parse_address(text: str) -> tuple[int, Iv] | None:
    """(family, interval) of an IP, CIDR or `a-b` range; None if malformed.

    Cached per text: a node's filter names each peer address in many rules'
    SrcIPs (236k texts, 10k distinct, for one node of a 10k dense tailnet).
    """
    if text in _PARSED:
        return _PARSED[text]
    if len(_PARSED) >= _PARSED_MAX:
        _PARSED.clear()
    found = _PARSED[text] = _canonical_address(text) or _parse_address(text)
    return found


_PARSED: dict[str, tuple[int, Iv] | None] = {}
_PARSED_MAX = 1 << 18


def _canonical_address(text: str) -> tuple[int, Iv] | None:
    found = canonical_address(text)
    return None if found is None else (found[0], (found[1], found[1]))


def _parse_address(text: str) -> tuple[int, Iv] | None:
    try:
        if "-" in text:
            first_text, last_text = text.split("-", 1)
            first = ipaddress.ip_address(first_text.strip())
            last = ipaddress.ip_address(last_text.strip())
            if first.version != last.version or int(first) > int(last):
                return None
            return first.version, (int(first), int(last))
        if "/" in text:
            net = ipaddress.ip_network(text, strict=False)
            return net.version, (int(net.network_address), int(net.broadcast_address))
        addr = ipaddress.ip_address(text)
        return addr.version, (int(addr), int(addr))
    except ValueError:
        return None


def address_set(texts: Iterable[str], bad: list[str] | None = None) -> AddrSet:
    """Union of address texts; `*` is every v4 and v6 address.

    Malformed texts are skipped and, when `bad` is given, appended to it.
    """
    by_family: dict[int, list[Iv]] = {4: [], 6: []}
    known = _PARSED.get
    for text in texts:
        parsed = known(text)  # the cache first: this loop sees every SrcIPs text
        if parsed is None:
            if text == "*":
                by_family[4].append((0, MAX_ADDR[4]))
                by_family[6].append((0, MAX_ADDR[6]))
                continue
            parsed = parse_address(text)
            if parsed is None:
                if bad is not None:
                    bad.append(text)
                continue
        by_family[parsed[0]].append(parsed[1])
    return AddrSet(merge_intervals(by_family[4]), merge_intervals(by_family[6]))


def parse_filter(rules: Sequence[FilterRule], diagnostics: Diagnostics | None = None
                 ) -> ParsedFilter:
    """Validate and convert rules. Bad entries are reported and left out.

    Leaving an entry out can only remove access, never add it, so the
    result errs on the closed side; callers refuse to apply when errors
    were reported (N507). CapGrant rules grant no packets and are skipped.
    """
    diags = diagnostics if diagnostics is not None else Diagnostics()
    parsed: list[ParsedRule] = []
    for index, rule in enumerate(rules):
        if not rule.dst_ports:
            continue
        rule_ok = _parse_rule(index, rule, diags)
        if rule_ok is not None:
            parsed.append(rule_ok)
    return ParsedFilter(tuple(parsed))


def _parse_rule(index: int, rule: FilterRule, diags: Diagnostics) -> ParsedRule | None:
    where = f"packet_filter[{index}]"
    # One C-level search first: a filter's rules hold ~216k SrcIPs texts, none cap:.
    capability_sources = ([s for s in rule.src_ips if s.startswith("cap:")]
                          if "cap:" in "\n".join(rule.src_ips) else [])
    if capability_sources:
        diags.warning("N506", NO_SPAN, f"{where}: node-capability sources "
                      f"{capability_sources} cannot be enforced by nftables; ignored")
    bad: list[str] = []
    if rule.src_ranges is not None and not capability_sources:
        src = AddrSet(*rule.src_ranges)  # the compiler's own reading of the texts
    else:
        src = address_set((s for s in rule.src_ips if not s.startswith("cap:"))
                          if capability_sources else rule.src_ips, bad)
    protocols = rule.ip_proto or DEFAULT_PROTOCOLS
    for proto in protocols:
        if not isinstance(proto, int) or not 0 < proto < 256:
            diags.error("N507", NO_SPAN, f"{where}: IP protocol {proto!r} is not 1-255")
    dsts: list[ParsedDst] = []
    for dst in rule.dst_ports:
        first, last = dst.ports.first, dst.ports.last
        if not (0 <= first <= last <= 65535):
            diags.error("N507", NO_SPAN, f"{where}: port range {first}-{last} "
                        "is not within 0-65535")
            continue
        dsts.append(ParsedDst(address_set([dst.ip], bad), (first, last)))
    for text in bad:
        diags.error("N507", NO_SPAN, f"{where}: {text!r} is not an IP, CIDR, range or *")
    valid_protocols = frozenset(p for p in protocols if isinstance(p, int) and 0 < p < 256)
    if not dsts or not valid_protocols:
        return None
    return ParsedRule(src, valid_protocols, tuple(dsts))


# --- the matcher --------------------------------------------------------------


def filter_allows(rules: Sequence[FilterRule] | ParsedFilter, src: str, dst: str,
                  proto: int, dport: int = 0) -> bool:
    """Whether a new flow src -> dst:dport over IP protocol `proto` is allowed.

    Follows the client semantics in the module docstring. `dport` is only
    looked at for TCP, UDP and SCTP.
    """
    filt = rules if isinstance(rules, ParsedFilter) else parse_filter(rules)
    src_addr, dst_addr = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    fam = src_addr.version
    if dst_addr.version != fam or proto == FOREIGN_ICMP[fam]:
        return False
    s, d = int(src_addr), int(dst_addr)
    for rule in filt.rules:
        if not rule.src.contains(fam, s):
            continue
        for target in rule.dsts:
            if not target.addrs.contains(fam, d):
                continue
            if proto == ICMP_OF_FAMILY[fam]:
                return True
            if proto not in rule.protocols:
                continue
            if proto in PORT_PROTOCOLS:
                if target.ports[0] <= dport <= target.ports[1]:
                    return True
            elif target.ports == ALL_PORTS:
                return True
    return False


# --- canonical partition --------------------------------------------------------


def sweep(entries: Iterable[tuple[int, int, K]],
          solve: Callable[[frozenset[K]], tuple[R, ...]]) -> list[tuple[Iv, tuple[R, ...]]]:
    """Split the line where `entries` (lo, hi, key) start and end.

    For each maximal segment, `solve(active keys)` gives its contents;
    segments with empty contents are dropped and adjacent segments with
    equal contents merged. Results are cached per active key set.

    One key's intervals must not overlap (callers pass merged intervals, or one
    interval per key): the active set is then a bitmask that each point's
    starts and ends toggle (a dense filter has ~25k intervals per family).
    """
    starts: dict[int, int] = defaultdict(int)
    ends: dict[int, int] = defaultdict(int)
    number: dict[K, int] = {}
    keys: list[K] = []
    for lo, hi, key in entries:
        k = number.get(key)
        if k is None:
            k = number[key] = len(keys)
            keys.append(key)
        starts[lo] |= 1 << k
        ends[hi + 1] |= 1 << k
    points = sorted(starts.keys() | ends.keys())
    active = 0
    cache: dict[int, tuple[R, ...]] = {}
    out: list[tuple[Iv, tuple[R, ...]]] = []
    for here, following in itertools.pairwise(points):
        # Ends first: a key's interval may start where its previous one ended.
        active = (active & ~ends.get(here, 0)) | starts.get(here, 0)
        if not active:
            continue
        contents = cache.get(active)
        if contents is None:
            contents = cache[active] = solve(frozenset(keys[k] for k in _bits(active)))
        if not contents:
            continue
        if out and out[-1][0][1] == here - 1 and (
                out[-1][1] is contents or out[-1][1] == contents):
            out[-1] = ((out[-1][0][0], following - 1), contents)
        else:
            out.append(((here, following - 1), contents))
    return out


def _bits(mask: int) -> Iterator[int]:
    """Set bit positions of `mask`, ascending (a scan of its binary text)."""
    text = bin(mask)[:1:-1]
    k = text.find("1")
    while k >= 0:
        yield k
        k = text.find("1", k + 1)


def _dst_port_boxes(boxes: Sequence[tuple[Iv, Iv]]) -> tuple[tuple[Iv, Iv], ...]:
    """Disjoint (dst, ports) boxes covering the union of `boxes`."""
    def ports_of(active: frozenset[int]) -> tuple[Iv, ...]:
        return merge_intervals(boxes[i][1] for i in active)

    segments = sweep(((d[0], d[1], i) for i, (d, _) in enumerate(boxes)), ports_of)
    return tuple((dst, ports) for dst, port_list in segments for ports in port_list)


def _rule_boxes(filt: ParsedFilter, fam: int, proto: int, restrict: tuple[Iv, ...] | None
                ) -> list[tuple[tuple[Iv, Iv], ...]]:
    """Per rule (by index): the (dst, ports) boxes in which it admits `proto`."""
    icmp = proto == ICMP_OF_FAMILY[fam]
    boxes: list[tuple[tuple[Iv, Iv], ...]] = []
    for rule in filt.rules:
        rule_boxes: list[tuple[Iv, Iv]] = []
        if icmp or proto in rule.protocols:
            for target in rule.dsts:
                if proto in PORT_PROTOCOLS:
                    ports = target.ports
                elif icmp or target.ports == ALL_PORTS:
                    ports = ALL_PORTS
                else:
                    continue
                dst = target.addrs.family(fam)
                if restrict is not None:
                    dst = intersect_intervals(dst, restrict)
                rule_boxes.extend((d, ports) for d in dst)
        boxes.append(tuple(rule_boxes))
    return boxes


def _distinct(boxes_by_rule: list[tuple[tuple[Iv, Iv], ...]]
              ) -> tuple[list[int], list[tuple[tuple[Iv, Iv], ...]]]:
    """Per rule, the number of its boxes among the distinct non-empty ones (-1:
    none), and those distinct boxes."""
    number: dict[tuple[tuple[Iv, Iv], ...], int] = {}
    ids = [number.setdefault(boxes, len(number)) if boxes else -1 for boxes in boxes_by_rule]
    return ids, list(number)


def build_family_sets(filt: ParsedFilter, fam: int,
                      restrict: tuple[Iv, ...] | None = None) -> FamilySets:
    """One family's source classes and their entries; destinations clipped to `restrict`."""
    protocols = {p for rule in filt.rules for p in rule.protocols}
    if filt.rules:
        protocols.add(ICMP_OF_FAMILY[fam])
    protocols.discard(FOREIGN_ICMP[fam])
    rule_ids: list[list[int]] = []
    by_proto: list[tuple[int, list[tuple[tuple[Iv, Iv], ...]]]] = []
    for proto in sorted(protocols):
        ids, distinct = _distinct(_rule_boxes(filt, fam, proto, restrict))
        rule_ids.append(ids)
        by_proto.append((proto, distinct))
    # The boxes of a protocol depend only on which distinct rule boxes are active
    # (the disjoint cover is of their union). Rules with the same distinct boxes
    # for every protocol are interchangeable, so the sweep runs over their merged
    # sources (fewer intervals, fewer active sets); the segments it merges are the
    # same, since adjacent segments with equal contents are joined either way.
    solved: dict[tuple[int, tuple[int, ...]], tuple[tuple[Iv, Iv], ...]] = {}

    def class_of(active: frozenset[tuple[int, ...]]) -> tuple[ClassSets, ...]:
        ports: list[tuple[Iv, int, Iv]] = []
        portless: list[tuple[Iv, int]] = []
        for k, (proto, distinct) in enumerate(by_proto):
            chosen = tuple(sorted({sig[k] for sig in active if sig[k] >= 0}))
            if not chosen:
                continue
            cover = solved.get((proto, chosen))
            if cover is None:
                cover = solved[(proto, chosen)] = _dst_port_boxes(
                    [b for i in chosen for b in distinct[i]])
            if proto in PORT_PROTOCOLS:
                ports.extend((d, proto, p) for d, p in cover)
            else:
                portless.extend((d, proto) for d, _ in cover)
        if not ports and not portless:
            return ()
        return (ClassSets(tuple(ports), tuple(portless)),)

    by_signature: dict[tuple[int, ...], list[tuple[Iv, ...]]] = defaultdict(list)
    for r, rule in enumerate(filt.rules):
        signature = tuple(ids[r] for ids in rule_ids)
        if any(i >= 0 for i in signature):
            by_signature[signature].append(rule.src.family(fam))
    entries = ((lo, hi, signature) for signature, sources in by_signature.items()
               for lo, hi in _union(sources))
    numbering: dict[ClassSets, int] = {}
    by_identity: dict[int, int] = {}  # sweep reuses one object per active rule set
    sources: list[tuple[Iv, int]] = []
    for iv, contents in sweep(entries, class_of):
        number = by_identity.get(id(contents))
        if number is None:
            number = by_identity[id(contents)] = numbering.setdefault(
                contents[0], len(numbering))
        if sources and sources[-1][1] == number and sources[-1][0][1] == iv[0] - 1:
            sources[-1] = ((sources[-1][0][0], iv[1]), number)
        else:
            sources.append((iv, number))
    return FamilySets(tuple(sources), tuple(numbering))


def _union(sources: list[tuple[Iv, ...]]) -> tuple[Iv, ...]:
    """The union of merged interval lists. Rules naming one group share its
    compiled `src_ranges` object, and one list is its own union."""
    distinct = {id(ivs): ivs for ivs in sources}
    if len(distinct) == 1:
        return sources[0]
    return merge_intervals(itertools.chain.from_iterable(distinct.values()))


def sets_allow(sets: FamilySets, src: int, dst: int, proto: int, dport: int = 0) -> bool:
    """What the two nft lookups decide for a packet: the test oracle for the sets."""
    def inside(iv: Iv, x: int) -> bool:
        return iv[0] <= x <= iv[1]

    number = next((n for iv, n in sets.sources if inside(iv, src)), None)
    if number is None:
        return False
    cls = sets.classes[number]
    if proto in PORT_PROTOCOLS:
        return any(p == proto and inside(d, dst) and inside(r, dport)
                   for d, p, r in cls.ports)
    return any(p == proto and inside(d, dst) for d, p in cls.protocols)

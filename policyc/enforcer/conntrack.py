"""Revocation: cut established flows that a new filter no longer allows.

`ct state established` accepts every packet of a flow conntrack already
knows, so loading a narrower filter does not stop open connections. After a
load we list the namespace's conntrack table (`conntrack -L -o xml`: a
structured format, unlike the column soup of `-o extended`), pick the flows
that came in over the mesh, evaluate each original-direction tuple with
`filter_allows`, and delete the disallowed ones by exact tuple.

A flow "came in over the mesh" when its conntrack mark carries MESH_MARK
(the set lookups set it when they admit a flow), or, for flows older than
the first load, when its original destination is an address of the mesh
interface and its source is not.
"""

from __future__ import annotations

import bisect
import ipaddress
import json
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass

from policyc.diagnostics.diagnostics import Diagnostic, Diagnostics, Severity
from policyc.diagnostics.source import NO_SPAN
from policyc.enforcer.netns import NetnsError, run_in_netns
from policyc.enforcer.nftrender import MESH_MARK
from policyc.enforcer.nftsets import (
    PORT_PROTOCOLS,
    AddrSet,
    ClassSets,
    ParsedFilter,
    address_set,
    build_family_sets,
    filter_allows,
    parse_filter,
)
from policyc.netmap import FilterRule

__all__ = ["Flow", "FlowJudge", "RevokeResult", "filter_allows", "parse_flows",
           "revoke_disallowed_flows"]

_ICMP_NAMES = {1: "icmp", 58: "icmpv6"}
_TIMEOUT_SECONDS = 30


@dataclass(frozen=True, slots=True)
class Flow:
    """The original-direction tuple of one conntrack entry."""

    family: int
    src: str
    dst: str
    proto: int
    sport: int | None
    dport: int | None
    mark: int

    def __str__(self) -> str:
        ports = f":{self.dport}" if self.dport is not None else ""
        return f"proto {self.proto} {self.src} -> {self.dst}{ports}"


@dataclass(frozen=True, slots=True)
class RevokeResult:
    examined: int
    revoked: tuple[Flow, ...]
    diagnostics: tuple[Diagnostic, ...]

    @property
    def ok(self) -> bool:
        return not any(d.severity is Severity.ERROR for d in self.diagnostics)


def parse_flows(xml_text: str) -> list[Flow]:
    """Flows from `conntrack -L -o xml`; entries it cannot read are skipped.

    An empty table prints nothing. Output that is not XML raises
    ET.ParseError: a listing that cannot be read must not pass for an
    empty table (every flow would silently survive revocation).
    """
    if not xml_text.strip():
        return []
    root = ET.fromstring(xml_text)
    flows = []
    for flow in root.iter("flow"):
        parsed = _parse_flow(flow)
        if parsed is not None:
            flows.append(parsed)
    return flows


def _parse_flow(flow: ET.Element) -> Flow | None:
    original = flow.find("meta[@direction='original']")
    independent = flow.find("meta[@direction='independent']")
    if original is None:
        return None
    layer3, layer4 = original.find("layer3"), original.find("layer4")
    src, dst = original.findtext("layer3/src"), original.findtext("layer3/dst")
    if layer3 is None or layer4 is None or src is None or dst is None:
        return None
    try:
        family = ipaddress.ip_address(src).version
        proto = int(layer4.get("protonum", ""))
        sport, dport = original.findtext("layer4/sport"), original.findtext("layer4/dport")
        mark_text = independent.findtext("mark") if independent is not None else None
        return Flow(family, src, dst, proto, int(sport) if sport else None,
                    int(dport) if dport else None, int(mark_text or 0))
    except ValueError:
        return None


def _run(args: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True,
                          timeout=_TIMEOUT_SECONDS, check=False)


def _interface_addresses(iface: str) -> set[str]:
    """Addresses on `iface` in the current namespace (empty if it is missing)."""
    proc = _run(["ip", "-j", "addr", "show", "dev", iface])
    if proc.returncode != 0:
        return set()
    try:
        return {a["local"] for link in json.loads(proc.stdout)
                for a in link.get("addr_info", ()) if "local" in a}
    except (ValueError, KeyError, TypeError):
        return set()


def _came_over_mesh(flow: Flow, mesh_addresses: set[str]) -> bool:
    if flow.mark & MESH_MARK:
        return True
    return flow.dst in mesh_addresses and flow.src not in mesh_addresses


class FlowJudge:
    """Whether the loaded table would admit a flow's original tuple now.

    The same decision as `filter_allows` (and, with `served`, a destination
    the table serves), but through the source classes the table is built
    from (nftsets.build_family_sets): a binary search for the source's
    class, then that class's entries, cached per (class, destination,
    protocol, port). Asking `filter_allows` per flow walks every rule, which
    for 10,000 flows and 1,000 rules took seconds.
    """

    def __init__(self, filt: ParsedFilter, served: AddrSet | None = None) -> None:
        self._sets = {fam: build_family_sets(filt, fam, None if served is None
                                             else served.family(fam)) for fam in (4, 6)}
        self._starts = {fam: [iv[0] for iv, _ in sets.sources]
                        for fam, sets in self._sets.items()}
        self._cache: dict[tuple[int, int, int, int, int], bool] = {}

    def allows(self, flow: Flow) -> bool:
        src, dst = ipaddress.ip_address(flow.src), ipaddress.ip_address(flow.dst)
        fam = src.version
        if dst.version != fam:
            return False
        sets, s = self._sets[fam], int(src)
        index = bisect.bisect_right(self._starts[fam], s) - 1
        if index < 0 or s > sets.sources[index][0][1]:
            return False
        number = sets.sources[index][1]
        dport = flow.dport if flow.proto in PORT_PROTOCOLS and flow.dport is not None else 0
        key = (fam, number, int(dst), flow.proto, dport)
        decided = self._cache.get(key)
        if decided is None:
            decided = self._cache[key] = _class_allows(
                sets.classes[number], int(dst), flow.proto, dport)
        return decided


def _class_allows(cls: ClassSets, dst: int, proto: int, dport: int) -> bool:
    if proto in PORT_PROTOCOLS:
        return any(p == proto and d[0] <= dst <= d[1] and r[0] <= dport <= r[1]
                   for d, p, r in cls.ports)
    return any(p == proto and d[0] <= dst <= d[1] for d, p in cls.protocols)


def _delete_args(flow: Flow) -> list[str]:
    """`conntrack -D` options naming exactly this flow's original tuple."""
    args = ["conntrack", "-D", "-f", "ipv4" if flow.family == 4 else "ipv6",
            "-p", _ICMP_NAMES.get(flow.proto, {6: "tcp", 17: "udp", 132: "sctp"}
                                  .get(flow.proto, str(flow.proto))),
            "-s", flow.src, "-d", flow.dst]
    if flow.sport is not None and flow.dport is not None:
        args += ["--sport", str(flow.sport), "--dport", str(flow.dport)]
    return args


def _revoke_here(judge: FlowJudge, iface: str) -> tuple[int, list[Flow], list[str]]:
    """Runs inside the namespace: (examined, revoked, failures)."""
    listing = _run(["conntrack", "-L", "-o", "xml"])
    if listing.returncode != 0:
        return 0, [], [f"conntrack -L failed: {listing.stderr.strip()}"]
    mesh_addresses = _interface_addresses(iface)
    try:
        flows = parse_flows(listing.stdout)
    except ET.ParseError as err:
        return 0, [], [f"conntrack -L printed output that is not XML ({err}); "
                       "no flow was examined"]
    candidates = [f for f in flows if _came_over_mesh(f, mesh_addresses)]
    revoked, failures = [], []
    for flow in candidates:
        if judge.allows(flow):
            continue
        deleted = _run(_delete_args(flow))
        # exit 1 with "0 flow entries" means it ended on its own meanwhile.
        if deleted.returncode == 0 or "0 flow entries" in deleted.stderr:
            revoked.append(flow)
        else:
            failures.append(f"could not delete {flow}: {deleted.stderr.strip()}")
    return len(candidates), revoked, failures


def revoke_disallowed_flows(rules: Sequence[FilterRule] | ParsedFilter, iface: str,
                            netns: str | None = None, *,
                            served: Sequence[str] | None = None) -> RevokeResult:
    """Delete conntrack entries of mesh flows that `rules` no longer allow.

    Call after loading the filter built from the same `rules`, so a cut
    flow cannot be re-admitted. `served` are the destinations the loaded
    table admits at all (the node's addresses and the routes it serves,
    as given to render_ruleset): a flow to anything else is cut too, e.g.
    forwarded flows into a route the node no longer serves, even when a
    rule's DstPorts (`*`) still covers them. Failures are N509 errors: a
    flow that should have been cut may still be open.
    """
    diags = Diagnostics()
    filt = rules if isinstance(rules, ParsedFilter) else parse_filter(rules)
    judge = FlowJudge(filt, None if served is None else address_set(served))
    try:
        examined, revoked, failures = run_in_netns(netns, lambda: _revoke_here(judge, iface))
    except NetnsError as err:
        diags.error("N508", NO_SPAN, str(err))
        return RevokeResult(0, (), tuple(diags))
    except (OSError, subprocess.SubprocessError) as err:
        diags.error("N509", NO_SPAN, f"conntrack could not be run: {err}")
        return RevokeResult(0, (), tuple(diags))
    for text in failures:
        diags.error("N509", NO_SPAN, text)
    return RevokeResult(examined, tuple(revoked), tuple(diags))

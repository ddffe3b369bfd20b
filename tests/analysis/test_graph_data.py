"""`policyc graph`'s data: every cell agrees with the reference evaluator, and the
sample's page data is a reviewed golden (tests/golden/graph/).

The property test asks the reference evaluator (reference.py, one address pair
and one packet at a time) about every source address of every row, against one
destination address per piece of the columns that boxes cannot tell apart (an
atom of the boxes' destinations and the columns' delivered addresses) and one
packet per segment of the rules' services, so its expectations are exact.
"""

from __future__ import annotations

import ipaddress
import itertools
import json
from pathlib import Path
from typing import Any

from goldens import GOLDEN_ROOT, check_golden
from hypothesis import HealthCheck, given, settings
from strategies import load, policies, tailnets

from policyc.analysis.access import AliasSets, policy_access
from policyc.analysis.atoms import Atoms, sweep
from policyc.analysis.graph import access_map
from policyc.analysis.reference import ReferenceEvaluator
from policyc.analysis.services import PORTS
from policyc.compiler.addrset import AddressSet
from policyc.compiler.inventory import load_inventory_file
from policyc.compiler.nodes import Inventory
from policyc.policy.aliases import PORTED_PROTOCOLS
from policyc.policy.model import IPAddress, Policy

SAMPLES = Path(__file__).resolve().parents[2] / "samples"

Packet = tuple[int, int | None]


def _addresses(addrs: AddressSet) -> list[IPAddress]:
    """Every address of a (small) set: rows are node addresses."""
    out: list[IPAddress] = []
    for family, make in ((addrs.v4, ipaddress.IPv4Address), (addrs.v6, ipaddress.IPv6Address)):
        for first, last in family:
            out.extend(make(a) for a in range(first, last + 1))
    return out


def _first(atoms: Atoms, atom: int) -> IPAddress:
    if atoms.v4[atom]:
        return ipaddress.IPv4Address(atoms.v4[atom][0][0])
    return ipaddress.IPv6Address(atoms.v6[atom][0][0])


def _probes(policy: Policy, inventory: Inventory, targets: list[AddressSet],
            ) -> tuple[list[list[IPAddress]], list[Packet]]:
    """Per column, one address per atom of its target; one packet per service segment."""
    boxes = policy_access(policy, inventory).boxes
    atoms = Atoms([*(b.dst for b in boxes), *targets])
    per_column = [[_first(atoms, a) for a in atoms.atoms_of[atoms.index(t)]] if t else []
                  for t in targets]
    packets: list[Packet] = []
    for _, first, _ in sweep([b.services.intervals for b in dict.fromkeys(boxes)]):
        proto = first // PORTS
        packets.append((proto, first % PORTS if proto in PORTED_PROTOCOLS else None))
    return per_column, packets


def _holds(ranges: dict[str, list[list[int]]], packet: Packet) -> bool:
    proto, port = packet
    return any(first <= (port or 0) <= last for first, last in ranges.get(str(proto), []))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policies(), tailnets())
def test_every_cell_agrees_with_the_reference_evaluator(text: str, inventory: Inventory) -> None:
    policy = load(text)
    result = access_map(policy, inventory)
    data = result.to_json()
    delivered = AliasSets(policy, inventory).delivered()
    destinations, packets = _probes(policy, inventory, [c.addrs & delivered
                                                        for c in result.columns])
    ev = ReferenceEvaluator(policy, inventory)
    cells = {(r, c): (full, some) for r, c, full, some in data["cells"]}
    for r, row in enumerate(result.rows):
        assert [e.name for e in row] == [e["name"] for e in data["rows"][r]]
        for endpoint in row:  # each source of a shared row must have the row's cells
            sources = _addresses(endpoint.addrs)
            for c, targets in enumerate(destinations):
                _check_cell(ev, data, cells.get((r, c)), _page_rules(data, r, c), sources,
                            targets, packets, (endpoint.name, result.columns[c].name))


def _page_rules(data: dict[str, Any], row: int, col: int) -> set[tuple[str, int]]:
    """A cell's rules as the page's script finds them: the union over the row's
    sources of each one's rule list towards the column."""
    found: set[int] = set()
    for source in itertools.accumulate(data["rowSources"][row]):  # written as gaps
        listed = data["sourceRules"][source].get(str(col))
        if listed is not None:
            found.update(data["ruleLists"][listed])
    return {(data["rules"][k]["kind"], data["rules"][k]["index"]) for k in found}


def _check_cell(ev: ReferenceEvaluator, data: dict[str, Any], cell: tuple[int, int] | None,
                shown: set[tuple[str, int]], sources: list[IPAddress],
                targets: list[IPAddress], packets: list[Packet], where: tuple[str, str]) -> None:
    reached: list[set[Packet]] = []
    rules: set[tuple[str, int]] = set()
    for src in sources:
        mine: set[Packet] = set()
        for dst in targets:
            for packet in packets:
                found = ev.allowing_rules(src, dst, *packet)
                if found:
                    mine.add(packet)
                    rules.update((ref.kind, ref.index) for ref in found)
        reached.append(mine)
    some = set().union(*reached)
    full = set.intersection(*reached) if reached else set()
    if cell is None:
        assert not some and not shown, where
        return
    full_id, some_id = cell
    for packet in packets:
        assert _holds(data["services"][some_id]["ranges"], packet) == (packet in some), \
            (where, packet)
        assert _holds(data["services"][full_id]["ranges"], packet) == (packet in full), \
            (where, packet)
    assert shown == rules, where


def test_sample_page_data_golden() -> None:
    policy = load((SAMPLES / "policy.hujson").read_text(), "samples/policy.hujson")
    inventory, diags = load_inventory_file(SAMPLES / "nodes.json")
    assert inventory is not None and not diags.has_errors
    data = access_map(policy, inventory).to_json()
    # One table entry per line: reviewable as a diff.
    lines = ["{"] + [f"  {json.dumps(key)}: [\n" + ",\n".join(
        f"    {json.dumps(item, ensure_ascii=False)}" for item in value) + "\n  ],"
        if isinstance(value, list) else f"  {json.dumps(key)}: {json.dumps(value)},"
        for key, value in data.items()]
    text = "\n".join(lines).rstrip(",") + "\n}\n"
    assert json.loads(text) == data
    check_golden(GOLDEN_ROOT / "graph" / "sample.json", text)

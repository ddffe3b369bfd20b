"""Load a rendered ruleset into the kernel, verify it, detect drift.

Everything runs through the official binding inside the target network
namespace (netns.run_in_netns). The ruleset replaces table `inet policyc`
in ONE transaction, so the kernel either has the whole new table or keeps
the old one; no other table is ever named in a command.
"""

from __future__ import annotations

import functools
import json
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from policyc.collector import paused_collector
from policyc.diagnostics.diagnostics import Diagnostic, Diagnostics
from policyc.diagnostics.source import NO_SPAN
from policyc.enforcer.binding import BindingMissing, check_enforcer_ready, new_context
from policyc.enforcer.netns import NetnsError, interface_exists, netns_exists, run_in_netns
from policyc.enforcer.nftrender import FAMILY, TABLE, fail_closed_ruleset, ruleset_interface

Json = dict[str, Any]
T = TypeVar("T")
_LIST_TABLE = f"list table {FAMILY} {TABLE}"
# Whether the table exists, without reading its chains, rules and elements:
# listing a big table costs as much as comparing it.
_PROBE_TABLE = f"list counters table {FAMILY} {TABLE}"


@dataclass(frozen=True, slots=True)
class ApplyResult:
    """What `apply_ruleset` did. `ok` means the new table is loaded and verified."""

    ok: bool
    diagnostics: tuple[Diagnostic, ...]
    fail_closed: bool = False  # the minimal drop-all table was installed instead
    verified: bool = False
    elements: int = 0
    seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class DriftReport:
    """Differences between the rendered table and the kernel's (empty: no drift)."""

    differences: tuple[str, ...]
    diagnostics: tuple[Diagnostic, ...]

    @property
    def ok(self) -> bool:
        return not self.differences and not self.diagnostics


@dataclass(frozen=True, slots=True)
class TableRemoval:
    """What `remove_table` did. `removed` is False when there was no table to
    remove, or when it could not be removed (then `diagnostics` says why)."""

    removed: bool
    diagnostics: tuple[Diagnostic, ...] = ()


@dataclass(frozen=True, slots=True)
class TableState:
    """A table reduced to what matters for comparison (no handles, no counts)."""

    chains: dict[str, tuple[Any, ...]]
    sets: dict[str, tuple[tuple[str, ...], tuple[str, ...], frozenset[tuple[Any, ...]]]]
    # maps: as sets, with the data type last in the key and the verdict
    # (canonical JSON) last in each element
    maps: dict[str, tuple[tuple[str, ...], tuple[str, ...], frozenset[tuple[Any, ...]]]]
    rules: dict[str, tuple[str, ...]]
    counters: frozenset[str]
    # flags of the table itself: a `dormant` table is all there but never
    # evaluated, so it must not compare equal to the loaded one
    table_flags: tuple[str, ...] = ()


# --- normalisation ---------------------------------------------------------------


def _field(value: Any) -> tuple[Any, Any]:
    """One element field as an inclusive integer interval.

    A field that is no address, prefix, range, number or protocol name (a
    set of interface names or MAC addresses added by hand) is kept as its
    JSON text, so it compares as a difference instead of raising.
    """
    try:
        return _interval(value)
    except (OSError, ValueError, KeyError, TypeError):
        text = json.dumps(value, sort_keys=True)
        return text, text


def _interval(value: Any) -> tuple[int, int]:
    if isinstance(value, dict):
        if "prefix" in value:
            return _prefix(value["prefix"]["addr"], value["prefix"]["len"])
        low, high = value["range"]
        return _interval(low)[0], _interval(high)[1]
    if isinstance(value, int):
        return value, value
    return _scalar(str(value))


@functools.lru_cache(maxsize=65536)
def _scalar(text: str) -> tuple[int, int]:
    """An address or a protocol name; cached, as big sets repeat them a lot."""
    if ":" in text or "." in text:
        point = _address(text)
        return point, point
    number = socket.getprotobyname(text)  # a protocol name, if nft printed one
    return number, number


def _address(text: str) -> int:
    # inet_pton is ~20x faster than ipaddress, which matters at 20k elements.
    family = socket.AF_INET6 if ":" in text else socket.AF_INET
    return int.from_bytes(socket.inet_pton(family, text), "big")


@functools.lru_cache(maxsize=65536)
def _prefix(addr: str, length: int) -> tuple[int, int]:
    bits = 128 if ":" in addr else 32
    host = (1 << (bits - length)) - 1
    base = _address(addr)
    return base & ~host, base | host


def _element(elem: Any) -> tuple[Any, ...]:
    if isinstance(elem, dict) and "elem" in elem:
        elem = elem["elem"]["val"]
    parts = elem["concat"] if isinstance(elem, dict) and "concat" in elem else [elem]
    return tuple(_field(p) for p in parts)


def _map_element(elem: Any) -> tuple[Any, ...]:
    if isinstance(elem, dict) and "elem" in elem:
        elem = elem["elem"]["val"]
    key, data = elem
    return (*_element(key), json.dumps(data, sort_keys=True))


_PORT_PROTOCOL = {6: "tcp", 17: "udp", 132: "sctp", "tcp": "tcp", "udp": "udp",
                  "sctp": "sctp"}
_L4PROTO = {"meta": {"key": "l4proto"}}
_TH_DPORT = {"payload": {"protocol": "th", "field": "dport"}}


def canonical_rule(expr: list[Json]) -> str:
    """A rule's expressions in one canonical spelling, as a comparable string.

    nft lists `meta l4proto 6 ... th dport P` back as `tcp dport P`: the
    protocol match becomes the implicit dependency of the tcp header field.
    Both sides of a comparison go through this, so either spelling of the
    same rule compares equal and any other difference still shows.
    """
    exprs = list(expr)
    for index, item in enumerate(exprs):
        match = item.get("match") if isinstance(item, dict) else None
        if (not match or match.get("op") != "==" or match.get("left") != _L4PROTO
                or not isinstance(match.get("right"), int | str)
                or match["right"] not in _PORT_PROTOCOL):
            continue
        later = next((j for j in range(index + 1, len(exprs))
                      if isinstance(exprs[j], dict) and "match" in exprs[j]
                      and exprs[j]["match"].get("left") == _TH_DPORT), None)
        if later is None:
            continue
        port = exprs[later]["match"]
        exprs[later] = {"match": {**port, "left": {"payload": {
            "protocol": _PORT_PROTOCOL[match["right"]], "field": "dport"}}}}
        del exprs[index]
        break
    return json.dumps(exprs, sort_keys=True)


def _key_type(body: Json) -> list[str]:
    return body["type"] if isinstance(body["type"], list) else [body["type"]]


def _flags(value: Any) -> tuple[str, ...]:
    """A `flags` property as a sorted tuple: nft prints a single flag as a
    plain string in some versions (`"flags": "interval"`) and as a list in
    others (`["interval"]`)."""
    if value is None:
        return ()
    if isinstance(value, list):
        return tuple(sorted(str(v) for v in value))
    return (str(value),)


def _state(objects: list[Json]) -> TableState:
    chains: dict[str, tuple[Any, ...]] = {}
    sets: dict[str, Any] = {}
    maps: dict[str, Any] = {}
    rules: dict[str, list[str]] = {}
    counters: set[str] = set()
    table_flags: tuple[str, ...] = ()
    for obj in objects:
        if "table" in obj:
            table_flags = _flags(obj["table"].get("flags"))
        elif "chain" in obj:
            c = obj["chain"]
            chains[c["name"]] = tuple(c.get(k) for k in ("type", "hook", "prio", "policy"))
        elif "set" in obj:
            s = obj["set"]
            sets[s["name"]] = (tuple(_key_type(s)), _flags(s.get("flags")),
                               frozenset(_element(e) for e in s.get("elem", ())))
        elif "map" in obj:
            m = obj["map"]
            maps[m["name"]] = ((*_key_type(m), f": {m['map']}"), _flags(m.get("flags")),
                               frozenset(_map_element(e) for e in m.get("elem", ())))
        elif "rule" in obj:
            r = obj["rule"]
            rules.setdefault(r["chain"], []).append(canonical_rule(r["expr"]))
        elif "counter" in obj:
            counters.add(obj["counter"]["name"])
    return TableState(chains, sets, maps, {k: tuple(v) for k, v in rules.items()},
                      frozenset(counters), table_flags)


def expected_state(ruleset: Json) -> TableState:
    """The state a rendered ruleset produces (its `add` commands)."""
    return _state([c["add"] for c in ruleset["nftables"] if "add" in c])


def observed_state(listing: Json) -> TableState:
    """The state of `nft -j list table inet policyc` output."""
    return _state([o for o in listing.get("nftables", ()) if "metainfo" not in o])


def compare_states(expected: TableState, observed: TableState) -> tuple[str, ...]:
    """Human-readable differences, empty when the tables match."""
    out: list[str] = []
    if expected.table_flags != observed.table_flags:
        # nft 1.0.6 prints a dormant table's flags garbled, so name no flag
        out.append(f"table {FAMILY} {TABLE} has flags {list(observed.table_flags)} (expected "
                   f"{list(expected.table_flags)}); a dormant table filters nothing")
    for kind, want, have in (("chain", expected.chains, observed.chains),
                             ("set", expected.sets, observed.sets),
                             ("map", expected.maps, observed.maps)):
        for name in sorted(want.keys() | have.keys()):
            if name not in have:
                out.append(f"{kind} {name} is missing")
            elif name not in want:
                out.append(f"{kind} {name} was added by hand")
            elif want[name] != have[name]:
                out.append(_describe_change(kind, name, want[name], have[name]))
    for name in sorted(expected.rules.keys() | observed.rules.keys()):
        want_rules, have_rules = expected.rules.get(name, ()), observed.rules.get(name, ())
        if want_rules != have_rules:
            out.append(f"rules of chain {name} differ: expected {len(want_rules)}, "
                       f"found {len(have_rules)} ({_first_difference(want_rules, have_rules)})")
    if expected.counters != observed.counters:
        out.append(f"counters differ: expected {sorted(expected.counters)}, "
                   f"found {sorted(observed.counters)}")
    return tuple(out)


def _describe_change(kind: str, name: str, want: Any, have: Any) -> str:
    if kind in ("set", "map") and want[:2] == have[:2]:
        added, removed = len(have[2] - want[2]), len(want[2] - have[2])
        return f"{kind} {name}: {added} element(s) added, {removed} removed"
    return f"{kind} {name} changed: expected {want!r}, found {have!r}"


def _first_difference(want: tuple[str, ...], have: tuple[str, ...]) -> str:
    for index, (a, b) in enumerate(zip(want, have, strict=False)):
        if a != b:
            return f"first at rule {index}: found {b}"
    return "rules added or removed at the end"


def element_count(ruleset: Json) -> int:
    """Elements of all sets and maps in a rendered ruleset."""
    return sum(len(body.get("elem", ())) for c in ruleset["nftables"]
               for kind, body in c.get("add", {}).items() if kind in ("set", "map"))


def layout_counts(ruleset: Json) -> dict[str, int]:
    """Objects of a rendered ruleset by kind: elements, named sets and maps,
    chains, rules (the inline class rules are counted with the rules)."""
    adds = [c["add"] for c in ruleset["nftables"] if "add" in c]
    return {"elements": element_count(ruleset),
            "sets": sum(1 for a in adds if "set" in a or "map" in a),
            "chains": sum(1 for a in adds if "chain" in a),
            "rules": sum(1 for a in adds if "rule" in a)}


# --- kernel access ----------------------------------------------------------------


def _read_table(ctx: Any) -> Json | None:
    rc, output, _error = ctx.cmd(_LIST_TABLE)
    return json.loads(output) if rc == 0 and output else None


def _load(ruleset: Json, iface: str | None) -> tuple[list[tuple[str, str]], bool, bool]:
    """Runs inside the namespace: (problems as (code, text), fail_closed, verified)."""
    with paused_collector():
        return _load_and_verify(ruleset, iface)


def _load_and_verify(ruleset: Json, iface: str | None
                     ) -> tuple[list[tuple[str, str]], bool, bool]:
    ctx = new_context()
    had_table = ctx.cmd(_PROBE_TABLE)[0] == 0
    rc, _output, error = ctx.json_cmd(ruleset)
    if rc != 0:
        kept = "the previous table is still in force" if had_table else "no table was loaded"
        problems = [("N501", f"nft rejected the ruleset; {kept}: {error.strip()}")]
        if had_table:
            return problems, False, False
        return problems + _install_fail_closed(ctx, iface), True, False
    listing = _read_table(ctx)
    if listing is None:
        return [("N502", "table inet policyc is not there after loading")], False, False
    differences = compare_states(expected_state(ruleset), observed_state(listing))
    return [("N502", f"read-back differs: {d}") for d in differences], False, not differences


def _install_fail_closed(ctx: Any, iface: str | None) -> list[tuple[str, str]]:
    if iface is None:
        return [("N501", "FAIL-CLOSED TABLE NOT INSTALLED: the ruleset names no interface; "
                 "the mesh interface is UNFILTERED")]
    rc, _output, error = ctx.json_cmd(fail_closed_ruleset(iface))
    if rc != 0:
        return [("N501", f"FAIL-CLOSED TABLE NOT INSTALLED: {error.strip()}; "
                 f"interface {iface} is UNFILTERED")]
    return [("N501", f"installed the fail-closed table: {iface} admits no new flows")]


def _in_namespace(netns: str | None, fn: Callable[[], T], diags: Diagnostics) -> T | None:
    """fn() in netns; namespace and binding failures become diagnostics."""
    if netns is not None and not netns_exists(netns):
        diags.error("N508", NO_SPAN, f"network namespace {netns!r} does not exist")
        return None
    try:
        return run_in_netns(netns, fn)
    except NetnsError as err:
        diags.error("N508", NO_SPAN, str(err))
    except BindingMissing as err:
        diags.error("N504", NO_SPAN, str(err))
    return None


def _iface_present(iface: str, netns: str | None) -> bool:
    """True unless the interface is known to be missing (namespace errors come later)."""
    if netns is not None and not netns_exists(netns):
        return True
    return bool(_in_namespace(netns, lambda: interface_exists(iface, None), Diagnostics()))


def apply_ruleset(ruleset: Json, *, netns: str | None = None,
                  iface: str | None = None) -> ApplyResult:
    """Load `ruleset` (from render_ruleset) in one transaction and verify it.

    On rejection the previous table stays (N501); if there was none, the
    fail-closed table is installed (`fail_closed=True`, N501 says so). A
    missing interface is a warning (N503), not an error: `iifname` matches
    by name, so loading the filter before the interface exists is how a
    node closes the window between "interface up" and "filter loaded".
    """
    start = time.perf_counter()
    diags = Diagnostics()
    if not isinstance(ruleset, dict) or not isinstance(ruleset.get("nftables"), list):
        diags.error("N501", NO_SPAN, "not an nftables JSON ruleset (no `nftables` list)")
        return ApplyResult(False, tuple(diags))
    iface = iface or ruleset_interface(ruleset)
    if not check_enforcer_ready(diags):
        return ApplyResult(False, tuple(diags))
    if iface is not None and not _iface_present(iface, netns):
        diags.warning("N503", NO_SPAN, f"interface {iface} does not exist (yet); "
                      "the filter applies as soon as it appears")
    outcome = _in_namespace(netns, lambda: _load(ruleset, iface), diags)
    if outcome is None:
        return ApplyResult(False, tuple(diags), seconds=time.perf_counter() - start)
    problems, fail_closed, verified = outcome
    for code, text in problems:
        diags.error(code, NO_SPAN, text)
    return ApplyResult(not diags.has_errors, tuple(diags), fail_closed, verified,
                       element_count(ruleset), time.perf_counter() - start)


def fail_closed_if_unfiltered(iface: str, *, netns: str | None = None) -> tuple[Diagnostic, ...]:
    """Install the fail-closed table when no policyc table is loaded.

    For a netmap that cannot be loaded at all: a table already in force
    stays untouched, but an interface that was never filtered must not stay
    open (DESIGN.md: fail closed).
    """
    diags = Diagnostics()
    if not check_enforcer_ready(diags):
        return tuple(diags)

    def install() -> list[tuple[str, str]]:
        ctx = new_context()
        return [] if ctx.cmd(_PROBE_TABLE)[0] == 0 else _install_fail_closed(ctx, iface)

    for code, text in _in_namespace(netns, install, diags) or []:
        diags.error(code, NO_SPAN, text)
    return tuple(diags)


def read_table(netns: str | None = None) -> Json | None:
    """`nft -j list table inet policyc` as JSON, None when there is no table."""
    return run_in_netns(netns, lambda: _read_table(new_context()))


def check_drift(expected: Json, netns: str | None = None) -> DriftReport:
    """Compare the kernel's table with `expected` (a rendered ruleset).

    Detects rules and elements added or removed by hand, chain type/hook/
    policy changes and a deleted table. Counter values are ignored.
    """
    diags = Diagnostics()
    if not check_enforcer_ready(diags):
        return DriftReport((), tuple(diags))
    with paused_collector():
        listing = _in_namespace(netns, lambda: _read_table(new_context()), diags)
        if diags.has_errors:
            return DriftReport((), tuple(diags))
        if listing is None:
            differences: tuple[str, ...] = (f"table {FAMILY} {TABLE} is missing",)
        else:
            differences = compare_states(expected_state(expected), observed_state(listing))
    if differences:
        diags.error("N502", NO_SPAN, f"table {FAMILY} {TABLE} has drifted",
                    notes=differences)
    return DriftReport(differences, tuple(diags))


def repair(expected: Json, *, netns: str | None = None) -> ApplyResult:
    """Re-apply `expected` when the kernel's table has drifted from it."""
    report = check_drift(expected, netns)
    if report.ok:
        return ApplyResult(True, (), verified=True, elements=element_count(expected))
    return apply_ruleset(expected, netns=netns)


def counter_packets(name: str, netns: str | None = None) -> int | None:
    """Packets counted by named counter `name` (e.g. `in_dropped`)."""
    def read() -> int | None:
        rc, output, _ = new_context().cmd(f"list counter {FAMILY} {TABLE} {name}")
        if rc != 0:
            return None
        for obj in json.loads(output)["nftables"]:
            if "counter" in obj:
                return int(obj["counter"]["packets"])
        return None

    return run_in_netns(netns, read)


def remove_table(netns: str | None = None) -> TableRemoval:
    """Delete table `inet policyc` (and nothing else); no table is not an error,
    and the answer says whether there was one.

    For `policyc node down`: the node leaves the tailnet and its filter goes with it.
    """
    diags = Diagnostics()
    if not check_enforcer_ready(diags):
        return TableRemoval(False, tuple(diags))

    def delete() -> tuple[bool, str]:
        """(deleted, why not): (False, "") when there is no table."""
        ctx = new_context()
        if ctx.cmd(_PROBE_TABLE)[0] != 0:
            return False, ""
        rc, _output, error = ctx.cmd(f"delete table {FAMILY} {TABLE}")
        return (True, "") if rc == 0 else (False, str(error).strip() or f"nft exit {rc}")

    removed, failure = _in_namespace(netns, delete, diags) or (False, "")
    if failure:
        diags.error("N501", NO_SPAN, f"cannot delete table {FAMILY} {TABLE}: {failure}")
    return TableRemoval(removed, tuple(diags))

"""Runs a policy's own `tests` and `sshTests` (POLICY-FORMAT §7).

Each failing entry becomes one diagnostic on the entry's string: T301 (an
accept entry is not allowed), T302 (a deny entry is allowed), T303 (a source
or destination matches no address), T304 (an SSH expectation does not hold).
Notes name the rules that decided, with `file:line`.

ACL tests follow Tailscale: they are judged against the rules alone (not
against which node would deliver the packet); the source must match at
least one address and EVERY source address must be allowed, while reaching
ANY address of the destination is enough. A test without `proto` asks about
the default set (TCP, UDP, ICMPv4, ICMPv6): one protocol of it is enough.
So a deny entry passes as soon as one source address cannot reach the
destination, exactly as Tailscale evaluates it.

SSH tests look for the first SSH rule (in file order) that matches the
source node, the destination node and the local user: `accept` users must
meet an accept or check rule, `check` users a check rule, `deny` users none.

Without `--nodes` the tests run against a made-up tailnet (`offline.py`);
what it cannot decide (an address whose owner is unknown, a role nobody is
known to hold) is a T305 warning with the reason, not a failure. The same
holds for role autogroups when the inventory has no `users` list. A user
who owns no node has no access: their accept entries fail, deny entries pass.
"""

from __future__ import annotations

import ipaddress
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from policyc.analysis.address_classes import AddressClasses
from policyc.analysis.offline import (
    is_address,
    is_role,
    representative,
    test_only_users,
    undecided_reason,
    unknown_user_reason,
    with_representatives,
)
from policyc.analysis.offline import synthetic_inventory as synthetic_inventory  # re-export
from policyc.analysis.reference import ReferenceEvaluator, RuleRef, SshVerdict
from policyc.compiler.nodes import Inventory, Node
from policyc.diagnostics.diagnostics import Diagnostics
from policyc.diagnostics.source import NO_SPAN, Span
from policyc.netmap import DEFAULT_PROTOCOLS
from policyc.policy.aliases import PORTED_PROTOCOLS
from policyc.policy.model import (
    Alias,
    AutoGroupRef,
    GroupRef,
    HostRef,
    IPAddress,
    Policy,
    PolicyTest,
    PrefixAlias,
    RangeAlias,
    ServiceRef,
    SshTest,
    TagRef,
    TestTarget,
    UserRef,
)

PROTOCOL_NAMES = {6: "tcp", 17: "udp", 1: "icmp", 58: "ipv6-icmp", 132: "sctp"}
MAX_SOURCE_ADDRESSES = 256  # a test source prefix is checked address by address

EntryKind = Literal["accept", "deny", "check"]


@dataclass(frozen=True, slots=True)
class EntryOutcome:
    """The verdict on one accept/deny/check entry of one test."""

    section: Literal["tests", "sshTests"]
    kind: EntryKind
    text: str
    passed: bool
    span: Span
    decided: bool = True  # False: the outcome needs what only the tailnet can tell (T305)


@dataclass(frozen=True, slots=True)
class TestReport:
    __test__ = False  # not a pytest class

    outcomes: tuple[EntryOutcome, ...]
    synthetic: bool  # evaluated against `synthetic_inventory` (no --nodes given)

    @property
    def passed(self) -> int:
        return sum(1 for o in self.outcomes if o.passed and o.decided)

    @property
    def failed(self) -> int:
        return sum(1 for o in self.outcomes if not o.passed and o.decided)

    @property
    def undecided(self) -> int:
        return sum(1 for o in self.outcomes if not o.decided)

    @property
    def ok(self) -> bool:
        return self.failed == 0

    def summary(self) -> str:
        where = " (synthetic inventory)" if self.synthetic and self.outcomes else ""
        open_ = f", {self.undecided} undecidable" if self.undecided else ""
        return f"{self.passed} test entries passed, {self.failed} failed{open_}{where}"


def run_policy_tests(policy: Policy, inventory: Inventory | None,
                     diags: Diagnostics, *, indexed: bool = True,
                     grouped: bool = True) -> TestReport:
    """Evaluate `tests` and `sshTests`; append one diagnostic per failing entry.

    Without an inventory the tests run against `synthetic_inventory(policy)`.
    `indexed=False` runs the reference evaluator's plain walk over every rule;
    `grouped=False` asks it about every address pair, not once per pair of
    address classes (address_classes.py). The property tests check all give
    the same report and diagnostics.
    """
    synthetic = inventory is None
    if inventory is None:
        policy = with_representatives(policy)
    nodes = synthetic_inventory(policy) if inventory is None else inventory
    evaluator = ReferenceEvaluator(policy, nodes, indexed=indexed)
    classes = AddressClasses(evaluator, grouped=grouped)
    outcomes: list[EntryOutcome] = []
    for test in policy.tests:
        outcomes.extend(_run_test(classes, test, diags, synthetic=synthetic))
    for ssh_test in policy.ssh_tests:
        outcomes.extend(_run_ssh_test(classes, ssh_test, diags, synthetic=synthetic))
    return TestReport(tuple(outcomes), synthetic)


_TEST_ONLY: weakref.WeakKeyDictionary[ReferenceEvaluator, frozenset[str]] = \
    weakref.WeakKeyDictionary()


def _test_only_users(ev: ReferenceEvaluator) -> frozenset[str]:
    """`test_only_users(ev.policy)`, once per evaluator: it walks the whole
    policy, and a 1 MB policy's tests asked once per entry."""
    found = _TEST_ONLY.get(ev)
    if found is None:
        found = _TEST_ONLY[ev] = test_only_users(ev.policy)
    return found


def _undecided(diags: Diagnostics, span: Span, what: str, reason: str) -> None:
    diags.warning("T305", span, f"{what}: cannot be decided without the tailnet",
                  notes=[reason])


def _test_sources(ev: ReferenceEvaluator, src: Alias, synthetic: bool) -> list[IPAddress]:
    """Offline, a group source is its representative member's made-up node."""
    if synthetic and isinstance(src, GroupRef):
        # The nodes whose owner is the representative: the user alias's nodes.
        return [ip for n in ev.nodes_of(UserRef(representative(src.name))) for ip in n.ips]
    return source_addresses(ev, src)


# --- address resolution for tests ------------------------------------------------


def _span_of(alias: Alias, fallback: Span) -> Span:
    return fallback if alias.span == NO_SPAN else alias.span


def source_addresses(ev: ReferenceEvaluator, alias: Alias) -> list[IPAddress]:
    """Every address a test source stands for; empty when it names nothing."""
    if isinstance(alias, UserRef | GroupRef | TagRef | AutoGroupRef):
        return [ip for node in ev.nodes_of(alias) for ip in node.ips]
    network = literal_network(ev, alias)
    if network is None or network.num_addresses > MAX_SOURCE_ADDRESSES:
        return []
    if network.num_addresses == 1:
        return [network.network_address]
    return list(network)


def destination_addresses(classes: AddressClasses, alias: Alias,
                          src_ip: IPAddress) -> list[IPAddress]:
    """The addresses a test destination names; `autogroup:self` is the source's owner."""
    ev = classes.ev
    if isinstance(alias, AutoGroupRef) and alias.name == "autogroup:self":
        src = ev.node_with_address(src_ip)
        owner = src.owner if src is not None else None
        return [ip for n in classes.nodes_owned_by(owner) for ip in n.ips] if owner else []
    if isinstance(alias, UserRef | GroupRef | TagRef | AutoGroupRef):
        return [ip for node in ev.nodes_of(alias) for ip in node.ips]
    network = literal_network(ev, alias)
    if network is None or network.num_addresses != 1:
        return []  # tests name single hosts only
    return [network.network_address]


def literal_network(ev: ReferenceEvaluator, alias: Alias) -> ipaddress.IPv4Network | \
        ipaddress.IPv6Network | None:
    """The prefix an address alias (literal, host, one-address range) stands for."""
    if isinstance(alias, PrefixAlias):
        return alias.network
    if isinstance(alias, HostRef):
        host = ev.policy.hosts.get(alias.name)
        return host.network if host is not None else None
    if isinstance(alias, RangeAlias) and alias.first == alias.last:
        return ipaddress.ip_network(alias.first)
    return None


# --- ACL tests ------------------------------------------------------------------------


def protocol_text(protocols: Iterable[int]) -> str:
    names = [PROTOCOL_NAMES.get(p, str(p)) for p in protocols]
    return names[0] if len(names) == 1 else "{" + ",".join(names) + "}"


@dataclass(frozen=True, slots=True)
class _EntryCheck:
    """For each source address: the rules that let it reach the destination."""

    destinations: tuple[IPAddress, ...]
    allowing: tuple[tuple[IPAddress, tuple[RuleRef, ...]], ...]

    @property
    def allowed(self) -> bool:
        return all(refs for _, refs in self.allowing)

    def denied_sources(self) -> list[IPAddress]:
        return [src for src, refs in self.allowing if not refs]


def _check_entry(classes: AddressClasses, sources: list[IPAddress], target: TestTarget,
                 protocols: tuple[int, ...]) -> _EntryCheck:
    allowing: list[tuple[IPAddress, tuple[RuleRef, ...]]] = []
    all_dsts: dict[IPAddress, None] = {}  # in order of first appearance
    # A port-less protocol (an ICMP test) matches rules on addresses and
    # protocol alone, as Tailscale's packet filter does for ICMP.
    port = target.port if any(p in PORTED_PROTOCOLS for p in protocols) else None
    # Only `autogroup:self` names other addresses for each source.
    per_source = isinstance(target.alias, AutoGroupRef) and target.alias.name == "autogroup:self"
    firsts: tuple[IPAddress, ...] | None = None
    for src in sources:
        if firsts is None or per_source:
            dsts = destination_addresses(classes, target.alias, src)
            all_dsts.update(dict.fromkeys(dsts))
            firsts = classes.first_of_each(dsts)
        # The rules in the order per destination, then per protocol.
        allowing.append((src, classes.merged_allowing(src, firsts, protocols, port)))
    return _EntryCheck(tuple(all_dsts), tuple(allowing))


def _run_test(classes: AddressClasses, test: PolicyTest, diags: Diagnostics, *,
              synthetic: bool) -> list[EntryOutcome]:
    ev = classes.ev
    entries: list[tuple[EntryKind, TestTarget]] = (
        [("accept", t) for t in test.accept] + [("deny", t) for t in test.deny])
    if is_role(test.src) and not ev.inventory.knows_roles:
        _undecided(diags, _span_of(test.src, test.span), f'test source "{test.src_text}"',
                   "who holds a role is unknown: give the inventory a users list with roles")
        return [EntryOutcome("tests", k, t.text, False, t.span, decided=False)
                for k, t in entries]
    sources = _test_sources(ev, test.src, synthetic)
    if not sources and isinstance(test.src, UserRef):
        return [_unknown_user(test, kind, target, diags) for kind, target in entries]
    if not sources:
        diags.error("T303", _span_of(test.src, test.span),
                    f'test source "{test.src_text}" matches no address',
                    notes=["a test source must name at least one node or a single host"])
        return [EntryOutcome("tests", k, t.text, False, t.span) for k, t in entries]
    protocols = (test.protocol,) if test.protocol is not None else DEFAULT_PROTOCOLS
    outcomes = []
    for kind, target in entries:
        if isinstance(target.alias, ServiceRef):
            _undecided(diags, target.span, f'test destination "{target.text}"',
                       "Tailscale Services have no addresses in the inventory; policyc does "
                       "not compile them")
            outcomes.append(EntryOutcome("tests", kind, target.text, False, target.span,
                                         decided=False))
            continue
        passed = _judge_entry(classes, test, sources, kind, target, protocols, diags,
                              synthetic=synthetic)
        outcomes.append(EntryOutcome("tests", kind, target.text, bool(passed), target.span,
                                     decided=passed is not None))
    return outcomes


def _unknown_user(test: PolicyTest, kind: EntryKind, target: TestTarget,
                  diags: Diagnostics) -> EntryOutcome:
    """A user who owns no node has no access: accept fails, deny holds (captured:
    policytest-src-unknown-user-email fails its accept entry)."""
    if kind == "accept":
        diags.error("T301", target.span,
                    f'expected "{test.src_text}" to reach "{target.text}", but that user '
                    "owns no node, and an unknown user has no access")
    return EntryOutcome("tests", kind, target.text, kind == "deny", target.span)


def _judge_entry(classes: AddressClasses, test: PolicyTest, sources: list[IPAddress],
                 kind: str, target: TestTarget, protocols: tuple[int, ...],
                 diags: Diagnostics, *, synthetic: bool) -> bool | None:
    """True: the entry holds; False: it fails (an error); None: undecidable (T305)."""
    ev = classes.ev
    check = _check_entry(classes, sources, target, protocols)
    traffic = f"{protocol_text(protocols)}/{target.port}"
    if not check.destinations:
        diags.error("T303", target.span, f'test destination "{target.text}" matches no address',
                    notes=["a test destination must name a node or a single host"])
        return False
    if check.allowed and synthetic and isinstance(test.src, UserRef) \
            and test.src.login in _test_only_users(ev):
        _undecided(diags, target.span, f'test {kind} "{target.text}"',
                   unknown_user_reason(test.src))
        return None
    if not check.allowed:
        reason = undecided_reason(ev, test.src, target.alias, sources,
                                  list(check.destinations), protocols, target.port,
                                  synthetic=synthetic)
        if reason is not None:
            _undecided(diags, target.span, f'test {kind} "{target.text}"', reason)
            return None
    if kind == "accept" and not check.allowed:
        denied = check.denied_sources()
        dsts = ", ".join(str(d) for d in check.destinations)
        diags.error(
            "T301", target.span,
            f'expected "{test.src_text}" to reach "{target.text}" ({traffic}), but '
            f"{len(denied)} of its {len(sources)} address(es) cannot",
            notes=[f"no rule allows {traffic} from {_label(ev, src)} to {dsts}"
                   for src in denied])
        return False
    if kind == "deny" and check.allowed:
        diags.error(
            "T302", target.span,
            f'expected "{test.src_text}" not to reach "{target.text}" ({traffic}), '
            "but every one of its addresses can",
            notes=_allowing_notes(check))
        return False
    return True


def _label(ev: ReferenceEvaluator, ip: IPAddress) -> str:
    """An address with the node that holds it, e.g. `100.64.0.1 (laptop-a)`."""
    node = ev.node_with_address(ip)
    return f"{ip} ({node.name})" if node is not None else str(ip)


def _allowing_notes(check: _EntryCheck) -> list[str]:
    by_rule: dict[RuleRef, list[str]] = {}
    for src, refs in check.allowing:
        for ref in refs:
            by_rule.setdefault(ref, []).append(str(src))
    return [f"allowed by {ref.describe()}: {_one_line(ref.text)} (from {', '.join(srcs)})"
            for ref, srcs in by_rule.items()]


def _one_line(text: str, limit: int = 100) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


# --- SSH tests --------------------------------------------------------------------------


def _ssh_nodes(classes: AddressClasses, alias: Alias, src: Node | None = None, *,
               synthetic: bool = False) -> list[Node]:
    ev = classes.ev
    if synthetic and isinstance(alias, GroupRef):
        return list(classes.nodes_owned_by(representative(alias.name)))
    if isinstance(alias, AutoGroupRef) and alias.name == "autogroup:self":
        owner = src.owner if src is not None else None
        return list(classes.nodes_owned_by(owner)) if owner else []
    if isinstance(alias, UserRef | GroupRef | TagRef | AutoGroupRef):
        return ev.nodes_of(alias)
    network = literal_network(ev, alias)
    if network is None:
        return []
    return [n for n in ev.inventory if any(ip in network for ip in n.ips
                                           if ip.version == network.version)]


def _ipv6_address(ev: ReferenceEvaluator, alias: Alias) -> bool:
    network = literal_network(ev, alias)
    return network is not None and network.version == 6


def _run_ssh_test(classes: AddressClasses, test: SshTest, diags: Diagnostics, *,
                  synthetic: bool) -> list[EntryOutcome]:
    ev = classes.ev
    entries: list[tuple[EntryKind, str]] = (
        [("accept", u) for u in test.accept] + [("check", u) for u in test.check]
        + [("deny", u) for u in test.deny])
    reason = None
    if is_role(test.src) and not ev.inventory.knows_roles:
        reason = "who holds a role is unknown: give the inventory a users list with roles"
    elif synthetic and any(is_address(a) for a in (test.src, *test.destinations)):
        reason = "which node holds an address needs the inventory (--nodes)"
    if reason is not None:
        _undecided(diags, _span_of(test.src, test.span), f'SSH test of "{test.src_text}"',
                   reason)
        return [EntryOutcome("sshTests", k, u, False, _user_span(test, k, u), decided=False)
                for k, u in entries]
    ipv6 = next((a for a in test.destinations if _ipv6_address(ev, a)), None)
    if ipv6 is not None:
        diags.error("T303", _span_of(ipv6, test.span),
                    f'SSH test destination "{ipv6}" is an IPv6 address: Tailscale fails '
                    "such a test",
                    notes=["captured: sshtest-malformed-dst-bare-ipv6 fails while the same "
                           "test with the node's IPv4 address passes; name the node's IPv4 "
                           "address, tag or user instead"])
        return [EntryOutcome("sshTests", k, u, False, _user_span(test, k, u))
                for k, u in entries]
    sources = _ssh_nodes(classes, test.src, synthetic=synthetic)
    pairs = [(s, d) for s in sources for alias in test.destinations
             for d in _ssh_nodes(classes, alias, s)]
    if not sources or not pairs:
        what = "source" if not sources else "destination"
        diags.error("T303", _span_of(test.src, test.span),
                    f'SSH test {what} of "{test.src_text}" matches no node')
        return [EntryOutcome("sshTests", k, u, False, _user_span(test, k, u))
                for k, u in entries]
    outcomes = []
    for kind, user in entries:
        passed = _judge_ssh_entry(classes, test, pairs, kind, user, diags,
                                  synthetic=synthetic)
        outcomes.append(EntryOutcome("sshTests", kind, user, bool(passed),
                                     _user_span(test, kind, user), decided=passed is not None))
    return outcomes


def _judge_ssh_entry(classes: AddressClasses, test: SshTest, pairs: list[tuple[Node, Node]],
                     kind: EntryKind, user: str, diags: Diagnostics, *,
                     synthetic: bool) -> bool | None:
    """True: holds; False: fails (T304); None: undecidable (T305)."""
    ev = classes.ev
    wrong: list[tuple[Node, Node, SshVerdict]] = []
    open_pairs: list[tuple[Node, Node]] = []  # a role rule could still change these
    granted = False
    for src, dst in pairs:
        verdict = classes.ssh_verdict(src, dst, user)
        granted = granted or verdict.action is not None
        if not _ssh_expectation_holds(kind, verdict):
            wrong.append((src, dst, verdict))
            open_pairs.append((src, dst))
        elif verdict.action is None:
            open_pairs.append((src, dst))
    span = _user_span(test, kind, user)
    reason = next((r for s, d in open_pairs
                   if (r := classes.ssh_role_reason(s, d, user))), None)
    if reason is None and granted and synthetic and isinstance(test.src, UserRef) \
            and test.src.login in _test_only_users(ev):
        reason = unknown_user_reason(test.src)
    if reason is not None:
        _undecided(diags, span, f'SSH test user "{user}"', reason)
        return None
    if not wrong:
        return True
    expected = {"accept": "be allowed", "check": "need a check", "deny": "be denied"}[kind]
    diags.error("T304", _user_span(test, kind, user),
                f'expected "{test.src_text}" to {expected} as SSH user "{user}", '
                f"but {len(wrong)} of {len(pairs)} source/destination pair(s) differ",
                notes=[f"{s.name} -> {d.name}: {v.describe()}" for s, d, v in wrong])
    return False


def _ssh_expectation_holds(kind: EntryKind, verdict: SshVerdict) -> bool:
    if kind == "accept":
        return verdict.action in ("accept", "check")
    if kind == "check":
        return verdict.action == "check"
    return verdict.action is None


def _user_span(test: SshTest, kind: str, user: str) -> Span:
    """The span of `"user"` inside the test's `kind` list; the test's span if not found."""
    text = test.span.text
    key = text.find(f'"{kind}"')
    at = text.find(f'"{user}"', key) if key >= 0 else -1
    if at < 0:
        return test.span
    start = test.span.start + at
    return Span(test.span.source, start, start + len(user) + 2)

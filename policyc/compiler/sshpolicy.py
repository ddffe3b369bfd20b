"""Per-node SSH policy (POLICY-FORMAT §6) as `tailcfg.SSHPolicy` wire JSON.

A node's `ssh_policy` is exactly what Tailscale's control plane sends it
(captured, ../shared/conformance/tailscale-more category `ssh`):

    {"rules": [{"principals": [{"nodeIP": "100.64.0.1"}, ...],
                "sshUsers": {"*": "=", "root": ""},
                "action": {"accept": true, "allowAgentForwarding": true, ...},
                "acceptEnv": ["GIT_*"]}]}

How the control plane lays it out (each point is captured):
- sources become `nodeIP` principals, every address of every source node;
  user-owned nodes are grouped per user (each address once), tagged nodes are
  listed once per tag they carry (a node with two tags appears twice);
- `sshUsers` always has `root` ("root" when allowed, "" when not), `"*": "="`
  for autogroup:nonroot, and each named user mapped to itself;
- `localpart:*@DOMAIN` splits a rule per source user: the common rule, then
  `{LOCALPART: LOCALPART}` for that user's own nodes; a source node that is no
  destination still gets rules naming only itself (headscale names all of the
  user's source devices there; the captures, one device per user, cannot tell,
  and we grant the narrower);
- `check` becomes `holdAndDelegate` (the control URL); `accept` allows agent
  and port forwarding; check rules come before accept rules (stable);
- a rule whose sources match no node is left out; every node gets
  `{"rules": [...]}`, empty or not.

`recorder` / `enforceRecorder` (Tailscale docs, not captured) add
`recorders` ("IP:80", lowest address first, as Tailscale tries them) and,
when enforced, `onRecordingFailure` messages so the session fails closed.

`SshCompiler` resolves each rule once per (policy, inventory); `for_node`
is then a function of one node, so the incremental index can call it alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from policyc.compiler.nodes import Node
from policyc.compiler.resolve import SELF, Resolver
from policyc.netmap import address_text
from policyc.policy.build_rules import localpart_domain
from policyc.policy.model import (
    HostRef,
    IPAddress,
    Policy,
    PrefixAlias,
    SshRule,
    TagRef,
    UserRef,
)

NONROOT = "autogroup:nonroot"
# The URL a check rule delegates to when no control server is configured: the
# captures were recorded (and anonymised by headscale) with this base.
NO_CONTROL_URL = "https://unused"
CHECK_PATH = "/machine/ssh/action/$SRC_NODE_ID/to/$DST_NODE_ID?local_user=$LOCAL_USER"
RECORDER_PORT = 80  # tsrecorder listens on port 80 of its tailnet addresses
RECORDING_REJECTED = "session recording is required but no recorder could be reached"
RECORDING_TERMINATED = "session recording failed; the session is closed"


def users_map(users: Iterable[str]) -> dict[str, str]:
    """The `sshUsers` map shared by every rule of one `ssh` entry (localparts apart)."""
    users = tuple(users)
    mapping: dict[str, str] = {}
    if NONROOT in users:
        mapping["*"] = "="
    mapping["root"] = "root" if "root" in users else ""
    for user in users:
        if user not in (NONROOT, "root") and localpart_domain(user) is None:
            mapping[user] = user
    return mapping


def check_url(control_url: str) -> str:
    return control_url.rstrip("/") + CHECK_PATH


class _Principals:
    """`nodeIP` principal lists of one snapshot of the inventory's nodes, made on
    demand and shared: a user's devices are named alike by every rule whose sources
    hold that user, and rules with the same sources share one list of everyone.
    The node event patcher swaps the resolver's `nodes` tuple, so a snapshot keeps
    the tuple it read (its lists stay true for the rules resolved against it)."""

    def __init__(self, nodes: tuple[Node, ...]) -> None:
        self.nodes = nodes
        self._lists: dict[tuple[int, ...], list[dict[str, str]]] = {}
        self._everyone: dict[frozenset[int], list[dict[str, str]]] = {}

    def of(self, indexes: tuple[int, ...]) -> list[dict[str, str]]:
        made = self._lists.get(indexes)
        if made is None:
            made = self._lists[indexes] = _principals(indexes, self.nodes)
        return made

    def everyone(self, rule: _ResolvedRule) -> list[dict[str, str]]:
        made = self._everyone.get(rule.sources)
        if made is None:
            made = [p for user in rule.users for p in self.of(rule.user_nodes[user])]
            made += rule.tagged
            self._everyone[rule.sources] = made
        return made


@dataclass(frozen=True, slots=True)
class _Targets:
    """Which nodes an `ssh` entry can give rules to (its destinations' side)."""

    to_self: bool  # autogroup:self is a destination
    destinations: frozenset[int]  # nodes named by the other destinations (not users)
    user_destinations: frozenset[int]  # nodes of the users named as destinations
    has_other_destinations: bool
    domains: frozenset[str]  # of `localpart:*@DOMAIN` users


@dataclass(frozen=True, slots=True)
class _ResolvedRule:
    """One `ssh` entry resolved against the inventory: everything `for_node` needs.
    Principal lists are made when a node first needs them (one node's netmap needs
    only the rules reaching it), from the snapshot the rule was resolved against."""

    sources: frozenset[int]
    users: tuple[str, ...]  # owners of user-owned source nodes, first-seen order
    user_nodes: dict[str, tuple[int, ...]]  # owner -> its source nodes
    tagged_nodes: tuple[int, ...]  # tagged source nodes
    to_self: bool  # autogroup:self is a destination
    destinations: frozenset[int]  # nodes named by the other destinations (not users)
    user_destinations: frozenset[int]  # nodes of the users named as destinations
    has_other_destinations: bool
    ssh_users: dict[str, str]
    has_localpart: bool  # a `localpart:*@DOMAIN` user: rules split per source user
    localparts: dict[str, str]  # owner login -> its local part, for those domains
    action: dict[str, Any]
    accept_env: tuple[str, ...]
    principals: _Principals
    memo: dict[str, list[dict[str, str]]] = field(default_factory=dict, compare=False)

    def by_user(self, user: str | None) -> list[dict[str, str]] | None:
        """Principals of `user`'s source nodes; None if the user has none."""
        nodes = self.user_nodes.get(user) if user is not None else None
        return self.principals.of(nodes) if nodes is not None else None

    @property
    def tagged(self) -> list[dict[str, str]]:
        """Principals of tagged source nodes, once per tag."""
        made = self.memo.get("tagged")
        if made is None:
            nodes = self.principals.nodes
            made = self.memo["tagged"] = [
                p for i in self.tagged_nodes for _ in nodes[i].tags
                for p in _principals((i,), nodes)]
        return made

    @property
    def everyone(self) -> list[dict[str, str]]:
        """Every user's principals, then the tagged ones (shared by destinations)."""
        return self.principals.everyone(self)

    def wire(self, principals: list[dict[str, str]],
             ssh_users: dict[str, str]) -> dict[str, Any]:
        rule: dict[str, Any] = {"principals": principals, "sshUsers": ssh_users,
                                "action": self.action}
        if self.accept_env:
            rule["acceptEnv"] = list(self.accept_env)
        return rule


class SshCompiler:
    """The SSH policy of every node of one (policy, inventory)."""

    def __init__(self, policy: Policy, resolver: Resolver,
                 control_url: str = NO_CONTROL_URL, *, one_node: bool = False) -> None:
        """`one_node`: `for_node` will be asked once (`policyc compile --node`): resolve
        only the rules that can reach that node, then (`rules` stays empty)."""
        self.r = resolver
        self.policy = policy
        self.control_url = control_url
        self.one_node = one_node
        self._principals = _Principals(resolver.nodes)
        self.rules = [] if one_node else [self._resolve(rule) for rule in policy.ssh]

    def for_node(self, index: int, only: Sequence[int] | None = None) -> dict[str, Any]:
        """`tailcfg.SSHPolicy` JSON for node `index` (`only`: of these rules alone, which
        the node event patcher compares)."""
        node = self.r.nodes[index]
        owner = node.owner
        out: list[dict[str, Any]] = []
        rules = (self._reaching(index, owner) if self.one_node else
                 self.rules if only is None else [self.rules[k] for k in only])
        for rule in rules:
            if not rule.sources:
                continue
            mine = rule.by_user(owner)
            if rule.to_self and mine:
                _emit(out, rule, mine, owner)
            if not rule.has_other_destinations:
                continue
            if index in rule.user_destinations and index not in rule.destinations:
                # A user-owned device named as a user: only its owner's own devices
                # (SSH into another user's device is never allowed; autogroup
                # sources beside the user add nothing). Once, if self already did.
                if mine and not rule.to_self:
                    _emit(out, rule, mine, owner)
            elif index in rule.destinations:
                if rule.has_localpart:
                    for user in rule.users:
                        _emit(out, rule, rule.principals.of(rule.user_nodes[user]), user)
                    if rule.tagged:
                        _emit(out, rule, rule.tagged, None)
                elif rule.everyone:
                    _emit(out, rule, rule.everyone, None)
            elif rule.has_localpart and index in rule.sources:
                # SaaS gives a localpart source that is no destination rules naming
                # itself (captured, one device per user). Only the node itself: its
                # owner's other devices are not destinations and get no access here.
                _emit(out, rule, _principals((index,), self.r.nodes), owner)
        checks = [r for r in out if "holdAndDelegate" in r["action"]]
        return {"rules": checks + [r for r in out if "holdAndDelegate" not in r["action"]]}

    # --- resolution (once per policy and inventory) ------------------------------------

    def _reaching(self, index: int, owner: str | None) -> list[_ResolvedRule]:
        """The rules that may give node `index` anything, resolved (sources are the
        costly part: a thousand rules from groups of thousands of devices)."""
        out = []
        for rule in self.policy.ssh:
            targets = self._targets(rule)
            if ((targets.to_self and owner is not None) or targets.domains
                    or index in targets.destinations or index in targets.user_destinations):
                out.append(self._resolve(rule, targets))
        return out

    def _targets(self, rule: SshRule) -> _Targets:
        r = self.r
        others = [d for d in rule.destinations if str(d) != SELF]
        return _Targets(
            to_self=any(str(d) == SELF for d in rule.destinations),
            destinations=frozenset(i for d in others if not isinstance(d, UserRef)
                                   for i in r.alias_nodes(d)),
            user_destinations=frozenset(i for d in others if isinstance(d, UserRef)
                                        for i in r.alias_nodes(d)),
            has_other_destinations=bool(others),
            domains=frozenset(d for u in rule.users
                              if (d := localpart_domain(u)) is not None))

    def _resolve(self, rule: SshRule, targets: _Targets | None = None) -> _ResolvedRule:
        r = self.r
        if self._principals.nodes is not r.nodes:  # the node event patcher swapped them
            self._principals = _Principals(r.nodes)
        t = targets or self._targets(rule)
        sources = sorted({i for a in rule.sources for i in r.alias_nodes(a)})
        users: list[str] = []
        by_user: dict[str, list[int]] = {}
        tagged: list[int] = []
        for i in sources:
            node = r.nodes[i]
            if node.tags:
                tagged.append(i)
            elif (owner := node.user) is not None:  # untagged: its user owns it
                if owner not in by_user:
                    users.append(owner)
                    by_user[owner] = [i]
                else:
                    by_user[owner].append(i)
        return _ResolvedRule(
            sources=frozenset(sources),
            users=tuple(users),
            user_nodes={u: tuple(nodes) for u, nodes in by_user.items()},
            tagged_nodes=tuple(tagged),
            to_self=t.to_self,
            destinations=t.destinations,
            user_destinations=t.user_destinations,
            has_other_destinations=t.has_other_destinations,
            ssh_users=users_map(rule.users),
            has_localpart=bool(t.domains),
            localparts=_localparts(users, t.domains) if t.domains else {},
            action=self._action(rule),
            accept_env=rule.accept_env,
            principals=self._principals,
        )

    def _action(self, rule: SshRule) -> dict[str, Any]:
        action: dict[str, Any]
        if rule.action == "check":
            action = {"holdAndDelegate": check_url(self.control_url)}
        else:
            action = {"accept": True, "allowAgentForwarding": True,
                      "allowLocalPortForwarding": True, "allowRemotePortForwarding": True}
        if not rule.recorder:
            return action
        recorders = self._recorders(rule)
        if recorders:
            action["recorders"] = recorders
        if rule.enforce_recorder and not recorders:
            # Enforced recording with no recorder in the tailnet: fail closed.
            return {"reject": True, "message": RECORDING_REJECTED}
        if rule.enforce_recorder:
            action["onRecordingFailure"] = {
                "RejectSessionWithMessage": RECORDING_REJECTED,
                "TerminateSessionWithMessage": RECORDING_TERMINATED,
            }
        return action

    def _recorders(self, rule: SshRule) -> list[str]:
        """Every recorder address as "IP:80", lowest first (Tailscale tries them in order)."""
        addresses: set[IPAddress] = set()
        for alias in rule.recorder:
            if isinstance(alias, TagRef):
                addresses.update(ip for i in self.r.by_tag.get(alias.name, ())
                                 for ip in self.r.nodes[i].ips)
            elif isinstance(alias, PrefixAlias):
                addresses.add(alias.network.network_address)
            elif isinstance(alias, HostRef) and alias.name in self.policy.hosts:
                addresses.add(self.policy.hosts[alias.name].network.network_address)
        ordered = sorted(addresses, key=lambda ip: (ip.version, int(ip)))
        return [f"{ip}:{RECORDER_PORT}" if ip.version == 4 else f"[{ip}]:{RECORDER_PORT}"
                for ip in ordered]


def _emit(out: list[dict[str, Any]], rule: _ResolvedRule,
          principals: list[dict[str, str]], user: str | None) -> None:
    """The common rule and, for a user with a localpart, that user's own rule."""
    out.append(rule.wire(principals, rule.ssh_users))
    local = rule.localparts.get(user) if user is not None else None
    if local is not None:
        out.append(rule.wire(principals, {local: local}))


def _principals(indexes: Iterable[int], nodes: tuple[Node, ...]) -> list[dict[str, str]]:
    """`nodeIP` principals: the nodes' addresses, each once, IPv4 first, ascending."""
    ips = {(ip.version == 6, int(ip)) for i in indexes for ip in nodes[i].ips}
    return [{"nodeIP": address_text(value, v6)} for v6, value in sorted(ips)]


def _localparts(logins: Iterable[str], domains: frozenset[str]) -> dict[str, str]:
    """login -> its local part, for logins in one of `domains` (case-insensitive)."""
    wanted = {d.lower() for d in domains}
    out: dict[str, str] = {}
    for login in logins:
        local, at, domain = login.rpartition("@")
        if at and local and domain.lower() in wanted:
            out[login] = local
    return out

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

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from policyc.compiler.resolve import SELF, Resolver
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


@dataclass(frozen=True, slots=True)
class _ResolvedRule:
    """One `ssh` entry resolved against the inventory: everything `for_node` needs."""

    sources: frozenset[int]
    users: tuple[str, ...]  # owners of user-owned source nodes, first-seen order
    by_user: dict[str, list[dict[str, str]]]  # owner -> principals of its source nodes
    tagged: list[dict[str, str]]  # principals of tagged source nodes, once per tag
    everyone: list[dict[str, str]]  # every user's principals, then the tagged ones
    to_self: bool  # autogroup:self is a destination
    destinations: frozenset[int]  # nodes named by the other destinations (not users)
    user_destinations: frozenset[int]  # nodes of the users named as destinations
    has_other_destinations: bool
    ssh_users: dict[str, str]
    has_localpart: bool  # a `localpart:*@DOMAIN` user: rules split per source user
    localparts: dict[str, str]  # owner login -> its local part, for those domains
    action: dict[str, Any]
    accept_env: tuple[str, ...]

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
                 control_url: str = NO_CONTROL_URL) -> None:
        self.r = resolver
        self.policy = policy
        self.control_url = control_url
        self.rules = [self._resolve(rule) for rule in policy.ssh]

    def for_node(self, index: int) -> dict[str, Any]:
        """`tailcfg.SSHPolicy` JSON for node `index`."""
        node = self.r.nodes[index]
        owner = node.owner
        out: list[dict[str, Any]] = []
        for rule in self.rules:
            if not rule.sources:
                continue
            mine = rule.by_user.get(owner) if owner is not None else None
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
                        _emit(out, rule, rule.by_user[user], user)
                    if rule.tagged:
                        _emit(out, rule, rule.tagged, None)
                elif rule.everyone:
                    _emit(out, rule, rule.everyone, None)
            elif rule.has_localpart and index in rule.sources:
                # SaaS gives a localpart source that is no destination rules naming
                # itself (captured, one device per user). Only the node itself: its
                # owner's other devices are not destinations and get no access here.
                _emit(out, rule, _principals([index], self.r), owner)
        checks = [r for r in out if "holdAndDelegate" in r["action"]]
        return {"rules": checks + [r for r in out if "holdAndDelegate" not in r["action"]]}

    # --- resolution (once per policy and inventory) ------------------------------------

    def _resolve(self, rule: SshRule) -> _ResolvedRule:
        r = self.r
        sources = sorted({i for a in rule.sources for i in r.alias_nodes(a)})
        users: list[str] = []
        by_user: dict[str, list[int]] = {}
        tagged: list[dict[str, str]] = []
        for i in sources:
            node = r.nodes[i]
            if node.tags:
                tagged.extend(p for _ in node.tags for p in _principals([i], r))
            elif node.owner is not None:
                if node.owner not in by_user:
                    users.append(node.owner)
                by_user.setdefault(node.owner, []).append(i)
        others = [d for d in rule.destinations if str(d) != SELF]
        destinations = {i for d in others if not isinstance(d, UserRef)
                        for i in r.alias_nodes(d)}
        user_destinations = {i for d in others if isinstance(d, UserRef)
                             for i in r.alias_nodes(d)}
        domains = {d for u in rule.users if (d := localpart_domain(u)) is not None}
        principals = {u: _principals(nodes, r) for u, nodes in by_user.items()}
        return _ResolvedRule(
            sources=frozenset(sources),
            users=tuple(users),
            by_user=principals,
            tagged=tagged,
            # Shared by every destination's netmap (read-only JSON), built once.
            everyone=[p for user in users for p in principals[user]] + tagged,
            to_self=any(str(d) == SELF for d in rule.destinations),
            destinations=frozenset(destinations),
            user_destinations=frozenset(user_destinations),
            has_other_destinations=bool(others),
            ssh_users=users_map(rule.users),
            has_localpart=bool(domains),
            localparts=_localparts(users, domains),
            action=self._action(rule),
            accept_env=rule.accept_env,
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


def _principals(nodes: Iterable[int], r: Resolver) -> list[dict[str, str]]:
    """`nodeIP` principals: the nodes' addresses, each once, IPv4 first, ascending."""
    ips = {ip for i in nodes for ip in r.nodes[i].ips}
    return [{"nodeIP": str(ip)} for ip in sorted(ips, key=lambda ip: (ip.version, int(ip)))]


def _localparts(logins: Iterable[str], domains: set[str]) -> dict[str, str]:
    """login -> its local part, for logins in one of `domains` (case-insensitive)."""
    wanted = {d.lower() for d in domains}
    out: dict[str, str] = {}
    for login in logins:
        local, at, domain = login.rpartition("@")
        if at and local and domain.lower() in wanted:
            out[login] = local
    return out

"""Per-node SSH policy (POLICY-FORMAT §6), shaped like tailcfg.SSHPolicy.

A node gets one rule per `ssh` rule whose destinations include it
(autogroup:self: the same user's devices). Principals are the source
nodes' addresses; `ssh_users` maps requested login -> local user, with
`"*": "="` for autogroup:nonroot and `"root": ""` when root is not allowed.
Check rules come first, as Tailscale evaluates most-restrictive first.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from policyc.compiler.resolve import SELF, Resolver
from policyc.policy.model import Policy, SshRule

NONROOT = "autogroup:nonroot"
DEFAULT_CHECK_PERIOD = timedelta(hours=12)


def _users_map(users: tuple[str, ...]) -> dict[str, str]:
    mapping: dict[str, str] = {}
    if NONROOT in users:
        mapping["*"] = "="
    mapping["root"] = "root" if "root" in users else ""
    for user in users:
        if user not in (NONROOT, "root"):
            mapping[user] = user
    return mapping


def _action(rule: SshRule) -> dict[str, Any]:
    if rule.action != "check":
        return {"accept": True}
    period = rule.check_period or DEFAULT_CHECK_PERIOD
    seconds = 0 if period == timedelta.max else int(period.total_seconds())
    return {"check": True, "check_period_seconds": seconds}


class SshCompiler:
    def __init__(self, policy: Policy, resolver: Resolver) -> None:
        self.rules = policy.ssh
        self.r = resolver
        self._src_nodes = [self._union_nodes(rule.sources) for rule in self.rules]
        self._dst_nodes = [
            set(self._union_nodes(tuple(d for d in rule.destinations if str(d) != SELF)))
            for rule in self.rules
        ]

    def _union_nodes(self, aliases: tuple[Any, ...]) -> list[int]:
        return sorted({i for a in aliases for i in self.r.alias_nodes(a)})

    def for_node(self, index: int) -> dict[str, Any]:
        if not self.rules:
            return {}
        node = self.r.nodes[index]
        out: list[dict[str, Any]] = []
        for k, rule in enumerate(self.rules):
            principals = self._principals(k, rule, index, node.owner)
            if principals:
                out.append({
                    "principals": [{"node_ip": ip} for ip in principals],
                    "ssh_users": _users_map(rule.users),
                    "action": _action(rule),
                    "accept_env": list(rule.accept_env),
                    "rule": rule.span.location(),
                })
        out.sort(key=lambda r: not r["action"].get("check", False))
        return {"rules": out}

    def _principals(self, k: int, rule: SshRule, index: int, owner: str | None) -> list[str]:
        sources = self._src_nodes[k]
        chosen: set[int] = set()
        if index in self._dst_nodes[k]:
            chosen.update(sources)
        if owner is not None and any(str(d) == SELF for d in rule.destinations):
            same_user = set(self.r.by_user.get(owner, ()))
            chosen.update(i for i in sources if i in same_user)
        return sorted(str(ip) for i in chosen for ip in self.r.nodes[i].ips)

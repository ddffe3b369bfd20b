"""Compiler behaviour on POLICY-FORMAT §9's worked examples and a few more."""

from __future__ import annotations

import ipaddress
import json

import pytest

from policyc.compiler.compiler import CompiledPolicy, compile_policy
from policyc.compiler.nodes import Inventory, Node
from policyc.diagnostics.diagnostics import Diagnostics
from policyc.diagnostics.source import SourceFile
from policyc.grammar.hujson import parse
from policyc.policy.build import build_policy
from policyc.policy.model import Policy

V6 = "fd7a:115c:a1e0::"


def node(name: str, user: str | None, tags: list[str], n: int, routes: tuple[str, ...] = (),
         exit_node: bool = False) -> Node:
    return Node(name, user, tuple(tags),
                (ipaddress.ip_address(f"100.64.0.{n}"), ipaddress.ip_address(f"{V6}{n:x}")),
                key=f"key-{name}", routes=tuple(ipaddress.ip_network(r) for r in routes),
                exit_node=exit_node)


INVENTORY = Inventory.of([
    node("laptop-a", "alice@example.com", [], 1),
    node("phone-a", "alice@example.com", [], 2),
    node("laptop-b", "bob@example.com", [], 3),
    node("web", "alice@example.com", ["tag:web"], 10),
    node("db", "alice@example.com", ["tag:db"], 11),
    node("router", "bob@example.com", ["tag:router"], 20, ("10.1.0.0/16",)),
    node("exit", "bob@example.com", ["tag:exit"], 30, (), True),
])

HEADER = {
    "groups": {"group:eng": ["alice@example.com", "bob@example.com"]},
    "tagOwners": {t: ["alice@example.com"] for t in
                  ("tag:web", "tag:db", "tag:router", "tag:exit")},
}


def policy_of(**sections: object) -> Policy:
    text = json.dumps({**HEADER, **sections}, indent=1)
    diags = Diagnostics()
    source = SourceFile("policy.hujson", text)
    policy = build_policy(parse(source, diags), source, diags)
    assert not diags.has_errors, [str(d) for d in diags]
    return policy


def compiled(**sections: object) -> CompiledPolicy:
    return compile_policy(policy_of(**sections), INVENTORY)


def filters(c: CompiledPolicy, name: str) -> list[dict[str, object]]:
    return [r.to_json() for r in c.netmaps[name].packet_filter]


def peers(c: CompiledPolicy, name: str) -> list[str]:
    return [p.name for p in c.netmaps[name].peers]


def test_ex1_no_rules_key_allows_all() -> None:
    c = compiled()
    for n in INVENTORY:
        assert filters(c, n.name) == [
            {"SrcIPs": ["*"], "DstPorts": [{"IP": "*", "Ports": {"First": 0, "Last": 65535}}]}
        ]
        assert len(peers(c, n.name)) == 6


def test_ex2_empty_acls_deny_all() -> None:
    c = compiled(acls=[])
    assert all(filters(c, n.name) == [] and peers(c, n.name) == [] for n in INVENTORY)


def test_ex3_tag_to_tag() -> None:
    c = compiled(acls=[{"action": "accept", "src": ["tag:web"], "dst": ["tag:db:5432"]}])
    assert filters(c, "db") == [{
        "SrcIPs": ["100.64.0.10", f"{V6}a"],
        "DstPorts": [{"IP": "100.64.0.11", "Ports": {"First": 5432, "Last": 5432}},
                     {"IP": f"{V6}b", "Ports": {"First": 5432, "Last": 5432}}],
    }]
    assert filters(c, "web") == []
    assert peers(c, "web") == ["db"] and peers(c, "db") == ["web"]
    assert peers(c, "laptop-a") == []


def test_ex4_group_to_user_reduced_per_node() -> None:
    c = compiled(acls=[{"action": "accept", "src": ["group:eng"],
                        "dst": ["alice@example.com:22"]}])
    [rule] = filters(c, "laptop-a")
    assert rule["DstPorts"] == [{"IP": "100.64.0.1", "Ports": {"First": 22, "Last": 22}},
                                {"IP": f"{V6}1", "Ports": {"First": 22, "Last": 22}}]
    assert len(rule["SrcIPs"]) == 6  # type: ignore[arg-type]
    assert filters(c, "laptop-b") == []
    assert peers(c, "laptop-b") == ["laptop-a", "phone-a"]
    assert peers(c, "web") == []


def test_ex5_autogroup_self() -> None:
    c = compiled(acls=[{"action": "accept", "src": ["autogroup:member"],
                        "dst": ["autogroup:self:*"]}])
    [rule] = filters(c, "laptop-a")
    assert sorted(rule["SrcIPs"]) == sorted(  # type: ignore[arg-type]
        ["100.64.0.1", "100.64.0.2", f"{V6}1", f"{V6}2"])
    assert [d["IP"] for d in rule["DstPorts"]] == ["100.64.0.1", f"{V6}1"]  # type: ignore
    assert peers(c, "laptop-a") == ["phone-a"]
    assert peers(c, "laptop-b") == [] and filters(c, "web") == []


def test_ex6_wildcard_source_reaches_subnet_router() -> None:
    c = compiled(acls=[{"action": "accept", "src": ["*"], "dst": ["10.1.0.0/16:443"]}])
    assert filters(c, "router") == [{
        "SrcIPs": ["10.1.0.0/16", "100.115.94.0-100.127.255.255",
                   "100.64.0.0-100.115.91.255", f"{V6}/48"],
        "DstPorts": [{"IP": "10.1.0.0/16", "Ports": {"First": 443, "Last": 443}}],
    }]
    assert filters(c, "laptop-a") == []
    assert peers(c, "laptop-a") == ["router"]
    assert len(peers(c, "router")) == 6
    peer = next(p for p in c.netmaps["laptop-a"].peers if p.name == "router")
    assert peer.allowed_ips == ("100.64.0.20/32", f"{V6}14/128", "10.1.0.0/16")


def test_ex7_exit_node_use() -> None:
    c = compiled(acls=[{"action": "accept", "src": ["group:eng"],
                        "dst": ["autogroup:internet:*"]}])
    assert peers(c, "laptop-a") == ["exit"]
    assert peers(c, "exit") == ["laptop-a", "laptop-b", "phone-a"]
    peer = next(p for p in c.netmaps["laptop-a"].peers if p.name == "exit")
    assert peer.allowed_ips[-2:] == ("0.0.0.0/0", "::/0")


def test_acl_entries_merge_into_one_rule() -> None:
    c = compiled(acls=[{"action": "accept", "src": ["tag:web"],
                        "dst": ["tag:db:22", "tag:db:80"]}])
    [rule] = filters(c, "db")
    assert len(rule["DstPorts"]) == 4  # type: ignore[arg-type]


def test_protocol_is_emitted_only_when_named() -> None:
    c = compiled(acls=[{"action": "accept", "src": ["tag:web"], "proto": "tcp",
                        "dst": ["tag:db:22"]}])
    assert filters(c, "db")[0]["IPProto"] == [6]


def test_global_rules_carry_spans() -> None:
    c = compiled(acls=[{"action": "accept", "src": ["tag:web"], "dst": ["tag:db:22"]}])
    [rule] = c.global_rules
    assert rule.span.text.startswith("{") and '"tag:web"' in rule.span.text


def test_grant_app_becomes_cap_grant() -> None:
    c = compiled(grants=[{"src": ["tag:web"], "dst": ["tag:db"],
                          "app": {"example.com/cap/x": [{"a": 1}]}}])
    [rule] = filters(c, "db")
    assert rule["CapGrant"] == [{"Dsts": ["100.64.0.11/32", f"{V6}b/128"],
                                 "CapMap": {"example.com/cap/x": [{"a": 1}]}}]
    assert peers(c, "web") == ["db"]


def test_ssh_policy_lists_principals_on_destination() -> None:
    c = compiled(acls=[], ssh=[{"action": "accept", "src": ["group:eng"],
                                "dst": ["tag:db"], "users": ["root", "autogroup:nonroot"]}])
    [rule] = c.netmaps["db"].ssh_policy["rules"]
    assert {p["nodeIP"] for p in rule["principals"]} >= {"100.64.0.1", "100.64.0.3"}
    assert rule["sshUsers"] == {"*": "=", "root": "root"}
    assert rule["action"]["accept"] is True
    assert c.netmaps["web"].ssh_policy == {"rules": []}


def test_node_never_peers_with_itself() -> None:
    c = compiled(acls=[{"action": "accept", "src": ["*"], "dst": ["*:*"]}])
    for n in INVENTORY:
        assert n.name not in peers(c, n.name)
        assert len(peers(c, n.name)) == 6


@pytest.mark.parametrize("name", [n.name for n in INVENTORY])
def test_netmap_json_round_trips(name: str) -> None:
    from policyc.netmap import NodeNetmap

    c = compiled(acls=[{"action": "accept", "src": ["*"], "dst": ["*:22"]}])
    netmap = c.netmaps[name]
    assert NodeNetmap.from_json(json.loads(json.dumps(netmap.to_json()))) == netmap

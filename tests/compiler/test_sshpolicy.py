"""SSH policy and nodeAttrs compilation: the wire shape, recorders, capability maps.

The captured shapes are checked against Tailscale in tests/conformance; these
tests pin what the captures do not show (recorder, enforceRecorder, app values,
the control URL) and the validation of the new fields, both directions.
"""

from __future__ import annotations

import json
from typing import Any

from strategies import node

from policyc.analysis.reference import ReferenceEvaluator, ssh_verdict
from policyc.compiler.compiler import compile_policy
from policyc.compiler.crosscheck import check_tailnet_domains
from policyc.compiler.nodes import Inventory, User
from policyc.compiler.sshpolicy import RECORDING_REJECTED
from policyc.diagnostics.diagnostics import Diagnostic
from policyc.netmap import NodeNetmap
from policyc.policy.load import load_policy_text

INVENTORY = Inventory.of([
    node("alice-laptop", "alice@example.com", (), 1),
    node("alice-phone", "alice@example.com", (), 2),
    node("bob-laptop", "bob@example.com", (), 3),
    node("server", "alice@example.com", ("tag:server",), 10),
    node("both", "alice@example.com", ("tag:server", "tag:prod"), 11),
    node("rec-b", "alice@example.com", ("tag:recorder",), 21),
    node("rec-a", "alice@example.com", ("tag:recorder",), 20),
])
TAG_OWNERS = {t: ["alice@example.com"] for t in ("tag:server", "tag:prod", "tag:recorder")}


def check(**sections: Any) -> list[Diagnostic]:
    _, diags = load_policy_text(json.dumps({"tagOwners": TAG_OWNERS, **sections}), "p.hujson")
    return diags.items


def netmaps(**sections: Any) -> dict[str, NodeNetmap]:
    policy, diags = load_policy_text(json.dumps({"tagOwners": TAG_OWNERS, **sections}))
    assert not diags.has_errors, [str(d) for d in diags]
    return dict(compile_policy(policy, INVENTORY, control_url="https://control.test/").netmaps)


def ssh_rule(**extra: Any) -> dict[str, Any]:
    return {"action": "accept", "src": ["bob@example.com"], "dst": ["tag:server"],
            "users": ["root"], **extra}


def rules_of(maps: dict[str, NodeNetmap], name: str) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = maps[name].ssh_policy["rules"]
    return rules


def test_recorder_tag_gives_every_recorder_address_lowest_first() -> None:
    maps = netmaps(ssh=[ssh_rule(recorder=["tag:recorder"])])
    [rule] = rules_of(maps, "server")
    assert rule["action"]["recorders"] == [
        "100.64.0.20:80", "100.64.0.21:80", "[fd7a:115c:a1e0::14]:80", "[fd7a:115c:a1e0::15]:80"]
    assert "onRecordingFailure" not in rule["action"]  # fail open unless enforced
    assert rule["action"]["accept"] is True


def test_enforced_recorder_fails_closed_on_recording_failure() -> None:
    maps = netmaps(hosts={"tsrec": "100.64.0.99"},
                   ssh=[ssh_rule(action="check", recorder=["tsrec", "100.64.0.98"],
                                 enforceRecorder=True)])
    [rule] = rules_of(maps, "server")
    action = rule["action"]
    assert action["holdAndDelegate"].startswith("https://control.test/machine/ssh/action/")
    assert action["recorders"] == ["100.64.0.98:80", "100.64.0.99:80"]
    failure = action["onRecordingFailure"]
    assert failure["RejectSessionWithMessage"] and failure["TerminateSessionWithMessage"]


def test_enforced_recorder_without_recorder_nodes_rejects() -> None:
    maps = netmaps(tagOwners={**TAG_OWNERS, "tag:nobody": ["alice@example.com"]},
                   ssh=[ssh_rule(recorder=["tag:nobody"], enforceRecorder=True)])
    [rule] = rules_of(maps, "server")
    assert rule["action"] == {"reject": True, "message": RECORDING_REJECTED}


def test_recorder_validation_both_directions() -> None:
    assert check(ssh=[ssh_rule(recorder=["tag:recorder"], enforceRecorder=True)]) == []
    assert [d.code for d in check(ssh=[ssh_rule(recorder=["group:ops"])],
                                  groups={"group:ops": ["bob@example.com"]})] == ["E120"]
    assert [d.code for d in check(ssh=[ssh_rule(recorder=["100.64.0.0/24"])])] == ["E120"]
    assert [d.code for d in check(ssh=[ssh_rule(recorder=["tag:missing"])])] == ["E105"]
    assert [d.code for d in check(ssh=[ssh_rule(enforceRecorder="yes")])] == ["E102"]
    [bad] = check(ssh=[ssh_rule(recorder=["autogroup:member"])])
    assert bad.code == "E114" and bad.span.text == '"autogroup:member"'


def test_tagged_sources_appear_once_per_tag_and_users_once() -> None:
    maps = netmaps(ssh=[{"action": "accept", "src": ["tag:server"], "dst": ["tag:recorder"],
                         "users": ["autogroup:nonroot"]}])
    [rule] = rules_of(maps, "rec-a")
    ips = [p["nodeIP"] for p in rule["principals"]]
    assert sorted(ips).count("100.64.0.11") == 2  # "both" carries two tags
    assert ips.count("100.64.0.10") == 1
    assert rule["sshUsers"] == {"*": "=", "root": ""}


def test_check_rules_come_first_and_accept_forwards() -> None:
    maps = netmaps(ssh=[ssh_rule(), ssh_rule(action="check", users=["ubuntu"])])
    first, second = rules_of(maps, "server")
    assert first["action"] == {"holdAndDelegate": "https://control.test/machine/ssh/action/"
                               "$SRC_NODE_ID/to/$DST_NODE_ID?local_user=$LOCAL_USER"}
    assert first["sshUsers"] == {"root": "", "ubuntu": "ubuntu"}
    assert second["action"]["allowAgentForwarding"] is True


def test_localpart_splits_per_user_and_self_access_names_only_the_node() -> None:
    maps = netmaps(ssh=[{"action": "accept", "src": ["autogroup:member"], "dst": ["tag:server"],
                         "users": ["localpart:*@example.com"]}])
    on_server = rules_of(maps, "server")
    assert [r["sshUsers"] for r in on_server] == [{"root": ""}, {"alice": "alice"},
                                                 {"root": ""}, {"bob": "bob"}]
    # alice-phone is a source, not a destination: rules naming only itself.
    mine = rules_of(maps, "alice-phone")
    assert {p["nodeIP"] for r in mine for p in r["principals"]} == {
        "100.64.0.2", "fd7a:115c:a1e0::2"}


def test_ssh_policy_round_trips_through_netmap_json() -> None:
    maps = netmaps(ssh=[ssh_rule(acceptEnv=["GIT_*"])],
                   nodeAttrs=[{"target": ["tag:server"], "attr": ["funnel"]}])
    netmap = maps["server"]
    again = NodeNetmap.from_json(json.loads(json.dumps(netmap.to_json())))
    assert again.ssh_policy == netmap.ssh_policy and again.cap_map == {"funnel": None}


def test_node_attrs_merge_attrs_and_app_values() -> None:
    connector = {"name": "github", "connectors": ["tag:server"], "domains": ["github.com"]}
    maps = netmaps(hosts={"srv": "100.64.0.10"}, nodeAttrs=[
        {"target": ["*"], "attr": ["magicdns-aaaa"]},
        {"target": ["srv", "bob@example.com"], "attr": ["funnel", "magicdns-aaaa"]},
        {"target": ["tag:server"], "app": {"tailscale.com/app-connectors": [connector]}},
        {"target": ["tag:server"], "app": {"tailscale.com/app-connectors": [{"name": "b"}]}},
        {"target": ["autogroup:member"], "ipPool": ["100.81.0.0/16"]},
    ], randomizeClientPort=True)
    assert maps["server"].cap_map == {
        "randomize-client-port": None, "magicdns-aaaa": None, "funnel": None,
        "tailscale.com/app-connectors": [connector, {"name": "b"}]}
    assert maps["bob-laptop"].cap_map == {
        "randomize-client-port": None, "magicdns-aaaa": None, "funnel": None}
    assert maps["alice-laptop"].cap_map == {"randomize-client-port": None, "magicdns-aaaa": None}


def test_domain_wildcards_must_name_the_tailnets_domain() -> None:
    users = [User("alice@example.com", "owner"), User("thor@example.org", "member")]
    tailnet = Inventory.of(list(INVENTORY.nodes), users)

    def domain_errors(src: str, ssh_user: str, inventory: Inventory) -> list[str]:
        policy, diags = load_policy_text(json.dumps({"tagOwners": TAG_OWNERS, "ssh": [
            ssh_rule(src=[src], users=[ssh_user])]}))
        assert not diags.has_errors
        check_tailnet_domains(policy, inventory, diags)
        return [d.code for d in diags.errors]

    assert domain_errors("user:*@example.com", "localpart:*@example.com", tailnet) == []
    # Tailscale rejects a domain other than the owner's, even one of its users' (captured).
    assert domain_errors("user:*@example.org", "root", tailnet) == ["E109"]
    assert domain_errors("bob@example.com", "localpart:*@EXAMPLE.COM", tailnet) == ["E109"]
    assert domain_errors("bob@example.com", "localpart:*@*", tailnet) == ["E109"]
    # Without users (roles) the tailnet's domain is unknown: nothing to judge.
    assert domain_errors("user:*@example.org", "root", INVENTORY) == []


def test_user_destination_gets_only_its_owners_devices_as_principals() -> None:
    """SaaS applied `src: [autogroup:member, autogroup:admin, USER] -> dst: [USER, ...]`
    (davidpius95/guildcloud-console); Tailscale never lets one user SSH into another
    user's device, so USER's devices get USER's own devices as principals, not
    every member's, and the member/role sources add nothing there."""
    users = ["root"]
    maps = netmaps(ssh=[{"action": "accept", "users": users,
                         "src": ["autogroup:member", "alice@example.com"],
                         "dst": ["alice@example.com", "tag:server"]}])
    alice = {"100.64.0.1", "100.64.0.2"}
    for name in ("alice-laptop", "alice-phone"):
        [rule] = rules_of(maps, name)
        assert {p["nodeIP"] for p in rule["principals"]} >= alice
        assert "100.64.0.3" not in {p["nodeIP"] for p in rule["principals"]}  # bob
    # The reference evaluator (sshTests) agrees: bob reaches the server, not alice.
    policy, _ = load_policy_text(json.dumps({"tagOwners": TAG_OWNERS, "ssh": [
        {"action": "accept", "users": users, "src": ["autogroup:member", "alice@example.com"],
         "dst": ["alice@example.com", "tag:server"]}]}))
    ev = ReferenceEvaluator(policy, INVENTORY)
    by_name = {n.name: n for n in INVENTORY.nodes}
    assert ssh_verdict(ev, by_name["alice-phone"], by_name["alice-laptop"], "root").action
    assert ssh_verdict(ev, by_name["bob-laptop"], by_name["alice-laptop"], "root").action is None
    assert ssh_verdict(ev, by_name["bob-laptop"], by_name["server"], "root").action
    [server] = rules_of(maps, "server")  # a tag destination takes every source
    assert "100.64.0.3" in {p["nodeIP"] for p in server["principals"]}
    assert rules_of(maps, "bob-laptop") == []
    # With autogroup:self beside it, the owner's rule appears once, not twice.
    maps = netmaps(ssh=[{"action": "accept", "users": users,
                         "src": ["autogroup:member", "alice@example.com"],
                         "dst": ["alice@example.com", "autogroup:self"]}])
    assert len(rules_of(maps, "alice-laptop")) == 1
    assert len(rules_of(maps, "bob-laptop")) == 1  # bob's own devices, by self

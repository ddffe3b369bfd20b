"""The whole loop with real parts: a control server in the hub namespace and five
wireguard-go nodes, each joined with `policyc node up` and an auth key.

Packets (TCP, UDP, ICMP; v4 and v6) must agree with the policy as the reference
evaluator reads it, against the nodes control registered; every node holds exactly
the keys of its peers. Then the policy changes under the running mesh (narrower,
wider, failing), control is killed and restarted, a node is removed, and a proxy
between a node and control tampers with and replays answers.

The tests in this module run in order on one tailnet; each leaves it as it found
it (the base policy, every agent running and converged) or says what it changed.
"""

from __future__ import annotations

import functools
import ipaddress
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import agents
import harness
import pytest
from agents import AgentTailnet
from harness import LanProbe, Probe

from policyc.analysis.reference import ReferenceEvaluator
from policyc.enforcer.netns import interface_exists, run_in_netns
from policyc.meshnode.client import ControlClient
from policyc.meshnode.keys import NodeKey, load_or_create_node_key, load_pinned_control_keys
from policyc.meshnode.state import StateDir
from policyc.meshnode.verify import load_cache
from policyc.policy.load import load_policy_file
from policyc.policy.model import Policy
from policyc.protocol import NetmapEnvelope, ServerKeys, verify_netmap
from policyc.protocol.codec import canonical_json

pytestmark = [
    pytest.mark.privileged,
    pytest.mark.skipif(harness.requirements_missing() is not None,
                       reason=str(harness.requirements_missing())),
]

POLICIES = Path(__file__).resolve().parent / "agent_policies"
BASE, NARROWER, WIDER, FAILING = (POLICIES / f"{n}.hujson"
                                  for n in ("base", "narrower", "wider", "failing"))
OWNERS: dict[str, agents.Owner] = {
    "alice": "alice@example.com", "olga": "olga@example.com",
    "web": ("tag:web",), "db": ("tag:db",), "ci": ("tag:ci",),
}
TCP_PORTS = (22, 80, 443, 5432, 8080)
CUT_SECONDS = 15.0  # functional bound for "promptly"; the measured numbers are in benchmarks/


def load(path: Path) -> Policy:
    policy, diags = load_policy_file(str(path))
    assert policy is not None and not diags.has_errors, [str(d) for d in diags.errors]
    return policy


@pytest.fixture(scope="module")
def net() -> Iterator[AgentTailnet]:
    with AgentTailnet.build(OWNERS, BASE) as built:
        yield built


def probes(names: list[str]) -> list[Probe]:
    out: list[Probe] = []
    for src in names:
        for dst in names:
            if src != dst:
                out += [Probe(src, dst, "tcp", port) for port in TCP_PORTS]
                out += [Probe(src, dst, "udp", 443), Probe(src, dst, "tcp", 443, 6),
                        Probe(src, dst, "icmp", 0, 4), Probe(src, dst, "icmp", 0, 6)]
    return out


def expected(reference: ReferenceEvaluator, net: AgentTailnet, probe: Probe) -> bool:
    """The policy's answer; ICMP as Tailscale's client decides it (any open port)."""
    src, dst = net.mesh[probe.src], net.mesh[probe.dst]
    six = probe.family == 6
    src_ip = ipaddress.ip_address(src.ipv6 if six else src.ipv4)
    dst_ip = ipaddress.ip_address(dst.ipv6 if six else dst.ipv4)
    if probe.proto == "icmp":
        return any(reference.allowed(src_ip, dst_ip, proto, None)
                   for proto in (58 if six else 1, 6, 17, 132))
    return reference.allowed(src_ip, dst_ip, 6 if probe.proto == "tcp" else 17, probe.port)


def disagreements(net: AgentTailnet, policy: Path, names: list[str] | None = None) -> list[str]:
    """Probes whose outcome differs from `policy` (after one slower retry)."""
    reference = ReferenceEvaluator(load(policy), net.inventory())
    return harness.policy_mismatches(net.mesh, probes(names or list(net.agents)),
                                     lambda p: expected(reference, net, p))


def peer_keys_by_policy(net: AgentTailnet, policy: Path) -> dict[str, set[str]]:
    inventory = net.inventory()
    reference = ReferenceEvaluator(load(policy), inventory)
    return {name: {inventory.by_name[other].key for other in net.agents
                   if other != name and reference.may_see(inventory.by_name[name],
                                                          inventory.by_name[other])}
            for name in net.agents}


def test_every_node_holds_exactly_the_keys_of_its_peers(net: AgentTailnet) -> None:
    wanted = peer_keys_by_policy(net, BASE)
    assert any(wanted.values()) and not all(len(v) == len(net.agents) - 1
                                            for v in wanted.values())
    for name in net.agents:
        assert net.mesh[name].wg_peers() == wanted[name], name
        status = net.agents[name].status()  # through the CLI
        assert {p["key"] for p in status["peers"]} == wanted[name]
        assert status["control_reachable"] is True and status["last_apply"]["ok"]


def test_packets_agree_with_the_policy(net: AgentTailnet) -> None:
    assert disagreements(net, BASE) == []


def test_whois_names_node_user_and_tags_and_fails_for_strangers(net: AgentTailnet) -> None:
    alice = net.agents["alice"]
    web, olga = net.mesh["web"], net.mesh["olga"]
    found = alice.whois(f"{web.ipv4}:443")
    assert found.returncode == 0, found.stderr
    assert '"node": "web"' in found.stdout and '"tag:web"' in found.stdout
    found = alice.whois(f"[{olga.ipv6}]:22")
    assert found.returncode == 0 and '"olga@example.com"' in found.stdout
    # db is no peer of alice's: her netmap does not know it, so whois does not either.
    assert alice.whois(net.mesh["db"].ipv4).returncode == 1
    assert alice.whois("100.64.255.254").returncode == 1


def test_a_narrower_policy_cuts_an_open_session_and_a_wider_one_opens_access(
        net: AgentTailnet) -> None:
    session = harness.open_tcp_session(net.mesh["alice"], net.mesh["web"].ipv4, 443,
                                       mesh=net.mesh)
    try:
        net.control.apply(NARROWER)
        deadline = time.monotonic() + CUT_SECONDS
        cut = False
        while time.monotonic() < deadline and not cut:
            cut = not session.send(f"still-there-{time.monotonic():.3f}", timeout=0.5)
        assert cut, "the open session to a port the new policy closes survived"
    finally:
        session.close()
    net.wait_converged()
    assert disagreements(net, NARROWER) == []
    net.control.apply(WIDER)
    net.wait_converged()
    assert peer_keys_by_policy(net, WIDER)["alice"] >= {net.mesh["db"].public_key}
    assert disagreements(net, WIDER, ["alice", "db", "web"]) == []
    net.control.apply(BASE)
    net.wait_converged()


def test_agents_that_took_deltas_hold_exactly_the_full_netmap(net: AgentTailnet) -> None:
    """The pushes above reach running agents as signed deltas onto the netmap each
    holds; what an agent then enforces (its cache, verified and applied again) is,
    byte for byte, the full netmap control sends for the same version."""
    net.wait_converged()
    deltas = 0
    for agent in net.agents.values():
        state = StateDir(agent.state)
        key, _ = load_or_create_node_key(state)
        pins = load_pinned_control_keys(state)
        envelope, chain, problem = load_cache(state, pins, node_key=key.public_key,
                                              node_name=None)
        assert problem is None and envelope is not None and chain is not None and pins
        deltas += len(chain.deltas)
        full = run_in_netns(net.control.hub, functools.partial(full_netmap, net.control.url,
                                                               key, pins))
        assert canonical_json(envelope.to_json()) == canonical_json(full.to_json())
    assert deltas > 0


def full_netmap(server: str, key: NodeKey, pins: ServerKeys) -> NetmapEnvelope:
    """The node's full netmap as control sends it now (a poll with no base)."""
    client = ControlClient(server, key.private(), pins)
    try:
        answer = client.poll(0, wait=5.0)
    finally:
        client.close()
    return verify_netmap(answer.netmap, pins.signing_key, node_key=key.public_key)


def snapshot(net: AgentTailnet) -> dict[str, tuple[int, frozenset[str], str]]:
    """Per node: enforced version, WireGuard peers, the loaded table as text."""
    out = {}
    for name, agent in net.agents.items():
        table = net.mesh[name].run(["nft", "-s", "list", "table", "inet", "policyc"],
                                   check=True)  # -s: without counter values
        out[name] = (agent.version(), frozenset(net.mesh[name].wg_peers()), table.stdout)
    return out


def test_a_failing_policy_is_refused_and_changes_nothing_anywhere(net: AgentTailnet) -> None:
    before = snapshot(net)
    refused = net.control.apply(FAILING, check=False)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    time.sleep(2.0)  # a push, had there been one, reaches the nodes in well under this
    after = snapshot(net)
    assert {n: (v, p) for n, (v, p, _) in after.items()} == \
        {n: (v, p) for n, (v, p, _) in before.items()}
    assert all(after[n][2] == before[n][2] for n in after), "a table changed"


def test_a_refused_first_join_leaves_no_interface_behind(net: AgentTailnet) -> None:
    web = net.agents["web"].node
    iface = f"{web.iface}x"
    state = net.workdir / "refused.state"
    refused = web.run(agents.policyc_argv(
        "node", "up", "--server", net.control.url, "--auth-key", "pk-not-a-key",
        "--iface", iface, "--state", str(state), "--hostname", "refused"), timeout=60)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "auth-key-unknown" in refused.stderr
    assert not interface_exists(iface, web.netns)  # nor its wireguard-go (killed by PID)
    assert not (harness.WG_SOCKET_DIR / f"{iface}.sock").exists()
    assert not StateDir(state).interface.exists()


def test_without_control_the_mesh_keeps_working_and_a_restarted_agent_enforces_its_cache(
        net: AgentTailnet) -> None:
    net.inventory()  # read while control is up
    net.control.kill(signal.SIGKILL)
    try:
        assert disagreements(net, BASE, ["alice", "olga", "web"]) == []
        web = net.agents["web"]
        version = web.version()
        assert web.stop(signal.SIGTERM) == 0  # rules stay in force
        assert net.mesh["web"].run(["nft", "list", "table", "inet", "policyc"]).returncode == 0
        down = harness.sh(agents.policyc_argv("node", "down", "--state", str(web.state)),
                          check=False, timeout=30)
        assert down.returncode == 0, down.stderr
        assert net.mesh["web"].run(["ip", "link", "show", web.node.iface]).returncode != 0
        web.start(net.control.url)  # control is down: only the cache can restore it
        assert harness.wait_for(lambda: web.version() == version, timeout=30.0, step=0.2), \
            net.log_tail("web")
        status = web.status()
        assert status["control_reachable"] is False and status["last_apply"]["ok"]
        assert disagreements(net, BASE, ["alice", "olga", "web", "db"]) == []
        stopped = net.agents["ci"]
        assert stopped.stop(signal.SIGTERM) == 0
    finally:
        net.control.start()
    # A policy pushed while ci's agent was away: it catches up by version on return.
    net.control.apply(NARROWER)
    net.agents["ci"].start(net.control.url)
    net.wait_converged()
    assert harness.wait_for(lambda: all(agent.quick_status().get("control_reachable")
                                        for agent in net.agents.values()), timeout=30.0)
    assert disagreements(net, NARROWER) == []
    net.control.apply(BASE)
    net.wait_converged()


def test_a_tampering_or_replaying_proxy_is_refused_and_the_rules_stay(
        net: AgentTailnet) -> None:
    web = net.agents["web"]
    proxy = agents.MeddlingProxy(web.node, net.workdir / "proxy.mode")
    proxy.start(net.control.url.removeprefix("http://"))
    try:
        assert web.stop(signal.SIGTERM) == 0
        web.start(proxy.url)  # the same node, now talking to control through the proxy
        assert harness.wait_for(lambda: web.quick_status().get("control_reachable") is True,
                                timeout=30.0, step=0.2), net.log_tail("web")
        before = snapshot(net)["web"]
        for mode, code in (("tamper", "bad-box"), ("replay", "wrong-answer")):
            proxy.set(mode)
            net.control.apply(NARROWER if mode == "tamper" else WIDER)
            assert harness.wait_for(
                lambda c=code: (web.quick_status().get("last_rejection") or {}).get("code") == c,
                timeout=CUT_SECONDS, step=0.2), net.log_tail("web")
            assert snapshot(net)["web"] == before, f"{mode}: web's rules changed"
        # An unsigned "you were removed" (a bare 403) is reported; web keeps its rules
        # and its peers, and stays up.
        proxy.set("forbid")
        assert harness.wait_for(
            lambda: (web.quick_status().get("last_rejection") or {}).get("code")
            == "unsigned-removal", timeout=CUT_SECONDS, step=0.2), net.log_tail("web")
        assert web.running and snapshot(net)["web"] == before
        # An answer over the agent's size limit is refused unread, as control's answer
        # (control stays reachable), and reported; the rules stay.
        proxy.set("huge")
        assert harness.wait_for(
            lambda: (web.quick_status().get("last_rejection") or {}).get("code")
            == "too-large", timeout=CUT_SECONDS, step=0.2), net.log_tail("web")
        for _ in range(10):
            assert web.quick_status().get("control_reachable") is True
            time.sleep(0.2)
        assert "MiB" in web.quick_status()["last_rejection"]["message"]
        assert web.running and snapshot(net)["web"] == before
        # web kept the base rules: alice still reaches it on 443, which both pushes changed.
        assert harness.probe_all(net.mesh, [Probe("alice", "web", "tcp", 443)]) \
            == {Probe("alice", "web", "tcp", 443): True}
        proxy.set("pass")
        net.control.apply(BASE)
        net.wait_converged()
    finally:
        proxy.close()
        web.stop(signal.SIGTERM)
        web.start(net.control.url)
    net.wait_converged()


def test_an_approved_subnet_route_is_served_to_those_the_policy_lets_in(
        net: AgentTailnet) -> None:
    lan_prefix, host_ip = "198.19.30.0/24", "198.19.30.10"
    router = net.join("gw", ("tag:web",), ["--advertise-routes", lan_prefix])
    net.wait_joined(["gw"])
    try:
        # The agents install routes to their peers' allowed IPs; no client routes here.
        lan = net.mesh.add_lan("gw", lan_prefix, {"host": host_ip}, clients=())
        ops, dev = LanProbe("olga", "host", "tcp", 80), LanProbe("alice", "host", "tcp", 80)
        net.wait_converged()
        assert harness.probe_lan(net.mesh, lan, [ops, dev]) == {ops: False, dev: False}
        net.control.admin("control", "nodes", "approve-routes", "gw", lan_prefix)
        net.wait_converged()
        served = router.quick_status()
        assert served["last_apply"]["ok"], served
        olga_routes = net.mesh["olga"].run(["ip", "route", "show", lan_prefix]).stdout
        assert net.mesh["olga"].iface in olga_routes  # olga's agent routes the LAN over the mesh
        # ops may reach everything, the routed LAN too; developers may reach only tag:web ports.
        assert harness.probe_lan(net.mesh, lan, [ops, dev]) == {ops: True, dev: False}
        # gw's agent restarted without --advertise-routes registers again: control drops
        # the route (advertised and approved) and the LAN is out of reach again.
        assert router.stop() == 0
        router.start(net.control.url)
        assert harness.wait_for(
            lambda: [n["approved_routes"] for n in net.control.nodes() if n["name"] == "gw"]
            == [[]], timeout=CUT_SECONDS, step=0.2), net.log_tail("gw")
        net.wait_converged()
        assert lan_prefix not in net.mesh["olga"].run(["ip", "route", "show", lan_prefix]).stdout
        assert harness.probe_lan(net.mesh, lan, [ops]) == {ops: False}
    finally:
        net.control.api("DELETE", "/api/v1/nodes/gw")
        net.agents.pop("gw").stop()
        net.owners.pop("gw")
    net.wait_converged()


def test_a_removed_node_loses_its_peers_and_leaves_every_peer_config(
        net: AgentTailnet) -> None:
    removed = "ci"
    key = net.mesh[removed].public_key
    assert any(key in net.mesh[n].wg_peers() for n in net.agents if n != removed)
    net.control.admin("control", "nodes", "rm", removed)
    others = [n for n in net.agents if n != removed]
    assert harness.wait_for(lambda: all(key not in net.mesh[n].wg_peers() for n in others),
                            timeout=CUT_SECONDS, step=0.2)
    assert harness.wait_for(lambda: not net.mesh[removed].wg_peers(), timeout=CUT_SECONDS,
                            step=0.2), net.log_tail(removed)
    agent = net.agents.pop(removed)
    assert harness.wait_for(lambda: not agent.running, timeout=CUT_SECONDS)
    assert agent.stop() == 1  # exits: it can only come back with a new auth key
    assert disagreements(net, BASE) == []

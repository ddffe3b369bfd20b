"""`policyc node status|whois|down` without a running agent (the cached netmap), and
`node up`'s argument checks: the CLI as an operator runs it, through click."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from meshnode_helpers import FakeControlKeys, sample_netmap

from policyc.cli import main
from policyc.meshnode.keys import load_or_create_node_key, pin_control_keys
from policyc.meshnode.localapi import LocalApi, ask
from policyc.meshnode.state import StateDir
from policyc.meshnode.verify import save_cache
from policyc.protocol import PeerOwner


@pytest.fixture()
def joined(tmp_path: Path) -> tuple[StateDir, FakeControlKeys]:
    """A state dir as a stopped agent leaves it: key, pinned control, identity, cache."""
    state = StateDir(tmp_path / "state").ensure()
    control = FakeControlKeys()
    key, _ = load_or_create_node_key(state)
    pin_control_keys(state, control.pins, None)
    state.write_json(state.identity, {"name": "alice", "addresses": ["100.64.0.1"],
                                      "user": "alice@example.com", "tags": []})
    netmap = sample_netmap("alice", peers=2)
    save_cache(state, control.sign("alice", key.public_key, 7, netmap,
                                   owners=(PeerOwner("peer1", None, ("tag:db",)),)))
    return state, control


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_status_without_an_agent_reads_the_verified_cache(joined: tuple[StateDir, object]
                                                          ) -> None:
    state, _ = joined
    code, out = run("node", "status", "--state", str(state.root), "--json")
    status = json.loads(out)
    assert code == 0 and status["agent_running"] is False
    assert status["netmap_version"] == 7 and status["control_reachable"] is None
    assert [p["name"] for p in status["peers"]] == ["peer0", "peer1"]
    code, text = run("node", "status", "--state", str(state.root))
    assert code == 0 and "not running" in text and "version 7" in text


def test_a_tampered_cache_is_reported_not_believed(joined: tuple[StateDir, object]) -> None:
    state, _ = joined
    signed = json.loads(state.netmap.read_text())
    signed["signature"] = signed["signature"][::-1]
    state.netmap.write_text(json.dumps(signed))
    code, out = run("node", "status", "--state", str(state.root), "--json")
    status = json.loads(out)
    assert code == 0 and status["netmap_version"] is None and status["peers"] == []
    assert status["last_rejection"]["code"] == "cache"


def test_whois_from_the_cache_exits_1_for_strangers(joined: tuple[StateDir, object]) -> None:
    state, _ = joined
    code, out = run("node", "whois", "100.64.0.11:5432", "--state", str(state.root))
    assert code == 0 and out.startswith("peer1  tag:db")
    code, out = run("node", "whois", "100.64.0.1", "--state", str(state.root), "--json")
    assert code == 0 and json.loads(out)["whois"]["user"] == "alice@example.com"
    assert run("node", "whois", "100.64.9.9", "--state", str(state.root))[0] == 1
    assert run("node", "whois", "not-an-ip", "--state", str(state.root))[0] == 2


def test_status_of_a_node_that_never_joined(tmp_path: Path) -> None:
    code, out = run("node", "status", "--state", str(tmp_path / "none"), "--json")
    assert code == 0 and json.loads(out)["name"] is None
    assert not (tmp_path / "none" / "node.key").exists()  # looking creates nothing


def test_down_with_nothing_recorded_does_nothing(tmp_path: Path) -> None:
    code, out = run("node", "down", "--state", str(StateDir(tmp_path).ensure().root))
    assert code == 0 and "nothing to remove" in out


@pytest.mark.parametrize("bad", [
    ["--advertise-routes", "10.0.0.1/8"], ["--advertise-routes", "nonsense"],
    ["--endpoint", "host:41641"], ["--endpoint", "1.2.3.4:99999"],
])
def test_up_refuses_bad_arguments_before_touching_anything(tmp_path: Path,
                                                           bad: list[str]) -> None:
    state = tmp_path / "state"
    code, _ = run("node", "up", "--server", "http://127.0.0.1:9", "--iface", "wg9",
                  "--state", str(state), *bad)
    assert code == 2 and not state.exists()


def test_up_without_an_auth_key_on_a_node_that_never_joined_fails_fast(tmp_path: Path) -> None:
    code, out = run("node", "up", "--server", "http://127.0.0.1:9", "--iface", "wg9",
                    "--state", str(tmp_path / "state"))
    assert code == 2 and "--auth-key" in out


@pytest.mark.parametrize("server", ["127.0.0.1:8080", "control.example.com", "ftp://x", "http://"])
def test_up_refuses_a_server_that_is_not_an_http_url(tmp_path: Path, server: str) -> None:
    # A bare HOST:PORT used to be retried forever as "control unreachable".
    state = tmp_path / "state"
    code, out = run("node", "up", "--server", server, "--auth-key", "pk-x", "--iface", "wg9",
                    "--state", str(state))
    assert code == 2 and "http://HOST:PORT" in out and not state.exists()


def test_up_refuses_a_state_directory_an_agent_is_running_with(
        joined: tuple[StateDir, object]) -> None:
    state, _ = joined
    api = LocalApi(state.socket, lambda request: {"op": request.get("op"), "running": True})
    try:
        code, out = run("node", "up", "--server", "http://127.0.0.1:9", "--iface", "wg9",
                        "--state", str(state.root))
        assert code == 2 and "already running" in out
        assert ask(state.socket, {"op": "status"}) == {"op": "status", "running": True}
    finally:
        api.close()

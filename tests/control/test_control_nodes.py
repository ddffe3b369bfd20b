"""Nodes over real HTTP: registration, authenticated polls, netmap versions, removal,
expiry, route approval, long-poll, restart and drain."""

from __future__ import annotations

import base64
import ipaddress
import threading
import time
from typing import Any

import pytest
from control_harness import ControlServer, NodeRefused, NodeRemoved, SimNode

from policyc.protocol import ProtocolError, open_response, verify_removal
from policyc.protocol.codec import b64encode, canonical_json
from policyc.protocol.messages import (
    KIND_POLL,
    KIND_REGISTER,
    PATH_POLL,
    PollRequest,
)

ALICE = {"user": "alice@example.com"}


def authkey(control: ControlServer, **body: Any) -> str:
    with control.admin() as admin:
        answer = admin.post("/api/v1/authkeys", json=body)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["key"])


def removed(call: Any) -> NodeRemoved:
    with pytest.raises(NodeRemoved) as err:
        call()
    return err.value


def refused(call: Any) -> NodeRefused:
    with pytest.raises(NodeRefused) as err:
        call()
    return err.value


def nodes(control: ControlServer) -> list[dict[str, Any]]:
    with control.admin() as admin:
        return list(admin.get("/api/v1/nodes").json()["nodes"])


def joined(control: ControlServer, hostname: str, **key: Any) -> SimNode:
    node = control.node(hostname)
    node.register(authkey(control, **key))
    assert node.poll() is not None
    return node


def sync(control: ControlServer, *members: SimNode) -> None:
    """Poll each node until it holds the netmap version the server lists for it."""
    listed = versions(control)
    for node in members:
        while node.version < listed[node.name]:
            assert node.poll() is not None


def test_registration_assigns_unique_addresses_and_names(control: ControlServer) -> None:
    key = authkey(control, reusable=True, **ALICE)
    first, second = control.node("Laptop!"), control.node("laptop")
    a, b = first.register(key), second.register(key)
    assert (a.name, b.name) == ("laptop", "laptop-2")
    assert a.user == "alice@example.com" and a.tags == ()
    assert ipaddress.ip_address(a.addresses[0]) in ipaddress.ip_network("100.64.0.0/10")
    assert ipaddress.ip_address(a.addresses[1]) in ipaddress.ip_network("fd7a:115c:a1e0::/48")
    assert set(a.addresses).isdisjoint(b.addresses)
    assert first.register(key) == a  # a registered key gets its registration back


def test_single_use_expired_and_unknown_keys_are_refused(control: ControlServer) -> None:
    once = authkey(control, **ALICE)
    control.node("a").register(once)
    assert refused(lambda: control.node("b").register(once)).code == "auth-key-used"
    assert refused(lambda: control.node("c").register("pk-nope")).code == "auth-key-unknown"
    short = authkey(control, expires_in=1, **ALICE)
    time.sleep(2.1)  # let the key expire (behaviour, not a timing assert)
    assert refused(lambda: control.node("d").register(short)).code == "auth-key-expired"
    assert [n["name"] for n in nodes(control)] == ["a"]


def test_tags_must_be_defined_and_owned(control: ControlServer) -> None:
    with control.admin() as admin:
        undefined = admin.post("/api/v1/authkeys", json={"tags": ["tag:nope"]})
        not_owned = admin.post("/api/v1/authkeys", json={"tags": ["tag:db"], **ALICE})
        owned = admin.post("/api/v1/authkeys", json={"tags": ["tag:web"], **ALICE})
        admin_made = admin.post("/api/v1/authkeys", json={"tags": ["tag:db"]})
    assert (undefined.status_code, undefined.json()["error"]) == (403, "tag-undefined")
    assert (not_owned.status_code, not_owned.json()["error"]) == (403, "tag-not-owned")
    assert owned.status_code == admin_made.status_code == 200
    web = control.node("web")
    assert web.register(owned.json()["key"]).tags == ("tag:web",)


def test_a_key_whose_tag_left_the_policy_is_refused(control: ControlServer) -> None:
    key = authkey(control, tags=["tag:router"])
    with control.admin() as admin:
        live = admin.get("/api/v1/policy")
        text = live.json()["policy"].replace('"tag:router": ["alice@example.com"],', "")
        assert admin.put("/api/v1/policy", json={"policy": text},
                         headers={"If-Match": live.headers["etag"]}).status_code == 200
    assert refused(lambda: control.node("r").register(key)).code == "tag-undefined"
    assert nodes(control) == []


def test_forged_replayed_and_malformed_node_requests(control: ControlServer) -> None:
    victim = joined(control, "victim", **ALICE)
    forger = control.node("forger")
    sealed = forger.seal(KIND_POLL, PollRequest(0).to_json())
    forged = forger.post(PATH_POLL, dict(sealed.wire, node_key=victim.key))
    assert (forged.status_code, forged.json()["error"]) == (401, "bad-box")

    sealed = victim.seal(KIND_POLL, PollRequest(0).to_json())
    assert victim.post(PATH_POLL, sealed.wire).status_code == 200
    replay = victim.post(PATH_POLL, sealed.wire)
    assert (replay.status_code, replay.json()["error"]) == (401, "replay")

    wrong_kind = victim.seal(KIND_REGISTER, PollRequest(0).to_json())
    assert victim.post(PATH_POLL, wrong_kind.wire).status_code == 400
    raw = bytearray(base64.b64decode(sealed.wire["box"]))
    raw[0] ^= 0xFF
    tampered = victim.post(PATH_POLL, dict(sealed.wire, box=b64encode(bytes(raw))))
    assert tampered.status_code == 401
    for body in ({}, {"node_key": "x", "nonce": "y", "box": "z"}, [], "poll"):
        assert 400 <= victim.post(PATH_POLL, body).status_code < 500
    bad_body = victim.seal(KIND_POLL, {"since": "latest"})
    assert victim.post(PATH_POLL, bad_body.wire).status_code == 400
    unregistered = control.node("stranger")
    stranger = removed(lambda: unregistered.poll()).notice
    assert (stranger.reason, stranger.node, stranger.key) == ("not-registered", None,
                                                              unregistered.key)
    bad_route = control.node("r")
    key = authkey(control, **ALICE)
    assert refused(lambda: bad_route.register(key, routes=("10.0.0.1/8",))).code == "bad-route"
    assert refused(lambda: bad_route.register(key, endpoint="host:1")).code == "bad-endpoint"
    assert [n["name"] for n in nodes(control)] == ["victim"]


def test_a_node_reads_only_its_own_netmap(control: ControlServer) -> None:
    alice = joined(control, "alice", **ALICE)
    web = joined(control, "web", tags=["tag:web"])
    assert alice.envelope is not None and web.envelope is not None
    assert alice.envelope.node == "alice" and alice.envelope.key == alice.key
    assert web.envelope.node == "web" and web.envelope.key == web.key
    # the answer to web's poll is boxed to web: alice's key cannot open it
    sealed = web.seal(KIND_POLL, PollRequest(0).to_json())
    answer = web.post(PATH_POLL, sealed.wire).json()
    with pytest.raises(ProtocolError):
        open_response(alice.private, control.box_key, answer, sealed, KIND_POLL)


def versions(control: ControlServer) -> dict[str, int]:
    return {n["name"]: n["netmap_version"] for n in nodes(control)}


def test_a_join_reaches_exactly_the_peers_that_may_talk_to_it(control: ControlServer) -> None:
    alice = joined(control, "alice", **ALICE)
    db = joined(control, "db", tags=["tag:db"])
    bob = joined(control, "bob", user="bob@example.com")
    before = versions(control)
    web = joined(control, "web", tags=["tag:web"])
    after = versions(control)
    assert {n for n in before if after[n] != before[n]} == {"alice", "db"}
    assert alice.poll() is not None and web.key in alice.peer_keys()
    assert db.poll() is not None and web.key in db.peer_keys()
    assert bob.poll() is None and bob.peer_keys() == set()  # bob may reach nobody
    assert web.peer_keys() == {alice.key, db.key}
    assert db.key not in alice.peer_keys()


def test_a_policy_push_versions_only_changed_netmaps(control: ControlServer) -> None:
    alice = joined(control, "alice", **ALICE)
    web = joined(control, "web", tags=["tag:web"])
    db = joined(control, "db", tags=["tag:db"])
    sync(control, alice, web, db)
    with control.admin() as admin:
        live = admin.get("/api/v1/policy")
        text = live.json()["policy"].replace('"dst": ["tag:db:5432"]', '"dst": ["tag:db:5433"]')
        pushed = admin.put("/api/v1/policy", json={"policy": text},
                           headers={"If-Match": live.headers["etag"]})
    assert pushed.json()["netmaps_changed"] == 1  # only db's filter changed
    assert db.poll() is not None
    assert alice.poll() is None and web.poll() is None  # "no change" after the timeout
    assert db.envelope is not None
    ports = {d.ports.first for r in db.envelope.netmap.packet_filter for d in r.dst_ports}
    assert ports == {5433}


def test_removal_takes_the_key_out_of_every_peer(control: ControlServer) -> None:
    alice = joined(control, "alice", **ALICE)
    web = joined(control, "web", tags=["tag:web"])
    alice.poll()
    assert web.key in alice.peer_keys()
    with control.admin() as admin:
        assert admin.delete("/api/v1/nodes/web").status_code == 200
    assert alice.poll() is not None and web.key not in alice.peer_keys()
    gone = removed(lambda: web.poll())
    # Signed by control, for web's key, newer than the last netmap web was given.
    assert gone.notice.reason == "not-registered" and gone.notice.key == web.key
    assert gone.notice.version > web.version
    assert web.signed is not None
    # Nothing else verifies as a notice: another key, an altered payload, a netmap
    # envelope (its signature is over another context), a notice not newer than the
    # netmap in force.
    for signed, node_key, newer_than, code in (
            (gone.signed, alice.key, None, "wrong-node"),
            (dict(gone.signed, payload=gone.signed["payload"][:-4] + "AAA="), web.key, None,
             "bad-signature"),
            (web.signed, web.key, None, "bad-signature"),
            (gone.signed, web.key, gone.notice.version, "old-version")):
        with pytest.raises(ProtocolError) as err:
            verify_removal(signed, control.signing_key, node_key=node_key,
                           newer_than=newer_than)
        assert err.value.code == code
    # The same key joins again: its netmaps are newer than the notice, so the old
    # notice, replayed, cannot make it leave.
    web.version = 0
    web.register(authkey(control, tags=["tag:web"]))
    assert web.poll() is not None and web.version > gone.notice.version
    with pytest.raises(ProtocolError) as err:
        verify_removal(gone.signed, control.signing_key, node_key=web.key,
                       newer_than=web.version)
    assert err.value.code == "old-version"


def test_expiry_takes_the_key_out_of_every_peer(make_control: Any) -> None:
    control = make_control(node_expiry="10s")
    web = joined(control, "web", tags=["tag:web"])  # tagged: no key expiry
    alice = joined(control, "alice", **ALICE)
    sync(control, web)
    assert alice.key in web.peer_keys()
    deadline = time.monotonic() + 60
    while alice.key in web.peer_keys() and time.monotonic() < deadline:
        web.poll()
    assert alice.key not in web.peer_keys()
    expired = removed(lambda: alice.poll()).notice
    assert (expired.reason, expired.node) == ("node-expired", "alice")
    assert expired.version > alice.version
    listed = {n["name"]: n["expired"] for n in nodes(control)}
    assert listed == {"web": False, "alice": True}
    with control.admin() as admin:
        entries = admin.get("/api/v1/audit").json()["entries"]
    assert [(e["action"], e["actor"], e["target"]) for e in entries
            if e["action"] == "node.expire"] == [("node.expire", "control", "alice")]


def test_route_approval(control: ControlServer) -> None:
    alice = joined(control, "alice", **ALICE)
    router = control.node("router")
    router.register(authkey(control, tags=["tag:router"]), routes=("10.20.0.0/16",))
    router.poll()
    with control.admin() as admin:
        unadvertised = admin.post("/api/v1/nodes/router/routes", json={"routes": ["10.9.0.0/16"]})
        assert (unadvertised.status_code, unadvertised.json()["error"]) == \
            (400, "route-not-advertised")
        ok = admin.post("/api/v1/nodes/router/routes", json={"routes": ["10.20.0.0/16"]})
        assert ok.json()["approved_routes"] == ["10.20.0.0/16"]
        latest = admin.get("/api/v1/audit", params={"limit": 1}).json()["entries"]
        assert [(e["action"], e["target"], e["detail"]) for e in latest] == [
            ("node.routes", "router", {"approved": ["10.20.0.0/16"]})]
    assert router.poll() is not None and router.envelope is not None
    assert router.envelope.netmap.routes == ("10.20.0.0/16",)
    assert alice.poll() is not None and alice.envelope is not None
    [peer] = [p for p in alice.envelope.netmap.peers if p.key == router.key]
    assert "10.20.0.0/16" in peer.allowed_ips


def test_a_registered_node_asking_again_with_other_routes_or_endpoint_gets_them(
        control: ControlServer) -> None:
    alice = joined(control, "alice", **ALICE)
    router = control.node("router")
    key = authkey(control, tags=["tag:router"])
    router.register(key, routes=("10.20.0.0/16", "10.30.0.0/16"), endpoint="198.18.0.5:41641")
    router.poll()
    with control.admin() as admin:
        approved = admin.post("/api/v1/nodes/router/routes",
                              json={"routes": ["10.20.0.0/16", "10.30.0.0/16"]})
        assert approved.status_code == 200
    before = versions(control)
    # The same values again (an agent retrying): nothing changes, no key is needed.
    router.register("", routes=("10.30.0.0/16", "10.20.0.0/16"), endpoint="198.18.0.5:41641")
    assert versions(control) == before
    # A restart with another endpoint and one route less (and one new): taken at once;
    # the dropped route is no longer approved, the new one waits for approval.
    again = router.register("", routes=("10.20.0.0/16", "10.40.0.0/16"),
                            endpoint="198.18.0.9:41641")
    assert again.name == "router"
    [listed] = [n for n in nodes(control) if n["name"] == "router"]
    assert listed["endpoint"] == "198.18.0.9:41641"
    assert listed["advertised_routes"] == ["10.20.0.0/16", "10.40.0.0/16"]
    assert listed["approved_routes"] == ["10.20.0.0/16"]
    with control.admin() as admin:
        latest = admin.get("/api/v1/audit", params={"limit": 1}).json()["entries"]
    assert [(e["action"], e["target"]) for e in latest] == [("node.update", "router")]
    assert alice.poll() is not None and alice.envelope is not None
    [peer] = [p for p in alice.envelope.netmap.peers if p.key == router.key]
    assert peer.endpoint == "198.18.0.9:41641"
    assert "10.20.0.0/16" in peer.allowed_ips
    # A key that is not registered still needs a valid auth key.
    assert refused(lambda: control.node("x").register("", endpoint="198.18.0.7:1")).code \
        == "auth-key-unknown"


def test_a_long_poll_wakes_on_change(control: ControlServer) -> None:
    alice = joined(control, "alice", **ALICE)
    held = alice.version
    got: list[Any] = []
    waiter = threading.Thread(target=lambda: got.append(alice.poll()))
    waiter.start()
    joined(control, "web", tags=["tag:web"])
    waiter.join(60)
    assert got and got[0] is not None and got[0].version > held


def test_after_a_restart_a_full_netmap_is_the_one_the_node_holds(make_control: Any) -> None:
    """Same version, same signed content: the policy stamp and issue time of each node's
    version survive a restart (they were the live policy's and the restart's)."""
    control = make_control()
    alice = joined(control, "alice", **ALICE)
    web = joined(control, "web", tags=["tag:web"])
    sync(control, alice, web)
    with control.admin() as admin:  # a push that changes neither netmap
        live = admin.get("/api/v1/policy")
        text = live.json()["policy"].replace(
            '"acls": [', '"acls": [\n    {"action": "accept", "src": ["tag:db"], '
            '"dst": ["tag:router:22"]},')
        pushed = admin.put("/api/v1/policy", json={"policy": text},
                           headers={"If-Match": live.headers["etag"]})
        assert pushed.status_code == 200 and pushed.json()["netmaps_changed"] == 0
    held = {n.name: canonical_json(n.envelope.to_json()) for n in (alice, web) if n.envelope}
    assert control.stop() == 0
    time.sleep(1.1)  # issue times are whole seconds
    control.start()
    for node in (alice, web):
        assert canonical_json(node.full_netmap().to_json()) == held[node.name]


def test_addresses_and_versions_survive_a_restart(make_control: Any) -> None:
    control = make_control()
    alice = joined(control, "alice", **ALICE)
    web = joined(control, "web", tags=["tag:web"])
    sync(control, alice, web)
    before = nodes(control)
    assert control.stop() == 0
    control.start()
    assert nodes(control) == before
    assert alice.poll() is None  # same version: nothing new after a restart
    third = joined(control, "db", tags=["tag:db"])
    assert set(third.addresses).isdisjoint({a for n in before for a in n["ips"]})
    assert web.poll() is not None and third.key in web.peer_keys()


def test_sigterm_drains_long_polls_and_exits_0(make_control: Any) -> None:
    control = make_control(poll_timeout=120.0)
    alice = joined(control, "alice", **ALICE)
    got: list[Any] = []
    waiter = threading.Thread(target=lambda: got.append(alice.poll()))
    waiter.start()
    time.sleep(1.0)  # let the poll reach the server before the signal
    assert control.stop() == 0
    waiter.join(60)
    assert got == [None]  # answered "no change", not dropped


def test_node_keys_are_never_stored_in_clear(control: ControlServer) -> None:
    key = authkey(control, reusable=True, **ALICE)
    control.node("a").register(key)
    data = (control.state / "control.db").read_bytes()
    wal = control.state / "control.db-wal"
    data += wal.read_bytes() if wal.exists() else b""
    assert key.encode() not in data and control.token.encode() not in data

"""Deltas over real HTTP: a node that holds version V and offers to take deltas gets
a signed delta from V, and applying each one leaves it with exactly the netmap
control would send in full; anything else (no base, a missed version, no offer)
gets the full netmap."""

from __future__ import annotations

from typing import Any

from control_harness import ControlServer, SimNode
from test_control_nodes import ALICE, authkey, versions

from policyc.protocol.codec import canonical_json


def member(control: ControlServer, hostname: str, routes: tuple[str, ...] = (),
           **key: Any) -> SimNode:
    node = control.node(hostname)
    node.deltas = True
    node.register(authkey(control, **key), routes=routes)
    assert node.poll() is not None
    return node


def catch_up(control: ControlServer, *members: SimNode) -> None:
    """Each node polls until it holds its listed version; what it holds is then the
    full netmap control sends, byte for byte."""
    listed = versions(control)
    for node in members:
        while node.version < listed[node.name]:
            assert node.poll() is not None
        assert node.envelope is not None
        assert canonical_json(node.envelope.to_json()) == \
            canonical_json(node.full_netmap().to_json())


def test_joins_pushes_routes_and_removals_arrive_as_deltas(control: ControlServer) -> None:
    alice = member(control, "alice", **ALICE)
    web = member(control, "web", tags=["tag:web"])
    db = member(control, "db", tags=["tag:db"])
    catch_up(control, alice, web, db)
    assert alice.answers[0] == "full"  # the first netmap: nothing to apply a delta to
    router = member(control, "router", ("10.20.0.0/16",), tags=["tag:router"])
    catch_up(control, alice, web, db, router)
    with control.admin() as admin:
        approved = admin.post("/api/v1/nodes/router/routes", json={"routes": ["10.20.0.0/16"]})
        assert approved.status_code == 200
    catch_up(control, alice, web, db, router)
    with control.admin() as admin:
        live = admin.get("/api/v1/policy")
        text = live.json()["policy"].replace('"dst": ["tag:db:5432"]', '"dst": ["tag:db:5433"]')
        assert admin.put("/api/v1/policy", json={"policy": text},
                         headers={"If-Match": live.headers["etag"]}).status_code == 200
    catch_up(control, alice, web, db, router)
    with control.admin() as admin:
        assert admin.delete("/api/v1/nodes/web").status_code == 200
    catch_up(control, alice, db, router)
    assert "delta" in alice.answers and "delta" in db.answers
    assert alice.answers.count("full") == 1 and db.answers.count("full") == 1


def test_a_node_that_missed_a_version_gets_the_full_netmap(control: ControlServer) -> None:
    alice = member(control, "alice", **ALICE)
    member(control, "web1", tags=["tag:web"])
    member(control, "web2", tags=["tag:web"])  # alice changed twice: she holds V, not V+1
    assert alice.version < versions(control)["alice"] - 1
    assert alice.poll() is not None
    assert alice.answers == ["full", "full"]
    catch_up(control, alice)


def test_a_node_that_does_not_offer_gets_full_netmaps(control: ControlServer) -> None:
    alice = member(control, "alice", **ALICE)
    alice.deltas = False
    member(control, "web", tags=["tag:web"])
    assert alice.poll() is not None
    assert alice.answers == ["full", "full"]

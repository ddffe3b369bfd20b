"""Admin extras over real HTTP and the CLI: listing and revoking pre-auth keys, rotating
the admin token, the audit log, the v1 -> v2 schema migration, and a push that drops
a tag registered nodes carry."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import stat
from pathlib import Path
from typing import Any

from control_harness import POLICY, ControlServer
from test_control_cli import admin_args, cli
from test_control_nodes import ALICE, authkey, joined, nodes, refused, sync

from policyc.control.migrations import LATEST, MIGRATIONS, current_version
from policyc.control.store import Store


def fingerprint(token: str) -> str:
    return "admin:" + hashlib.sha256(token.encode()).hexdigest()[:12]


def audit(control: ControlServer, **params: Any) -> list[dict[str, Any]]:
    with control.admin() as admin:
        answer = admin.get("/api/v1/audit", params=params)
    assert answer.status_code == 200, answer.text
    return list(answer.json()["entries"])


def test_auth_keys_are_listed_without_the_key_and_a_revoked_key_is_refused(
        control: ControlServer, tmp_path: Path) -> None:
    args = admin_args(control, tmp_path)
    once = cli("control", "authkey", "create", *args, "--user", "alice@example.com").stdout
    many = cli("control", "authkey", "create", *args, "--tag", "tag:web", "--reusable").stdout
    once, many = once.strip(), many.strip()
    control.node("laptop").register(once)

    listed = cli("control", "authkey", "list", *args, "--json")
    assert listed.exit_code == 0
    assert once not in listed.output and many not in listed.output  # never the key
    keys = json.loads(listed.stdout)["keys"]
    assert [(k["prefix"], k["state"], k["uses"]) for k in keys] == [
        (once[:10], "used", 1), (many[:10], "valid", 0)]
    assert "\tused" in cli("control", "authkey", "list", *args).stdout

    revoked = cli("control", "authkey", "revoke", *args, str(keys[1]["id"]))
    assert revoked.exit_code == 0, revoked.output
    assert refused(lambda: control.node("web").register(many)).code == "auth-key-revoked"
    assert [n["name"] for n in nodes(control)] == ["laptop"]  # the laptop stays
    after = json.loads(cli("control", "authkey", "list", *args, "--json").stdout)["keys"]
    assert after[1]["state"] == "revoked" and after[1]["revoked_at"] is not None
    again = cli("control", "authkey", "revoke", *args, str(keys[1]["id"]))
    assert again.exit_code == 0  # revoking twice changes nothing
    assert json.loads(cli("control", "authkey", "list", *args, "--json").stdout)["keys"] == after
    unknown = cli("control", "authkey", "revoke", *args, "999")
    assert unknown.exit_code == 1 and "unknown-auth-key" in unknown.stderr


def test_token_rotation_voids_the_old_token_and_writes_the_new_one(
        control: ControlServer, tmp_path: Path) -> None:
    old = control.token
    args = admin_args(control, tmp_path)  # a file holding the old token
    rotated = cli("control", "token", "rotate", *args)
    assert rotated.exit_code == 0, rotated.output
    new = rotated.stdout.strip()
    assert rotated.stdout == new + "\n" and new != old and new.startswith("pct-")
    token_file = control.state / "admin.token"
    assert token_file.read_text() == new + "\n"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert not [p.name for p in control.state.iterdir() if p.name.startswith(".admin")]
    with control.admin(old) as admin:
        assert admin.get("/api/v1/nodes").status_code == 401
    with control.admin(new) as admin:
        assert admin.get("/api/v1/nodes").status_code == 200
    assert cli("control", "token", "rotate", *args).exit_code == 2  # the old token: 401
    assert control.token == new  # the refused call rotated nothing
    database = b"".join(p.read_bytes() for p in control.state.glob("control.db*"))
    assert new.encode() not in database and old.encode() not in database
    assert control.stop() == 0
    control.start()  # the new token is the one the restarted server takes
    with control.admin(new) as admin:
        assert admin.get("/api/v1/nodes").status_code == 200


def test_the_audit_log_names_who_changed_what(control: ControlServer, tmp_path: Path) -> None:
    admin_one = fingerprint(control.token)
    with control.admin() as admin:
        etag = admin.get("/api/v1/policy").json()["etag"]
        changed = POLICY.replace("tag:web:443", "tag:web:8443")
        assert admin.put("/api/v1/policy", json={"policy": changed},
                         headers={"If-Match": etag}).status_code == 200
        stale = admin.put("/api/v1/policy", json={"policy": POLICY}, headers={"If-Match": etag})
        assert stale.status_code == 412
    laptop = joined(control, "laptop", **ALICE)
    with control.admin() as admin:
        assert admin.delete("/api/v1/nodes/laptop").status_code == 200
        assert admin.post("/api/v1/policy/rollback", json={"version": 1}).status_code == 200
        assert admin.delete("/api/v1/nodes/nobody").status_code == 404
    new_token = cli("control", "token", "rotate", *admin_args(control, tmp_path)).stdout.strip()
    authkey(control, tags=["tag:web"])

    entries = audit(control)
    assert [(e["action"], e["actor"], e["target"]) for e in entries] == [
        ("authkey.create", fingerprint(new_token), "key 2"),
        ("admin.token-rotate", admin_one, "admin token"),
        ("policy.rollback", admin_one, "version 3"),
        ("node.remove", admin_one, "laptop"),
        ("node.register", "node:" + laptop.key[:12], "laptop"),
        ("authkey.create", admin_one, "key 1"),
        ("policy.put", admin_one, "version 2"),
    ]  # refused requests (412, 404) wrote nothing
    assert entries[1]["detail"] == {"new": fingerprint(new_token)}
    assert entries[4]["detail"]["auth_key"] == 1
    assert entries[6]["detail"]["note"] == "put"
    assert [e["id"] for e in audit(control, limit=2, before=entries[4]["id"])] == [
        entries[5]["id"], entries[6]["id"]]

    printed = cli("control", "audit", *admin_args(control, tmp_path), "--limit", "2")
    assert printed.exit_code == 0
    lines = printed.stdout.splitlines()
    assert len(lines) == 2 and "authkey.create" in lines[0] and "admin.token-rotate" in lines[1]
    assert control.stop() == 0
    control.start()
    assert audit(control) == entries  # durable: written in the change's own transaction


def test_a_version_1_database_migrates_to_the_latest_schema(tmp_path: Path) -> None:
    path = tmp_path / "control.db"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, "
               "applied_at BIGINT NOT NULL)")
    for statement in MIGRATIONS[0][1]:
        db.execute(statement)
    db.execute("INSERT INTO schema_migrations VALUES (1, 0)")
    db.execute("INSERT INTO auth_keys VALUES (7, 'h', 'pk-abcdefg', 'a@b', '[]', 0, NULL, 1, 5)")
    db.close()
    assert LATEST >= 2
    store = Store(path)
    try:
        (key,) = store.auth_keys()
        assert (key.id, key.uses, key.revoked_at, key.state(10)) == (7, 1, None, "used")
        assert store.audit(10) == []
        with store.transaction():
            store.add_audit(1, "control", "test", "x", {"n": 1})
        assert [e.detail for e in store.audit(10)] == [{"n": 1}]
        assert store.integrity_check() == "ok"
    finally:
        store.close()
    check = sqlite3.connect(path)
    try:
        assert current_version(check) == LATEST
    finally:
        check.close()


DROPPED_WEB = POLICY.replace('    "tag:web": ["group:dev"],\n', "").replace(
    '    {"action": "accept", "src": ["group:dev"], "dst": ["tag:web:443"]},\n', "").replace(
    '    {"action": "accept", "src": ["tag:web"], "dst": ["tag:db:5432"]},\n', "")


def test_a_push_that_drops_a_tag_keeps_the_node_and_its_tags(control: ControlServer) -> None:
    """As in Tailscale: the node keeps the tag, which now grants nothing (a policy cannot
    name an undefined tag); it does not fall back to its creator's identity."""
    assert "tag:web" not in DROPPED_WEB
    laptop = joined(control, "laptop", **ALICE)
    web = joined(control, "web", tags=["tag:web"])
    sync(control, laptop, web)
    assert web.key in laptop.peer_keys()
    with control.admin() as admin:
        etag = admin.get("/api/v1/policy").json()["etag"]
        pushed = admin.put("/api/v1/policy", json={"policy": DROPPED_WEB},
                           headers={"If-Match": etag})
    assert pushed.status_code == 200, pushed.text
    listed = {n["name"]: n for n in nodes(control)}
    assert listed["web"]["tags"] == ["tag:web"] and listed["web"]["invalid_tags"] == ["tag:web"]
    assert listed["web"]["user"] is None
    assert listed["laptop"]["invalid_tags"] == []
    printed = cli("control", "nodes", "list", "--server", control.url,
                  env={"POLICYC_TOKEN": control.token}).stdout
    assert [line.endswith("invalid-tags=tag:web") for line in printed.splitlines()] == [
        False, True]
    sync(control, laptop, web)  # both still poll (no 403) and verify their new netmaps
    assert web.key not in laptop.peer_keys() and laptop.key not in web.peer_keys()
    assert web.envelope is not None and web.envelope.netmap.packet_filter == ()
    with control.admin() as admin:
        etag = admin.get("/api/v1/policy").json()["etag"]
        assert admin.put("/api/v1/policy", json={"policy": POLICY},
                         headers={"If-Match": etag}).status_code == 200
    sync(control, laptop, web)
    assert web.key in laptop.peer_keys()  # defined again: the tag grants again
    assert {n["name"]: n["invalid_tags"] for n in nodes(control)}["web"] == []


def test_a_lost_token_is_replaced_offline_on_a_stopped_server(control: ControlServer) -> None:
    old = control.token
    assert control.stop() == 0
    rotated = cli("control", "token", "rotate", "--state", str(control.state))
    assert rotated.exit_code == 0, rotated.output
    new = rotated.stdout.strip()
    assert rotated.stdout == new + "\n" and new != old
    assert (control.state / "admin.token").read_text() == new + "\n"
    assert stat.S_IMODE((control.state / "admin.token").stat().st_mode) == 0o600
    control.start()
    with control.admin(old) as admin:
        assert admin.get("/api/v1/audit").status_code == 401
    [latest] = audit(control, limit=1)
    assert (latest["actor"], latest["action"], latest["detail"]) == (
        "local", "admin.token-rotate", {"new": fingerprint(new), "offline": True})
    both = cli("control", "token", "rotate", "--state", str(control.state),
               "--server", control.url)
    assert both.exit_code == 2
    missing = cli("control", "token", "rotate", "--state", str(control.state / "nope"))
    assert missing.exit_code == 2 and not (control.state / "nope").exists()
    assert control.token == new  # refused calls rotated nothing

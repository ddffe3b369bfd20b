"""The control database: one SQLite file in WAL mode, durable on every commit.

`synchronous=FULL` makes each commit reach the disk before the server
answers, so an acknowledged write survives kill -9 and power loss. The
connection is in autocommit mode and every write runs in an explicit
`transaction()`; callers serialise writers (the tailnet's lock), and this
module never builds SQL from data: every value is a bound parameter.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from policyc.control.migrations import migrate

NODE_COLUMNS = ("id, name, node_key, user_login, tags, ipv4, ipv6, advertised_routes, "
                "approved_routes, endpoint, created_at, expires_at, netmap_version, "
                "netmap_digest, netmap_policy, netmap_issued_at")
KEY_COLUMNS = ("id, key_hash, prefix, user_login, tags, reusable, expires_at, uses, created_at, "
               "revoked_at")
AUDIT_COLUMNS = "id, at, actor, action, target, detail"


@dataclass(frozen=True, slots=True)
class StoredPolicy:
    version: int
    etag: str
    text: str
    created_at: int
    note: str


@dataclass(frozen=True, slots=True)
class NodeRecord:
    id: int
    name: str
    node_key: str
    user: str | None
    tags: tuple[str, ...]
    ipv4: str
    ipv6: str
    advertised_routes: tuple[str, ...]
    approved_routes: tuple[str, ...]
    endpoint: str | None
    created_at: int
    expires_at: int | None
    netmap_version: int
    netmap_digest: str
    # The stamp and issue time the node's current netmap version was signed with (None:
    # a database from before schema 3, or never given a netmap).
    netmap_policy: str | None = None
    netmap_issued_at: int | None = None

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and self.expires_at <= now


@dataclass(frozen=True, slots=True)
class AuthKeyRecord:
    id: int
    key_hash: str
    prefix: str
    user: str | None
    tags: tuple[str, ...]
    reusable: bool
    expires_at: int | None
    uses: int
    created_at: int
    revoked_at: int | None = None

    def state(self, now: float) -> str:
        """valid, revoked, expired or used (a spent single-use key)."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        if self.uses and not self.reusable:
            return "used"
        return "valid"


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One admin or registry change: who (`actor`) did what to which thing, when."""

    id: int
    at: int
    actor: str  # "admin:<token fingerprint>", "node:<key fingerprint>" or "control"
    action: str  # e.g. policy.put, authkey.revoke, node.register, admin.token-rotate
    target: str
    detail: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "at": self.at, "actor": self.actor, "action": self.action,
                "target": self.target, "detail": self.detail}


def _node(row: tuple[Any, ...]) -> NodeRecord:
    return NodeRecord(row[0], row[1], row[2], row[3], tuple(json.loads(row[4])), row[5], row[6],
                      tuple(json.loads(row[7])), tuple(json.loads(row[8])), row[9], row[10],
                      row[11], row[12], row[13], row[14], row[15])


def _auth_key(row: tuple[Any, ...]) -> AuthKeyRecord:
    return AuthKeyRecord(row[0], row[1], row[2], row[3], tuple(json.loads(row[4])),
                         bool(row[5]), row[6], row[7], row[8], row[9])


class Store:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._lock = threading.RLock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA busy_timeout=5000")
        migrate(self._db)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All writes inside commit together, or none does."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _one(self, sql: str, args: tuple[Any, ...] = ()) -> tuple[Any, ...] | None:
        with self._lock:
            row: tuple[Any, ...] | None = self._db.execute(sql, args).fetchone()
            return row

    def _all(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return list(self._db.execute(sql, args).fetchall())

    def _run(self, sql: str, args: tuple[Any, ...] = ()) -> int:
        with self._lock:
            return self._db.execute(sql, args).rowcount

    def integrity_check(self) -> str:
        row = self._one("PRAGMA integrity_check")
        return str(row[0]) if row else "no answer"

    # --- settings and counters ------------------------------------------------------

    def setting(self, name: str) -> str | None:
        row = self._one("SELECT value FROM settings WHERE name = ?", (name,))
        return None if row is None else str(row[0])

    def set_setting(self, name: str, value: str) -> None:
        if self._run("UPDATE settings SET value = ? WHERE name = ?", (value, name)) == 0:
            self._run("INSERT INTO settings (name, value) VALUES (?, ?)", (name, value))

    def counter(self, name: str) -> int:
        """A counter's current value (0 before its first use)."""
        row = self._one("SELECT value FROM counters WHERE name = ?", (name,))
        return 0 if row is None else int(row[0])

    def set_counter(self, name: str, value: int) -> None:
        """Move a counter forward to `value` (it never goes back)."""
        with self._lock:
            if self._one("SELECT value FROM counters WHERE name = ?", (name,)) is None:
                self._run("INSERT INTO counters (name, value) VALUES (?, ?)", (name, value))
            else:
                self._run("UPDATE counters SET value = ? WHERE name = ? AND value < ?",
                          (value, name, value))

    def next_counter(self, name: str) -> int:
        """The next value of a counter that never goes back (ids, addresses, versions)."""
        value = self.counter(name) + 1
        self.set_counter(name, value)
        return value

    # --- policies ----------------------------------------------------------------------

    def live_policy(self) -> StoredPolicy | None:
        row = self._one("SELECT version, etag, text, created_at, note FROM policies "
                        "ORDER BY version DESC LIMIT 1")
        return None if row is None else StoredPolicy(*row)

    def policy(self, version: int) -> StoredPolicy | None:
        row = self._one("SELECT version, etag, text, created_at, note FROM policies "
                        "WHERE version = ?", (version,))
        return None if row is None else StoredPolicy(*row)

    def policy_history(self) -> list[StoredPolicy]:
        """Every stored version, newest first, without the text."""
        return [StoredPolicy(r[0], r[1], "", r[2], r[3]) for r in self._all(
            "SELECT version, etag, created_at, note FROM policies ORDER BY version DESC")]

    def add_policy(self, text: str, etag: str, created_at: int, note: str) -> int:
        version = self.next_counter("policy_version")
        self._run("INSERT INTO policies (version, etag, text, created_at, note) "
                  "VALUES (?, ?, ?, ?, ?)", (version, etag, text, created_at, note))
        return version

    # --- nodes -------------------------------------------------------------------------

    def nodes(self) -> list[NodeRecord]:
        return [_node(r) for r in self._all(f"SELECT {NODE_COLUMNS} FROM nodes ORDER BY id")]

    def node_by_name(self, name: str) -> NodeRecord | None:
        row = self._one(f"SELECT {NODE_COLUMNS} FROM nodes WHERE name = ?", (name,))
        return None if row is None else _node(row)

    def node_by_key(self, node_key: str) -> NodeRecord | None:
        row = self._one(f"SELECT {NODE_COLUMNS} FROM nodes WHERE node_key = ?", (node_key,))
        return None if row is None else _node(row)

    def name_taken(self, name: str) -> bool:
        return self._one("SELECT 1 FROM nodes WHERE name = ?", (name,)) is not None

    def add_node(self, node: NodeRecord) -> None:
        row = _node_row(node)
        self._run(f"INSERT INTO nodes ({NODE_COLUMNS}) VALUES ({', '.join('?' * len(row))})",
                  row)

    def update_node(self, node: NodeRecord) -> None:
        """Rewrite every column of the node with `node.id`."""
        columns = [c.strip() for c in NODE_COLUMNS.split(",")][1:]
        assignments = ", ".join(f"{c} = ?" for c in columns)
        self._run(f"UPDATE nodes SET {assignments} WHERE id = ?", (*_node_row(node)[1:], node.id))

    def delete_node(self, name: str) -> bool:
        return self._run("DELETE FROM nodes WHERE name = ?", (name,)) > 0

    def set_netmap_versions(self, nodes: list[NodeRecord]) -> None:
        """The netmap version, digest, stamp and issue time of each node whose netmap
        changed."""
        with self._lock:
            self._db.executemany(
                "UPDATE nodes SET netmap_version = ?, netmap_digest = ?, netmap_policy = ?, "
                "netmap_issued_at = ? WHERE name = ?",
                [(n.netmap_version, n.netmap_digest, n.netmap_policy, n.netmap_issued_at, n.name)
                 for n in nodes])

    # --- pre-auth keys ---------------------------------------------------------------

    def add_auth_key(self, key: AuthKeyRecord) -> None:
        self._run(f"INSERT INTO auth_keys ({KEY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                  (key.id, key.key_hash, key.prefix, key.user, json.dumps(list(key.tags)),
                   int(key.reusable), key.expires_at, key.uses, key.created_at, key.revoked_at))

    def auth_key_by_hash(self, key_hash: str) -> AuthKeyRecord | None:
        row = self._one(f"SELECT {KEY_COLUMNS} FROM auth_keys WHERE key_hash = ?", (key_hash,))
        return None if row is None else _auth_key(row)

    def use_auth_key(self, key_id: int) -> None:
        self._run("UPDATE auth_keys SET uses = uses + 1 WHERE id = ?", (key_id,))

    def auth_keys(self) -> list[AuthKeyRecord]:
        return [_auth_key(r) for r in self._all(f"SELECT {KEY_COLUMNS} FROM auth_keys "
                                                "ORDER BY id")]

    def auth_key(self, key_id: int) -> AuthKeyRecord | None:
        row = self._one(f"SELECT {KEY_COLUMNS} FROM auth_keys WHERE id = ?", (key_id,))
        return None if row is None else _auth_key(row)

    def revoke_auth_key(self, key_id: int, at: int) -> None:
        self._run("UPDATE auth_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                  (at, key_id))

    # --- the audit log -----------------------------------------------------------------

    def add_audit(self, at: int, actor: str, action: str, target: str,
                  detail: dict[str, Any]) -> int:
        """Append an entry (inside the transaction of the change it describes)."""
        entry_id = self.next_counter("audit_id")
        self._run(f"INSERT INTO audit_log ({AUDIT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                  (entry_id, at, actor, action, target, json.dumps(detail, sort_keys=True)))
        return entry_id

    def audit(self, limit: int, before: int | None = None) -> list[AuditEntry]:
        """The newest `limit` entries (older than id `before`, when given), newest first."""
        rows = self._all(f"SELECT {AUDIT_COLUMNS} FROM audit_log WHERE id < ? "
                         "ORDER BY id DESC LIMIT ?", (before or 1 << 62, limit))
        return [AuditEntry(r[0], r[1], r[2], r[3], r[4], json.loads(r[5])) for r in rows]


def _node_row(node: NodeRecord) -> tuple[Any, ...]:
    return (node.id, node.name, node.node_key, node.user, json.dumps(list(node.tags)),
            node.ipv4, node.ipv6, json.dumps(list(node.advertised_routes)),
            json.dumps(list(node.approved_routes)), node.endpoint, node.created_at,
            node.expires_at, node.netmap_version, node.netmap_digest, node.netmap_policy,
            node.netmap_issued_at)

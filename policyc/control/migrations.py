"""Schema migrations, versioned in code and applied in order, each in one transaction.

The SQL is kept portable (no AUTOINCREMENT, no SQLite-only types or upserts;
ids and counters are assigned by the store itself), so a PostgreSQL backend
for several control replicas can run the same statements with its own
placeholder style. Never edit a released migration: append a new one.
"""

from __future__ import annotations

import sqlite3
import time

MIGRATIONS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (1, (
        """CREATE TABLE settings (
               name VARCHAR(64) PRIMARY KEY,
               value TEXT NOT NULL)""",
        """CREATE TABLE counters (
               name VARCHAR(64) PRIMARY KEY,
               value BIGINT NOT NULL)""",
        """CREATE TABLE policies (
               version BIGINT PRIMARY KEY,
               etag VARCHAR(64) NOT NULL,
               text TEXT NOT NULL,
               created_at BIGINT NOT NULL,
               note TEXT NOT NULL)""",
        """CREATE TABLE nodes (
               id BIGINT PRIMARY KEY,
               name VARCHAR(63) NOT NULL UNIQUE,
               node_key VARCHAR(44) NOT NULL UNIQUE,
               user_login VARCHAR(256),
               tags TEXT NOT NULL,
               ipv4 VARCHAR(15) NOT NULL UNIQUE,
               ipv6 VARCHAR(39) NOT NULL UNIQUE,
               advertised_routes TEXT NOT NULL,
               approved_routes TEXT NOT NULL,
               endpoint VARCHAR(256),
               created_at BIGINT NOT NULL,
               expires_at BIGINT,
               netmap_version BIGINT NOT NULL,
               netmap_digest VARCHAR(64) NOT NULL)""",
        """CREATE TABLE auth_keys (
               id BIGINT PRIMARY KEY,
               key_hash VARCHAR(64) NOT NULL UNIQUE,
               prefix VARCHAR(16) NOT NULL,
               user_login VARCHAR(256),
               tags TEXT NOT NULL,
               reusable SMALLINT NOT NULL,
               expires_at BIGINT,
               uses BIGINT NOT NULL,
               created_at BIGINT NOT NULL)""",
    )),
    # 2: pre-auth keys can be revoked; an audit log of every admin and registry change.
    (2, (
        "ALTER TABLE auth_keys ADD COLUMN revoked_at BIGINT",
        """CREATE TABLE audit_log (
               id BIGINT PRIMARY KEY,
               at BIGINT NOT NULL,
               actor VARCHAR(128) NOT NULL,
               action VARCHAR(64) NOT NULL,
               target VARCHAR(256) NOT NULL,
               detail TEXT NOT NULL)""",
    )),
    # 3: each node's netmap version keeps its policy stamp and issue time, so a full
    # envelope made after a restart is byte for byte the one the node was given.
    (3, (
        "ALTER TABLE nodes ADD COLUMN netmap_policy VARCHAR(64)",
        "ALTER TABLE nodes ADD COLUMN netmap_issued_at BIGINT",
    )),
)

LATEST = MIGRATIONS[-1][0]


def current_version(db: sqlite3.Connection) -> int:
    exists = db.execute(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
    ).fetchone()[0]
    if not exists:
        return 0
    row = db.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
    return int(row[0] or 0)


def migrate(db: sqlite3.Connection) -> int:
    """Bring the schema to LATEST; returns the version it was at before.

    `db` must be in autocommit mode (isolation_level=None): transactions are explicit.

    A database newer than this code is refused rather than guessed at.
    """
    db.execute("CREATE TABLE IF NOT EXISTS schema_migrations ("
               "version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)")
    before = current_version(db)
    if before > LATEST:
        raise RuntimeError(f"database schema {before} is newer than this policyc ({LATEST})")
    for version, statements in MIGRATIONS:
        if version <= before:
            continue
        db.execute("BEGIN IMMEDIATE")  # one transaction per migration (DDL included)
        try:
            for statement in statements:
                db.execute(statement)
            db.execute("INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                       (version, int(time.time())))
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
    return before

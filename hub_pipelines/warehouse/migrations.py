"""Plain-SQL migrations: the ordered files in `sql/`, each applied once, recorded with a checksum.

A file that was applied and then edited is refused (its checksum no longer matches): schema changes
go into a new file. Upgrades take an advisory lock so two processes never apply the same file twice.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import psycopg

from hub_pipelines.warehouse.db import connect

_FILENAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
_LOCK_ID = 0x48554201  # "HUB" + 1: arbitrary, constant advisory-lock key for migrations

_BOOKKEEPING = """
CREATE SCHEMA IF NOT EXISTS hub;
CREATE TABLE IF NOT EXISTS hub.schema_migrations (
    version     text PRIMARY KEY,
    filename    text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
);
"""


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True)
class Migration:
    version: str
    path: Path

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


@dataclass(frozen=True)
class MigrationStatus:
    migration: Migration
    applied_at: datetime | None
    checksum_matches: bool


def sql_dir() -> Path:
    override = os.environ.get("HUB_SQL_DIR")
    return Path(override) if override else Path(__file__).resolve().parents[2] / "sql"


def discover(directory: Path | None = None) -> list[Migration]:
    directory = directory or sql_dir()
    if not directory.is_dir():
        raise MigrationError(f"migrations folder {directory} not found; set HUB_SQL_DIR")
    migrations = []
    for path in sorted(directory.glob("*.sql")):
        match = _FILENAME.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: migration files are named NNNN_lowercase_name.sql")
        migrations.append(Migration(match.group(1), path))
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"two migration files share a version number in {directory}")
    return migrations


def _applied(conn: psycopg.Connection) -> dict[str, tuple[str, datetime]]:
    rows = conn.execute(
        "SELECT version, checksum, applied_at FROM hub.schema_migrations"
    ).fetchall()
    return {version: (checksum, applied_at) for version, checksum, applied_at in rows}


def status(url: str | None = None) -> list[MigrationStatus]:
    with connect(url) as conn:
        conn.execute(_BOOKKEEPING)
        applied = _applied(conn)
    result = []
    for migration in discover():
        checksum, applied_at = applied.get(migration.version, (None, None))
        matches = checksum is None or checksum == migration.checksum
        result.append(MigrationStatus(migration, applied_at, matches))
    return result


def pending(conn: psycopg.Connection) -> list[Migration]:
    """The migrations this code has that the database lacks (all of them on a bare database);
    read only: it creates nothing."""
    (recorded,) = conn.execute("SELECT to_regclass('hub.schema_migrations')").fetchone()
    applied = _applied(conn) if recorded else {}
    return [migration for migration in discover() if migration.version not in applied]


def upgrade(url: str | None = None) -> list[Migration]:
    """Apply every pending migration, each in its own transaction. Returns those applied."""
    migrations = discover()
    done: list[Migration] = []
    with connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_ID,))
        try:
            conn.execute(_BOOKKEEPING)
            applied = _applied(conn)
            _refuse_changed(migrations, applied)
            for migration in migrations:
                if migration.version not in applied:
                    _apply(conn, migration)
                    done.append(migration)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_ID,))
    return done


def _refuse_changed(migrations: list[Migration], applied: dict[str, tuple[str, datetime]]) -> None:
    for migration in migrations:
        recorded = applied.get(migration.version)
        if recorded and recorded[0] != migration.checksum:
            raise MigrationError(
                f"{migration.path.name} was changed after it was applied "
                f"(recorded checksum {recorded[0][:12]}…, file now {migration.checksum[:12]}…). "
                "Restore the file and put the change in a new migration."
            )


def _apply(conn: psycopg.Connection, migration: Migration) -> None:
    with conn.transaction():
        conn.execute(migration.path.read_text())
        conn.execute(
            "INSERT INTO hub.schema_migrations (version, filename, checksum) VALUES (%s, %s, %s)",
            (migration.version, migration.path.name, migration.checksum),
        )

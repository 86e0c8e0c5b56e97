"""The audit trail's retry arithmetic and its run-level error rows, on the real warehouse."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from hub_pipelines.connectors.errors import SyncError
from hub_pipelines.imports import audit
from hub_pipelines.warehouse.loader import LoadCounts


@pytest.mark.parametrize(
    ("retry_count", "minutes"),
    [(0, 5), (1, 10), (2, 20), (3, 40), (6, 320), (7, 360), (30, 360), (38, 360), (10**6, 360)],
)
def test_the_backoff_doubles_with_each_retry_up_to_six_hours(retry_count, minutes):
    assert audit.retry_delay(retry_count) == timedelta(minutes=minutes)


def retry_wait(error: SyncError, retry_count: int) -> tuple[timedelta, timedelta] | None:
    """The wait retry_at chose, bracketed by the clock read before and after the call."""
    before = datetime.now(UTC)
    at = audit.retry_at(error, retry_count)
    after = datetime.now(UTC)
    return None if at is None else (at - after, at - before)


@pytest.mark.parametrize(
    ("error", "retry_count", "wait"),
    [
        (SyncError("SERVER", "503"), 0, timedelta(minutes=5)),
        (SyncError("NETWORK", "reset"), 2, timedelta(minutes=20)),
        (SyncError("SERVER", "503", retry_after=7200), 0, timedelta(hours=2)),  # the source's wait
        (SyncError("SERVER", "503", retry_after=60), 1, timedelta(minutes=10)),  # the backoff
        # Zoho's daily quota: not retried inside the run, but re-run once it resets.
        (
            SyncError("RATE_LIMIT", "quota", retryable=False, retry_after=3600),
            0,
            timedelta(hours=1),
        ),
        (SyncError("RATE_LIMIT", "quota", retryable=False), 3, timedelta(minutes=40)),
    ],
)
def test_a_retry_waits_for_the_longer_of_the_backoff_and_the_sources_wait(error, retry_count, wait):
    low, high = retry_wait(error, retry_count)
    assert low <= wait <= high


@pytest.mark.parametrize(
    "error",
    [
        SyncError("AUTH", "invalid_code"),
        SyncError("CONFIG", "disabled"),
        SyncError("MAPPING", "bad record"),
        SyncError("SERVER", "bug of ours", retryable=False),
    ],
)
def test_a_failure_a_retry_cannot_help_gets_no_retry_time(error):
    assert audit.retry_at(error, 0) is None


def run_failure(url: str, run_id: str, error: SyncError, **kwargs) -> tuple:
    with psycopg.connect(url) as conn:
        error_id = audit.record_run_failure(
            conn,
            run_id=run_id,
            partition_key="acme",
            tenant_id="acme",
            system="zoho_books",
            error=error,
            entity="invoices",
            **kwargs,
        )
        return conn.execute(
            "SELECT id, retry_count, retryable, extract(epoch FROM next_retry_at - now()), "
            "scope, category, config_id FROM hub.accounting_sync_errors WHERE id = %s",
            (error_id,),
        ).fetchone()


def test_the_retry_time_is_stored_from_the_run_retry_count(warehouse):
    _, count, retryable, wait, scope, category, config = run_failure(
        warehouse, "run-1", SyncError("SERVER", "503"), retry_count=3
    )
    assert (count, retryable, scope, category, config) == (3, True, "run", "SERVER", None)
    assert 40 * 60 - 60 < wait <= 40 * 60  # 40 minutes from the failure, however slow the test


def test_a_failure_without_a_retry_is_stored_as_not_retryable(warehouse):
    _, _, retryable, wait, *_ = run_failure(warehouse, "run-1", SyncError("AUTH", "revoked"))
    assert retryable is False and wait is None


def test_recording_a_run_failure_twice_keeps_one_row(warehouse):
    first = run_failure(warehouse, "run-1", SyncError("SERVER", "503"))
    again = run_failure(warehouse, "run-1", SyncError("SERVER", "503"), retry_count=5)
    assert again[:3] == first[:3]  # the first delivery's row, its retry count kept
    with psycopg.connect(warehouse) as conn:
        assert conn.execute("SELECT count(*) FROM hub.accounting_sync_errors").fetchone() == (1,)


def test_a_sync_log_is_opened_running_and_closed_with_its_counts(warehouse):
    with psycopg.connect(warehouse) as conn:
        log_id = audit.start_sync_log(
            conn,
            config_id=None,
            tenant_id="acme",
            system="zoho_books",
            entity="invoices",
            sync_type="incremental",
            run_id="run-1",
            partition_key="acme",
            cursor_before="c0",
        )
        assert conn.execute(
            "SELECT status, cursor_before FROM hub.accounting_sync_logs WHERE id = %s", (log_id,)
        ).fetchone() == ("running", "c0")
        counts = LoadCounts(fetched=6, inserted=1, updated=2, unchanged=3, failed=4, deleted=5)
        error = SyncError("MAPPING", "4 of 6 failed", code="E1", retry_after=30)
        audit.finish_sync_log(
            conn,
            log_id,
            status="failed",
            counts=counts,
            api_calls=9,
            cursor_after="c1",
            error=error,
        )
        row = conn.execute(
            "SELECT status, records_fetched, records_inserted, records_updated, records_unchanged, "
            "records_deleted, records_failed, api_calls, cursor_after, error_message, "
            "metadata, completed_at IS NOT NULL, duration_ms >= 0 "
            "FROM hub.accounting_sync_logs WHERE id = %s",
            (log_id,),
        ).fetchone()
    metadata = {
        "category": "MAPPING",
        "severity": "error",
        "retryable": False,
        "suggested_fix": error.suggested_fix,
        "code": "E1",
        "retry_after": 30,
    }
    assert row == ("failed", 6, 1, 2, 3, 5, 4, 9, "c1", "4 of 6 failed", metadata, True, True)


def config_row(url: str) -> int:
    """A bare config row (its sealed connection config is never opened here)."""
    with psycopg.connect(url) as conn:
        (config_id,) = conn.execute(
            "INSERT INTO hub.accounting_configs (tenant_id, system, connection_config) "
            "VALUES ('acme', 'zoho_books', '{}') RETURNING id"
        ).fetchone()
        return config_id


def config_health(url: str) -> tuple:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT consecutive_failures, last_sync_status FROM hub.accounting_configs"
        ).fetchone()


def test_a_run_failing_for_two_entities_counts_as_one_failure_of_its_config(warehouse):
    config_id = config_row(warehouse)
    first = run_failure(warehouse, "run-1", SyncError("SERVER", "503"))
    with psycopg.connect(warehouse) as conn:  # the same run, its other entity
        audit.record_run_failure(
            conn,
            run_id="run-1",
            partition_key="acme",
            tenant_id="acme",
            system="zoho_books",
            error=SyncError("SERVER", "503"),
            entity="customers",
        )
    assert first[6] == config_id
    assert config_health(warehouse) == (1, "failed")
    run_failure(warehouse, "run-2", SyncError("SERVER", "503"))
    assert config_health(warehouse) == (2, "failed")


def test_a_success_resets_the_count_and_resolves_only_its_entitys_run_errors(warehouse):
    config_id = config_row(warehouse)
    run_failure(warehouse, "run-1", SyncError("SERVER", "503"))  # invoices
    with psycopg.connect(warehouse) as conn:
        audit.mark_config_synced(conn, config_id, "customers", "success")
        assert config_health(warehouse) == (0, "success")
        assert conn.execute("SELECT resolved FROM hub.accounting_sync_errors").fetchone() == (
            False,
        )
        audit.mark_config_synced(conn, config_id, "invoices", "partial")
        assert conn.execute(
            "SELECT resolved, resolution_note FROM hub.accounting_sync_errors"
        ).fetchone() == (True, "a later sync of this partition succeeded")
    assert config_health(warehouse) == (0, "partial")


def test_a_run_failure_keeps_its_sync_log_retry_plan_and_first_retry_time(warehouse):
    with psycopg.connect(warehouse) as conn:
        log_id = audit.start_sync_log(
            conn,
            config_id=None,
            tenant_id="acme",
            system="zoho_books",
            entity="invoices",
            sync_type="full",
            run_id="run-1",
            partition_key="acme",
            cursor_before=None,
        )
    plan = {"assets": ["zoho_books/invoices"], "full_refresh": True, "backfill_id": None}
    (error_id, count, retryable, wait, *_) = run_failure(
        warehouse, "run-1", SyncError("SERVER", "503"), retry_plan=plan
    )
    assert (count, retryable) == (0, True) and 4 * 60 < wait <= 5 * 60  # the first backoff
    without_plan = run_failure(warehouse, "run-2", SyncError("SERVER", "503"))[0]
    with psycopg.connect(warehouse) as conn:
        stored = {
            row[0]: row[1:]
            for row in conn.execute(
                "SELECT id, sync_log_id, retry_plan, retry_plan IS NULL "
                "FROM hub.accounting_sync_errors"
            ).fetchall()
        }
    assert stored == {error_id: (log_id, plan, False), without_plan: (None, None, True)}
